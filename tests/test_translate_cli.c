/* test_translate_cli.c - `recur translate` end to end (the binary's path in
 * argv[1], else RECUR_BINARY_DIR/recur) on a small synthetic pair file
 * written to a fresh temporary folder: --help and usage errors (exit 2);
 * train with the shared trainer's progress line and checkpoints; resume
 * exactness (N steps == N/2 + --resume to N, also with dropouts and
 * --bpe-dropout: the same loss rows and the
 * same translations); a toy word-for-word language learnt well enough that
 * greedy translations mostly match; translating stdin (one line out per
 * line in, deterministic, --attention JSON lines whose rows sum to 1,
 * beam 1 equal to greedy); --init (fine-tuning starts from the model's
 * weights, the architecture options may only repeat its values); eval
 * (--json fields, --output lines); --memory (neural fuzzy repair: the
 * memory in the checkpoint, extended sources, resume, --init, ensembles); and bad
 * input named by line or column (exit 1): an empty line, invalid UTF-8,
 * an unknown column, a missing model; --keep-every and `translate
 * average` (checkpoint averaging). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "recur.h"

#include "cli_harness.h"

/* A toy language pair: source words map one to one to target words, the
 * target in the same order with a final "." and capitalised first word. */
static const char *const src_words[] = {"ich", "du", "sehe", "habe", "den", "einen", "hund",
                                        "baum", "ball", "rot", "gross", "heute"};
static const char *const tgt_words[] = {"i", "you", "see", "have", "the", "a", "dog",
                                        "tree", "ball", "red", "big", "today"};
enum { WORDS = 12 };

static void write_pairs(const char *path, int n, int extra_column)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    recur_rng rng;
    recur_rng_seed(&rng, 7);
    fprintf(f, extra_column ? "id\tde\ten\n" : "de\ten\n");
    for (int i = 0; i < n; i++) {
        char src[256] = "", tgt[256] = "";
        const int len = 2 + (int)recur_rng_below(&rng, 4);
        for (int k = 0; k < len; k++) {
            const int w = (int)recur_rng_below(&rng, WORDS);
            strcat(src, k ? " " : "");
            strcat(src, src_words[w]);
            strcat(tgt, k ? " " : "");
            strcat(tgt, tgt_words[w]);
        }
        if (extra_column)
            fprintf(f, "%d\t", i);
        fprintf(f, "%s\t%s .\n", src, tgt);
    }
    fclose(f);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Greedy decoding (--beam 1) of stdin with `flag` set to `off` and to `on`:
 * the option must not change the translations. */
static void greedy_ignores(const char *model, const char *flag, const char *off, const char *on)
{
    char *text[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        CHECK_EXIT(run("greedy_ignores", "translate", "--model", model, "--beam", "1", flag,
                       k ? on : off, NULL),
                   0);
        text[k] = read_all(last_out);
    }
    CHECK_MSG(text[0] && text[1] && strcmp(text[0], text[1]) == 0,
              "greedy decoding changed with %s %s", flag, on);
    free(text[0]);
    free(text[1]);
}

static int count_lines(const char *path)
{
    char *text = read_all(path);
    int lines = 0;
    for (const char *p = text; p && *p; p++)
        lines += *p == '\n';
    free(text);
    return lines;
}

/* The metrics rows with the given step, as text. */
static char *metrics_row(const char *path, int step)
{
    char *text = read_all(path);
    char key[32];
    snprintf(key, sizeof key, "\n%d,", step);
    char *at = text ? strstr(text, key) : NULL;
    char *row = NULL;
    if (at) {
        at++;
        char *end = strchr(at, '\n');
        size_t len = end ? (size_t)(end - at) : strlen(at);
        row = malloc(len + 1);
        memcpy(row, at, len);
        row[len] = '\0';
    }
    free(text);
    return row;
}

/* The first `fields` comma-separated fields (step .. train_loss). */
static int same_fields(const char *a, const char *b, int fields)
{
    if (!a || !b)
        return 0;
    for (int f = 0; *a && *b; a++, b++) {
        if (*a != *b)
            return 0;
        if (*a == ',' && ++f == fields)
            return 1;
    }
    return *a == *b;
}

/* The runs in folders a and b (under the test folder) logged the same step,
 * epoch and training loss at steps first, first + every, .., last. */
static void same_metrics(const char *a_dir, const char *b_dir, int first, int last, int every)
{
    for (int step = first; step <= last; step += every) {
        char path[128];
        snprintf(path, sizeof path, "%s/metrics.csv", a_dir);
        char *a = metrics_row(path_of(path), step);
        snprintf(path, sizeof path, "%s/metrics.csv", b_dir);
        char *b = metrics_row(path_of(path), step);
        CHECK_MSG(a && same_fields(a, b, 3), "step %d: %s's metrics '%s' vs %s's '%s'", step,
                  a_dir, a ? a : "(none)", b_dir, b ? b : "(none)");
        free(a);
        free(b);
    }
}

static void test_usage(void)
{
    CHECK_EXIT(run("help", "translate", "--help", NULL), 0);
    CHECK_STDOUT_MENTIONS("train");
    /* the stdin mode's options too: its usage errors point here */
    CHECK_STDOUT_MENTIONS("--attention");
    CHECK_EXIT(run("help_train", "translate", "train", "--help", NULL), 0);
    CHECK_STDOUT_MENTIONS("--label-smoothing");
    CHECK_STDOUT_MENTIONS("--resume");
    CHECK_EXIT(run("help_eval", "translate", "eval", "--help", NULL), 0);
    CHECK_STDOUT_MENTIONS("--beam");
    CHECK_EXIT(run("help_run", "translate", "--help-run", NULL), 0);
    CHECK_STDOUT_MENTIONS("--attention");
    CHECK_EXIT(run("nothing", "translate", NULL), 2);
    CHECK_EXIT(run("bogus", "translate", "bogus", NULL), 2);
    CHECK_STDERR_MENTIONS("unknown command");
    CHECK_EXIT(run("no_data", "translate", "train", NULL), 2);
    CHECK_STDERR_MENTIONS("--data");
    CHECK_EXIT(run("bad_beam", "translate", "--model", "x", "--beam", "0", NULL), 2);
    /* the library's limits are the options' */
    CHECK_EXIT(run("big_beam", "translate", "--model", "x", "--beam", "257", NULL), 2);
    CHECK_STDERR_MENTIONS("<= 256");
    CHECK_EXIT(run("long_max", "translate", "eval", "--model", "x", "--data", "y",
                   "--max-length", "65537", NULL),
               2);
    CHECK_STDERR_MENTIONS("<= 65536");
    CHECK_EXIT(run("no_model", "translate", "--beam", "2", NULL), 2);
    CHECK_STDERR_MENTIONS("--model");
    CHECK_EXIT(run("long_column", "translate", "train", "--data", "x", "--source",
                   "a_column_name_of_sixty_four_bytes_which_the_model_cannot_store__", NULL),
               2);
    CHECK_STDERR_MENTIONS("at most 63 bytes");
}

