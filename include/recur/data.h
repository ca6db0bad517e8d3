/* recur/data.h - text data for character language models: strict UTF-8,
 * vocabularies (characters or bytes) with their JSON form, reading a text
 * file, the train/validation split and char-rnn's stream batching with
 * truncated BPTT (docs/data.md).
 *
 * Token ids are int32 in [0, V). Text buffers are (pointer, length) pairs
 * and may hold NUL bytes. Buffers the library returns to the caller are
 * freed with recur_free(). */
#ifndef RECUR_DATA_H
#define RECUR_DATA_H

#include "recur/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- UTF-8 ------------------------------------------------------------- */

/* Longest UTF-8 encoding of one code point, in bytes. */
#define RECUR_UTF8_MAX 4

/* Decodes the code point that starts at bytes[*pos] (*pos < len) into
 * *codepoint and advances *pos past it. Strict (RFC 3629): rejects stray
 * continuation bytes, bytes that never occur in UTF-8 (0xf8..0xff), sequences
 * cut short by the end of the buffer or by a byte that is not a continuation
 * byte, overlong forms (including 0xc0/0xc1 leads), encoded surrogates
 * U+D800..U+DFFF and code points above U+10FFFF, each with RECUR_E_FORMAT and
 * a message naming the byte offset of the sequence, e.g.
 *   "invalid UTF-8 at byte 1234: unexpected continuation byte 0x9f".
 * On failure *pos is left at the start of the bad sequence. U+0000 is
 * valid. */
RECUR_API int recur_utf8_next(const char *bytes, size_t len, size_t *pos, uint32_t *codepoint);

/* Decodes a whole buffer. *codepoints receives a new array of *count code
 * points (free with recur_free; never NULL on success, even for len 0).
 * Pass codepoints = NULL to only validate and count. Errors as
 * recur_utf8_next, with the byte offset from the start of `bytes`. */
RECUR_API int recur_utf8_decode(const char *bytes, size_t len, uint32_t **codepoints,
                                size_t *count);

/* Encodes one code point into out[0..n) and returns n (1..4); not
 * NUL-terminated. A surrogate or a value above U+10FFFF returns
 * RECUR_E_INVALID and writes nothing. */
RECUR_API int recur_utf8_encode(uint32_t codepoint, char out[RECUR_UTF8_MAX]);

/* ---- Vocabulary -------------------------------------------------------- */

typedef enum recur_vocab_kind {
    /* Tokens are Unicode code points; the text must be valid UTF-8. */
    RECUR_VOCAB_CHARS,
    /* Tokens are the 256 byte values, id = byte value; any bytes accepted. */
    RECUR_VOCAB_BYTES
} recur_vocab_kind;

/* "char" and "byte": the value of a checkpoint's "vocab_kind" field. */
RECUR_API const char *recur_vocab_kind_name(recur_vocab_kind kind);
/* Parses "char" or "byte"; RECUR_E_INVALID naming the value otherwise. */
RECUR_API int recur_vocab_kind_parse(const char *name, recur_vocab_kind *out);

typedef struct recur_vocab recur_vocab;

/* Builds a vocabulary from text. RECUR_VOCAB_CHARS: the sorted set of
 * distinct code points of the text (id i = the i-th smallest); the text must
 * be valid UTF-8 (RECUR_E_FORMAT with the byte offset otherwise) and not
 * empty (RECUR_E_INVALID). RECUR_VOCAB_BYTES: always all 256 byte values;
 * the text is not read and may be empty or NULL. */
RECUR_API int recur_vocab_build(const char *text, size_t len, recur_vocab_kind kind,
                                recur_vocab **out);

/* A character vocabulary whose id i is codepoints[i] (order kept, not
 * sorted), e.g. for a model trained elsewhere. count >= 1; every value must be
 * a Unicode scalar value (no surrogate, <= U+10FFFF) and appear once
 * (RECUR_E_INVALID naming the entry otherwise). */
RECUR_API int recur_vocab_from_codepoints(const uint32_t *codepoints, size_t count,
                                          recur_vocab **out);

RECUR_API void recur_vocab_free(recur_vocab *vocab);

RECUR_API recur_vocab_kind recur_vocab_get_kind(const recur_vocab *vocab);
/* V: the number of tokens (256 for a byte vocabulary). */
RECUR_API int32_t recur_vocab_size(const recur_vocab *vocab);

