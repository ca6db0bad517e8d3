/* translate_run.c - `recur translate` (source sentences on stdin, one a
 * line, translations on stdout; --attention FILE writes each sentence's
 * attention matrix as a JSON line) and `recur translate eval` (BLEU, chrF
 * and loss on a part of a pair file). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "translate_cli.h"

/* Decoding options shared by both commands. */
typedef struct decode_opts {
    int beam, max_length, threads;
    double length_penalty, coverage_penalty, mbr_temperature;
    const char *mbr, *mbr_weights;
} decode_opts;

static const char *const mbr_choices[] = {"none", "bleu", "chrf", NULL};
static const char *const mbr_weight_choices[] = {"prob", "score", NULL};

static int add_decode_options(cli_option *table, decode_opts *d)
{
    const cli_option entries[] = {
        {"beam", CLI_INT, &d->beam, "N", "beam width (1: greedy decoding)", 1,
         RECUR_SEQ2SEQ_MAX_BEAM, NULL, NULL, 0, 0},
        {"length-penalty", CLI_DOUBLE, &d->length_penalty, "ALPHA", "rank hypotheses by log p / "
         "length^ALPHA (0: raw log p)", 0, 10, NULL, NULL, 0, 0},
        {"coverage-penalty", CLI_DOUBLE, &d->coverage_penalty, "BETA", "add BETA * sum over "
         "the source subwords of log min(attention received, 1): finished hypotheses that "
         "left source subwords unattended rank lower (Wu et al. 2016; 0: off)", 0, 10, NULL,
         NULL, 0, 0},
        {"mbr", CLI_CHOICE, &d->mbr, "UTILITY", "minimum Bayes risk decoding: of the beam's "
         "--beam best translations, output the one with the highest expected sentence BLEU or "
         "chrF against the others, weighted as --mbr-weights says (none: the beam's best)", 0,
         0, mbr_choices, NULL, 0, 0},
        {"mbr-temperature", CLI_DOUBLE, &d->mbr_temperature, "T", "--mbr weights each "
         "translation by exp(w / T), w its log p or score (--mbr-weights): larger T is "
         "flatter", 0.01, 1e6, NULL, NULL, 0, 0},
        {"mbr-weights", CLI_CHOICE, &d->mbr_weights, "FROM", "--mbr weights from each "
         "translation's probability (prob), or from its beam score, log p / length^ALPHA, "
         "which does not favour short translations (score)", 0, 0, mbr_weight_choices, NULL, 0,
         0},
        {"max-length", CLI_INT, &d->max_length, "N", "most subwords a translation (0: twice the "
         "source's + 10)", 0, RECUR_SEQ2SEQ_MAX_LENGTH, NULL, NULL, 0, 0},
        {"threads", CLI_INT, &d->threads, "N", "threads for the matrix products (0: all cores)",
         0, 4096, NULL, "all cores", 0, 0},
    };
    memcpy(table, entries, sizeof entries);
    return (int)(sizeof entries / sizeof entries[0]);
}

static tr_decode decode_config(const decode_opts *d)
{
    tr_decode c = {.search = recur_seq2seq_decode_config_default(),
                   .mbr = strcmp(d->mbr, "none") != 0,
                   .temperature = d->mbr_temperature,
                   .by_score = strcmp(d->mbr_weights, "score") == 0};
    c.search.beam_width = d->beam;
    c.search.length_penalty = (float)d->length_penalty;
    c.search.max_length = d->max_length;
    c.search.coverage_penalty = (float)d->coverage_penalty;
    if (c.mbr)
        recur_mbr_utility_parse(d->mbr, &c.utility);
    return c;
}

/* A subword as JSON text: its bytes, or where they are not valid UTF-8 on
 * their own (a byte-level piece of a multi-byte character), the bytes with
 * each ill-formed part as U+FFFD, as recur_bpe_decode gives them. */
static json_t *token_json(const recur_bpe *bpe, int32_t id)
{
    size_t len = 0;
    const char *s = recur_bpe_token(bpe, id, &len);
    json_t *v = s ? json_stringn(s, len) : NULL;
    if (v || id < RECUR_BPE_FIRST_BYTE)
        return v;
    char *text = NULL;
    if (recur_bpe_decode(bpe, &id, 1, &text, &len))
        return NULL;
    v = json_stringn(text, len);
    recur_free(text);
    return v;
}

