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
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "recur.h"

extern char **environ;

#define FSDD RECUR_SOURCE_DIR "/data/fsdd"

static const char *recur_bin;
static char dir[256];
static char last_out[600], last_err[600];

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    size_t got = buf ? fread(buf, 1, (size_t)len, f) : 0;
    fclose(f);
    if (buf)
        buf[got] = '\0';
    return buf;
}

static void path_of(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

/* Runs `recur args...` (NULL-terminated) with stdout/stderr into
 * dir/<tag>.out/.err; returns the exit code. */
static int recur(const char *tag, ...)
{
    const char *argv[96];
    int n = 0;
    argv[n++] = recur_bin;
    va_list ap;
    va_start(ap, tag);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 95)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    snprintf(last_out, sizeof last_out, "%s/%s.out", dir, tag);
    snprintf(last_err, sizeof last_err, "%s/%s.err", dir, tag);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, last_out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, last_err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    if (posix_spawn(&pid, recur_bin, &fa, NULL, (char *const *)argv, environ) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int contains(const char *path, const char *needle)
{
    char *text = read_all(path);
    int found = text && strstr(text, needle) != NULL;
    free(text);
    return found;
}

#define CHECK_EXIT(got, want)                                                              \
    do {                                                                                   \
        int exit_got_ = (got);                                                             \
        CHECK_MSG(exit_got_ == (want), "exit code %d, expected %d", exit_got_, (want));    \
        if (exit_got_ != (want)) {                                                         \
            char *err_ = read_all(last_err);                                               \
            fprintf(stderr, "  stderr (%s):\n%s\n", last_err, err_ ? err_ : "(none)");      \
            free(err_);                                                                    \
        }                                                                                  \
    } while (0)

#define CHECK_STDERR_MENTIONS(needle)                                                      \
    CHECK_MSG(contains(last_err, needle), "stderr %s lacks \"%s\"", last_err, needle)
#define CHECK_STDOUT_MENTIONS(needle)                                                      \
    CHECK_MSG(contains(last_out, needle), "stdout %s lacks \"%s\"", last_out, needle)

/* Common flags of a tiny model on the committed clips. */
#define TINY "--data", FSDD, "--hidden", "12", "--layers", "1", "--mels", "20", "--batch", \
             "3", "--threads", "1", "--log-every", "5"

/* train_loss of the first and last rows of a metrics file. */
static int first_last_loss(const char *path, double *first, double *last)
{
    char *text = read_all(path);
    if (!text)
        return -1;
    int rows = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "step,", 5) == 0)
            continue;
        const char *c = strchr(line, ',');
        c = c ? strchr(c + 1, ',') : NULL;
        if (!c)
            continue;
        double loss = strtod(c + 1, NULL);
        if (rows++ == 0)
            *first = loss;
        *last = loss;
    }
    free(text);
    return rows;
}

static void test_usage(void)
{
    CHECK_EXIT(recur("help", "speech", "--help", NULL), 0);
    CHECK_STDOUT_MENTIONS("transcribe");
    CHECK_EXIT(recur("top", "--help", NULL), 0);
    CHECK_STDOUT_MENTIONS("speech");
    CHECK_EXIT(recur("train_help", "speech", "train", "--help", NULL), 0);
    CHECK_STDOUT_MENTIONS("--test-takes");
    CHECK_STDOUT_MENTIONS("--clip");
    CHECK_EXIT(recur("bogus", "speech", "bogus", NULL), 2);
    CHECK_EXIT(recur("none", "speech", NULL), 2);
    CHECK_EXIT(recur("nodata", "speech", "train", NULL), 2);
    CHECK_STDERR_MENTIONS("--data");
    CHECK_EXIT(recur("task", "speech", "train", "--data", FSDD, "--task", "words", NULL), 2);
    CHECK_EXIT(recur("takes", "speech", "train", "--data", FSDD, "--test-takes", "4-1", NULL), 2);
    CHECK_STDERR_MENTIONS("--test-takes");
    CHECK_EXIT(recur("digits", "speech", "eval", "--model", "x", "--data", FSDD, "--min-digits",
                     "5", "--max-digits", "2", NULL), 2);
    CHECK_EXIT(recur("nomodel", "speech", "transcribe", FSDD "/2_theo_34.wav", NULL), 2);
    CHECK_STDERR_MENTIONS("--model");
    char out[300];
    path_of(out, sizeof out, "nothing");
    CHECK_EXIT(recur("nosplit", "speech", "train", "--data", FSDD, "--test-speakers",
                     "george,theo,nicolas", "--out", out, NULL), 1);
    CHECK_STDERR_MENTIONS("no recording");
}

