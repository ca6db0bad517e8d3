/* test_mpi_cli.c - data-parallel training of the `recur` tool over MPI,
 * end to end (docs/mpi.md). Arguments: the recur binary and mpiexec (Open
 * MPI's; tests/tests.cmake passes both in builds with RECUR_MPI=ON). On a
 * 30 KB slice of tiny Shakespeare with tiny models, in a fresh temporary
 * folder:
 *   - parity: `mpirun -np 2 recur train --batch 4` gives the losses,
 *     validation losses, weights, optimizer moments and carried state of
 *     `recur train --batch 8` (within float rounding);
 *   - the other training commands shard their batches the same way:
 *     `mpirun -np 2 recur classify|speech|translate|forecast train --batch
 *     B` gives the training and validation losses of one process with
 *     --batch 2B, on small synthetic data (classify: the last batch of an
 *     epoch leaves rank 1 nothing; speech, with --augment: rank 1 gets a
 *     short share; translate and forecast: shares weighed by their target
 *     tokens or values); a classify run with dropout (the ranks' dropout
 *     streams stay in step) and a forecast run (the ranks' carried states)
 *     resume under MPI bit for bit;
 *   - resume: 2 ranks for 4 steps + --resume to 8 == 2 ranks for 8 steps,
 *     bit for bit; resuming with another number of processes is refused;
 *   - agreement: --time, a NaN stop (exit 1, no abort) and a NaN skip end
 *     or continue every rank together;
 *   - faults: SIGKILL of rank 1 ends the job (mpirun names the rank), a
 *     stopped rank (a hung process or an unreachable host) ends it after
 *     --mpi-timeout with recur's message; either way latest.safetensors
 *     loads and the run resumes;
 * Without mpiexec (a build without MPI) it checks only that such a binary
 * refuses to run under mpirun. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "recur.h"

#include "cli_harness.h"

static const char *mpiexec;
static char text_path[600];
static char tag_env[64]; /* RECUR_MPI_TEST=<our pid>: marks the ranks we start */

/* ---- helpers -------------------------------------------------------------- */

/* Starts `recur args` (ranks = 0) or `mpiexec -np ranks recur args` as
 * spawn_cmd does, with our tag and `env` (NULL: none) added to the
 * environment. */
