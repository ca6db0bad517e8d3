/* classify.c - `recur classify train | predict | eval`: sequence
 * classification of labelled text (TSV/CSV) or numeric sequences (.ts)
 * with the recurrent classifier of include/recur/classify.h.
 *
 *   train    trains on --data (a stratified --val-fraction held out for
 *            validation) with the shared trainer (trainer.h): the same
 *            training options, progress line, checkpoints and --resume as
 *            `recur train`;
 *   predict  the label and class probabilities of every input line or
 *            sequence of --data with a trained --model;
 *   eval     trains on --data and reports on --test, or cross-validates
 *            (--folds K): accuracy, macro-F1, per-class precision and
 *            recall, the confusion matrix, per-source accuracy, beside a
 *            baseline on the same split (TF-IDF logistic regression for
 *            text, 1-nearest neighbour for sequences); or, with --model,
 *            reports a trained model on --test.
 *
 * Batches are bucketed by length: each epoch shuffles the training
 * sequences (an RNG seeded from --seed and the epoch, so that a resumed
 * run walks the same batches), sorts windows of 50 batches by length, cuts
 * them into batches and shuffles the batch order. The data position saved
 * in checkpoints is (epoch, batch within the epoch). docs/classify.md.
 *
 * MPI (docs/mpi.md): with N ranks and --batch B, the epochs are planned
 * for the global batch of N*B sequences (exactly as one process with
 * --batch N*B plans them) and rank r trains on sequences [r*B, (r+1)*B) of
 * each global batch (see dist_share in dist.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "dist.h"
#include "trainer.h"

#define SAVED CLI_SAVED
#define FROZEN (CLI_SAVED | CLI_FROZEN)
#define MAX_FILES 64
/* Windows of this many batches are sorted by length. */
#define BUCKET_BATCHES 50

static const char *const cell_choices[] = {"lstm", "gru", "rnn_tanh", "rnn_relu", NULL};
static const char *const pool_choices[] = {"mean", "max", "last", NULL};
static const char *const token_choices[] = {"word", "char", NULL};
static const char *const lowercase_choices[] = {"auto", "yes", "no", NULL};

typedef struct cls_opts {
    const char *data, *test, *model, *label_col, *text_col, *tokens, *lowercase, *pretrained;
    const char *cell, *pool;
    int min_count, max_vocab, embed, hidden, layers, directions, batch, folds, json, ensemble;
    int no_baseline, use_dtw;
    double dropout, rnn_dropout, embed_dropout, val_fraction;
} cls_opts;

/* A JSON string literal of s (UTF-8 passes through). */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* ---- the data: every file of --data (and --test) ------------------------------ */

typedef struct corpus {
    int is_ts;
    int file_count;
    char *paths[MAX_FILES];
    int is_test[MAX_FILES];
    recur_text_rows *rows[MAX_FILES]; /* text files */
    recur_seqset *features;           /* .ts files, all appended */
    size_t N;                         /* sequences in all files */
    size_t *first;                    /* [file_count + 1] first row of each file */
    const char **text;                /* [N] borrowed */
    int32_t *label;                   /* [N] class index (-1: none) */
    char **class_names;               /* text: recur_labels_sorted; ts: the set's */
    int class_count;
} corpus;

static void corpus_free(corpus *c)
{
    for (int f = 0; f < c->file_count; f++) {
        free(c->paths[f]);
        recur_text_rows_free(c->rows[f]);
    }
    recur_seqset_free(c->features);
    free(c->first);
    free(c->text);
    free(c->label);
    if (!c->is_ts)
        recur_free(c->class_names);
    memset(c, 0, sizeof *c);
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Splits "a,b,c" into the corpus's paths. */
static int add_paths(const char *cmd, corpus *c, const char *list, int is_test)
{
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0)
            return cli_usage(cmd, "empty file name in '%s'", list);
        if (c->file_count == MAX_FILES)
            return cli_usage(cmd, "at most %d data files", MAX_FILES);
        char *path = malloc(len + 1);
        if (!path)
            return cli_fail(cmd, "", "out of memory");
        memcpy(path, p, len);
        path[len] = '\0';
        c->is_test[c->file_count] = is_test;
        c->paths[c->file_count++] = path;
        p = comma ? comma + 1 : p + len;
    }
    return CLI_OK;
}

/* Reads every file. need_labels: training and evaluation data. */
static int corpus_load(const char *cmd, const cls_opts *o, corpus *c, int need_labels,
                       const recur_classifier *model)
{
    c->is_ts = has_suffix(c->paths[0], ".ts");
    for (int f = 1; f < c->file_count; f++)
        if (has_suffix(c->paths[f], ".ts") != c->is_ts)
            return cli_usage(cmd, "%s and %s: mix of .ts sequences and text tables",
                             c->paths[0], c->paths[f]);
    c->first = calloc((size_t)c->file_count + 1, sizeof *c->first);
    if (!c->first)
        return cli_fail(cmd, "", "out of memory");
    if (c->is_ts) {
        for (int f = 0; f < c->file_count; f++) {
            recur_seqset *s = NULL;
            if (recur_ts_read(c->paths[f], &s))
                return cli_fail(cmd, "", "%s", recur_last_error());
            if (!c->features) {
                c->features = s;
            } else {
                int status = recur_seqset_append(c->features, s);
                recur_seqset_free(s);
                if (status)
                    return cli_fail(cmd, "The files must declare the same @dimensions and "
                                    "@classLabel.", "%s: %s", c->paths[f], recur_last_error());
            }
            c->first[f + 1] = c->features->count;
        }
        c->N = c->features->count;
        c->class_names = c->features->class_names;
        c->class_count = c->features->class_count;
        c->label = malloc(c->N * sizeof *c->label);
        if (!c->label)
            return cli_fail(cmd, "", "out of memory");
        memcpy(c->label, c->features->labels, c->N * sizeof *c->label);
        if (model) {
            /* the model's classes must be the file's, in its order */
            const int K = recur_classifier_get_config(model)->num_classes;
            int same = K == c->class_count;
            for (int k = 0; same && k < K; k++)
                same = strcmp(recur_classifier_class_name(model, k), c->class_names[k]) == 0;
            if (!same)
                return cli_fail(cmd, "", "%s: its @classLabel classes differ from the model's "
                                "(%d classes, the first '%s')", c->paths[0], K,
                                recur_classifier_class_name(model, 0));
        }
        return CLI_OK;
    }
    for (int f = 0; f < c->file_count; f++) {
        if (recur_text_rows_read(c->paths[f], o->label_col, o->text_col, need_labels,
                                 !need_labels, &c->rows[f]))
            return cli_fail(cmd, need_labels ? "Name the columns with --label-col and "
                            "--text-col." : "", "%s", recur_last_error());
        c->N += c->rows[f]->count;
        c->first[f + 1] = c->N;
    }
    c->text = calloc(c->N, sizeof *c->text);
    c->label = malloc(c->N * sizeof *c->label);
    const char **labels = calloc(c->N, sizeof *labels);
    if (!c->text || !c->label || !labels) {
        free(labels);
        return cli_fail(cmd, "", "out of memory");
    }
    size_t n_labels = 0;
    for (int f = 0; f < c->file_count; f++)
        for (size_t i = 0; i < c->rows[f]->count; i++) {
            c->text[c->first[f] + i] = c->rows[f]->text[i];
            if (c->rows[f]->label)
                labels[n_labels++] = c->rows[f]->label[i];
        }
    int rc = CLI_OK;
    if (model) {
        c->class_count = recur_classifier_get_config(model)->num_classes;
        c->class_names = NULL;
    } else if (recur_labels_sorted(labels, n_labels, &c->class_names, &c->class_count)) {
        rc = cli_fail(cmd, "", "%s", recur_last_error());
    } else if (c->class_count < 2) {
        rc = cli_fail(cmd, "A classifier needs examples of at least two classes.",
                      "%s: only one label ('%s')", c->paths[0],
                      c->class_count ? c->class_names[0] : "");
    }
    free(labels);
    if (rc)
        return rc;
    for (int f = 0; f < c->file_count; f++)
        for (size_t i = 0; i < c->rows[f]->count; i++) {
            int32_t k = -1;
            const char *l = c->rows[f]->label ? c->rows[f]->label[i] : NULL;
            for (int j = 0; l && j < c->class_count && k < 0; j++)
                if (strcmp(model ? recur_classifier_class_name(model, j) : c->class_names[j],
                           l) == 0)
                    k = j;
            if (l && k < 0)
                return cli_fail(cmd, "The model knows only the classes it was trained on.",
                                "%s:%lld: unknown label '%s'", c->paths[f],
                                (long long)c->rows[f]->line[i], l);
            c->label[c->first[f] + i] = k;
        }
    return CLI_OK;
}

/* The token set of every row, encoded with `tok`. */
static int corpus_encode(const char *cmd, corpus *c, const recur_tokenizer *tok,
                         const char *const *class_names, int class_count, recur_seqset **out)
{
    *out = NULL;
    for (int f = 0; f < c->file_count; f++) {
        recur_seqset *s = NULL;
        if (recur_seqset_from_rows(c->rows[f], tok, class_names, class_count, c->paths[f], &s)) {
            recur_seqset_free(*out);
            *out = NULL;
            return cli_fail(cmd, "Every text needs at least one token the tokenizer knows or "
                            "marks unknown.", "%s", recur_last_error());
        }
        if (!*out) {
            *out = s;
            continue;
        }
        int status = recur_seqset_append(*out, s);
        recur_seqset_free(s);
        if (status) {
            recur_seqset_free(*out);
            *out = NULL;
            return cli_fail(cmd, "", "%s", recur_last_error());
        }
    }
    return CLI_OK;
}