/* The text of token `id` as a NUL-terminated string owned by the vocabulary
 * (valid until recur_vocab_free); NULL when id is outside [0, V). For a
 * character vocabulary it is the UTF-8 encoding of the code point; for a
 * byte vocabulary it is the single raw byte, so a byte >= 0x80 gives a
 * one-byte string that is not valid UTF-8 on its own (writing the tokens of
 * a sample one after another reproduces the byte text exactly). U+0000 and
 * byte 0 give "": use *len (optional, may be NULL) for the exact length. */
RECUR_API const char *recur_vocab_token(const recur_vocab *vocab, int32_t id, size_t *len);

/* 1 when a and b have the same kind and the same tokens in the same order
 * (models over them predict the same ids and can be mixed), else 0. */
RECUR_API int recur_vocab_equal(const recur_vocab *a, const recur_vocab *b);

/* The code point of token `id` (the byte value for a byte vocabulary);
 * UINT32_MAX when id is outside [0, V). */
RECUR_API uint32_t recur_vocab_codepoint(const recur_vocab *vocab, int32_t id);

/* The id of a code point, -1 when it is not in the vocabulary. O(1) below
 * U+0100, a binary search above. For a byte vocabulary `codepoint` is read
 * as a byte value: its id when < 256, else -1. */
RECUR_API int32_t recur_vocab_lookup(const recur_vocab *vocab, uint32_t codepoint);

/* Encodes text into token ids: *ids receives a new array of *count ids
 * (free with recur_free; never NULL on success). Errors: invalid UTF-8
 * (character vocabulary) -> RECUR_E_FORMAT with the byte offset; a character
 * not in the vocabulary -> RECUR_E_NOT_FOUND with a message such as
 *   "character 'Z' (U+005A) at character 12 (byte 15) is not in the
 *    vocabulary of 65 characters"
 * (characters that do not print are named by U+XXXX alone). */
RECUR_API int recur_vocab_encode(const recur_vocab *vocab, const char *text, size_t len,
                                 int32_t **ids, size_t *count);

/* Decodes ids into text: *text receives a new NUL-terminated buffer of *len
 * bytes (free with recur_free). An id outside [0, V) -> RECUR_E_INVALID
 * naming its position. */
RECUR_API int recur_vocab_decode(const recur_vocab *vocab, const int32_t *ids, size_t count,
                                 char **text, size_t *len);

/* The checkpoint's "vocab" field: a compact JSON array with one string per
 * token in id order, e.g. ["\n"," ","!","a"]. Non-ASCII characters are
 * written as raw UTF-8. A byte vocabulary writes byte b as the one-character
 * string U+00bb (its Latin-1 reading), so its array is always the 256
 * strings "\u0000" .. "\u00ff"; the kind itself is stored beside it (the
 * "vocab_kind" field, see recur_vocab_kind_name). *json receives a new
 * NUL-terminated buffer (free with recur_free). */
RECUR_API int recur_vocab_to_json(const recur_vocab *vocab, char **json);

/* Parses the "vocab" field written by recur_vocab_to_json, for the given
 * kind. Checks that the text is a JSON array (not empty) of strings; for
 * RECUR_VOCAB_CHARS that each string is exactly one code point and none
 * repeats an earlier one; for RECUR_VOCAB_BYTES that there are exactly 256
 * entries and entry b is U+00bb. Each violation -> RECUR_E_FORMAT naming the
 * entry index. */
RECUR_API int recur_vocab_from_json(const char *json, size_t len, recur_vocab_kind kind,
                                    recur_vocab **out);

/* ---- Text files and the split -------------------------------------------- */

/* Reads a whole file. *data receives a new buffer of *len bytes plus a
 * terminating NUL (free with recur_free). A missing file -> RECUR_E_NOT_FOUND,
 * another open or read failure (permission, a directory) -> RECUR_E_IO, an
 * empty file -> RECUR_E_FORMAT; every message names the path. */
RECUR_API int recur_text_read_file(const char *path, char **data, size_t *len);

/* The default share of tokens kept for validation. */
#define RECUR_VAL_FRACTION_DEFAULT 0.10

/* Splits n tokens into a training part [0, train_len) followed by a
 * validation part [train_len, n): val_len = round(n * val_fraction), the
 * last tokens of the sequence, with no overlap. val_fraction must lie in
 * [0, 1); 0 gives no validation part (val_len = 0). Each non-empty part
 * must hold at least one chunk of seq_len + 1 tokens. RECUR_E_INVALID with
 * the numbers otherwise. */
RECUR_API int recur_text_split(size_t n, double val_fraction, int seq_len, size_t *train_len,
                               size_t *val_len);

/* ---- Stream batching (char-rnn, truncated BPTT) ------------------------- */