static pid_t spawn_np(const char *tag, int ranks, const char *env, const char *const *args)
{
    const char *argv[CLI_MAX_ARGS];
    int n = 0;
    char np[16];
    snprintf(np, sizeof np, "%d", ranks);
    if (ranks > 0) {
        argv[n++] = mpiexec;
        argv[n++] = "-np";
        argv[n++] = np;
        argv[n++] = "--allow-run-as-root";
        argv[n++] = "--oversubscribe";
    }
    argv[n++] = recur_bin;
    for (int i = 0; args[i] && n < CLI_MAX_ARGS - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    const char *const added[] = {tag_env, env, NULL};
    return spawn_cmd(tag, argv, added);
}

/* The pid of rank `rank` of a job we started (-1 when none): a process
 * whose environment holds our tag and OMPI_COMM_WORLD_RANK=rank. */
static pid_t find_rank(int rank)
{
    char want[64];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    DIR *proc = opendir("/proc");
    pid_t found = -1;
    struct dirent *entry;
    while (proc && found < 0 && (entry = readdir(proc))) {
        char *end;
        long pid = strtol(entry->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/environ", pid);
        size_t len = 0;
        char *env = read_file(path, &len);
        int tagged = 0, ranked = 0;
        for (size_t i = 0; env && i < len; i += strlen(env + i) + 1) {
            tagged |= strcmp(env + i, tag_env) == 0;
            ranked |= strcmp(env + i, want) == 0;
        }
        free(env);
        if (tagged && ranked)
            found = (pid_t)pid;
    }
    if (proc)
        closedir(proc);
    return found;
}

/* Kills what is left of our ranks (SIGKILL, by pid). */
static void kill_ranks(void)
{
    for (int tries = 0; tries < 50; tries++) {
        pid_t a = find_rank(0), b = find_rank(1);
        if (a < 0 && b < 0)
            return;
        if (tries >= 20) {
            if (a > 0)
                kill(a, SIGKILL);
            if (b > 0)
                kill(b, SIGKILL);
        }
        sleep_s(0.1);
    }
}

/* Exit status (128 + signal when killed), or -2 after `limit` seconds (then
 * the job is killed); then kills what is left of our ranks. */
static int wait_job(pid_t pid, double limit)
{
    const int status = wait_exit_within(pid, limit);
    if (status != -1)
        kill_ranks();
    return status;
}

static int run_np(const char *tag, int ranks, const char *const *args)
{
    return wait_job(spawn_np(tag, ranks, NULL, args), 120);
}

/* The train_loss and val_loss columns of metrics.csv, by row. */
static int read_losses(const char *name, long *steps, double *train, double *val, int max)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s/metrics.csv", dir, name);
    char *text = read_all(path), *cursor = text, *cols[4];
    if (!text)
        return -1;
    int n = 0;
    for (int k; n < max && (k = next_csv_row(&cursor, cols, 4)) >= 0;) {
        if (k != 4)
            continue;
        steps[n] = strtol(cols[0], NULL, 10);
        train[n] = cols[2][0] ? strtod(cols[2], NULL) : NAN;
        val[n] = cols[3][0] ? strtod(cols[3], NULL) : NAN;
        n++;
    }
    free(text);
    return n;
}

typedef struct loaded {
    recur_lm *lm;
    recur_vocab *vocab;
    recur_train_state *ts;
} loaded;

static int load(const char *name, loaded *out)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s/latest.safetensors", dir, name);
    memset(out, 0, sizeof *out);
    int status = recur_checkpoint_load(path, &out->lm, &out->vocab, &out->ts);
    CHECK_MSG(status == RECUR_OK && out->ts, "%s: %s", path, recur_last_error());
    return status == RECUR_OK && out->ts ? 0 : -1;
}

static void unload(loaded *l)
{
    recur_lm_free(l->lm);
    recur_vocab_free(l->vocab);
    recur_train_state_free(l->ts);
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst))
            worst = d;
    }
    return worst;
}

/* Common flags of a tiny run. */
#define TINY "train", "--data", text_path, "--hidden", "24", "--layers", "2", "--embed", "12", \
             "--seq-len", "20", "--threads", "1", "--log-every", "1"

/* ---- the tests ------------------------------------------------------------ */

/* 2 ranks with batch 4 == 1 process with batch 8. `wd`: the
 * --weight-dropout of both; x1..x4: options of the MPI run alone (NULL ends
 * them). */
