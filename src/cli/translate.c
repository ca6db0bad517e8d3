/* translate.c - `recur translate`: dispatch to the commands (train: 
 * translate_train.c; translating stdin and eval: translate_run.c) and what
 * they share: the fixed split of a pair file, reading pairs, the model
 * file (network + BPE + column names), encoding, batching and scoring. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "translate_cli.h"

static void print_help(FILE *f)
{
    fprintf(f, "Usage: recur translate --model CKPT [options] < sentences\n"
               "       recur translate COMMAND [options]\n\n"
               "Translates sentences with an attention encoder-decoder (docs/translate.md).\n"
               "Without a command: reads source sentences on stdin, one a line, and writes\n"
               "their translations to stdout (its options below; also 'recur translate\n"
               "--help-run').\n\n"
               "Commands:\n"
               "  train   learn a BPE and train a model on the training part of a pair file\n"
               "  eval    BLEU, chrF and loss on a part of a pair file (default: its test part)\n"
               "  average the mean of several checkpoints of one run (checkpoint averaging)\n\n"
               "Run 'recur translate COMMAND --help' for a command's options.\n\n");
}

int cmd_translate(int argc, char **argv)
{
    if (argc < 1) {
        print_help(stderr);
        return CLI_USAGE;
    }
    const char *sub = argv[0];
    const int help = strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 ||
                     strcmp(sub, "help") == 0;
    if (help)
        print_help(stdout);
    if (help || strcmp(sub, "--help-run") == 0) {
        char help[] = "--help";
        char *args[] = {help, NULL};
        return cmd_translate_run(1, args);
    }
    if (strcmp(sub, "train") == 0)
        return cmd_translate_train(argc - 1, argv + 1);
    if (strcmp(sub, "eval") == 0)
        return cmd_translate_eval(argc - 1, argv + 1);
    if (strcmp(sub, "average") == 0)
        return cmd_translate_average(argc - 1, argv + 1);
    if (sub[0] == '-')
        return cmd_translate_run(argc, argv);
    fprintf(stderr, "recur translate: unknown command '%s' (commands: train, eval, average; "
                    "or options to translate stdin)\nTry 'recur translate --help'.\n", sub);
    return CLI_USAGE;
}

/* ---- the split ---------------------------------------------------------------- */

tr_split translate_split_of(const char *source)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *s = (const unsigned char *)source; *s; s++)
        h = (h ^ *s) * 0x100000001b3ull;
    const uint64_t part = h % 20;
    return part == 0 ? TR_TEST : part == 1 ? TR_VALIDATION : TR_TRAIN;
}

static const char *const split_names[] = {"train", "validation", "test", "all"};

const char *translate_split_name(tr_split split) { return split_names[split]; }

int translate_split_parse(const char *name, tr_split *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, split_names[i]) == 0) {
            *out = (tr_split)i;
            return 0;
        }
    return -1;
}

/* ---- pairs -------------------------------------------------------------------- */

int translate_read_pairs(const char *cmd, const char *path, const char *source,
                         const char *target, tr_split split, tr_pairs *out)
{
    memset(out, 0, sizeof *out);
    if (strcmp(source, target) == 0)
        return cli_usage(cmd, "the source and target columns are both '%s'", source);
    if (recur_text_rows_read(path, source, target, 1, 0, &out->rows))
        return cli_fail(cmd, "The pair file is a TSV (or CSV) whose header names the source and "
                        "target columns (--source, --target).", "%s", recur_last_error());
    const recur_text_rows *rows = out->rows;
    out->src = malloc(rows->count * sizeof *out->src);
    out->tgt = malloc(rows->count * sizeof *out->tgt);
    out->line = malloc(rows->count * sizeof *out->line);
    if (!out->src || !out->tgt || !out->line) {
        translate_pairs_free(out);
        return cli_fail(cmd, "", "out of memory reading %s", path);
    }
    for (size_t i = 0; i < rows->count; i++) {
        if (split != TR_ALL && translate_split_of(rows->label[i]) != split)
            continue;
        out->src[out->count] = rows->label[i];
        out->tgt[out->count] = rows->text[i];
        out->line[out->count] = rows->line[i];
        out->count++;
    }
    if (out->count == 0) {
        translate_pairs_free(out);
        return cli_fail(cmd, "", "%s: no pairs in its %s part", path, translate_split_name(split));
    }
    return CLI_OK;
}

