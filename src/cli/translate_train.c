/* translate_train.c - `recur translate train`: learns a joint BPE on the
 * training part of a pair file (plus --extra pairs), then trains the
 * attention encoder-decoder (include/recur/seq2seq.h) with the shared
 * trainer (trainer.h: loop, clipping, optimizer, schedule, progress line,
 * metrics, checkpoints, --resume, Ctrl-C).
 *
 * Data: the training part of --data (translate_split_of) and every pair of
 * --extra, encoded once; pairs longer than --max-len subwords on either
 * side are left out. Each epoch walks them in a permutation drawn from
 * (seed, epoch), cut into windows of 64 batches sorted by length (so a
 * batch holds sentences of similar length: by the source's length, or with
 * --batch-by longer by the longer side's, then the source's), the batches
 * of the epoch then shuffled; the data position saved in checkpoints is
 * (epoch, batch).
 * Validation: the mean per-token negative log-likelihood of the validation
 * part (teacher-forced) and, as the metric, corpus BLEU of greedy
 * translations of its first --val-sentences pairs.
 *
 * MPI (docs/mpi.md): with N ranks and --batch B, the epochs are planned
 * for the global batch of N*B pairs (exactly as one process with --batch
 * N*B plans them) and rank r trains on pairs [r*B, (r+1)*B) of each global
 * batch; the loss is a mean over target tokens, so each rank weighs its
 * share by the tokens it holds. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "trainer.h"
#include "translate_cli.h"

#define FROZEN (CLI_SAVED | CLI_FROZEN)

typedef struct tt_opts {
    const char *data, *extra, *source, *target, *cell, *attention, *batch_by, *init;
    const char *bpe_dropout_sides;
    int vocab, max_len, embed, hidden, layers, decoder_layers, unidirectional, batch, repeat;
    double dropout, embed_dropout, word_dropout, hidden_dropout, label_smoothing, bpe_dropout;
    int tie_embeddings, lexical, input_feeding, layer_norm;
    int64_t val_sentences;
    int memory, memory_max_chars;
    double memory_threshold;
} tt_opts;

/* Encoded training pairs, all in one id pool; with --bpe-dropout each epoch
 * segments them afresh into the epoch pool. */
typedef struct tt_data {
    size_t count;
    int32_t **src, **tgt; /* [count] into the pools: this epoch's segmentation */
    int *src_len, *tgt_len;
    int32_t *pool;
    /* --bpe-dropout: each example's texts and full segmentation (in pool) */
    const char **src_text, **tgt_text;
    int32_t **full_src, **full_tgt;
    int *full_src_len, *full_tgt_len;
    int32_t *epoch_pool;
    size_t epoch_pool_cap;
    size_t *epoch_at; /* [2 * count] offsets into epoch_pool, SIZE_MAX: the full segmentation */
} tt_data;

typedef struct tt_run {
    const char *cmd;
    tt_opts *o;
    trainer_options *to;
    trainer *t;
    tr_model model;
    recur_train_state *resumed;
    tr_model init;         /* --init's model, until init_model takes it over */
    tr_pairs train, extra, val;
    tt_data data;
    tr_batch_buf buf;
    int64_t epoch, index;  /* data position: the next (global) batch */
    int64_t spe;           /* batches an epoch */
    size_t global_batch;   /* MPI: --batch x ranks (--batch for one process) */
    int64_t plan_epoch;    /* the epoch whose plan is in order/starts */
    size_t *order;         /* [count] examples of the epoch, in batch-forming order */
    size_t *starts;        /* [spe] first position in order of each batch, shuffled */
    int32_t **bsrc, **btgt;
    int *bsrc_len, *btgt_len;
    uint64_t data_hash;
    tr_decode val_decode;
} tt_run;

static const char *const cell_choices[] = {"gru", "lstm", "rnn_tanh", "rnn_relu", NULL};
static const char *const attention_choices[] = {"general", "dot", "additive", NULL};
static const char *const batch_by_choices[] = {"source", "longer", NULL};
static const char *const sides_choices[] = {"source", "both", NULL};

enum { STREAM_PERM = 0x7a11, STREAM_BPE = 0xb9e0, WINDOW_BATCHES = 64 };

/* ---- data ------------------------------------------------------------------------- */

static void data_free(tt_data *d)
{
    free(d->src);
    free(d->tgt);
    free(d->src_len);
    free(d->tgt_len);
    free(d->pool);
    free(d->src_text);
    free(d->tgt_text);
    free(d->full_src);
    free(d->full_tgt);
    free(d->full_src_len);
    free(d->full_tgt_len);
    free(d->epoch_pool);
    free(d->epoch_at);
    memset(d, 0, sizeof *d);
}

/* Encodes the training pairs (and extras) with the model's BPE, keeping
 * those within --max-len; fingerprints what it kept. */