/* ---- splits ----------------------------------------------------------------------- */

/* Moves a stratified share `fraction` of in[0..n) to val (the rest to
 * train), drawing from rng. */
static void split_stratified(const corpus *c, const size_t *in, size_t n, double fraction,
                             recur_rng *rng, size_t *train, size_t *n_train, size_t *val,
                             size_t *n_val)
{
    *n_train = *n_val = 0;
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!order)
        return;
    memcpy(order, in, n * sizeof *order);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)recur_rng_below(rng, i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    for (int k = -1; k < c->class_count; k++) {
        size_t count = 0, taken = 0;
        for (size_t i = 0; i < n; i++)
            count += c->label[order[i]] == k;
        const size_t want = (size_t)floor((double)count * fraction + 0.5);
        for (size_t i = 0; i < n; i++) {
            if (c->label[order[i]] != k)
                continue;
            if (taken < want) {
                val[(*n_val)++] = order[i];
                taken++;
            } else {
                train[(*n_train)++] = order[i];
            }
        }
    }
    free(order);
}

/* ---- one training run ---------------------------------------------------------------- */

typedef struct by_len {
    size_t index, length;
} by_len;

typedef struct run {
    const char *cmd;
    cls_opts *o;
    trainer_options *to;
    trainer *t;
    recur_classifier *m;
    recur_tokenizer *tok;
    recur_seqset *set;  /* borrowed (the corpus's features) or owned (tokens) */
    int own_set;
    const size_t *train, *val;
    size_t n_train, n_val;
    int64_t epoch, batch_index, plan_epoch;
    size_t global_batch;/* MPI: --batch x ranks (--batch for one process) */
    size_t *plan;       /* [n_train] sequences of this epoch in batch order */
    size_t *batch_start;/* [spe + 1] */
    int64_t spe;
    uint64_t data_hash;
    by_len *items;      /* [n_train] scratch of plan_epoch */
    size_t *order;      /* [spe] scratch of plan_epoch */
    float *val_probs;   /* [n_val, K] */
    size_t *split;      /* [2 * pool] storage of train and val */
    recur_train_state *resumed;
} run;

static int shorter_first(const void *a, const void *b)
{
    const by_len *x = a, *y = b;
    return (x->length > y->length) - (x->length < y->length);
}

/* The batches of epoch e (see the file comment). */
static int plan_epoch(run *r, int64_t e)
{
    const size_t n = r->n_train, B = r->global_batch;
    recur_rng rng;
    recur_rng_seed(&rng, (uint64_t)r->to->seed * 0x9e3779b97f4a7c15ull + (uint64_t)e + 1);
    by_len *items = r->items;
    size_t *order = r->order;
    for (size_t i = 0; i < n; i++)
        items[i] = (by_len){r->train[i], recur_seqset_length(r->set, r->train[i])};
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)recur_rng_below(&rng, i);
        by_len t = items[i - 1];
        items[i - 1] = items[j];
        items[j] = t;
    }
    const size_t window = B * BUCKET_BATCHES;
    for (size_t s = 0; s < n; s += window)
        qsort(items + s, n - s < window ? n - s : window, sizeof *items, shorter_first);
    for (int64_t b = 0; b < r->spe; b++)
        order[b] = (size_t)b;
    for (size_t i = (size_t)r->spe; i > 1; i--) {
        size_t j = (size_t)recur_rng_below(&rng, i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    size_t at = 0;
    for (int64_t b = 0; b < r->spe; b++) {
        const size_t start = order[b] * B, end = start + B < n ? start + B : n;
        r->batch_start[b] = at;
        for (size_t i = start; i < end; i++)
            r->plan[at++] = items[i].index;
    }
    r->batch_start[r->spe] = at;
    r->plan_epoch = e;
    return RECUR_OK;
}

static int task_step(void *ctx, recur_rng *rng, double *loss, double *items)
{
    run *r = ctx;
    if (r->batch_index >= r->spe) {
        r->epoch++;
        r->batch_index = 0;
    }
    if (r->plan_epoch != r->epoch) {
        int status = plan_epoch(r, r->epoch);
        if (status)
            return status;
    }
    const size_t start = r->batch_start[r->batch_index], end = r->batch_start[r->batch_index + 1];
    r->batch_index++;
    size_t lo, hi;
    dist_share(end - start, (size_t)r->o->batch, &lo, &hi);
    recur_rng own;
    rng = dist_share_rng(rng, &own);
    recur_classifier_zero_grad(r->m);
    *items = (double)(hi - lo);
    *loss = 0.0;
    if (hi == lo)
        return RECUR_OK; /* MPI: nothing of this batch is ours: no gradient, no loss */
    int status = recur_classifier_train_step(r->m, r->set, r->plan + start + lo, hi - lo, rng,
                                             loss);
    if (!status)
        dist_weigh_share(recur_classifier_grads(r->m), recur_classifier_size(r->m), loss,
                         hi - lo, end - start);
    return status;
}

static double task_epoch(void *ctx)
{
    const run *r = ctx;
    return (double)r->epoch + (double)r->batch_index / (double)r->spe;
}

/* Accuracy of probs [n, K] against the labels of index[0..n). */
static double accuracy_of(const recur_seqset *set, const size_t *index, size_t n,
                          const float *probs, int K)
{
    size_t correct = 0;
    for (size_t i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < K; k++)
            if (probs[i * (size_t)K + (size_t)k] > probs[i * (size_t)K + (size_t)best])
                best = k;
        correct += best == set->labels[index[i]];
    }
    return n ? (double)correct / (double)n : NAN;
}

static int task_validate(void *ctx, double *loss, double *metric)
{
    run *r = ctx;
    const int K = recur_classifier_get_config(r->m)->num_classes;
    int status = recur_classifier_predict(r->m, r->set, r->val, r->n_val, 64, r->val_probs, loss);
    if (!status)
        *metric = accuracy_of(r->set, r->val, r->n_val, r->val_probs, K);
    return status;
}

static int task_save(void *ctx, const char *path, recur_train_state *ts)
{
    run *r = ctx;
    ts->data_tokens = r->n_train;
    ts->data_hash = r->data_hash;
    ts->data_position_count = 2;
    ts->data_position[0] = r->epoch;
    ts->data_position[1] = r->batch_index;
    return recur_classifier_save(path, r->m, r->tok, ts);
}

/* A fingerprint of the training sequences and their labels. */
static uint64_t data_hash(const recur_seqset *set, const size_t *index, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    const size_t C = set->kind == RECUR_SEQ_FEATURES ? (size_t)set->feature_size : 1;
    for (size_t k = 0; k < n; k++) {
        const size_t i = index[k];
        const int32_t head[2] = {set->labels[i], (int32_t)recur_seqset_length(set, i)};
        const void *body = set->kind == RECUR_SEQ_TOKENS
                               ? (const void *)(set->tokens + set->offsets[i])
                               : (const void *)(set->features + set->offsets[i] * C);
        const size_t bytes = recur_seqset_length(set, i) * C * 4;
        const unsigned char *p = (const unsigned char *)head;
        for (size_t b = 0; b < sizeof head; b++)
            h = (h ^ p[b]) * 1099511628211ull;
        p = body;
        for (size_t b = 0; b < bytes; b++)
            h = (h ^ p[b]) * 1099511628211ull;
    }
    return h;
}

static void run_free(run *r)
{
    trainer_free(r->t);
    recur_classifier_free(r->m);
    recur_tokenizer_free(r->tok);
    if (r->own_set)
        recur_seqset_free(r->set);
    recur_train_state_free(r->resumed);
    free(r->plan);
    free(r->batch_start);
    free(r->items);
    free(r->order);
    free(r->val_probs);
    free(r->split);
    memset(r, 0, sizeof *r);
}

static int file_exists(const char *path)
{
    struct stat info;
    return stat(path, &info) == 0;
}

/* ---- tokenizers and models -------------------------------------------------------------- */

/* The tokenizer of a new run: from the training texts, or the language
 * model's characters with --pretrained (then *lm_rows maps its ids to the
 * language model's rows). */
