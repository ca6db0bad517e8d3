/* textstream.c - feeding token sequences to a character language model:
 * reading a text file, the train/validation split, and char-rnn's batching
 * for truncated BPTT (docs/data.md).
 *
 * Training: B contiguous streams of L = n / B tokens; each chunk is the
 * [T+1, B] window at offset o of every stream (inputs rows 0..T-1, targets
 * rows 1..T), consecutive chunks share one token so that the hidden state
 * carries over; the epoch ends when the next window would leave its stream.
 * Evaluation: one stream over all n tokens, chunks of up to T steps, the
 * last one partial, no wrap. The position is (epoch, offset): two int64
 * that a checkpoint saves to resume exactly. A shard (data-parallel
 * training) walks a contiguous block of the training streams of a larger
 * layout: same L, same chunks per epoch, same positions.
 * Leaves out: random start offsets and shuffling (char-rnn has neither). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "recur/data.h"

int recur_text_read_file(const char *path, char **data, size_t *len)
{
    if (!path || !data || !len)
        return recur__error(RECUR_E_INVALID, "recur_text_read_file: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f)
        return recur__error(errno == ENOENT ? RECUR_E_NOT_FOUND : RECUR_E_IO, "cannot open %s: %s",
                            path, strerror(errno));
    /* Grow by doubling, copying into the larger buffer (the allocation hook
     * has no realloc); the total copied is below twice the file size. */
    size_t cap = 1 << 16, size = 0;
    char *buf = recur__malloc(cap);
    int rc = RECUR_OK;
    if (!buf) {
        rc = recur__error(RECUR_E_NOMEM, "cannot allocate a buffer to read %s", path);
        goto fail;
    }
    for (;;) {
        if (size + 1 >= cap) {
            size_t bigger;
            char *grown = recur__mul_size(cap, 2, &bigger) ? recur__malloc(bigger) : NULL;
            if (!grown) {
                rc = recur__error(RECUR_E_NOMEM, "cannot allocate %zu bytes to read %s", cap * 2,
                                  path);
                goto fail;
            }
            memcpy(grown, buf, size);
            recur__free(buf);
            buf = grown;
            cap = bigger;
        }
        size_t got = fread(buf + size, 1, cap - 1 - size, f);
        size += got;
        if (got == 0 || size + 1 < cap) {
            if (ferror(f)) {
                rc = recur__error(RECUR_E_IO, "cannot read %s: %s", path, strerror(errno));
                goto fail;
            }
            if (feof(f))
                break;
        }
    }
    fclose(f);
    if (size == 0) {
        recur__free(buf);
        return recur__error(RECUR_E_FORMAT, "%s is empty", path);
    }
    buf[size] = '\0';
    *data = buf;
    *len = size;
    return RECUR_OK;
fail:
    recur__free(buf);
    fclose(f);
    return rc;
}

int recur_text_split(size_t n, double val_fraction, int seq_len, size_t *train_len, size_t *val_len)
{
    if (!train_len || !val_len)
        return recur__error(RECUR_E_INVALID, "recur_text_split: NULL argument");
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return recur__error(RECUR_E_INVALID, "val_fraction %g is outside [0, 1)", val_fraction);
    if (seq_len < 1)
        return recur__error(RECUR_E_INVALID, "seq_len %d must be at least 1", seq_len);
    size_t chunk = (size_t)seq_len + 1;
    size_t val = (size_t)floor((double)n * val_fraction + 0.5);
    if (val > n)
        val = n;
    size_t train = n - val;
    if (train < chunk)
        return recur__error(
            RECUR_E_INVALID,
            "the training part has %zu tokens (%zu in all, val_fraction %g), fewer than "
            "one chunk of seq_len + 1 = %zu",
            train, n, val_fraction, chunk);
    if (val_fraction > 0.0 && val < chunk)
        return recur__error(
            RECUR_E_INVALID,
            "the validation part has %zu tokens (%zu in all, val_fraction %g), fewer than "
            "one chunk of seq_len + 1 = %zu; raise val_fraction or set it to 0",
            val, n, val_fraction, chunk);
    *train_len = train;
    *val_len = val;
    return RECUR_OK;
}

struct recur_textstream {
    const int32_t *tokens; /* [n], borrowed */
    size_t n;
    int batch;         /* B: streams this walk returns */
    int first;         /* index of its first stream in the whole layout */
    int seq_len;       /* T */
    int eval;          /* evaluation walk: B = 1, partial last chunk */
    size_t stream_len; /* L = n / (streams of the whole layout) */
    int64_t chunks;    /* per epoch (training) or in the walk (evaluation) */
    int64_t epoch;
    int64_t offset; /* start of the next chunk within every stream */
};

static int stream_alloc(const int32_t *tokens, size_t n, int total_batch, int first, int batch,
                        int seq_len, int eval, recur_textstream **out)
{
    recur_textstream *s = recur__calloc(1, sizeof *s);
    if (!s)
        return recur__error(RECUR_E_NOMEM, "cannot allocate a text stream");
    s->tokens = tokens;
    s->n = n;
    s->batch = batch;
    s->first = first;
    s->seq_len = seq_len;
    s->eval = eval;
    s->stream_len = n / (size_t)total_batch;
    s->chunks = eval ? (int64_t)((n - 2) / (size_t)seq_len + 1)
                     : (int64_t)((s->stream_len - 1) / (size_t)seq_len);
    *out = s;
    return RECUR_OK;
}

