/* common.c - the pieces every command of the `recur` tool shares: the
 * option parser (GNU-style "--name value" and "--name=value"; no short
 * options, no positional arguments), --help generated from the same table so
 * that it always lists every option with its default, error messages with
 * the exit codes, clocks, and the evaluation walk over a token array. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

cli_option *cli_find(cli_option *options, const char *name)
{
    for (cli_option *o = options; o->name; o++)
        if (strcmp(o->name, name) == 0)
            return o;
    return NULL;
}

int cli_usage(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "recur %s: ", command);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'recur %s --help' for the list of options.\n", command);
    return CLI_USAGE;
}

int cli_fail(const char *command, const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "recur %s: error: ", command);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (hint && hint[0])
        fprintf(stderr, "  %s\n", hint);
    return CLI_FAILURE;
}

static int number_in_range(const cli_option *o, double x)
{
    if (o->flags & CLI_OPEN_MIN ? !(x > o->min) : !(x >= o->min))
        return 0;
    return o->flags & CLI_OPEN_MAX ? x < o->max : x <= o->max;
}

static void range_text(const cli_option *o, char *out, size_t size)
{
    const char *low = o->flags & CLI_OPEN_MIN ? ">" : ">=";
    if (o->max >= 1e300)
        snprintf(out, size, "%s %g", low, o->min);
    else
        snprintf(out, size, "%s %g and %s %g", low, o->min,
                 o->flags & CLI_OPEN_MAX ? "<" : "<=", o->max);
}

int cli_set(const char *command, cli_option *o, const char *value)
{
    char range[64];
    char *end = NULL;
    switch (o->type) {
    case CLI_INT:
    case CLI_INT64: {
        errno = 0;
        long long x = strtoll(value, &end, 10);
        if (!value[0] || *end || errno == ERANGE)
            return cli_usage(command, "--%s: '%s' is not an integer", o->name, value);
        if (!number_in_range(o, (double)x)) {
            range_text(o, range, sizeof range);
            return cli_usage(command, "--%s: %s is out of range (must be %s)", o->name, value,
                             range);
        }
        if (o->type == CLI_INT)
            *(int *)o->dest = (int)x;
        else
            *(int64_t *)o->dest = (int64_t)x;
        return CLI_OK;
    }
    case CLI_DOUBLE: {
        errno = 0;
        double x = strtod(value, &end);
        if (!value[0] || *end || !isfinite(x))
            return cli_usage(command, "--%s: '%s' is not a finite number", o->name, value);
        if (!number_in_range(o, x)) {
            range_text(o, range, sizeof range);
            return cli_usage(command, "--%s: %s is out of range (must be %s)", o->name, value,
                             range);
        }
        *(double *)o->dest = x;
        return CLI_OK;
    }
    case CLI_STRING:
        if (!value[0])
            return cli_usage(command, "--%s: the value is empty", o->name);
        *(const char **)o->dest = value;
        return CLI_OK;
    case CLI_CHOICE:
        for (const char *const *c = o->choices; *c; c++) {
            if (strcmp(*c, value) == 0) {
                *(const char **)o->dest = *c;
                return CLI_OK;
            }
        }
        {
            char list[256] = "";
            size_t used = 0;
            for (const char *const *c = o->choices; *c && used < sizeof list; c++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                                         c == o->choices ? "" : ", ", *c);
            return cli_usage(command, "--%s: unknown value '%s' (choose one of: %s)", o->name,
                             value, list);
        }
    case CLI_FLAG:
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
            *(int *)o->dest = 1;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
            *(int *)o->dest = 0;
        else
            return cli_usage(command, "--%s takes no value (got '%s')", o->name, value);
        return CLI_OK;
    }
    return CLI_USAGE;
}

void cli_format(const cli_option *o, char *out, size_t size)
{
    switch (o->type) {
    case CLI_INT: snprintf(out, size, "%d", *(const int *)o->dest); break;
    case CLI_INT64: snprintf(out, size, "%" PRId64, *(const int64_t *)o->dest); break;
    case CLI_DOUBLE: {
        /* the shortest form that reads back as the same double */
        const double x = *(const double *)o->dest;
        for (int digits = 15; digits <= 17; digits++) {
            snprintf(out, size, "%.*g", digits, x);
            if (strtod(out, NULL) == x)
                break;
        }
        break;
    }
    case CLI_STRING:
    case CLI_CHOICE: {
        const char *s = *(const char *const *)o->dest;
        snprintf(out, size, "%s", s ? s : "");
        break;
    }
    case CLI_FLAG: snprintf(out, size, "%s", *(const int *)o->dest ? "true" : "false"); break;
    }
}