static int make_tokenizer(const char *cmd, const cls_opts *o, const corpus *c,
                          const size_t *train, size_t n_train, const recur_vocab *lm_vocab,
                          recur_tokenizer **out, int32_t **lm_rows)
{
    *out = NULL;
    *lm_rows = NULL;
    const int chars = strcmp(o->tokens, "char") == 0 || lm_vocab;
    recur_tokenizer_config tc =
        recur_tokenizer_config_default(chars ? RECUR_TOKENS_CHARS : RECUR_TOKENS_WORDS);
    if (strcmp(o->lowercase, "auto") != 0)
        tc.lowercase = strcmp(o->lowercase, "yes") == 0;
    tc.min_count = o->min_count;
    tc.max_vocab = o->max_vocab;
    if (!lm_vocab) {
        const char **texts = malloc((n_train ? n_train : 1) * sizeof *texts);
        if (!texts)
            return cli_fail(cmd, "", "out of memory");
        for (size_t i = 0; i < n_train; i++)
            texts[i] = c->text[train[i]];
        int status = recur_tokenizer_build(&tc, texts, n_train, out);
        free(texts);
        return status ? cli_fail(cmd, "", "cannot build the vocabulary: %s", recur_last_error())
                      : CLI_OK;
    }
    /* the language model's characters; white space other than ' ' never
     * occurs as a token (runs of white space become " ") */
    const int32_t V = recur_vocab_size(lm_vocab);
    const char **tokens = calloc((size_t)V, sizeof *tokens);
    int32_t *from = calloc((size_t)V, sizeof *from);
    size_t n = 0;
    if (!tokens || !from) {
        free(tokens);
        free(from);
        return cli_fail(cmd, "", "out of memory");
    }
    for (int32_t v = 0; v < V; v++) {
        size_t len = 0;
        const char *t = recur_vocab_token(lm_vocab, v, &len);
        const uint32_t cp = recur_vocab_codepoint(lm_vocab, v);
        if (!t || len == 0 || strlen(t) != len || (cp != ' ' && (cp == '\t' || cp == '\n' ||
                                                                  cp == '\r' || cp == '\v' ||
                                                                  cp == '\f')) ||
            strcmp(t, "<unk>") == 0)
            continue;
        if (recur_vocab_get_kind(lm_vocab) == RECUR_VOCAB_BYTES && cp >= 0x80)
            continue;
        tokens[n] = t;
        from[n++] = v;
    }
    int status = recur_tokenizer_from_tokens(&tc, tokens, n, out);
    free(tokens);
    if (status) {
        free(from);
        return cli_fail(cmd, "", "the language model's vocabulary: %s", recur_last_error());
    }
    *lm_rows = malloc(((size_t)n + 1) * sizeof **lm_rows);
    if (!*lm_rows) {
        free(from);
        return cli_fail(cmd, "", "out of memory");
    }
    (*lm_rows)[0] = -1; /* <unk> keeps its own random row */
    for (size_t i = 0; i < n; i++)
        (*lm_rows)[i + 1] = from[i];
    free(from);
    return CLI_OK;
}

/* Applies --pretrained's shape to the options (given ones must agree). */
static int pretrained_shape(const char *cmd, cli_option *options, cls_opts *o,
                            const recur_lm_config *lc)
{
    const char *cell = recur_cell_name(lc->cell);
    if (cli_find(options, "cell")->given && strcmp(o->cell, cell) != 0)
        return cli_usage(cmd, "--cell %s differs from the pretrained model's %s", o->cell, cell);
    if (cli_find(options, "embed")->given && o->embed != lc->embedding_size)
        return cli_usage(cmd, "--embed %d differs from the pretrained model's %d", o->embed,
                         lc->embedding_size);
    if (cli_find(options, "hidden")->given && o->hidden != lc->hidden_size)
        return cli_usage(cmd, "--hidden %d differs from the pretrained model's %d", o->hidden,
                         lc->hidden_size);
    if (cli_find(options, "tokens")->given && strcmp(o->tokens, "char") != 0)
        return cli_usage(cmd, "--pretrained needs --tokens char (a character language model)");
    for (int i = 0; cell_choices[i]; i++)
        if (strcmp(cell_choices[i], cell) == 0)
            o->cell = cell_choices[i];
    o->tokens = "char";
    o->embed = lc->embedding_size;
    o->hidden = lc->hidden_size;
    if (!cli_find(options, "layers")->given)
        o->layers = lc->num_layers;
    return CLI_OK;
}

static int new_model(const char *cmd, const cls_opts *o, const corpus *c, run *r,
                     recur_lm *lm, const int32_t *lm_rows)
{
    recur_classifier_config mc = recur_classifier_config_default();
    mc.input = c->is_ts ? RECUR_SEQ_FEATURES : RECUR_SEQ_TOKENS;
    mc.vocab_size = c->is_ts ? 0 : recur_tokenizer_size(r->tok);
    mc.embedding_size = o->embed;
    mc.feature_size = c->is_ts ? r->set->feature_size : 0;
    recur_cell_parse(o->cell, &mc.cell);
    mc.hidden_size = o->hidden;
    mc.num_layers = o->layers;
    mc.bidirectional = o->directions == 2;
    recur_pool_parse(o->pool, &mc.pool);
    mc.dropout = (float)o->dropout;
    mc.rnn_dropout = (float)o->rnn_dropout;
    mc.embed_dropout = (float)o->embed_dropout;
    mc.num_classes = c->class_count;
    if (recur_classifier_create(&mc, &r->m))
        return cli_fail(cmd, "", "cannot create the model: %s", recur_last_error());
    recur_classifier_init(r->m, trainer_rng(r->t));
    if (recur_classifier_set_classes(r->m, (const char *const *)c->class_names))
        return cli_fail(cmd, "", "class names: %s", recur_last_error());
    if (c->is_ts) {
        const int C = mc.feature_size;
        float *mean = malloc((size_t)C * sizeof *mean), *std = malloc((size_t)C * sizeof *std);
        int status = !mean || !std ||
                     recur_seqset_feature_stats(r->set, r->train, r->n_train, mean, std) ||
                     recur_classifier_set_scaling(r->m, mean, std);
        free(mean);
        free(std);
        if (status)
            return cli_fail(cmd, "", "feature scaling: %s", recur_last_error());
    }
    if (lm) {
        int copied = 0;
        if (recur_classifier_load_lm(r->m, lm, lm_rows, &copied))
            return cli_fail(cmd, "", "--pretrained: %s", recur_last_error());
        if (dist_is_main())
            fprintf(stderr, "recur %s: initialised the embedding and %d recurrent tensors "
                    "from %s\n", cmd, copied, o->pretrained);
    }
    return CLI_OK;
}

/* ---- one training run (train, and each fold of eval) --------------------------------- */

/* Trains on a stratified (1 - --val-fraction) of pool[0..n_pool) (the rest
 * validates) in out_dir. In eval (`strict_resume` 0) a --resume run starts
 * afresh where out_dir holds no checkpoint yet. On success r holds the
 * trained model, its tokenizer and the set of every row. */
static int run_training(const char *cmd, cli_option *options, cls_opts *o, trainer_options *to,
                        int argc, char **argv, corpus *c, const size_t *pool, size_t n_pool,
                        const char *out_dir, const char *what, int strict_resume, run *r)
{
    memset(r, 0, sizeof *r);
    r->cmd = cmd;
    r->o = o;
    r->to = to;
    r->plan_epoch = -1;
    recur_lm *lm = NULL;
    recur_vocab *lm_vocab = NULL;
    int32_t *lm_rows = NULL;
    int rc = trainer_create(cmd, options, to, argc, argv, &r->t);
    if (rc)
        return rc;
    const char *saved_out = to->out;
    to->out = out_dir;
    rc = trainer_open_run(r->t, out_dir);
    to->out = saved_out;
    if (rc)
        return rc;
    const char *latest = trainer_latest_path(r->t);
    if (to->resume && (strict_resume || file_exists(latest))) {
        if (recur_classifier_load(latest, &r->m, &r->tok, &r->resumed))
            return cli_fail(cmd, "--resume continues the run whose folder is --out; start a new "
                            "run without --resume.", "cannot resume: %s", recur_last_error());
        if ((rc = trainer_resume(r->t, r->resumed)))
            return rc;
        if ((recur_classifier_get_config(r->m)->input == RECUR_SEQ_FEATURES) != c->is_ts)
            return cli_fail(cmd, "", "cannot resume: %s classifies %s, --data holds %s", latest,
                            c->is_ts ? "text" : "sequences", c->is_ts ? "sequences" : "text");
    }
    if ((rc = trainer_prepare(r->t)))
        return rc;

    /* the split (after --resume restored --val-fraction and --seed) */
    r->split = malloc(2 * (n_pool ? n_pool : 1) * sizeof *r->split);
    if (!r->split)
        return cli_fail(cmd, "", "out of memory");
    recur_rng split_rng;
    recur_rng_seed(&split_rng, (uint64_t)to->seed ^ 0x5851f42d4c957f2dull);
    size_t *train = r->split, *val = r->split + n_pool;
    split_stratified(c, pool, n_pool, o->val_fraction, &split_rng, train, &r->n_train, val,
                     &r->n_val);
    r->train = train;
    r->val = val;
    if (r->n_train == 0)
        return cli_fail(cmd, "Lower --val-fraction or give more data.", "no training sequences");

    /* data and model */
    if (o->pretrained && !r->m) {
        if (recur_checkpoint_load(o->pretrained, &lm, &lm_vocab, NULL)) {
            rc = cli_fail(cmd, "--pretrained takes a checkpoint of `recur train`.",
                          "--pretrained: %s", recur_last_error());
            goto done;
        }
        if ((rc = pretrained_shape(cmd, options, o, recur_lm_get_config(lm))))
            goto done;
    }
    if (c->is_ts) {
        r->set = c->features;
    } else {
        if (!r->tok && (rc = make_tokenizer(cmd, o, c, train, r->n_train, lm_vocab, &r->tok,
                                            &lm_rows)))
            goto done;
        const char *const *names = r->m ? NULL : (const char *const *)c->class_names;
        char **model_names = NULL;
        if (r->m) {
            model_names = calloc((size_t)c->class_count, sizeof *model_names);
            if (!model_names) {
                rc = cli_fail(cmd, "", "out of memory");
                goto done;
            }
            for (int k = 0; k < c->class_count; k++)
                model_names[k] = (char *)recur_classifier_class_name(r->m, k);
            names = (const char *const *)model_names;
        }
        rc = corpus_encode(cmd, c, r->tok, names, c->class_count, &r->set);
        free(model_names);
        if (rc)
            goto done;
        r->own_set = 1;
    }
    r->data_hash = data_hash(r->set, train, r->n_train);
    if (r->resumed) {
        const recur_train_state *ts = r->resumed;
        if (ts->data_tokens != r->n_train || ts->data_hash != r->data_hash) {
            rc = cli_fail(cmd, "Resume with the same --data and the same data options (or "
                          "start a new run).", "the training data differs from the run's "
                          "(%zu sequences, checkpoint: %" PRIu64 ")", r->n_train,
                          ts->data_tokens);
            goto done;
        }
        if (ts->data_position_count != 2 || ts->data_position[0] < 0 ||
            ts->data_position[1] < 0) {
            rc = cli_fail(cmd, "", "cannot resume: %s lacks the data position", latest);
            goto done;
        }
        r->epoch = ts->data_position[0];
        r->batch_index = ts->data_position[1];
    } else if ((rc = new_model(cmd, o, c, r, lm, lm_rows))) {
        goto done;
    }
    const int K = recur_classifier_get_config(r->m)->num_classes;
    /* MPI: the epochs of the global batch (--batch on each of the ranks) */
    r->global_batch = (size_t)o->batch * (size_t)dist_size();
    r->spe = (int64_t)((r->n_train + r->global_batch - 1) / r->global_batch);
    if (r->batch_index > r->spe) {
        rc = cli_fail(cmd, "", "cannot resume: batch %" PRId64 " of an epoch of %" PRId64,
                      r->batch_index, r->spe);
        goto done;
    }
    r->plan = malloc(r->n_train * sizeof *r->plan);
    r->batch_start = malloc(((size_t)r->spe + 1) * sizeof *r->batch_start);
    r->items = malloc(r->n_train * sizeof *r->items);
    r->order = malloc((size_t)r->spe * sizeof *r->order);
    r->val_probs = malloc((r->n_val ? r->n_val : 1) * (size_t)K * sizeof *r->val_probs);
    if (!r->plan || !r->batch_start || !r->items || !r->order || !r->val_probs) {
        rc = cli_fail(cmd, "", "out of memory");
        goto done;
    }
    trainer_task task = {
        .ctx = r,
        .params = recur_classifier_params(r->m),
        .grads = recur_classifier_grads(r->m),
        .n_params = recur_classifier_size(r->m),
        .steps_per_epoch = r->spe,
        .step = task_step,
        .epoch = task_epoch,
        .validate = r->n_val ? task_validate : NULL,
        .save = task_save,
        .unit = "seq",
        .unit_csv = "sequences",
        .metric_name = "acc",
        .next_hint = strict_resume ? "Predict with: recur classify predict --model %s --data FILE"
                                   : NULL,
        .shards_data = 1,
    };
    if ((rc = trainer_start(r->t, &task)))
        goto done;
    if (dist_is_main()) {
        const recur_classifier_config *mc = recur_classifier_get_config(r->m);
        char ranks[64] = ""; /* MPI */
        if (dist_active())
            snprintf(ranks, sizeof ranks, " on each of %d ranks", dist_size());
        fprintf(stderr, "recur %s: %s%s%s %s%s, %d layer%s of %d, pool %s, %s %d, %d classes, "
                "%zu parameters; dropout %g\n", cmd, what ? what : "", what ? ": " : "",
                r->resumed ? "resuming" : "model", mc->bidirectional ? "bidirectional " : "",
                recur_cell_name(mc->cell), mc->num_layers, mc->num_layers == 1 ? "" : "s",
                mc->hidden_size, recur_pool_name(mc->pool), c->is_ts ? "features" : "vocabulary",
                c->is_ts ? mc->feature_size : mc->vocab_size, K, recur_classifier_size(r->m),
                mc->dropout);
        fprintf(stderr, "recur %s: data: %zu training + %zu validation sequences; batch %d%s, %"
                PRId64 " steps per epoch; %s lr %g, clip %g; %d thread%s\n", cmd, r->n_train,
                r->n_val, o->batch, ranks, r->spe, to->optimizer, to->lr, to->clip,
                recur_get_threads(), recur_get_threads() == 1 ? "" : "s");
    }
    rc = trainer_run(r->t);
done:
    recur_lm_free(lm);
    recur_vocab_free(lm_vocab);
    free(lm_rows);
    return rc;
}

