/* train.c - `recur train`: trains a character language model on a text
 * file as char-rnn does. B parallel streams over the training part (the text
 * minus a validation tail) are cut into chunks of T steps; the hidden state
 * is carried from chunk to chunk (detached) and reset when the streams wrap
 * into a new epoch. Each step is the gradient of the mean loss of one chunk;
 * everything around it (NaN/Inf checks, clipping, the optimizer update at
 * the scheduled learning rate, progress line, metrics CSV, checkpoints,
 * exact --resume, Ctrl-C) is the shared trainer's (trainer.h).
 *
 * What is the language model's own: the data (vocabulary from the whole
 * text, a validation tail), the stream position and carried state saved in
 * the checkpoint (recur_checkpoint_save), validation (mean loss over the
 * whole validation part with B streams from a zero state) and samples. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dist.h"
#include "trainer.h"

typedef struct train_opts {
    const char *data, *cell;
    int hidden, layers, embed, seq_len, batch;
    double dropout, embed_dropout, output_dropout, weight_dropout, val_fraction;
    int64_t sample_every, sample_length;
    int byte_level;
} train_opts;

static const char *const cell_choices[] = {"lstm", "gru", "rnn_tanh", "rnn_relu", NULL};

#define SAVED CLI_SAVED
#define FROZEN (CLI_SAVED | CLI_FROZEN)

/* "runs/<file name without extension>" */
static void default_out(const char *data, char *out, size_t size)
{
    const char *base = strrchr(data, '/');
    base = base ? base + 1 : data;
    size_t len = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        len = (size_t)(dot - base);
    if (len == 0)
        snprintf(out, size, "runs/run");
    else
        snprintf(out, size, "runs/%.*s", (int)len, base);
}

/* ---- the language model's part of the training run ------------------------ */

typedef struct lm_run {
    train_opts *o;
    trainer_options *to;
    trainer *t;
    recur_lm *lm;
    recur_vocab *vocab;
    recur_textstream *stream;
    recur_train_state *resumed;
    int32_t *ids;
    size_t n, train_len, val_len;
    uint64_t data_hash;
    int32_t *chunk; /* [T+1, B] */
    float *h, *c;   /* [L, B, H] carried state */
    float *h_all, *c_all; /* MPI: [L, N*B, H] every rank's state, gathered to save */
    size_t state_size;
    int64_t cpe;    /* chunks per epoch */
} lm_run;

static void reset_state(void *ctx)
{
    lm_run *r = ctx;
    memset(r->h, 0, r->state_size * sizeof *r->h);
    if (r->c)
        memset(r->c, 0, r->state_size * sizeof *r->c);
}

/* MPI: the model's gradients from `from` on are final; start their
 * all-reduce buckets (a failure resurfaces in the trainer's dist_step_end). */
static void grads_ready(void *user, size_t from)
{
    (void)user;
    (void)dist_reduce_ready(from);
}

/* trainer_task.step: the gradient of the next chunk's mean loss. */
static int lm_step(void *ctx, recur_rng *rng, double *loss, double *items)
{
    lm_run *r = ctx;
    const int T = r->o->seq_len, B = r->o->batch;
    int wrapped = 0;
    int status = recur_textstream_next(r->stream, r->chunk, NULL, &wrapped);
    if (status)
        return status;
    if (wrapped)
        reset_state(r);
    recur_lm_zero_grad(r->lm);
    *items = (double)T * (double)B;
    return recur_lm_train_step(r->lm, r->chunk, T, B, r->h, r->c, rng, loss);
}

static double lm_epoch(void *ctx)
{
    const lm_run *r = ctx;
    recur_textstream_pos pos = recur_textstream_get_pos(r->stream);
    return (double)pos.epoch +
           (double)pos.offset / (double)r->o->seq_len / (double)(r->cpe > 0 ? r->cpe : 1);
}

static int lm_validate(void *ctx, double *loss, double *metric)
{
    lm_run *r = ctx;
    size_t count = 0;
    *metric = NAN;
    /* MPI: rank 0 validates with the streams of the whole batch */
    return cli_evaluate(&r->lm, 1, r->ids + r->train_len, r->val_len, r->o->batch * dist_size(),
                        r->o->seq_len, loss, &count);
}

