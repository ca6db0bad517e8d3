/* test_cli.c - end-to-end tests of the `recur` tool and of LM checkpoints.
 * Runs the built binary (path in argv[1], else RECUR_BINARY_DIR/recur) on a
 * 30 KB slice of tiny Shakespeare with tiny models, in a fresh temporary
 * folder: --help and --version; bad flags and values (exit 2); training
 * makes the loss fall; eval reproduces the validation loss of training;
 * resume exactness (N steps == N/2 + --resume N/2: same metrics rows and
 * bit-identical weights, optimizer moments, carried state and RNG);
 * sampling determinism; NaN handling (stop: exit 1, last checkpoint intact;
 * skip: continues); corrupt and inconsistent checkpoints (exit 1 with a
 * message, never a crash; library messages name the problem); SIGKILL at
 * random moments during frequent saves (latest always loads); Ctrl-C saves
 * and exits 0; model-only checkpoints load for eval but cannot resume. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "recur.h"

#include "cli_harness.h"

static char text_path[600]; /* the training text */

/* ---- helpers -------------------------------------------------------------- */

/* One row of metrics.csv: step and the columns that must be reproducible
 * (everything but tokens_per_s and elapsed_s), as text. */
typedef struct csv_row {
    long step;
    char fields[256];
    double train_loss, val_loss;
} csv_row;

static int read_metrics(const char *path, csv_row *rows, int max)
{
    char *text = read_all(path), *cursor = text, *cols[9];
    if (!text)
        return -1;
    int n = 0;
    for (int k; n < max && (k = next_csv_row(&cursor, cols, 9)) >= 0;) {
        if (k != 9)
            continue;
        csv_row *r = &rows[n++];
        r->step = strtol(cols[0], NULL, 10);
        r->train_loss = cols[2][0] ? strtod(cols[2], NULL) : NAN;
        r->val_loss = cols[3][0] ? strtod(cols[3], NULL) : NAN;
        snprintf(r->fields, sizeof r->fields, "%s,%s,%s,%s,%s,%s,%s", cols[0], cols[1], cols[2],
                 cols[3], cols[4], cols[6], cols[7]);
    }
    free(text);
    return n;
}

static int load_ok(const char *path, recur_lm **lm, recur_vocab **vocab, recur_train_state **ts)
{
    return recur_checkpoint_load(path, lm, vocab, ts);
}

/* Common flags of a tiny run. */
#define TINY "--data", text_path, "--hidden", "32", "--layers", "1", "--embed", "16", \
             "--seq-len", "25", "--batch", "8", "--threads", "1"

/* ---- the tests ------------------------------------------------------------ */

static void test_help_and_version(void)
{
    CHECK_EXIT(run("version", "--version", NULL), 0);
    CHECK_MSG(contains(last_out, RECUR_VERSION_STRING), "--version lacks the version");
    CHECK_EXIT(run("help", "--help", NULL), 0);
    CHECK_MSG(contains(last_out, "train") && contains(last_out, "sample") &&
              contains(last_out, "eval"), "--help lacks the commands");
    CHECK_EXIT(run("none", NULL), 2);
    CHECK_EXIT(run("unknown_command", "fly", NULL), 2);

    static const char *const train_opts[] = {
        "--data", "--cell", "--hidden", "--layers", "--embed", "--seq-len", "--batch",
        "--steps", "--epochs", "--time", "--optimizer", "--lr", "--momentum", "--nesterov",
        "--weight-decay", "--beta1", "--beta2", "--eps", "--alpha", "--schedule", "--warmup",
        "--clip", "--clip-value", "--dropout", "--seed", "--out", "--resume", "--val-fraction",
        "--val-every", "--save-every", "--sample-every", "--sample-length", "--log-every",
        "--byte-level", "--threads", "--on-nan", "--metrics", "(default: 256)",
        "(default: lstm)", "(default: 100)", "(default: 32)", "(default: 0.002)",
        "(default: 5)", NULL};
    CHECK_EXIT(run("train_help", "train", "--help", NULL), 0);
    for (int i = 0; train_opts[i]; i++)
        CHECK_MSG(contains(last_out, train_opts[i]), "train --help lacks %s", train_opts[i]);
    static const char *const sample_opts[] = {"--model", "--prime", "--length", "--temperature",
                                              "--top-k", "--top-p", "--seed", "(default: 500)",
                                              NULL};
    CHECK_EXIT(run("sample_help", "sample", "--help", NULL), 0);
    for (int i = 0; sample_opts[i]; i++)
        CHECK_MSG(contains(last_out, sample_opts[i]), "sample --help lacks %s", sample_opts[i]);
    CHECK_EXIT(run("eval_help", "eval", "--help", NULL), 0);
    CHECK_MSG(contains(last_out, "--model") && contains(last_out, "--data") &&
              contains(last_out, "--json"), "eval --help lacks an option");
}