static void test_train_resume_translate(void)
{
    char data[600], input[600]; /* path_of's buffers are reused */
    snprintf(data, sizeof data, "%s", path_of("pairs.tsv"));
    snprintf(input, sizeof input, "%s", path_of("input.txt"));
    write_pairs(data, 1200, 0);
    /* the whole run: 400 steps */
    CHECK_EXIT(run("train_full", "translate", "train", "--data", data, "--vocab", "300", "--embed",
                   "24", "--hidden", "32", "--batch", "16", "--lr", "0.01", "--val-every", "100",
                   "--save-every", "100", "--log-every", "20", "--val-sentences", "20",
                   "--dropout", "0.1", "--out", path_of("full"), "--steps", "400", NULL),
               0);
    CHECK_STDERR_MENTIONS("step 400/400");
    CHECK_STDERR_MENTIONS("bleu");
    CHECK(access(path_of("full/best.safetensors"), R_OK) == 0);
    /* the same in two invocations */
    CHECK_EXIT(run("train_half", "translate", "train", "--data", data, "--vocab", "300", "--embed",
                   "24", "--hidden", "32", "--batch", "16", "--lr", "0.01", "--val-every", "100",
                   "--save-every", "100", "--log-every", "20", "--val-sentences", "20",
                   "--dropout", "0.1", "--out", path_of("half"), "--steps", "200", NULL),
               0);
    CHECK_EXIT(run("train_resume", "translate", "train", "--out", path_of("half"), "--resume",
                   "--steps", "400", NULL),
               0);
    CHECK_STDERR_MENTIONS("resuming");
    same_metrics("full", "half", 20, 400, 60);
    /* word dropout draws from the saved RNG: a resumed run repeats the uninterrupted one */
    for (int k = 0; k < 3; k++) {
        const char *tag = k == 0 ? "wd_full" : k == 1 ? "wd_half" : "wd_resume";
        const char *out = path_of(k == 0 ? "wd_full" : "wd_half");
        char out_dir[600];
        snprintf(out_dir, sizeof out_dir, "%s", out);
        if (k < 2)
            CHECK_EXIT(run(tag, "translate", "train", "--data", data, "--vocab", "300", "--embed",
                           "8", "--hidden", "8", "--batch", "16", "--word-dropout", "0.2",
                           "--hidden-dropout", "0.25", "--log-every", "5", "--val-every", "0", "--save-every", "10",
                           "--out", out_dir, "--steps", k == 0 ? "40" : "20", NULL),
                       0);
        else
            CHECK_EXIT(run(tag, "translate", "train", "--out", out_dir, "--resume", "--steps",
                           "40", NULL),
                       0);
    }
    CHECK_STDERR_MENTIONS("word dropout 0.2, hidden dropout 0.25"); /* from the checkpoint */
    same_metrics("wd_full", "wd_half", 5, 40, 5);
    /* --bpe-dropout: every epoch segments the pairs afresh from (seed, epoch), so a run
     * resumed across an epoch's end (about 68 steps an epoch here) repeats the uninterrupted
     * one; the segmentation, and so the loss, differs from the full one's */
    for (int k = 0; k < 4; k++) {
        static const char *const tags[] = {"bd_full", "bd_half", "bd_resume", "bd_none"};
        const char *out = path_of(k == 0 ? "bd_full" : k == 3 ? "bd_none" : "bd_half");
        char out_dir[600];
        snprintf(out_dir, sizeof out_dir, "%s", out);
        if (k != 2)
            CHECK_EXIT(run(tags[k], "translate", "train", "--data", data, "--vocab", "300",
                           "--embed", "8", "--hidden", "8", "--batch", "16", "--bpe-dropout",
                           k == 3 ? "0" : "0.3", "--log-every", "10", "--val-every", "0",
                           "--save-every", "50", "--out", out_dir, "--steps",
                           k == 1 ? "50" : "100", NULL),
                       0);
        else
            CHECK_EXIT(run(tags[k], "translate", "train", "--out", out_dir, "--resume", "--steps",
                           "100", NULL),
                       0);
    }
    for (int step = 10; step <= 100; step += 10) {
        char *a = metrics_row(path_of("bd_full/metrics.csv"), step);
        char *b = metrics_row(path_of("bd_half/metrics.csv"), step);
        char *c = metrics_row(path_of("bd_none/metrics.csv"), step);
        CHECK_MSG(a && same_fields(a, b, 3), "step %d: metrics '%s' vs resumed '%s'", step,
                  a ? a : "(none)", b ? b : "(none)");
        CHECK_MSG(a && c && !same_fields(a, c, 3), "step %d: BPE-dropout changed nothing: '%s'",
                  step, a ? a : "(none)");
        free(a);
        free(b);
        free(c);
    }
    CHECK_EXIT(run("resume_bpe_dropout", "translate", "train", "--out", path_of("bd_half"),
                   "--resume", "--bpe-dropout", "0.1", "--steps", "120", NULL),
               2);
    CHECK_STDERR_MENTIONS("--bpe-dropout 0.1 differs");
    CHECK_EXIT(run("bpe_dropout_range", "translate", "train", "--data", data, "--bpe-dropout",
                   "1", "--out", path_of("bd_bad"), NULL),
               2);
    CHECK_STDERR_MENTIONS("--bpe-dropout");
    /* --repeat N: the training part's pairs N times an epoch */
    long kept[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        CHECK_EXIT(run("train_repeat", "translate", "train", "--data", data, "--vocab", "300",
                       "--embed", "8", "--hidden", "8", "--batch", "16", "--steps", "1",
                       "--repeat", k ? "3" : "1", "--out", path_of(k ? "rep3" : "rep1"), NULL),
                   0);
        char *err = read_all(last_err);
        const char *at = err ? strstr(err, " kept)") : NULL;
        while (at && at > err && at[-1] >= '0' && at[-1] <= '9')
            at--;
        if (at)
            kept[k] = strtol(at, NULL, 10);
        free(err);
    }
    CHECK_MSG(kept[0] > 0 && kept[1] == 3 * kept[0], "pairs kept: %ld, with --repeat 3: %ld",
              kept[0], kept[1]);

    /* --tie-embeddings: one matrix less, and it needs --embed = --hidden */
    CHECK_EXIT(run("train_tied", "translate", "train", "--data", data, "--vocab", "300",
                   "--embed", "8", "--hidden", "8", "--batch", "16", "--steps", "2",
                   "--tie-embeddings", "--out", path_of("tied"), NULL),
               0);
    CHECK_STDERR_MENTIONS("embedding 8 (tied to the output)");
    stdin_path = input;
    write_text(input, "ich sehe den hund\n");
    CHECK_EXIT(run("tr_tied", "translate", "--model", path_of("tied/latest.safetensors"), NULL),
               0);
    CHECK(count_lines(last_out) == 1);
    stdin_path = "/dev/null";
    CHECK_EXIT(run("train_tied_bad", "translate", "train", "--data", data, "--vocab", "300",
                   "--embed", "8", "--hidden", "16", "--steps", "2", "--tie-embeddings", "--out",
                   path_of("tied_bad"), NULL),
               2);
    CHECK_STDERR_MENTIONS("--tie-embeddings needs --embed (8) = --hidden (16)");
    CHECK(access(path_of("tied_bad/latest.safetensors"), F_OK) != 0);

    /* --lexical: the model line says so, the checkpoint translates */
    CHECK_EXIT(run("train_lexical", "translate", "train", "--data", data, "--vocab", "300",
                   "--embed", "8", "--hidden", "8", "--batch", "16", "--steps", "2",
                   "--lexical", "--out", path_of("lexical"), NULL),
               0);
    CHECK_STDERR_MENTIONS("additive attention with a lexical shortcut");
    stdin_path = input;
    write_text(input, "ich sehe den hund\n");
    CHECK_EXIT(run("tr_lexical", "translate", "--model", path_of("lexical/latest.safetensors"),
                   NULL),
               0);
    CHECK(count_lines(last_out) == 1);
    stdin_path = "/dev/null";
    CHECK_EXIT(run("resume_lexical", "translate", "train", "--out", path_of("lexical"),
                   "--resume", "--steps", "3", NULL),
               0);
    CHECK_STDERR_MENTIONS("with a lexical shortcut");

    /* --input-feeding: the model line says so, the checkpoint translates and resumes; with
     * two decoder layers it is refused */
    CHECK_EXIT(run("train_feeding", "translate", "train", "--data", data, "--vocab", "300",
                   "--embed", "8", "--hidden", "8", "--batch", "16", "--steps", "2",
                   "--input-feeding", "--out", path_of("feeding"), NULL),
               0);
    CHECK_STDERR_MENTIONS("additive attention, input feeding");
    stdin_path = input;
    write_text(input, "ich sehe den hund\nder hund sieht mich\n");
    CHECK_EXIT(run("tr_feeding", "translate", "--model", path_of("feeding/latest.safetensors"),
                   "--beam", "3", NULL),
               0);
    CHECK(count_lines(last_out) == 2);
    stdin_path = "/dev/null";
    CHECK_EXIT(run("resume_feeding", "translate", "train", "--out", path_of("feeding"),
                   "--resume", "--steps", "3", NULL),
               0);
    CHECK_STDERR_MENTIONS("input feeding");
    CHECK_EXIT(run("feeding_layers", "translate", "train", "--data", data, "--vocab", "300",
                   "--embed", "8", "--hidden", "8", "--steps", "2", "--input-feeding",
                   "--decoder-layers", "2", "--out", path_of("feeding_bad"), NULL),
               2);
    CHECK_STDERR_MENTIONS("input_feeding needs decoder_layers 1");
    CHECK(access(path_of("feeding_bad/latest.safetensors"), F_OK) != 0);
    CHECK_EXIT(run("resume_feeding_off", "translate", "train", "--out", path_of("lexical"),
                   "--resume", "--input-feeding", "--steps", "4", NULL),
               2);
    CHECK_STDERR_MENTIONS("--input-feeding");

    /* --layer-norm: the model line says so, the checkpoint translates and resumes; a run
     * without it cannot resume with it; it does not combine with --input-feeding */
    CHECK_EXIT(run("train_ln", "translate", "train", "--data", data, "--vocab", "300",
                   "--embed", "8", "--hidden", "16", "--batch", "16", "--steps", "2",
                   "--layer-norm", "--decoder-layers", "2", "--out", path_of("ln"), NULL),
               0);
    CHECK_STDERR_MENTIONS("16 units (layer-normalized)");
    stdin_path = input;
    write_text(input, "ich sehe den hund\nder hund sieht mich\n");
    CHECK_EXIT(run("tr_ln", "translate", "--model", path_of("ln/latest.safetensors"), "--beam",
                   "2", NULL),
               0);
    CHECK(count_lines(last_out) == 2);
    stdin_path = "/dev/null";
    CHECK_EXIT(run("resume_ln", "translate", "train", "--out", path_of("ln"), "--resume",
                   "--steps", "3", NULL),
               0);
    CHECK_STDERR_MENTIONS("(layer-normalized)");
    CHECK_EXIT(run("resume_ln_on", "translate", "train", "--out", path_of("lexical"),
                   "--resume", "--layer-norm", "--steps", "4", NULL),
               2);
    CHECK_STDERR_MENTIONS("--layer-norm");
    CHECK_EXIT(run("ln_feeding", "translate", "train", "--data", data, "--vocab", "300",
                   "--embed", "8", "--hidden", "8", "--steps", "2", "--input-feeding",
                   "--layer-norm", "--out", path_of("ln_bad"), NULL),
               2);
    CHECK_STDERR_MENTIONS("input_feeding and layer_norm cannot be combined");
    CHECK(access(path_of("ln_bad/latest.safetensors"), F_OK) != 0);

    /* a changed model option on --resume is refused */
    CHECK_EXIT(run("resume_changed", "translate", "train", "--out", path_of("half"), "--resume",
                   "--hidden", "64", "--steps", "500", NULL),
               2);
    CHECK_EXIT(run("resume_word_dropout", "translate", "train", "--out", path_of("half"),
                   "--resume", "--word-dropout", "0.3", "--steps", "500", NULL),
               2);
    CHECK_STDERR_MENTIONS("--word-dropout 0.3 differs");
    CHECK_EXIT(run("resume_hidden_dropout", "translate", "train", "--out", path_of("half"),
                   "--resume", "--hidden-dropout", "0.3", "--steps", "500", NULL),
               2);
    CHECK_STDERR_MENTIONS("--hidden-dropout 0.3 differs");
    CHECK_EXIT(run("resume_batch_by", "translate", "train", "--out", path_of("half"), "--resume",
                   "--batch-by", "longer", "--steps", "500", NULL),
               2);
    CHECK_STDERR_MENTIONS("--batch-by longer differs");
    /* --batch-by longer walks the data in other batches than the default (source) */
    for (int k = 0; k < 2; k++)
        CHECK_EXIT(run("train_batch_by", "translate", "train", "--data", data, "--vocab", "300",
                       "--embed", "24", "--hidden", "32", "--batch", "16", "--lr", "0.01",
                       "--val-every", "100", "--save-every", "100", "--log-every", "20",
                       "--dropout", "0.1", "--out", path_of(k ? "by_source" : "by_longer"),
                       "--steps", "20", "--batch-by", k ? "source" : "longer", NULL),
                   0);
    char *by_longer = metrics_row(path_of("by_longer/metrics.csv"), 20);
    char *by_source = metrics_row(path_of("by_source/metrics.csv"), 20);
    CHECK_MSG(by_longer && by_source && !same_fields(by_longer, by_source, 3),
              "step 20: --batch-by longer '%s', source '%s'", by_longer ? by_longer : "(none)",
              by_source ? by_source : "(none)");
    free(by_longer);
    free(by_source);

    /* translating stdin: one line out per line in, deterministic */
    /* the third line's "ô" is two byte-level subwords, neither valid UTF-8 alone */
    write_text(input, "ich sehe den hund\ndu habe einen ball\nheute c\xc3\xb4te\n");
    stdin_path = input;
    CHECK_EXIT(run("tr1", "translate", "--model", path_of("full/latest.safetensors"),
                   "--attention", path_of("attention.jsonl"), NULL),
               0);
    CHECK(count_lines(last_out) == 3);
    char *first = read_all(last_out);
    CHECK_EXIT(run("tr2", "translate", "--model", path_of("full/latest.safetensors"), NULL), 0);
    char *second = read_all(last_out);
    CHECK(first && second && strcmp(first, second) == 0);
    /* beam 1 is greedy; the model learnt the toy language */
    CHECK_EXIT(run("tr_greedy", "translate", "--model", path_of("full/latest.safetensors"),
                   "--beam", "1", NULL),
               0);
    CHECK_STDOUT_MENTIONS("dog");
    free(first);
    free(second);
    /* the resumed run ends with the same weights: the same translations */
    CHECK_EXIT(run("tr_half", "translate", "--model", path_of("half/latest.safetensors"), "--beam",
                   "1", NULL),
               0);
    char *resumed = read_all(last_out);
    CHECK_EXIT(run("tr_full", "translate", "--model", path_of("full/latest.safetensors"), "--beam",
                   "1", NULL),
               0);
    char *full = read_all(last_out);
    CHECK(resumed && full && strcmp(resumed, full) == 0);
    free(resumed);
    free(full);
    /* attention: a JSON line a sentence, each weight row summing to 1 */
    CHECK(count_lines(path_of("attention.jsonl")) == 3);
    char *att = read_all(path_of("attention.jsonl"));
    /* a subword that is not UTF-8 on its own is written as U+FFFD */
    CHECK(att && (strstr(att, "\"\\uFFFD\"") || strstr(att, "\"\\ufffd\"")));
    const char *rows = att ? strstr(att, "\"weights\": [[") : NULL;
    if (!rows && att)
        rows = strstr(att, "\"weights\":[[");
    CHECK(rows != NULL);
    if (rows) {
        const char *p = strchr(rows, '[') + 2;
        double sum = 0.0;
        while (*p && *p != ']') {
            char *end;
            sum += strtod(p, &end);
            p = *end == ',' ? end + 1 : end;
        }
        CHECK_NEAR(sum, 1.0, 1e-4);
    }
    free(att);

    /* bad input on stdin: named by line, exit 1 */
    write_text(input, "ich sehe\n\ndu\n");
    CHECK_EXIT(run("tr_empty", "translate", "--model", path_of("full/latest.safetensors"), NULL),
               1);
    CHECK_STDERR_MENTIONS("line 2 is empty");
    CHECK(count_lines(last_out) == 1); /* the first line was translated */
    write_text(input, "ich \xff sehe\n");
    CHECK_EXIT(run("tr_utf8", "translate", "--model", path_of("full/latest.safetensors"), NULL), 1);
    CHECK_STDERR_MENTIONS("invalid UTF-8");
    stdin_path = "/dev/null";

    /* eval: text, --json, --output */
    CHECK_EXIT(run("eval", "translate", "eval", "--model", path_of("full/best.safetensors"),
                   "--data", data, "--beam", "3", NULL),
               0);
    CHECK_STDOUT_MENTIONS("BLEU");
    CHECK_STDOUT_MENTIONS("chrF");
    CHECK_EXIT(run("eval_json", "translate", "eval", "--model", path_of("full/best.safetensors"),
                   "--data", data, "--split", "validation", "--json", "--output",
                   path_of("hyps.txt"), NULL),
               0);
    CHECK_STDOUT_MENTIONS("\"bleu\":");
    CHECK_STDOUT_MENTIONS("\"chrf\":");
    CHECK(count_lines(path_of("hyps.txt")) > 10);
    char *json = read_all(last_out);
    const char *b = json ? strstr(json, "\"bleu\": ") : NULL;
    const double bleu = b ? atof(b + 8) : -1.0;
    CHECK_MSG(bleu > 30.0, "validation BLEU %.2f of the toy language is not above 30", bleu);
    free(json);
    /* --coverage-penalty: reported, range-checked, and greedy decoding ignores it */
    CHECK_EXIT(run("eval_coverage", "translate", "eval", "--model",
                   path_of("full/best.safetensors"), "--data", data, "--split", "validation",
                   "--coverage-penalty", "0.5", "--json", NULL),
               0);
    CHECK_STDOUT_MENTIONS("\"coverage_penalty\": 0.5");
    CHECK_EXIT(run("coverage_bad", "translate", "eval", "--model",
                   path_of("full/best.safetensors"), "--data", data, "--coverage-penalty", "-1",
                   NULL),
               2);
    CHECK_STDERR_MENTIONS("--coverage-penalty");
    write_text(input, "ich sehe den hund\ndu habe einen ball\nheute\n");
    stdin_path = input;
    greedy_ignores(path_of("full/best.safetensors"), "--coverage-penalty", "0", "3");

    /* --mbr: minimum Bayes risk over the beam's list; with one candidate (beam
     * 1) it is greedy decoding; --attention follows the chosen translation */
    greedy_ignores(path_of("full/best.safetensors"), "--mbr", "none", "bleu");
    CHECK_EXIT(run("mbr_chrf", "translate", "--model", path_of("full/best.safetensors"), "--beam",
                   "4", "--mbr", "chrf", "--mbr-temperature", "2", "--attention",
                   path_of("mbr_att.jsonl"), NULL),
               0);
    CHECK(count_lines(last_out) == 3);
    CHECK(count_lines(path_of("mbr_att.jsonl")) == 3);
    stdin_path = "/dev/null";
    CHECK_EXIT(run("eval_mbr", "translate", "eval", "--model", path_of("full/best.safetensors"),
                   "--data", data, "--split", "validation", "--beam", "4", "--mbr", "bleu",
                   "--json", NULL),
               0);
    CHECK_STDOUT_MENTIONS("\"mbr\": \"bleu\"");
    json = read_all(last_out);
    b = json ? strstr(json, "\"bleu\": ") : NULL;
    const double mbr_bleu = b ? atof(b + 8) : -1.0;
    CHECK_MSG(mbr_bleu > 30.0, "validation BLEU %.2f with --mbr bleu is not above 30", mbr_bleu);
    free(json);
    CHECK_EXIT(run("eval_mbr_text", "translate", "eval", "--model",
                   path_of("full/best.safetensors"), "--data", data, "--beam", "3", "--mbr",
                   "chrf", NULL),
               0);
    CHECK_STDOUT_MENTIONS("minimum Bayes risk: chrf over the 3 best, weights from prob");
    CHECK_EXIT(run("eval_mbr_score", "translate", "eval", "--model",
                   path_of("full/best.safetensors"), "--data", data, "--beam", "3", "--mbr",
                   "bleu", "--mbr-weights", "score", "--mbr-temperature", "0.1", "--json", NULL),
               0);
    CHECK_STDOUT_MENTIONS("\"mbr_weights\": \"score\"");
    json = read_all(last_out);
    b = json ? strstr(json, "\"bleu\": ") : NULL;
    CHECK_MSG(b && atof(b + 8) > 30.0, "test BLEU with --mbr-weights score is not above 30");
    free(json);
    CHECK_EXIT(run("mbr_weights_bad", "translate", "--model", path_of("full/best.safetensors"),
                   "--mbr", "bleu", "--mbr-weights", "length", NULL),
               2);
    CHECK_STDERR_MENTIONS("--mbr-weights");
    CHECK_EXIT(run("mbr_bad", "translate", "--model", path_of("full/best.safetensors"), "--mbr",
                   "ter", NULL),
               2);
    CHECK_STDERR_MENTIONS("--mbr");
    CHECK_EXIT(run("mbr_temp_bad", "translate", "eval", "--model",
                   path_of("full/best.safetensors"), "--data", data, "--mbr", "bleu",
                   "--mbr-temperature", "0", NULL),
               2);
    CHECK_STDERR_MENTIONS("--mbr-temperature");

    /* ensembles: a model joined with itself translates and scores as alone;
     * a mixture's loss lies below the mean of its members' (Jensen) and
     * within ln 2 of each member's */
    write_text(input, "ich sehe den hund\ndu habe einen ball\nheute\n");
    stdin_path = input;
    CHECK_EXIT(run("ens_alone", "translate", "--model", path_of("full/best.safetensors"),
                   "--beam", "3", NULL),
               0);
    char *alone = read_all(last_out);
    char pair_spec[1300];
    snprintf(pair_spec, sizeof pair_spec, "%s,%s", path_of("full/best.safetensors"),
             path_of("full/best.safetensors"));
    CHECK_EXIT(run("ens_self", "translate", "--model", pair_spec, "--beam", "3", NULL), 0);
    char *self = read_all(last_out);
    CHECK(alone && self && strcmp(alone, self) == 0);
    free(alone);
    free(self);
    stdin_path = "/dev/null";
    double nll[4];
    const char *specs[4];
    char one[600], weak[600], mixed[1300];
    snprintf(one, sizeof one, "%s", path_of("full/best.safetensors"));
    snprintf(weak, sizeof weak, "%s", path_of("rep1/latest.safetensors"));
    snprintf(mixed, sizeof mixed, "%s,%s", one, weak);
    specs[0] = one;
    specs[1] = pair_spec;
    specs[2] = weak;
    specs[3] = mixed;
    for (int k = 0; k < 4; k++) {
        CHECK_EXIT(run("ens_eval", "translate", "eval", "--model", specs[k], "--data", data,
                       "--split", "validation", "--beam", "1", "--json", NULL),
                   0);
        char *text = read_all(last_out);
        const char *at = text ? strstr(text, "\"nll\": ") : NULL;
        nll[k] = at ? atof(at + 7) : NAN;
        free(text);
    }
    CHECK_NEAR(nll[1], nll[0], 2e-6);
    CHECK_MSG(nll[3] < 0.5 * (nll[0] + nll[2]) && nll[3] <= nll[0] + log(2.0) + 1e-5 &&
                  nll[3] <= nll[2] + log(2.0) + 1e-5,
              "ensemble loss %.6f against members %.6f and %.6f", nll[3], nll[0], nll[2]);
    /* refused: another BPE, an empty path */
    CHECK_EXIT(run("ens_vocab", "translate", "train", "--data", data, "--vocab", "280",
                   "--embed", "8", "--hidden", "8", "--batch", "16", "--steps", "1", "--out",
                   path_of("v280"), NULL),
               0);
    snprintf(mixed, sizeof mixed, "%s,%s", one, path_of("v280/latest.safetensors"));
    CHECK_EXIT(run("ens_other_bpe", "translate", "eval", "--model", mixed, "--data", data, NULL),
               1);
    CHECK_STDERR_MENTIONS("v280/latest.safetensors: its subword vocabulary differs");
    snprintf(mixed, sizeof mixed, "%s,", one);
    CHECK_EXIT(run("ens_empty", "translate", "--model", mixed, NULL), 2);
    CHECK_STDERR_MENTIONS("an empty path");

    /* the model's columns must exist in the evaluated file */
    char other[600];
    snprintf(other, sizeof other, "%s", path_of("other.tsv"));
    write_text(other, "fr\ten\nbonjour\thello\n");
    CHECK_EXIT(run("eval_column", "translate", "eval", "--model", path_of("full/best.safetensors"),
                   "--data", other, "--split", "all", NULL),
               1);
    CHECK_STDERR_MENTIONS("'de'");
    CHECK_EXIT(run("eval_missing", "translate", "eval", "--model", path_of("nothing.safetensors"),
                   "--data", data, NULL),
               1);
    CHECK_STDERR_MENTIONS("nothing.safetensors");
    CHECK_EXIT(run("eval_not_model", "translate", "eval", "--model", data, "--data", data, NULL),
               1);
}