/* trainer_task.save: the trainer's state plus the stream position, the
 * carried state and the data fingerprint. */
static int lm_save(void *ctx, const char *path, recur_train_state *ts)
{
    lm_run *r = ctx;
    const int lstm = recur_lm_get_config(r->lm)->cell == RECUR_CELL_LSTM;
    ts->position = recur_textstream_get_pos(r->stream);
    ts->batch = r->o->batch * dist_size(); /* MPI: the whole batch of N ranks */
    ts->seq_len = r->o->seq_len;
    ts->data_tokens = r->n;
    ts->data_hash = r->data_hash;
    ts->h = dist_active() ? r->h_all : r->h;
    ts->c = lstm ? (dist_active() ? r->c_all : r->c) : NULL;
    return recur_checkpoint_save(path, r->lm, r->vocab, ts);
}

/* MPI: trainer_task.gather_state: rank r's [L, B, H] streams are streams
 * r*B .. (r+1)*B-1 of the saved [L, N*B, H] state. */
static int lm_gather(void *ctx)
{
    lm_run *r = ctx;
    const size_t L = (size_t)recur_lm_get_config(r->lm)->num_layers;
    const size_t per_layer = r->state_size / L;
    if (dist_gather_layers(r->h, L, per_layer, r->h_all))
        return DIST_LOST;
    return r->c && dist_gather_layers(r->c, L, per_layer, r->c_all) ? DIST_LOST : 0;
}

/* A short sample on stderr from a newline, every --sample-every steps, with
 * an RNG of its own (seeded from the seed and the step) so that sampling
 * never changes training. */
static void lm_after_step(void *ctx, int64_t step)
{
    lm_run *r = ctx;
    if (r->o->sample_every <= 0 || step % r->o->sample_every != 0 || !dist_is_main())
        return;
    recur_lm_sampler *s = NULL;
    const int V = recur_lm_get_config(r->lm)->vocab_size;
    float *logits = malloc((size_t)V * sizeof *logits);
    if (!logits || recur_lm_sampler_create(r->lm, 1, &s)) {
        free(logits);
        return;
    }
    recur_rng rng;
    recur_rng_seed(&rng, (uint64_t)r->to->seed * 0x9e3779b97f4a7c15ull + (uint64_t)step);
    int32_t token = recur_vocab_lookup(r->vocab, '\n');
    if (token < 0)
        token = 0;
    trainer_clear_line(r->t);
    fprintf(stderr, "---- sample at step %" PRId64 " ----\n", step);
    for (int64_t i = 0; i < r->o->sample_length; i++) {
        if (recur_lm_sampler_step(s, &token, logits) ||
            recur_sample_logits(logits, V, 1.0f, 0, 1.0f, &rng, &token))
            break;
        size_t len = 0;
        const char *bytes = recur_vocab_token(r->vocab, token, &len);
        fwrite(bytes, 1, len, stderr);
    }
    fprintf(stderr, "\n---- end of sample ----\n");
    recur_lm_sampler_free(s);
    free(logits);
}

static void free_run(lm_run *r)
{
    free(r->chunk);
    free(r->h);
    free(r->c);
    free(r->h_all);
    free(r->c_all);
    recur_free(r->ids);
    recur_textstream_free(r->stream);
    recur_lm_free(r->lm);
    recur_vocab_free(r->vocab);
    recur_train_state_free(r->resumed);
    trainer_free(r->t);
}

/* Reads the text, builds (or checks against the checkpoint) the vocabulary,
 * splits off the validation tail and opens the training stream. */
