/* recur/bpe.h - byte-pair encoding (Sennrich et al. 2016) over bytes, as
 * GPT-2 does: every byte string, whatever it holds, tokenizes, and the bytes
 * of the tokens of recur_bpe_encode(s) joined are s. For UTF-8 text s,
 * recur_bpe_decode(recur_bpe_encode(s)) == s byte for byte.
 *
 * Ids: 0 <pad>, 1 <s> (begin), 2 </s> (end), 3 + b for the single byte b
 * (0..255), then one id per learned merge in the order learned (id 259 + i
 * joins the two tokens of merge i). Merges never cross a piece boundary:
 * the text is first cut into pieces, each either a run of letters or digits
 * with at most one space before it, a run of other non-space bytes with at
 * most one space before it, or a run of spaces (at the end of a text all of
 * them; elsewhere all but the last, which joins the next piece). "Space" is
 * the byte 0x20 only (tabs and newlines are "other" bytes), letters and
 * digits are ASCII's, and every byte >= 0x80 counts as a letter, so a word
 * with accents or in any script stays one piece. The specials never come
 * out of recur_bpe_encode. docs/translate-tokens.md describes the JSON form
 * kept in checkpoints.
 *
 * A recur_bpe may be shared between threads: encoding keeps a cache of
 * encoded pieces inside it, guarded by a mutex. */
#ifndef RECUR_BPE_H
#define RECUR_BPE_H

#include "recur/core.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { RECUR_BPE_PAD = 0, RECUR_BPE_BOS = 1, RECUR_BPE_EOS = 2, RECUR_BPE_FIRST_BYTE = 3,
       RECUR_BPE_BASE = 259 /* specials + bytes: the smallest vocabulary */ };

typedef struct recur_bpe recur_bpe;

/* Learns merges from texts[0..count) (lens[i] bytes each; lens may be NULL
 * for NUL-terminated texts; the texts are only read during the call): each
 * step merges the adjacent pair of tokens that occurs most often in all
 * pieces (every position counts, so "aaa" holds the pair a a twice), every
 * occurrence left to right, until the vocabulary holds vocab_size tokens or
 * no pair occurs twice. Ties between equally frequent pairs go to the pair
 * with the smaller first id, then the smaller second id (deterministic).
 * RECUR_E_INVALID for vocab_size < RECUR_BPE_BASE or > 1 << 20 or a NULL
 * text. */
RECUR_API int recur_bpe_learn(const char *const *texts, const size_t *lens, size_t count,
                              int vocab_size, recur_bpe **out);
RECUR_API void recur_bpe_free(recur_bpe *bpe);

/* Tokens in the vocabulary (RECUR_BPE_BASE + merges). */
RECUR_API int recur_bpe_size(const recur_bpe *bpe);
/* The bytes of token id (*len, when len is not NULL, receives their count;
 * specials give their names, "<pad>", "<s>", "</s>"), followed by a NUL that
 * *len does not count (a byte token may itself be NUL). Owned by bpe, valid
 * until recur_bpe_free. NULL (and *len 0) for an id outside the vocabulary. */
RECUR_API const char *recur_bpe_token(const recur_bpe *bpe, int32_t id, size_t *len);

/* text[0..len) -> *ids (a new array, free with recur_free; NULL when *n is
 * 0), *n tokens: within each piece the merges apply by rank (the earliest
 * learned first), every occurrence left to right, as in learning. Never fails on
 * content (any bytes encode, NUL included); RECUR_E_NOMEM, or
 * RECUR_E_INVALID for a NULL argument. */
RECUR_API int recur_bpe_encode(const recur_bpe *bpe, const char *text, size_t len, int32_t **ids,
                               size_t *n);
/* BPE-dropout (Provilkov et al. 2020), for training: as recur_bpe_encode,
 * except that each merge, when its turn comes, is skipped with probability
 * dropout (draws from rng); a skipped occurrence stays two tokens unless a
 * neighbouring merge later makes it part of another pair. The tokens still
 * join to text, so decoding gives text back; dropout 0 gives exactly
 * recur_bpe_encode's tokens (and draws nothing), dropout 1 the single
 * bytes. The same rng state gives the same tokens. RECUR_E_INVALID for a
 * NULL argument (rng may be NULL when dropout is 0) or dropout outside
 * [0, 1]. */
RECUR_API int recur_bpe_encode_dropout(const recur_bpe *bpe, const char *text, size_t len,
                                       float dropout, recur_rng *rng, int32_t **ids, size_t *n);
/* ids -> *text (new, NUL-terminated, free with recur_free), *len bytes (len
 * may be NULL; the text may hold NUL bytes). Specials are skipped. Bytes
 * that do not form valid UTF-8 (from ids that no UTF-8 text encodes to, or
 * from encoding bytes that were not UTF-8) become U+FFFD, one for each
 * maximal ill-formed subpart as Python's decode("utf-8", "replace") does,
 * so the text is always valid UTF-8. RECUR_E_INVALID names an id outside
 * the vocabulary and its position. */
RECUR_API int recur_bpe_decode(const recur_bpe *bpe, const int32_t *ids, size_t n, char **text,
                               size_t *len);

/* JSON form {"format":1,"merges":[[a,b],...]} (a new NUL-terminated
 * string, free with recur_free), and back from json[0..len): RECUR_E_FORMAT
 * names what is wrong (bad JSON, a missing or unknown key, a format other
 * than 1, a merge that is not a pair of integers, refers to a special id or
 * one not yet defined, or repeats an earlier merge, ...). A vocabulary read
 * back encodes exactly as the one written. */
RECUR_API int recur_bpe_to_json(const recur_bpe *bpe, char **json);
RECUR_API int recur_bpe_from_json(const char *json, size_t len, recur_bpe **out);

#ifdef __cplusplus
}
#endif
#endif