/* --init CKPT after test_train_resume_translate (its pairs.tsv and full/) */
static void test_init(void)
{
    char data[600], input[600], model[600];
    snprintf(data, sizeof data, "%s", path_of("pairs.tsv"));
    snprintf(input, sizeof input, "%s", path_of("input.txt"));
    snprintf(model, sizeof model, "%s", path_of("full/latest.safetensors"));
    /* the architecture comes from the model (repeating a value is allowed); the dropout not
     * given is the model's; a tiny rate leaves the weights as they were */
    CHECK_EXIT(run("init", "translate", "train", "--init", model, "--data", data, "--hidden", "32",
                   "--vocab", "300", "--embed-dropout", "0.05", "--lr", "1e-9", "--log-every", "10",
                   "--val-every", "0", "--save-every", "10", "--steps", "20", "--out",
                   path_of("init"), NULL),
               0);
    CHECK_STDERR_MENTIONS("fine-tuning: bidirectional gru encoder");
    CHECK_STDERR_MENTIONS("32 units, embedding 24");
    CHECK_STDERR_MENTIONS("dropout 0.1, embedding dropout 0.05");
    /* it starts where the trained model ended: a training loss far below a fresh model's */
    char *fresh = metrics_row(path_of("full/metrics.csv"), 20);
    char *tuned = metrics_row(path_of("init/metrics.csv"), 20);
    double fresh_loss = 0, tuned_loss = 0;
    CHECK(fresh && sscanf(fresh, "%*[^,],%*[^,],%lf", &fresh_loss) == 1);
    CHECK(tuned && sscanf(tuned, "%*[^,],%*[^,],%lf", &tuned_loss) == 1);
    CHECK_MSG(tuned_loss > 0 && tuned_loss < 0.5 * fresh_loss,
              "step 20 training loss: fine-tuned %g, fresh %g", tuned_loss, fresh_loss);
    free(fresh);
    free(tuned);
    /* the same BPE and (all but) the same weights: the same translations */
    write_text(input, "ich sehe den hund\ndu habe einen ball\nheute c\xc3\xb4te\n");
    stdin_path = input;
    CHECK_EXIT(run("init_tr_full", "translate", "--model", model, "--beam", "1", NULL), 0);
    char *before = read_all(last_out);
    CHECK_EXIT(run("init_tr", "translate", "--model", path_of("init/latest.safetensors"),
                   "--beam", "1", NULL),
               0);
    char *after = read_all(last_out);
    CHECK(before && after && strcmp(before, after) == 0);
    free(before);
    free(after);
    stdin_path = "/dev/null";
    /* a fine-tuning run resumes like any other; the dropout taken from the model may be
     * repeated as the user would write it */
    CHECK_EXIT(run("init_resume", "translate", "train", "--out", path_of("init"), "--resume",
                   "--dropout", "0.1", "--steps", "30", NULL),
               0);
    CHECK_STDERR_MENTIONS("resuming");
    CHECK_STDERR_MENTIONS("step 30/30");
    /* refused: --init on resuming a run that did not start from a model; another
     * architecture, another language pair, no such file, not a model */
    CHECK_EXIT(run("init_on_resume", "translate", "train", "--out", path_of("full"), "--resume",
                   "--init", model, "--steps", "500", NULL),
               2);
    CHECK_STDERR_MENTIONS("--init starts a new run");
    CHECK_EXIT(run("init_hidden", "translate", "train", "--init", model, "--data", data,
                   "--hidden", "64", "--steps", "1", "--out", path_of("init_bad"), NULL),
               2);
    CHECK_STDERR_MENTIONS("--hidden 64 differs from --init");
    CHECK_EXIT(run("init_cell", "translate", "train", "--init", model, "--data", data, "--cell",
                   "lstm", "--steps", "1", "--out", path_of("init_bad"), NULL),
               2);
    CHECK_STDERR_MENTIONS("--cell lstm differs from --init");
    CHECK_EXIT(run("init_tie", "translate", "train", "--init", model, "--data", data,
                   "--tie-embeddings", "--steps", "1", "--out", path_of("init_bad"), NULL),
               2);
    CHECK_STDERR_MENTIONS("--tie-embeddings 1 differs");
    write_pairs(path_of("pairs_id.tsv"), 50, 1); /* columns id, de, en */
    CHECK_EXIT(run("init_lang", "translate", "train", "--init", model, "--data",
                   path_of("pairs_id.tsv"), "--source", "id", "--steps", "1", "--out",
                   path_of("init_bad"), NULL),
               2);
    CHECK_STDERR_MENTIONS("--source id differs from --init");
    CHECK_EXIT(run("init_missing", "translate", "train", "--init", path_of("none.safetensors"),
                   "--data", data, "--steps", "1", "--out", path_of("init_bad"), NULL),
               1);
    CHECK_STDERR_MENTIONS("none.safetensors");
    CHECK_EXIT(run("init_not_model", "translate", "train", "--init", data, "--data", data,
                   "--steps", "1", "--out", path_of("init_bad"), NULL),
               1);
    CHECK(access(path_of("init_bad/latest.safetensors"), F_OK) != 0);
}