static int load_data(const char *cmd, lm_run *r)
{
    const train_opts *o = r->o;
    char *text = NULL;
    size_t len = 0;
    if (recur_text_read_file(o->data, &text, &len))
        return cli_fail(cmd, "", "%s", recur_last_error());
    if (!r->vocab &&
        recur_vocab_build(text, len, o->byte_level ? RECUR_VOCAB_BYTES : RECUR_VOCAB_CHARS,
                          &r->vocab)) {
        recur_free(text);
        return cli_fail(cmd, o->byte_level ? "" : "Fix the file's encoding, or pass --byte-level "
                        "to train on raw bytes.", "%s: %s", o->data, recur_last_error());
    }
    int status = recur_vocab_encode(r->vocab, text, len, &r->ids, &r->n);
    recur_free(text);
    if (status)
        return cli_fail(cmd, "The data differs from the text this run was trained on.", "%s: %s",
                        o->data, recur_last_error());
    r->data_hash = recur_checkpoint_data_hash(r->ids, r->n);
    if (r->resumed && (r->resumed->data_tokens != r->n || r->resumed->data_hash != r->data_hash))
        return cli_fail(cmd, "Resume with the same --data file; start a new run for new data.",
                        "%s is not the text this run was trained on (%zu tokens, checkpoint: "
                        "%" PRIu64 " tokens%s)", o->data, r->n, r->resumed->data_tokens,
                        r->resumed->data_tokens == r->n ? ", different content" : "");
    if (recur_text_split(r->n, o->val_fraction, o->seq_len, &r->train_len, &r->val_len))
        return cli_fail(cmd, "Use a longer text, a smaller --seq-len or a different "
                        "--val-fraction.", "%s", recur_last_error());
    /* MPI: rank r walks streams r*B .. (r+1)*B-1 of the N*B streams */
    if (recur_textstream_create_shard(r->ids, r->train_len, o->batch * dist_size(),
                                      o->batch * dist_rank(), o->batch, o->seq_len, &r->stream))
        return cli_fail(cmd, "Use a smaller --batch or --seq-len, or a longer text.", "%s",
                        recur_last_error());
    r->cpe = recur_textstream_chunks_per_epoch(r->stream);
    return CLI_OK;
}

/* A new model initialised from the trainer's RNG, or the resumed one with
 * its stream position and carried state. */
static int make_model(const char *cmd, lm_run *r)
{
    const train_opts *o = r->o;
    if (!r->lm) {
        recur_lm_config cfg = recur_lm_config_default();
        recur_cell_parse(o->cell, &cfg.cell);
        cfg.vocab_size = recur_vocab_size(r->vocab);
        cfg.embedding_size = o->embed;
        cfg.hidden_size = o->hidden;
        cfg.num_layers = o->layers;
        cfg.dropout = (float)o->dropout;
        cfg.embedding_dropout = (float)o->embed_dropout;
        cfg.output_dropout = (float)o->output_dropout;
        cfg.weight_dropout = (float)o->weight_dropout;
        if (recur_lm_create(&cfg, &r->lm))
            return cli_fail(cmd, "", "cannot create the model: %s", recur_last_error());
        recur_lm_init(r->lm, trainer_rng(r->t));
    } else {
        const recur_train_state *ts = r->resumed;
        if (ts->batch != o->batch * dist_size() || ts->seq_len != o->seq_len)
            return cli_fail(cmd, "", "the checkpoint's stream has batch %d and seq_len %d, the "
                            "options say %d and %d", ts->batch, ts->seq_len,
                            o->batch * dist_size(), o->seq_len);
        if (recur_textstream_set_pos(r->stream, &ts->position))
            return cli_fail(cmd, "", "cannot restore the training state: %s",
                            recur_last_error());
    }
    const recur_lm_config *cfg = recur_lm_get_config(r->lm);
    r->state_size = recur_lm_state_size(r->lm, o->batch);
    r->h = calloc(r->state_size ? r->state_size : 1, sizeof *r->h);
    r->c = cfg->cell == RECUR_CELL_LSTM ? calloc(r->state_size ? r->state_size : 1, sizeof *r->c)
                                        : NULL;
    r->chunk = malloc((size_t)(o->seq_len + 1) * (size_t)o->batch * sizeof *r->chunk);
    if (!r->h || !r->chunk || (cfg->cell == RECUR_CELL_LSTM && !r->c))
        return cli_fail(cmd, "", "out of memory");
    /* MPI: room for every rank's state; this rank resumes its own streams */
    const size_t L = (size_t)cfg->num_layers, per_layer = r->state_size / L;
    if (dist_overlap())
        recur_lm_set_grad_hook(r->lm, grads_ready, NULL);
    if (dist_active()) {
        r->h_all = calloc(r->state_size * (size_t)dist_size(), sizeof *r->h_all);
        r->c_all = r->c ? calloc(r->state_size * (size_t)dist_size(), sizeof *r->c_all) : NULL;
        if (!r->h_all || (r->c && !r->c_all))
            return cli_fail(cmd, "", "out of memory");
    }
    if (r->resumed) {
        dist_slice_layers(r->resumed->h, L, per_layer, r->h);
        if (r->c)
            dist_slice_layers(r->resumed->c, L, per_layer, r->c);
    }
    return CLI_OK;
}