int translate_augment(const tr_model *m, const char *text, char **out)
{
    char *augmented = NULL;
    if (m->memory) {
        int status = recur_memory_augment(m->memory, text, m->memory_threshold,
                                          (size_t)m->memory_max_chars, &augmented, NULL);
        if (status)
            return status;
    }
    *out = strdup(augmented ? augmented : text);
    recur_free(augmented);
    return *out ? RECUR_OK : recur_set_error(RECUR_E_NOMEM, "out of memory");
}

int translate_pairs_augment(const char *cmd, const tr_model *m, tr_pairs *p)
{
    if (!m->memory || p->owned)
        return CLI_OK;
    p->raw_src = malloc((p->count ? p->count : 1) * sizeof *p->raw_src);
    p->owned = calloc(p->count ? p->count : 1, sizeof *p->owned);
    if (!p->raw_src || !p->owned)
        return cli_fail(cmd, "", "out of memory");
    for (size_t i = 0; i < p->count; i++) {
        if (translate_augment(m, p->src[i], &p->owned[i]))
            return cli_fail(cmd, "", "the fuzzy match of line %lld: %s", (long long)p->line[i],
                            recur_last_error());
        p->raw_src[i] = p->src[i];
        p->src[i] = p->owned[i];
    }
    return CLI_OK;
}

void translate_pairs_free(tr_pairs *p)
{
    for (size_t i = 0; p->owned && i < p->count; i++)
        free(p->owned[i]);
    free(p->owned);
    free(p->raw_src);
    free(p->src);
    free(p->tgt);
    free(p->line);
    recur_text_rows_free(p->rows);
    memset(p, 0, sizeof *p);
}

/* ---- the model file -------------------------------------------------------------- */

#define TRANSLATE_FORMAT 2 /* 2: with a translation memory; 1 without */

int translate_model_write(tr_model *m, recur_st_writer *w)
{
    char *bpe = NULL;
    int status = recur_seq2seq_write(m->net, w);
    if (status == RECUR_OK)
        status = recur_bpe_to_json(m->bpe, &bpe);
    if (status == RECUR_OK)
        status = recur_st_writer_metadata(w, "recur_bpe", bpe);
    recur_free(bpe);
    if (status)
        return status;
    json_t *obj = json_pack("{s:i, s:s, s:s}", "format", m->memory ? 2 : 1, "source", m->source,
                            "target", m->target);
    if (obj && m->memory &&
        (json_object_set_new(obj, "memory_threshold", json_real(m->memory_threshold)) ||
         json_object_set_new(obj, "memory_max_chars", json_integer(m->memory_max_chars)))) {
        json_decref(obj);
        obj = NULL;
    }
    char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(obj);
    if (!text)
        return recur_set_error(RECUR_E_NOMEM, "out of memory writing the model's metadata");
    status = recur_st_writer_metadata(w, "recur_translate", text);
    free(text);
    if (status || !m->memory)
        return status;
    char *memory = NULL;
    if ((status = recur_memory_to_json(m->memory, &memory)) == RECUR_OK)
        status = recur_st_writer_metadata(w, "recur_memory", memory);
    recur_free(memory);
    return status;
}

/* Format 2 (written only with a memory): "memory_threshold" (0..1) and
 * "memory_max_chars" (>= 0), and the memory itself in the metadata
 * "recur_memory". */