/* A walk over a borrowed token array in chunks of T = seq_len steps.
 *
 * Training (recur_textstream_create): the n tokens are cut into B = batch
 * contiguous streams of L = n / B tokens, stream b starting at b * L (the
 * last n % B tokens are not used). A chunk takes T + 1 tokens from each
 * stream at the current offset o:
 *     tokens[t * B + b] = data[b * L + o + t],  t = 0..T     [T+1, B]
 * rows 0..T-1 are the inputs and rows 1..T the targets. Each call then
 * advances o by T, so chunk k+1 of stream b starts on the last token of
 * chunk k: the caller carries its hidden state from one chunk to the next.
 * When the chunk at o would run past the end of a stream (o + T + 1 > L),
 * the epoch ends: the epoch counter goes up, every stream restarts at its
 * start (o = 0) and the call reports *wrapped = 1, meaning that the chunk it
 * returns begins a new epoch and the hidden state must be reset before it.
 * An epoch has floor((L - 1) / T) chunks.
 *
 * Evaluation (recur_textstream_create_eval): one stream (B = 1) over all n
 * tokens with a zero initial state and the state carried to the end. Chunk
 * k holds tokens[k*T .. k*T + steps] with steps = min(T, n - 1 - k*T), so
 * the last chunk may be shorter than T and every token after the first is
 * a target exactly once. It never wraps: past the end, next reports
 * *steps = 0. There are ceil((n - 1) / T) chunks. */
typedef struct recur_textstream recur_textstream;

/* The full position: resume a run by restoring it (and the carried hidden
 * state) into a stream made with the same tokens, batch and seq_len. */
typedef struct recur_textstream_pos {
    int64_t epoch;  /* epoch of the last chunk returned, from 0 */
    int64_t offset; /* where the next chunk starts in every stream */
} recur_textstream_pos;

/* `tokens` (n ids) is borrowed and must outlive the stream. batch >= 1,
 * seq_len >= 1, and every stream must hold one chunk: n / batch >= seq_len
 * + 1 (RECUR_E_INVALID with the numbers otherwise). */
RECUR_API int recur_textstream_create(const int32_t *tokens, size_t n, int batch, int seq_len,
                                      recur_textstream **out);
/* One rank's share of a training layout, for data-parallel training
 * (docs/mpi.md): the streams first .. first + batch - 1 of the
 * total_batch streams that recur_textstream_create(tokens, n, total_batch,
 * seq_len) would make, each L = n / total_batch tokens long. Chunks are
 * [T+1, batch] with column j = stream first + j; epochs, wraps, positions
 * and chunks per epoch are those of the whole layout, so N shards of batch
 * b (first = r * b, total_batch = N * b) return, column block by column
 * block, exactly the chunks of one stream of batch N * b, and a position
 * saved by any shard restores into every other. 0 <= first, batch >= 1,
 * first + batch <= total_batch, n / total_batch >= seq_len + 1
 * (RECUR_E_INVALID with the numbers otherwise). recur_textstream_create is
 * the shard first = 0, batch = total_batch. */
RECUR_API int recur_textstream_create_shard(const int32_t *tokens, size_t n, int total_batch,
                                            int first, int batch, int seq_len,
                                            recur_textstream **out);
/* The evaluation walk; n >= 2 (one prediction at least). */
RECUR_API int recur_textstream_create_eval(const int32_t *tokens, size_t n, int seq_len,
                                           recur_textstream **out);
RECUR_API void recur_textstream_free(recur_textstream *stream);

/* Fills the next chunk into tokens[(T+1) * B] (time-major [T+1, B]) and
 * advances. *steps (optional) receives the number of time steps of the
 * chunk: always T in training; 1..T in evaluation, 0 once the walk is done
 * (then nothing is written; rows past steps + 1 are never written).
 * *wrapped (optional) receives 1 when this chunk starts a new epoch (reset
 * the hidden state before it), else 0; always 0 in evaluation. */
RECUR_API int recur_textstream_next(recur_textstream *stream, int32_t *tokens, int *steps,
                                    int *wrapped);

/* Chunks per epoch (training) or in the whole walk (evaluation). */
RECUR_API int64_t recur_textstream_chunks_per_epoch(const recur_textstream *stream);

RECUR_API recur_textstream_pos recur_textstream_get_pos(const recur_textstream *stream);
/* Restores a position from recur_textstream_get_pos. epoch >= 0 (0 for an
 * evaluation walk) and offset a multiple of seq_len, at most
 * chunks_per_epoch * seq_len; RECUR_E_INVALID otherwise (e.g. a checkpoint
 * made with another seq_len). */
RECUR_API int recur_textstream_set_pos(recur_textstream *stream, const recur_textstream_pos *pos);

#ifdef __cplusplus
}
#endif
#endif