static void test_bad_flags(void)
{
    CHECK_EXIT(run("bad1", "train", "--data", text_path, "--hiden", "3", NULL), 2);
    CHECK_STDERR_MENTIONS("unknown option '--hiden'");
    CHECK_EXIT(run("bad2", "train", "--data", text_path, "--hidden", "abc", NULL), 2);
    CHECK_STDERR_MENTIONS("'abc' is not an integer");
    CHECK_EXIT(run("bad3", "train", "--data", text_path, "--hidden", "0", NULL), 2);
    CHECK_STDERR_MENTIONS("out of range");
    CHECK_EXIT(run("bad4", "train", "--data", text_path, "--cell", "transformer", NULL), 2);
    CHECK_STDERR_MENTIONS("lstm, gru, rnn_tanh, rnn_relu");
    CHECK_EXIT(run("bad5", "train", "--data", text_path, "--lr", NULL), 2);
    CHECK_STDERR_MENTIONS("needs a value");
    CHECK_EXIT(run("bad6", "train", "--lr", "0.1", NULL), 2);
    CHECK_STDERR_MENTIONS("--data");
    CHECK_EXIT(run("bad7", "train", "--data", text_path, "--lr", "nan", NULL), 2);
    CHECK_EXIT(run("bad8", "train", "--data", text_path, "--schedule", "cosine", "--time", "5",
                   NULL), 2);
    CHECK_STDERR_MENTIONS("--decay-steps");
    CHECK_EXIT(run("bad9", "train", "--data", text_path, "--optimizer", "sgd", "--nesterov",
                   NULL), 2);
    CHECK_STDERR_MENTIONS("nesterov");
    CHECK_EXIT(run("bad10", "train", "--data", text_path, "stray", NULL), 2);
    CHECK_EXIT(run("bad11", "sample", "--length", "5", NULL), 2);
    CHECK_STDERR_MENTIONS("--model");
    CHECK_EXIT(run("bad12", "sample", "--model", "x", "--temperature", "0", NULL), 2);
    CHECK_EXIT(run("bad13", "sample", "--model", "x", "--top-p", "1.5", NULL), 2);
    CHECK_EXIT(run("bad14", "eval", "--model", "x", NULL), 2);
    CHECK_EXIT(run("bad15", "eval", "--data", text_path, "--json=maybe", NULL), 2);
}