static int encode_data(tt_run *r)
{
    const tr_pairs *parts[2] = {&r->train, &r->extra};
    const size_t repeat = (size_t)r->o->repeat;
    const size_t total = repeat * r->train.count + r->extra.count;
    tt_data *d = &r->data;
    d->src = malloc(total * sizeof *d->src);
    d->tgt = malloc(total * sizeof *d->tgt);
    d->src_len = malloc(total * sizeof *d->src_len);
    d->tgt_len = malloc(total * sizeof *d->tgt_len);
    d->src_text = malloc(total * sizeof *d->src_text);
    d->tgt_text = malloc(total * sizeof *d->tgt_text);
    size_t *offsets = malloc(2 * total * sizeof *offsets);
    size_t pool_cap = 1 << 20, pool_used = 0, dropped = 0, empty = 0;
    d->pool = malloc(pool_cap * sizeof *d->pool);
    if (!d->src || !d->tgt || !d->src_len || !d->tgt_len || !d->src_text || !d->tgt_text ||
        !offsets || !d->pool) {
        free(offsets);
        return cli_fail(r->cmd, "", "out of memory encoding the pairs");
    }
    uint64_t h = 0xcbf29ce484222325ull;
    size_t kept_train = 0; /* the first kept_train pairs are --data's */
    for (int part = 0; part < 2; part++)
        for (size_t i = 0; i < parts[part]->count; i++) {
            int32_t *ids[2] = {NULL, NULL};
            size_t n[2] = {0, 0};
            const char *text[2] = {parts[part]->src[i], parts[part]->tgt[i]};
            for (int side = 0; side < 2; side++)
                if (translate_encode(&r->model, text[side], &ids[side], &n[side])) {
                    recur_free(ids[0]);
                    free(offsets);
                    return cli_fail(r->cmd, "", "encoding line %lld: %s",
                                    (long long)parts[part]->line[i], recur_last_error());
                }
            if (n[0] == 0 || n[1] == 0 || n[0] > (size_t)r->o->max_len ||
                n[1] + 1 > (size_t)r->o->max_len) {
                dropped += n[0] && n[1];
                empty += !n[0] || !n[1];
                recur_free(ids[0]);
                recur_free(ids[1]);
                continue;
            }
            if (pool_used + n[0] + n[1] > pool_cap) {
                pool_cap = 2 * pool_cap + n[0] + n[1];
                int32_t *p = realloc(d->pool, pool_cap * sizeof *p);
                if (!p) {
                    recur_free(ids[0]);
                    recur_free(ids[1]);
                    free(offsets);
                    return cli_fail(r->cmd, "", "out of memory encoding the pairs");
                }
                d->pool = p;
            }
            offsets[2 * d->count] = pool_used;
            memcpy(d->pool + pool_used, ids[0], n[0] * sizeof *ids[0]);
            pool_used += n[0];
            offsets[2 * d->count + 1] = pool_used;
            memcpy(d->pool + pool_used, ids[1], n[1] * sizeof *ids[1]);
            pool_used += n[1];
            d->src_len[d->count] = (int)n[0];
            d->tgt_len[d->count] = (int)n[1];
            d->src_text[d->count] = text[0];
            d->tgt_text[d->count] = text[1];
            d->count++;
            kept_train += part == 0;
            for (int side = 0; side < 2; side++) {
                for (size_t k = 0; k < n[side]; k++)
                    h = (h ^ (uint64_t)(uint32_t)ids[side][k]) * 0x100000001b3ull;
                h = (h ^ 0xffffffffull) * 0x100000001b3ull;
                recur_free(ids[side]);
            }
        }
    for (size_t i = 0; i < d->count; i++) {
        d->src[i] = d->pool + offsets[2 * i];
        d->tgt[i] = d->pool + offsets[2 * i + 1];
    }
    free(offsets);
    /* --repeat: the sentence pairs again, after the others (the epoch's
     * permutation mixes them) */
    for (size_t k = 1; k < repeat; k++)
        for (size_t i = 0; i < kept_train; i++) {
            d->src[d->count] = d->src[i];
            d->tgt[d->count] = d->tgt[i];
            d->src_len[d->count] = d->src_len[i];
            d->tgt_len[d->count] = d->tgt_len[i];
            d->src_text[d->count] = d->src_text[i];
            d->tgt_text[d->count] = d->tgt_text[i];
            d->count++;
        }
    if (r->o->bpe_dropout > 0.0 && d->count) {
        const size_t c = d->count;
        d->full_src = malloc(c * sizeof *d->full_src);
        d->full_tgt = malloc(c * sizeof *d->full_tgt);
        d->full_src_len = malloc(c * sizeof *d->full_src_len);
        d->full_tgt_len = malloc(c * sizeof *d->full_tgt_len);
        d->epoch_at = malloc(2 * c * sizeof *d->epoch_at);
        if (!d->full_src || !d->full_tgt || !d->full_src_len || !d->full_tgt_len || !d->epoch_at)
            return cli_fail(r->cmd, "", "out of memory encoding the pairs");
        memcpy(d->full_src, d->src, c * sizeof *d->src);
        memcpy(d->full_tgt, d->tgt, c * sizeof *d->tgt);
        memcpy(d->full_src_len, d->src_len, c * sizeof *d->src_len);
        memcpy(d->full_tgt_len, d->tgt_len, c * sizeof *d->tgt_len);
    }
    r->data_hash = h;
    if (d->count == 0)
        return cli_fail(r->cmd, "Raise --max-len.", "no training pair is within --max-len %d "
                        "subwords", r->o->max_len);
    if ((dropped || empty) && dist_is_main())
        fprintf(stderr, "recur %s: left out %zu pairs longer than --max-len %d subwords%s\n",
                r->cmd, dropped, r->o->max_len, empty ? " and pairs with an empty side" : "");
    return CLI_OK;
}

/* --memory: the training part of --data becomes the model's translation
 * memory (before its sources are extended). */
static int build_memory(tt_run *r)
{
    if (recur_memory_new(r->train.src, r->train.tgt, r->train.count, &r->model.memory))
        return cli_fail(r->cmd, "", "building the translation memory: %s", recur_last_error());
    /* The memory goes into the checkpoint's header, which safetensors
     * readers cap: refuse now rather than save models no one can load. */
    char *json = NULL;
    if (recur_memory_to_json(r->model.memory, &json))
        return cli_fail(r->cmd, "", "the translation memory: %s", recur_last_error());
    size_t bytes = 0; /* in the header, a JSON string inside the header's JSON */
    for (const char *p = json; *p; p++)
        bytes += *p == '"' || *p == '\\' ? 2 : (unsigned char)*p < 0x20 ? 6 : 1;
    recur_free(json);
    const size_t limit = RECUR_ST_MAX_HEADER / 10 * 9; /* the rest for the BPE and tensors */
    if (bytes > limit)
        return cli_fail(r->cmd, "Train on fewer pairs, or leave out --memory.",
                        "the translation memory of %zu pairs would take %zu bytes of the "
                        "checkpoint's header, more than the %zu it may (safetensors headers "
                        "are limited to %u bytes)", r->train.count, bytes, limit,
                        RECUR_ST_MAX_HEADER);
    r->model.memory_threshold = r->o->memory_threshold;
    r->model.memory_max_chars = r->o->memory_max_chars;
    return CLI_OK;
}

/* Learns the BPE on both sides of the training pairs and the extras (with
 * --memory, the extended sources). */