/* Whether line `n` (1..) of the file at path holds the byte c. */
static int line_has(const char *path, int n, char c)
{
    char *text = read_all(path);
    const char *at = text;
    for (int k = 1; at && k < n; k++)
        at = (at = strchr(at, '\n')) ? at + 1 : NULL;
    const char *end = at ? strchr(at, '\n') : NULL;
    const int has = at && end && memchr(at, c, (size_t)(end - at)) != NULL;
    free(text);
    return has;
}

/* --memory (neural fuzzy repair): the training part becomes the model's
 * translation memory; sources are extended by their fuzzy match in
 * training, on resuming, in eval and when translating stdin; --init keeps
 * the memory; an ensemble's models must share it. */
static void test_memory(void)
{
    char data[600], input[600], model[600], attention[600];
    snprintf(data, sizeof data, "%s", path_of("pairs.tsv"));
    snprintf(input, sizeof input, "%s", path_of("memory_input.txt"));
    snprintf(model, sizeof model, "%s", path_of("mem/latest.safetensors"));
    snprintf(attention, sizeof attention, "%s", path_of("mem_attention.jsonl"));
    write_pairs(data, 1200, 0);
    for (int k = 0; k < 3; k++) {
        const char *tag = k == 0 ? "mem" : k == 1 ? "mem_half" : "mem_resume";
        char out[600];
        snprintf(out, sizeof out, "%s", path_of(k == 0 ? "mem" : "mem_half"));
        if (k < 2)
            CHECK_EXIT(run(tag, "translate", "train", "--data", data, "--memory", "--vocab", "300",
                           "--embed", "8", "--hidden", "8", "--batch", "16", "--log-every", "5",
                           "--val-every", "10", "--val-sentences", "5", "--save-every", "10",
                           "--out", out, "--steps", k == 0 ? "20" : "10", NULL),
                       0);
        else
            CHECK_EXIT(run(tag, "translate", "train", "--out", out, "--resume", "--steps", "20",
                           NULL),
                       0);
        if (k == 0)
            CHECK_STDERR_MENTIONS("translation memory of");
    }
    /* resuming reads the memory from the checkpoint and repeats the run */
    same_metrics("mem", "mem_half", 5, 20, 5);
    recur_st *st = NULL;
    CHECK_OK(recur_st_open(model, &st));
    const char *meta = st ? recur_st_metadata(st, "recur_translate") : NULL;
    CHECK(meta && strstr(meta, "\"memory_threshold\":0.5") && strstr(meta, "\"format\":2"));
    CHECK(st && recur_st_metadata(st, "recur_memory") != NULL);
    recur_st_free(st);
    /* a sentence with words of the training sources is extended ('@' comes only from the
     * separator), one of unknown words is not */
    write_text(input, "ich sehe  den hund heute\nxyz\n");
    stdin_path = input;
    CHECK_EXIT(run("mem_translate", "translate", "--model", model, "--beam", "2", "--attention",
                   attention, NULL),
               0);
    CHECK(count_lines(last_out) == 2);
    CHECK_MSG(line_has(attention, 1, '@'), "the first sentence's source was not extended");
    CHECK_MSG(!line_has(attention, 2, '@'), "a sentence without a match was extended");
    stdin_path = "/dev/null";
    /* eval extends the sources and shows them as they were read */
    CHECK_EXIT(run("mem_eval", "translate", "eval", "--model", model, "--data", data, "--split",
                   "validation", "--limit", "5", "--examples", "5", "--beam", "1", NULL),
               0);
    CHECK_STDERR_MENTIONS("SRC  ");
    CHECK(!contains(last_err, "@"));
    /* another threshold on resuming is refused */
    CHECK_EXIT(run("mem_resume_threshold", "translate", "train", "--out", path_of("mem"),
                   "--resume", "--memory-threshold", "0.7", "--steps", "30", NULL),
               2);
    CHECK_STDERR_MENTIONS("memory-threshold");
    /* --init keeps the memory and its threshold (an ensemble with the model works); another
     * threshold makes a model an ensemble refuses */
    CHECK_EXIT(run("mem_init", "translate", "train", "--init", model, "--data", data, "--lr",
                   "1e-9", "--val-every", "0", "--steps", "2", "--out", path_of("mem_init"),
                   NULL),
               0);
    CHECK_STDERR_MENTIONS("translation memory of");
    CHECK_EXIT(run("mem_init2", "translate", "train", "--init", model, "--data", data,
                   "--memory-threshold", "0.9", "--lr", "1e-9", "--val-every", "0", "--steps",
                   "2", "--out", path_of("mem_init2"), NULL),
               0);
    char ensemble[1300];
    snprintf(ensemble, sizeof ensemble, "%s,%s", model, path_of("mem_init/latest.safetensors"));
    stdin_path = input;
    CHECK_EXIT(run("mem_ensemble", "translate", "--model", ensemble, NULL), 0);
    snprintf(ensemble, sizeof ensemble, "%s,%s", model, path_of("mem_init2/latest.safetensors"));
    CHECK_EXIT(run("mem_ensemble_bad", "translate", "--model", ensemble, NULL), 1);
    CHECK_STDERR_MENTIONS("translation memory (--memory) differs");
    stdin_path = "/dev/null";
    /* --init with a redundant --memory still keeps the model's threshold */
    CHECK_EXIT(run("mem_init3", "translate", "train", "--init",
                   path_of("mem_init2/latest.safetensors"), "--memory", "--data", data, "--lr",
                   "1e-9", "--val-every", "0", "--steps", "2", "--out", path_of("mem_init3"),
                   NULL),
               0);
    CHECK_OK(recur_st_open(path_of("mem_init3/latest.safetensors"), &st));
    meta = st ? recur_st_metadata(st, "recur_translate") : NULL;
    CHECK_MSG(meta && strstr(meta, "\"memory_threshold\":0.9"), "--init --memory: %s",
              meta ? meta : "no metadata");
    recur_st_free(st);
    /* a format-2 model whose memory settings are gone is refused, not read without its
     * memory: the keys renamed in place */
    size_t len = 0;
    char *bytes = read_file(model, &len);
    int renamed = 0;
    for (size_t i = 0; bytes && i + 16 <= len; i++)
        if (memcmp(bytes + i, "memory_threshold", 16) == 0 ||
            memcmp(bytes + i, "memory_max_chars", 16) == 0) {
            bytes[i] = 'x';
            renamed++;
        }
    CHECK(renamed == 2);
    char damaged[600];
    snprintf(damaged, sizeof damaged, "%s", path_of("mem_damaged.safetensors"));
    FILE *f = fopen(damaged, "wb");
    CHECK(f && fwrite(bytes, 1, len, f) == len);
    if (f)
        fclose(f);
    free(bytes);
    stdin_path = input;
    CHECK_EXIT(run("mem_damaged", "translate", "--model", damaged, NULL), 1);
    CHECK_STDERR_MENTIONS("\"memory_threshold\" must be a number");
    stdin_path = "/dev/null";
}

