/* cli_harness.h - what the end-to-end tests of `recur` subcommands share:
 * running the binary with stdout and stderr captured into files of a
 * temporary folder, reading them back, and checks on exit codes and output.
 * The including test sets recur_bin and dir (and may point stdin_path at a
 * file to feed the command's standard input). Include after check.h. */
#ifndef RECUR_TEST_CLI_HARNESS_H
#define RECUR_TEST_CLI_HARNESS_H

#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *recur_bin;
static char dir[256];
static char last_out[600], last_err[600];
static const char *stdin_path = "/dev/null";

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

static const char *path_of(const char *name)
{
    static char buf[8][600];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static int run(const char *tag, ...)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = recur_bin;
    va_list ap;
    va_start(ap, tag);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 63)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    snprintf(last_out, sizeof last_out, "%s/%s.out", dir, tag);
    snprintf(last_err, sizeof last_err, "%s/%s.err", dir, tag);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, stdin_path, O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, last_out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, last_err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    int status = 0;
    if (posix_spawn(&pid, recur_bin, &fa, NULL, (char *const *)argv, environ) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
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
