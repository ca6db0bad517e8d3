/* cli.h - what the commands of the `recur` tool share: a table-driven
 * option parser that also prints --help with every default, error
 * reporting with the exit codes (0 ok, 1 failure, 2 usage), clocks and
 * duration formatting, and the evaluation walk used by `train` (validation)
 * and `eval`. The tool uses only the public header include/recur.h. */
#ifndef RECUR_CLI_H
#define RECUR_CLI_H

#include <stdarg.h>
#include <stdio.h>

#include "recur.h"

enum { CLI_OK = 0, CLI_FAILURE = 1, CLI_USAGE = 2 };
/* Returned by cli_parse after printing --help: the command exits 0. */
#define CLI_HELP_SHOWN (-1)

typedef enum cli_type {
    CLI_INT,    /* int */
    CLI_INT64,  /* int64_t */
    CLI_DOUBLE, /* double */
    CLI_STRING, /* const char * (points into argv or a loaded checkpoint) */
    CLI_CHOICE, /* const char *, one of `choices` */
    CLI_FLAG    /* int, 0 or 1; takes no value on the command line */
} cli_type;

/* Option flags. */
#define CLI_SAVED 1u  /* train: stored in the checkpoint, restored by --resume */
#define CLI_FROZEN 2u /* train: cannot change on --resume (defines the model or data walk) */
#define CLI_OPEN_MIN 4u /* the minimum itself is not allowed (x > min) */
#define CLI_OPEN_MAX 8u /* the maximum itself is not allowed (x < max) */

typedef struct cli_option {
    const char *name;    /* without the leading "--" */
    cli_type type;
    void *dest;
    const char *metavar; /* "N", "FILE", ...; NULL for flags */
    const char *help;
    double min, max;     /* inclusive range of numbers (see CLI_OPEN_MIN) */
    const char *const *choices; /* CLI_CHOICE: NULL-terminated list */
    const char *default_text;   /* shown instead of the value when the default is described */
    unsigned flags;
    int given;           /* set by cli_parse when the command line names it */
} cli_option;

/* Sentinel closing an option table. */
#define CLI_END {NULL, CLI_FLAG, NULL, NULL, NULL, 0, 0, NULL, NULL, 0, 0}

/* Parses argv[0..argc) (the words after the command name) into the table.
 * Returns CLI_OK, CLI_HELP_SHOWN (help printed to stdout) or CLI_USAGE
 * (message printed to stderr). */
int cli_parse(const char *command, cli_option *options, int argc, char **argv,
              const char *usage, const char *summary);
/* Sets one option from text, checking type and range. CLI_OK or
 * CLI_USAGE with a message naming `source` (e.g. "--hidden"). */
int cli_set(const char *command, cli_option *option, const char *value);
cli_option *cli_find(cli_option *options, const char *name);
/* The current value as text: doubles in the shortest form that reads back
 * exactly, "true"/"false" for flags. */
void cli_format(const cli_option *option, char *out, size_t size);
void cli_help(FILE *out, const char *command, const cli_option *options, const char *usage,
              const char *summary);

/* "recur <command>: error: <message>" on stderr, then each line of `hint`
 * indented; returns CLI_FAILURE. */
int cli_fail(const char *command, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same with the exit code CLI_USAGE and a pointer to --help. */
int cli_usage(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Seconds from a monotonic clock. */
double cli_now(void);
/* "2h03m", "4m05s", "12.3s". */
void cli_duration(double seconds, char *out, size_t size);
/* Text of a token for messages: printable ASCII as is, else U+XXXX. */
void cli_token_text(const recur_vocab *vocab, int32_t id, char *out, size_t size);

/* Mean cross-entropy (nats) of predicting tokens[1..n) over B parallel
 * streams: the n tokens are cut into B streams of n / B tokens, each walked
 * from a zero state with the state carried to its end in chunks of at most
 * T steps; every token of a stream after its first is predicted once
 * (B = 1: every token after the first of the text). *loss is the mean over
 * the *count predictions. B is lowered so that each stream has >= 2 tokens. */
/* K > 1 models are scored as an ensemble: the mixture of their predicted
 * distributions (recur_log_mixture), each model carrying its own state. */
int cli_evaluate(recur_lm *const *lms, int K, const int32_t *tokens, size_t n, int B, int T,
                 double *loss, size_t *count);

/* The same quantity for one stream (B = 1) computed token by token with a
 * streaming sampler of the given precision (recur_lm_sampler_create_with):
 * how the model scores text when it runs as `recur sample` runs it. */
int cli_evaluate_stream(recur_lm *const *lms, int K, const int32_t *tokens, size_t n,
                        recur_precision precision, double *loss, size_t *count);

/* The models of `recur eval|sample --model A[,B...]`: one checkpoint, or an
 * ensemble of several over one vocabulary. */
typedef struct cli_lms {
    recur_lm **lm;
    int count;
    recur_vocab *vocab; /* the (shared) vocabulary */
} cli_lms;
/* Loads every comma-separated path of spec; on failure prints the error
 * (naming the file) and returns CLI_FAILURE or CLI_USAGE with nothing left
 * to free. cli_free_lms releases it all. */
int cli_load_lms(const char *command, const char *spec, cli_lms *out);
void cli_free_lms(cli_lms *lms);

/* --precision: "f32" or "bf16" (cli_precision_choices) to the enum. */
extern const char *const cli_precision_choices[];
recur_precision cli_precision(const char *name);

int cmd_train(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_classify(int argc, char **argv);

#endif