static void test_parity(const char *single_tag, const char *tag, const char *wd, const char *x1,
                        const char *x2, const char *x3, const char *x4)
{
    const char *single = path_of(single_tag), *ranks2 = path_of(tag);
    if (access(single, F_OK) != 0)
        CHECK_EXIT(run_np(single_tag, 0, ARGS(TINY, "--batch", "8", "--steps", "6",
                                              "--val-every", "3", "--weight-dropout", wd,
                                              "--out", single)), 0);
    CHECK_EXIT(run_np(tag, 2, ARGS(TINY, "--batch", "4", "--steps", "6", "--val-every", "3",
                                   "--weight-dropout", wd, "--out", ranks2, x1, x2, x3, x4)),
               0);
    CHECK_STDERR_MENTIONS("batch 4 on each of 2 ranks");
    CHECK_STDERR_MENTIONS("ms communication (rank 0)");

    long steps_a[16], steps_b[16];
    double train_a[16], train_b[16], val_a[16], val_b[16];
    int rows_a = read_losses(single_tag, steps_a, train_a, val_a, 16);
    int rows_b = read_losses(tag, steps_b, train_b, val_b, 16);
    CHECK(rows_a == 6 && rows_b == 6);
    for (int i = 0; i < rows_a && i < rows_b; i++) {
        CHECK(steps_a[i] == steps_b[i]);
        CHECK_NEAR(train_a[i], train_b[i], 2e-6);
        CHECK(isnan(val_a[i]) == isnan(val_b[i]));
        if (!isnan(val_a[i]))
            CHECK_NEAR(val_a[i], val_b[i], 2e-6);
    }
    CHECK(rows_a > 3 && train_a[rows_a - 1] < train_a[0]); /* it learns */

    loaded a, b;
    if (load(single_tag, &a) || load(tag, &b))
        return;
    const size_t n = recur_lm_size(a.lm);
    CHECK(n == recur_lm_size(b.lm));
    CHECK(a.ts->step == 6 && b.ts->step == 6);
    CHECK(a.ts->batch == 8 && b.ts->batch == 8);
    CHECK(a.ts->position.offset == b.ts->position.offset);
    /* the weights move by ~lr = 2e-3 per step; another summation order
     * changes them by ~4e-7. Adam's step barely depends on the gradient's
     * scale: the moments catch a sum that was not divided by the ranks. */
    CHECK_NEAR(max_diff(recur_lm_params(a.lm), recur_lm_params(b.lm), n), 0, 1e-5);
    CHECK(a.ts->optim_state_count == b.ts->optim_state_count);
    if (a.ts->optim_state_count == b.ts->optim_state_count) {
        /* exp_avg (gradient scale) then exp_avg_sq (its square) */
        CHECK_NEAR(max_diff(a.ts->optim_state, b.ts->optim_state, n), 0, 1e-7);
        CHECK_NEAR(max_diff(a.ts->optim_state + n, b.ts->optim_state + n,
                            a.ts->optim_state_count - n), 0, 1e-9);
    }
    const size_t state = recur_lm_state_size(a.lm, 8);
    CHECK_NEAR(max_diff(a.ts->h, b.ts->h, state), 0, 1e-6);
    CHECK_NEAR(max_diff(a.ts->c, b.ts->c, state), 0, 1e-6);
    unload(&a);
    unload(&b);
}

/* The train_loss and val_loss rows of run a (one process, --batch 2B) and
 * run b (2 ranks, --batch B): `rows` rows with the same steps, losses
 * within `rel` relative, validation at the same steps and at the end. */
static void check_same_losses(const char *a, const char *b, int rows, double rel)
{
    long steps_a[64], steps_b[64];
    double train_a[64], train_b[64], val_a[64], val_b[64];
    const int rows_a = read_losses(a, steps_a, train_a, val_a, 64);
    const int rows_b = read_losses(b, steps_b, train_b, val_b, 64);
    CHECK_MSG(rows_a == rows && rows_b == rows, "%s: %d metrics rows, %s: %d, expected %d", a,
              rows_a, b, rows_b, rows);
    int validated = 0;
    for (int i = 0; i < rows_a && i < rows_b; i++) {
        CHECK_MSG(steps_a[i] == steps_b[i], "%s row %d: step %ld vs %ld", b, i, steps_a[i],
                  steps_b[i]);
        CHECK_NEAR(train_b[i], train_a[i], rel * fabs(train_a[i]));
        CHECK_MSG(isnan(val_a[i]) == isnan(val_b[i]), "%s row %d: val_loss %g vs %g", b, i,
                  val_a[i], val_b[i]);
        if (!isnan(val_a[i]) && !isnan(val_b[i])) {
            CHECK_NEAR(val_b[i], val_a[i], rel * fabs(val_a[i]));
            validated++;
        }
    }
    CHECK_MSG(validated >= 2 && rows_a > 0 && !isnan(val_a[rows_a - 1]), "%s: %d validations, "
              "none at the end", a, validated);
}

/* The train_loss rows of run a and of run b (the same run, resumed in the
 * middle): `rows` rows, equal bit for bit. */
