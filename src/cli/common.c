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

int cli_evaluate(recur_lm *lm, const int32_t *tokens, size_t n, int B, int T, double *loss,
                 size_t *count)
{
    *loss = NAN;
    *count = 0;
    if (n < 2 || B < 1 || T < 1)
        return RECUR_E_INVALID; /* callers check; nothing to predict */
    if ((size_t)B > n / 2)
        B = (int)(n / 2);
    const size_t L = n / (size_t)B; /* tokens per stream */
    const recur_lm_config *cfg = recur_lm_get_config(lm);
    size_t state = recur_lm_state_size(lm, B);
    float *h = calloc(state ? state : 1, sizeof *h);
    float *c = cfg->cell == RECUR_CELL_LSTM ? calloc(state ? state : 1, sizeof *c) : NULL;
    int32_t *chunk = malloc((size_t)(T + 1) * (size_t)B * sizeof *chunk); /* [T+1, B] */
    int status = RECUR_OK;
    if (!h || !chunk || (cfg->cell == RECUR_CELL_LSTM && !c)) {
        free(h), free(c), free(chunk);
        return RECUR_E_NOMEM;
    }
    double total = 0.0;
    size_t predictions = 0;
    for (size_t offset = 0; offset + 1 < L; offset += (size_t)T) {
        size_t steps = L - 1 - offset < (size_t)T ? L - 1 - offset : (size_t)T;
        for (size_t t = 0; t <= steps; t++)
            for (int b = 0; b < B; b++)
                chunk[t * (size_t)B + (size_t)b] = tokens[(size_t)b * L + offset + t];
        double chunk_loss = 0.0;
        status = recur_lm_evaluate(lm, chunk, (int)steps, B, h, c, &chunk_loss);
        if (status)
            break;
        total += chunk_loss * (double)(steps * (size_t)B);
        predictions += steps * (size_t)B;
    }
    free(h), free(c), free(chunk);
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

int cli_evaluate_stream(recur_lm *lm, const int32_t *tokens, size_t n, recur_precision precision,
                        double *loss, size_t *count)
{
    *loss = NAN;
    *count = 0;
    if (n < 2)
        return RECUR_E_INVALID; /* callers check; nothing to predict */
    const int V = recur_lm_get_config(lm)->vocab_size;
    float *logits = malloc((size_t)V * sizeof *logits);
    recur_lm_sampler *s = NULL;
    int status = logits ? recur_lm_sampler_create_with(lm, 1, precision, &s) : RECUR_E_NOMEM;
    double total = 0.0;
    for (size_t i = 0; !status && i + 1 < n; i++) {
        if ((status = recur_lm_sampler_step(s, &tokens[i], logits)))
            break;
        /* -log softmax(logits)[next], in double */
        double m = logits[0], z = 0.0;
        for (int v = 1; v < V; v++)
            m = logits[v] > m ? logits[v] : m;
        for (int v = 0; v < V; v++)
            z += exp((double)logits[v] - m);
        total += m + log(z) - (double)logits[tokens[i + 1]];
    }
    recur_lm_sampler_free(s);
    free(logits);
    if (status)
        return status;
    *loss = total / (double)(n - 1);
    *count = n - 1;
    return RECUR_OK;
}
