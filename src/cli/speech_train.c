/* speech_train.c - `recur speech train`: trains the CTC acoustic model
 * (include/recur/speech.h) on labelled recordings, with the shared trainer
 * (trainer.h) doing the loop, clipping, optimizer, schedule, progress line,
 * metrics, checkpoints, --resume and Ctrl-C.
 *
 * Data: the recordings of the training split (not --test-takes, not
 * --test-speakers) minus a validation share chosen at random from --seed.
 *   isolated:  one recording an utterance; each epoch walks them in a
 *              permutation drawn from (seed, epoch);
 *   connected: each utterance joins --min-digits..--max-digits random
 *              training recordings with pauses and noise, rebuilt from
 *              (seed, epoch, index) alone, so every epoch brings new
 *              utterances and --resume continues the exact same walk.
 * The data position saved in checkpoints is (epoch, batch in the epoch).
 * Validation: mean CTC loss and the greedy label (digit) error rate over
 * the validation recordings (connected: --val-utterances joined from them).
 *
 * MPI (docs/mpi.md): with N ranks and --batch B, an epoch is walked in
 * global batches of N*B utterances, as one process with --batch N*B walks
 * it, and rank r builds and trains on utterances [r*B, (r+1)*B) of each
 * (their augmentation and joining seeds are those of their place in the
 * epoch, whichever rank draws them). */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "speech_cli.h"
#include "trainer.h"

#define SAVED CLI_SAVED
#define FROZEN (CLI_SAVED | CLI_FROZEN)

typedef struct sp_opts {
    speech_data_opts d;
    const char *features, *window, *norm, *cell, *subsample_mode;
    int sample_rate, mels, ceps, fft, hidden, layers, unidirectional, subsample, batch, augment;
    double window_ms, hop_ms, low_hz, high_hz, preemphasis, dropout, val_fraction;
    int64_t epoch_utterances, val_utterances;
} sp_opts;

typedef struct sp_run {
    const char *cmd;
    sp_opts *o;
    trainer_options *to;
    trainer *t;
    recur_speech *model;
    recur_train_state *resumed;
    recur_speech_list *list;
    speech_clips train, val;  /* recordings */
    speech_set train_set;     /* isolated: every training recording, featurized */
    speech_set batch_set;     /* connected or augmented: the current batch, rebuilt */
    speech_set val_set;
    speech_batch_buf buf;
    int connected, rate;
    int64_t epoch, index;     /* data position: the next (global) batch */
    int64_t spe, epoch_size;  /* batches and utterances an epoch */
    int64_t global_batch;     /* MPI: --batch x ranks (--batch for one process) */
    int *perm;                /* isolated: permutation of the current epoch */
    int64_t perm_epoch;
    int *idx;                 /* [batch] */
    uint64_t data_hash;
} sp_run;

static const char *const feature_choices[] = {"fbank", "mfcc", NULL};
static const char *const window_choices[] = {"hamming", "hann", NULL};
static const char *const norm_choices[] = {"utterance", "global", "none", NULL};
static const char *const cell_choices[] = {"lstm", "gru", "rnn_tanh", "rnn_relu", NULL};
static const char *const subsample_choices[] = {"stack", "skip", NULL};

/* Seeds of the data streams, mixed with --seed. */
enum { STREAM_TRAIN = 1, STREAM_VAL = 2, STREAM_SPLIT = 3, STREAM_NORM = 4, STREAM_PERM = 5 };

/* FNV-1a over the training recordings' names, transcripts and lengths:
 * a resumed run refuses data that changed. */
static uint64_t fingerprint(const speech_clips *c)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < c->count; i++) {
        const char *base = strrchr(c->paths[i], '/');
        base = base ? base + 1 : c->paths[i];
        for (const char *s = base; *s; s++)
            h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
        h = (h ^ '\t') * 0x100000001b3ull;
        for (const char *s = c->transcripts[i]; *s; s++)
            h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
        for (int b = 0; b < 8; b++)
            h = (h ^ ((c->lengths[i] >> (8 * b)) & 0xff)) * 0x100000001b3ull;
    }
    return h;
}

