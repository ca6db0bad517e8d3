/* test_speech_cli.c - end-to-end tests of `recur speech` on the six FSDD
 * clips committed in data/fsdd (binary path in argv[1], else
 * RECUR_BINARY_DIR/recur), in a fresh temporary folder: help and usage
 * errors (exit 2); a tiny isolated run whose loss falls and that writes
 * its checkpoints and metrics; transcribe (one "path<TAB>digits" line per
 * file, a missing or truncated file reported with exit 1 while the others
 * still print); eval in text and JSON, isolated and connected; exact
 * --resume of a connected run (N steps == N/2 + --resume: bit-identical
 * weights); a frozen option changed on --resume (exit 2); a checkpoint that
 * is not a speech model (exit 1). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "recur.h"

#include "cli_harness.h"

#define FSDD RECUR_SOURCE_DIR "/data/fsdd"

/* Common flags of a tiny model on the committed clips. */
#define TINY "--data", FSDD, "--hidden", "12", "--layers", "1", "--mels", "20", "--batch", \
             "3", "--threads", "1", "--log-every", "5"

/* train_loss of the first and last rows of a metrics file. */
static int first_last_loss(const char *path, double *first, double *last)
{
    char *text = read_all(path), *cursor = text, *cols[3];
    if (!text)
        return -1;
    int rows = 0;
    for (int k; (k = next_csv_row(&cursor, cols, 3)) >= 0;) {
        if (k != 3)
            continue;
        double loss = strtod(cols[2], NULL);
        if (rows++ == 0)
            *first = loss;
        *last = loss;
    }
    free(text);
    return rows;
}

static void test_usage(void)
{
    CHECK_EXIT(run("help", "speech", "--help", NULL), 0);
    CHECK_STDOUT_MENTIONS("transcribe");
    CHECK_EXIT(run("top", "--help", NULL), 0);
    CHECK_STDOUT_MENTIONS("speech");
    CHECK_EXIT(run("train_help", "speech", "train", "--help", NULL), 0);
    CHECK_STDOUT_MENTIONS("--test-takes");
    CHECK_STDOUT_MENTIONS("--clip");
    CHECK_EXIT(run("bogus", "speech", "bogus", NULL), 2);
    CHECK_EXIT(run("none", "speech", NULL), 2);
    CHECK_EXIT(run("nodata", "speech", "train", NULL), 2);
    CHECK_STDERR_MENTIONS("--data");
    CHECK_EXIT(run("task", "speech", "train", "--data", FSDD, "--task", "words", NULL), 2);
    CHECK_EXIT(run("takes", "speech", "train", "--data", FSDD, "--test-takes", "4-1", NULL), 2);
    CHECK_STDERR_MENTIONS("--test-takes");
    CHECK_EXIT(run("digits", "speech", "eval", "--model", "x", "--data", FSDD, "--min-digits",
                   "5", "--max-digits", "2", NULL), 2);
    CHECK_EXIT(run("nomodel", "speech", "transcribe", FSDD "/2_theo_34.wav", NULL), 2);
    CHECK_STDERR_MENTIONS("--model");
    CHECK_EXIT(run("nosplit", "speech", "train", "--data", FSDD, "--test-speakers",
                   "george,theo,nicolas", "--out", path_of("nothing"), NULL), 1);
    CHECK_STDERR_MENTIONS("no recording");
}