static int learn_bpe(tt_run *r)
{
    const size_t n = 2 * (r->train.count + r->extra.count);
    const char **texts = malloc(n * sizeof *texts);
    if (!texts)
        return cli_fail(r->cmd, "", "out of memory");
    size_t k = 0;
    const tr_pairs *parts[2] = {&r->train, &r->extra};
    for (int part = 0; part < 2; part++)
        for (size_t i = 0; i < parts[part]->count; i++) {
            texts[k++] = parts[part]->src[i];
            texts[k++] = parts[part]->tgt[i];
        }
    int status = recur_bpe_learn(texts, NULL, n, r->o->vocab, &r->model.bpe);
    free(texts);
    if (status)
        return cli_fail(r->cmd, "", "learning the BPE: %s", recur_last_error());
    return CLI_OK;
}

/* qsort has no context argument: the data being sorted (one sort at a time). */
static const tt_data *sort_data;
static int by_source_length(const void *a, const void *b)
{
    const size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const int li = sort_data->src_len[i], lj = sort_data->src_len[j];
    return li != lj ? (li < lj ? -1 : 1) : (i < j ? -1 : i > j);
}

/* The longer side first: a batch then pads little in the decoder too (with
 * the dictionary's short pairs, sorting by source alone left about half the
 * target rows padding). */
static int by_longer_side(const void *a, const void *b)
{
    const size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const int si = sort_data->src_len[i], sj = sort_data->src_len[j];
    const int ti = sort_data->tgt_len[i] + 1, tj = sort_data->tgt_len[j] + 1; /* and </s> */
    const int mi = si > ti ? si : ti, mj = sj > tj ? sj : tj;
    if (mi != mj)
        return mi < mj ? -1 : 1;
    return by_source_length(a, b);
}

/* --bpe-dropout: segments every example's source (--bpe-dropout-sides both:
 * and target) afresh for epoch r->epoch (draws from (seed, epoch), so a
 * resumed run segments as the first did). A side that comes out longer than
 * --max-len keeps its full segmentation. */
static int resegment(tt_run *r)
{
    tt_data *d = &r->data;
    const float p = (float)r->o->bpe_dropout;
    const size_t max_len = (size_t)r->o->max_len;
    recur_rng rng;
    recur_rng_seed(&rng, ((uint64_t)r->to->seed * 0x9e3779b97f4a7c15ull) ^ STREAM_BPE ^
                             ((uint64_t)r->epoch << 20));
    const int sides = strcmp(r->o->bpe_dropout_sides, "both") == 0 ? 2 : 1;
    size_t used = 0;
    for (size_t i = 0; i < d->count; i++) {
        d->epoch_at[2 * i + 1] = SIZE_MAX;
        for (int side = 0; side < sides; side++) {
            const char *text = side ? d->tgt_text[i] : d->src_text[i];
            int32_t *ids = NULL;
            size_t n = 0;
            int status = recur_bpe_encode_dropout(r->model.bpe, text, strlen(text), p, &rng, &ids,
                                                  &n);
            if (status)
                return status;
            d->epoch_at[2 * i + (size_t)side] = SIZE_MAX;
            if (n + (size_t)side <= max_len) {
                if (used + n > d->epoch_pool_cap) {
                    const size_t cap = 2 * d->epoch_pool_cap + n + (1 << 20);
                    int32_t *pool = realloc(d->epoch_pool, cap * sizeof *pool);
                    if (!pool) {
                        recur_free(ids);
                        return recur_set_error(RECUR_E_NOMEM, "out of memory segmenting the "
                                               "pairs (--bpe-dropout)");
                    }
                    d->epoch_pool = pool;
                    d->epoch_pool_cap = cap;
                }
                memcpy(d->epoch_pool + used, ids, n * sizeof *ids);
                d->epoch_at[2 * i + (size_t)side] = used;
                (side ? d->tgt_len : d->src_len)[i] = (int)n;
                used += n;
            }
            recur_free(ids);
        }
    }
    for (size_t i = 0; i < d->count; i++) {
        const size_t s = d->epoch_at[2 * i], t = d->epoch_at[2 * i + 1];
        d->src[i] = s == SIZE_MAX ? d->full_src[i] : d->epoch_pool + s;
        d->tgt[i] = t == SIZE_MAX ? d->full_tgt[i] : d->epoch_pool + t;
        if (s == SIZE_MAX)
            d->src_len[i] = d->full_src_len[i];
        if (t == SIZE_MAX)
            d->tgt_len[i] = d->full_tgt_len[i];
    }
    return RECUR_OK;
}

/* The order of epoch e's examples and its batches (see the file comment). */
static int plan_epoch(tt_run *r)
{
    int status = r->o->bpe_dropout > 0.0 ? resegment(r) : RECUR_OK;
    if (status)
        return status;
    const size_t N = r->data.count, B = r->global_batch;
    recur_rng rng;
    recur_rng_seed(&rng, ((uint64_t)r->to->seed * 0x9e3779b97f4a7c15ull) ^ STREAM_PERM ^
                             ((uint64_t)r->epoch << 20));
    for (size_t i = 0; i < N; i++)
        r->order[i] = i;
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = (size_t)recur_rng_below(&rng, (uint64_t)i + 1), tmp = r->order[i];
        r->order[i] = r->order[j];
        r->order[j] = tmp;
    }
    sort_data = &r->data;
    const size_t window = WINDOW_BATCHES * B;
    for (size_t w = 0; w < N; w += window)
        qsort(r->order + w, N - w < window ? N - w : window, sizeof *r->order,
              strcmp(r->o->batch_by, "source") == 0 ? by_source_length : by_longer_side);
    for (int64_t b = 0; b < r->spe; b++)
        r->starts[b] = (size_t)b * B;
    for (int64_t i = r->spe - 1; i > 0; i--) {
        size_t j = (size_t)recur_rng_below(&rng, (uint64_t)i + 1), tmp = r->starts[i];
        r->starts[i] = r->starts[j];
        r->starts[j] = tmp;
    }
    r->plan_epoch = r->epoch;
    return RECUR_OK;
}

/* ---- trainer callbacks ---------------------------------------------------------- */

/* trainer_task.step: the gradient of the mean loss per target token of the
 * next batch (MPI: of this rank's share, weighed by its tokens). */