/* ---- options ---------------------------------------------------------------------------- */

/* The defaults (docs/classify.md). Those that depend on the kind of data
 * are NAN here and set by resolve_defaults once the data is read. */
static void defaults(cls_opts *o, trainer_options *to)
{
    *o = (cls_opts){.data = NULL, .test = NULL, .model = NULL, .label_col = "label",
                    .text_col = "text", .tokens = "word", .lowercase = "auto",
                    .pretrained = NULL, .cell = NULL, .pool = "max", .min_count = 2,
                    .max_vocab = 0, .embed = 128, .hidden = 64, .layers = 1, .directions = 2,
                    .batch = 32, .folds = 0, .json = 0, .ensemble = 1, .no_baseline = 0,
                    .use_dtw = -1,
                    .dropout = 0.5, .rnn_dropout = 0, .embed_dropout = NAN,
                    .val_fraction = 0.1};
    trainer_options_default(to);
    to->lr = NAN;
    to->steps = 3000;
    to->epochs = 0; /* set by resolve_defaults */
    to->val_every = 0;
    to->save_every = 0;
    to->log_every = 20;
}

/* Text: an LSTM, 40 epochs at lr 0.001 with embedding dropout 0.5;
 * sequences: a GRU, 300 epochs at lr 0.005 without input dropout (both at
 * most 3000 steps). */
static void resolve_defaults(cli_option *options, cls_opts *o, trainer_options *to, int is_ts)
{
    if (!o->cell)
        o->cell = is_ts ? "gru" : "lstm";
    if (o->pretrained) {
        /* keep the language model's input distribution and smooth states
         * (docs/classify.md: input dropout and max pooling undo pretraining) */
        if (isnan(o->embed_dropout))
            o->embed_dropout = 0.0;
        if (!cli_find(options, "pool")->given)
            o->pool = "mean";
    }
    if (isnan(o->embed_dropout))
        o->embed_dropout = is_ts ? 0.0 : 0.5;
    if (isnan(to->lr))
        to->lr = is_ts ? 0.005 : 0.001;
    if (!cli_find(options, "epochs")->given && !cli_find(options, "steps")->given &&
        !cli_find(options, "time")->given)
        to->epochs = is_ts ? 300 : 40;
}

static void describe_defaults(cli_option *options)
{
    cli_find(options, "lr")->default_text = "0.001 for text, 0.005 for sequences";
    cli_find(options, "epochs")->default_text = "40 for text, 300 for sequences";
    cli_find(options, "cell")->default_text = "lstm for text, gru for sequences";
    cli_find(options, "steps")->default_text = "3000";
}

/* The options shared by train and eval: data, tokenizer, model. */
static int data_and_model_options(cli_option *t, cls_opts *o)
{
    const cli_option entries[] = {
        {"data", CLI_STRING, &o->data, "FILE[,FILE...]", "labelled data: TSV/CSV tables with "
         "--label-col and --text-col, or .ts sequences", 0, 0, NULL, "required", SAVED, 0},
        {"label-col", CLI_STRING, &o->label_col, "NAME", "the label column of a table", 0, 0,
         NULL, NULL, FROZEN, 0},
        {"text-col", CLI_STRING, &o->text_col, "NAME", "the text column of a table", 0, 0, NULL,
         NULL, FROZEN, 0},
        {"tokens", CLI_CHOICE, &o->tokens, "KIND", "text tokens: word (words and punctuation) "
         "or char", 0, 0, token_choices, NULL, FROZEN, 0},
        {"lowercase", CLI_CHOICE, &o->lowercase, "WHEN", "lower-case text: auto (words yes, "
         "characters no), yes, no", 0, 0, lowercase_choices, NULL, FROZEN, 0},
        {"min-count", CLI_INT, &o->min_count, "N", "tokens seen fewer times in training are "
         "unknown", 1, 1e9, NULL, NULL, FROZEN, 0},
        {"max-vocab", CLI_INT, &o->max_vocab, "N", "keep the N most frequent tokens (0: all)",
         0, 1e8, NULL, NULL, FROZEN, 0},
        {"pretrained", CLI_STRING, &o->pretrained, "CKPT", "initialise the embedding and "
         "recurrent layers from a `recur train` language model (character tokens)", 0, 0,
         NULL, "none", FROZEN, 0},
        {"cell", CLI_CHOICE, &o->cell, "CELL", "recurrent cell: lstm, gru, rnn_tanh, rnn_relu",
         0, 0, cell_choices, NULL, FROZEN, 0},
        {"hidden", CLI_INT, &o->hidden, "N", "hidden units per layer and direction", 1, 65536,
         NULL, NULL, FROZEN, 0},
        {"layers", CLI_INT, &o->layers, "N", "recurrent layers", 1, 64, NULL, NULL, FROZEN, 0},
        {"embed", CLI_INT, &o->embed, "N", "embedding size (text)", 1, 65536, NULL, NULL,
         FROZEN, 0},
        {"directions", CLI_INT, &o->directions, "D", "2: read each sequence both ways "
         "(bidirectional), 1: forward only", 1, 2, NULL, NULL, FROZEN, 0},
        {"pool", CLI_CHOICE, &o->pool, "HOW", "pooling over time: mean, max or last (the final "
         "states)", 0, 0, pool_choices, "max; mean with --pretrained", FROZEN, 0},
        {"dropout", CLI_DOUBLE, &o->dropout, "P", "dropout on the pooled vector", 0, 0.99, NULL,
         NULL, FROZEN, 0},
        {"embed-dropout", CLI_DOUBLE, &o->embed_dropout, "P", "dropout on the embedded tokens "
         "or scaled features", 0, 0.99, NULL, "0.5 for text, 0 for sequences and with --pretrained",
         FROZEN, 0},
        {"rnn-dropout", CLI_DOUBLE, &o->rnn_dropout, "P", "dropout between recurrent layers", 0,
         0.99, NULL, NULL, FROZEN, 0},
        {"batch", CLI_INT, &o->batch, "B", "sequences per batch (bucketed by length)", 1,
         1 << 16, NULL, NULL, FROZEN, 0},
        {"val-fraction", CLI_DOUBLE, &o->val_fraction, "F", "stratified share of the training "
         "data held out for validation (0: none)", 0, 0.9, NULL, NULL, FROZEN, 0},
        {"ensemble", CLI_INT, &o->ensemble, "M", "train M models (seeds --seed, --seed + 1, "
         "...; in DIR/member-1 .. DIR/member-M) whose class probabilities are averaged", 1, 100,
         NULL, NULL, 0, 0},
    };
    const int n = (int)(sizeof entries / sizeof entries[0]);
    memcpy(t, entries, sizeof entries);
    return n;
}

