/* forecast.c - `recur forecast`: forecasting a column of a CSV file.
 *   recur forecast train    fits a forecaster (checkpoints, --resume)
 *   recur forecast eval     fits it on the training part and scores it on the
 *                           test part against the naive, seasonal-naive and
 *                           drift baselines (one table; --json)
 *   recur forecast predict  forecasts past the end (forecast_predict.c)
 * The training loop is the shared trainer (trainer.h); this file supplies the
 * data walk, validation, the checkpoint and the table.
 *
 * The series is split by time: the last --test-fraction is the test part
 * (eval: 0.2; train: 0), and of the rest (the training part) the last
 * --val-fraction is held out for validation (early stopping, keeping
 * best.safetensors) and for the conformal calibration of the interval.
 * Scaling statistics come from the training part only; the weights are
 * fitted on the steps before the validation tail. Missing values of the
 * training part are interpolated linearly; after it, the last observation
 * is carried forward (interpolation would read the future).
 *
 * MPI (docs/mpi.md): with N ranks and --batch B, the walk is laid out for
 * N*B streams, exactly as one process with --batch N*B lays it out, and
 * rank r walks streams r*B .. (r+1)*B-1 (recur_forecast_walk_create_shard);
 * checkpoints hold the carried state of all N*B streams. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dist.h"
#include "forecast_cli.h"
#include "recur/forecast.h"
#include "trainer.h"

#define BIG 1e300
#define FROZEN (CLI_SAVED | CLI_FROZEN)
#define CAPACITY 96

typedef struct fc_opts {
    const char *data, *target, *time, *covariates, *plot;
    int lookback, horizon, period, json;
    const char *cell, *loss, *mode;
    int hidden, layers, batch, no_level;
    double dropout, interval, interval_adapt, val_fraction, test_fraction;
    int64_t origins;
} fc_opts;

static const char *const cell_choices[] = {"gru", "lstm", "rnn_tanh", "rnn_relu", NULL};
static const char *const loss_choices[] = {"quantile", "gaussian", NULL};
static const char *const mode_choices[] = {"direct", "autoregressive", NULL};

/* ---- small helpers ----------------------------------------------------------------- */

int forecast_split_names(const char *cmd, const char *option, const char *list, char ***names,
                         int *count)
{
    *names = NULL;
    *count = 0;
    if (!list || !list[0])
        return CLI_OK;
    int n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    char **out = calloc((size_t)n, sizeof *out);
    if (!out)
        return cli_fail(cmd, "", "out of memory");
    const char *p = list;
    for (int i = 0; i < n; i++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0) {
            forecast_free_names(out, i);
            return cli_usage(cmd, "--%s: an empty name in '%s'", option, list);
        }
        out[i] = malloc(len + 1);
        if (!out[i]) {
            forecast_free_names(out, i);
            return cli_fail(cmd, "", "out of memory");
        }
        memcpy(out[i], p, len);
        out[i][len] = '\0';
        p = end ? end + 1 : p + len;
    }
    *names = out;
    *count = n;
    return CLI_OK;
}