/* ---- trainer callbacks ------------------------------------------------------ */

/* This rank's utterances of the next batch: indices into r->train_set
 * (isolated) or into r->batch_set, rebuilt for it (connected, or isolated
 * with --augment). The batch is the global one (--batch x ranks; the last
 * of an epoch may be short) and this rank's share of it utterances
 * [rank*B, (rank+1)*B) (clamped: it may be empty). *count receives the
 * share's size, *total the batch's. Returns a status. */
static int next_batch(sp_run *r, const speech_set **set, int *count, int *total)
{
    const int64_t B = r->o->batch, G = r->global_batch;
    const int64_t left = r->epoch_size - r->index * G;
    const int64_t size = left < G ? left : G;
    int64_t lo = (int64_t)dist_rank() * B;
    lo = lo < size ? lo : size;
    const int n = (int)(size - lo < B ? size - lo : B);
    const int64_t first = r->index * G + lo; /* this share's first utterance of the epoch */
    *count = n;
    *total = (int)size;
    if (!r->connected) {
        if (r->perm_epoch != r->epoch) {
            recur_rng rng;
            recur_rng_seed(&rng, speech_seed((uint64_t)r->to->seed ^ STREAM_PERM, r->epoch, 0));
            const int N = (int)r->train.count;
            for (int i = 0; i < N; i++)
                r->perm[i] = i;
            for (int i = N - 1; i > 0; i--) {
                int j = (int)recur_rng_below(&rng, (uint64_t)i + 1), tmp = r->perm[i];
                r->perm[i] = r->perm[j];
                r->perm[j] = tmp;
            }
            r->perm_epoch = r->epoch;
        }
        for (int b = 0; b < n; b++)
            r->idx[b] = r->perm[first + b];
        *set = &r->train_set;
        if (!r->o->augment)
            return RECUR_OK;
    }
    speech_set_free(&r->batch_set);
    for (int b = 0; b < n; b++) {
        float *samples = NULL;
        size_t len = 0;
        char *text = NULL, name[64];
        const uint64_t seed = speech_seed((uint64_t)r->to->seed ^ STREAM_TRAIN, r->epoch,
                                          first + b);
        int status;
        if (r->connected) {
            status = speech_make_connected(&r->train, &r->o->d, r->rate, seed, &samples, &len,
                                           &text);
            snprintf(name, sizeof name, "utterance %" PRId64, first + b);
        } else {
            const size_t clip = (size_t)r->idx[b];
            status = speech_make_augmented(&r->train, clip, &r->o->d, r->rate, seed, &samples,
                                           &len);
            text = status ? NULL : strdup(r->train.transcripts[clip]);
            if (status == RECUR_OK && !text)
                status = RECUR_E_NOMEM;
            snprintf(name, sizeof name, "%.60s", r->train.paths[clip]);
        }
        if (status) {
            recur_free(samples);
            return status;
        }
        status = speech_set_add(&r->batch_set, r->model, samples, len, text, name);
        recur_free(samples);
        free(text);
        if (status)
            return status;
        r->idx[b] = b;
    }
    *set = &r->batch_set;
    return RECUR_OK;
}

/* trainer_task.step: the gradient of the next batch's mean CTC loss (MPI:
 * of this rank's share, weighed so that the trainer's average over the
 * ranks is the mean over the whole batch). */
static int sp_step(void *ctx, recur_rng *rng, double *loss, double *items)
{
    sp_run *r = ctx;
    const speech_set *set = NULL;
    int n = 0, total = 0;
    int status = next_batch(r, &set, &n, &total);
    /* the walk advances whatever happens to this batch */
    if (++r->index >= r->spe) {
        r->epoch++;
        r->index = 0;
    }
    recur_rng own;
    rng = dist_share_rng(rng, &own);
    if (status)
        return status;
    recur_speech_zero_grad(r->model);
    *items = n;
    *loss = 0.0;
    if (n == 0)
        return RECUR_OK; /* MPI: nothing of this batch is ours: no gradient, no loss */
    if ((status = speech_batch_fill(&r->buf, set, r->idx, n, recur_speech_feature_dim(r->model))))
        return status;
    status = recur_speech_train_step(r->model, &r->buf.batch, rng, loss);
    if (status == RECUR_OK)
        dist_weigh_share(recur_speech_grads(r->model), recur_speech_size(r->model), loss,
                         (size_t)n, (size_t)total);
    return status;
}