/* The default run folder: runs/classify[-eval]-<first data file name>. */
static void default_out(const char *data, const char *kind, char *out, size_t size)
{
    const char *base = strrchr(data, '/');
    base = base ? base + 1 : data;
    size_t len = strcspn(base, ",");
    const char *dot = memchr(base, '.', len);
    if (dot && dot != base)
        len = (size_t)(dot - base);
    snprintf(out, size, "runs/%s-%.*s", kind, (int)len, base);
}

/* ---- recur classify train ---------------------------------------------------------------- */

static int cmd_classify_train(int argc, char **argv)
{
    const char *cmd = "classify train";
    cls_opts o;
    trainer_options to;
    defaults(&o, &to);
    to.out_default_text = "runs/classify-<data file name>";
    enum { CAPACITY = 90 };
    cli_option options[CAPACITY];
    memset(options, 0, sizeof options);
    int n = data_and_model_options(options, &o);
    int added = trainer_add_options(options + n, CAPACITY - 1 - n, &to);
    if (added < 0)
        return cli_fail(cmd, "", "internal error: the option table is too small");
    n += added;
    options[n] = (cli_option)CLI_END;
    describe_defaults(options);
    int status = cli_parse(cmd, options, argc, argv, "--data FILE[,FILE...] [options]",
                           "Trains a recurrent classifier on labelled text (TSV/CSV) or "
                           "numeric sequences (.ts),\nholding out a stratified --val-fraction "
                           "for validation; checkpoints and metrics go to\n--out. Ctrl-C saves "
                           "and stops; --resume continues exactly.");
    if (status == CLI_HELP_SHOWN)
        return CLI_OK;
    if (status)
        return status;
    if (!o.data)
        return cli_usage(cmd, "--data FILE is required (with --resume: the run's data again)");
    corpus c;
    memset(&c, 0, sizeof c);
    run r;
    memset(&r, 0, sizeof r);
    char out_dir[4096];
    default_out(o.data, "classify", out_dir, sizeof out_dir);
    int rc = add_paths(cmd, &c, o.data, 0);
    if (!rc)
        rc = corpus_load(cmd, &o, &c, 1, NULL);
    if (!rc)
        resolve_defaults(options, &o, &to, c.is_ts);
    size_t *pool = NULL;
    if (!rc) {
        pool = malloc(c.N * sizeof *pool);
        if (!pool)
            rc = cli_fail(cmd, "", "out of memory");
        for (size_t i = 0; pool && i < c.N; i++)
            pool[i] = i;
    }
    const char *dir = to.out ? to.out : out_dir;
    const int64_t seed = to.seed;
    for (int m = 0; !rc && m < o.ensemble; m++) {
        char member_dir[4300], what[64];
        snprintf(member_dir, sizeof member_dir, "%s/member-%d", dir, m + 1);
        snprintf(what, sizeof what, "member %d/%d", m + 1, o.ensemble);
        to.seed = seed + m;
        rc = run_training(cmd, options, &o, &to, argc, argv, &c, pool, c.N,
                          o.ensemble > 1 ? member_dir : dir, o.ensemble > 1 ? what : NULL,
                          o.ensemble == 1, &r);
        run_free(&r);
    }
    if (!rc && o.ensemble > 1 && dist_is_main())
        fprintf(stderr, "recur %s: %d members in %s/member-*; predict with --model %s\n", cmd,
                o.ensemble, dir, dir);
    free(pool);
    corpus_free(&c);
    return rc;
}

/* ---- ensembles: several trained models whose probabilities are averaged -------------- */

typedef struct ensemble {
    int count;
    recur_classifier **m;
    recur_tokenizer **tok;
    char **paths;
} ensemble;

static void ensemble_free(ensemble *e)
{
    for (int i = 0; i < e->count; i++) {
        if (e->m)
            recur_classifier_free(e->m[i]);
        if (e->tok)
            recur_tokenizer_free(e->tok[i]);
        free(e->paths[i]);
    }
    free(e->m);
    free(e->tok);
    free(e->paths);
    memset(e, 0, sizeof *e);
}

static int is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The checkpoint of a run folder: best.safetensors, else latest. */
static char *run_checkpoint(const char *dir)
{
    static const char *const names[] = {"best", "latest"};
    for (int i = 0; i < 2; i++) {
        char path[4400];
        int n = snprintf(path, sizeof path, "%s/%s.safetensors", dir, names[i]);
        if (n > 0 && (size_t)n < sizeof path && file_exists(path))
            return strdup(path);
    }
    return NULL;
}

static int ensemble_add_path(ensemble *e, char *path)
{
    char **grown = realloc(e->paths, (size_t)(e->count + 1) * sizeof *grown);
    if (!grown) {
        free(path);
        return -1;
    }
    e->paths = grown;
    e->paths[e->count++] = path;
    return 0;
}

/* Loads the models of `spec`: checkpoints and run folders separated by
 * commas; a folder stands for its best.safetensors (else latest), or, when
 * it has none, for the members member-1, member-2, ... that `--ensemble`
 * wrote in it. Every member must classify the same input into the same
 * classes, in the same order. */
static int ensemble_load(const char *cmd, const char *spec, ensemble *e)
{
    memset(e, 0, sizeof *e);
    char *copy = strdup(spec);
    if (!copy)
        return cli_fail(cmd, "", "out of memory");
    int rc = CLI_OK;
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); !rc && item;
         item = strtok_r(NULL, ",", &save)) {
        if (!is_directory(item)) {
            char *path = strdup(item);
            if (!path || ensemble_add_path(e, path))
                rc = cli_fail(cmd, "", "out of memory");
            continue;
        }
        char *path = run_checkpoint(item);
        if (path) {
            if (ensemble_add_path(e, path))
                rc = cli_fail(cmd, "", "out of memory");
            continue;
        }
        int members = 0;
        for (int k = 1; !rc; k++) {
            char dir[4200];
            snprintf(dir, sizeof dir, "%s/member-%d", item, k);
            if (!is_directory(dir))
                break;
            if (!(path = run_checkpoint(dir)))
                rc = cli_fail(cmd, "", "%s holds no checkpoint (best.safetensors or "
                              "latest.safetensors)", dir);
            else if (ensemble_add_path(e, path))
                rc = cli_fail(cmd, "", "out of memory");
            members++;
        }
        if (!rc && members == 0)
            rc = cli_fail(cmd, "", "%s holds no checkpoint (best.safetensors, "
                          "latest.safetensors or member-1/...)", item);
    }
    free(copy);
    if (!rc && e->count == 0)
        rc = cli_usage(cmd, "--model names no checkpoint");
    if (!rc) {
        e->m = calloc((size_t)e->count, sizeof *e->m);
        e->tok = calloc((size_t)e->count, sizeof *e->tok);
        if (!e->m || !e->tok)
            rc = cli_fail(cmd, "", "out of memory");
    }
    for (int i = 0; !rc && i < e->count; i++) {
        if (recur_classifier_load(e->paths[i], &e->m[i], &e->tok[i], NULL)) {
            rc = cli_fail(cmd, "", "%s", recur_last_error());
            break;
        }
        if (i == 0)
            continue;
        const recur_classifier_config *a = recur_classifier_get_config(e->m[0]);
        const recur_classifier_config *b = recur_classifier_get_config(e->m[i]);
        int same = a->num_classes == b->num_classes && a->input == b->input &&
                   (a->input != RECUR_SEQ_FEATURES || a->feature_size == b->feature_size);
        for (int k = 0; same && k < a->num_classes; k++)
            same = strcmp(recur_classifier_class_name(e->m[0], k),
                          recur_classifier_class_name(e->m[i], k)) == 0;
        if (!same)
            rc = cli_fail(cmd, "The members of an ensemble must be trained on the same kind of "
                          "data with the same labels.", "%s and %s classify different inputs "
                          "or into different classes", e->paths[0], e->paths[i]);
    }
    if (rc)
        ensemble_free(e);
    return rc;
}

/* probs [c->N, K]: the members' class probabilities of every sequence of
 * c, averaged (each member encodes text with its own tokenizer); lines
 * [c->N] (may be NULL): the source line of each. */