static recur_seq2seq *load_net(const char *path)
{
    recur_st *st = NULL;
    recur_seq2seq *net = NULL;
    CHECK_OK(recur_st_open(path, &st));
    if (st)
        CHECK_OK(recur_seq2seq_read(st, path, &net));
    recur_st_free(st);
    return net;
}

/* --keep-every keeps step-NNNNNNNN.safetensors (also after --resume), and
 * `translate average` writes their mean, which translates; the refusals. */
static void test_average(void)
{
    char data[600], dir[600], kept[4][700], spec[2200], avg[600];
    snprintf(data, sizeof data, "%s", path_of("pairs.tsv"));
    snprintf(dir, sizeof dir, "%s", path_of("keep"));
    snprintf(avg, sizeof avg, "%s", path_of("avg.safetensors"));
    CHECK_EXIT(run("keep", "translate", "train", "--data", data, "--vocab", "300", "--embed", "8",
                   "--hidden", "8", "--batch", "16", "--val-every", "0", "--save-every", "30",
                   "--keep-every", "20", "--log-every", "10", "--steps", "60", "--out", dir, NULL),
               0);
    CHECK_EXIT(run("keep_resume", "translate", "train", "--out", dir, "--resume", "--steps", "80",
                   NULL),
               0);
    for (int k = 0; k < 4; k++) {
        snprintf(kept[k], sizeof kept[k], "%s/step-%08d.safetensors", dir, 20 * (k + 1));
        CHECK_MSG(access(kept[k], R_OK) == 0, "%s was not kept", kept[k]);
    }
    char other[700];
    snprintf(other, sizeof other, "%s/step-00000030.safetensors", dir);
    CHECK(access(other, F_OK) != 0);
    /* the kept checkpoint of the last step holds the final weights */
    recur_seq2seq *last = load_net(kept[3]);
    recur_seq2seq *latest = load_net(path_of("keep/latest.safetensors"));
    CHECK(last && latest && recur_seq2seq_size(last) == recur_seq2seq_size(latest) &&
          memcmp(recur_seq2seq_params(last), recur_seq2seq_params(latest),
                 recur_seq2seq_size(last) * sizeof(float)) == 0);
    recur_seq2seq_free(latest);

    snprintf(spec, sizeof spec, "%s,%s,%s", kept[1], kept[2], kept[3]);
    CHECK_EXIT(run("average", "translate", "average", "--model", spec, "--out", avg, NULL), 0);
    CHECK_STDOUT_MENTIONS("the mean of 3 checkpoints");
    recur_seq2seq *a = load_net(avg), *b = load_net(kept[1]), *c = load_net(kept[2]);
    if (a && b && c && last) {
        double worst = 0;
        for (size_t i = 0; i < recur_seq2seq_size(a); i++) {
            const double want = ((double)recur_seq2seq_params(b)[i] + recur_seq2seq_params(c)[i] +
                                 recur_seq2seq_params(last)[i]) / 3;
            worst = fmax(worst, fabs(recur_seq2seq_params(a)[i] - want));
        }
        CHECK_MSG(worst < 1e-6, "averaged weights: worst error %g", worst);
        CHECK(memcmp(recur_seq2seq_params(a), recur_seq2seq_params(last),
                     recur_seq2seq_size(a) * sizeof(float)) != 0);
    }
    recur_seq2seq_free(a);
    recur_seq2seq_free(b);
    recur_seq2seq_free(c);
    recur_seq2seq_free(last);
    /* a model like any other: it evaluates and translates */
    CHECK_EXIT(run("average_eval", "translate", "eval", "--model", avg, "--data", data, "--limit",
                   "20", "--json", NULL),
               0);
    CHECK_STDOUT_MENTIONS("\"bleu\"");
    /* an existing --out is kept unless --overwrite */
    size_t before_len = 0, after_len = 0;
    char *before = read_file(avg, &before_len);
    CHECK_EXIT(run("average_exists", "translate", "average", "--model", kept[0], "--out", avg,
                   NULL),
               1);
    CHECK_STDERR_MENTIONS("already exists");
    char *after = read_file(avg, &after_len);
    CHECK(before && after && before_len == after_len && memcmp(before, after, before_len) == 0);
    free(before);
    free(after);
    CHECK_EXIT(run("average_one", "translate", "average", "--model", kept[0], "--out", avg,
                   "--overwrite", NULL),
               0);
    a = load_net(avg);
    b = load_net(kept[0]);
    CHECK(a && b && memcmp(recur_seq2seq_params(a), recur_seq2seq_params(b),
                           recur_seq2seq_size(a) * sizeof(float)) == 0);
    recur_seq2seq_free(a);
    recur_seq2seq_free(b);
    /* another architecture (same BPE): refused, naming the difference; nothing written */
    CHECK_EXIT(run("keep_wide", "translate", "train", "--data", data, "--vocab", "300", "--embed",
                   "8", "--hidden", "12", "--batch", "16", "--val-every", "0", "--keep-every",
                   "10", "--steps", "10", "--out", path_of("keep_wide"), NULL),
               0);
    snprintf(spec, sizeof spec, "%s,%s", kept[0], path_of("keep_wide/step-00000010.safetensors"));
    CHECK_EXIT(run("average_arch", "translate", "average", "--model", spec, "--out",
                   path_of("avg2.safetensors"), NULL),
               1);
    CHECK_STDERR_MENTIONS("hidden size");
    CHECK_STDERR_MENTIONS("keep_wide/step-00000010.safetensors differs from");
    CHECK(access(path_of("avg2.safetensors"), F_OK) != 0);
    snprintf(spec, sizeof spec, "%s,%s", kept[0], path_of("keep/none.safetensors"));
    CHECK_EXIT(run("average_missing", "translate", "average", "--model", spec, "--out",
                   path_of("avg2.safetensors"), NULL),
               1);
    CHECK_STDERR_MENTIONS("none.safetensors");
    CHECK(access(path_of("avg2.safetensors"), F_OK) != 0);
    CHECK_EXIT(run("average_no_out", "translate", "average", "--model", kept[0], NULL), 2);
    CHECK_STDERR_MENTIONS("--out");
    CHECK_EXIT(run("help_average", "translate", "average", "--help", NULL), 0);
    CHECK_STDOUT_MENTIONS("--overwrite");
    CHECK_EXIT(run("help_keep", "translate", "train", "--help", NULL), 0);
    CHECK_STDOUT_MENTIONS("--keep-every");
}