static double sp_epoch(void *ctx)
{
    const sp_run *r = ctx;
    return (double)r->epoch + (double)r->index / (double)r->spe;
}

/* Mean CTC loss and greedy label (digit) error rate on the validation set. */
static int sp_validate(void *ctx, double *loss, double *metric)
{
    sp_run *r = ctx;
    speech_scores s;
    memset(&s, 0, sizeof s);
    /* MPI: rank 0 validates in batches of the whole batch */
    int status = speech_score_set(r->model, &r->val_set, (int)r->global_batch, 1, 1, &s, NULL);
    if (status)
        return status;
    *loss = s.loss_count ? s.loss_sum / (double)s.loss_count : INFINITY;
    *metric = recur_error_rate_value(&s.labels);
    return RECUR_OK;
}

/* trainer_task.save: the model, the trainer's state, the data position and
 * fingerprint, in one safetensors file written atomically. */
static int sp_save(void *ctx, const char *path, recur_train_state *ts)
{
    sp_run *r = ctx;
    ts->data_tokens = r->train.count;
    ts->data_hash = r->data_hash;
    ts->data_position_count = 2;
    ts->data_position[0] = r->epoch;
    ts->data_position[1] = r->index;
    recur_st_writer *w = NULL;
    int status = recur_st_writer_create(&w);
    if (status == RECUR_OK && (status = recur_speech_write(r->model, w)) == RECUR_OK &&
        (status = recur_train_state_write(w, ts, recur_speech_size(r->model))) == RECUR_OK)
        status = recur_st_writer_save(w, path);
    recur_st_writer_free(w);
    return status;
}

/* ---- setup ------------------------------------------------------------------------ */

static void free_run(sp_run *r)
{
    recur_speech_free(r->model);
    recur_train_state_free(r->resumed);
    speech_clips_free(&r->train);
    speech_clips_free(&r->val);
    speech_set_free(&r->train_set);
    speech_set_free(&r->batch_set);
    speech_set_free(&r->val_set);
    speech_batch_buf_free(&r->buf);
    recur_speech_list_free(r->list);
    free(r->perm);
    free(r->idx);
    trainer_free(r->t);
}

/* The model's settings from the options. */
static int config_from_options(const char *cmd, const sp_opts *o, recur_speech_config *c)
{
    *c = recur_speech_config_default();
    recur_features_config *f = &c->features;
    recur_features_kind_parse(o->features, &f->kind);
    recur_window_parse(o->window, &f->window);
    f->sample_rate = o->sample_rate;
    f->window_ms = o->window_ms;
    f->hop_ms = o->hop_ms;
    f->fft_size = o->fft;
    f->num_mels = o->mels;
    f->num_ceps = o->ceps;
    f->low_hz = o->low_hz;
    f->high_hz = o->high_hz;
    f->preemphasis = o->preemphasis;
    recur_norm_parse(o->norm, &c->norm);
    recur_cell_parse(o->cell, &c->cell);
    c->hidden_size = o->hidden;
    c->num_layers = o->layers;
    c->bidirectional = !o->unidirectional;
    c->dropout = (float)o->dropout;
    c->subsample = o->subsample;
    recur_subsample_parse(o->subsample_mode, &c->subsample_mode);
    if (recur_speech_config_check(c))
        return cli_usage(cmd, "model settings: %s", recur_last_error());
    return CLI_OK;
}

/* Global normalisation: mean and std of the raw features over the training
 * recordings (isolated) or 256 connected utterances drawn from them. */