static int ensemble_probs(const char *cmd, ensemble *e, corpus *c, int batch, float *probs,
                          int64_t *lines)
{
    const int K = recur_classifier_get_config(e->m[0])->num_classes;
    char **names = calloc((size_t)K, sizeof *names);
    size_t *index = malloc((c->N ? c->N : 1) * sizeof *index);
    float *one = malloc((c->N ? c->N : 1) * (size_t)K * sizeof *one);
    int rc = names && index && one ? CLI_OK : cli_fail(cmd, "", "out of memory");
    for (size_t i = 0; !rc && i < c->N; i++)
        index[i] = i;
    memset(probs, 0, c->N * (size_t)K * sizeof *probs);
    for (int j = 0; !rc && j < e->count; j++) {
        recur_seqset *set = c->features;
        if (!c->is_ts) {
            for (int k = 0; k < K; k++)
                names[k] = (char *)recur_classifier_class_name(e->m[j], k);
            rc = corpus_encode(cmd, c, e->tok[j], (const char *const *)names, K, &set);
        }
        if (!rc && recur_classifier_predict(e->m[j], set, index, c->N, batch, one, NULL))
            rc = cli_fail(cmd, "", "prediction failed (%s): %s", e->paths[j],
                          recur_last_error());
        if (!rc && j == 0 && lines)
            memcpy(lines, set->lines, c->N * sizeof *lines);
        for (size_t i = 0; !rc && i < c->N * (size_t)K; i++)
            probs[i] += one[i] / (float)e->count;
        if (set != c->features)
            recur_seqset_free(set);
    }
    free(names);
    free(index);
    free(one);
    return rc;
}

/* ---- recur classify predict -------------------------------------------------------------- */

static int cmd_classify_predict(int argc, char **argv)
{
    const char *cmd = "classify predict";
    const char *model_path = NULL, *data = NULL, *label_col = "label", *text_col = "text";
    int json = 0, batch = 64, threads = 0;
    cli_option options[] = {
        {"model", CLI_STRING, &model_path, "CKPT[,CKPT...]", "a checkpoint of `recur classify "
         "train` or its run folder; several (or the folder of an --ensemble run): their class "
         "probabilities are averaged", 0, 0, NULL, "required", 0, 0},
        {"data", CLI_STRING, &data, "FILE", "a table with --text-col (labels optional), plain "
         "text (one input per line) or a .ts file", 0, 0, NULL, "required", 0, 0},
        {"text-col", CLI_STRING, &text_col, "NAME", "the text column of a table", 0, 0, NULL,
         NULL, 0, 0},
        {"label-col", CLI_STRING, &label_col, "NAME", "the label column, when the table has "
         "one (then accuracy goes to stderr)", 0, 0, NULL, NULL, 0, 0},
        {"json", CLI_FLAG, &json, NULL, "one JSON object per line instead of TSV", 0, 0, NULL,
         NULL, 0, 0},
        {"batch", CLI_INT, &batch, "B", "sequences per batch", 1, 1 << 16, NULL, NULL, 0, 0},
        {"threads", CLI_INT, &threads, "N", "threads for the matrix products (0: all cores)", 0,
         4096, NULL, "all cores", 0, 0},
        CLI_END};
    int status = cli_parse(cmd, options, argc, argv, "--model CKPT --data FILE [options]",
                           "Prints the predicted label and the class probabilities of every "
                           "input to stdout:\nTSV with a header (line, label, one column per "
                           "class), or JSON lines with --json.");
    if (status == CLI_HELP_SHOWN)
        return CLI_OK;
    if (status)
        return status;
    if (!model_path || !data)
        return cli_usage(cmd, "--model CKPT and --data FILE are required");
    recur_set_threads(threads);
    ensemble e;
    if (ensemble_load(cmd, model_path, &e))
        return CLI_FAILURE;
    const recur_classifier *m = e.m[0];
    cls_opts o;
    trainer_options to;
    defaults(&o, &to);
    o.label_col = label_col;
    o.text_col = text_col;
    corpus c;
    memset(&c, 0, sizeof c);
    float *probs = NULL;
    int64_t *lines = NULL;
    const recur_classifier_config *mc = recur_classifier_get_config(m);
    const int K = mc->num_classes;
    int rc = add_paths(cmd, &c, data, 0);
    if (!rc && (mc->input == RECUR_SEQ_FEATURES) != has_suffix(data, ".ts"))
        rc = cli_fail(cmd, "", "%s classifies %s; %s is not %s", e.paths[0],
                      mc->input == RECUR_SEQ_FEATURES ? ".ts sequences" : "text", data,
                      mc->input == RECUR_SEQ_FEATURES ? "a .ts file" : "text");
    if (!rc)
        rc = corpus_load(cmd, &o, &c, 0, m);
    if (!rc) {
        probs = malloc((c.N ? c.N : 1) * (size_t)K * sizeof *probs);
        lines = malloc((c.N ? c.N : 1) * sizeof *lines);
        rc = probs && lines ? ensemble_probs(cmd, &e, &c, batch, probs, lines)
                            : cli_fail(cmd, "", "out of memory");
    }
    if (!rc) {
        if (!json) {
            printf("line\tlabel");
            for (int k = 0; k < K; k++)
                printf("\t%s", recur_classifier_class_name(m, k));
            putchar('\n');
        }
        size_t correct = 0, labelled = 0;
        for (size_t i = 0; i < c.N; i++) {
            const float *p = probs + i * (size_t)K;
            int best = 0;
            for (int k = 1; k < K; k++)
                if (p[k] > p[best])
                    best = k;
            if (c.label[i] >= 0) {
                labelled++;
                correct += c.label[i] == best;
            }
            const long long line = (long long)lines[i];
            if (json) {
                printf("{\"line\": %lld, \"label\": ", line);
                json_string(stdout, recur_classifier_class_name(m, best));
                printf(", \"probabilities\": {");
                for (int k = 0; k < K; k++) {
                    printf("%s", k ? ", " : "");
                    json_string(stdout, recur_classifier_class_name(m, k));
                    printf(": %.6f", p[k]);
                }
                printf("}}\n");
            } else {
                printf("%lld\t%s", line, recur_classifier_class_name(m, best));
                for (int k = 0; k < K; k++)
                    printf("\t%.6f", p[k]);
                putchar('\n');
            }
        }
        if (labelled)
            fprintf(stderr, "recur %s: accuracy %.4f on the %zu labelled inputs%s\n", cmd,
                    (double)correct / (double)labelled, labelled,
                    e.count > 1 ? " (the members' mean probabilities)" : "");
    }
    free(probs);
    free(lines);
    corpus_free(&c);
    ensemble_free(&e);
    return rc;
}

/* ---- recur classify eval ------------------------------------------------------------------- */

/* Adds the model's class probabilities of sequences index[0..n) to
 * sum[index[i] * K ..] (K classes). */
static int add_probs(const char *cmd, recur_classifier *m, const recur_seqset *set,
                     const size_t *index, size_t n, float *sum)
{
    const size_t K = (size_t)recur_classifier_get_config(m)->num_classes;
    float *probs = malloc((n ? n : 1) * K * sizeof *probs);
    if (!probs)
        return cli_fail(cmd, "", "out of memory");
    if (recur_classifier_predict(m, set, index, n, 64, probs, NULL)) {
        free(probs);
        return cli_fail(cmd, "", "prediction failed: %s", recur_last_error());
    }
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < K; k++)
            sum[index[i] * K + k] += probs[i * K + k];
    free(probs);
    return CLI_OK;
}

/* pred[index[i]] = the most probable of the K classes in sum[index[i] * K ..]. */
static void argmax_into(const float *sum, int K, const size_t *index, size_t n, int32_t *pred)
{
    for (size_t i = 0; i < n; i++) {
        const float *p = sum + index[i] * (size_t)K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (p[k] > p[best])
                best = k;
        pred[index[i]] = best;
    }
}

/* Trains --ensemble members on pool (member m with seed --seed + m, in
 * dir, or dir/member-M when there are several) and adds each one's class
 * probabilities of the test sequences to sum. */
static int train_members(const char *cmd, cli_option *options, cls_opts *o, trainer_options *to,
                         int argc, char **argv, corpus *c, const size_t *pool, size_t n_pool,
                         const char *dir, const char *what, const size_t *test, size_t n_test,
                         float *sum)
{
    const int64_t seed = to->seed;
    int rc = CLI_OK;
    for (int m = 0; !rc && m < o->ensemble; m++) {
        char member_dir[4300], member_what[96];
        if (o->ensemble > 1) {
            snprintf(member_dir, sizeof member_dir, "%s/member-%d", dir, m + 1);
            snprintf(member_what, sizeof member_what, "%s%smember %d/%d", what ? what : "",
                     what ? ", " : "", m + 1, o->ensemble);
        } else {
            snprintf(member_dir, sizeof member_dir, "%s", dir);
            snprintf(member_what, sizeof member_what, "%s", what ? what : "");
        }
        to->seed = seed + m;
        run r;
        rc = run_training(cmd, options, o, to, argc, argv, c, pool, n_pool, member_dir,
                          member_what[0] ? member_what : NULL, 0, &r);
        if (!rc)
            rc = add_probs(cmd, r.m, r.set, test, n_test, sum);
        run_free(&r);
    }
    to->seed = seed;
    return rc;
}

/* DTW when the whole comparison is cheap enough (about 3e9 cell updates). */
static int choose_dtw(const cls_opts *o, const corpus *c, const size_t *train, size_t n_train,
                      const size_t *test, size_t n_test)
{
    if (o->use_dtw >= 0)
        return o->use_dtw;
    double a = 0, b = 0;
    for (size_t i = 0; i < n_train; i++)
        a += (double)recur_seqset_length(c->features, train[i]);
    for (size_t i = 0; i < n_test; i++)
        b += (double)recur_seqset_length(c->features, test[i]);
    return a * b * (double)c->features->feature_size < 3e9;
}