void forecast_free_names(char **names, int count)
{
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

void forecast_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void json_number(FILE *out, double x)
{
    if (isfinite(x))
        fprintf(out, "%.6g", x);
    else
        fputs("null", out);
}

static int file_exists(const char *path)
{
    struct stat info;
    return stat(path, &info) == 0;
}

/* "runs/forecast-<file name without extension>" */
static void default_out(const char *prefix, const char *data, char *out, size_t size)
{
    const char *base = data ? strrchr(data, '/') : NULL;
    base = base ? base + 1 : data ? data : "";
    size_t len = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        len = (size_t)(dot - base);
    snprintf(out, size, "runs/%s-%.*s", prefix, (int)(len ? len : 3), len ? base : "run");
}

/* ---- options ----------------------------------------------------------------------- */

static void defaults(fc_opts *o, trainer_options *to, int eval)
{
    *o = (fc_opts){.data = NULL, .target = NULL, .time = NULL, .covariates = NULL,
                   .plot = NULL, .lookback = 0, .horizon = 0, .period = 0, .json = 0,
                   .cell = "gru", .loss = "quantile", .mode = "direct", .hidden = 64,
                   .layers = 1, .batch = 0, .no_level = 0, .dropout = 0, .interval = 0.8,
                   .interval_adapt = 1.0,
                   .val_fraction = 0.2, .test_fraction = eval ? 0.2 : 0.0, .origins = 40};
    trainer_options_default(to);
    to->steps = 1500;
    to->lr = 2e-3;
    to->weight_decay = 1e-2;
    to->clip = 1.0;
    to->val_every = 50;
    to->save_every = 0;
    to->log_every = 100;
    to->threads = 1;
    to->overwrite = eval;
}

/* The data options every subcommand takes. */
static int data_options(cli_option *t, fc_opts *o, unsigned flags)
{
    const cli_option entries[] = {
        {"data", CLI_STRING, &o->data, "FILE", "CSV file with a header row", 0, 0, NULL,
         "required", flags, 0},
        {"target", CLI_STRING, &o->target, "COL", "column to forecast; FIRST:LAST reads the "
         "columns FIRST..LAST of each row as consecutive steps (wide files)", 0, 0, NULL,
         "required", flags, 0},
        {"time", CLI_STRING, &o->time, "COL", "time column (ISO dates, YYYYMMDD, Mon-D-YYYY, "
         "plain or decimal years)", 0, 0, NULL, "none: steps 0, 1, ...", flags, 0},
        {"covariates", CLI_STRING, &o->covariates, "COL,COL", "further columns fed to the "
         "model as past inputs", 0, 0, NULL, "none", flags, 0},
        {"json", CLI_FLAG, &o->json, NULL, "print the result (eval: the table; train: a "
         "summary) as JSON", 0, 0, NULL, NULL, 0, 0},
        {"plot", CLI_STRING, &o->plot, "FILE.svg", "draw the history, the forecast and its "
         "interval", 0, 0, NULL, "none", 0, 0},
    };
    const int n = (int)(sizeof entries / sizeof entries[0]);
    memcpy(t, entries, sizeof entries);
    return n;
}

/* The model and split options of train and eval. */
static int model_options(cli_option *t, fc_opts *o, int eval)
{
    const cli_option entries[] = {
        {"horizon", CLI_INT, &o->horizon, "N", "steps to forecast", 0, 100000, NULL,
         "0: the period", FROZEN, 0},
        {"period", CLI_INT, &o->period, "N", "seasonal period (1: none)", 0, 100000, NULL,
         "0: detected from the autocorrelation", FROZEN, 0},
        {"lookback", CLI_INT, &o->lookback, "N", "steps of backpropagation through time per "
         "chunk (the state carries older history)", 0, 100000, NULL,
         "0: max(48, 2 x max(period, horizon)), at most half the fitted steps", FROZEN, 0},
        {"cell", CLI_CHOICE, &o->cell, "CELL", "gru, lstm, rnn_tanh or rnn_relu", 0, 0,
         cell_choices, NULL, FROZEN, 0},
        {"hidden", CLI_INT, &o->hidden, "N", "hidden units per layer", 1, 65536, NULL, NULL,
         FROZEN, 0},
        {"layers", CLI_INT, &o->layers, "N", "recurrent layers", 1, 64, NULL, NULL, FROZEN, 0},
        {"dropout", CLI_DOUBLE, &o->dropout, "P", "dropout between recurrent layers", 0, 0.99,
         NULL, NULL, FROZEN, 0},
        {"loss", CLI_CHOICE, &o->loss, "KIND", "quantile (pinball loss of the median and the "
         "interval's bounds) or gaussian (likelihood)", 0, 0, loss_choices, NULL, FROZEN, 0},
        {"mode", CLI_CHOICE, &o->mode, "MODE", "direct (all steps at once) or autoregressive "
         "(one step fed back)", 0, 0, mode_choices, NULL, FROZEN, 0},
        {"interval", CLI_DOUBLE, &o->interval, "P", "coverage of the prediction interval", 0.01,
         0.99, NULL, NULL, FROZEN, 0},
        {"interval-adapt", CLI_DOUBLE, &o->interval_adapt, "ETA", "rate of the online "
         "tracking of the interval's coverage after the calibration data (0: off)", 0, 10, NULL,
         NULL, FROZEN, 0},
        {"no-level", CLI_FLAG, &o->no_level, NULL, "do not feed the standardised level as an "
         "input (differences only)", 0, 0, NULL, NULL, FROZEN, 0},
        {"batch", CLI_INT, &o->batch, "B", "parallel streams over the fitted steps", 0, 4096,
         NULL, "0: fitted steps / (4 x lookback), 1..32", FROZEN, 0},
        {"val-fraction", CLI_DOUBLE, &o->val_fraction, "F", "tail of the training part held "
         "out for early stopping and calibrating the interval", 0, 0.9, NULL, NULL, FROZEN, 0},
        {"test-fraction", CLI_DOUBLE, &o->test_fraction, "F", eval ? "tail of the series "
         "kept for testing" : "tail of the series left out (e.g. to test later)", 0,
         eval ? 0.9 : 0.9, NULL, NULL, FROZEN | (eval ? CLI_OPEN_MIN : 0u), 0},
    };
    const int n = (int)(sizeof entries / sizeof entries[0]);
    memcpy(t, entries, sizeof entries);
    return n;
}

/* ---- the run ------------------------------------------------------------------------- */

typedef struct fc_run {
    const char *cmd;
    fc_opts *o;
    trainer_options *to;
    trainer *t;
    recur_series *series;
    char **cov_names;
    int C;
    size_t n, n_train, n_fit;
    double *filled;          /* [n] target: interpolated in the training part, then carried */
    double *cov_filled;      /* [n, C] likewise */
    unsigned char *observed; /* [n] */
    int period, horizon, lookback, batch;
    char period_note[96];
    recur_forecaster *fc;
    recur_forecast_walk *walk;
    recur_train_state *resumed;
    float *resumed_h, *resumed_c; /* [L, N*B, H] */
    size_t resumed_state;
    float *h_all, *c_all;         /* MPI: [L, N*B, H] every rank's walk state, gathered to save */
    uint64_t data_hash;
    double seconds;
    char model_path[4400]; /* the checkpoint the trained model was read from */
} fc_run;

static void run_free(fc_run *r)
{
    trainer_free(r->t);
    recur_forecast_walk_free(r->walk);
    recur_forecaster_free(r->fc);
    recur_series_free(r->series);
    forecast_free_names(r->cov_names, r->C);
    recur_train_state_free(r->resumed);
    free(r->filled);
    free(r->cov_filled);
    free(r->observed);
    free(r->resumed_h);
    free(r->resumed_c);
    free(r->h_all);
    free(r->c_all);
}

static uint64_t data_hash(const fc_run *r)
{
    uint64_t h = 14695981039346656037ull;
    const unsigned char *p = (const unsigned char *)r->filled;
    for (size_t b = 0; b < r->n_train * sizeof *r->filled; b++)
        h = (h ^ p[b]) * 1099511628211ull;
    p = (const unsigned char *)r->cov_filled;
    for (size_t b = 0; p && b < r->n_train * (size_t)r->C * sizeof *r->cov_filled; b++)
        h = (h ^ p[b]) * 1099511628211ull;
    for (size_t i = 0; i < r->n_train; i++)
        h = (h ^ r->observed[i]) * 1099511628211ull;
    return h;
}

/* Reads the series and fills the run's data arrays (the training part only
 * decides the scaling, the period and the filling). */
static int load_data(fc_run *r)
{
    const fc_opts *o = r->o;
    const char *cmd = r->cmd;
    int rc = forecast_split_names(cmd, "covariates", o->covariates, &r->cov_names, &r->C);
    if (rc)
        return rc;
    recur_series_spec spec = {o->target, o->time, (const char *const *)r->cov_names, r->C};
    if (recur_series_read_csv(o->data, &spec, &r->series))
        return cli_fail(cmd, "Check --data, --target, --time and --covariates against the "
                        "file's header.", "%s", recur_last_error());
    const size_t n = recur_series_length(r->series);
    const double *y = recur_series_values(r->series);
    const double *cov = recur_series_covariates(r->series);
    r->n = n;
    size_t n_test = (size_t)llround(o->test_fraction * (double)n);
    if (o->test_fraction > 0 && n_test == 0)
        n_test = 1;
    r->n_train = n - n_test;
    r->n_fit = r->n_train - (size_t)llround(o->val_fraction * (double)r->n_train);
    r->filled = malloc(n * sizeof *r->filled);
    r->cov_filled = r->C ? malloc(n * (size_t)r->C * sizeof *r->cov_filled) : NULL;
    r->observed = malloc(n);
    if (!r->filled || !r->observed || (r->C && !r->cov_filled))
        return cli_fail(cmd, "", "out of memory");
    for (size_t i = 0; i < n; i++)
        r->observed[i] = !isnan(y[i]);
    if (r->n_train < 2 || recur_fill_missing(y, n, 1, r->n_train, r->filled))
        return cli_fail(cmd, "Lower --test-fraction, or use a longer series.",
                        "%s: column '%s' has %zu steps (lines %zu-%zu): the training part "
                        "(%zu steps) is too short", o->data, o->target, n,
                        recur_series_line(r->series, 0), recur_series_line(r->series, n - 1),
                        r->n_train);
    for (int c = 0; c < r->C; c++)
        if (recur_fill_missing(cov + c, n, (size_t)r->C, r->n_train, r->cov_filled + c))
            return cli_fail(cmd, "", "%s: covariate '%s' has no value in the training part "
                            "(lines %zu-%zu)", o->data, r->cov_names[c],
                            recur_series_line(r->series, 0),
                            recur_series_line(r->series, r->n_train - 1));
    /* period, horizon, lookback, batch */
    const int calendar = recur_series_calendar_period(r->series);
    if (o->period > 0) {
        r->period = o->period;
        snprintf(r->period_note, sizeof r->period_note, "given");
    } else {
        recur_detect_period(r->filled, r->n_train, calendar, &r->period);
        if (calendar > 0)
            snprintf(r->period_note, sizeof r->period_note, "detected; the calendar suggests %d",
                     calendar);
        else
            snprintf(r->period_note, sizeof r->period_note, "detected");
    }
    r->horizon = o->horizon > 0 ? o->horizon : r->period;
    const int longest = r->period > r->horizon ? r->period : r->horizon;
    const size_t need = 2 * (size_t)longest + 8;
    if (r->n_fit < need || r->n_train <= (size_t)r->period)
        return cli_fail(cmd, "Use a longer series, a smaller --horizon or --period, or lower "
                        "--test-fraction / --val-fraction.",
                        "%s: column '%s' has %zu steps (lines %zu-%zu): too short; with period "
                        "%d and horizon %d the fitted part needs at least %zu steps, it has %zu",
                        o->data, o->target, n, recur_series_line(r->series, 0),
                        recur_series_line(r->series, n - 1), r->period, r->horizon, need,
                        r->n_fit);
    if (o->test_fraction > 0 && n - r->n_train < (size_t)r->horizon)
        return cli_fail(cmd, "Raise --test-fraction or lower --horizon.", "the test part (%zu "
                        "steps) is shorter than the horizon (%d)", n - r->n_train, r->horizon);
    if (o->lookback > 0) {
        r->lookback = o->lookback;
    } else {
        r->lookback = 2 * longest > 48 ? 2 * longest : 48;
        if ((size_t)r->lookback > r->n_fit / 2)
            r->lookback = (int)(r->n_fit / 2);
    }
    if ((size_t)r->lookback >= r->n_fit)
        return cli_fail(cmd, "Lower --lookback.", "--lookback %d needs more than %zu fitted "
                        "steps", r->lookback, r->n_fit);
    /* MPI: --batch streams on each rank; the automatic one shares its streams out */
    const size_t ranks = (size_t)dist_size();
    if (o->batch > 0) {
        r->batch = o->batch;
    } else {
        size_t b = r->n_fit / (4 * (size_t)r->lookback) / ranks;
        r->batch = b < 1 ? 1 : b > 32 ? 32 : (int)b;
    }
    if (r->n_fit / ((size_t)r->batch * ranks) < (size_t)r->lookback + 1)
        return cli_fail(cmd, "Lower --batch or --lookback.", "%zu fitted steps are too few for "
                        "%zu streams of %d steps", r->n_fit, (size_t)r->batch * ranks,
                        r->lookback);
    return CLI_OK;
}

static int new_model(fc_run *r)
{
    const fc_opts *o = r->o;
    recur_forecast_config c = recur_forecast_config_default();
    recur_cell_parse(o->cell, &c.cell);
    recur_forecast_loss_parse(o->loss, &c.loss);
    recur_forecast_mode_parse(o->mode, &c.mode);
    c.hidden_size = o->hidden;
    c.num_layers = o->layers;
    c.dropout = (float)o->dropout;
    c.horizon = r->horizon;
    c.period = r->period;
    c.covariate_count = r->C;
    c.level_input = !o->no_level;
    c.interval = o->interval;
    c.interval_adapt = o->interval_adapt;
    recur_forecast_scaling s;
    if (recur_forecaster_create(&c, &r->fc) ||
        recur_forecast_scaling_fit(r->filled, r->cov_filled, r->C, r->n_train, r->period, &s) ||
        recur_forecaster_set_scaling(r->fc, &s))
        return cli_fail(r->cmd, "", "cannot create the model: %s", recur_last_error());
    recur_forecaster_init(r->fc, trainer_rng(r->t));
    return CLI_OK;
}

/* The model of a resumed run must be the one these options describe. */
static int check_resumed_model(fc_run *r)
{
    const recur_forecast_config *c = recur_forecaster_get_config(r->fc);
    if (c->horizon != r->horizon || c->period != r->period || c->covariate_count != r->C)
        return cli_fail(r->cmd, "Resume with the same --data and options.", "the checkpoint "
                        "forecasts %d steps with period %d and %d covariates; the data and "
                        "options give %d, %d and %d", c->horizon, c->period, c->covariate_count,
                        r->horizon, r->period, r->C);
    return CLI_OK;
}

/* ---- trainer callbacks ---------------------------------------------------------------- */

/* trainer_task.step: the gradient of the next chunk's mean loss (MPI: of
 * this rank's streams, weighed by their share of the chunk's targets so
 * that the trainer's average over the ranks is the whole chunk's mean). */
static int task_step(void *ctx, recur_rng *rng, double *loss, double *items)
{
    fc_run *r = ctx;
    recur_forecaster_zero_grad(r->fc);
    const size_t all = recur_forecast_walk_chunk_targets(r->walk);
    size_t targets = 0;
    int status = recur_forecast_walk_step(r->walk, rng, loss, &targets);
    *items = (double)r->lookback * (double)r->batch;
    if (status == RECUR_OK)
        dist_weigh_share(recur_forecaster_grads(r->fc), recur_forecaster_size(r->fc), loss,
                         targets, all);
    return status;
}

static double task_epoch(void *ctx)
{
    fc_run *r = ctx;
    int64_t epoch, chunk;
    recur_forecast_walk_get_pos(r->walk, &epoch, &chunk);
    return (double)epoch +
           (double)chunk / (double)recur_forecast_walk_chunks_per_epoch(r->walk);
}

static int task_validate(void *ctx, double *loss, double *metric)
{
    fc_run *r = ctx;
    return recur_forecaster_evaluate(r->fc, r->filled, r->cov_filled, r->observed, r->n_train,
                                     r->n_fit, loss, metric, NULL);
}

static void task_skipped(void *ctx)
{
    fc_run *r = ctx;
    const size_t size = recur_forecast_walk_state_size(r->walk);
    memset(recur_forecast_walk_state_h(r->walk), 0, size * sizeof(float));
    if (recur_forecast_walk_state_c(r->walk))
        memset(recur_forecast_walk_state_c(r->walk), 0, size * sizeof(float));
}

static recur_forecast_info run_info(const fc_run *r)
{
    recur_forecast_info info = {r->o->target, r->o->time, (const char *const *)r->cov_names,
                                r->lookback, r->n_train, r->n_fit};
    return info;
}

static int task_save(void *ctx, const char *path, recur_train_state *ts)
{
    fc_run *r = ctx;
    int status = RECUR_OK;
    if (r->n_fit < r->n_train)
        status = recur_forecaster_calibrate(r->fc, r->filled, r->cov_filled, r->observed,
                                            r->n_train, r->n_fit);
    if (status)
        return status;
    int64_t epoch, chunk;
    recur_forecast_walk_get_pos(r->walk, &epoch, &chunk);
    ts->data_tokens = r->n_train;
    ts->data_hash = r->data_hash;
    ts->data_position_count = 2;
    ts->data_position[0] = epoch;
    ts->data_position[1] = chunk;
    const recur_forecast_config *c = recur_forecaster_get_config(r->fc);
    /* MPI: the state of all N*B streams, gathered by task_gather */
    const int64_t shape[3] = {c->num_layers, (int64_t)r->batch * dist_size(), c->hidden_size};
    const float *h = dist_active() ? r->h_all : recur_forecast_walk_state_h(r->walk);
    const float *cs = dist_active() ? r->c_all : recur_forecast_walk_state_c(r->walk);
    recur_forecast_info info = run_info(r);
    recur_st_writer *w = NULL;
    status = recur_st_writer_create(&w);
    if (!status)
        status = recur_forecaster_write(r->fc, &info, w);
    if (!status)
        status = recur_st_writer_add(w, "walk.h", RECUR_DTYPE_F32, 3, shape, h);
    if (!status && recur_forecast_walk_state_c(r->walk))
        status = recur_st_writer_add(w, "walk.c", RECUR_DTYPE_F32, 3, shape, cs);
    if (!status)
        status = recur_train_state_write(w, ts, recur_forecaster_size(r->fc));
    if (!status)
        status = recur_st_writer_save(w, path);
    recur_st_writer_free(w);
    return status;
}

/* MPI: trainer_task.gather_state: rank r's [L, B, H] streams are streams
 * r*B .. (r+1)*B-1 of the saved [L, N*B, H] state. */
static int task_gather(void *ctx)
{
    fc_run *r = ctx;
    const size_t L = (size_t)recur_forecaster_get_config(r->fc)->num_layers;
    const size_t per_layer = recur_forecast_walk_state_size(r->walk) / L;
    if (dist_gather_layers(recur_forecast_walk_state_h(r->walk), L, per_layer, r->h_all))
        return DIST_LOST;
    return r->c_all && dist_gather_layers(recur_forecast_walk_state_c(r->walk), L, per_layer,
                                          r->c_all)
               ? DIST_LOST
               : 0;
}

/* Reads the run's latest checkpoint: the model, the training state and the
 * walk's carried state. */
static int load_resumed(fc_run *r, const char *path)
{
    const char *hint = "--resume continues the run whose folder is --out; start a new run "
                       "without --resume.";
    recur_st *st = NULL;
    if (recur_st_open(path, &st) || recur_forecaster_read(st, path, &r->fc, NULL) ||
        recur_train_state_read(st, path, recur_forecaster_size(r->fc), &r->resumed)) {
        recur_st_free(st);
        return cli_fail(r->cmd, hint, "cannot resume: %s", recur_last_error());
    }
    if (!r->resumed) {
        recur_st_free(st);
        return cli_fail(r->cmd, hint, "cannot resume: %s has no training state", path);
    }
    const int lstm = recur_forecaster_get_config(r->fc)->cell == RECUR_CELL_LSTM;
    for (int k = 0; k < 1 + lstm; k++) {
        const char *name = k ? "walk.c" : "walk.h";
        const recur_st_tensor *t = recur_st_find(st, name);
        float *buf = t ? malloc((t->numel ? t->numel : 1) * sizeof *buf) : NULL;
        if (!t || !buf || recur_st_read_f32(st, name, buf, t->numel) ||
            (k && t->numel != r->resumed_state)) {
            free(buf);
            recur_st_free(st);
            return cli_fail(r->cmd, hint, "cannot resume: %s lacks a valid %s tensor (the "
                            "training walk's state)", path, name);
        }
        if (k)
            r->resumed_c = buf;
        else
            r->resumed_h = buf;
        r->resumed_state = t->numel;
    }
    recur_st_free(st);
    return CLI_OK;
}

/* The lines that open a training run (stderr). */
static void print_run_summary(const fc_run *r)
{
    const char *cmd = r->cmd;
    const fc_opts *o = r->o;
    const trainer_options *to = r->to;
    const recur_forecast_config *c = recur_forecaster_get_config(r->fc);
    char first[64], last[64];
    const double *times = recur_series_times(r->series);
    recur_series_format_time(r->series, times ? times[0] : 0, first, sizeof first);
    recur_series_format_time(r->series, times ? times[r->n - 1] : (double)(r->n - 1), last,
                             sizeof last);
    fprintf(stderr, "recur %s: data %s, target %s: %zu steps (%s .. %s), %zu missing; "
            "training %zu (fit %zu + validation %zu), test %zu\n", cmd, o->data, o->target,
            r->n, first, last, recur_series_missing(r->series), r->n_train, r->n_fit,
            r->n_train - r->n_fit, r->n - r->n_train);
    fprintf(stderr, "recur %s: %s model %s, %d layer%s of %d, %s loss, %s; period %d (%s), "
            "horizon %d, lookback %d, batch %d%s; %zu parameters; %s lr %g, weight decay %g, "
            "clip %g\n", cmd, r->resumed ? "resuming" : "new", recur_cell_name(c->cell),
            c->num_layers, c->num_layers == 1 ? "" : "s", c->hidden_size,
            recur_forecast_loss_name(c->loss), recur_forecast_mode_name(c->mode), r->period,
            r->period_note, r->horizon, r->lookback, r->batch,
            dist_active() ? " on each rank" : "", recur_forecaster_size(r->fc), to->optimizer,
            to->lr, trainer_optim_config(r->t)->weight_decay, to->clip);
}

/* Trains in the run folder (fresh or resumed) and leaves the trained model
 * in r->fc. */
static int run_training(fc_run *r, cli_option *options, int argc, char **argv,
                        const char *prefix)
{
    const char *cmd = r->cmd;
    fc_opts *o = r->o;
    trainer_options *to = r->to;
    int rc = trainer_create(cmd, options, to, argc, argv, &r->t);
    if (rc)
        return rc;
    char out_dir[4096];
    default_out(prefix, o->data, out_dir, sizeof out_dir);
    if ((rc = trainer_open_run(r->t, out_dir)))
        return rc;
    const char *latest = trainer_latest_path(r->t);
    if (to->resume) {
        if ((rc = load_resumed(r, latest)))
            return rc;
        if ((rc = trainer_resume(r->t, r->resumed)))
            return rc;
    }
    if ((rc = trainer_prepare(r->t)))
        return rc;
    if (!o->data || !o->target)
        return cli_usage(cmd, "--data FILE and --target COL are required");
    if ((rc = load_data(r)))
        return rc;
    r->data_hash = data_hash(r);
    if (r->resumed) {
        if ((rc = check_resumed_model(r)))
            return rc;
        if (r->resumed->data_tokens != r->n_train || r->resumed->data_hash != r->data_hash)
            return cli_fail(cmd, "Resume with the same --data (or start a new run).", "the "
                            "training part differs from the run's (%zu steps, checkpoint: %"
                            PRIu64 ")", r->n_train, r->resumed->data_tokens);
    } else if ((rc = new_model(r))) {
        return rc;
    }
    /* MPI: rank r walks streams r*B .. (r+1)*B-1 of the N*B streams */
    const int ranks = dist_size();
    if (recur_forecast_walk_create_shard(r->fc, r->filled, r->cov_filled, r->observed, r->n_fit,
                                         r->lookback, r->batch * ranks, r->batch * dist_rank(),
                                         r->batch, (uint64_t)to->seed, &r->walk))
        return cli_fail(cmd, "", "%s", recur_last_error());
    const size_t size = recur_forecast_walk_state_size(r->walk);
    const size_t L = (size_t)recur_forecaster_get_config(r->fc)->num_layers;
    const int lstm = recur_forecast_walk_state_c(r->walk) != NULL;
    if (dist_active()) {
        r->h_all = calloc(size * (size_t)ranks, sizeof *r->h_all);
        r->c_all = lstm ? calloc(size * (size_t)ranks, sizeof *r->c_all) : NULL;
        if (!r->h_all || (lstm && !r->c_all))
            return cli_fail(cmd, "", "out of memory");
    }
    if (r->resumed) {
        const recur_train_state *ts = r->resumed;
        if (ts->data_position_count != 2 || r->resumed_state != size * (size_t)ranks ||
            recur_forecast_walk_set_pos(r->walk, ts->data_position[0], ts->data_position[1]))
            return cli_fail(cmd, "", "cannot resume: %s has a walk position or state that does "
                            "not fit these options", latest);
        /* MPI: this rank resumes its own streams */
        dist_slice_layers(r->resumed_h, L, size / L, recur_forecast_walk_state_h(r->walk));
        if (lstm)
            dist_slice_layers(r->resumed_c, L, size / L, recur_forecast_walk_state_c(r->walk));
    }
    trainer_task task = {
        .ctx = r,
        .params = recur_forecaster_params(r->fc),
        .grads = recur_forecaster_grads(r->fc),
        .n_params = recur_forecaster_size(r->fc),
        .steps_per_epoch = recur_forecast_walk_chunks_per_epoch(r->walk),
        .step = task_step,
        .epoch = task_epoch,
        .validate = r->n_fit < r->n_train ? task_validate : NULL,
        .save = task_save,
        .skipped = task_skipped,
        .unit = "pts",
        .unit_csv = "steps",
        .metric_name = "mase",
        .next_hint = strcmp(prefix, "forecast") == 0
                         ? "Forecast with: recur forecast predict --model %s --data FILE"
                         : NULL,
        .shards_data = 1,
        .gather_state = task_gather,
    };
    if ((rc = trainer_start(r->t, &task)))
        return rc;
    if (dist_is_main())
        print_run_summary(r);
    const double t0 = cli_now();
    rc = trainer_run(r->t);
    r->seconds = cli_now() - t0;
    if (rc || !dist_is_main())
        return rc; /* MPI: rank 0 alone reads back and reports */
    /* the model to use: the best by validation, else the last */
    const char *path = file_exists(trainer_best_path(r->t)) && r->n_fit < r->n_train
                           ? trainer_best_path(r->t)
                           : latest;
    snprintf(r->model_path, sizeof r->model_path, "%s", path);
    recur_forecaster *trained = NULL;
    if (recur_forecaster_load(path, &trained, NULL))
        return cli_fail(cmd, "", "cannot read back %s: %s", path, recur_last_error());
    recur_forecaster_free(r->fc);
    r->fc = trained;
    return CLI_OK;
}

/* ---- eval ------------------------------------------------------------------------------ */

static void print_table(const fc_run *r, const recur_forecast_evaluation *ev, const char *path)
{
    const fc_opts *o = r->o;
    const recur_forecast_config *c = recur_forecaster_get_config(r->fc);
    char model[64], a[64], b[64];
    snprintf(model, sizeof model, "recur (%s %d)", recur_cell_name(c->cell), c->hidden_size);
    const char *names[RECUR_EVAL_ROWS] = {model, "naive", "seasonal naive", "drift"};
    const double *times = recur_series_times(r->series);
    recur_series_format_time(r->series, times ? times[ev->first_origin] : (double)ev->first_origin,
                             a, sizeof a);
    recur_series_format_time(r->series, times ? times[ev->last_origin] : (double)ev->last_origin,
                             b, sizeof b);
    if (o->json) {
        printf("{\"data\": ");
        forecast_json_string(stdout, o->data);
        printf(", \"target\": ");
        forecast_json_string(stdout, o->target);
        printf(", \"steps\": %zu, \"train_steps\": %zu, \"fit_steps\": %zu, \"test_steps\": %zu, "
               "\"period\": %d, \"horizon\": %d, \"lookback\": %d, \"origins\": %zu, "
               "\"first_origin\": ", r->n, r->n_train, r->n_fit, r->n - r->n_train, r->period,
               r->horizon, r->lookback, ev->origins);
        forecast_json_string(stdout, a);
        printf(", \"last_origin\": ");
        forecast_json_string(stdout, b);
        printf(", \"mase_scale\": ");
        json_number(stdout, ev->mase_scale);
        printf(", \"interval\": ");
        json_number(stdout, c->interval);
        printf(", \"train_seconds\": ");
        json_number(stdout, r->seconds);
        printf(", \"checkpoint\": ");
        forecast_json_string(stdout, path);
        printf(", \"rows\": [");
        for (int i = 0; i < RECUR_EVAL_ROWS; i++) {
            const recur_forecast_metrics *m = &ev->rows[i];
            printf("%s{\"method\": ", i ? ", " : "");
            forecast_json_string(stdout, i == RECUR_EVAL_MODEL ? "recur" : names[i]);
            printf(", \"count\": %zu, \"mae\": ", m->count);
            json_number(stdout, m->mae);
            printf(", \"rmse\": ");
            json_number(stdout, m->rmse);
            printf(", \"smape\": ");
            json_number(stdout, m->smape);
            printf(", \"mase\": ");
            json_number(stdout, m->mase);
            printf(", \"coverage\": ");
            json_number(stdout, m->coverage);
            printf("}");
        }
        printf("]}\n");
        return;
    }
    printf("%s, %s: %zu steps; test %zu steps; %zu origins (%s .. %s), horizon %d, period %d\n",
           o->data, o->target, r->n, r->n - r->n_train, ev->origins, a, b, r->horizon,
           r->period);
    printf("MASE scale (in-sample seasonal-naive MAE of the training part): %.6g\n\n",
           ev->mase_scale);
    printf("%-18s %12s %12s %8s %8s %10s\n", "method", "MAE", "RMSE", "sMAPE", "MASE", "coverage");
    for (int i = 0; i < RECUR_EVAL_ROWS; i++) {
        const recur_forecast_metrics *m = &ev->rows[i];
        char cover[32] = "-";
        if (!isnan(m->coverage))
            snprintf(cover, sizeof cover, "%.1f%%", 100.0 * m->coverage);
        printf("%-18s %12.6g %12.6g %8.3f %8.3f %10s\n", names[i], m->mae, m->rmse, m->smape,
               m->mase, cover);
    }
    printf("\n(coverage: share of actual values inside the model's %g%% interval)\n",
           100.0 * c->interval);
}

static int one_step_plot(const fc_run *r)
{
    const size_t n = r->n, count = n - r->n_train;
    double *buf = malloc(3 * count * sizeof *buf);
    recur_forecast_stream *s = NULL;
    int rc = CLI_OK;
    if (!buf || recur_forecast_stream_create(r->fc, &s)) {
        free(buf);
        return cli_fail(r->cmd, "", "cannot draw the plot: out of memory");
    }
    double f[3] = {NAN, NAN, NAN};
    for (size_t t = 0; t + 1 < n && !rc; t++) {
        if (recur_forecast_stream_push(s, r->filled[t], r->C ? r->cov_filled + t * (size_t)r->C
                                                             : NULL))
            rc = cli_fail(r->cmd, "", "cannot draw the plot: %s", recur_last_error());
        if (rc || t + 1 < r->n_train)
            continue;
        if (recur_forecast_stream_forecast(s, &f[0], &f[1], &f[2]))
            rc = cli_fail(r->cmd, "", "cannot draw the plot: %s", recur_last_error());
        const size_t i = t + 1 - r->n_train;
        buf[i] = f[0], buf[count + i] = f[1], buf[2 * count + i] = f[2];
    }
    forecast_band band = {r->n_train, (int)count, buf, buf + count, buf + 2 * count};
    const size_t shown = 4 * count;
    char title[512];
    snprintf(title, sizeof title, "%s: %s - one-step forecasts of the test part", r->o->data,
             r->o->target);
    if (!rc)
        rc = forecast_plot(r->cmd, r->o->plot, title, r->series, recur_series_values(r->series),
                           n > shown ? n - shown : 0, r->n_train, n, &band, 1,
                           recur_forecaster_get_config(r->fc)->interval);
    recur_forecast_stream_free(s);
    free(buf);
    return rc;
}

/* train --json: what was trained, where it is. */
static void print_train_summary(const fc_run *r)
{
    printf("{\"data\": ");
    forecast_json_string(stdout, r->o->data);
    printf(", \"target\": ");
    forecast_json_string(stdout, r->o->target);
    printf(", \"checkpoint\": ");
    forecast_json_string(stdout, r->model_path);
    printf(", \"steps\": %zu, \"train_steps\": %zu, \"fit_steps\": %zu, \"period\": %d, "
           "\"horizon\": %d, \"lookback\": %d, \"parameters\": %zu, \"train_seconds\": ",
           r->n, r->n_train, r->n_fit, r->period, r->horizon, r->lookback,
           recur_forecaster_size(r->fc));
    json_number(stdout, r->seconds);
    printf("}\n");
}

/* Plot of an evaluation: forecasts from origins h steps apart tile the test
 * part; with a horizon of 1 the one-step forecasts of every origin make one
 * band. */
static int eval_plot(const fc_run *r)
{
    const size_t n = r->n, h = (size_t)r->horizon;
    const size_t count = (n - r->n_train) / h;
    if (h == 1)
        return one_step_plot(r);
    double *buf = malloc((count ? count : 1) * h * 3 * sizeof *buf);
    forecast_band *bands = calloc(count ? count : 1, sizeof *bands);
    recur_forecast_stream *s = NULL;
    int rc = CLI_OK;
    if (!buf || !bands || recur_forecast_stream_create(r->fc, &s)) {
        rc = cli_fail(r->cmd, "", "cannot draw the plot: out of memory");
        goto done;
    }
    size_t fed = 0;
    for (size_t i = 0; i < count; i++) {
        const size_t origin = r->n_train - 1 + i * h;
        for (; fed <= origin; fed++)
            if (recur_forecast_stream_push(s, r->filled[fed],
                                           r->C ? r->cov_filled + fed * (size_t)r->C : NULL))
                break;
        double *m = buf + i * h * 3;
        if (recur_forecast_stream_forecast(s, m, m + h, m + 2 * h)) {
            rc = cli_fail(r->cmd, "", "cannot draw the plot: %s", recur_last_error());
            goto done;
        }
        bands[i] = (forecast_band){origin + 1, r->horizon, m, m + h, m + 2 * h};
    }
    const size_t shown = 4 * (n - r->n_train);
    const size_t from = n > shown ? n - shown : 0;
    char title[512];
    snprintf(title, sizeof title, "%s: %s - test forecasts every %d steps", r->o->data,
             r->o->target, r->horizon);
    rc = forecast_plot(r->cmd, r->o->plot, title, r->series, recur_series_values(r->series),
                       from, r->n_train, n, bands, (int)count,
                       recur_forecaster_get_config(r->fc)->interval);
done:
    recur_forecast_stream_free(s);
    free(buf);
    free(bands);
    return rc;
}

/* A forecast past the end of the (whole) series, for train's plot. */
static int future_plot(const fc_run *r)
{
    const int h = r->horizon;
    double *buf = malloc((size_t)h * 3 * sizeof *buf);
    double *y = malloc(r->n * sizeof *y);
    double *cov = r->C ? malloc(r->n * (size_t)r->C * sizeof *cov) : NULL;
    recur_forecast_stream *s = NULL;
    int rc = CLI_OK;
    const double *raw = recur_series_values(r->series);
    const double *raw_cov = recur_series_covariates(r->series);
    if (!buf || !y || (r->C && !cov) || recur_forecast_stream_create(r->fc, &s)) {
        rc = cli_fail(r->cmd, "", "cannot draw the plot: out of memory");
        goto done;
    }
    /* the whole series is history here: interpolate all of it */
    recur_fill_missing(raw, r->n, 1, r->n, y);
    for (int c = 0; c < r->C; c++)
        recur_fill_missing(raw_cov + c, r->n, (size_t)r->C, r->n, cov + c);
    for (size_t i = 0; i < r->n; i++)
        if (recur_forecast_stream_push(s, y[i], r->C ? cov + i * (size_t)r->C : NULL))
            break;
    if (recur_forecast_stream_forecast(s, buf, buf + h, buf + 2 * h)) {
        rc = cli_fail(r->cmd, "", "cannot draw the plot: %s", recur_last_error());
        goto done;
    }
    forecast_band band = {r->n, h, buf, buf + h, buf + 2 * h};
    const size_t shown = 8 * (size_t)h > 200 ? 8 * (size_t)h : 200;
    char title[512];
    snprintf(title, sizeof title, "%s: %s - forecast of the next %d steps", r->o->data,
             r->o->target, h);
    rc = forecast_plot(r->cmd, r->o->plot, title, r->series, raw,
                       r->n > shown ? r->n - shown : 0, r->n, r->n, &band, 1,
                       recur_forecaster_get_config(r->fc)->interval);
done:
    recur_forecast_stream_free(s);
    free(buf);
    free(y);
    free(cov);
    return rc;
}

static const char usage_text[] = "--data FILE --target COL [options]";

static int cmd_train_or_eval(int argc, char **argv, int eval)
{
    const char *cmd = eval ? "forecast eval" : "forecast train";
    fc_opts o;
    trainer_options to;
    defaults(&o, &to, eval);
    cli_option options[CAPACITY];
    int n = data_options(options, &o, FROZEN);
    n += model_options(options + n, &o, eval);
    if (eval)
        options[n++] = (cli_option){"origins", CLI_INT64, &o.origins, "N", "forecast origins, "
                                    "evenly spaced over the test part (0: every step)", 0, 1e9,
                                    NULL, NULL, 0, 0};
    int added = trainer_add_options(options + n, CAPACITY - 1 - n, &to);
    if (added < 0)
        return cli_fail(cmd, "", "internal error: the option table is too small");
    n += added;
    options[n] = (cli_option)CLI_END;
    cli_find(options, "steps")->default_text = NULL;
    cli_find(options, "weight-decay")->default_text = "0.01: pulls the corrections towards "
                                                      "seasonal naive";
    cli_find(options, "threads")->default_text = NULL;
    cli_find(options, "out")->default_text = eval ? "runs/forecast-eval-<data file name>"
                                                  : "runs/forecast-<data file name>";
    int rc = cli_parse(cmd, options, argc, argv, usage_text,
                       eval ? "Trains a forecaster on the training part of a series and scores "
                              "it on the test part (the last\n--test-fraction) at rolling "
                              "origins, beside the naive, seasonal-naive and drift\nbaselines: "
                              "MAE, RMSE, sMAPE, MASE and the interval's coverage."
                            : "Trains a forecaster of the next --horizon steps of a column, with "
                              "an interval, on a CSV\nseries; checkpoints go to --out "
                              "(best.safetensors by validation, latest.safetensors).");
    if (rc == CLI_HELP_SHOWN)
        return CLI_OK;
    if (rc)
        return rc;
    if (!to.resume && (!o.data || !o.target))
        return cli_usage(cmd, "--data FILE and --target COL are required");
    fc_run r;
    memset(&r, 0, sizeof r);
    r.cmd = cmd;
    r.o = &o;
    r.to = &to;
    rc = run_training(&r, options, argc, argv, eval ? "forecast-eval" : "forecast");
    /* MPI: rank 0 alone evaluates, prints and plots */
    if (!rc && eval && dist_is_main()) {
        recur_forecast_evaluation ev;
        if (recur_forecast_evaluate(r.fc, recur_series_values(r.series),
                                    recur_series_covariates(r.series), r.n, r.n_train, r.period,
                                    r.horizon, (size_t)o.origins, &ev, NULL))
            rc = cli_fail(cmd, "", "evaluation failed: %s", recur_last_error());
        else
            print_table(&r, &ev, r.model_path);
        if (!rc && o.plot)
            rc = eval_plot(&r);
    } else if (!rc && dist_is_main()) {
        if (o.json)
            print_train_summary(&r);
        if (o.plot)
            rc = future_plot(&r);
    }
    run_free(&r);
    return rc;
}

int cmd_forecast(int argc, char **argv)
{
    static const char help[] =
        "Usage: recur forecast <command> [options]\n"
        "\n"
        "Forecasting a column of a CSV file with a recurrent network (docs/forecast.md).\n"
        "\n"
        "Commands:\n"
        "  train    train a forecaster (checkpoints in --out, --resume)\n"
        "  predict  forecast the next steps after the data, with an interval (CSV)\n"
        "  eval     train on the training part, then score the test part beside the naive,\n"
        "           seasonal-naive and drift baselines (MAE, RMSE, sMAPE, MASE, coverage)\n"
        "\n"
        "'recur forecast <command> --help' lists the options with their defaults.\n"
        "Example:\n"
        "  recur forecast eval --data nile.csv --target volume --time year\n";
    if (argc < 1) {
        fputs(help, stderr);
        return CLI_USAGE;
    }
    const char *sub = argv[0];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        fputs(help, stdout);
        return CLI_OK;
    }
    if (strcmp(sub, "train") == 0)
        return cmd_train_or_eval(argc - 1, argv + 1, 0);
    if (strcmp(sub, "eval") == 0)
        return cmd_train_or_eval(argc - 1, argv + 1, 1);
    if (strcmp(sub, "predict") == 0)
        return cmd_forecast_predict(argc - 1, argv + 1);
    fprintf(stderr, "recur forecast: unknown command '%s' (train, predict, eval)\n"
                    "Try 'recur forecast --help'.\n", sub);
    return CLI_USAGE;
}