void cli_help(FILE *out, const char *command, const cli_option *options, const char *usage,
              const char *summary)
{
    fprintf(out, "Usage: recur %s %s\n\n%s\n\nOptions:\n", command, usage, summary);
    for (const cli_option *o = options; o->name; o++) {
        char left[64], value[128];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        if (o->default_text)
            snprintf(value, sizeof value, "%s", o->default_text);
        else if (o->type == CLI_DOUBLE)
            snprintf(value, sizeof value, "%g", *(const double *)o->dest);
        else
            cli_format(o, value, sizeof value);
        fprintf(out, "  %-26s %s", left, o->help);
        if (o->type != CLI_FLAG || o->default_text)
            fprintf(out, " (default: %s)", value[0] ? value : "none");
        fputc('\n', out);
    }
    fprintf(out, "  %-26s %s\n", "--help", "show this help and exit");
}

int cli_parse(const char *command, cli_option *options, int argc, char **argv,
              const char *usage, const char *summary)
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            cli_help(stdout, command, options, usage, summary);
            return CLI_HELP_SHOWN;
        }
        if (strncmp(arg, "--", 2) != 0 || !arg[2])
            return cli_usage(command, "unexpected argument '%s' (options start with --)", arg);
        const char *eq = strchr(arg + 2, '=');
        char name[64];
        size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (len >= sizeof name)
            return cli_usage(command, "unknown option '%s'", arg);
        memcpy(name, arg + 2, len);
        name[len] = '\0';
        cli_option *o = cli_find(options, name);
        if (!o)
            return cli_usage(command, "unknown option '--%s'", name);
        const char *value;
        if (o->type == CLI_FLAG) {
            value = eq ? eq + 1 : "true";
        } else if (eq) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return cli_usage(command, "--%s needs a value (%s)", name, o->metavar);
            value = argv[++i];
        }
        int status = cli_set(command, o, value);
        if (status)
            return status;
        o->given = 1;
    }
    return CLI_OK;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_duration(double s, char *out, size_t size)
{
    if (!isfinite(s) || s < 0)
        snprintf(out, size, "?");
    else if (s < 60)
        snprintf(out, size, "%.1fs", s);
    else if (s < 3600)
        snprintf(out, size, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(out, size, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

void cli_token_text(const recur_vocab *vocab, int32_t id, char *out, size_t size)
{
    uint32_t cp = recur_vocab_codepoint(vocab, id);
    if (cp >= 0x20 && cp < 0x7f)
        snprintf(out, size, "'%c'", (char)cp);
    else
        snprintf(out, size, "U+%04" PRIX32, cp);
}

/* Adds to *total the -log probability the mixture of K models gives each
 * target, from their [rows, V] scores (K = 1: the plain cross-entropy); mix
 * receives the mixture's log-probabilities. */
static int mixture_nll(const float *const *logits, int K, size_t rows, int V,
                       const int32_t *targets, float *mix, double *total)
{
    int status = recur_log_mixture(logits, K, rows, V, mix);
    for (size_t r = 0; !status && r < rows; r++)
        *total -= (double)mix[r * (size_t)V + (size_t)targets[r]];
    return status;
}

int cli_evaluate(recur_lm *const *lms, int K, const int32_t *tokens, size_t n, int B, int T,
                 double *loss, size_t *count)
{
    *loss = NAN;
    *count = 0;
    if (n < 2 || B < 1 || T < 1 || K < 1)
        return RECUR_E_INVALID; /* callers check; nothing to predict */
    if ((size_t)B > n / 2)
        B = (int)(n / 2);
    const size_t L = n / (size_t)B; /* tokens per stream */
    const int V = recur_lm_get_config(lms[0])->vocab_size;
    float **h = calloc((size_t)K, sizeof *h), **c = calloc((size_t)K, sizeof *c);
    const float **logits = calloc((size_t)K, sizeof *logits);
    int32_t *chunk = malloc((size_t)(T + 1) * (size_t)B * sizeof *chunk); /* [T+1, B] */
    /* K > 1: the mixture's log-probabilities of one chunk */
    float *mix = K > 1 ? malloc((size_t)T * (size_t)B * (size_t)V * sizeof *mix) : NULL;
    int status = h && c && logits && chunk && (K == 1 || mix) ? RECUR_OK : RECUR_E_NOMEM;
    for (int k = 0; !status && k < K; k++) {
        size_t state = recur_lm_state_size(lms[k], B);
        h[k] = calloc(state ? state : 1, sizeof **h);
        if (recur_lm_get_config(lms[k])->cell == RECUR_CELL_LSTM)
            c[k] = calloc(state ? state : 1, sizeof **c);
        if (!h[k] || (recur_lm_get_config(lms[k])->cell == RECUR_CELL_LSTM && !c[k]))
            status = RECUR_E_NOMEM;
    }
    double total = 0.0;
    size_t predictions = 0;
    for (size_t offset = 0; !status && offset + 1 < L; offset += (size_t)T) {
        size_t steps = L - 1 - offset < (size_t)T ? L - 1 - offset : (size_t)T;
        for (size_t t = 0; t <= steps; t++)
            for (int b = 0; b < B; b++)
                chunk[t * (size_t)B + (size_t)b] = tokens[(size_t)b * L + offset + t];
        const size_t rows = steps * (size_t)B;
        double chunk_loss = 0.0;
        if (K == 1) {
            status = recur_lm_evaluate(lms[0], chunk, (int)steps, B, h[0], c[0], &chunk_loss);
            total += chunk_loss * (double)rows;
        } else {
            for (int k = 0; !status && k < K; k++)
                status = recur_lm_evaluate_logits(lms[k], chunk, (int)steps, B, h[k], c[k],
                                                  &chunk_loss, &logits[k]);
            if (!status)
                status = mixture_nll(logits, K, rows, V, chunk + B, mix, &total);
        }
        predictions += rows;
    }
    for (int k = 0; k < K && h && c; k++)
        free(h[k]), free(c[k]);
    free(h), free(c), free(logits), free(chunk), free(mix);
    if (status)
        return status;
    *loss = total / (double)predictions;
    *count = predictions;
    return RECUR_OK;
}

const char *const cli_precision_choices[] = {"f32", "bf16", NULL};

recur_precision cli_precision(const char *name)
{
    return name && strcmp(name, "bf16") == 0 ? RECUR_PRECISION_BF16 : RECUR_PRECISION_F32;
}

int cli_evaluate_stream(recur_lm *const *lms, int K, const int32_t *tokens, size_t n,
                        recur_precision precision, double *loss, size_t *count)
{
    *loss = NAN;
    *count = 0;
    if (n < 2 || K < 1)
        return RECUR_E_INVALID; /* callers check; nothing to predict */
    const int V = recur_lm_get_config(lms[0])->vocab_size;
    recur_lm_sampler **s = calloc((size_t)K, sizeof *s);
    float **logits = calloc((size_t)K, sizeof *logits);
    float *mix = malloc((size_t)V * sizeof *mix);
    int status = s && logits && mix ? RECUR_OK : RECUR_E_NOMEM;
    for (int k = 0; !status && k < K; k++) {
        logits[k] = malloc((size_t)V * sizeof **logits);
        status = logits[k] ? recur_lm_sampler_create_with(lms[k], 1, precision, &s[k])
                           : RECUR_E_NOMEM;
    }
    double total = 0.0;
    for (size_t i = 0; !status && i + 1 < n; i++) {
        for (int k = 0; !status && k < K; k++)
            status = recur_lm_sampler_step(s[k], &tokens[i], logits[k]);
        if (!status)
            status = mixture_nll((const float *const *)logits, K, 1, V, &tokens[i + 1], mix,
                                 &total);
    }
    for (int k = 0; k < K && s && logits; k++) {
        recur_lm_sampler_free(s[k]);
        free(logits[k]);
    }
    free(s), free(logits), free(mix);
    if (status)
        return status;
    *loss = total / (double)(n - 1);
    *count = n - 1;
    return RECUR_OK;
}

/* Splits "A,B,..." and loads each checkpoint; all must share one vocabulary. */
int cli_load_lms(const char *cmd, const char *spec, cli_lms *out)
{
    memset(out, 0, sizeof *out);
    char *list = strdup(spec);
    if (!list)
        return cli_fail(cmd, "", "out of memory");
    int rc = CLI_OK, n = 1;
    for (const char *p = spec; *p; p++)
        n += *p == ',';
    out->lm = calloc((size_t)n, sizeof *out->lm);
    if (!out->lm) {
        free(list);
        return cli_fail(cmd, "", "out of memory");
    }
    char *save = NULL;
    int k = 0;
    for (char *path = list; rc == CLI_OK && k < n; path = NULL, k++) {
        char *p = strtok_r(path, ",", &save);
        recur_vocab *vocab = NULL;
        if (!p || !*p) {
            rc = cli_usage(cmd, "--model: an empty path in '%s'", spec);
        } else if (recur_checkpoint_load(p, &out->lm[out->count], &vocab, NULL)) {
            rc = cli_fail(cmd, "Check the path; checkpoints are the .safetensors files that "
                          "'recur train' writes into its --out folder (a file written by "
                          "PyTorch needs the \"recur\" metadata: docs/checkpoints.md).",
                          "cannot load the model %s: %s", p, recur_last_error());
        } else {
            out->count++;
            if (!out->vocab) {
                out->vocab = vocab;
            } else if (!recur_vocab_equal(out->vocab, vocab)) {
                rc = cli_fail(cmd, "The models of an ensemble must be trained on the same "
                              "text (the same characters in the same order).",
                              "%s: its vocabulary (%d tokens) differs from that of the first "
                              "model (%d tokens)", p, (int)recur_vocab_size(vocab),
                              (int)recur_vocab_size(out->vocab));
                recur_vocab_free(vocab);
            } else {
                recur_vocab_free(vocab);
            }
        }
    }
    if (rc == CLI_OK && k < n)
        rc = cli_usage(cmd, "--model: an empty path in '%s'", spec);
    free(list);
    if (rc != CLI_OK)
        cli_free_lms(out);
    return rc;
}

void cli_free_lms(cli_lms *lms)
{
    for (int k = 0; lms->lm && k < lms->count; k++)
        recur_lm_free(lms->lm[k]);
    free(lms->lm);
    recur_vocab_free(lms->vocab);
    memset(lms, 0, sizeof *lms);
}