static int read_memory(const recur_st *st, const char *name, json_t *obj, tr_model *m)
{
    json_t *th = json_object_get(obj, "memory_threshold");
    json_t *mc = json_object_get(obj, "memory_max_chars");
    if (!th && !mc && json_integer_value(json_object_get(obj, "format")) < 2)
        return RECUR_OK;
    if (!json_is_number(th) || !(json_number_value(th) >= 0 && json_number_value(th) <= 1) ||
        !json_is_integer(mc) || json_integer_value(mc) < 0 || json_integer_value(mc) > 1000000)
        return recur_set_error(RECUR_E_FORMAT, "%s: metadata 'recur_translate': "
                               "\"memory_threshold\" must be a number in 0..1 and "
                               "\"memory_max_chars\" an integer in 0..1000000", name);
    const char *memory = recur_st_metadata(st, "recur_memory");
    if (!memory)
        return recur_set_error(RECUR_E_FORMAT, "%s: a model with a translation memory but no "
                               "'recur_memory' metadata", name);
    int status = recur_memory_from_json(memory, strlen(memory), &m->memory);
    if (status)
        return recur_set_error(status, "%s: metadata 'recur_memory': %s", name,
                               recur_last_error());
    m->memory_threshold = json_number_value(th);
    m->memory_max_chars = (int)json_integer_value(mc);
    return RECUR_OK;
}

static int read_column_name(const char *name, json_t *obj, const char *key, char *out,
                            size_t size)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= size)
        return recur_set_error(RECUR_E_FORMAT, "%s: metadata 'recur_translate': \"%s\" must be "
                               "a column name of 1..%zu bytes", name, key, size - 1);
    snprintf(out, size, "%s", json_string_value(v));
    return RECUR_OK;
}

int translate_model_read(const recur_st *st, const char *name, tr_model *m)
{
    memset(m, 0, sizeof *m);
    const char *meta = recur_st_metadata(st, "recur_translate");
    const char *bpe = recur_st_metadata(st, "recur_bpe");
    if (!meta || !bpe)
        return recur_set_error(RECUR_E_FORMAT, "%s: not a translation model (no '%s' metadata)",
                               name, meta ? "recur_bpe" : "recur_translate");
    json_error_t err;
    json_t *obj = json_loads(meta, 0, &err);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return recur_set_error(RECUR_E_FORMAT, "%s: metadata 'recur_translate' is not a JSON "
                               "object", name);
    }
    json_t *format = json_object_get(obj, "format");
    int status = RECUR_OK;
    if (!json_is_integer(format) || json_integer_value(format) < 1)
        status = recur_set_error(RECUR_E_FORMAT, "%s: metadata 'recur_translate': \"format\" "
                                 "must be a positive integer", name);
    else if (json_integer_value(format) > TRANSLATE_FORMAT)
        status = recur_set_error(RECUR_E_UNSUPPORTED, "%s: translation model format %lld is "
                                 "newer than this recur reads (%d): upgrade recur", name,
                                 (long long)json_integer_value(format), TRANSLATE_FORMAT);
    if (status == RECUR_OK)
        status = read_column_name(name, obj, "source", m->source, sizeof m->source);
    if (status == RECUR_OK)
        status = read_column_name(name, obj, "target", m->target, sizeof m->target);
    if (status == RECUR_OK)
        status = read_memory(st, name, obj, m);
    json_decref(obj);
    if (status) {
        translate_model_free(m);
        return status;
    }
    if ((status = recur_bpe_from_json(bpe, strlen(bpe), &m->bpe))) {
        translate_model_free(m);
        return recur_set_error(status, "%s: metadata 'recur_bpe': %s", name, recur_last_error());
    }
    if ((status = recur_seq2seq_read(st, name, &m->net))) {
        translate_model_free(m);
        return status;
    }
    const recur_seq2seq_config *c = recur_seq2seq_get_config(m->net);
    const int V = recur_bpe_size(m->bpe);
    if (c->src_vocab_size != V || c->tgt_vocab_size != V) {
        translate_model_free(m);
        return recur_set_error(RECUR_E_FORMAT, "%s: the network's vocabularies (%d, %d) do not "
                               "match its BPE's %d tokens", name, c->src_vocab_size,
                               c->tgt_vocab_size, V);
    }
    return RECUR_OK;
}