static void check_resumed_losses(const char *a, const char *b, int rows)
{
    long steps_a[64], steps_b[64];
    double train_a[64], train_b[64], val_a[64], val_b[64];
    const int rows_a = read_losses(a, steps_a, train_a, val_a, 64);
    const int rows_b = read_losses(b, steps_b, train_b, val_b, 64);
    CHECK_MSG(rows_a == rows && rows_b == rows, "%s: %d metrics rows, %s: %d, expected %d", a,
              rows_a, b, rows_b, rows);
    for (int i = 0; i < rows_a && i < rows_b; i++)
        CHECK_MSG(steps_a[i] == steps_b[i] && train_a[i] == train_b[i], "%s row %d: step %ld "
                  "loss %.9g, resumed: step %ld loss %.9g", b, i, steps_a[i], train_a[i],
                  steps_b[i], train_b[i]);
}

/* n labelled sentences (tab-separated label and text): fillers around one
 * word that carries the label. */
static void write_sentiment(const char *path, int n)
{
    static const char *const words[2][5] = {{"bad", "awful", "poor", "dull", "boring"},
                                            {"good", "great", "fine", "lovely", "superb"}};
    static const char *const filler[] = {"the", "film", "was", "plot", "a", "and", "acting",
                                         "very"};
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f, "label\ttext\n");
    recur_rng rng;
    recur_rng_seed(&rng, 11);
    for (int i = 0; i < n; i++) {
        const int label = i % 2, len = 3 + (int)recur_rng_below(&rng, 8);
        const int at = (int)recur_rng_below(&rng, (uint64_t)len);
        fprintf(f, "%d\t", label);
        for (int t = 0; t < len; t++)
            fprintf(f, "%s%s", t ? " " : "",
                    t == at ? words[label][recur_rng_below(&rng, 5)]
                            : filler[recur_rng_below(&rng, 8)]);
        fputc('\n', f);
    }
    fclose(f);
}

/* n sentence pairs (de, en) of a toy language: word for word, with a final
 * " ." on the target side. */
static void write_pairs(const char *path, int n)
{
    static const char *const de[] = {"ich", "du", "sehe", "habe", "den", "einen", "hund", "baum"};
    static const char *const en[] = {"i", "you", "see", "have", "the", "a", "dog", "tree"};
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f, "de\ten\n");
    recur_rng rng;
    recur_rng_seed(&rng, 5);
    for (int i = 0; i < n; i++) {
        const int len = 2 + (int)recur_rng_below(&rng, 5);
        int w[8];
        for (int k = 0; k < len; k++)
            w[k] = (int)recur_rng_below(&rng, 8);
        for (int k = 0; k < len; k++)
            fprintf(f, "%s%s", k ? " " : "", de[w[k]]);
        fputc('\t', f);
        for (int k = 0; k < len; k++)
            fprintf(f, "%s%s", k ? " " : "", en[w[k]]);
        fprintf(f, " .\n");
    }
    fclose(f);
}

/* A monthly series: trend, yearly season, noise. */
static void write_series(const char *path, int n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    recur_rng rng;
    recur_rng_seed(&rng, 3);
    fprintf(f, "month,sales\n");
    for (int t = 0; t < n; t++)
        fprintf(f, "%04d-%02d-01,%.3f\n", 2000 + t / 12, t % 12 + 1,
                100 + 0.4 * t + 12 * sin(2 * 3.14159265358979 * t / 12.0) +
                    1.5 * recur_rng_normal(&rng));
    fclose(f);
}

/* Each training command's share of the batch: 2 ranks x batch B == 1
 * process x batch 2B. */