static void test_train_eval_sample(void)
{
    const char *out = path_of("run_main"), *metrics = path_of("run_main/metrics.csv");
    const char *latest = path_of("run_main/latest.safetensors");
    CHECK_EXIT(run("train_main", "train", "--data", text_path, "--out", out, "--hidden", "64",
                   "--layers", "1", "--embed", "16", "--seq-len", "25", "--batch", "16",
                   "--lr", "0.01", "--steps", "90", "--val-every", "30", "--log-every", "10",
                   "--threads", "1", "--sample-every", "90", "--sample-length", "50", NULL), 0);
    CHECK_STDERR_MENTIONS("seed 1");
    CHECK_STDERR_MENTIONS("command line: recur train");
    CHECK_STDERR_MENTIONS("sample at step 90");
    csv_row rows[64];
    int n = read_metrics(metrics, rows, 64);
    CHECK_MSG(n == 9, "metrics.csv has %d rows, expected 9", n);
    if (n < 9)
        return;
    CHECK(rows[0].step == 10 && rows[8].step == 90);
    /* the loss falls: from about ln(V) ~ 4.1 to well below */
    const double first_train = rows[0].train_loss, last_train = rows[8].train_loss;
    CHECK_MSG(last_train < first_train - 0.6, "train loss %g -> %g did not fall", first_train,
              last_train);
    CHECK_MSG(isfinite(rows[2].val_loss) && isfinite(rows[8].val_loss) &&
              rows[8].val_loss < rows[2].val_loss - 0.2,
              "validation loss %g (step 30) -> %g (step 90) did not fall", rows[2].val_loss,
              rows[8].val_loss);
    CHECK_MSG(rows[8].val_loss < 3.2, "final validation loss %g", rows[8].val_loss);
    CHECK_MSG(isnan(rows[0].val_loss), "validation at step 10 not expected");

    /* the checkpoint reloads, and eval gives a finite plausible value on the
     * validation tail (one stream, so close to but not exactly the B-stream
     * number of training) */
    size_t text_len = 0;
    char *text = read_file(text_path, &text_len);
    size_t val_len = (size_t)llround((double)text_len * 0.1);
    const char *val_path = path_of("val.txt");
    write_all(val_path, text + text_len - val_len, val_len);
    CHECK_EXIT(run("eval_main", "eval", "--model", latest, "--data", val_path, "--json", NULL),
               0);
    char *json = read_all(last_out);
    double loss = NAN, bpc = NAN, ppl = NAN;
    long chars = 0;
    CHECK_MSG(json && sscanf(json, "{\"loss\": %lf, \"bpc\": %lf, \"perplexity\": %lf, "
                             "\"chars\": %ld}", &loss, &bpc, &ppl, &chars) == 4,
              "eval --json printed \"%s\"", json ? json : "");
    free(json);
    CHECK_NEAR(loss, rows[8].val_loss, 0.05);
    CHECK_NEAR(bpc, loss / log(2.0), 1e-6);
    CHECK_NEAR(ppl, exp(loss), 1e-4 * exp(loss));
    CHECK(chars == (long)val_len - 1);
    /* --streams 16 --chunk 25 is training's validation (--batch 16 --seq-len 25) */
    const double train_val = rows[8].val_loss;
    CHECK_EXIT(run("eval_streams", "eval", "--model", latest, "--data", val_path, "--json",
                   "--streams", "16", "--chunk", "25", NULL), 0);
    json = read_all(last_out);
    CHECK(json && sscanf(json, "{\"loss\": %lf", &loss) == 1);
    free(json);
    CHECK_NEAR(loss, train_val, 2e-6);
    CHECK_EXIT(run("eval_streams_bf16", "eval", "--model", latest, "--data", val_path,
                   "--streams", "16", "--precision", "bf16", NULL), 2);
    CHECK_STDERR_MENTIONS("--streams");

    /* same protocol with one stream: eval must give the training's number */
    const char *out1 = path_of("run_b1"), *latest1 = path_of("run_b1/latest.safetensors");
    const char *metrics1 = path_of("run_b1/metrics.csv");
    CHECK_EXIT(run("train_b1", "train", "--data", text_path, "--out", out1, "--hidden", "32",
                   "--layers", "2", "--embed", "8", "--seq-len", "30", "--batch", "1",
                   "--cell", "gru", "--steps", "12", "--val-every", "6", "--threads", "1",
                   NULL), 0);
    n = read_metrics(metrics1, rows, 64);
    CHECK_EXIT(run("eval_b1", "eval", "--model", latest1, "--data", val_path, "--json", NULL),
               0);
    json = read_all(last_out);
    CHECK(json && sscanf(json, "{\"loss\": %lf", &loss) == 1);
    free(json);
    CHECK_MSG(n >= 1, "no metrics rows");
    if (n >= 1)
        CHECK_NEAR(loss, rows[n - 1].val_loss, 2e-6);

    /* --precision: bf16 scores the text token by token with the recurrent
     * products rounded to bfloat16: close to the f32 loss, but not equal */
    double loss32 = NAN, loss16 = NAN;
    CHECK_EXIT(run("eval_f32", "eval", "--model", latest, "--data", val_path, "--json", NULL),
               0);
    json = read_all(last_out);
    CHECK(json && sscanf(json, "{\"loss\": %lf", &loss32) == 1);
    free(json);
    CHECK_EXIT(run("eval_bf16", "eval", "--model", latest, "--data", val_path, "--json",
                   "--precision", "bf16", NULL), 0);
    json = read_all(last_out);
    CHECK(json && sscanf(json, "{\"loss\": %lf", &loss16) == 1);
    free(json);
    CHECK_MSG(loss16 != loss32 && fabs(loss16 - loss32) < 0.01 * loss32,
              "bf16 loss %.9g against f32 %.9g", loss16, loss32);
    CHECK_EXIT(run("eval_prec_bad", "eval", "--model", latest, "--data", val_path,
                   "--precision", "fp8", NULL), 2);
    CHECK_STDERR_MENTIONS("--precision");

    /* --matmul bf16: the same run with the large products in bfloat16 trains
     * to nearly the same losses, not the same (or, on a CPU without
     * AVX512-BF16, is refused with the reason) */
    {
        const int bf16 = recur_set_matmul_precision(RECUR_PRECISION_BF16) == RECUR_OK;
        recur_set_matmul_precision(RECUR_PRECISION_F32);
        csv_row r32[8], r16[8];
        int n32 = 0, n16 = 0;
        for (int k = 0; k < 2; k++) {
            const char *dir = path_of(k ? "run_mm16" : "run_mm32");
            char metrics_path[600];
            snprintf(metrics_path, sizeof metrics_path, "%s/metrics.csv", dir);
            CHECK_EXIT(run(k ? "train_mm16" : "train_mm32", "train", "--data", text_path, "--out",
                           dir, "--hidden", "64", "--embed", "64", "--seq-len", "16", "--batch",
                           "64", "--steps", "4", "--log-every", "2", "--val-every", "0",
                           "--threads", "1", "--matmul", k ? "bf16" : "f32", NULL),
                       k && !bf16 ? 1 : 0);
            if (k && !bf16) {
                CHECK_STDERR_MENTIONS("--matmul bf16: ");
                printf("--matmul bf16: not on this machine\n");
                break;
            }
            if (k)
                CHECK_STDERR_MENTIONS("in bfloat16 (--matmul bf16)");
            *(k ? &n16 : &n32) = read_metrics(metrics_path, k ? r16 : r32, 8);
        }
        CHECK(n32 == 2 && (!bf16 || n16 == 2));
        for (int i = 0; bf16 && i < n32 && i < n16; i++)
            CHECK_MSG(r16[i].train_loss != r32[i].train_loss &&
                          fabs(r16[i].train_loss - r32[i].train_loss) < 0.01 * r32[i].train_loss,
                      "step %d: bf16 loss %.9g against f32 %.9g", 2 * (i + 1),
                      r16[i].train_loss, r32[i].train_loss);
    }

    /* eval: a character outside the vocabulary is named with its position */
    const char *odd_path = path_of("odd.txt");
    write_all(odd_path, "ROMEO:\nhello ~ world\n", 21);
    CHECK_EXIT(run("eval_odd", "eval", "--model", latest, "--data", odd_path, NULL), 1);
    CHECK_STDERR_MENTIONS("'~'");
    CHECK_STDERR_MENTIONS("character 13");

    /* sampling determinism */
    CHECK_EXIT(run("s1", "sample", "--model", latest, "--seed", "7", "--length", "200",
                   "--prime", "ROMEO:", NULL), 0);
    char *s1 = read_all(last_out);
    CHECK_EXIT(run("s2", "sample", "--model", latest, "--seed", "7", "--length", "200",
                   "--prime", "ROMEO:", NULL), 0);
    char *s2 = read_all(last_out);
    CHECK_EXIT(run("s3", "sample", "--model", latest, "--seed", "8", "--length", "200",
                   "--prime", "ROMEO:", NULL), 0);
    char *s3 = read_all(last_out);
    CHECK(s1 && s2 && s3);
    if (s1 && s2 && s3) {
        CHECK_MSG(strcmp(s1, s2) == 0, "same seed, different text");
        CHECK_MSG(strcmp(s1, s3) != 0, "different seeds, same text");
        CHECK_MSG(strlen(s1) == 206 && strncmp(s1, "ROMEO:", 6) == 0,
                  "sample of %zu bytes, expected the prime and 200 characters", strlen(s1));
    }
    free(s1), free(s2), free(s3);
    /* bf16 sampling is deterministic too */
    CHECK_EXIT(run("s16a", "sample", "--model", latest, "--seed", "7", "--length", "200",
                   "--precision", "bf16", NULL), 0);
    s1 = read_all(last_out);
    CHECK_EXIT(run("s16b", "sample", "--model", latest, "--seed", "7", "--length", "200",
                   "--precision", "bf16", NULL), 0);
    s2 = read_all(last_out);
    CHECK_MSG(s1 && s2 && strlen(s1) == 200 && strcmp(s1, s2) == 0,
              "bf16 samples with the same seed differ");
    free(s1), free(s2);
    CHECK_EXIT(run("s4", "sample", "--model", latest, "--seed", "7", "--length", "100",
                   "--top-k", "3", "--temperature", "0.7", NULL), 0);
    s1 = read_all(last_out);
    CHECK_MSG(s1 && strlen(s1) == 100, "top-k sample has %zu bytes", s1 ? strlen(s1) : 0);
    free(s1);
    CHECK_EXIT(run("s5", "sample", "--model", latest, "--prime", "\xce\xa9mega", NULL), 2);
    CHECK_STDERR_MENTIONS("U+03A9");
    free(text);
}