int translate_model_load(const char *cmd, const char *path, tr_model *m)
{
    recur_st *st = NULL;
    memset(m, 0, sizeof *m);
    int status = recur_st_open(path, &st);
    if (status == RECUR_OK)
        status = translate_model_read(st, path, m);
    recur_st_free(st);
    if (status)
        return cli_fail(cmd, "--model and --init take a checkpoint written by 'recur translate "
                        "train' (best.safetensors or latest.safetensors in its run folder).", "%s",
                        recur_last_error());
    return CLI_OK;
}

void translate_model_free(tr_model *m)
{
    recur_seq2seq_free(m->net);
    recur_bpe_free(m->bpe);
    recur_memory_free(m->memory);
    m->net = NULL;
    m->bpe = NULL;
    m->memory = NULL;
}

/* Whether two models extend their sources alike: no memory, or the same
 * pairs and settings. */
static int same_memory(const tr_model *a, const tr_model *b)
{
    if (!a->memory || !b->memory)
        return !a->memory && !b->memory;
    const size_t n = recur_memory_size(a->memory);
    int same = n == recur_memory_size(b->memory) && a->memory_threshold == b->memory_threshold &&
               a->memory_max_chars == b->memory_max_chars;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(recur_memory_source(a->memory, i), recur_memory_source(b->memory, i)) == 0 &&
               strcmp(recur_memory_target(a->memory, i), recur_memory_target(b->memory, i)) == 0;
    return same;
}

/* Whether two BPEs encode alike: their merge lists are equal. */
static int same_bpe(const recur_bpe *a, const recur_bpe *b)
{
    char *ja = NULL, *jb = NULL;
    const int same = recur_bpe_to_json(a, &ja) == RECUR_OK && recur_bpe_to_json(b, &jb) == RECUR_OK &&
                     strcmp(ja, jb) == 0;
    recur_free(ja);
    recur_free(jb);
    return same;
}

int translate_models_load(const char *cmd, const char *spec, int max, tr_model **models,
                          int *count)
{
    *models = NULL;
    *count = 0;
    int n = 1;
    for (const char *p = spec; *p; p++)
        n += *p == ',';
    if (n > max)
        return cli_usage(cmd, "--model: %d models; at most %d", n, max);
    char *list = strdup(spec);
    tr_model *m = calloc((size_t)n, sizeof *m);
    if (!list || !m) {
        free(list);
        free(m);
        return cli_fail(cmd, "", "out of memory");
    }
    int rc = CLI_OK, k = 0;
    for (char *path = list, *next; rc == CLI_OK && path; path = next, k++) {
        next = strchr(path, ',');
        if (next)
            *next++ = '\0';
        if (!*path)
            rc = cli_usage(cmd, "--model: an empty path in '%s'", spec);
        else if ((rc = translate_model_load(cmd, path, &m[k])) == CLI_OK && k > 0 &&
                 !same_bpe(m[0].bpe, m[k].bpe)) {
            rc = cli_fail(cmd, "The models must share one BPE: train them on the same data with "
                          "the same --vocab.",
                          "%s: its subword vocabulary differs from that of %s", path, list);
            translate_model_free(&m[k]);
        } else if (rc == CLI_OK && k > 0 && !same_memory(&m[0], &m[k])) {
            rc = cli_fail(cmd, "The models must extend their sources alike: train them with the "
                          "same --memory settings on the same data.",
                          "%s: its translation memory (--memory) differs from that of the "
                          "first model", path);
            translate_model_free(&m[k]);
        } else if (rc == CLI_OK && k > 0 && (strcmp(m[0].source, m[k].source) != 0 ||
                                             strcmp(m[0].target, m[k].target) != 0)) {
            rc = cli_fail(cmd, "The models must translate the same columns.",
                          "%s translates %s -> %s, the first model %s -> %s", path,
                          m[k].source, m[k].target, m[0].source, m[0].target);
            translate_model_free(&m[k]);
        }
    }
    free(list);
    if (rc != CLI_OK) {
        translate_models_free(m, k);
        return rc;
    }
    *models = m;
    *count = n;
    return CLI_OK;
}

void translate_models_free(tr_model *models, int count)
{
    for (int k = 0; models && k < count; k++)
        translate_model_free(&models[k]);
    free(models);
}

