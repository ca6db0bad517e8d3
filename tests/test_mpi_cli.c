/* test_mpi_cli.c - data-parallel training of the `recur` tool over MPI,
 * end to end (docs/mpi.md). Arguments: the recur binary and mpiexec (Open
 * MPI's; tests/tests.cmake passes both in builds with RECUR_MPI=ON). On a
 * 30 KB slice of tiny Shakespeare with tiny models, in a fresh temporary
 * folder:
 *   - parity: `mpirun -np 2 recur train --batch 4` gives the losses,
 *     validation losses, weights, optimizer moments and carried state of
 *     `recur train --batch 8` (within float rounding);
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
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "recur.h"

extern char **environ;

static const char *recur_bin, *mpiexec;
static char dir[256], text_path[512];
static char last_err[600], last_out[600];
static char tag_env[64]; /* RECUR_MPI_TEST=<our pid>: marks the ranks we start */

/* ---- helpers -------------------------------------------------------------- */

/* Reads a whole file, also those of /proc (whose size reads as 0). */
static char *read_all(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - 1 - len, f);
        if (len + 1 < cap)
            break;
        char *grown = realloc(buf, cap * 2);
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void path_of(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

/* Starts `recur args` (ranks = 0) or `mpiexec -np ranks recur args`, with
 * stdout/stderr into dir/<tag>.out/.err and `env` added to the
 * environment (NULL: none). */
static pid_t spawn(const char *tag, int ranks, const char *env, const char *const *args)
{
    const char *argv[80];
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
    for (int i = 0; args[i] && n < 79; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    snprintf(last_out, sizeof last_out, "%s/%s.out", dir, tag);
    snprintf(last_err, sizeof last_err, "%s/%s.err", dir, tag);
    char *envp[512];
    int e = 0;
    for (char **p = environ; *p && e < 509; p++)
        envp[e++] = *p;
    envp[e++] = tag_env;
    if (env)
        envp[e++] = (char *)env;
    envp[e] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, last_out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, last_err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    if (posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, envp) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    return pid;
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
        char *env = read_all(path, &len);
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
 * the job is killed). */
static int wait_for(pid_t pid, double limit)
{
    if (pid < 0)
        return -1;
    const double start = now_s();
    for (;;) {
        int status = 0;
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid) {
            kill_ranks();
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (got < 0)
            return -1;
        if (now_s() - start > limit) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            kill_ranks();
            return -2;
        }
        sleep_s(0.02);
    }
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static int run(const char *tag, int ranks, const char *const *args)
{
    return wait_for(spawn(tag, ranks, NULL, args), 120);
}

static int contains(const char *path, const char *needle)
{
    char *text = read_all(path, NULL);
    int found = text && strstr(text, needle) != NULL;
    free(text);
    return found;
}

#define CHECK_EXIT(got, want)                                                              \
    do {                                                                                   \
        int exit_got_ = (got);                                                             \
        CHECK_MSG(exit_got_ == (want), "exit code %d, expected %d", exit_got_, (want));    \
        if (exit_got_ != (want)) {                                                         \
            char *err_ = read_all(last_err, NULL);                                         \
            fprintf(stderr, "  stderr (%s):\n%s\n", last_err, err_ ? err_ : "(none)");      \
            free(err_);                                                                    \
        }                                                                                  \
    } while (0)

#define CHECK_STDERR_MENTIONS(needle)                                                      \
    CHECK_MSG(contains(last_err, needle), "stderr %s lacks \"%s\"", last_err, needle)

/* The train_loss and val_loss columns of metrics.csv, by row. */
static int read_losses(const char *run, long *steps, double *train, double *val, int max)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s/metrics.csv", dir, run);
    char *text = read_all(path, NULL);
    if (!text)
        return -1;
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && n < max;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "step,", 5) == 0)
            continue;
        char *cols[4] = {line, NULL, NULL, NULL};
        for (int k = 1; k < 4; k++) {
            char *comma = cols[k - 1] ? strchr(cols[k - 1], ',') : NULL;
            if (comma)
                *comma = '\0';
            cols[k] = comma ? comma + 1 : NULL;
        }
        if (!cols[3])
            continue;
        steps[n] = strtol(cols[0], NULL, 10);
        train[n] = cols[2][0] ? strtod(cols[2], NULL) : NAN;
        val[n] = cols[3][0] && cols[3][0] != ',' ? strtod(cols[3], NULL) : NAN;
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

static int load(const char *run, loaded *out)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s/latest.safetensors", dir, run);
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