static void test_bad_data(void)
{
    char data[600];
    snprintf(data, sizeof data, "%s", path_of("bad.tsv"));
    write_text(data, "de\ten\nhallo\thello\n\twelt\n");
    CHECK_EXIT(run("train_empty_field", "translate", "train", "--data", data, "--out",
                   path_of("bad1"), "--steps", "1", NULL),
               1);
    CHECK_STDERR_MENTIONS("bad.tsv:3");
    write_text(data, "de\ten\nhallo\th\xc3\n");
    CHECK_EXIT(run("train_utf8", "translate", "train", "--data", data, "--out", path_of("bad2"),
                   "--steps", "1", NULL),
               1);
    CHECK_STDERR_MENTIONS("bad.tsv:2");
    write_pairs(data, 50, 1);
    CHECK_EXIT(run("train_column", "translate", "train", "--data", data, "--source", "fr",
                   "--out", path_of("bad3"), "--steps", "1", NULL),
               1);
    CHECK_STDERR_MENTIONS("'fr'");
    CHECK_EXIT(run("train_missing", "translate", "train", "--data", path_of("none.tsv"), "--out",
                   path_of("bad4"), "--steps", "1", NULL),
               1);
    CHECK_STDERR_MENTIONS("none.tsv");
}

int main(int argc, char **argv)
{
    if (cli_begin(argc, argv, "translate_cli"))
        return 1;
    test_usage();
    test_train_resume_translate();
    test_init();
    test_memory();
    test_average();
    test_bad_data();
    cli_end("translate_cli");
    CHECK_DONE();
}