static void test_parity_commands(void)
{
    char sentences[600], pairs[600], series[600];
    snprintf(sentences, sizeof sentences, "%s", path_of("sentences.tsv"));
    snprintf(pairs, sizeof pairs, "%s", path_of("pairs.tsv"));
    snprintf(series, sizeof series, "%s", path_of("series.csv"));
    write_sentiment(sentences, 40);
    write_pairs(pairs, 80);
    write_series(series, 240);

    /* classify: 36 training sequences (4 held out) in global batches of 8:
     * 5 steps an epoch, the last of 4 sequences, all rank 0's */
#define CLS "classify", "train", "--data", sentences, "--hidden", "12", "--embed", "8", \
            "--dropout", "0", "--embed-dropout", "0", "--lr", "0.01", "--steps", "10",  \
            "--val-every", "5", "--threads", "1", "--log-every", "1"
    CHECK_EXIT(run_np("cls1", 0, ARGS(CLS, "--batch", "8", "--out", path_of("cls1"))), 0);
    CHECK_EXIT(run_np("cls2", 2, ARGS(CLS, "--batch", "4", "--out", path_of("cls2"))), 0);
    CHECK_STDERR_MENTIONS("batch 4 on each of 2 ranks, 5 steps per epoch");
    CHECK_MSG(!contains(last_err, "same batches"), "%s: classify does not shard", last_err);
    check_same_losses("cls1", "cls2", 10, 1e-5);

    /* speech, isolated digits redrawn with --augment: 4 training
     * recordings in one global batch of 6: rank 0 takes 3, rank 1 one */
#define SPEECH "speech", "train", "--data", RECUR_SOURCE_DIR "/data/fsdd", "--hidden", "12", \
               "--layers", "1", "--mels", "20", "--test-takes", "none", "--val-fraction",    \
               "0.34", "--augment", "--lr", "0.01", "--steps", "4", "--val-every", "2",      \
               "--threads", "1", "--log-every", "1"
    CHECK_EXIT(run_np("sp1", 0, ARGS(SPEECH, "--batch", "6", "--out", path_of("sp1"))), 0);
    CHECK_EXIT(run_np("sp2", 2, ARGS(SPEECH, "--batch", "3", "--out", path_of("sp2"))), 0);
    CHECK_STDERR_MENTIONS("4 training + 2 validation recordings");
    CHECK_MSG(!contains(last_err, "same batches"), "%s: speech does not shard", last_err);
    check_same_losses("sp1", "sp2", 4, 1e-5);

    /* translate: a mean over target tokens, so the shares weigh by theirs */
#define TRANSLATE "translate", "train", "--data", pairs, "--vocab", "280", "--embed", "16",  \
                  "--hidden", "16", "--dropout", "0", "--embed-dropout", "0", "--lr", "0.01", \
                  "--steps", "10", "--val-every", "5", "--val-sentences", "4", "--threads",   \
                  "1", "--log-every", "1"
    CHECK_EXIT(run_np("tr1", 0, ARGS(TRANSLATE, "--batch", "8", "--out", path_of("tr1"))), 0);
    CHECK_EXIT(run_np("tr2", 2, ARGS(TRANSLATE, "--batch", "4", "--out", path_of("tr2"))), 0);
    CHECK_STDERR_MENTIONS("steps of 4 on each of 2 ranks an epoch");
    CHECK_MSG(!contains(last_err, "same batches"), "%s: translate does not shard", last_err);
    check_same_losses("tr1", "tr2", 10, 1e-5);

    /* forecast: the walk's streams, each chunk's loss a mean over its targets */
#define FORECAST "forecast", "train", "--data", series, "--target", "sales", "--time", "month", \
                 "--hidden", "8", "--lookback", "12", "--val-every", "3", "--threads", "1",   \
                 "--log-every", "1"
    CHECK_EXIT(run_np("fc1", 0, ARGS(FORECAST, "--batch", "4", "--steps", "6", "--out",
                                     path_of("fc1"))), 0);
    CHECK_EXIT(run_np("fc2", 2, ARGS(FORECAST, "--batch", "2", "--steps", "6", "--out",
                                     path_of("fc2"))), 0);
    CHECK_STDERR_MENTIONS("batch 2 on each rank");
    CHECK_MSG(!contains(last_err, "same batches"), "%s: forecast does not shard", last_err);
    check_same_losses("fc1", "fc2", 6, 1e-5);
    /* and resumes within an epoch (3 chunks), from every rank's carried state */
    CHECK_EXIT(run_np("fc_half", 2, ARGS(FORECAST, "--batch", "2", "--steps", "2", "--out",
                                         path_of("fc_half"))), 0);
    CHECK_EXIT(run_np("fc_resume", 2, ARGS("forecast", "train", "--resume", "--steps", "6",
                                           "--threads", "1", "--out", path_of("fc_half"))), 0);
    CHECK_STDERR_MENTIONS("continuing at step 2");
    check_resumed_losses("fc2", "fc_half", 6);

    /* resume of a sharded run with dropout: the same rows bit for bit */
#define CLS_DROP "classify", "train", "--data", sentences, "--hidden", "12", "--embed", "8", \
                 "--dropout", "0.3", "--embed-dropout", "0.3", "--batch", "4", "--val-every", \
                 "5", "--threads", "1", "--log-every", "1"
    CHECK_EXIT(run_np("cls_full", 2, ARGS(CLS_DROP, "--steps", "8", "--out",
                                          path_of("cls_full"))), 0);
    CHECK_EXIT(run_np("cls_half", 2, ARGS(CLS_DROP, "--steps", "3", "--out",
                                          path_of("cls_half"))), 0);
    CHECK_EXIT(run_np("cls_resume", 2, ARGS("classify", "train", "--data", sentences, "--resume",
                                            "--steps", "8", "--threads", "1", "--out",
                                            path_of("cls_half"))), 0);
    CHECK_STDERR_MENTIONS("continuing at step 3");
    check_resumed_losses("cls_full", "cls_half", 8);
#undef CLS
#undef SPEECH
#undef TRANSLATE
#undef CLS_DROP
#undef FORECAST
}