int translate_encode(const tr_model *m, const char *text, int32_t **ids, size_t *n)
{
    return recur_bpe_encode(m->bpe, text, strlen(text), ids, n);
}

/* ---- translating and scoring --------------------------------------------------------- */

/* Minimum Bayes risk: the n-best list of the beam search, each detokenized,
 * and the recur_mbr_select choice to r (its tokens, text and, wanted, the
 * attention along it). */
static int mbr_sentence(tr_model *m, recur_seq2seq *const *nets, int count, const tr_decode *decode,
                        int want_attention, tr_result *r)
{
    recur_seq2seq_hypothesis *hyps = NULL;
    int found = 0;
    int status = recur_seq2seq_translate_nbest(nets, count, r->src, r->src_len, &decode->search,
                                               decode->search.beam_width, &hyps, &found);
    char **texts = status ? NULL : calloc((size_t)found, sizeof *texts);
    double *logp = status ? NULL : calloc((size_t)found, sizeof *logp);
    if (status == RECUR_OK && (!texts || !logp))
        status = recur_set_error(RECUR_E_NOMEM, "out of memory");
    for (int h = 0; status == RECUR_OK && h < found; h++) {
        logp[h] = decode->by_score ? hyps[h].score : hyps[h].log_prob;
        status = recur_bpe_decode(m->bpe, hyps[h].tokens, (size_t)hyps[h].length, &texts[h],
                                  NULL);
    }
    size_t best = 0;
    if (status == RECUR_OK)
        status = recur_mbr_select((const char *const *)texts, logp, (size_t)found,
                                  decode->temperature, decode->utility, &best, NULL);
    if (status == RECUR_OK) {
        r->out = hyps[best].tokens;
        r->out_len = hyps[best].length;
        hyps[best].tokens = NULL;
        r->text = texts[best];
        texts[best] = NULL;
        if (want_attention)
            status = recur_seq2seq_attention(nets[0], r->src, r->src_len, r->out, r->out_len,
                                             &r->attention);
    }
    for (int h = 0; texts && h < found; h++)
        recur_free(texts[h]);
    free(texts);
    free(logp);
    recur_seq2seq_hypotheses_free(hyps, found);
    return status;
}

int translate_sentence(tr_model *m, int count, const char *text, const tr_decode *decode,
                       int want_attention, tr_result *r)
{
    memset(r, 0, sizeof *r);
    size_t n = 0;
    int status = translate_encode(m, text, &r->src, &n);
    if (status)
        return status;
    if (n == 0) {
        translate_result_free(r);
        return recur_set_error(RECUR_E_INVALID, "the sentence is empty");
    }
    if (n > 100000) /* a line of 100,000 subwords is not a sentence */
        n = 100000;
    r->src_len = (int)n;
    recur_seq2seq *nets[RECUR_SEQ2SEQ_MAX_ENSEMBLE];
    for (int i = 0; i < count && i < RECUR_SEQ2SEQ_MAX_ENSEMBLE; i++)
        nets[i] = m[i].net;
    if (decode->mbr)
        status = mbr_sentence(m, nets, count, decode, want_attention, r);
    else {
        status = recur_seq2seq_translate_ensemble(nets, count, r->src, r->src_len,
                                                  &decode->search, &r->out, &r->out_len,
                                                  want_attention ? &r->attention : NULL);
        if (status == RECUR_OK)
            status = recur_bpe_decode(m->bpe, r->out, (size_t)r->out_len, &r->text, NULL);
    }
    if (status)
        translate_result_free(r);
    return status;
}

void translate_result_free(tr_result *r)
{
    recur_free(r->text);
    recur_free(r->src);
    recur_free(r->out);
    recur_free(r->attention);
    memset(r, 0, sizeof *r);
}