static int tt_step(void *ctx, recur_rng *rng, double *loss, double *items)
{
    tt_run *r = ctx;
    int status = r->plan_epoch != r->epoch ? plan_epoch(r) : RECUR_OK;
    if (status)
        return status;
    const size_t first = r->starts[r->index], N = r->data.count;
    const size_t size = N - first < r->global_batch ? N - first : r->global_batch;
    size_t lo, hi, tokens = 0, all_tokens = 0; /* target tokens: each sentence's and </s> */
    dist_share(size, (size_t)r->o->batch, &lo, &hi);
    for (size_t b = 0; b < size; b++) {
        const size_t e = r->order[first + b];
        all_tokens += (size_t)r->data.tgt_len[e] + 1;
        if (b < lo || b >= hi)
            continue;
        r->bsrc[b - lo] = r->data.src[e];
        r->btgt[b - lo] = r->data.tgt[e];
        r->bsrc_len[b - lo] = r->data.src_len[e];
        r->btgt_len[b - lo] = r->data.tgt_len[e];
        tokens += (size_t)r->data.tgt_len[e] + 1;
    }
    if (++r->index >= r->spe) {
        r->epoch++;
        r->index = 0;
    }
    recur_rng own;
    rng = dist_share_rng(rng, &own);
    recur_seq2seq_zero_grad(r->model.net);
    *items = (double)tokens;
    *loss = 0.0;
    if (hi == lo)
        return RECUR_OK; /* MPI: nothing of this batch is ours: no gradient, no loss */
    status = translate_batch_fill(&r->buf, (int)(hi - lo), r->bsrc, r->bsrc_len, r->btgt,
                                  r->btgt_len);
    if (status)
        return status;
    status = recur_seq2seq_train_step(r->model.net, &r->buf.batch, (float)r->o->label_smoothing,
                                      rng, loss, NULL, NULL);
    if (status == RECUR_OK)
        dist_weigh_share(recur_seq2seq_grads(r->model.net), recur_seq2seq_size(r->model.net),
                         loss, tokens, all_tokens);
    return status;
}

static double tt_epoch(void *ctx)
{
    const tt_run *r = ctx;
    return (double)r->epoch + (double)r->index / (double)r->spe;
}

static int tt_validate(void *ctx, double *loss, double *metric)
{
    tt_run *r = ctx;
    /* MPI: rank 0 validates in batches of the whole batch */
    const int batch = (int)r->global_batch;
    int status = translate_nll(&r->model, 1, &r->val, 0, batch, loss, NULL);
    if (status)
        return status;
    tr_scores s;
    status = translate_score(&r->model, 1, &r->val, (size_t)r->o->val_sentences, &r->val_decode,
                             batch, &s);
    *metric = s.bleu.score;
    translate_scores_free(&s);
    return status;
}

static int tt_save(void *ctx, const char *path, recur_train_state *ts)
{
    tt_run *r = ctx;
    ts->data_tokens = r->data.count;
    ts->data_hash = r->data_hash;
    ts->data_position_count = 2;
    ts->data_position[0] = r->epoch;
    ts->data_position[1] = r->index;
    recur_st_writer *w = NULL;
    int status = recur_st_writer_create(&w);
    if (status == RECUR_OK && (status = translate_model_write(&r->model, w)) == RECUR_OK &&
        (status = recur_train_state_write(w, ts, recur_seq2seq_size(r->model.net))) == RECUR_OK)
        status = recur_st_writer_save(w, path);
    recur_st_writer_free(w);
    return status;
}

/* ---- setup ------------------------------------------------------------------------ */

static void free_run(tt_run *r)
{
    translate_model_free(&r->model);
    translate_model_free(&r->init);
    recur_train_state_free(r->resumed);
    translate_pairs_free(&r->train);
    translate_pairs_free(&r->extra);
    translate_pairs_free(&r->val);
    data_free(&r->data);
    translate_batch_free(&r->buf);
    free(r->order);
    free(r->starts);
    free(r->bsrc);
    free(r->btgt);
    free(r->bsrc_len);
    free(r->btgt_len);
    trainer_free(r->t);
}

static int make_model(tt_run *r)
{
    const tt_opts *o = r->o;
    recur_seq2seq_config c = recur_seq2seq_config_default();
    recur_cell_parse(o->cell, &c.cell);
    recur_attention_parse(o->attention, &c.attention);
    c.src_vocab_size = c.tgt_vocab_size = recur_bpe_size(r->model.bpe);
    c.embedding_size = o->embed;
    c.hidden_size = o->hidden;
    c.encoder_layers = o->layers;
    c.decoder_layers = o->decoder_layers;
    c.bidirectional = !o->unidirectional;
    c.dropout = (float)o->dropout;
    c.embedding_dropout = (float)o->embed_dropout;
    c.word_dropout = (float)o->word_dropout;
    c.hidden_dropout = (float)o->hidden_dropout;
    c.tie_embeddings = o->tie_embeddings;
    c.lexical = o->lexical;
    c.input_feeding = o->input_feeding;
    c.layer_norm = o->layer_norm;
    if (recur_seq2seq_config_check(&c))
        return cli_usage(r->cmd, "model settings: %s", recur_last_error());
    if (recur_seq2seq_create(&c, &r->model.net))
        return cli_fail(r->cmd, "", "cannot create the model: %s", recur_last_error());
    recur_seq2seq_init(r->model.net, trainer_rng(r->t));
    snprintf(r->model.source, sizeof r->model.source, "%s", o->source);
    snprintf(r->model.target, sizeof r->model.target, "%s", o->target);
    return CLI_OK;
}

/* A float option's value as the double its shortest decimal reads as (0.1f
 * as 0.1), so that the value stored with the run's options is the one a
 * user would type. */
static double decimal(float f)
{
    char text[32];
    for (int digits = 6; digits < 9; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, (double)f);
        if ((float)strtod(text, NULL) == f)
            return strtod(text, NULL);
    }
    return (double)f;
}

/* --init, before the data are read: loads CKPT into r->init. The language
 * pair is the model's unless --source/--target are given (then they must
 * match). */