static int params_equal(recur_lm *a, recur_lm *b)
{
    return recur_lm_size(a) == recur_lm_size(b) &&
           memcmp(recur_lm_params(a), recur_lm_params(b), recur_lm_size(a) * sizeof(float)) == 0;
}

static void test_resume_exact(void)
{
    const char *a = path_of("resume_a"), *b = path_of("resume_b");
    const char *ma = path_of("resume_a/metrics.csv"), *mb = path_of("resume_b/metrics.csv");
    const char *la = path_of("resume_a/latest.safetensors");
    const char *lb = path_of("resume_b/latest.safetensors");
#define RESUME_FLAGS "--data", text_path, "--hidden", "24", "--layers", "2", "--embed", "8", \
                     "--seq-len", "20", "--batch", "6", "--dropout", "0.2", "--val-every", "10", \
                     "--log-every", "5", "--save-every", "7", "--threads", "1", "--schedule", \
                     "cosine", "--decay-steps", "40", "--warmup", "5"
    CHECK_EXIT(run("resume_a", "train", RESUME_FLAGS, "--out", a, "--steps", "40", NULL), 0);
    CHECK_EXIT(run("resume_b1", "train", RESUME_FLAGS, "--out", b, "--steps", "20", NULL), 0);
    /* a frozen option cannot change; a new run cannot reuse the folder */
    CHECK_EXIT(run("resume_frozen", "train", "--resume", "--out", b, "--hidden", "64", NULL), 2);
    CHECK_STDERR_MENTIONS("--hidden 64 differs");
    CHECK_EXIT(run("resume_exists", "train", RESUME_FLAGS, "--out", b, NULL), 1);
    CHECK_STDERR_MENTIONS("--resume");
    CHECK_EXIT(run("resume_b2", "train", "--resume", "--out", b, "--steps", "40", NULL), 0);
    CHECK_STDERR_MENTIONS("continuing at step 20");

    csv_row ra[32], rb[32];
    int na = read_metrics(ma, ra, 32), nb = read_metrics(mb, rb, 32);
    CHECK_MSG(na == 8 && nb == na, "metrics rows: %d uninterrupted, %d resumed", na, nb);
    for (int i = 0; i < na && i < nb; i++)
        CHECK_MSG(strcmp(ra[i].fields, rb[i].fields) == 0, "row %d differs:\n  %s\n  %s", i,
                  ra[i].fields, rb[i].fields);

    recur_lm *lma = NULL, *lmb = NULL;
    recur_vocab *va = NULL, *vb = NULL;
    recur_train_state *ta = NULL, *tb = NULL;
    CHECK_OK(load_ok(la, &lma, &va, &ta));
    CHECK_OK(load_ok(lb, &lmb, &vb, &tb));
    if (lma && lmb && ta && tb) {
        CHECK_MSG(params_equal(lma, lmb), "final weights differ");
        CHECK(ta->step == 40 && tb->step == 40);
        CHECK(ta->optim_step == tb->optim_step);
        CHECK(ta->optim_state_count == tb->optim_state_count &&
              memcmp(ta->optim_state, tb->optim_state,
                     ta->optim_state_count * sizeof(float)) == 0);
        size_t state = recur_lm_state_size(lma, ta->batch);
        CHECK(memcmp(ta->h, tb->h, state * sizeof(float)) == 0);
        CHECK(memcmp(ta->c, tb->c, state * sizeof(float)) == 0);
        CHECK(memcmp(&ta->rng, &tb->rng, sizeof ta->rng) == 0);
        CHECK(ta->position.epoch == tb->position.epoch &&
              ta->position.offset == tb->position.offset);
        CHECK(ta->best_val_loss == tb->best_val_loss && ta->best_step == tb->best_step);
        CHECK(ta->schedule.kind == RECUR_SCHEDULE_COSINE && ta->schedule.total_steps == 40);
        CHECK(recur_train_state_option(ta, "hidden") &&
              strcmp(recur_train_state_option(ta, "hidden"), "24") == 0);
    }
    recur_lm_free(lma), recur_lm_free(lmb);
    recur_vocab_free(va), recur_vocab_free(vb);
    recur_train_state_free(ta), recur_train_state_free(tb);
}

/* --ema: the saved model is the average of the iterates, the iterate travels
 * as optimizer.weights, validation sees the average, and --resume is exact. */
