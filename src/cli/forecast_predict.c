/* forecast_predict.c - `recur forecast predict`: reads a series, feeds it
 * one observation at a time to a trained forecaster's stream and writes the
 * forecast of the next steps with its interval as CSV (or JSON). With
 * --follow it then reads new observations from standard input, one per
 * line, and prints the updated forecast after each: the history is never
 * read again (the stream keeps the recurrent state and the last period of
 * values). The whole file is history here, so its gaps are interpolated;
 * gaps among the followed values carry the last observation forward. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "forecast_cli.h"
#include "recur/forecast.h"

typedef struct predict_opts {
    const char *model, *data, *target, *time, *covariates, *output, *plot;
    int horizon, json, follow;
} predict_opts;

typedef struct predict_run {
    const char *cmd;
    predict_opts *o;
    recur_forecaster *fc;
    recur_forecast_loaded *loaded;
    recur_series *series;
    recur_forecast_stream *stream;
    char **cov_names;
    int C, horizon;
    double *median, *lo, *hi; /* [horizon] */
    FILE *out;
    const char *time_header;
    int interval_percent;
} predict_run;

static void write_header(predict_run *r)
{
    if (r->o->json)
        return;
    if (r->o->follow)
        fprintf(r->out, "origin,");
    fprintf(r->out, "%s,forecast,lower_%d,upper_%d\n", r->time_header, r->interval_percent,
            r->interval_percent);
}

/* The forecast after `extra` followed values (0: right after the file). */
static int write_forecast(predict_run *r, size_t extra, int first)
{
    if (recur_forecast_stream_forecast(r->stream, r->median, r->lo, r->hi))
        return cli_fail(r->cmd, "", "%s", recur_last_error());
    const size_t n = recur_series_length(r->series);
    char origin[64], when[64];
    const double *times = recur_series_times(r->series);
    const double origin_t = extra ? recur_series_time_after(r->series, (int)extra)
                                  : times ? times[n - 1] : (double)(n - 1);
    recur_series_format_time(r->series, origin_t, origin, sizeof origin);
    if (r->o->json) {
        fprintf(r->out, "%s{\"origin\": ", first ? "" : ",\n ");
        forecast_json_string(r->out, origin);
        fprintf(r->out, ", \"forecasts\": [");
    }
    for (int k = 1; k <= r->horizon; k++) {
        recur_series_format_time(r->series, recur_series_time_after(r->series, (int)extra + k),
                                 when, sizeof when);
        if (r->o->json) {
            fprintf(r->out, "%s{\"time\": ", k > 1 ? ", " : "");
            forecast_json_string(r->out, when);
            fprintf(r->out, ", \"forecast\": %.10g, \"lower\": %.10g, \"upper\": %.10g}",
                    r->median[k - 1], r->lo[k - 1], r->hi[k - 1]);
        } else {
            if (r->o->follow)
                fprintf(r->out, "%s,", origin);
            fprintf(r->out, "%s,%.10g,%.10g,%.10g\n", when, r->median[k - 1], r->lo[k - 1],
                    r->hi[k - 1]);
        }
    }
    if (r->o->json)
        fprintf(r->out, "]}");
    fflush(r->out);
    return CLI_OK;
}

/* One followed line: "value[,covariate,...]"; empty, NA or NaN is missing. */
static int follow_line(predict_run *r, char *line, size_t line_number, double *values)
{
    line[strcspn(line, "\r\n")] = '\0';
    int count = 0;
    for (char *p = line;; count++) {
        char *end = strchr(p, ',');
        if (end)
            *end = '\0';
        if (count > r->C)
            return cli_fail(r->cmd, "", "standard input, line %zu: more than %d value%s",
                            line_number, r->C + 1, r->C ? "s" : "");
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            p[--len] = '\0';
        char *stop = NULL;
        if (!*p || strcasecmp(p, "na") == 0 || strcasecmp(p, "nan") == 0)
            values[count] = NAN;
        else if (values[count] = strtod(p, &stop), *stop != '\0' || !isfinite(values[count]))
            return cli_fail(r->cmd, "", "standard input, line %zu, value %d: '%s' is not a "
                            "finite number", line_number, count + 1, p);
        if (!end)
            break;
        p = end + 1;
    }
    if (count != r->C)
        return cli_fail(r->cmd, "Give the value, then the covariates in the model's order, "
                        "separated by commas.", "standard input, line %zu: %d value%s, expected "
                        "%d", line_number, count + 1, count ? "s" : "", r->C + 1);
    return CLI_OK;
}