/* 2 ranks with batch 4 == 1 process with batch 8. */
static void test_parity(void)
{
    char single[600], ranks2[600];
    path_of(single, sizeof single, "single");
    path_of(ranks2, sizeof ranks2, "ranks2");
    CHECK_EXIT(run("single", 0, ARGS(TINY, "--batch", "8", "--steps", "6", "--val-every", "3",
                                     "--out", single)), 0);
    CHECK_EXIT(run("ranks2", 2, ARGS(TINY, "--batch", "4", "--steps", "6", "--val-every", "3",
                                     "--out", ranks2)), 0);
    CHECK_STDERR_MENTIONS("batch 4 on each of 2 ranks");
    CHECK_STDERR_MENTIONS("ms communication (rank 0)");

    long steps_a[16], steps_b[16];
    double train_a[16], train_b[16], val_a[16], val_b[16];
    int rows_a = read_losses("single", steps_a, train_a, val_a, 16);
    int rows_b = read_losses("ranks2", steps_b, train_b, val_b, 16);
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
    if (load("single", &a) || load("ranks2", &b))
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

/* Resume under MPI is exact; another process count is refused. */
static void test_resume(void)
{
    char full[600], half[600], single[600];
    path_of(full, sizeof full, "full");
    path_of(half, sizeof half, "half");
    path_of(single, sizeof single, "single");
    CHECK_EXIT(run("full", 2, ARGS(TINY, "--batch", "4", "--steps", "8", "--val-every", "3",
                                   "--out", full)), 0);
    CHECK_EXIT(run("half", 2, ARGS(TINY, "--batch", "4", "--steps", "4", "--val-every", "3",
                                   "--out", half)), 0);
    CHECK_EXIT(run("half2", 2, ARGS("train", "--resume", "--out", half, "--steps", "8")), 0);
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
    CHECK_EXIT(run("one_of_two", 0, ARGS("train", "--resume", "--out", full, "--steps", "10")),
               1);
    CHECK_STDERR_MENTIONS("was trained by 2 processes; this run has 1");
    CHECK_STDERR_MENTIONS("mpirun -np N");
    CHECK(run("two_of_one", 2, ARGS("train", "--resume", "--out", single, "--steps", "10")) != 0);
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
    char out[600];
    path_of(out, sizeof out, "timed");
    CHECK_EXIT(run("timed", 2, ARGS(TINY, "--batch", "4", "--time", "1", "--val-every", "0",
                                    "--out", out)), 0);
    loaded l;
    if (load("timed", &l) == 0) {
        CHECK(l.ts->step > 1);
        unload(&l);
    }
    path_of(out, sizeof out, "nan_stop");
    CHECK_EXIT(run("nan_stop", 2, ARGS(TINY, "--batch", "4", "--steps", "6", "--inject-nan", "3",
                                       "--out", out)), 1);
    CHECK_STDERR_MENTIONS("the gradients are not finite (NaN or Inf) at step 3");
    CHECK_MSG(!contains(last_err, "MPI_ABORT"), "a NaN stop aborted the job instead of ending "
              "every rank");
    path_of(out, sizeof out, "nan_skip");
    CHECK_EXIT(run("nan_skip", 2, ARGS(TINY, "--batch", "4", "--steps", "6", "--inject-nan", "3",
                                       "--on-nan", "skip", "--out", out)), 0);
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
    char out[600], latest[700];
    path_of(out, sizeof out, tag);
    snprintf(latest, sizeof latest, "%s/latest.safetensors", out);
    pid_t pid = spawn(tag, 2, NULL,
                      ARGS(TINY, "--batch", "4", "--steps", "1000000", "--save-every", "1",
                           "--val-every", "0", "--log-every", "50", "--mpi-timeout", timeout,
                           "--out", out));
    struct stat info;
    for (int i = 0; i < 600 && stat(latest, &info) != 0; i++)
        sleep_s(0.05);
    sleep_s(0.3);
    pid_t victim = find_rank(1);
    CHECK_MSG(victim > 0, "rank 1 of %s not found", tag);
    if (victim > 0)
        kill(victim, sig);
    const double start = now_s();
    int status = wait_for(pid, limit);
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
    char out[600], until[32];
    path_of(out, sizeof out, tag);
    snprintf(until, sizeof until, "%lld", (long long)step + 2);
    CHECK_EXIT(run("resume_after_fault", 2,
                   ARGS("train", "--resume", "--out", out, "--steps", until, "--mpi-timeout",
                        "60", "--save-every", "0")), 0);
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
    char out[600];
    path_of(out, sizeof out, "nompi");
    pid_t pid = spawn("nompi", 0, "OMPI_COMM_WORLD_SIZE=2",
                      ARGS(TINY, "--batch", "4", "--steps", "2", "--out", out));
    CHECK_EXIT(wait_for(pid, 60), 1);
    CHECK_STDERR_MENTIONS("built without MPI");
    CHECK_EXIT(run("nompi_help", 0, ARGS("train", "--help")), 0);
    CHECK_MSG(!contains(last_out, "--mpi-timeout"), "--help of a build without MPI lists MPI "
              "options");
}

int main(int argc, char **argv)
{
    recur_bin = argc > 1 ? argv[1] : RECUR_BINARY_DIR "/recur";
    mpiexec = argc > 2 ? argv[2] : NULL;
    if (access(recur_bin, X_OK) != 0) {
        fprintf(stderr, "test_mpi_cli: the recur binary %s is missing\n", recur_bin);
        return 1;
    }
    snprintf(dir, sizeof dir, "/tmp/recur_test_mpi_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(tag_env, sizeof tag_env, "RECUR_MPI_TEST=%ld", (long)getpid());
    size_t len = 0;
    char *corpus = read_all(RECUR_SOURCE_DIR "/data/tinyshakespeare.txt", &len);
    if (!corpus || len < 30000) {
        fprintf(stderr, "test_mpi_cli: cannot read data/tinyshakespeare.txt\n");
        return 1;
    }
    path_of(text_path, sizeof text_path, "text.txt");
    FILE *f = fopen(text_path, "wb");
    CHECK(f && fwrite(corpus, 1, 30000, f) == 30000);
    if (f)
        fclose(f);
    free(corpus);

    if (!mpiexec) {
        test_without_mpi();
    } else {
        CHECK(run("help", 0, ARGS("train", "--help")) == 0 && contains(last_out, "--mpi-timeout"));
        test_parity();
        test_resume();
        test_agreement();
        test_killed_rank();
        test_hung_rank();
    }

    if (!check_failed) {
        const char *rm[] = {"rm", "-rf", dir, NULL};
        pid_t pid;
        if (posix_spawnp(&pid, "rm", NULL, NULL, (char *const *)rm, environ) == 0)
            waitpid(pid, NULL, 0);
    } else {
        fprintf(stderr, "test_mpi_cli: files kept in %s\n", dir);
    }
    CHECK_DONE();
}
