/* cli_harness.h - what the end-to-end tests of `recur` subcommands share:
 * running the binary (or another executable, such as mpiexec) with stdout
 * and stderr captured into files of a temporary folder, optionally in the
 * background with a time limit or extra environment entries; reading and
 * writing files and the rows of metrics.csv; checks on exit codes and
 * output. The including test sets
 * recur_bin and dir (cli_begin does both; cli_end removes dir when every
 * check passed) and may point stdin_path at a file to feed the command's
 * standard input. Include after check.h. The functions are static inline, so
 * that a test need not use them all. */
#ifndef RECUR_TEST_CLI_HARNESS_H
#define RECUR_TEST_CLI_HARNESS_H

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *recur_bin;
static char dir[256];
static char last_out[600], last_err[600];
static const char *stdin_path = "/dev/null";

/* The most arguments of one command, its path and the final NULL included. */
enum { CLI_MAX_ARGS = 96 };

/* A NULL-terminated argument list, for the array forms below:
 * spawn_recur("tag", ARGS("train", "--help")). */
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Reads a whole file, also those of /proc (whose size reads as 0), with a
 * '\0' after it; *len_out (may be NULL) gets its length. NULL when it
 * cannot be read. */
static inline char *read_file(const char *path, size_t *len_out)
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

static inline char *read_all(const char *path)
{
    return read_file(path, NULL);
}

/* Writes len bytes to path (replacing it); 0 on success, -1 otherwise. */
static inline int write_all(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t put = fwrite(data, 1, len, f);
    return fclose(f) == 0 && put == len ? 0 : -1;
}

/* The next data row of the text of a metrics.csv (lines that are empty or
 * start with the header's "step," are passed over), split in place at its
 * commas into at most max fields (the rest of the row is dropped). Returns
 * how many fields it stored, or -1 at the end of the text; *cursor starts
 * at the text (NULL: none) and moves on. */
static inline int next_csv_row(char **cursor, char **fields, int max)
{
    char *line;
    do {
        line = *cursor;
        if (!line || !*line)
            return -1;
        char *end = strchr(line, '\n');
        *cursor = end ? end + 1 : line + strlen(line);
        if (end)
            *end = '\0';
    } while (!*line || strncmp(line, "step,", 5) == 0);
    int k = 0;
    for (char *p = line; p && k < max; k++) {
        fields[k] = p;
        p = strchr(p, ',');
        if (p)
            *p++ = '\0';
    }
    return k;
}