int cmd_train(int argc, char **argv)
{
    const char *cmd = "train";
    train_opts o = {.data = NULL, .cell = "lstm", .hidden = 256, .layers = 2, .embed = 64,
                    .seq_len = 100, .batch = 32, .dropout = 0, .val_fraction = 0.1,
                    .sample_every = 0, .sample_length = 200, .byte_level = 0};
    trainer_options to;
    trainer_options_default(&to);
    to.out_default_text = "runs/<data file name>";
    enum { CAPACITY = 80 };
    cli_option options[CAPACITY] = {
        {"data", CLI_STRING, &o.data, "FILE", "training text (UTF-8, or any bytes with "
         "--byte-level)", 0, 0, NULL, "required", SAVED, 0},
        {"cell", CLI_CHOICE, &o.cell, "CELL", "recurrent cell: lstm, gru, rnn_tanh, rnn_relu", 0,
         0, cell_choices, NULL, FROZEN, 0},
        {"hidden", CLI_INT, &o.hidden, "N", "hidden units per layer", 1, 65536, NULL, NULL,
         FROZEN, 0},
        {"layers", CLI_INT, &o.layers, "N", "recurrent layers", 1, 64, NULL, NULL, FROZEN, 0},
        {"embed", CLI_INT, &o.embed, "N", "embedding size", 1, 65536, NULL, NULL, FROZEN, 0},
        {"dropout", CLI_DOUBLE, &o.dropout, "P", "dropout between recurrent layers", 0, 0.99,
         NULL, NULL, FROZEN, 0},
        {"embed-dropout", CLI_DOUBLE, &o.embed_dropout, "P", "dropout on the embedded "
         "characters entering the first layer", 0, 0.99, NULL, NULL, FROZEN, 0},
        {"output-dropout", CLI_DOUBLE, &o.output_dropout, "P", "dropout on the last layer's "
         "output entering the head", 0, 0.99, NULL, NULL, FROZEN, 0},
        {"weight-dropout", CLI_DOUBLE, &o.weight_dropout, "P", "DropConnect on the recurrent "
         "weights W_hh, a new mask every chunk", 0, 0.99, NULL, NULL, FROZEN, 0},
        {"byte-level", CLI_FLAG, &o.byte_level, NULL, "use the 256 byte values as the "
         "vocabulary instead of the text's characters", 0, 0, NULL, NULL, FROZEN, 0},
        {"seq-len", CLI_INT, &o.seq_len, "T", "steps of truncated backpropagation per chunk", 1,
         1 << 20, NULL, NULL, FROZEN, 0},
        {"batch", CLI_INT, &o.batch, "B", "parallel streams over the text", 1, 1 << 16, NULL,
         NULL, FROZEN, 0},
        {"val-fraction", CLI_DOUBLE, &o.val_fraction, "F", "share of the text held out for "
         "validation (its tail; 0: none)", 0, 0.9, NULL, NULL, FROZEN, 0},
        {"sample-every", CLI_INT64, &o.sample_every, "N", "print a sample every N steps (0: "
         "never)", 0, 9e18, NULL, NULL, SAVED, 0},
        {"sample-length", CLI_INT64, &o.sample_length, "N", "characters per sample", 1, 1e9,
         NULL, NULL, SAVED, 0},
    };
    int count = 0; /* the entries above; the rest of the table is zeroed */
    while (options[count].name)
        count++;
    int added = trainer_add_options(options + count, CAPACITY - 1 - count, &to);
    if (added < 0)
        return cli_fail(cmd, "", "internal error: the option table is too small");
    count += added;
    options[count] = (cli_option)CLI_END;
    int status = cli_parse(cmd, options, argc, argv, "--data FILE [options]",
                           "Trains a character-level language model on FILE (the last "
                           "--val-fraction held out for\nvalidation), writing checkpoints and "
                           "metrics to --out. Ctrl-C saves and stops;\n--resume continues "
                           "exactly.");
    if (status == CLI_HELP_SHOWN)
        return CLI_OK;
    if (status)
        return status;

    lm_run r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    r.to = &to;
    int rc = trainer_create(cmd, options, &to, argc, argv, &r.t);
    if (rc)
        return rc;
    if (!to.resume && !o.data) {
        rc = cli_usage(cmd, "--data FILE is required");
        goto done;
    }
    char out_dir[4096];
    if (o.data)
        default_out(o.data, out_dir, sizeof out_dir);
    if ((rc = trainer_open_run(r.t, o.data ? out_dir : NULL)))
        goto done;
    if (to.resume) {
        if (recur_checkpoint_load(trainer_latest_path(r.t), &r.lm, &r.vocab, &r.resumed)) {
            rc = cli_fail(cmd, "--resume continues the run whose folder is --out; start a new run "
                          "without --resume.", "cannot resume: %s", recur_last_error());
            goto done;
        }
        if ((rc = trainer_resume(r.t, r.resumed)))
            goto done;
        if (!o.data) {
            rc = cli_fail(cmd, "", "the checkpoint does not name its training data; pass --data");
            goto done;
        }
    }
    if ((rc = trainer_prepare(r.t)) || (rc = load_data(cmd, &r)) || (rc = make_model(cmd, &r)))
        goto done;

    trainer_task task = {
        .ctx = &r,
        .params = recur_lm_params(r.lm),
        .grads = recur_lm_grads(r.lm),
        .n_params = recur_lm_size(r.lm),
        .steps_per_epoch = r.cpe,
        .step = lm_step,
        .epoch = lm_epoch,
        .validate = r.val_len ? lm_validate : NULL,
        .save = lm_save,
        .skipped = reset_state,
        .after_step = lm_after_step,
        .unit = "tok",
        .unit_csv = "tokens",
        .bits = 1,
        .metric_name = "bpc",
        .next_hint = "Sample with: recur sample --model %s",
        .shards_data = 1,
        .gather_state = lm_gather,
    };
    if ((rc = trainer_start(r.t, &task)))
        goto done;

    const recur_lm_config *cfg = recur_lm_get_config(r.lm);
    if (dist_is_main()) {
        fprintf(stderr, "recur train: %s %s, %d layer%s of %d, embedding %d, %d %s, %zu "
                "parameters; dropout %g (embedding %g, output %g, weights %g)\n", r.resumed ? "resuming" : "model",
                recur_cell_name(cfg->cell), cfg->num_layers, cfg->num_layers == 1 ? "" : "s",
                cfg->hidden_size, cfg->embedding_size, cfg->vocab_size,
                recur_vocab_get_kind(r.vocab) == RECUR_VOCAB_BYTES ? "bytes" : "characters",
                recur_lm_size(r.lm), cfg->dropout, cfg->embedding_dropout, cfg->output_dropout,
                cfg->weight_dropout);
        char ranks[64] = ""; /* MPI */
        if (dist_active())
            snprintf(ranks, sizeof ranks, " on each of %d ranks", dist_size());
        fprintf(stderr, "recur train: data %s: %zu training + %zu validation tokens; batch %d%s "
                "x seq-len %d, %" PRId64 " steps per epoch; %s lr %g, clip %g; %d thread%s "
                "(%s)\n", o.data, r.train_len, r.val_len, o.batch, ranks, o.seq_len, r.cpe,
                to.optimizer, to.lr, to.clip, recur_get_threads(),
                recur_get_threads() == 1 ? "" : "s", recur_blas_backend());
    }
    rc = trainer_run(r.t);
done:
    free_run(&r);
    return rc;
}