/* The baseline's predictions for test[0..n_test) trained on train[0..n_train). */
static int baseline_into(const char *cmd, const cls_opts *o, corpus *c, const size_t *train,
                         size_t n_train, const size_t *test, size_t n_test, int32_t *pred,
                         const char **name)
{
    int32_t *out = malloc((n_test ? n_test : 1) * sizeof *out);
    if (!out)
        return cli_fail(cmd, "", "out of memory");
    int status;
    if (c->is_ts) {
        const int dtw = choose_dtw(o, c, train, n_train, test, n_test);
        *name = dtw ? "1-NN DTW" : "1-NN Euclidean (resampled)";
        status = recur_baseline_nearest(c->features, train, n_train, test, n_test, dtw, out);
    } else {
        *name = "TF-IDF 1-2-gram logistic regression";
        recur_tokenizer_config tc = recur_tokenizer_config_default(RECUR_TOKENS_WORDS);
        recur_tokenizer *tok = NULL;
        recur_seqset *set = NULL;
        const char **texts = malloc((n_train ? n_train : 1) * sizeof *texts);
        status = texts ? RECUR_OK : RECUR_E_NOMEM;
        for (size_t i = 0; !status && i < n_train; i++)
            texts[i] = c->text[train[i]];
        if (!status && !(status = recur_tokenizer_build(&tc, texts, n_train, &tok))) {
            if (corpus_encode(cmd, c, tok, (const char *const *)c->class_names, c->class_count,
                              &set)) {
                free(texts);
                free(out);
                recur_tokenizer_free(tok);
                return CLI_FAILURE;
            }
            status = recur_baseline_tfidf(set, train, n_train, test, n_test, out);
        }
        free(texts);
        recur_seqset_free(set);
        recur_tokenizer_free(tok);
    }
    if (status) {
        free(out);
        return cli_fail(cmd, "", "baseline: %s", recur_last_error());
    }
    for (size_t i = 0; i < n_test; i++)
        pred[test[i]] = out[i];
    free(out);
    return CLI_OK;
}