static int measure_norm(sp_run *r)
{
    const recur_speech_config *c = recur_speech_get_config(r->model);
    recur_features *fx = NULL;
    if (recur_features_create(&c->features, &fx))
        return cli_fail(r->cmd, "", "%s", recur_last_error());
    const int F = recur_features_dim(&c->features);
    double *sum = calloc((size_t)F, sizeof *sum), *sum_sq = calloc((size_t)F, sizeof *sum_sq);
    float *mean = malloc((size_t)F * sizeof *mean), *std = malloc((size_t)F * sizeof *std);
    int64_t frames = 0;
    int rc = sum && sum_sq && mean && std ? CLI_OK : cli_fail(r->cmd, "", "out of memory");
    const size_t n = r->connected ? 256 : r->train.count;
    for (size_t i = 0; rc == CLI_OK && i < n; i++) {
        float *samples = r->connected ? NULL : r->train.samples[i];
        size_t len = r->connected ? 0 : r->train.lengths[i];
        char *text = NULL;
        if (r->connected &&
            speech_make_connected(&r->train, &r->o->d, r->rate,
                                  speech_seed((uint64_t)r->to->seed ^ STREAM_NORM, 0, (int64_t)i),
                                  &samples, &len, &text)) {
            rc = cli_fail(r->cmd, "", "%s", recur_last_error());
            break;
        }
        const int T = recur_features_frames(&c->features, len);
        float *x = malloc((size_t)T * (size_t)F * sizeof *x);
        if (!x || recur_features_compute(fx, samples, len, x))
            rc = cli_fail(r->cmd, "", "%s: %s", r->connected ? "utterance" : r->train.paths[i],
                          x ? recur_last_error() : "out of memory");
        else
            recur_features_accumulate(x, T, F, sum, sum_sq);
        frames += T;
        free(x);
        if (r->connected) {
            recur_free(samples);
            free(text);
        }
    }
    if (rc == CLI_OK && (recur_features_moments(sum, sum_sq, frames, F, mean, std) ||
                         recur_speech_set_norm(r->model, mean, std)))
        rc = cli_fail(r->cmd, "", "normalisation statistics: %s", recur_last_error());
    recur_features_free(fx);
    free(sum);
    free(sum_sq);
    free(mean);
    free(std);
    return rc;
}

/* The recordings: the training split, less a validation share drawn from
 * the seed; loaded at the model's sample rate. */
static int load_data(sp_run *r)
{
    const sp_opts *o = r->o;
    if (recur_speech_list_read(o->d.data, &r->list))
        return cli_fail(r->cmd, "--data is a folder of FSDD-named .wav files or a manifest of "
                        "path<TAB>transcript lines.", "%s", recur_last_error());
    size_t *idx = NULL, count = 0;
    int rc = speech_select(r->cmd, r->list, &o->d, "train", NULL, &idx, &count);
    if (rc)
        return rc;
    recur_rng rng;
    recur_rng_seed(&rng, speech_seed((uint64_t)r->to->seed ^ STREAM_SPLIT, 0, 0));
    for (size_t i = count - 1; i > 0; i--) {
        size_t j = (size_t)recur_rng_below(&rng, (uint64_t)i + 1), tmp = idx[i];
        idx[i] = idx[j];
        idx[j] = tmp;
    }
    size_t n_val = (size_t)llround((double)count * o->val_fraction);
    if (n_val >= count)
        n_val = count - 1;
    /* training recordings in list order, so the permutations do not depend
     * on the split's shuffle */
    size_t *train_idx = idx + n_val;
    const size_t n_train = count - n_val;
    for (size_t i = 1; i < n_train; i++)
        for (size_t j = i; j > 0 && train_idx[j - 1] > train_idx[j]; j--) {
            size_t tmp = train_idx[j];
            train_idx[j] = train_idx[j - 1];
            train_idx[j - 1] = tmp;
        }
    rc = speech_load_clips(r->cmd, r->list, train_idx, n_train, r->rate, &r->train);
    if (rc == CLI_OK && n_val)
        rc = speech_load_clips(r->cmd, r->list, idx, n_val, r->rate, &r->val);
    free(idx);
    return rc;
}