/* Resume under MPI is exact; another process count is refused. */
static void test_resume(void)
{
    const char *full = path_of("full"), *half = path_of("half"), *single = path_of("single");
    CHECK_EXIT(run_np("full", 2, ARGS(TINY, "--batch", "4", "--steps", "8", "--val-every",
                                      "3", "--out", full)), 0);
    CHECK_EXIT(run_np("half", 2, ARGS(TINY, "--batch", "4", "--steps", "4", "--val-every",
                                      "3", "--out", half)), 0);
    CHECK_EXIT(run_np("half2", 2, ARGS("train", "--resume", "--out", half, "--steps", "8")), 0);
    CHECK_STDERR_MENTIONS("continuing at step 4");
    loaded a, b;
    if (load("full", &a) == 0 && load("half", &b) == 0) {
        const size_t n = recur_lm_size(a.lm), state = recur_lm_state_size(a.lm, 8);
        CHECK(a.ts->step == 8 && b.ts->step == 8);
        CHECK(memcmp(recur_lm_params(a.lm), recur_lm_params(b.lm), n * sizeof(float)) == 0);
        CHECK(a.ts->optim_state_count == b.ts->optim_state_count &&
              memcmp(a.ts->optim_state, b.ts->optim_state,
                     a.ts->optim_state_count * sizeof(float)) == 0);
        CHECK(memcmp(a.ts->h, b.ts->h, state * sizeof(float)) == 0);
        CHECK(memcmp(a.ts->c, b.ts->c, state * sizeof(float)) == 0);
        CHECK(memcmp(&a.ts->rng, &b.ts->rng, sizeof a.ts->rng) == 0);
        CHECK(a.ts->best_val_loss == b.ts->best_val_loss && a.ts->best_step == b.ts->best_step);
        unload(&a);
        unload(&b);
    }
    long steps_a[16], steps_b[16];
    double train_a[16], train_b[16], val_a[16], val_b[16];
    int rows_a = read_losses("full", steps_a, train_a, val_a, 16);
    int rows_b = read_losses("half", steps_b, train_b, val_b, 16);
    CHECK(rows_a == 8 && rows_b == 8);
    for (int i = 0; i < rows_a && i < rows_b; i++)
        CHECK(steps_a[i] == steps_b[i] && train_a[i] == train_b[i]);

    /* 2-rank run, 1 process; 1-process run, 2 ranks: refused, nothing written */
    CHECK_EXIT(run_np("one_of_two", 0, ARGS("train", "--resume", "--out", full, "--steps", "10")),
               1);
    CHECK_STDERR_MENTIONS("was trained by 2 processes; this run has 1");
    CHECK_STDERR_MENTIONS("mpirun -np N");
    CHECK(run_np("two_of_one", 2, ARGS("train", "--resume", "--out", single, "--steps", "10")) !=
          0);
    CHECK_STDERR_MENTIONS("was trained by 1 process; this run has 2");
    loaded c;
    if (load("full", &c) == 0) {
        CHECK(c.ts->step == 8);
        unload(&c);
    }
}