static int init_load(tt_run *r, cli_option *options)
{
    tt_opts *o = r->o;
    if (translate_model_load(r->cmd, o->init, &r->init))
        return CLI_FAILURE;
    if (r->init.memory) {
        o->memory = 1;
        if (!cli_find(options, "memory-threshold")->given)
            o->memory_threshold = r->init.memory_threshold;
        if (!cli_find(options, "memory-max-chars")->given)
            o->memory_max_chars = r->init.memory_max_chars;
    }
    const char *ends[2] = {r->init.source, r->init.target};
    const char **dest[2] = {&o->source, &o->target};
    const char *names[2] = {"source", "target"};
    for (int k = 0; k < 2; k++) {
        if (!cli_find(options, names[k])->given)
            *dest[k] = ends[k];
        else if (strcmp(*dest[k], ends[k]) != 0)
            return cli_usage(r->cmd, "--%s %s differs from --init %s, which translates %s -> %s",
                             names[k], *dest[k], o->init, r->init.source, r->init.target);
    }
    return CLI_OK;
}

/* --init: the model of r->init (BPE, architecture, weights) with this run's
 * dropouts where given. The architecture options, which it fixes, may only
 * repeat its values (--vocab: the size asked for, at least the BPE's, as
 * the BPE may stop short of it); those not given and the dropouts then
 * hold its values, so that the run's stored options describe the model. */
static int init_model(tt_run *r, cli_option *options)
{
    tt_opts *o = r->o;
    const recur_seq2seq_config *ic = recur_seq2seq_get_config(r->init.net);
    const int bpe_size = recur_bpe_size(r->init.bpe);
    if (cli_find(options, "vocab")->given && o->vocab < bpe_size)
        return cli_usage(r->cmd, "--vocab %d is below --init %s's %d subwords (the model fixes "
                         "it; leave it out)", o->vocab, o->init, bpe_size);
    if (!cli_find(options, "vocab")->given)
        o->vocab = bpe_size;
    const struct { const char *name; int *dest; int value; } ints[] = {
        {"embed", &o->embed, ic->embedding_size},
        {"hidden", &o->hidden, ic->hidden_size},
        {"layers", &o->layers, ic->encoder_layers},
        {"decoder-layers", &o->decoder_layers, ic->decoder_layers},
        {"unidirectional", &o->unidirectional, !ic->bidirectional},
        {"tie-embeddings", &o->tie_embeddings, ic->tie_embeddings != 0},
        {"lexical", &o->lexical, ic->lexical != 0},
        {"input-feeding", &o->input_feeding, ic->input_feeding != 0},
        {"layer-norm", &o->layer_norm, ic->layer_norm != 0},
    };
    const struct { const char *name; const char **dest; const char *value; } names[] = {
        {"cell", &o->cell, recur_cell_name(ic->cell)},
        {"attention", &o->attention, recur_attention_name(ic->attention)},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (cli_find(options, ints[i].name)->given && *ints[i].dest != ints[i].value)
            return cli_usage(r->cmd, "--%s %d differs from --init %s's %d (the model fixes it; "
                             "leave it out)", ints[i].name, *ints[i].dest, o->init,
                             ints[i].value);
        *ints[i].dest = ints[i].value;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (cli_find(options, names[i].name)->given && strcmp(*names[i].dest, names[i].value))
            return cli_usage(r->cmd, "--%s %s differs from --init %s's %s (the model fixes it; "
                             "leave it out)", names[i].name, *names[i].dest, o->init,
                             names[i].value);
        *names[i].dest = names[i].value;
    }
    const struct { const char *name; double *dest; float value; } drops[] = {
        {"dropout", &o->dropout, ic->dropout},
        {"embed-dropout", &o->embed_dropout, ic->embedding_dropout},
        {"word-dropout", &o->word_dropout, ic->word_dropout},
        {"hidden-dropout", &o->hidden_dropout, ic->hidden_dropout},
    };
    for (size_t i = 0; i < sizeof drops / sizeof drops[0]; i++)
        if (!cli_find(options, drops[i].name)->given)
            *drops[i].dest = decimal(drops[i].value);
    /* the same network with this run's dropouts, holding CKPT's weights */
    recur_seq2seq_config c = *ic;
    c.dropout = (float)o->dropout;
    c.embedding_dropout = (float)o->embed_dropout;
    c.word_dropout = (float)o->word_dropout;
    c.hidden_dropout = (float)o->hidden_dropout;
    if (recur_seq2seq_config_check(&c))
        return cli_usage(r->cmd, "model settings: %s", recur_last_error());
    if (recur_seq2seq_create(&c, &r->model.net))
        return cli_fail(r->cmd, "", "cannot create the model: %s", recur_last_error());
    memcpy(recur_seq2seq_params(r->model.net), recur_seq2seq_params(r->init.net),
           recur_seq2seq_size(r->init.net) * sizeof(float));
    r->model.bpe = r->init.bpe;
    r->init.bpe = NULL;
    snprintf(r->model.source, sizeof r->model.source, "%s", r->init.source);
    snprintf(r->model.target, sizeof r->model.target, "%s", r->init.target);
    translate_model_free(&r->init);
    return CLI_OK;
}

/* "runs/translate-<data file name>" */
static void default_out(const char *data, char *out, size_t size)
{
    const char *base = strrchr(data, '/');
    base = base ? base + 1 : data;
    size_t len = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        len = (size_t)(dot - base);
    snprintf(out, size, "runs/translate-%.*s", (int)(len ? len : 3), len ? base : "run");
}