static int follow(predict_run *r)
{
    char line[8192];
    size_t line_number = 0, extra = 0;
    double values[RECUR_FORECAST_MAX_COVARIATES + 1];
    while (fgets(line, sizeof line, stdin)) {
        line_number++;
        if (line[strspn(line, " \t\r\n")] == '\0')
            continue;
        int rc = follow_line(r, line, line_number, values);
        if (rc)
            return rc;
        if (recur_forecast_stream_push(r->stream, values[0], r->C ? values + 1 : NULL))
            return cli_fail(r->cmd, "", "standard input, line %zu: %s", line_number,
                            recur_last_error());
        extra++;
        if ((rc = write_forecast(r, extra, 0)))
            return rc;
    }
    return CLI_OK;
}

static int predict_plot(predict_run *r, const double *history)
{
    const size_t n = recur_series_length(r->series);
    forecast_band band = {n, r->horizon, r->median, r->lo, r->hi};
    const size_t shown = 8 * (size_t)r->horizon > 200 ? 8 * (size_t)r->horizon : 200;
    char title[512];
    snprintf(title, sizeof title, "%s: %s - forecast of the next %d steps", r->o->data,
             recur_series_target_name(r->series), r->horizon);
    return forecast_plot(r->cmd, r->o->plot, title, r->series, history, n > shown ? n - shown : 0,
                         n, n, &band, 1, recur_forecaster_get_config(r->fc)->interval);
}

static int run_predict(predict_run *r)
{
    const predict_opts *o = r->o;
    const char *cmd = r->cmd;
    if (recur_forecaster_load(o->model, &r->fc, &r->loaded))
        return cli_fail(cmd, "--model takes a checkpoint of `recur forecast train` (or eval).",
                        "%s", recur_last_error());
    const recur_forecast_info *info = recur_forecast_loaded_info(r->loaded);
    const recur_forecast_config *c = recur_forecaster_get_config(r->fc);
    int rc = CLI_OK;
    if (o->covariates) {
        if ((rc = forecast_split_names(cmd, "covariates", o->covariates, &r->cov_names, &r->C)))
            return rc;
    } else if (c->covariate_count > 0) {
        r->cov_names = calloc((size_t)c->covariate_count, sizeof *r->cov_names);
        if (!r->cov_names)
            return cli_fail(cmd, "", "out of memory");
        for (int i = 0; i < c->covariate_count; i++) {
            r->cov_names[i] = strdup(info->covariates[i]);
            if (!r->cov_names[i])
                return cli_fail(cmd, "", "out of memory");
            r->C = i + 1;
        }
    }
    if (r->C != c->covariate_count)
        return cli_fail(cmd, "Name as many --covariates as the model was trained with.",
                        "the model takes %d covariate%s, --covariates names %d",
                        c->covariate_count, c->covariate_count == 1 ? "" : "s", r->C);
    recur_series_spec spec = {o->target ? o->target : info->target,
                              o->time ? o->time : info->time,
                              (const char *const *)r->cov_names, r->C};
    if (recur_series_read_csv(o->data, &spec, &r->series))
        return cli_fail(cmd, "Check --data, --target, --time and --covariates against the "
                        "file's header.", "%s", recur_last_error());
    r->horizon = o->horizon > 0 ? o->horizon : c->horizon;
    if (r->horizon > c->horizon)
        return cli_fail(cmd, "Train a model with a longer --horizon.", "--horizon %d: the model "
                        "forecasts at most %d steps", r->horizon, c->horizon);
    const size_t n = recur_series_length(r->series);
    if (n < (size_t)c->period)
        return cli_fail(cmd, "", "%s: %zu steps (lines %zu-%zu) are fewer than the model's "
                        "period %d", o->data, n, recur_series_line(r->series, 0),
                        recur_series_line(r->series, n - 1), c->period);
    double *y = malloc(n * sizeof *y);
    double *cov = r->C ? malloc(n * (size_t)r->C * sizeof *cov) : NULL;
    r->median = malloc((size_t)c->horizon * 3 * sizeof *r->median);
    if (!y || (r->C && !cov) || !r->median) {
        free(y), free(cov);
        return cli_fail(cmd, "", "out of memory");
    }
    r->lo = r->median + c->horizon;
    r->hi = r->median + 2 * c->horizon;
    recur_fill_missing(recur_series_values(r->series), n, 1, n, y);
    for (int k = 0; k < r->C; k++)
        if (recur_fill_missing(recur_series_covariates(r->series) + k, n, (size_t)r->C, n,
                               cov + k)) {
            free(y), free(cov);
            return cli_fail(cmd, "", "%s: covariate '%s' has no value", o->data, r->cov_names[k]);
        }
    if (recur_forecast_stream_create(r->fc, &r->stream)) {
        free(y), free(cov);
        return cli_fail(cmd, "", "%s", recur_last_error());
    }
    /* after the model's calibration data, missing values go in as missing:
     * the stream carries the last one forward without counting it as an
     * observation for its interval tracking */
    const size_t tracked = recur_forecaster_calibrated_steps(r->fc);
    const double *raw = recur_series_values(r->series);
    for (size_t i = 0; i < n && !rc; i++)
        if (recur_forecast_stream_push(r->stream, i < tracked ? y[i] : raw[i],
                                       r->C ? cov + i * (size_t)r->C : NULL))
            rc = cli_fail(cmd, "", "%s", recur_last_error());
    free(cov);
    if (rc) {
        free(y);
        return rc;
    }
    r->out = stdout;
    if (o->output && !(r->out = fopen(o->output, "w"))) {
        free(y);
        r->out = NULL;
        return cli_fail(cmd, "Choose another --output file.", "cannot write %s", o->output);
    }
    r->time_header = recur_series_time_name(r->series) ? recur_series_time_name(r->series)
                                                       : "step";
    r->interval_percent = (int)lround(100.0 * c->interval);
    write_header(r);
    if (o->json)
        fprintf(r->out, "{\"target\": ");
    if (o->json) {
        forecast_json_string(r->out, spec.target);
        fprintf(r->out, ", \"horizon\": %d, \"interval\": %g, \"origins\": [", r->horizon,
                c->interval);
    }
    rc = write_forecast(r, 0, 1);
    if (!rc && o->plot)
        rc = predict_plot(r, recur_series_values(r->series));
    free(y);
    if (!rc && o->follow)
        rc = follow(r);
    if (o->json)
        fprintf(r->out, "]}\n");
    if (r->out != stdout && fclose(r->out) != 0 && !rc)
        rc = cli_fail(cmd, "", "cannot write %s", o->output);
    r->out = NULL;
    return rc;
}