/* A new model: the alphabet is the set of letters of the training
 * transcripts (plus the space between words of connected utterances). */
static int make_model(sp_run *r)
{
    recur_speech_config c;
    int rc = config_from_options(r->cmd, r->o, &c);
    if (rc)
        return rc;
    size_t total = 2;
    for (size_t i = 0; i < r->train.count; i++)
        total += strlen(r->train.transcripts[i]);
    char *text = malloc(total), *at = text;
    if (!text)
        return cli_fail(r->cmd, "", "out of memory");
    for (size_t i = 0; i < r->train.count; i++) {
        size_t len = strlen(r->train.transcripts[i]);
        memcpy(at, r->train.transcripts[i], len);
        at += len;
    }
    if (r->connected && r->train.spaced)
        *at++ = ' ';
    recur_vocab *alphabet = NULL;
    int status = recur_vocab_build(text, (size_t)(at - text), RECUR_VOCAB_CHARS, &alphabet);
    free(text);
    if (status)
        return cli_fail(r->cmd, "Transcripts must be UTF-8.", "%s", recur_last_error());
    status = recur_speech_create(&c, alphabet, &r->model);
    recur_vocab_free(alphabet);
    if (status)
        return cli_fail(r->cmd, "", "cannot create the model: %s", recur_last_error());
    recur_speech_init(r->model, trainer_rng(r->t));
    if (c.norm == RECUR_NORM_GLOBAL)
        return measure_norm(r);
    return CLI_OK;
}

static int build_sets(sp_run *r)
{
    int status;
    if (!r->connected) {
        for (size_t i = 0; !r->o->augment && i < r->train.count; i++)
            if ((status = speech_set_add(&r->train_set, r->model, r->train.samples[i],
                                         r->train.lengths[i], r->train.transcripts[i],
                                         r->train.paths[i])))
                return speech_set_fail(r->cmd, status, r->train.paths[i],
                                       r->train.transcripts[i]);
        for (size_t i = 0; i < r->val.count; i++)
            if ((status = speech_set_add(&r->val_set, r->model, r->val.samples[i],
                                         r->val.lengths[i], r->val.transcripts[i],
                                         r->val.paths[i])))
                return speech_set_fail(r->cmd, status, r->val.paths[i], r->val.transcripts[i]);
        r->epoch_size = (int64_t)r->train.count;
    } else {
        for (int64_t i = 0; r->val.count && i < r->o->val_utterances; i++) {
            float *samples = NULL;
            size_t len = 0;
            char *text = NULL, name[64];
            snprintf(name, sizeof name, "validation utterance %" PRId64, i);
            status = speech_make_connected(&r->val, &r->o->d, r->rate,
                                           speech_seed((uint64_t)r->to->seed ^ STREAM_VAL, 0, i),
                                           &samples, &len, &text);
            if (status == RECUR_OK) {
                status = speech_set_add(&r->val_set, r->model, samples, len, text, name);
                recur_free(samples);
            }
            if (status) {
                int rc = speech_set_fail(r->cmd, status, name, text ? text : "");
                free(text);
                return rc;
            }
            free(text);
        }
        /* by default every training recording is used about once an epoch */
        const double mean_digits = (r->o->d.min_digits + r->o->d.max_digits) / 2.0;
        r->epoch_size = r->o->epoch_utterances > 0
                            ? r->o->epoch_utterances
                            : (int64_t)ceil((double)r->train.count / mean_digits);
    }
    /* MPI: the epoch in batches of --batch on each of the ranks */
    r->global_batch = (int64_t)r->o->batch * dist_size();
    r->spe = (r->epoch_size + r->global_batch - 1) / r->global_batch;
    r->perm = malloc((r->train.count ? r->train.count : 1) * sizeof *r->perm);
    r->idx = malloc((size_t)r->o->batch * sizeof *r->idx);
    if (!r->perm || !r->idx)
        return cli_fail(r->cmd, "", "out of memory");
    r->perm_epoch = -1;
    return CLI_OK;
}

