/* bench_common.h - what bench_rnn.c (recur) and bench_onednn.c (oneDNN's RNN
 * primitive) share: the command line, the timing loop, one child process per
 * case and the result lines.
 *
 * Every case runs in a child made with fork(), so that its peak resident
 * memory (getrusage in the child, ru_maxrss) is its own and not the largest
 * of all cases. The parent never enters an OpenMP region: libgomp's thread
 * pool does not survive fork(), so all threaded work happens in children.
 *
 * The time of a case is the median of its timed calls after a warm-up,
 * within a bounded budget (--seconds, default 1). A result line gives the
 * case id shared by all three benches (bench/run.sh joins on it), the time of
 * one call, tokens/s, GFLOP/s (FLOPs count the matrix products only) and the
 * peak memory; --json prints the same as one JSON object a line. Benchmarks
 * report; they never decide pass/fail. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

/* the including file defines _DEFAULT_SOURCE before any header (fork,
 * clock_gettime and getrusage under -std=c11) */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct bench_options {
    int threads;      /* 0: all cores */
    double seconds;   /* timing budget of one case */
    bool json;        /* JSON lines instead of the human table */
    const char *only; /* run only cases whose id contains this */
} bench_options;

typedef struct bench_result {
    char id[48];   /* shared case id, e.g. "lstm_train_b64" */
    char what[96]; /* human description of the case */
    int threads;
    double seconds;     /* median time of one call (one step when streaming) */
    double tokens;      /* tokens (time steps x batch) per call */
    double flops;       /* matrix-product FLOPs per call; 0 when not counted */
    double peak_gflops; /* the machine's peak for the % column; 0: unknown */
    int reps;           /* timed calls */
    bool streaming;     /* report microseconds */
    const char *note;   /* extra JSON field "note", or NULL */
} bench_result;

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void bench_usage(const char *prog, const char *what)
{
    fprintf(stderr,
            "usage: %s [--threads N] [--seconds S] [--json] [--only SUBSTRING]\n"
            "%s\n"
            "  --threads N    threads (default: all cores)\n"
            "  --seconds S    timing budget of each case (default 1)\n"
            "  --json         one JSON object per line instead of the table\n"
            "  --only TEXT    run only the cases whose id contains TEXT\n",
            prog, what);
}

/* 0 ok, 2 usage error (message printed). Bare numbers are the thread count
 * and the budget, for the old `bench_rnn [threads] [seconds]` form. */
static inline int bench_parse(int argc, char **argv, const char *what, bench_options *o)
{
    *o = (bench_options){0, 1.0, false, NULL};
    int positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--threads") == 0 && has_value) {
            o->threads = atoi(argv[++i]);
        } else if (strcmp(a, "--seconds") == 0 && has_value) {
            o->seconds = atof(argv[++i]);
        } else if (strcmp(a, "--only") == 0 && has_value) {
            o->only = argv[++i];
        } else if (a[0] >= '0' && a[0] <= '9' && positional < 2) {
            if (positional++ == 0)
                o->threads = atoi(a);
            else
                o->seconds = atof(a);
        } else {
            bench_usage(argv[0], what);
            return 2;
        }
    }
    if (o->threads <= 0)
        o->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (!(o->seconds > 0.0))
        o->seconds = 1.0;
    return 0;
}

static inline bool bench_selected(const bench_options *o, const char *id)
{
    return !o->only || strstr(id, o->only) != NULL;
}

static int bench_compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_compare_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Median seconds of one call of fn(ctx): warm-up calls for up to a fifth of
 * the budget (at least one), then timed calls until the budget is spent (at
 * least 3, at most max_reps). *reps receives the number of timed calls. */
#define BENCH_MAX_REPS 200000
static inline double bench_time(void (*fn)(void *), void *ctx, double budget, int *reps)
{
    double t0 = bench_now();
    do
        fn(ctx);
    while (bench_now() - t0 < 0.2 * budget);
    double *times = malloc(BENCH_MAX_REPS * sizeof *times);
    if (!times) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    int n = 0;
    t0 = bench_now();
    while (n < BENCH_MAX_REPS && (n < 3 || bench_now() - t0 < budget)) {
        double t = bench_now();
        fn(ctx);
        times[n++] = bench_now() - t;
    }
    double median = bench_median(times, n);
    free(times);
    *reps = n;
    return median;
}

static inline long bench_peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss; /* kilobytes on Linux */
}

/* Prints a result of `impl` (in the child, with its own peak memory). */
static inline void bench_print(const bench_options *o, const char *impl, const bench_result *r)
{
    double rss_mb = (double)bench_peak_rss_kb() / 1024.0;
    double gflops = r->flops > 0 ? r->flops / r->seconds * 1e-9 : 0.0;
    double pct = gflops > 0 && r->peak_gflops > 0 ? 100.0 * gflops / r->peak_gflops : 0.0;
    double tok_s = r->tokens / r->seconds;
    if (o->json) {
        printf("{\"impl\":\"%s\",\"case\":\"%s\",\"what\":\"%s\",\"threads\":%d,"
               "\"ms\":%.6g,\"tokens_per_s\":%.6g,\"gflops\":%.6g,\"peak_pct\":%.4g,"
               "\"rss_mb\":%.1f,\"reps\":%d",
               impl, r->id, r->what, r->threads, r->seconds * 1e3, tok_s, gflops, pct, rss_mb,
               r->reps);
        if (r->streaming)
            printf(",\"us\":%.4g", r->seconds * 1e6);
        if (r->note)
            printf(",\"note\":\"%s\"", r->note);
        printf("}\n");
    } else {
        char t[32], g[32], p[16];
        if (r->streaming)
            snprintf(t, sizeof t, "%8.2f us", r->seconds * 1e6);
        else
            snprintf(t, sizeof t, "%8.2f ms", r->seconds * 1e3);
        if (gflops > 0)
            snprintf(g, sizeof g, "%7.1f GFLOP/s", gflops);
        else
            snprintf(g, sizeof g, "%15s", "-");
        if (pct > 0)
            snprintf(p, sizeof p, "%5.1f%%", pct);
        else
            snprintf(p, sizeof p, "%6s", "-");
        printf("%-20s %-44s %s %11.0f tok/s %s %s %7.0f MB\n", r->id, r->what, t, tok_s, g, p,
               rss_mb);
    }
    fflush(stdout);
}

/* Runs run(o, arg) in a child process and waits for it. The child prints its
 * own result lines. Returns the child's exit status (non-zero on failure,
 * which the caller reports and goes on). */
static inline int bench_in_child(const bench_options *o,
                                 int (*run)(const bench_options *, const void *), const void *arg)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        int status = run(o, arg);
        fflush(stdout);
        _exit(status ? 1 : 0);
    }
    int wstatus = 0;
    if (waitpid(pid, &wstatus, 0) < 0) {
        perror("waitpid");
        return 1;
    }
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    fprintf(stderr, "bench: case process ended by signal %d\n",
            WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0);
    return 1;
}

#endif