int recur_textstream_create_shard(const int32_t *tokens, size_t n, int total_batch,
                                  int first, int batch, int seq_len, recur_textstream **out)
{
    if (!tokens || !out)
        return recur__error(RECUR_E_INVALID, "recur_textstream_create: NULL argument");
    if (total_batch < 1 || seq_len < 1)
        return recur__error(RECUR_E_INVALID,
                            "text stream: batch %d and seq_len %d must be at least 1",
                            total_batch, seq_len);
    if (batch < 1 || first < 0 || first > total_batch - batch)
        return recur__error(RECUR_E_INVALID,
                            "text stream shard: streams %d..%d (first %d, batch %d) are not "
                            "within the %d streams of the layout",
                            first, first + batch - 1, first, batch, total_batch);
    if (n / (size_t)total_batch < (size_t)seq_len + 1)
        return recur__error(
            RECUR_E_INVALID,
            "text of %zu tokens is too short for %d streams of seq_len + 1 = %d tokens "
            "(needs at least %zu); lower batch or seq_len",
            n, total_batch, seq_len + 1, (size_t)total_batch * ((size_t)seq_len + 1));
    return stream_alloc(tokens, n, total_batch, first, batch, seq_len, 0, out);
}

int recur_textstream_create(const int32_t *tokens, size_t n, int batch, int seq_len,
                            recur_textstream **out)
{
    return recur_textstream_create_shard(tokens, n, batch, 0, batch, seq_len, out);
}

int recur_textstream_create_eval(const int32_t *tokens, size_t n, int seq_len,
                                 recur_textstream **out)
{
    if (!tokens || !out)
        return recur__error(RECUR_E_INVALID, "recur_textstream_create_eval: NULL argument");
    if (seq_len < 1)
        return recur__error(RECUR_E_INVALID, "text stream: seq_len %d must be at least 1", seq_len);
    if (n < 2)
        return recur__error(RECUR_E_INVALID,
                            "evaluation text of %zu tokens has nothing to predict (needs 2)", n);
    return stream_alloc(tokens, n, 1, 0, 1, seq_len, 1, out);
}

void recur_textstream_free(recur_textstream *stream)
{
    recur__free(stream);
}

int recur_textstream_next(recur_textstream *stream, int32_t *tokens, int *steps, int *wrapped)
{
    if (!stream || !tokens)
        return recur__error(RECUR_E_INVALID, "recur_textstream_next: NULL argument");
    recur_textstream *s = stream;
    size_t T = (size_t)s->seq_len, B = (size_t)s->batch;
    size_t o = (size_t)s->offset;
    size_t chunk_steps = T;
    int restarted = 0;
    if (s->eval) {
        chunk_steps = o + 1 < s->n ? s->n - 1 - o : 0;
        if (chunk_steps > T)
            chunk_steps = T;
    } else if (o + T + 1 > s->stream_len) {
        s->epoch++;
        o = 0;
        restarted = 1;
    }
    if (chunk_steps > 0) {
        /* tokens [T+1, B]: row t, column b = data[(first + b) * L + o + t] */
        for (size_t b = 0; b < B; b++) {
            const int32_t *src = s->tokens + ((size_t)s->first + b) * s->stream_len + o;
            for (size_t t = 0; t <= chunk_steps; t++)
                tokens[t * B + b] = src[t];
        }
        s->offset = (int64_t)(o + T);
    }
    if (steps)
        *steps = (int)chunk_steps;
    if (wrapped)
        *wrapped = restarted;
    return RECUR_OK;
}

int64_t recur_textstream_chunks_per_epoch(const recur_textstream *stream)
{
    return stream->chunks;
}

recur_textstream_pos recur_textstream_get_pos(const recur_textstream *stream)
{
    return (recur_textstream_pos){stream->epoch, stream->offset};
}

int recur_textstream_set_pos(recur_textstream *stream, const recur_textstream_pos *pos)
{
    if (!stream || !pos)
        return recur__error(RECUR_E_INVALID, "recur_textstream_set_pos: NULL argument");
    int64_t T = stream->seq_len, last = stream->chunks * T;
    if (pos->epoch < 0 || (stream->eval && pos->epoch != 0))
        return recur__error(RECUR_E_INVALID, "text stream position: epoch %lld is invalid%s",
                            (long long)pos->epoch,
                            stream->eval ? " for an evaluation walk (must be 0)" : "");
    if (pos->offset < 0 || pos->offset % T != 0 || pos->offset > last)
        return recur__error(
            RECUR_E_INVALID,
            "text stream position: offset %lld is not a multiple of seq_len %d in [0, %lld] "
            "(saved with another seq_len, batch or text?)",
            (long long)pos->offset, stream->seq_len, (long long)last);
    stream->epoch = pos->epoch;
    stream->offset = pos->offset;
    return RECUR_OK;
}