/* "runs/speech-<data folder or manifest name>" */
static void default_out(const char *data, char *out, size_t size)
{
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", data);
    size_t len = strlen(copy);
    while (len > 1 && copy[len - 1] == '/')
        copy[--len] = '\0';
    const char *base = strrchr(copy, '/');
    base = base ? base + 1 : copy;
    len = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        len = (size_t)(dot - base);
    snprintf(out, size, "runs/speech-%.*s", (int)(len ? len : 3), len ? base : "run");
}

int cmd_speech_train(int argc, char **argv)
{
    const char *cmd = "speech train";
    sp_opts o = {.features = "fbank", .window = "hamming", .norm = "utterance", .cell = "lstm",
                 .subsample_mode = "stack", .sample_rate = 8000, .mels = 40, .ceps = 13,
                 .fft = 0, .hidden = 128, .layers = 2, .unidirectional = 0, .subsample = 2,
                 .batch = 32, .augment = 0, .window_ms = 25, .hop_ms = 10, .low_hz = 20, .high_hz = 0,
                 .preemphasis = 0.97, .dropout = 0, .val_fraction = 0.1,
                 .epoch_utterances = 0, .val_utterances = 200};
    speech_data_opts_default(&o.d);
    trainer_options to;
    trainer_options_default(&to);
    to.lr = 1e-3;
    to.val_every = 0;
    to.save_every = 500;
    to.out_default_text = "runs/speech-<data folder name>";
    enum { CAPACITY = 110 };
    cli_option options[CAPACITY];
    int count = speech_add_data_options(options, &o.d, FROZEN);
    const cli_option own[] = {
        {"val-fraction", CLI_DOUBLE, &o.val_fraction, "F", "share of the training recordings "
         "held out for validation (drawn with --seed)", 0, 0.9, NULL, NULL, FROZEN, 0},
        {"val-utterances", CLI_INT64, &o.val_utterances, "N", "connected: validation "
         "utterances joined from those recordings", 1, 1e7, NULL, NULL, FROZEN, 0},
        {"epoch-utterances", CLI_INT64, &o.epoch_utterances, "N", "connected: utterances an "
         "epoch", 0, 1e12, NULL, "training recordings / mean digits an utterance", FROZEN, 0},
        {"features", CLI_CHOICE, &o.features, "KIND", "fbank (log-mel energies) or mfcc", 0, 0,
         feature_choices, NULL, FROZEN, 0},
        {"sample-rate", CLI_INT, &o.sample_rate, "HZ", "audio is resampled to this rate", 1000,
         192000, NULL, NULL, FROZEN, 0},
        {"window-ms", CLI_DOUBLE, &o.window_ms, "MS", "analysis window", 1, 1000, NULL, NULL,
         FROZEN, 0},
        {"hop-ms", CLI_DOUBLE, &o.hop_ms, "MS", "frame shift", 0.1, 1000, NULL, NULL, FROZEN, 0},
        {"fft", CLI_INT, &o.fft, "N", "FFT size (0: the smallest power of two >= the window)", 0,
         1 << 22, NULL, NULL, FROZEN, 0},
        {"mels", CLI_INT, &o.mels, "M", "mel filters", 1, 1024, NULL, NULL, FROZEN, 0},
        {"ceps", CLI_INT, &o.ceps, "N", "mfcc: cepstral coefficients kept", 1, 1024, NULL, NULL,
         FROZEN, 0},
        {"low-hz", CLI_DOUBLE, &o.low_hz, "HZ", "lowest filter edge", 0, 1e6, NULL, NULL, FROZEN,
         0},
        {"high-hz", CLI_DOUBLE, &o.high_hz, "HZ", "highest filter edge (0: half the sample "
         "rate)", 0, 1e6, NULL, NULL, FROZEN, 0},
        {"preemphasis", CLI_DOUBLE, &o.preemphasis, "A", "pre-emphasis coefficient (0: off)", 0,
         0.999, NULL, NULL, FROZEN, 0},
        {"window", CLI_CHOICE, &o.window, "KIND", "hamming or hann", 0, 0, window_choices, NULL,
         FROZEN, 0},
        {"norm", CLI_CHOICE, &o.norm, "KIND", "feature normalisation: utterance (each to mean "
         "0, std 1), global (training-set statistics, saved with the model) or none", 0, 0,
         norm_choices, NULL, FROZEN, 0},
        {"cell", CLI_CHOICE, &o.cell, "CELL", "recurrent cell: lstm, gru, rnn_tanh, rnn_relu", 0,
         0, cell_choices, NULL, FROZEN, 0},
        {"hidden", CLI_INT, &o.hidden, "N", "hidden units per layer and direction", 1, 65536,
         NULL, NULL, FROZEN, 0},
        {"layers", CLI_INT, &o.layers, "N", "recurrent layers", 1, 64, NULL, NULL, FROZEN, 0},
        {"unidirectional", CLI_FLAG, &o.unidirectional, NULL, "forward direction only (the "
         "default is bidirectional)", 0, 0, NULL, NULL, FROZEN, 0},
        {"dropout", CLI_DOUBLE, &o.dropout, "P", "dropout between recurrent layers", 0, 0.99,
         NULL, NULL, FROZEN, 0},
        {"subsample", CLI_INT, &o.subsample, "K", "the stack sees every K-th frame step", 1, 64,
         NULL, NULL, FROZEN, 0},
        {"subsample-mode", CLI_CHOICE, &o.subsample_mode, "MODE", "stack (K frames "
         "concatenated) or skip (every K-th frame)", 0, 0, subsample_choices, NULL, FROZEN, 0},
        {"batch", CLI_INT, &o.batch, "B", "utterances a step", 1, 1 << 16, NULL, NULL, FROZEN, 0},
        {"augment", CLI_FLAG, &o.augment, NULL, "isolated: redraw each training recording every "
         "epoch with silence up to --edge-max at both ends, speed in --speed-min..--speed-max "
         "and noise at --snr (validation stays clean)", 0, 0, NULL, NULL, FROZEN, 0},
    };
    memcpy(options + count, own, sizeof own);
    count += (int)(sizeof own / sizeof own[0]);
    int added = trainer_add_options(options + count, CAPACITY - 1 - count, &to);
    if (added < 0)
        return cli_fail(cmd, "", "internal error: the option table is too small");
    count += added;
    options[count] = (cli_option)CLI_END;
    int status = cli_parse(cmd, options, argc, argv, "--data PATH [options]",
                           "Trains a CTC speech recognizer (features -> recurrent stack -> "
                           "letters + blank) on the\ntraining split of PATH, writing checkpoints "
                           "and metrics to --out. Ctrl-C saves and stops;\n--resume continues "
                           "exactly.");
    if (status == CLI_HELP_SHOWN)
        return CLI_OK;
    if (status)
        return status;

    sp_run r;
    memset(&r, 0, sizeof r);
    r.cmd = cmd;
    r.o = &o;
    r.to = &to;
    int rc = trainer_create(cmd, options, &to, argc, argv, &r.t);
    if (rc)
        return rc;
    if (!to.resume && !o.d.data) {
        rc = cli_usage(cmd, "--data PATH is required");
        goto done;
    }
    char out_dir[4200];
    if (o.d.data)
        default_out(o.d.data, out_dir, sizeof out_dir);
    if ((rc = trainer_open_run(r.t, o.d.data ? out_dir : NULL)))
        goto done;
    if (to.resume) {
        recur_st *st = NULL;
        const char *latest = trainer_latest_path(r.t);
        if (recur_st_open(latest, &st) || recur_speech_read(st, latest, &r.model) ||
            recur_train_state_read(st, latest, recur_speech_size(r.model), &r.resumed)) {
            recur_st_free(st);
            rc = cli_fail(cmd, "--resume continues the run whose folder is --out; start a new run "
                          "without --resume.", "cannot resume: %s", recur_last_error());
            goto done;
        }
        recur_st_free(st);
        if ((rc = trainer_resume(r.t, r.resumed)))
            goto done;
        if (r.resumed->data_position_count != 2) {
            rc = cli_fail(cmd, "", "cannot resume: %s has no speech data position", latest);
            goto done;
        }
    }
    if ((rc = speech_check_data_opts(cmd, &o.d)) || (rc = trainer_prepare(r.t)))
        goto done;
    r.connected = speech_is_connected(&o.d);
    r.rate = r.model ? recur_speech_get_config(r.model)->features.sample_rate : o.sample_rate;
    if ((rc = load_data(&r)))
        goto done;
    r.data_hash = fingerprint(&r.train);
    if (r.resumed) {
        if (r.resumed->data_tokens != r.train.count || r.resumed->data_hash != r.data_hash) {
            rc = cli_fail(cmd, "Resume with the same --data and split; start a new run for new "
                          "data.", "the training recordings differ from the run's (%zu now, "
                          "%" PRIu64 " in the checkpoint%s)", r.train.count,
                          r.resumed->data_tokens, r.resumed->data_tokens == r.train.count
                                                      ? ", different names or contents" : "");
            goto done;
        }
    } else if ((rc = make_model(&r))) {
        goto done;
    }
    if ((rc = build_sets(&r)))
        goto done;
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
        .params = recur_speech_params(r.model),
        .grads = recur_speech_grads(r.model),
        .n_params = recur_speech_size(r.model),
        .steps_per_epoch = r.spe,
        .step = sp_step,
        .epoch = sp_epoch,
        .validate = r.val_set.count ? sp_validate : NULL,
        .save = sp_save,
        .unit = "utt",
        .unit_csv = "utterances",
        .bits = 0,
        .metric_name = "err",
        .next_hint = "Transcribe with: recur speech transcribe --model %s FILE.wav",
        .shards_data = 1,
    };
    if ((rc = trainer_start(r.t, &task)))
        goto done;
    if (dist_is_main()) {
        const recur_speech_config *c = recur_speech_get_config(r.model);
        char alphabet[256] = "";
        size_t used = 0;
        const recur_vocab *v = recur_speech_alphabet(r.model);
        for (int32_t i = 0; i < recur_vocab_size(v) && used + 8 < sizeof alphabet; i++) {
            size_t len = 0;
            const char *letter = recur_vocab_token(v, i, &len);
            memcpy(alphabet + used, letter, len);
            used += len;
        }
        alphabet[used] = '\0';
        fprintf(stderr, "recur %s: %s %s%s, %d layer%s of %d, %d classes (blank + \"%s\"), "
                "%zu parameters; features %s %d x %g ms / %g ms, norm %s, subsample %d (%s)\n",
                cmd, r.resumed ? "resuming" : "model", c->bidirectional ? "bidirectional " : "",
                recur_cell_name(c->cell), c->num_layers, c->num_layers == 1 ? "" : "s",
                c->hidden_size, recur_speech_num_classes(r.model), alphabet,
                recur_speech_size(r.model), recur_features_kind_name(c->features.kind),
                recur_speech_feature_dim(r.model), c->features.window_ms, c->features.hop_ms,
                recur_norm_name(c->norm), c->subsample, recur_subsample_name(c->subsample_mode));
        char ranks[64] = ""; /* MPI */
        if (dist_active())
            snprintf(ranks, sizeof ranks, " on each of %d ranks", dist_size());
        fprintf(stderr, "recur %s: data %s (%s): %zu training + %zu validation recordings, %d "
                "validation utterances; %" PRId64 " utterances (%" PRId64 " steps of %d%s) an "
                "epoch; %s lr %g, clip %g; %d thread%s (%s)\n", cmd, o.d.data, o.d.task,
                r.train.count, r.val.count, r.val_set.count, r.epoch_size, r.spe, o.batch, ranks,
                to.optimizer, to.lr, to.clip, recur_get_threads(),
                recur_get_threads() == 1 ? "" : "s", recur_blas_backend());
    }
    rc = trainer_run(r.t);
done:
    free_run(&r);
    return rc;
}