/* Which corpus file holds row i. */
static int file_of(const corpus *c, size_t i)
{
    int f = 0;
    while (f + 1 < c->file_count && i >= c->first[f + 1])
        f++;
    return f;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int report(const char *cmd, const cls_opts *o, const corpus *c, const size_t *rows,
                  size_t n, const int32_t *pred, const int32_t *base, const char *base_name_text,
                  const char *protocol, const char *const *class_names, double seconds)
{
    int32_t *truth = malloc((n ? n : 1) * sizeof *truth), *p = malloc((n ? n : 1) * sizeof *p);
    int32_t *bp = malloc((n ? n : 1) * sizeof *bp);
    if (!truth || !p || !bp) {
        free(truth);
        free(p);
        free(bp);
        return cli_fail(cmd, "", "out of memory");
    }
    size_t m = 0;
    for (size_t k = 0; k < n; k++) {
        if (c->label[rows[k]] < 0 || pred[rows[k]] < 0)
            continue;
        truth[m] = c->label[rows[k]];
        p[m] = pred[rows[k]];
        bp[m] = base ? base[rows[k]] : 0;
        m++;
    }
    const int K = c->class_count;
    recur_class_metrics *mm = NULL, *bm = NULL;
    int rc = CLI_OK;
    if (recur_class_metrics_compute(truth, p, m, K, &mm) ||
        (base && recur_class_metrics_compute(truth, bp, m, K, &bm)))
        rc = cli_fail(cmd, "", "metrics: %s", recur_last_error());
    /* per source */
    size_t count[MAX_FILES] = {0}, right[MAX_FILES] = {0}, base_right[MAX_FILES] = {0};
    for (size_t k = 0; k < n; k++) {
        const size_t i = rows[k];
        if (c->label[i] < 0 || pred[i] < 0)
            continue;
        const int f = file_of(c, i);
        count[f]++;
        right[f] += pred[i] == c->label[i];
        base_right[f] += base && base[i] == c->label[i];
    }
    int sources = 0;
    for (int f = 0; f < c->file_count; f++)
        sources += count[f] > 0;
    if (!rc && o->json) {
        printf("{\"protocol\": ");
        json_string(stdout, protocol);
        printf(", \"data\": [");
        for (int f = 0; f < c->file_count; f++) {
            printf("%s", f ? ", " : "");
            json_string(stdout, c->paths[f]);
        }
        printf("], \"sequences\": %zu, \"classes\": [", m);
        for (int k = 0; k < K; k++) {
            printf("%s", k ? ", " : "");
            json_string(stdout, class_names[k]);
        }
        printf("],\n \"model\": {\"accuracy\": %.6f, \"macro_f1\": %.6f, \"precision\": [",
               mm->accuracy, mm->macro_f1);
        for (int k = 0; k < K; k++)
            printf("%s%.6f", k ? ", " : "", mm->precision[k]);
        printf("], \"recall\": [");
        for (int k = 0; k < K; k++)
            printf("%s%.6f", k ? ", " : "", mm->recall[k]);
        printf("], \"f1\": [");
        for (int k = 0; k < K; k++)
            printf("%s%.6f", k ? ", " : "", mm->f1[k]);
        printf("], \"support\": [");
        for (int k = 0; k < K; k++)
            printf("%s%" PRId64, k ? ", " : "", mm->support[k]);
        printf("], \"confusion\": [");
        for (int a = 0; a < K; a++) {
            printf("%s[", a ? ", " : "");
            for (int b = 0; b < K; b++)
                printf("%s%" PRId64, b ? ", " : "", mm->confusion[a * K + b]);
            printf("]");
        }
        printf("]},\n \"baseline\": ");
        if (bm) {
            printf("{\"name\": ");
            json_string(stdout, base_name_text);
            printf(", \"accuracy\": %.6f, \"macro_f1\": %.6f}", bm->accuracy, bm->macro_f1);
        } else {
            printf("null");
        }
        printf(",\n \"sources\": [");
        int first = 1;
        for (int f = 0; f < c->file_count; f++) {
            if (!count[f])
                continue;
            printf("%s{\"file\": ", first ? "" : ", ");
            first = 0;
            json_string(stdout, c->paths[f]);
            printf(", \"sequences\": %zu, \"accuracy\": %.6f", count[f],
                   (double)right[f] / (double)count[f]);
            if (bm)
                printf(", \"baseline_accuracy\": %.6f", (double)base_right[f] / (double)count[f]);
            printf("}");
        }
        printf("], \"seconds\": %.1f}\n", seconds);
    } else if (!rc) {
        printf("%s: %zu sequences, %d classes, %s\n", o->data, m, K, protocol);
        printf("  %-40s %9s %9s\n", "", "accuracy", "macro-F1");
        printf("  %-40s %9.4f %9.4f\n", "recurrent classifier", mm->accuracy, mm->macro_f1);
        if (bm)
            printf("  %-40s %9.4f %9.4f\n", base_name_text, bm->accuracy, bm->macro_f1);
        if (sources > 1) {
            printf("per source: %28s %9s%s\n", "sequences", "accuracy", bm ? "  baseline" : "");
            for (int f = 0; f < c->file_count; f++) {
                if (!count[f])
                    continue;
                printf("  %-30s %9zu %9.4f", base_name(c->paths[f]), count[f],
                       (double)right[f] / (double)count[f]);
                if (bm)
                    printf(" %9.4f", (double)base_right[f] / (double)count[f]);
                putchar('\n');
            }
        }
        printf("per class (model): %21s %9s %9s %9s\n", "precision", "recall", "F1", "support");
        for (int k = 0; k < K; k++)
            printf("  %-30.30s %9.4f %9.4f %9.4f %9" PRId64 "\n", class_names[k],
                   mm->precision[k], mm->recall[k], mm->f1[k], mm->support[k]);
        printf("confusion matrix (rows: true class, columns: predicted, in the order above):\n");
        for (int a = 0; a < K; a++) {
            printf(" ");
            for (int b = 0; b < K; b++)
                printf(" %6" PRId64, mm->confusion[a * K + b]);
            putchar('\n');
        }
        char took[32];
        cli_duration(seconds, took, sizeof took);
        printf("took %s\n", took);
    }
    recur_class_metrics_free(mm);
    recur_class_metrics_free(bm);
    free(truth);
    free(p);
    free(bp);
    return rc;
}

/* eval --model: a trained model (or an ensemble) on --test (or --data). */
static int eval_model(const char *cmd, cls_opts *o, double t0)
{
    ensemble e;
    if (ensemble_load(cmd, o->model, &e))
        return CLI_FAILURE;
    const recur_classifier *m = e.m[0];
    const char *files = o->test ? o->test : o->data;
    corpus c;
    memset(&c, 0, sizeof c);
    int32_t *pred = NULL;
    size_t *rows = NULL;
    float *probs = NULL;
    const int K = recur_classifier_get_config(m)->num_classes;
    char **names = calloc((size_t)K, sizeof *names);
    for (int k = 0; names && k < K; k++)
        names[k] = (char *)recur_classifier_class_name(m, k);
    int rc = names ? add_paths(cmd, &c, files, 1) : cli_fail(cmd, "", "out of memory");
    if (!rc)
        rc = corpus_load(cmd, o, &c, 1, m);
    if (!rc) {
        pred = malloc((c.N ? c.N : 1) * sizeof *pred);
        rows = malloc((c.N ? c.N : 1) * sizeof *rows);
        probs = malloc((c.N ? c.N : 1) * (size_t)K * sizeof *probs);
        if (!pred || !rows || !probs)
            rc = cli_fail(cmd, "", "out of memory");
        for (size_t i = 0; !rc && i < c.N; i++)
            rows[i] = i;
    }
    if (!rc)
        rc = ensemble_probs(cmd, &e, &c, 64, probs, NULL);
    if (!rc)
        argmax_into(probs, K, rows, c.N, pred);
    if (!rc) {
        const char *saved = o->data;
        o->data = files;
        rc = report(cmd, o, &c, rows, c.N, pred, NULL, NULL,
                    e.count > 1 ? "an ensemble of trained models" : "a trained model",
                    (const char *const *)names, cli_now() - t0);
        o->data = saved;
    }
    free(pred);
    free(rows);
    free(probs);
    free(names);
    corpus_free(&c);
    ensemble_free(&e);
    return rc;
}

static const char *const baseline_choices[] = {"auto", "dtw", "euclidean", "none", NULL};

static int cmd_classify_eval(int argc, char **argv)
{
    const char *cmd = "classify eval";
    cls_opts o;
    trainer_options to;
    defaults(&o, &to);
    o.val_fraction = 0;
    to.out_default_text = "runs/classify-eval-<data file name>";
    const char *baseline = "auto";
    enum { CAPACITY = 100 };
    cli_option options[CAPACITY];
    memset(options, 0, sizeof options);
    int n = data_and_model_options(options, &o);
    const cli_option extra[] = {
        {"test", CLI_STRING, &o.test, "FILE[,FILE...]", "report on this labelled data "
         "(training on all of --data)", 0, 0, NULL, "none", 0, 0},
        {"folds", CLI_INT, &o.folds, "K", "stratified K-fold cross-validation of --data", 2,
         1000, NULL, "none", 0, 0},
        {"model", CLI_STRING, &o.model, "CKPT", "report this trained model on --test (or "
         "--data) instead of training", 0, 0, NULL, "none", 0, 0},
        {"baseline", CLI_CHOICE, &baseline, "KIND", "the baseline beside the model: auto "
         "(text: TF-IDF logistic regression; sequences: 1-NN, DTW when cheap), dtw, euclidean, "
         "none", 0, 0, baseline_choices, NULL, 0, 0},
        {"json", CLI_FLAG, &o.json, NULL, "the report as one JSON object", 0, 0, NULL, NULL, 0,
         0},
    };
    memcpy(options + n, extra, sizeof extra);
    n += (int)(sizeof extra / sizeof extra[0]);
    int added = trainer_add_options(options + n, CAPACITY - 1 - n, &to);
    if (added < 0)
        return cli_fail(cmd, "", "internal error: the option table is too small");
    n += added;
    options[n] = (cli_option)CLI_END;
    describe_defaults(options);
    int status = cli_parse(cmd, options, argc, argv,
                           "--data FILE[,FILE...] (--test FILE | --folds K) [options]",
                           "Trains on --data and reports accuracy, macro-F1, per-class precision "
                           "and recall and\nthe confusion matrix on --test, or cross-validates "
                           "--data with --folds K, beside a\nbaseline on the same split. Each "
                           "training run goes to --out (DIR/fold-K with --folds).");
    if (status == CLI_HELP_SHOWN)
        return CLI_OK;
    if (status)
        return status;
    const double t0 = cli_now();
    o.use_dtw = strcmp(baseline, "dtw") == 0 ? 1 : strcmp(baseline, "euclidean") == 0 ? 0 : -1;
    if (o.model) {
        if (!o.test && !o.data)
            return cli_usage(cmd, "--model needs --test FILE (or --data FILE)");
        return eval_model(cmd, &o, t0);
    }
    if (!o.data)
        return cli_usage(cmd, "--data FILE is required");
    if (!o.test == !o.folds)
        return cli_usage(cmd, "give exactly one of --test FILE and --folds K");
    corpus c;
    memset(&c, 0, sizeof c);
    char out_dir[4096], fold_dir[4200], what[64];
    if (to.out)
        snprintf(out_dir, sizeof out_dir, "%s", to.out);
    else
        default_out(o.data, "classify-eval", out_dir, sizeof out_dir);
    int rc = add_paths(cmd, &c, o.data, 0);
    if (!rc && o.test)
        rc = add_paths(cmd, &c, o.test, 1);
    if (!rc)
        rc = corpus_load(cmd, &o, &c, 1, NULL);
    if (!rc)
        resolve_defaults(options, &o, &to, c.is_ts);
    int32_t *pred = NULL, *base = NULL;
    float *sum = NULL; /* [N, classes] summed class probabilities of the members */
    size_t *pool = NULL, *test = NULL, *rows = NULL;
    int *fold = NULL;
    size_t n_rows = 0;
    const char *base_text = NULL;
    char protocol[128];
    if (!rc) {
        pred = malloc(c.N * sizeof *pred);
        base = malloc(c.N * sizeof *base);
        pool = malloc(c.N * sizeof *pool);
        test = malloc(c.N * sizeof *test);
        rows = malloc(c.N * sizeof *rows);
        fold = malloc(c.N * sizeof *fold);
        sum = calloc(c.N * (size_t)c.class_count, sizeof *sum);
        if (!pred || !base || !pool || !test || !rows || !fold || !sum)
            rc = cli_fail(cmd, "", "out of memory");
        for (size_t i = 0; !rc && i < c.N; i++)
            pred[i] = base[i] = -1;
    }
    const int use_baseline = strcmp(baseline, "none") != 0;
    if (!rc && o.test) {
        size_t n_pool = 0, n_test = 0;
        for (int f = 0; f < c.file_count; f++)
            for (size_t i = c.first[f]; i < c.first[f + 1]; i++) {
                if (c.is_test[f])
                    test[n_test++] = i;
                else
                    pool[n_pool++] = i;
            }
        snprintf(protocol, sizeof protocol, "trained on --data, tested on %s", o.test);
        rc = train_members(cmd, options, &o, &to, argc, argv, &c, pool, n_pool, out_dir, NULL,
                           test, n_test, sum);
        if (!rc)
            argmax_into(sum, c.class_count, test, n_test, pred);
        if (!rc && use_baseline)
            rc = baseline_into(cmd, &o, &c, pool, n_pool, test, n_test, base, &base_text);
        memcpy(rows, test, n_test * sizeof *rows);
        n_rows = n_test;
    } else if (!rc) {
        recur_seqset view;
        memset(&view, 0, sizeof view);
        view.count = c.N;
        view.labels = c.label;
        view.class_count = c.class_count;
        recur_rng rng;
        recur_rng_seed(&rng, (uint64_t)to.seed ^ 0xf01d5ull);
        if (o.folds > (int)c.N || recur_seqset_folds(&view, o.folds, &rng, fold))
            rc = cli_usage(cmd, "--folds %d: %s", o.folds,
                           o.folds > (int)c.N ? "more folds than sequences" : recur_last_error());
        snprintf(protocol, sizeof protocol, "%d-fold cross-validation", o.folds);
        for (int k = 0; !rc && k < o.folds; k++) {
            size_t n_pool = 0, n_test = 0;
            for (size_t i = 0; i < c.N; i++) {
                if (fold[i] == k)
                    test[n_test++] = i;
                else
                    pool[n_pool++] = i;
            }
            snprintf(fold_dir, sizeof fold_dir, "%s/fold-%d", out_dir, k + 1);
            snprintf(what, sizeof what, "fold %d/%d", k + 1, o.folds);
            rc = train_members(cmd, options, &o, &to, argc, argv, &c, pool, n_pool, fold_dir,
                               what, test, n_test, sum);
            if (!rc)
                argmax_into(sum, c.class_count, test, n_test, pred);
            if (!rc && use_baseline)
                rc = baseline_into(cmd, &o, &c, pool, n_pool, test, n_test, base, &base_text);
            if (!rc) {
                size_t right = 0;
                for (size_t i = 0; i < n_test; i++)
                    right += pred[test[i]] == c.label[test[i]];
                fprintf(stderr, "recur %s: fold %d/%d: accuracy %.4f on %zu sequences\n", cmd,
                        k + 1, o.folds, (double)right / (double)n_test, n_test);
            }
        }
        for (size_t i = 0; i < c.N; i++)
            rows[n_rows++] = i;
    }
    if (!rc)
        rc = report(cmd, &o, &c, rows, n_rows, pred, use_baseline ? base : NULL, base_text,
                    protocol, (const char *const *)c.class_names, cli_now() - t0);
    free(pred);
    free(sum);
    free(base);
    free(pool);
    free(test);
    free(rows);
    free(fold);
    corpus_free(&c);
    return rc;
}

/* ---- dispatch -------------------------------------------------------------------------------- */

int cmd_classify(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : NULL;
    if (sub && strcmp(sub, "train") == 0)
        return cmd_classify_train(argc - 1, argv + 1);
    if (sub && strcmp(sub, "predict") == 0)
        return cmd_classify_predict(argc - 1, argv + 1);
    if (sub && strcmp(sub, "eval") == 0)
        return cmd_classify_eval(argc - 1, argv + 1);
    FILE *out = sub && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) ? stdout : stderr;
    fprintf(out, "Usage: recur classify <train|predict|eval> [options]\n\n"
                 "Classifies whole sequences: labelled text (TSV/CSV with label and text "
                 "columns) or\nnumeric sequences (.ts files of the UEA/UCR archive).\n\n"
                 "  train    train a classifier (checkpoints, metrics, --resume)\n"
                 "  predict  label and class probabilities of each input\n"
                 "  eval     train and report on --test, or cross-validate with --folds K,\n"
                 "           beside a baseline\n\n"
                 "'recur classify <command> --help' lists the options with their defaults.\n");
    if (out == stdout)
        return CLI_OK;
    if (sub)
        fprintf(stderr, "recur classify: unknown command '%s'\n", sub);
    return CLI_USAGE;
}