/* {"line": N, "source": [subwords], "target": [subwords, "</s>"],
 *  "weights": [[...] per target row]} */
static int write_attention(FILE *f, const tr_model *m, int64_t line, const tr_result *r)
{
    json_t *obj = json_object(), *src = json_array(), *tgt = json_array(), *rows = json_array();
    /* obj owns the arrays from here, whether or not setting them succeeds */
    int ok = obj && json_object_set_new(obj, "line", json_integer(line)) == 0 &&
             json_object_set_new(obj, "source", src) == 0 &&
             json_object_set_new(obj, "target", tgt) == 0 &&
             json_object_set_new(obj, "weights", rows) == 0 && src && tgt && rows;
    for (int i = 0; ok && i < r->src_len; i++)
        ok = json_array_append_new(src, token_json(m->bpe, r->src[i])) == 0;
    for (int i = 0; ok && i <= r->out_len; i++) {
        ok = json_array_append_new(
                 tgt, token_json(m->bpe, i < r->out_len ? r->out[i] : RECUR_BPE_EOS)) == 0;
        json_t *row = json_array();
        ok = ok && json_array_append_new(rows, row) == 0;
        for (int j = 0; ok && j < r->src_len; j++)
            ok = json_array_append_new(
                     row, json_real(round((double)r->attention[(size_t)i * r->src_len + j] * 1e6) /
                                    1e6)) == 0;
    }
    char *text =
        ok ? json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(obj);
    if (!text)
        return -1;
    int rc = fprintf(f, "%s\n", text) < 0 ? -1 : 0;
    free(text);
    return rc;
}

/* A translation is written as one line: a model can emit line breaks (a
 * pair file's quoted CSV fields may hold them), which become spaces. */