int cmd_translate_train(int argc, char **argv)
{
    const char *cmd = "translate train";
    tt_opts o = {.data = NULL, .extra = NULL, .source = "de", .target = "en", .cell = "gru",
                 .attention = "additive", .vocab = 8000, .max_len = 64, .embed = 256,
                 .hidden = 256, .layers = 1, .decoder_layers = 1, .unidirectional = 0,
                 .batch = 64, .dropout = 0.3, .embed_dropout = 0.1, .label_smoothing = 0.1,
                 .val_sentences = 500, .repeat = 1, .batch_by = "source",
                 .bpe_dropout_sides = "source", .memory_threshold = 0.5,
                 .memory_max_chars = 240};
    trainer_options to;
    trainer_options_default(&to);
    to.lr = 1e-3;
    to.val_every = 1000;
    to.save_every = 1000;
    to.log_every = 50;
    to.out_default_text = "runs/translate-<data file name>";
    enum { CAPACITY = 90 };
    cli_option options[CAPACITY];
    const cli_option own[] = {
        {"data", CLI_STRING, &o.data, "FILE", "sentence pairs: a TSV (or CSV) whose header names "
         "the --source and --target columns; its fixed training part is used (docs/translate.md)",
         0, 0, NULL, "required", FROZEN, 0},
        {"init", CLI_STRING, &o.init, "CKPT", "fine-tune: start from a trained translation "
         "model's weights and BPE (its architecture; the dropouts unless given) with a fresh "
         "optimizer and schedule", 0, 0, NULL, "none", FROZEN, 0},
        {"extra", CLI_STRING, &o.extra, "FILE", "more pairs (same columns), all used for "
         "training", 0, 0, NULL, "none", FROZEN, 0},
        {"source", CLI_STRING, &o.source, "COLUMN", "the source language's column", 0, 0, NULL,
         NULL, FROZEN, 0},
        {"target", CLI_STRING, &o.target, "COLUMN", "the target language's column", 0, 0, NULL,
         NULL, FROZEN, 0},
        {"vocab", CLI_INT, &o.vocab, "N", "BPE vocabulary size (one vocabulary for both "
         "languages)", RECUR_BPE_BASE, 1 << 20, NULL, NULL, FROZEN, 0},
        {"max-len", CLI_INT, &o.max_len, "N", "leave out training pairs longer than N subwords",
         2, 100000, NULL, NULL, FROZEN, 0},
        {"cell", CLI_CHOICE, &o.cell, "CELL", "recurrent cell: gru, lstm, rnn_tanh, rnn_relu", 0,
         0, cell_choices, NULL, FROZEN, 0},
        {"attention", CLI_CHOICE, &o.attention, "KIND", "additive (Bahdanau), general or "
         "dot (Luong); on the German-English data general attention collapsed onto the last "
         "source subword (docs/translate.md)", 0, 0, attention_choices, NULL, FROZEN, 0},
        {"embed", CLI_INT, &o.embed, "N", "embedding size", 1, 65536, NULL, NULL, FROZEN, 0},
        {"tie-embeddings", CLI_FLAG, &o.tie_embeddings, NULL, "the output layer's weight is "
         "the target embedding (needs --embed = --hidden)", 0, 0, NULL, NULL, FROZEN, 0},
        {"lexical", CLI_FLAG, &o.lexical, NULL, "a lexical shortcut: the combine layer also "
         "reads the attention-weighted source embeddings (Nguyen & Chiang 2018)", 0, 0, NULL,
         NULL, FROZEN, 0},
        {"input-feeding", CLI_FLAG, &o.input_feeding, NULL, "the decoder also reads its "
         "previous attentional output (Luong et al. 2015); one decoder layer, no "
         "--hidden-dropout", 0, 0, NULL, NULL, FROZEN, 0},
        {"layer-norm", CLI_FLAG, &o.layer_norm, NULL, "layer normalization in every encoder "
         "and decoder cell (Ba et al. 2016; not with --input-feeding)", 0, 0, NULL, NULL, FROZEN,
         0},
        {"hidden", CLI_INT, &o.hidden, "N", "hidden units per layer (and direction)", 1, 65536,
         NULL, NULL, FROZEN, 0},
        {"layers", CLI_INT, &o.layers, "N", "encoder layers", 1, 64, NULL, NULL, FROZEN, 0},
        {"decoder-layers", CLI_INT, &o.decoder_layers, "N", "decoder layers", 1, 64, NULL, NULL,
         FROZEN, 0},
        {"unidirectional", CLI_FLAG, &o.unidirectional, NULL, "forward-only encoder (the "
         "default is bidirectional)", 0, 0, NULL, NULL, FROZEN, 0},
        {"dropout", CLI_DOUBLE, &o.dropout, "P", "dropout between stacked layers and on the "
         "attentional output", 0, 0.99, NULL, NULL, FROZEN, 0},
        {"embed-dropout", CLI_DOUBLE, &o.embed_dropout, "P", "dropout on both embeddings", 0,
         0.99, NULL, NULL, FROZEN, 0},
        {"word-dropout", CLI_DOUBLE, &o.word_dropout, "P", "drop whole subwords: each source "
         "and target input token's embedding is zeroed with probability P (Sennrich & Zhang "
         "2019)", 0, 0.99, NULL, NULL, FROZEN, 0},
        {"hidden-dropout", CLI_DOUBLE, &o.hidden_dropout, "P", "dropout on the top encoder "
         "layer's outputs (the attention's keys and context) and the top decoder layer's "
         "outputs (the attention's query and the combine layer's input)", 0, 0.99, NULL, NULL,
         FROZEN, 0},
        {"label-smoothing", CLI_DOUBLE, &o.label_smoothing, "EPS", "label smoothing of the "
         "training loss", 0, 0.99, NULL, NULL, FROZEN, 0},
        {"batch", CLI_INT, &o.batch, "B", "sentence pairs a step", 1, 1 << 16, NULL, NULL,
         FROZEN, 0},
        {"bpe-dropout", CLI_DOUBLE, &o.bpe_dropout, "P", "BPE-dropout (Provilkov et al. "
         "2020): each epoch segments the training pairs afresh, skipping each merge with "
         "probability P (validation and translation use the full segmentation)", 0, 0.99, NULL,
         NULL, FROZEN, 0},
        {"bpe-dropout-sides", CLI_CHOICE, &o.bpe_dropout_sides, "SIDES", "source: segment only "
         "the source afresh; both: the target too (on the benchmark's data the target's "
         "broken words cost BLEU, docs/translate.md)", 0, 0, sides_choices, NULL, FROZEN, 0},
        {"repeat", CLI_INT, &o.repeat, "N", "each pair of --data's training part appears N "
         "times an epoch (oversamples the sentences against the --extra pairs)", 1, 1000, NULL,
         NULL, FROZEN, 0},
        {"batch-by", CLI_CHOICE, &o.batch_by, "SIDE", "batches hold pairs of similar length: "
         "of the source, or of the longer side (less padding in the decoder, about 10% faster "
         "training on the benchmark's data)", 0, 0, batch_by_choices, NULL, FROZEN, 0},
        {"memory", CLI_FLAG, &o.memory, NULL, "neural fuzzy repair (Bulte & Tezcan 2019): "
         "each source sentence is followed by the target of the training pair whose source is "
         "most like it (a fuzzy match), which the model learns to copy from; the training "
         "pairs are stored in the model as its translation memory", 0, 0, NULL, NULL, FROZEN,
         0},
        {"memory-threshold", CLI_DOUBLE, &o.memory_threshold, "S", "--memory adds a fuzzy "
         "match of similarity S or more (1 - word edit distance / the longer's words)", 0, 1,
         NULL, NULL, FROZEN, 0},
        {"memory-max-chars", CLI_INT, &o.memory_max_chars, "N", "--memory adds no match when "
         "the source and the match hold more than N characters together (0: no limit)", 0,
         1000000, NULL, NULL, FROZEN, 0},
        {"val-sentences", CLI_INT64, &o.val_sentences, "N", "validation BLEU (greedy) over the "
         "first N validation pairs (0: all)", 0, 1e9, NULL, NULL, CLI_SAVED, 0},
    };
    int count = (int)(sizeof own / sizeof own[0]);
    memcpy(options, own, sizeof own);
    int added = trainer_add_options(options + count, CAPACITY - 1 - count, &to);
    if (added < 0)
        return cli_fail(cmd, "", "internal error: the option table is too small");
    count += added;
    options[count] = (cli_option)CLI_END;
    int status = cli_parse(cmd, options, argc, argv, "--data FILE [options]",
                           "Learns a BPE and trains an attention encoder-decoder on the training "
                           "part of FILE\n(docs/translate.md), writing checkpoints and metrics to "
                           "--out. Ctrl-C saves and\nstops; --resume continues exactly.");
    if (status == CLI_HELP_SHOWN)
        return CLI_OK;
    if (status)
        return status;

    tt_run r;
    memset(&r, 0, sizeof r);
    r.cmd = cmd;
    r.o = &o;
    r.to = &to;
    r.plan_epoch = -1;
    r.val_decode = (tr_decode){.search = recur_seq2seq_decode_config_default()};
    r.val_decode.search.beam_width = 1;
    int rc = trainer_create(cmd, options, &to, argc, argv, &r.t);
    if (rc)
        return rc;
    if (!to.resume && !o.data) {
        rc = cli_usage(cmd, "--data FILE is required");
        goto done;
    }
    if (strlen(o.source) >= sizeof r.model.source || strlen(o.target) >= sizeof r.model.target) {
        rc = cli_usage(cmd, "--%s: a column name of at most %zu bytes (the model stores it)",
                       strlen(o.source) >= sizeof r.model.source ? "source" : "target",
                       sizeof r.model.source - 1);
        goto done;
    }
    if (!to.resume && !o.init && o.tie_embeddings && o.embed != o.hidden) {
        rc = cli_usage(cmd, "--tie-embeddings needs --embed (%d) = --hidden (%d)", o.embed,
                       o.hidden);
        goto done;
    }
    char out_dir[4200];
    if (o.data)
        default_out(o.data, out_dir, sizeof out_dir);
    if ((rc = trainer_open_run(r.t, o.data ? out_dir : NULL)))
        goto done;
    if (to.resume) {
        recur_st *st = NULL;
        const char *latest = trainer_latest_path(r.t);
        if (recur_st_open(latest, &st) || translate_model_read(st, latest, &r.model) ||
            recur_train_state_read(st, latest, recur_seq2seq_size(r.model.net), &r.resumed)) {
            recur_st_free(st);
            rc = cli_fail(cmd, "--resume continues the run whose folder is --out; start a new run "
                          "without --resume.", "cannot resume: %s", recur_last_error());
            goto done;
        }
        recur_st_free(st);
        if ((rc = trainer_resume(r.t, r.resumed)))
            goto done;
        /* runs saved before these options existed do not hold them: compare with the model */
        const recur_seq2seq_config *mc = recur_seq2seq_get_config(r.model.net);
        if ((float)o.word_dropout != mc->word_dropout ||
            (float)o.hidden_dropout != mc->hidden_dropout ||
            (o.tie_embeddings != 0) != (mc->tie_embeddings != 0) ||
            (o.lexical != 0) != (mc->lexical != 0) ||
            (o.input_feeding != 0) != (mc->input_feeding != 0) ||
            (o.layer_norm != 0) != (mc->layer_norm != 0)) {
            rc = cli_usage(cmd, "--word-dropout %g / --hidden-dropout %g / --tie-embeddings %s / "
                           "--lexical %s / --input-feeding %s / --layer-norm %s differ from the "
                           "resumed model's %g / %g / %s / %s / %s / %s (start a new run with "
                           "another --out to change them)",
                           o.word_dropout, o.hidden_dropout, o.tie_embeddings ? "on" : "off",
                           o.lexical ? "on" : "off", o.input_feeding ? "on" : "off",
                           o.layer_norm ? "on" : "off", (double)mc->word_dropout,
                           (double)mc->hidden_dropout, mc->tie_embeddings ? "on" : "off",
                           mc->lexical ? "on" : "off", mc->input_feeding ? "on" : "off",
                           mc->layer_norm ? "on" : "off");
            goto done;
        }
        if (r.resumed->data_position_count != 2) {
            rc = cli_fail(cmd, "", "cannot resume: %s has no translation data position", latest);
            goto done;
        }
    }
    if (r.resumed && cli_find(options, "init")->given) {
        bool stored = false; /* then trainer_resume compared it */
        for (int i = 0; i < r.resumed->option_count; i++)
            stored = stored || strcmp(r.resumed->option_names[i], "init") == 0;
        if (!stored) {
            rc = cli_usage(cmd, "--init starts a new run from a model; --resume continues the run "
                           "in --out, which did not start from one (leave out --init)");
            goto done;
        }
    }
    if (!r.resumed && o.init && (rc = init_load(&r, options)))
        goto done;
    if ((rc = trainer_prepare(r.t)))
        goto done;
    if ((rc = translate_read_pairs(cmd, o.data, o.source, o.target, TR_TRAIN, &r.train)) ||
        (rc = translate_read_pairs(cmd, o.data, o.source, o.target, TR_VALIDATION, &r.val)) ||
        (o.extra &&
         (rc = translate_read_pairs(cmd, o.extra, o.source, o.target, TR_ALL, &r.extra))))
        goto done;
    if (!r.resumed && o.memory && (rc = build_memory(&r)))
        goto done;
    if ((rc = translate_pairs_augment(cmd, &r.model, &r.train)) ||
        (rc = translate_pairs_augment(cmd, &r.model, &r.val)))
        goto done;
    if (!r.resumed) {
        rc = o.init ? init_model(&r, options) : learn_bpe(&r);
        if (rc || (!o.init && (rc = make_model(&r))))
            goto done;
    }
    if ((rc = encode_data(&r)))
        goto done;
    if (r.resumed && (r.resumed->data_tokens != r.data.count ||
                      r.resumed->data_hash != r.data_hash)) {
        rc = cli_fail(cmd, "Resume with the same --data, --extra and --max-len; start a new run "
                      "for new data.", "the training pairs differ from the run's (%zu now, %"
                      PRIu64 " in the checkpoint)", r.data.count, r.resumed->data_tokens);
        goto done;
    }
    /* MPI: the epochs of the global batch (--batch on each of the ranks) */
    r.global_batch = (size_t)o.batch * (size_t)dist_size();
    r.spe = (int64_t)((r.data.count + r.global_batch - 1) / r.global_batch);
    r.order = malloc(r.data.count * sizeof *r.order);
    r.starts = malloc((size_t)r.spe * sizeof *r.starts);
    r.bsrc = malloc((size_t)o.batch * sizeof *r.bsrc);
    r.btgt = malloc((size_t)o.batch * sizeof *r.btgt);
    r.bsrc_len = malloc((size_t)o.batch * sizeof *r.bsrc_len);
    r.btgt_len = malloc((size_t)o.batch * sizeof *r.btgt_len);
    if (!r.order || !r.starts || !r.bsrc || !r.btgt || !r.bsrc_len || !r.btgt_len) {
        rc = cli_fail(cmd, "", "out of memory");
        goto done;
    }
    if (r.resumed) {
        r.epoch = r.resumed->data_position[0];
        r.index = r.resumed->data_position[1];
        if (r.epoch < 0 || r.index < 0 || r.index >= r.spe) {
            rc = cli_fail(cmd, "", "cannot resume: the data position (%" PRId64 ", %" PRId64
                          ") does not fit %" PRId64 " batches an epoch", r.epoch, r.index, r.spe);
            goto done;
        }
    }

    trainer_task task = {
        .ctx = &r,
        .params = recur_seq2seq_params(r.model.net),
        .grads = recur_seq2seq_grads(r.model.net),
        .n_params = recur_seq2seq_size(r.model.net),
        .steps_per_epoch = r.spe,
        .step = tt_step,
        .epoch = tt_epoch,
        .validate = tt_validate,
        .save = tt_save,
        .unit = "tok",
        .unit_csv = "tokens",
        .bits = 0,
        .metric_name = "bleu",
        .next_hint = "Translate with: recur translate --model %s < sentences.txt",
        .shards_data = 1,
    };
    if ((rc = trainer_start(r.t, &task)))
        goto done;
    if (dist_is_main()) {
        const recur_seq2seq_config *c = recur_seq2seq_get_config(r.model.net);
        fprintf(stderr, "recur %s: %s: %s %s encoder (%d layer%s), %s decoder (%d layer%s), %d "
                "units%s, embedding %d%s, %s attention%s%s, BPE of %d subwords, %zu parameters; dropout "
                "%g, embedding dropout %g, word dropout %g, hidden dropout %g, label smoothing "
                "%g\n", cmd,
                r.resumed ? "resuming" : o.init ? "fine-tuning" : "model",
                c->bidirectional ? "bidirectional" : "unidirectional", recur_cell_name(c->cell),
                c->encoder_layers, c->encoder_layers == 1 ? "" : "s", recur_cell_name(c->cell),
                c->decoder_layers, c->decoder_layers == 1 ? "" : "s", c->hidden_size,
                c->layer_norm ? " (layer-normalized)" : "", c->embedding_size, c->tie_embeddings ? " (tied to the output)" : "",
                recur_attention_name(c->attention), c->lexical ? " with a lexical shortcut" : "",
                c->input_feeding ? ", input feeding" : "",
                recur_bpe_size(r.model.bpe), recur_seq2seq_size(r.model.net),
                (double)c->dropout, (double)c->embedding_dropout, (double)c->word_dropout,
                (double)c->hidden_dropout, o.label_smoothing);
        char ranks[64] = ""; /* MPI */
        if (dist_active())
            snprintf(ranks, sizeof ranks, " on each of %d ranks", dist_size());
        fprintf(stderr, "recur %s: data %s (%s -> %s): %zu training pairs%s%s (%zu kept), %zu "
                "validation pairs; %" PRId64 " steps of %d%s an epoch; %s lr %g, clip %g; %d "
                "thread%s (%s)\n", cmd, o.data, r.model.source, r.model.target, r.train.count,
                o.extra ? " + extra " : "", o.extra ? o.extra : "", r.data.count, r.val.count,
                r.spe, o.batch, ranks, to.optimizer, to.lr, to.clip, recur_get_threads(),
                recur_get_threads() == 1 ? "" : "s", recur_blas_backend());
    }
    if (dist_is_main() && r.model.memory) {
        size_t extended[2] = {0, 0};
        const tr_pairs *parts[2] = {&r.train, &r.val};
        for (int k = 0; k < 2; k++)
            for (size_t i = 0; parts[k]->raw_src && i < parts[k]->count; i++)
                extended[k] += strcmp(parts[k]->src[i], parts[k]->raw_src[i]) != 0;
        fprintf(stderr, "recur %s: translation memory of %zu pairs: %zu of %zu training and %zu "
                "of %zu validation sources extended by a fuzzy match (similarity >= %g)\n", cmd,
                recur_memory_size(r.model.memory), extended[0], r.train.count, extended[1],
                r.val.count, r.model.memory_threshold);
    }
    rc = trainer_run(r.t);
done:
    free_run(&r);
    return rc;
}