static void test_train_transcribe_eval(void)
{
    char out[300], model[400], metrics[400];
    path_of(out, sizeof out, "iso");
    snprintf(model, sizeof model, "%s/latest.safetensors", out);
    snprintf(metrics, sizeof metrics, "%s/metrics.csv", out);
    /* every clip trains (no test takes); 2 of 6 validate */
    CHECK_EXIT(recur("train", "speech", "train", TINY, "--test-takes", "none", "--val-fraction",
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
    CHECK_EXIT(recur("again", "speech", "train", TINY, "--test-takes", "none", "--steps", "1",
                     "--out", out, NULL),
               1);
    CHECK_STDERR_MENTIONS("--resume");

    /* transcribe: one line per file, in order */
    const char *a = FSDD "/0_george_31.wav", *b = FSDD "/3_nicolas_19.wav";
    CHECK_EXIT(recur("tr", "speech", "transcribe", "--model", model, a, "--beam", "1", b, NULL),
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
    char cut[300];
    path_of(cut, sizeof cut, "cut.wav");
    char *wav = read_all(a);
    FILE *f = fopen(cut, "wb");
    if (f && wav) {
        fwrite(wav, 1, 2000, f);
        fclose(f);
    }
    free(wav);
    CHECK_EXIT(recur("tr_bad", "speech", "transcribe", "--model", model, "/nonexistent.wav", cut,
                     b, NULL),
               1);
    CHECK_STDERR_MENTIONS("/nonexistent.wav");
    CHECK_STDERR_MENTIONS("truncated");
    CHECK_STDERR_MENTIONS("2 of 3 files");
    CHECK_STDOUT_MENTIONS("3_nicolas_19.wav\t");

    /* eval: the default split (takes 0-4) holds one clip, 1_theo_2 */
    CHECK_EXIT(recur("eval", "speech", "eval", "--model", model, "--data", FSDD, "--threads",
                     "1", NULL),
               0);
    CHECK_STDOUT_MENTIONS("1 isolated utterances");
    CHECK_STDOUT_MENTIONS("accuracy");
    CHECK_STDOUT_MENTIONS("cer");
    CHECK_EXIT(recur("eval_json", "speech", "eval", "--model", model, "--data", FSDD, "--split",
                     "all", "--json", "--beam", "1", NULL),
               0);
    CHECK_STDOUT_MENTIONS("\"utterances\": 6");
    CHECK_STDOUT_MENTIONS("\"letters\": 6");
    CHECK_EXIT(recur("eval_conn", "speech", "eval", "--model", model, "--data", FSDD, "--split",
                     "all", "--task", "connected", "--utterances", "4", "--max-digits", "3",
                     "--json", "--show-errors", NULL),
               0);
    CHECK_STDOUT_MENTIONS("\"utterances\": 4");
    /* a speaker filter that leaves nothing */
    CHECK_EXIT(recur("eval_none", "speech", "eval", "--model", model, "--data", FSDD,
                     "--speakers", "jackson", NULL),
               1);
    CHECK_STDERR_MENTIONS("no recording");
    /* not a speech model */
    char junk[300];
    path_of(junk, sizeof junk, "junk.safetensors");
    f = fopen(junk, "wb");
    if (f) {
        fwrite("\x10\x00\x00\x00\x00\x00\x00\x00{}              ", 1, 24, f);
        fclose(f);
    }
    CHECK_EXIT(recur("junk", "speech", "transcribe", "--model", junk, a, NULL), 1);
    CHECK_STDERR_MENTIONS("junk.safetensors");
    CHECK_EXIT(recur("junk_eval", "speech", "eval", "--model", junk, "--data", FSDD, NULL), 1);
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
    char full[300], half[300], path[400];
    path_of(full, sizeof full, "full");
    path_of(half, sizeof half, "half");
    /* connected, 2 steps an epoch: the resumed walk crosses an epoch */
#define CONNECTED TINY, "--task", "connected", "--test-takes", "none", "--max-digits", "3", \
                  "--epoch-utterances", "6", "--val-fraction", "0.2", "--val-utterances", "3", \
                  "--save-every", "0"
    CHECK_EXIT(recur("full", "speech", "train", CONNECTED, "--steps", "6", "--out", full, NULL),
               0);
    CHECK_EXIT(recur("half", "speech", "train", CONNECTED, "--steps", "3", "--out", half, NULL),
               0);
    CHECK_EXIT(recur("resume", "speech", "train", "--resume", "--steps", "6", "--out", half,
                     "--threads", "1", NULL),
               0);
    CHECK_STDERR_MENTIONS("resuming");
    size_t n1 = 0, n2 = 0;
    snprintf(path, sizeof path, "%s/latest.safetensors", full);
    float *w1 = weights_of(path, &n1);
    snprintf(path, sizeof path, "%s/latest.safetensors", half);
    float *w2 = weights_of(path, &n2);
    CHECK(w1 && w2 && n1 == n2);
    if (w1 && w2 && n1 == n2)
        CHECK_MSG(memcmp(w1, w2, n1 * sizeof *w1) == 0,
                  "6 steps and 3 + --resume 3 must give bit-identical weights");
    free(w1);
    free(w2);
    /* a frozen option cannot change */
    CHECK_EXIT(recur("frozen", "speech", "train", "--resume", "--steps", "8", "--out", half,
                     "--hidden", "13", NULL),
               2);
    CHECK_STDERR_MENTIONS("--hidden");
}

int main(int argc, char **argv)
{
    recur_bin = argc > 1 ? argv[1] : RECUR_BINARY_DIR "/recur";
    if (access(recur_bin, X_OK) != 0) {
        fprintf(stderr, "test_speech_cli: the recur binary %s is missing (build the 'recur' "
                "target)\n", recur_bin);
        return 1;
    }
    snprintf(dir, sizeof dir, "/tmp/recur_test_speech_cli_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_usage();
    test_train_transcribe_eval();
    test_resume();
    if (check_failed == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    } else {
        fprintf(stderr, "test_speech_cli: outputs kept in %s\n", dir);
    }
    CHECK_DONE();
}