static void one_line(char *text)
{
    for (char *p = text; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

int cmd_translate_run(int argc, char **argv)
{
    const char *cmd = "translate";
    const char *model_path = NULL, *attention_path = NULL;
    decode_opts d = {.beam = 5, .length_penalty = 0.6, .mbr_temperature = 1.0, .mbr = "none",
                     .mbr_weights = "prob"};
    cli_option options[16];
    const cli_option own[] = {
        {"model", CLI_STRING, &model_path, "FILE[,FILE...]", "checkpoint written by recur "
         "translate train; several, joined by commas, translate as an ensemble (the mean of "
         "their distributions; one BPE)", 0, 0, NULL, "required", 0, 0},
        {"attention", CLI_STRING, &attention_path, "FILE", "write each sentence's attention "
         "weights to FILE, one JSON object a line: source and target subwords and a weight row "
         "per target subword (an ensemble: the first model's)", 0, 0, NULL, "none", 0, 0},
    };
    int count = (int)(sizeof own / sizeof own[0]);
    memcpy(options, own, sizeof own);
    count += add_decode_options(options + count, &d);
    options[count] = (cli_option)CLI_END;
    int rc = cli_parse(cmd, options, argc, argv, "--model FILE [options] < sentences",
                       "Reads source sentences on stdin, one a line, and writes each translation "
                       "to stdout\nas soon as it is made. An empty line or invalid UTF-8 stops "
                       "with an error naming the\nline (exit 1).");
    if (rc == CLI_HELP_SHOWN)
        return CLI_OK;
    if (rc)
        return rc;
    if (!model_path)
        return cli_usage(cmd, "--model FILE is required");
    recur_set_threads(d.threads);
    tr_model *m = NULL;
    int members = 0;
    if ((rc = translate_models_load(cmd, model_path, RECUR_SEQ2SEQ_MAX_ENSEMBLE, &m,
                                        &members)))
        return rc;
    FILE *attention = NULL;
    if (attention_path && !(attention = fopen(attention_path, "w"))) {
        translate_models_free(m, members);
        return cli_fail(cmd, "", "cannot write --attention %s", attention_path);
    }
    const tr_decode decode = decode_config(&d);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t number = 0;
    while (rc == CLI_OK && (len = getline(&line, &cap, stdin)) >= 0) {
        number++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if ((size_t)len != strlen(line)) {
            rc = cli_fail(cmd, "", "stdin line %" PRId64 ": a NUL byte", number);
            break;
        }
        size_t pos = 0;
        uint32_t cp;
        while (pos < (size_t)len && recur_utf8_next(line, (size_t)len, &pos, &cp) == RECUR_OK)
            ;
        if (pos < (size_t)len) {
            rc = cli_fail(cmd, "Input must be UTF-8 text.", "stdin line %" PRId64 ": invalid "
                          "UTF-8 at byte %zu", number, pos + 1);
            break;
        }
        if (strspn(line, " \t") == (size_t)len) {
            rc = cli_fail(cmd, "Give one sentence a line.", "stdin line %" PRId64 " is empty",
                          number);
            break;
        }
        tr_result r;
        char *input = NULL;
        if (translate_augment(&m[0], line, &input) ||
            translate_sentence(m, members, input, &decode, attention != NULL, &r)) {
            rc = cli_fail(cmd, "", "stdin line %" PRId64 ": %s", number, recur_last_error());
            free(input);
            break;
        }
        free(input);
        one_line(r.text);
        printf("%s\n", r.text);
        fflush(stdout);
        if (attention && write_attention(attention, m, number, &r))
            rc = cli_fail(cmd, "", "writing --attention %s failed", attention_path);
        translate_result_free(&r);
    }
    free(line);
    if (attention && fclose(attention) && rc == CLI_OK)
        rc = cli_fail(cmd, "", "writing --attention %s failed", attention_path);
    translate_models_free(m, members);
    return rc;
}

static const char *const split_choices[] = {"test", "validation", "train", "all", NULL};

int cmd_translate_eval(int argc, char **argv)
{
    const char *cmd = "translate eval";
    const char *model_path = NULL, *data = NULL, *split_name = "test", *output = NULL;
    decode_opts d = {.beam = 5, .length_penalty = 0.6, .mbr_temperature = 1.0, .mbr = "none",
                     .mbr_weights = "prob"};
    int64_t limit = 0, examples = 0;
    int json = 0, batch = 64;
    cli_option options[24];
    const cli_option own[] = {
        {"model", CLI_STRING, &model_path, "FILE[,FILE...]", "checkpoint written by recur "
         "translate train; several, joined by commas, translate as an ensemble (the mean of "
         "their distributions; one BPE)", 0, 0, NULL, "required", 0, 0},
        {"data", CLI_STRING, &data, "FILE", "sentence pairs with the model's source and target "
         "columns", 0, 0, NULL, "required", 0, 0},
        {"split", CLI_CHOICE, &split_name, "PART", "test, validation, train (the fixed split of "
         "docs/translate.md) or all pairs", 0, 0, split_choices, NULL, 0, 0},
        {"limit", CLI_INT64, &limit, "N", "only the first N pairs of the part (0: all)", 0, 1e12,
         NULL, NULL, 0, 0},
        {"output", CLI_STRING, &output, "FILE", "write the translations to FILE, one a line", 0,
         0, NULL, "none", 0, 0},
        {"examples", CLI_INT64, &examples, "N", "print the first N source / reference / "
         "translation triples", 0, 1e9, NULL, NULL, 0, 0},
        {"batch", CLI_INT, &batch, "B", "pairs a forward pass for the loss", 1, 65536, NULL, NULL,
         0, 0},
        {"json", CLI_FLAG, &json, NULL, "print the results as one JSON object", 0, 0, NULL, NULL,
         0, 0},
    };
    int count = (int)(sizeof own / sizeof own[0]);
    memcpy(options, own, sizeof own);
    count += add_decode_options(options + count, &d);
    options[count] = (cli_option)CLI_END;
    int rc = cli_parse(cmd, options, argc, argv, "--model FILE --data FILE [options]",
                       "Translates the --split of FILE and prints corpus BLEU (13a tokens, "
                       "cased), chrF and\nthe references' per-subword loss.");
    if (rc == CLI_HELP_SHOWN)
        return CLI_OK;
    if (rc)
        return rc;
    if (!model_path)
        return cli_usage(cmd, "--model FILE is required");
    if (!data)
        return cli_usage(cmd, "--data FILE is required");
    tr_split split;
    translate_split_parse(split_name, &split);
    recur_set_threads(d.threads);
    tr_model *m = NULL;
    int members = 0;
    if ((rc = translate_models_load(cmd, model_path, RECUR_SEQ2SEQ_MAX_ENSEMBLE, &m,
                                        &members)))
        return rc;
    tr_pairs pairs;
    if ((rc = translate_read_pairs(cmd, data, m[0].source, m[0].target, split, &pairs))) {
        translate_models_free(m, members);
        return rc;
    }
    if ((rc = translate_pairs_augment(cmd, &m[0], &pairs))) {
        translate_pairs_free(&pairs);
        translate_models_free(m, members);
        return rc;
    }
    /* --output is opened before the work, so a bad path costs nothing */
    FILE *out = NULL;
    if (output && !(out = fopen(output, "w"))) {
        rc = cli_fail(cmd, "", "cannot write --output %s: %s", output, strerror(errno));
        translate_pairs_free(&pairs);
        translate_models_free(m, members);
        return rc;
    }
    const tr_decode decode = decode_config(&d);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tr_scores s;
    if (translate_score(m, members, &pairs, (size_t)limit, &decode, batch, &s)) {
        rc = cli_fail(cmd, "", "%s: %s", data, recur_last_error());
        if (out)
            fclose(out);
        goto done;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (out) {
        for (size_t i = 0; i < s.sentences; i++) {
            one_line(s.hyps[i]);
            fprintf(out, "%s\n", s.hyps[i]);
        }
        if (fclose(out))
            rc = cli_fail(cmd, "", "writing --output %s failed: %s (the scores follow)", output,
                          strerror(errno));
    }
    for (size_t i = 0; i < (size_t)examples && i < s.sentences; i++)
        fprintf(stderr, "SRC  %s\nREF  %s\nHYP  %s\n\n",
                pairs.raw_src ? pairs.raw_src[i] : pairs.src[i], pairs.tgt[i], s.hyps[i]);
    const recur_bleu *b = &s.bleu;
    if (json) {
        printf("{\"sentences\": %zu, \"bleu\": %.4f, \"chrf\": %.4f, \"precisions\": [%.4f, %.4f, "
               "%.4f, %.4f], \"bp\": %.6f, \"hyp_len\": %zu, \"ref_len\": %zu, \"nll\": %.6f, "
               "\"tokens\": %zu, \"beam\": %d, \"length_penalty\": %g, \"coverage_penalty\": "
               "%g, \"mbr\": \"%s\", \"mbr_temperature\": %g, \"mbr_weights\": \"%s\", "
               "\"seconds\": %.3f}\n",
               s.sentences, b->score, s.chrf, b->precision[0], b->precision[1], b->precision[2],
               b->precision[3], b->bp, b->hyp_len, b->ref_len, s.nll, s.tokens, d.beam,
               d.length_penalty, d.coverage_penalty, d.mbr, d.mbr_temperature, d.mbr_weights,
               seconds);
    } else {
        printf("%s part of %s: %zu sentences, beam %d (length penalty %g, coverage penalty "
               "%g), %.1fs\n", split_name, data, s.sentences, d.beam, d.length_penalty,
               d.coverage_penalty, seconds);
        if (decode.mbr)
            printf("minimum Bayes risk: %s over the %d best, weights from %s, temperature %g\n",
                   d.mbr, d.beam, d.mbr_weights, d.mbr_temperature);
        printf("BLEU %.2f (%.1f/%.1f/%.1f/%.1f, BP %.3f, ratio %.3f, hyp %zu, ref %zu tokens)\n",
               b->score, b->precision[0], b->precision[1], b->precision[2], b->precision[3], b->bp,
               b->ref_len ? (double)b->hyp_len / (double)b->ref_len : 0.0, b->hyp_len,
               b->ref_len);
        printf("chrF %.2f\n", s.chrf);
        printf("loss %.4f nats per subword (%zu reference subwords)\n", s.nll, s.tokens);
    }
done:
    translate_scores_free(&s);
    translate_pairs_free(&pairs);
    translate_models_free(m, members);
    return rc;
}