int cmd_forecast_predict(int argc, char **argv)
{
    const char *cmd = "forecast predict";
    predict_opts o = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0};
    cli_option options[] = {
        {"model", CLI_STRING, &o.model, "FILE", "checkpoint of `recur forecast train`", 0, 0,
         NULL, "required", 0, 0},
        {"data", CLI_STRING, &o.data, "FILE", "CSV file with the history (a header row)", 0, 0,
         NULL, "required", 0, 0},
        {"target", CLI_STRING, &o.target, "COL", "column to forecast", 0, 0, NULL,
         "the model's", 0, 0},
        {"time", CLI_STRING, &o.time, "COL", "time column", 0, 0, NULL, "the model's", 0, 0},
        {"covariates", CLI_STRING, &o.covariates, "COL,COL", "covariate columns", 0, 0, NULL,
         "the model's", 0, 0},
        {"horizon", CLI_INT, &o.horizon, "N", "steps to forecast (at most the model's)", 0,
         100000, NULL, "the model's (0: that)", 0, 0},
        {"output", CLI_STRING, &o.output, "FILE", "write the CSV (or JSON) there", 0, 0, NULL,
         "standard output", 0, 0},
        {"json", CLI_FLAG, &o.json, NULL, "JSON instead of CSV", 0, 0, NULL, NULL, 0, 0},
        {"plot", CLI_STRING, &o.plot, "FILE.svg", "draw the history, the forecast and its "
         "interval", 0, 0, NULL, "none", 0, 0},
        {"follow", CLI_FLAG, &o.follow, NULL, "then read new observations from standard input "
         "(one line each: value[,covariates]) and print the updated forecast after each", 0, 0,
         NULL, NULL, 0, 0},
        CLI_END};
    int rc = cli_parse(cmd, options, argc, argv, "--model FILE --data FILE [options]",
                       "Forecasts the steps after the end of --data with a trained forecaster: "
                       "a CSV of the time,\nthe forecast (median) and the interval's bounds.");
    if (rc == CLI_HELP_SHOWN)
        return CLI_OK;
    if (rc)
        return rc;
    if (!o.model || !o.data)
        return cli_usage(cmd, "--model FILE and --data FILE are required");
    predict_run r;
    memset(&r, 0, sizeof r);
    r.cmd = cmd;
    r.o = &o;
    rc = run_predict(&r);
    if (r.out && r.out != stdout)
        fclose(r.out);
    recur_forecast_stream_free(r.stream);
    recur_forecaster_free(r.fc);
    recur_forecast_loaded_free(r.loaded);
    recur_series_free(r.series);
    forecast_free_names(r.cov_names, r.C);
    free(r.median);
    return rc;
}