/* Decisions every rank must take together: --time, NaN stop and skip. */
static void test_agreement(void)
{
    const char *out = path_of("timed");
    CHECK_EXIT(run_np("timed", 2,
                      ARGS(TINY, "--batch", "4", "--time", "1", "--val-every", "0", "--out", out)),
               0);
    loaded l;
    if (load("timed", &l) == 0) {
        CHECK(l.ts->step > 1);
        unload(&l);
    }
    out = path_of("nan_stop");
    CHECK_EXIT(
        run_np("nan_stop", 2,
               ARGS(TINY, "--batch", "4", "--steps", "6", "--inject-nan", "3", "--out", out)),
        1);
    CHECK_STDERR_MENTIONS("the gradients are not finite (NaN or Inf) at step 3");
    CHECK_MSG(!contains(last_err, "MPI_ABORT"), "a NaN stop aborted the job instead of ending "
              "every rank");
    out = path_of("nan_skip");
    CHECK_EXIT(run_np("nan_skip", 2,
                      ARGS(TINY, "--batch", "4", "--steps", "6", "--inject-nan", "3", "--on-nan",
                           "skip", "--out", out)),
               0);
    CHECK_STDERR_MENTIONS("update skipped");
    if (load("nan_skip", &l) == 0) {
        CHECK(l.ts->step == 6);
        unload(&l);
    }
}

/* Starts a long 2-rank run saving every step, waits for a checkpoint, then
 * sends `sig` to rank 1; returns mpirun's exit status (-2: still running
 * after `limit` s) and the seconds it took to end after the signal. */
static int fault_run(const char *tag, int sig, const char *timeout, double limit, double *took)
{
    const char *out = path_of(tag);
    char latest[700];
    snprintf(latest, sizeof latest, "%s/latest.safetensors", out);
    pid_t pid = spawn_np(tag, 2, NULL,
                         ARGS(TINY, "--batch", "4", "--steps", "1000000", "--save-every", "1",
                              "--val-every", "0", "--log-every", "50", "--mpi-timeout", timeout,
                              "--out", out));
    wait_for_file(latest, 30);
    sleep_s(0.3);
    pid_t victim = find_rank(1);
    CHECK_MSG(victim > 0, "rank 1 of %s not found", tag);
    if (victim > 0)
        kill(victim, sig);
    const double start = now_s();
    int status = wait_job(pid, limit);
    *took = now_s() - start;
    return status;
}

/* The checkpoint of a broken job loads and the run continues. */
static void check_resumable(const char *tag)
{
    loaded l;
    if (load(tag, &l))
        return;
    const int64_t step = l.ts->step;
    CHECK(step >= 1);
    unload(&l);
    const char *out = path_of(tag);
    char until[32];
    snprintf(until, sizeof until, "%lld", (long long)step + 2);
    CHECK_EXIT(run_np("resume_after_fault", 2,
                      ARGS("train", "--resume", "--out", out, "--steps", until, "--mpi-timeout",
                           "60", "--save-every", "0")),
               0);
    if (load(tag, &l) == 0) {
        CHECK(l.ts->step == step + 2);
        unload(&l);
    }
}