static void test_ema(void)
{
    const char *p39 = path_of("ema_p39/latest.safetensors");
    const char *p40 = path_of("resume_a/latest.safetensors"); /* 40 steps, no average */
    CHECK_EXIT(run("ema_p39", "train", RESUME_FLAGS, "--out", path_of("ema_p39"), "--steps",
                   "39", NULL), 0);
    CHECK_EXIT(run("ema_half", "train", RESUME_FLAGS, "--out", path_of("ema_half"), "--steps",
                   "40", "--ema", "0.5", "--ema-start", "39", NULL), 0);
    CHECK_EXIT(run("ema_bad", "train", RESUME_FLAGS, "--out", path_of("ema_bad"), "--ema", "1",
                   NULL), 2);
    CHECK_STDERR_MENTIONS("--ema");
    recur_lm *a = NULL, *b = NULL, *h = NULL;
    recur_vocab *va = NULL, *vb = NULL, *vh = NULL;
    recur_train_state *ta = NULL, *tb = NULL, *th = NULL;
    CHECK_OK(load_ok(p39, &a, &va, &ta));
    CHECK_OK(load_ok(p40, &b, &vb, &tb));
    CHECK_OK(load_ok(path_of("ema_half/latest.safetensors"), &h, &vh, &th));
    if (a && b && h && ta && tb && th) {
        const size_t n = recur_lm_size(h);
        CHECK(ta->weights_count == 0 && tb->weights_count == 0);
        CHECK_MSG(th->weights_count == n && th->weights &&
                  memcmp(th->weights, recur_lm_params(b), n * sizeof(float)) == 0,
                  "the iterate saved beside the average differs from an unaveraged run's");
        double worst = 0;
        const float *x = recur_lm_params(a), *y = recur_lm_params(b), *m = recur_lm_params(h);
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)m[i] - 0.5 * ((double)x[i] + (double)y[i]));
            worst = d > worst ? d : worst;
        }
        CHECK_MSG(worst < 1e-6, "average of steps 39 and 40 off by %g", worst);
        CHECK(!params_equal(h, b));
    }
    recur_lm_free(a), recur_lm_free(b), recur_lm_free(h);
    recur_vocab_free(va), recur_vocab_free(vb), recur_vocab_free(vh);
    recur_train_state_free(ta), recur_train_state_free(tb), recur_train_state_free(th);

    /* interrupted at 20 (the average started at 12, saved at 14) and resumed */
    const char *c = path_of("ema_c"), *d = path_of("ema_d");
    CHECK_EXIT(run("ema_c", "train", RESUME_FLAGS, "--out", c, "--steps", "40", "--ema", "0.9",
                   "--ema-start", "12", NULL), 0);
    CHECK_EXIT(run("ema_d1", "train", RESUME_FLAGS, "--out", d, "--steps", "20", "--ema", "0.9",
                   "--ema-start", "12", NULL), 0);
    CHECK_EXIT(run("ema_d2", "train", "--resume", "--out", d, "--steps", "40", NULL), 0);
    csv_row rc[32], rd[32], ra[32];
    int nc = read_metrics(path_of("ema_c/metrics.csv"), rc, 32);
    int nd = read_metrics(path_of("ema_d/metrics.csv"), rd, 32);
    int na = read_metrics(path_of("resume_a/metrics.csv"), ra, 32);
    CHECK_MSG(nc == 8 && nd == nc && na == nc, "metrics rows: %d, %d resumed, %d unaveraged",
              nc, nd, na);
    for (int i = 0; i < nc && i < nd; i++)
        CHECK_MSG(strcmp(rc[i].fields, rd[i].fields) == 0, "row %d differs:\n  %s\n  %s", i,
                  rc[i].fields, rd[i].fields);
    /* rows 0-2 (steps 5-15; validation at 10) match the unaveraged run; the
     * validation at step 20 sees the average */
    for (int i = 0; i < 3 && i < na && i < nc; i++)
        CHECK_MSG(strcmp(rc[i].fields, ra[i].fields) == 0, "row %d differs before the average",
                  i);
    if (nc > 3 && na > 3)
        CHECK_MSG(strcmp(rc[3].fields, ra[3].fields) != 0, "validation ignores the average");
    recur_lm *lc = NULL, *ld = NULL;
    recur_vocab *vc = NULL, *vd = NULL;
    recur_train_state *tc = NULL, *td = NULL;
    CHECK_OK(load_ok(path_of("ema_c/latest.safetensors"), &lc, &vc, &tc));
    CHECK_OK(load_ok(path_of("ema_d/latest.safetensors"), &ld, &vd, &td));
    if (lc && ld && tc && td) {
        CHECK_MSG(params_equal(lc, ld), "averaged weights differ after --resume");
        CHECK(tc->weights_count == recur_lm_size(lc) && td->weights_count == tc->weights_count &&
              memcmp(tc->weights, td->weights, tc->weights_count * sizeof(float)) == 0);
    }
    recur_lm_free(lc), recur_lm_free(ld);
    recur_vocab_free(vc), recur_vocab_free(vd);
    recur_train_state_free(tc), recur_train_state_free(td);
}

static void test_nan(void)
{
    const char *out = path_of("nan_stop"), *latest = path_of("nan_stop/latest.safetensors");
    CHECK_EXIT(run("nan_stop", "train", TINY, "--out", out, "--steps", "40", "--save-every",
                   "10", "--inject-nan", "15", NULL), 1);
    CHECK_STDERR_MENTIONS("not finite");
    CHECK_STDERR_MENTIONS("step 15");
    CHECK_STDERR_MENTIONS("is intact");
    recur_lm *lm = NULL;
    recur_vocab *vocab = NULL;
    recur_train_state *ts = NULL;
    CHECK_OK(load_ok(latest, &lm, &vocab, &ts));
    CHECK(ts && ts->step == 10);
    recur_lm_free(lm), recur_vocab_free(vocab), recur_train_state_free(ts);
    CHECK_EXIT(run("nan_eval", "eval", "--model", latest, "--data", text_path, NULL), 0);

    out = path_of("nan_skip");
    latest = path_of("nan_skip/latest.safetensors");
    CHECK_EXIT(run("nan_skip", "train", TINY, "--out", out, "--steps", "30", "--inject-nan",
                   "15", "--on-nan", "skip", NULL), 0);
    CHECK_STDERR_MENTIONS("update skipped");
    lm = NULL, vocab = NULL, ts = NULL;
    CHECK_OK(load_ok(latest, &lm, &vocab, &ts));
    CHECK(ts && ts->step == 30 && ts->optim_step == 29);
    recur_lm_free(lm), recur_vocab_free(vocab), recur_train_state_free(ts);
}