static void test_train_transcribe_eval(void)
{
    const char *out = path_of("iso"), *model = path_of("iso/latest.safetensors");
    const char *metrics = path_of("iso/metrics.csv");
    /* every clip trains (no test takes); 2 of 6 validate */
    CHECK_EXIT(run("train", "speech", "train", TINY, "--test-takes", "none", "--val-fraction",
                   "0.34", "--val-every", "10", "--steps", "40", "--lr", "0.01", "--out", out,
                   NULL),
               0);
    CHECK_STDERR_MENTIONS("4 training + 2 validation recordings");
    CHECK_STDERR_MENTIONS("step 40/40");
    CHECK_STDERR_MENTIONS("err ");
    double first = NAN, last = NAN;
    CHECK(first_last_loss(metrics, &first, &last) >= 4);
    CHECK_MSG(last < 0.7 * first, "the training loss should fall: %g -> %g", first, last);
    CHECK(access(model, R_OK) == 0);
    recur_speech *m = NULL;
    CHECK_OK(recur_speech_load(model, &m));
    if (m) {
        CHECK(recur_speech_get_config(m)->hidden_size == 12 &&
              recur_speech_feature_dim(m) == 20);
        CHECK(recur_speech_num_classes(m) == 4 + 1); /* the training clips hold 4 digits */
        recur_speech_free(m);
    }
    /* a second run in the same folder needs --resume or --overwrite */
    CHECK_EXIT(run("again", "speech", "train", TINY, "--test-takes", "none", "--steps", "1",
                   "--out", out, NULL),
               1);
    CHECK_STDERR_MENTIONS("--resume");

    /* transcribe: one line per file, in order */
    const char *a = FSDD "/0_george_31.wav", *b = FSDD "/3_nicolas_19.wav";
    CHECK_EXIT(run("tr", "speech", "transcribe", "--model", model, a, "--beam", "1", b, NULL),
               0);
    char *text = read_all(last_out);
    CHECK(text != NULL);
    if (text) {
        char *second = strchr(text, '\n');
        CHECK_MSG(strncmp(text, a, strlen(a)) == 0 && text[strlen(a)] == '\t', "line 1: %s",
                  text);
        CHECK(second && strncmp(second + 1, b, strlen(b)) == 0 && second[1 + strlen(b)] == '\t');
        int lines = 0, digits_only = 1;
        for (char *p = text; *p; p++) {
            if (*p == '\n')
                lines++;
            if (*p == '\t')
                for (char *q = p + 1; *q && *q != '\n'; q++)
                    digits_only &= *q >= '0' && *q <= '9';
        }
        CHECK(lines == 2 && digits_only);
        free(text);
    }
    /* a missing and a truncated file: reported, the good one still printed */
    const char *cut = path_of("cut.wav");
    char *wav = read_all(a);
    if (wav)
        write_all(cut, wav, 2000);
    free(wav);
    CHECK_EXIT(run("tr_bad", "speech", "transcribe", "--model", model, "/nonexistent.wav", cut,
                   b, NULL),
               1);
    CHECK_STDERR_MENTIONS("/nonexistent.wav");
    CHECK_STDERR_MENTIONS("truncated");
    CHECK_STDERR_MENTIONS("2 of 3 files");
    CHECK_STDOUT_MENTIONS("3_nicolas_19.wav\t");

    /* eval: the default split (takes 0-4) holds one clip, 1_theo_2 */
    CHECK_EXIT(run("eval", "speech", "eval", "--model", model, "--data", FSDD, "--threads",
                   "1", NULL),
               0);
    CHECK_STDOUT_MENTIONS("1 isolated utterances");
    CHECK_STDOUT_MENTIONS("accuracy");
    CHECK_STDOUT_MENTIONS("cer");
    CHECK_EXIT(run("eval_json", "speech", "eval", "--model", model, "--data", FSDD, "--split",
                   "all", "--json", "--beam", "1", NULL),
               0);
    CHECK_STDOUT_MENTIONS("\"utterances\": 6");
    CHECK_STDOUT_MENTIONS("\"letters\": 6");
    CHECK_EXIT(run("eval_conn", "speech", "eval", "--model", model, "--data", FSDD, "--split",
                   "all", "--task", "connected", "--utterances", "4", "--max-digits", "3",
                   "--json", "--show-errors", NULL),
               0);
    CHECK_STDOUT_MENTIONS("\"utterances\": 4");
    /* a speaker filter that leaves nothing */
    CHECK_EXIT(run("eval_none", "speech", "eval", "--model", model, "--data", FSDD,
                   "--speakers", "jackson", NULL),
               1);
    CHECK_STDERR_MENTIONS("no recording");
    /* not a speech model */
    const char *junk = path_of("junk.safetensors");
    write_all(junk, "\x10\x00\x00\x00\x00\x00\x00\x00{}              ", 24);
    CHECK_EXIT(run("junk", "speech", "transcribe", "--model", junk, a, NULL), 1);
    CHECK_STDERR_MENTIONS("junk.safetensors");
    CHECK_EXIT(run("junk_eval", "speech", "eval", "--model", junk, "--data", FSDD, NULL), 1);
}

/* Weights of a checkpoint, or NULL. */
static float *weights_of(const char *path, size_t *n)
{
    recur_speech *m = NULL;
    if (recur_speech_load(path, &m))
        return NULL;
    *n = recur_speech_size(m);
    float *w = malloc(*n * sizeof *w);
    memcpy(w, recur_speech_params(m), *n * sizeof *w);
    recur_speech_free(m);
    return w;
}

static void test_resume(void)
{
    const char *full = path_of("full"), *half = path_of("half");
    /* connected, 2 steps an epoch: the resumed walk crosses an epoch */
#define CONNECTED TINY, "--task", "connected", "--test-takes", "none", "--max-digits", "3", \
                  "--epoch-utterances", "6", "--val-fraction", "0.2", "--val-utterances", "3", \
                  "--save-every", "0"
    CHECK_EXIT(run("full", "speech", "train", CONNECTED, "--steps", "6", "--out", full, NULL),
               0);
    CHECK_EXIT(run("half", "speech", "train", CONNECTED, "--steps", "3", "--out", half, NULL),
               0);
    CHECK_EXIT(run("resume", "speech", "train", "--resume", "--steps", "6", "--out", half,
                   "--threads", "1", NULL),
               0);
    CHECK_STDERR_MENTIONS("resuming");
    size_t n1 = 0, n2 = 0;
    float *w1 = weights_of(path_of("full/latest.safetensors"), &n1);
    float *w2 = weights_of(path_of("half/latest.safetensors"), &n2);
    CHECK(w1 && w2 && n1 == n2);
    if (w1 && w2 && n1 == n2)
        CHECK_MSG(memcmp(w1, w2, n1 * sizeof *w1) == 0,
                  "6 steps and 3 + --resume 3 must give bit-identical weights");
    free(w1);
    free(w2);
    /* a frozen option cannot change */
    CHECK_EXIT(run("frozen", "speech", "train", "--resume", "--steps", "8", "--out", half,
                   "--hidden", "13", NULL),
               2);
    CHECK_STDERR_MENTIONS("--hidden");
}

int main(int argc, char **argv)
{
    if (cli_begin(argc, argv, "test_speech_cli"))
        return 1;
    test_usage();
    test_train_transcribe_eval();
    test_resume();
    cli_end("test_speech_cli");
    CHECK_DONE();
}