static void test_killed_rank(void)
{
    double took = 0;
    int status = fault_run("killed", SIGKILL, "60", 60, &took);
    CHECK_MSG(status != 0 && status != -2, "mpirun exit status %d after SIGKILL of rank 1",
              status);
    CHECK_MSG(took < 30, "the job took %.1f s to end", took);
    /* Open MPI ends the job and names the rank, unless rank 0 noticed first */
    CHECK_MSG((contains(last_err, "rank 1") && contains(last_err, "signal 9")) ||
                  contains(last_err, "lost contact with the other ranks"),
              "stderr %s names neither the killed rank nor the lost contact", last_err);
    check_resumable("killed");
}

static void test_hung_rank(void)
{
    double took = 0;
    int status = fault_run("hung", SIGSTOP, "2", 60, &took);
    CHECK_MSG(status != 0 && status != -2, "mpirun exit status %d after SIGSTOP of rank 1",
              status);
    CHECK_MSG(took >= 1.5 && took < 30, "the job took %.1f s to end (--mpi-timeout 2)", took);
    CHECK_STDERR_MENTIONS("(--mpi-timeout)");
    CHECK_STDERR_MENTIONS("is intact");
    check_resumable("hung");
}

/* A build without MPI refuses to be started N times by mpirun. */
static void test_without_mpi(void)
{
    const char *out = path_of("nompi");
    pid_t pid = spawn_np("nompi", 0, "OMPI_COMM_WORLD_SIZE=2",
                         ARGS(TINY, "--batch", "4", "--steps", "2", "--out", out));
    CHECK_EXIT(wait_job(pid, 60), 1);
    CHECK_STDERR_MENTIONS("built without MPI");
    CHECK_EXIT(run_np("nompi_help", 0, ARGS("train", "--help")), 0);
    CHECK_MSG(!contains(last_out, "--mpi-timeout"), "--help of a build without MPI lists MPI "
              "options");
}

int main(int argc, char **argv)
{
    mpiexec = argc > 2 ? argv[2] : NULL;
    if (cli_begin(argc, argv, "test_mpi_cli"))
        return 1;
    snprintf(tag_env, sizeof tag_env, "RECUR_MPI_TEST=%ld", (long)getpid());
    size_t len = 0;
    char *corpus = read_file(RECUR_SOURCE_DIR "/data/tinyshakespeare.txt", &len);
    if (!corpus || len < 30000) {
        fprintf(stderr, "test_mpi_cli: cannot read data/tinyshakespeare.txt\n");
        return 1;
    }
    snprintf(text_path, sizeof text_path, "%s", path_of("text.txt"));
    CHECK(write_all(text_path, corpus, 30000) == 0);
    free(corpus);

    if (!mpiexec) {
        test_without_mpi();
    } else {
        CHECK(run_np("help", 0, ARGS("train", "--help")) == 0 &&
              contains(last_out, "--mpi-timeout"));
        /* 4 MB buckets (one here), started during the backward pass */
        test_parity("single", "ranks2", "0", NULL, NULL, NULL, NULL);
        /* buckets of 262 floats, many started during the backward pass,
         * or all after it */
        test_parity("single", "ranks2-buckets", "0", "--mpi-bucket", "0.001", NULL, NULL);
        test_parity("single", "ranks2-after", "0", "--mpi-bucket", "0.001", "--mpi-overlap", "0");
        /* DropConnect: the same masks on every rank; its W_hh gradient is
         * completed layer by layer for the early buckets */
        test_parity("single-wd", "ranks2-wd", "0.3", "--mpi-bucket", "0.001", NULL, NULL);
        test_parity_commands();
        test_resume();
        test_agreement();
        test_killed_rank();
        test_hung_rank();
    }

    cli_end("test_mpi_cli");
    CHECK_DONE();
}