int translate_batch_fill(tr_batch_buf *buf, int B, int32_t *const *src, const int *src_len,
                         int32_t *const *tgt, const int *tgt_len)
{
    int S = 1, T = 1;
    for (int b = 0; b < B; b++) {
        if (src_len[b] > S)
            S = src_len[b];
        if (tgt_len[b] + 1 > T)
            T = tgt_len[b] + 1;
    }
    const size_t src_need = (size_t)S * (size_t)B, tgt_need = (size_t)T * (size_t)B;
    if (src_need > buf->src_cap) {
        int32_t *p = realloc(buf->src, src_need * sizeof *p);
        if (!p)
            return recur_set_error(RECUR_E_NOMEM, "out of memory batching");
        buf->src = p;
        buf->src_cap = src_need;
    }
    if (tgt_need > buf->tgt_cap) {
        int32_t *in = realloc(buf->tgt_in, tgt_need * sizeof *in);
        if (in)
            buf->tgt_in = in;
        int32_t *out = in ? realloc(buf->tgt_out, tgt_need * sizeof *out) : NULL;
        if (!in || !out)
            return recur_set_error(RECUR_E_NOMEM, "out of memory batching");
        buf->tgt_out = out;
        buf->tgt_cap = tgt_need;
    }
    if ((size_t)B > buf->b_cap) {
        int32_t *p = realloc(buf->src_lengths, (size_t)B * sizeof *p);
        if (!p)
            return recur_set_error(RECUR_E_NOMEM, "out of memory batching");
        buf->src_lengths = p;
        buf->b_cap = (size_t)B;
    }
    /* time-major [S, B] and [T, B], padded with 0 */
    memset(buf->src, 0, src_need * sizeof *buf->src);
    memset(buf->tgt_in, 0, tgt_need * sizeof *buf->tgt_in);
    memset(buf->tgt_out, 0, tgt_need * sizeof *buf->tgt_out);
    for (int b = 0; b < B; b++) {
        for (int s = 0; s < src_len[b]; s++)
            buf->src[(size_t)s * B + b] = src[b][s];
        buf->src_lengths[b] = src_len[b];
        buf->tgt_in[b] = RECUR_BPE_BOS;
        for (int t = 0; t < tgt_len[b]; t++) {
            buf->tgt_in[(size_t)(t + 1) * B + b] = tgt[b][t];
            buf->tgt_out[(size_t)t * B + b] = tgt[b][t];
        }
        buf->tgt_out[(size_t)tgt_len[b] * B + b] = RECUR_BPE_EOS;
    }
    buf->batch = (recur_seq2seq_batch){B, S, buf->src, buf->src_lengths, T, buf->tgt_in,
                                       buf->tgt_out};
    return RECUR_OK;
}

void translate_batch_free(tr_batch_buf *buf)
{
    free(buf->src);
    free(buf->src_lengths);
    free(buf->tgt_in);
    free(buf->tgt_out);
    memset(buf, 0, sizeof *buf);
}

/* The summed NLL of one batch's targets under the mean of the count
 * models' distributions; mix is grown to [T*B, V] as needed. */
static int ensemble_nll(tr_model *m, int count, const recur_seq2seq_batch *bt, float **mix,
                        size_t *mix_cap, double *sum, size_t *tokens)
{
    const float *logits[RECUR_SEQ2SEQ_MAX_ENSEMBLE];
    double nll = 0.0;
    int status = RECUR_OK;
    for (int i = 0; status == RECUR_OK && i < count; i++)
        status = recur_seq2seq_evaluate_logits(m[i].net, bt, &nll, tokens, &logits[i]);
    if (status)
        return status;
    if (count == 1) {
        *sum = nll * (double)*tokens;
        return RECUR_OK;
    }
    const int V = recur_seq2seq_get_config(m[0].net)->tgt_vocab_size;
    const size_t rows = (size_t)bt->T * (size_t)bt->B, need = rows * (size_t)V;
    if (need > *mix_cap) {
        float *p = realloc(*mix, need * sizeof *p);
        if (!p)
            return recur_set_error(RECUR_E_NOMEM, "out of memory scoring an ensemble");
        *mix = p;
        *mix_cap = need;
    }
    if ((status = recur_log_mixture(logits, count, rows, V, *mix)))
        return status;
    double total = 0.0;
    for (size_t r = 0; r < rows; r++)
        if (bt->tgt_out[r] != RECUR_BPE_PAD)
            total -= (double)(*mix)[r * (size_t)V + (size_t)bt->tgt_out[r]];
    *sum = total;
    return RECUR_OK;
}