/* dir/name, in one of 16 buffers used in turn (so at most 16 live at once). */
static inline const char *path_of(const char *name)
{
    static char buf[16][600];
    static int next;
    char *p = buf[next++ % 16];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Waits (polling every 5 ms, up to limit_s seconds) until path exists;
 * 1 when it does, 0 when time ran out. */
static inline int wait_for_file(const char *path, double limit_s)
{
    for (const double start = now_s(); now_s() - start < limit_s; sleep_s(0.005))
        if (access(path, F_OK) == 0)
            return 1;
    return access(path, F_OK) == 0;
}

/* Starts the executable argv[0] (a path: PATH is not searched) with the
 * arguments argv (NULL-terminated) and the entries of env ("NAME=value",
 * NULL-terminated; NULL: none) added to this process's environment; stdin
 * from stdin_path, stdout and stderr into dir/<tag>.out and dir/<tag>.err
 * (then named by last_out and last_err). Returns its pid, -1 when it cannot
 * be started. */
static inline pid_t spawn_cmd(const char *tag, const char *const *argv, const char *const *env)
{
    snprintf(last_out, sizeof last_out, "%s/%s.out", dir, tag);
    snprintf(last_err, sizeof last_err, "%s/%s.err", dir, tag);
    size_t inherited = 0, added = 0;
    while (environ[inherited])
        inherited++;
    while (env && env[added])
        added++;
    char **envp = malloc((inherited + added + 1) * sizeof *envp);
    if (!envp)
        return -1;
    memcpy(envp, environ, inherited * sizeof *envp);
    for (size_t i = 0; i < added; i++)
        envp[inherited + i] = (char *)env[i];
    envp[inherited + added] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, stdin_path, O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, last_out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, last_err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    if (posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, envp) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    return pid;
}

/* Starts `recur args...` (args NULL-terminated) as spawn_cmd does, without
 * waiting for it. */
static inline pid_t spawn_recur(const char *tag, const char *const *args)
{
    const char *argv[CLI_MAX_ARGS];
    int n = 0;
    argv[n++] = recur_bin;
    for (int i = 0; args[i] && n < CLI_MAX_ARGS - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return spawn_cmd(tag, argv, NULL);
}

/* Waits for a started command: its exit code, 128 + the number of the
 * signal that ended it, or -1 (no such command). */
static inline int wait_exit(pid_t pid)
{
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* As wait_exit, but after limit_s seconds kills the command (SIGKILL) and
 * returns -2. */
static inline int wait_exit_within(pid_t pid, double limit_s)
{
    if (pid < 0)
        return -1;
    const double start = now_s();
    for (;;) {
        int status = 0;
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (got < 0)
            return -1;
        if (now_s() - start > limit_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -2;
        }
        sleep_s(0.02);
    }
}

/* Runs `recur` with the NULL-terminated arguments after tag, stdout and
 * stderr into dir/<tag>.out/.err; returns as wait_exit does. */
static inline int run(const char *tag, ...)
{
    const char *args[CLI_MAX_ARGS];
    int n = 0;
    va_list ap;
    va_start(ap, tag);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < CLI_MAX_ARGS - 2)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return wait_exit(spawn_recur(tag, args));
}

static inline int contains(const char *path, const char *needle)
{
    char *text = read_all(path);
    int found = text && strstr(text, needle) != NULL;
    free(text);
    return found;
}

/* Sets recur_bin (argv[1], else RECUR_BINARY_DIR/recur) and makes dir, a
 * fresh /tmp/recur_<name>_XXXXXX; 0 on success, else says why and returns
 * -1. */
static inline int cli_begin(int argc, char **argv, const char *name)
{
    recur_bin = argc > 1 ? argv[1] : RECUR_BINARY_DIR "/recur";
    if (access(recur_bin, X_OK) != 0) {
        fprintf(stderr, "%s: the recur binary %s is missing (build the 'recur' target)\n", name,
                recur_bin);
        return -1;
    }
    snprintf(dir, sizeof dir, "/tmp/recur_%s_XXXXXX", name);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

/* Removes dir when every check passed; otherwise says where its files are
 * kept. */
static inline void cli_end(const char *name)
{
    if (check_failed) {
        fprintf(stderr, "%s: files kept in %s\n", name, dir);
        return;
    }
    const char *const rm[] = {"rm", "-rf", dir, NULL};
    pid_t pid;
    if (posix_spawnp(&pid, "rm", NULL, NULL, (char *const *)rm, environ) != 0 ||
        wait_exit(pid) != 0)
        fprintf(stderr, "%s: could not remove %s\n", name, dir);
}

#define CHECK_EXIT(got, want)                                                                      \
    do {                                                                                           \
        int exit_got_ = (got);                                                                     \
        CHECK_MSG(exit_got_ == (want), "exit code %d, expected %d", exit_got_, (want));            \
        if (exit_got_ != (want)) {                                                                 \
            char *err_ = read_all(last_err);                                                       \
            fprintf(stderr, "  stderr (%s):\n%s\n", last_err, err_ ? err_ : "(none)");             \
            free(err_);                                                                            \
        }                                                                                          \
    } while (0)

#define CHECK_STDERR_MENTIONS(needle)                                                              \
    CHECK_MSG(contains(last_err, needle), "stderr %s lacks \"%s\"", last_err, needle)
#define CHECK_STDOUT_MENTIONS(needle)                                                              \
    CHECK_MSG(contains(last_out, needle), "stdout %s lacks \"%s\"", last_out, needle)

#endif