/* Writes a checkpoint of `lm` with one thing changed, for the validation
 * tests of the loader. */
typedef enum { DROP_TENSOR, BAD_SHAPE, BAD_JSON, UNKNOWN_CELL, VOCAB_MISMATCH, NO_META,
               EXTRA_TENSOR, NEWER_FORMAT } breakage;

static void write_broken(const char *path, recur_lm *lm, const recur_vocab *vocab, breakage how)
{
    recur_st_writer *w = NULL;
    recur_st_writer_create(&w);
    const float *p = recur_lm_params(lm);
    for (int i = 0; i < recur_lm_tensor_count(lm); i++) {
        const recur_param_view *v = recur_lm_tensor_at(lm, i);
        if (how == DROP_TENSOR && strcmp(v->name, "rnn.bias_hh_l0") == 0)
            continue;
        int64_t shape[2] = {v->shape[0], v->shape[1]};
        if (how == BAD_SHAPE && strcmp(v->name, "head.weight") == 0) {
            shape[0] = v->shape[1];
            shape[1] = v->shape[0];
        }
        recur_st_writer_add(w, v->name, RECUR_DTYPE_F32, v->ndim, shape, p + v->offset);
    }
    if (how == EXTRA_TENSOR)
        recur_st_writer_add(w, "rnn.weight_hr_l0", RECUR_DTYPE_F32, 1, (int64_t[]){1}, p);
    char *vocab_json = NULL;
    recur_vocab_to_json(vocab, &vocab_json);
    const recur_lm_config *c = recur_lm_get_config(lm);
    char meta[16384];
    int V = c->vocab_size;
    const char *vj = vocab_json;
    char shorter[8192];
    if (how == VOCAB_MISMATCH) { /* drop the last entry of the vocabulary */
        snprintf(shorter, sizeof shorter, "%s", vocab_json);
        char *last = strrchr(shorter, ',');
        if (last)
            strcpy(last, "]");
        vj = shorter;
        V = V - 1;
    }
    snprintf(meta, sizeof meta,
             "{\"format\": %d, \"cell\": \"%s\", \"vocab_size\": %d, \"embedding_size\": %d, "
             "\"hidden_size\": %d, \"num_layers\": %d, \"bidirectional\": false, \"dropout\": 0, "
             "\"vocab_kind\": \"char\", \"vocab\": %s}%s",
             how == NEWER_FORMAT ? 99 : 1, how == UNKNOWN_CELL ? "mamba" : recur_cell_name(c->cell),
             V, c->embedding_size, c->hidden_size, c->num_layers, vj,
             how == BAD_JSON ? "}" : "");
    if (how != NO_META)
        recur_st_writer_metadata(w, "recur", meta);
    CHECK_OK(recur_st_writer_save(w, path));
    recur_st_writer_free(w);
    recur_free(vocab_json);
}