int translate_nll(tr_model *m, int count, const tr_pairs *pairs, size_t limit, int batch,
                  double *nll, size_t *tokens)
{
    const size_t n = limit && limit < pairs->count ? limit : pairs->count;
    int32_t **src = calloc((size_t)batch, sizeof *src), **tgt = calloc((size_t)batch, sizeof *tgt);
    int *src_len = calloc((size_t)batch, sizeof *src_len);
    int *tgt_len = calloc((size_t)batch, sizeof *tgt_len);
    tr_batch_buf buf;
    memset(&buf, 0, sizeof buf);
    double sum = 0.0;
    size_t counted = 0, mix_cap = 0;
    float *mix = NULL;
    int status = src && tgt && src_len && tgt_len ? RECUR_OK
                                                  : recur_set_error(RECUR_E_NOMEM, "out of memory");
    for (size_t first = 0; status == RECUR_OK && first < n; first += (size_t)batch) {
        const int B = (int)(n - first < (size_t)batch ? n - first : (size_t)batch);
        for (int b = 0; status == RECUR_OK && b < B; b++) {
            size_t ns = 0, nt = 0;
            recur_free(src[b]);
            recur_free(tgt[b]);
            src[b] = tgt[b] = NULL;
            status = translate_encode(m, pairs->src[first + b], &src[b], &ns);
            if (status == RECUR_OK)
                status = translate_encode(m, pairs->tgt[first + b], &tgt[b], &nt);
            src_len[b] = (int)ns;
            tgt_len[b] = (int)nt;
        }
        double batch_sum = 0.0;
        size_t batch_tokens = 0;
        if (status == RECUR_OK)
            status = translate_batch_fill(&buf, B, src, src_len, tgt, tgt_len);
        if (status == RECUR_OK)
            status = ensemble_nll(m, count, &buf.batch, &mix, &mix_cap, &batch_sum,
                                  &batch_tokens);
        sum += batch_sum;
        counted += batch_tokens;
    }
    free(mix);
    for (int b = 0; src && tgt && b < batch; b++) {
        recur_free(src[b]);
        recur_free(tgt[b]);
    }
    free(src);
    free(tgt);
    free(src_len);
    free(tgt_len);
    translate_batch_free(&buf);
    *nll = counted ? sum / (double)counted : NAN;
    if (tokens)
        *tokens = counted;
    return status;
}

int translate_score(tr_model *m, int count, const tr_pairs *pairs, size_t limit,
                    const tr_decode *decode, int batch, tr_scores *s)
{
    memset(s, 0, sizeof *s);
    const size_t n = limit && limit < pairs->count ? limit : pairs->count;
    s->hyps = calloc(n, sizeof *s->hyps);
    if (!s->hyps)
        return recur_set_error(RECUR_E_NOMEM, "out of memory");
    int status = RECUR_OK;
    for (size_t i = 0; status == RECUR_OK && i < n; i++) {
        tr_result r;
        status = translate_sentence(m, count, pairs->src[i], decode, 0, &r);
        if (status)
            return recur_set_error(status, "line %lld: %s", (long long)pairs->line[i],
                                   recur_last_error());
        s->hyps[i] = r.text;
        r.text = NULL;
        translate_result_free(&r);
        s->sentences = i + 1;
    }
    if ((status = recur_bleu_corpus((const char *const *)s->hyps, pairs->tgt, n, &s->bleu)) ||
        (status = recur_chrf_corpus((const char *const *)s->hyps, pairs->tgt, n, &s->chrf)))
        return status;
    return translate_nll(m, count, pairs, n, batch, &s->nll, &s->tokens);
}

void translate_scores_free(tr_scores *s)
{
    for (size_t i = 0; s->hyps && i < s->sentences; i++)
        recur_free(s->hyps[i]);
    free(s->hyps);
    memset(s, 0, sizeof *s);
}