static void test_corrupt(void)
{
    const char *out = path_of("corrupt"), *latest = path_of("corrupt/latest.safetensors");
    CHECK_EXIT(run("corrupt_train", "train", TINY, "--out", out, "--steps", "5", NULL), 0);
    size_t len = 0;
    char *image = read_file(latest, &len);
    CHECK(image && len > 1000);
    if (!image)
        return;
    const char *bad = path_of("bad.safetensors");

    /* damaged files: every command fails cleanly with exit 1 */
    struct {
        const char *what, *needle;
        size_t keep;
        long flip; /* byte to garble, -1: none */
    } cases[] = {
        {"truncated to half", "truncated", len / 2, -1},
        {"truncated to 4 bytes", "truncated", 4, -1},
        {"truncated by 1 byte", "truncated", len - 1, -1},
        {"empty", "truncated", 0, -1},
        {"garbled header", "JSON", len, 20},
        {"garbled length", "header", len, 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *copy = malloc(len);
        memcpy(copy, image, len);
        if (cases[i].flip >= 0)
            copy[cases[i].flip] = (char)0xff;
        write_all(bad, copy, cases[i].keep);
        free(copy);
        CHECK_EXIT(run("corrupt_eval", "eval", "--model", bad, "--data", text_path, NULL), 1);
        CHECK_MSG(contains(last_err, "error") && contains(last_err, cases[i].needle),
                  "%s: stderr %s lacks \"%s\"", cases[i].what, last_err, cases[i].needle);
        CHECK_EXIT(run("corrupt_sample", "sample", "--model", bad, "--seed", "1", NULL), 1);
    }
    /* random bytes and a missing file */
    {
        char noise[4096];
        uint64_t x = 12345;
        for (size_t i = 0; i < sizeof noise; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            noise[i] = (char)(x >> 56);
        }
        write_all(bad, noise, sizeof noise);
        CHECK_EXIT(run("corrupt_noise", "eval", "--model", bad, "--data", text_path, NULL), 1);
        CHECK_EXIT(run("missing", "eval", "--model", "/nonexistent/x.safetensors", "--data",
                       text_path, NULL), 1);
        CHECK_STDERR_MENTIONS("/nonexistent/x.safetensors");
    }
    free(image);
    image = NULL;

    /* inconsistent checkpoints: the loader names the problem */
    recur_lm *lm = NULL, *lm2 = NULL;
    recur_vocab *vocab = NULL, *vocab2 = NULL;
    CHECK_OK(load_ok(latest, &lm, &vocab, NULL));
    if (!lm)
        return;
    struct {
        breakage how;
        int status;
        const char *needle;
    } broken[] = {
        {DROP_TENSOR, RECUR_E_FORMAT, "missing tensor 'rnn.bias_hh_l0'"},
        {BAD_SHAPE, RECUR_E_FORMAT, "tensor 'head.weight' has shape"},
        {BAD_JSON, RECUR_E_FORMAT, "not valid JSON"},
        {UNKNOWN_CELL, RECUR_E_FORMAT, "unknown cell \"mamba\""},
        {VOCAB_MISMATCH, RECUR_E_FORMAT, "embedding.weight has"},
        {NO_META, RECUR_E_FORMAT, "no \"recur\" entry"},
        {EXTRA_TENSOR, RECUR_E_FORMAT, "unexpected tensor 'rnn.weight_hr_l0'"},
        {NEWER_FORMAT, RECUR_E_UNSUPPORTED, "newer"},
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        write_broken(bad, lm, vocab, broken[i].how);
        CHECK_STATUS(recur_checkpoint_load(bad, &lm2, &vocab2, NULL), broken[i].status);
        CHECK_ERROR_MENTIONS(broken[i].needle);
        CHECK_ERROR_MENTIONS(bad);
        CHECK(lm2 == NULL && vocab2 == NULL);
        CHECK_EXIT(run("broken_eval", "eval", "--model", bad, "--data", text_path, NULL), 1);
    }

    /* garbled weights: a NaN bit pattern in head.bias, the last tensor of a
     * model-only file */
    CHECK_OK(recur_checkpoint_save(bad, lm, vocab, NULL));
    image = read_file(bad, &len);
    if (image && len > 4) {
        memset(image + len - 4, 0xff, 4);
        write_all(bad, image, len);
        CHECK_EXIT(run("corrupt_nan", "eval", "--model", bad, "--data", text_path, NULL), 1);
        CHECK_STDERR_MENTIONS("'head.bias' holds NaN");
    }
    free(image);

    /* a model-only checkpoint (as PyTorch writes) evaluates and samples, but
     * cannot be resumed */
    const char *model_only_dir = path_of("model_only");
    const char *model_only = path_of("model_only/latest.safetensors");
    mkdir(model_only_dir, 0777);
    CHECK_OK(recur_checkpoint_save(model_only, lm, vocab, NULL));
    recur_train_state *ts = (recur_train_state *)1;
    CHECK_OK(recur_checkpoint_load(model_only, &lm2, &vocab2, &ts));
    CHECK(ts == NULL && lm2 && params_equal(lm, lm2));
    recur_lm_free(lm2), recur_vocab_free(vocab2);
    CHECK_EXIT(run("model_only_eval", "eval", "--model", model_only, "--data", text_path, NULL),
               0);
    CHECK_EXIT(run("model_only_sample", "sample", "--model", model_only, "--seed", "2",
                   "--length", "20", NULL), 0);
    CHECK_EXIT(run("model_only_resume", "train", "--resume", "--out", model_only_dir, NULL), 1);
    CHECK_STDERR_MENTIONS("no training state");
    recur_lm_free(lm), recur_vocab_free(vocab);
}

static void test_kill_during_saves(void)
{
    const char *out = path_of("kill"), *latest = path_of("kill/latest.safetensors");
    const char *first[] = {"train", TINY, "--out", out, "--steps", "1000000", "--save-every", "1",
                           "--val-every", "0", "--log-every", "1000", NULL};
    const char *again[] = {"train", "--resume", "--out", out, "--threads", "1", NULL};
    srand((unsigned)time(NULL));
    int64_t last_step = -1;
    for (int round = 0; round < 6; round++) {
        pid_t pid = spawn_recur("kill_train", round == 0 ? first : again);
        CHECK(pid > 0);
        if (round == 0)
            CHECK_MSG(wait_for_file(latest, 20), "no checkpoint appeared");
        sleep_s(0.03 + 1e-6 * (rand() % 300000));
        kill(pid, SIGKILL);
        int status = wait_exit(pid);
        CHECK_MSG(status == 128 + SIGKILL, "round %d: training ended with %d before the kill",
                  round, status);
        recur_lm *lm = NULL;
        recur_vocab *vocab = NULL;
        recur_train_state *ts = NULL;
        CHECK_OK(load_ok(latest, &lm, &vocab, &ts));
        CHECK(ts != NULL);
        if (ts) {
            CHECK_MSG(ts->step >= last_step, "round %d: step went back from %lld to %lld", round,
                      (long long)last_step, (long long)ts->step);
            last_step = ts->step;
        }
        recur_lm_free(lm), recur_vocab_free(vocab), recur_train_state_free(ts);
        CHECK_EXIT(run("kill_eval", "eval", "--model", latest, "--data", text_path, NULL), 0);
    }
    CHECK_MSG(last_step > 1, "training made no progress between kills (step %lld)",
              (long long)last_step);
}

static void test_sigint(void)
{
    const char *out = path_of("sigint"), *latest = path_of("sigint/latest.safetensors");
    const char *args[] = {"train", TINY, "--out", out, "--steps", "1000000", "--save-every", "20",
                          "--val-every", "0", NULL};
    pid_t pid = spawn_recur("sigint_train", args);
    CHECK_MSG(wait_for_file(latest, 20), "no checkpoint appeared");
    kill(pid, SIGINT);
    CHECK_EXIT(wait_exit(pid), 0);
    CHECK_STDERR_MENTIONS("interrupted at step");
    CHECK_STDERR_MENTIONS("--resume");
    recur_lm *lm = NULL;
    recur_vocab *vocab = NULL;
    recur_train_state *ts = NULL;
    CHECK_OK(load_ok(latest, &lm, &vocab, &ts));
    CHECK(ts && ts->step >= 20);
    recur_lm_free(lm), recur_vocab_free(vocab), recur_train_state_free(ts);
}

static void test_byte_level(void)
{
    const char *out = path_of("bytes"), *latest = path_of("bytes/latest.safetensors");
    CHECK_EXIT(run("bytes_train", "train", TINY, "--out", out, "--byte-level", "--cell",
                   "rnn_tanh", "--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.05",
                   "--steps", "10", NULL), 0);
    CHECK_EXIT(run("bytes_sample", "sample", "--model", latest, "--seed", "3", "--length", "30",
                   NULL), 0);
    size_t len = 0;
    free(read_file(last_out, &len));
    CHECK(len == 30);
    recur_lm *lm = NULL;
    recur_vocab *vocab = NULL;
    recur_train_state *ts = NULL;
    CHECK_OK(load_ok(latest, &lm, &vocab, &ts));
    CHECK(vocab && recur_vocab_get_kind(vocab) == RECUR_VOCAB_BYTES && recur_vocab_size(vocab) == 256);
    CHECK(ts && ts->optim.kind == RECUR_OPTIM_SGD && ts->optim_state_count == recur_lm_size(lm));
    recur_lm_free(lm), recur_vocab_free(vocab), recur_train_state_free(ts);
}

static double eval_loss(const char *name, const char *models, const char *data,
                        const char *precision)
{
    double loss = NAN;
    CHECK_EXIT(run(name, "eval", "--model", models, "--data", data, "--json", "--precision",
                   precision, NULL), 0);
    char *json = read_all(last_out);
    CHECK_MSG(json && sscanf(json, "{\"loss\": %lf", &loss) == 1, "%s: eval printed \"%s\"",
              name, json ? json : "");
    free(json);
    return loss;
}

/* --model A,B: the ensemble's loss is that of the averaged distributions, so
 * no worse than the members' mean (Jensen) nor than either member's + ln 2;
 * a model mixed with itself is that model; sampling from an ensemble is
 * deterministic; members over different vocabularies are refused. Uses the
 * checkpoints of test_train_eval_sample and test_byte_level. */
static void test_ensemble(void)
{
    char a[600], b[600], val[600], ab[1201], aa[1201];
    snprintf(a, sizeof a, "%s", path_of("run_main/latest.safetensors")); /* lstm 64 */
    snprintf(b, sizeof b, "%s", path_of("run_b1/latest.safetensors"));   /* gru 2 x 32 */
    snprintf(val, sizeof val, "%s", path_of("val.txt"));
    snprintf(ab, sizeof ab, "%s,%s", a, b);
    snprintf(aa, sizeof aa, "%s,%s", a, a);
    const double la = eval_loss("ens_a", a, val, "f32"), lb = eval_loss("ens_b", b, val, "f32");
    const double lab = eval_loss("ens_ab", ab, val, "f32");
    CHECK_MSG(lab < (la + lb) / 2 && lab <= fmin(la, lb) + log(2.0),
              "ensemble loss %.6f against members %.6f and %.6f", lab, la, lb);
    CHECK_NEAR(eval_loss("ens_aa", aa, val, "f32"), la, 1e-6);
    /* token by token (the sampler's path) the ensemble scores the same */
    const double lab16 = eval_loss("ens_ab16", ab, val, "bf16");
    CHECK_MSG(lab16 != lab && fabs(lab16 - lab) < 0.01 * lab, "bf16 ensemble %.9g against %.9g",
              lab16, lab);

    /* the same text twice from one seed (the prime and 150 characters); a model
     * mixed with itself draws what it draws alone */
    const char *const models[4] = {ab, ab, aa, a};
    char *texts[4];
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "ens_s%d", i);
        CHECK_EXIT(run(name, "sample", "--model", models[i], "--seed", "5", "--length", "150",
                       "--prime", "ROMEO:", NULL), 0);
        texts[i] = read_all(last_out);
    }
    CHECK_MSG(texts[0] && texts[1] && strlen(texts[0]) == 156 && !strcmp(texts[0], texts[1]),
              "ensemble samples with the same seed differ, or have the wrong length");
    CHECK_MSG(texts[2] && texts[3] && !strcmp(texts[2], texts[3]),
              "a model mixed with itself samples other text");
    for (int i = 0; i < 4; i++)
        free(texts[i]);

    char mixed[1201], hole[601], missing[1201];
    snprintf(mixed, sizeof mixed, "%s,%s", a, path_of("bytes/latest.safetensors"));
    CHECK_EXIT(run("ens_vocab", "eval", "--model", mixed, "--data", val, NULL), 1);
    CHECK_STDERR_MENTIONS("vocabulary (256 tokens) differs");
    CHECK_EXIT(run("ens_vocab_s", "sample", "--model", mixed, NULL), 1);
    CHECK_STDERR_MENTIONS("differs");
    snprintf(hole, sizeof hole, "%s,", a);
    CHECK_EXIT(run("ens_hole", "eval", "--model", hole, "--data", val, NULL), 2);
    CHECK_STDERR_MENTIONS("empty path");
    snprintf(missing, sizeof missing, "%s,%s", a, path_of("nothing.safetensors"));
    CHECK_EXIT(run("ens_missing", "sample", "--model", missing, NULL), 1);
    CHECK_STDERR_MENTIONS("nothing.safetensors");
}

int main(int argc, char **argv)
{
    if (cli_begin(argc, argv, "test_cli"))
        return 1;
    /* the first 30,000 characters of tiny Shakespeare */
    size_t len = 0;
    char *corpus = read_file(RECUR_SOURCE_DIR "/data/tinyshakespeare.txt", &len);
    if (!corpus || len < 30000) {
        fprintf(stderr, "test_cli: cannot read data/tinyshakespeare.txt\n");
        return 1;
    }
    snprintf(text_path, sizeof text_path, "%s", path_of("text.txt"));
    write_all(text_path, corpus, 30000);
    free(corpus);

    test_help_and_version();
    test_bad_flags();
    test_train_eval_sample();
    test_resume_exact();
    test_ema();
    test_nan();
    test_corrupt();
    test_kill_during_saves();
    test_sigint();
    test_byte_level();
    test_ensemble();

    cli_end("test_cli");
    CHECK_DONE();
}
