/* test_forecast.c - the forecasting library (include/recur/forecast.h):
 * CSV series (every time format, missing values, wide files, each
 * malformed input named by line and column), filling gaps without reading
 * past a split, scaling learned on the training part only, the period from
 * the autocorrelation, metrics and baselines against hand-computed values,
 * rolling origins, the training walk's windows and boundaries (exact
 * resume; shards of it as column blocks of the whole walk), the stream against a whole-sequence forward pass, checkpoint
 * round trips and corrupt checkpoints, the online interval tracking, and a
 * short training on a synthetic seasonal series that beats seasonal naive. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "recur.h"

#define CSV(text) text, strlen(text)
#define PI 3.14159265358979323846

static recur_series *parse(const char *text, const char *target, const char *time,
                           const char *const *cov, int C)
{
    recur_series_spec spec = {target, time, cov, C};
    recur_series *s = NULL;
    CHECK_OK(recur_series_parse_csv(CSV(text), "t.csv", &spec, &s));
    return s;
}

/* Expects a parse error of `status` whose message holds both needles. */
static void parse_fails(const char *text, const char *target, const char *time,
                        const char *const *cov, int C, int status, const char *needle,
                        const char *needle2)
{
    recur_series_spec spec = {target, time, cov, C};
    recur_series *s = (recur_series *)1;
    CHECK_STATUS(recur_series_parse_csv(CSV(text), "t.csv", &spec, &s), status);
    CHECK(s == NULL);
    CHECK_ERROR_MENTIONS("t.csv");
    if (needle)
        CHECK_ERROR_MENTIONS(needle);
    if (needle2)
        CHECK_ERROR_MENTIONS(needle2);
}

/* ---- reading ------------------------------------------------------------------------ */

static void test_csv_basic(void)
{
    const char *cov[] = {"temp"};
    recur_series *s = parse("\xEF\xBB\xBF\"date\",value,\"temp\"\r\n"
                            "2001-01-01,1.5,10\r\n"
                            "\r\n"
                            "2001-01-02,NA,11\r\n"
                            "2001-01-03, 3.5 ,\r\n"
                            "2001-01-04,4,13\r\n",
                            "value", "date", cov, 1);
    if (!s)
        return;
    CHECK(recur_series_length(s) == 4);
    const double *y = recur_series_values(s);
    CHECK_NEAR(y[0], 1.5, 0);
    CHECK(isnan(y[1]));
    CHECK_NEAR(y[2], 3.5, 0);
    CHECK(recur_series_missing(s) == 1);
    CHECK(recur_series_covariate_count(s) == 1);
    CHECK(isnan(recur_series_covariates(s)[2]));
    CHECK_NEAR(recur_series_covariates(s)[3], 13, 0);
    CHECK(recur_series_line(s, 0) == 2 && recur_series_line(s, 1) == 4);
    CHECK(recur_series_time_kind(s) == RECUR_TIME_ISO);
    CHECK_NEAR(recur_series_times(s)[0], 11323, 0); /* days from 1970-01-01 to 2001-01-01 */
    CHECK(recur_series_calendar_period(s) == 7);
    char text[64];
    recur_series_format_time(s, recur_series_time_after(s, 1), text, sizeof text);
    CHECK_MSG(strcmp(text, "2001-01-05") == 0, "next day %s", text);
    CHECK(strcmp(recur_series_target_name(s), "value") == 0);
    CHECK(strcmp(recur_series_covariate_name(s, 0), "temp") == 0);
    recur_series_free(s);
}

/* Every time format: the kind, the step and the period the calendar gives. */
static void test_time_formats(void)
{
    static const struct {
        const char *csv;
        recur_time_kind kind;
        int period;
        const char *next; /* formatted time of the step after the last */
    } cases[] = {
        {"t,v\n1995-01-31,1\n1995-02-28,2\n1995-03-31,3\n", RECUR_TIME_ISO, 12, "1995-04-30"},
        {"t,v\n1995-01-15,1\n1995-02-15,2\n1995-03-15,3\n", RECUR_TIME_ISO, 12, "1995-04-15"},
        {"t,v\n2000-01,1\n2000-04,2\n2000-07,3\n", RECUR_TIME_ISO_MONTH, 4, "2000-10"},
        {"t,v\n19580329,1\n19580405,2\n19580412,3\n", RECUR_TIME_YYYYMMDD, 52, "19580419"},
        {"t,v\nJan-1-1995,1\nFeb-1-1995,2\nMar-1-1995,3\n", RECUR_TIME_MON_D_YYYY, 12,
         "Apr-1-1995"},
        {"t,v\n1700,1\n1701,2\n1702,3\n", RECUR_TIME_NUMBER, 1, "1703"},
        {"t,v\n1959.00,1\n1959.25,2\n1959.50,3\n", RECUR_TIME_NUMBER, 4, "1959.75"},
        {"t,v\n2020-03-01T06:00,1\n2020-03-01T12:00,2\n2020-03-01T18:00,3\n", RECUR_TIME_ISO, 0,
         "2020-03-02"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        recur_series *s = parse(cases[i].csv, "v", "t", NULL, 0);
        if (!s)
            continue;
        CHECK_MSG(recur_series_time_kind(s) == cases[i].kind, "case %zu: kind %d", i,
                  (int)recur_series_time_kind(s));
        CHECK_MSG(recur_series_calendar_period(s) == cases[i].period, "case %zu: period %d", i,
                  recur_series_calendar_period(s));
        char text[64];
        recur_series_format_time(s, recur_series_time_after(s, 1), text, sizeof text);
        CHECK_MSG(strcmp(text, cases[i].next) == 0, "case %zu: next '%s', expected '%s'", i,
                  text, cases[i].next);
        recur_series_free(s);
    }
}

/* A wide file: one row a year, twelve monthly columns; a trailing partial
 * year is trimmed to its last observed value. */
static void test_wide(void)
{
    recur_series *s = parse("YEAR,JAN,FEB,MAR,APR,MAY,JUN,JUL,AUG,SEP,OCT,NOV,DEC\n"
                            "1950,1,2,3,4,5,6,7,8,9,10,11,12\n"
                            "1951,13,14,15,16,17,18,19,20,21,22,NA,24\n"
                            "1952,25,26,,,,,,,,,,\n",
                            "JAN:DEC", "YEAR", NULL, 0);
    if (!s)
        return;
    CHECK(recur_series_length(s) == 26);
    const double *y = recur_series_values(s);
    for (int i = 0; i < 26; i++)
        if (i != 22)
            CHECK_NEAR(y[i], i + 1, 0);
    CHECK(isnan(y[22]));
    CHECK(recur_series_line(s, 12) == 3);
    CHECK(recur_series_time_kind(s) == RECUR_TIME_ISO_MONTH);
    CHECK(recur_series_calendar_period(s) == 12);
    char text[64];
    recur_series_format_time(s, recur_series_times(s)[13], text, sizeof text);
    CHECK_MSG(strcmp(text, "1951-02") == 0, "%s", text);
    recur_series_format_time(s, recur_series_time_after(s, 1), text, sizeof text);
    CHECK_MSG(strcmp(text, "1952-03") == 0, "%s", text);
    recur_series_free(s);
}

/* Each malformed input is an error naming the file, the line and the column. */
static void test_malformed(void)
{
    const char *cov[] = {"nope"};
    const char *twice[] = {"v"};
    parse_fails("t,v\n1,2\n", "x", NULL, NULL, 0, RECUR_E_NOT_FOUND, "'x'", "t, v");
    parse_fails("t,v\n1,2\n", "v", "when", NULL, 0, RECUR_E_NOT_FOUND, "time column 'when'",
                NULL);
    parse_fails("t,v\n1,2\n", "v", NULL, cov, 1, RECUR_E_NOT_FOUND, "covariate column 'nope'",
                NULL);
    parse_fails("t,v\n1,2\n", "v", NULL, twice, 1, RECUR_E_INVALID, "given twice", NULL);
    parse_fails("t,v\n1,2\n2,3,4\n3,4\n", "v", NULL, NULL, 0, RECUR_E_FORMAT, "line 3",
                "3 fields, the header has 2");
    parse_fails("t,v\n1,2\n2\n", "v", NULL, NULL, 0, RECUR_E_FORMAT, "line 3", "1 field,");
    parse_fails("t,v\n1,2\n2,3\n3,abc\n", "v", NULL, NULL, 0, RECUR_E_FORMAT,
                "line 4, column 2 'v'", "'abc' is not a number");
    parse_fails("t,v\n1,2\n2,1e999\n", "v", NULL, NULL, 0, RECUR_E_FORMAT, "line 3",
                "not a finite number");
    parse_fails("t,v\n1,2\n2,0x10\n", "v", NULL, NULL, 0, RECUR_E_FORMAT, "line 3",
                "not a number");
    parse_fails("t,v\n2001-01-01,2\n2001-13-01,3\n", "v", "t", NULL, 0, RECUR_E_FORMAT,
                "line 3, column 1 't'", "is not a time");
    parse_fails("t,v\n2001-01-01,2\n20010102,3\n", "v", "t", NULL, 0, RECUR_E_FORMAT,
                "line 3, column 1 't'", "written differently");
    parse_fails("t,v\n2001,2\n2001,3\n", "v", "t", NULL, 0, RECUR_E_FORMAT, "line 3",
                "must increase");
    parse_fails("t,v\n1,2\n2,3\"x\"\n", "v", NULL, NULL, 0, RECUR_E_FORMAT, "line 3", NULL);
    parse_fails("t,v\n1,\"2\n", "v", NULL, NULL, 0, RECUR_E_FORMAT, "not closed", NULL);
    parse_fails("t,v\n1,NA\n2,7\n3,\n", "v", NULL, NULL, 0, RECUR_E_INVALID,
                "1 observed value", "lines 3-3");
    parse_fails("", "v", NULL, NULL, 0, RECUR_E_FORMAT, "no header", NULL);
    parse_fails("t,v\n", "v", NULL, NULL, 0, RECUR_E_INVALID, "no data rows", NULL);
    parse_fails("Y,A,B\n1,2,3\n", "B:A", NULL, NULL, 0, RECUR_E_INVALID, "runs backwards", NULL);
    parse_fails("Y,A,B\n1,2,3\n", "A:B", NULL, twice, 1, RECUR_E_UNSUPPORTED, "no covariates",
                NULL);
    recur_series *s = NULL;
    recur_series_spec spec = {"v", NULL, NULL, 0};
    CHECK_STATUS(recur_series_read_csv("/nonexistent/file.csv", &spec, &s), RECUR_E_NOT_FOUND);
    CHECK_ERROR_MENTIONS("/nonexistent/file.csv");
}

/* ---- filling, scaling, period --------------------------------------------------------- */

static void test_fill(void)
{
    const double x[8] = {NAN, 2, NAN, NAN, 8, NAN, 100, NAN};
    double out[8];
    /* split 6: step 5 sees only what comes before step 6 */
    CHECK_OK(recur_fill_missing(x, 8, 1, 6, out));
    const double want[8] = {2, 2, 4, 6, 8, 8, 100, 100};
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(out[i], want[i], 1e-12);
    /* strided columns, in place */
    double m[6] = {1, 10, NAN, NAN, 3, 30};
    CHECK_OK(recur_fill_missing(m, 3, 2, 3, m));
    CHECK_OK(recur_fill_missing(m + 1, 3, 2, 3, m + 1));
    CHECK_NEAR(m[2], 2, 1e-12);
    CHECK_NEAR(m[3], 20, 1e-12);
    const double none[3] = {NAN, NAN, 5};
    CHECK_STATUS(recur_fill_missing(none, 3, 1, 2, out), RECUR_E_INVALID);
}

/* Statistics come from the training part only: changing the rest changes nothing. */
static void test_scaling(void)
{
    double y[10] = {1, 2, 3, 4, NAN, 6, 1000, -1000, 5, 5};
    double cov[20];
    for (int i = 0; i < 10; i++)
        cov[2 * i] = i, cov[2 * i + 1] = 7;
    recur_forecast_scaling a, b;
    CHECK_OK(recur_forecast_scaling_fit(y, cov, 2, 6, 2, &a));
    /* mean of 1,2,3,4,6 = 3.2; population std; MASE scale over pairs 2 apart:
     * |3-1|, |4-2|, |6-4| (the pair with NaN is skipped) = 2 */
    CHECK_NEAR(a.mean, 3.2, 1e-12);
    CHECK_NEAR(a.std, sqrt((4.84 + 1.44 + 0.04 + 0.64 + 7.84) / 5), 1e-12);
    CHECK_NEAR(a.scale, 2.0, 1e-12);
    CHECK_NEAR(a.covariate_mean[0], 2.5, 1e-12);
    CHECK_NEAR(a.covariate_std[1], 1.0, 0); /* constant: std 1, not 0 */
    y[6] = -5, y[9] = 1e9, cov[14] = 1e9;
    CHECK_OK(recur_forecast_scaling_fit(y, cov, 2, 6, 2, &b));
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    CHECK_STATUS(recur_forecast_scaling_fit(y, NULL, 0, 1, 1, &b), RECUR_E_INVALID);
}

static void test_period(void)
{
    recur_rng rng;
    recur_rng_seed(&rng, 5);
    double y[600];
    for (int t = 0; t < 600; t++)
        y[t] = 0.02 * t + 3 * sin(2 * PI * t / 12.0) + 0.3 * recur_rng_normal(&rng);
    int period = 0;
    CHECK_OK(recur_detect_period(y, 600, 0, &period));
    CHECK_MSG(period == 12, "period %d", period);
    CHECK_OK(recur_detect_period(y, 600, 12, &period));
    CHECK(period == 12);
    for (int t = 0; t < 600; t++)
        y[t] = recur_rng_normal(&rng);
    CHECK_OK(recur_detect_period(y, 600, 0, &period));
    CHECK_MSG(period == 1, "white noise: period %d", period);
    CHECK_OK(recur_detect_period(y, 5, 0, &period));
    CHECK(period == 1);
}

/* ---- metrics, baselines, origins -------------------------------------------------------- */

static void test_metrics(void)
{
    recur_forecast_errors e;
    memset(&e, 0, sizeof e);
    recur_forecast_errors_add(&e, 10, 12, 9, 13);  /* err 2, inside */
    recur_forecast_errors_add(&e, 5, 4, 4.5, 6);   /* err 1, inside */
    recur_forecast_errors_add(&e, 0, 0, 1, 2);     /* err 0, outside; sMAPE term 0 */
    recur_forecast_errors_add(&e, -4, 2, NAN, NAN); /* err 6, no interval */
    recur_forecast_metrics m = recur_forecast_errors_summary(&e, 2.0);
    CHECK(m.count == 4);
    CHECK_NEAR(m.mae, 9.0 / 4, 1e-12);
    CHECK_NEAR(m.rmse, sqrt(41.0 / 4), 1e-12);
    CHECK_NEAR(m.smape, 100.0 / 4 * (4.0 / 22 + 2.0 / 9 + 0 + 12.0 / 6), 1e-9);
    CHECK_NEAR(m.mase, 9.0 / 8, 1e-12);
    CHECK_NEAR(m.coverage, 2.0 / 3, 1e-12);
    memset(&e, 0, sizeof e);
    m = recur_forecast_errors_summary(&e, 1.0);
    CHECK(m.count == 0 && isnan(m.mae) && isnan(m.coverage));

    const double y[7] = {1, 3, 2, 5, 4, NAN, 8};
    double scale = 0;
    CHECK_OK(recur_mase_scale(y, 7, 2, &scale));
    CHECK_NEAR(scale, (1 + 2 + 2 + 4) / 4.0, 1e-12); /* |2-1|, |5-3|, |4-2|, |8-4|; NaN skipped */
    CHECK_OK(recur_mase_scale(y, 5, 1, &scale));
    CHECK_NEAR(scale, (2 + 1 + 3 + 1) / 4.0, 1e-12);
    const double flat[4] = {2, 2, 2, 2};
    CHECK_STATUS(recur_mase_scale(flat, 4, 1, &scale), RECUR_E_INVALID);

    const double h[6] = {10, 11, 12, 13, 14, 16};
    double f[5];
    CHECK_OK(recur_baseline_forecast(RECUR_BASELINE_NAIVE, h, 6, 4, 3, f));
    CHECK(f[0] == 16 && f[2] == 16);
    CHECK_OK(recur_baseline_forecast(RECUR_BASELINE_SEASONAL_NAIVE, h, 6, 4, 5, f));
    /* step k repeats the value m*ceil(k/m) steps before it: 12, 13, 14, 16, 12 */
    CHECK(f[0] == 12 && f[1] == 13 && f[2] == 14 && f[3] == 16 && f[4] == 12);
    CHECK_OK(recur_baseline_forecast(RECUR_BASELINE_DRIFT, h, 6, 1, 2, f));
    CHECK_NEAR(f[0], 16 + 6.0 / 5, 1e-12);
    CHECK_NEAR(f[1], 16 + 12.0 / 5, 1e-12);
    CHECK_STATUS(recur_baseline_forecast(RECUR_BASELINE_SEASONAL_NAIVE, h, 3, 4, 1, f),
                 RECUR_E_INVALID);

    /* origins: from the last training step to the last with a full horizon */
    CHECK(recur_forecast_origin_count(100, 80, 5, 0) == 16);
    CHECK(recur_forecast_origin_at(100, 80, 5, 0, 0) == 79);
    CHECK(recur_forecast_origin_at(100, 80, 5, 0, 15) == 94);
    CHECK(recur_forecast_origin_count(100, 80, 5, 4) == 4);
    CHECK(recur_forecast_origin_at(100, 80, 5, 4, 1) == 84);
    CHECK(recur_forecast_origin_at(100, 80, 5, 4, 3) == 94);
    CHECK(recur_forecast_origin_count(100, 96, 5, 0) == 0);
}

/* ---- the model -------------------------------------------------------------------------- */

static recur_forecaster *make_model(int horizon, int period, int C, recur_cell cell,
                                    recur_forecast_loss loss, recur_forecast_mode mode,
                                    int hidden)
{
    recur_forecast_config c = recur_forecast_config_default();
    c.cell = cell;
    c.hidden_size = hidden;
    c.horizon = horizon;
    c.period = period;
    c.covariate_count = C;
    c.loss = loss;
    c.mode = mode;
    recur_forecaster *fc = NULL;
    CHECK_OK(recur_forecaster_create(&c, &fc));
    if (!fc)
        return NULL;
    recur_rng rng;
    recur_rng_seed(&rng, 11);
    recur_forecaster_init(fc, &rng);
    /* a non-zero head bias so that outputs differ per step and quantile */
    float *params = recur_forecaster_params(fc);
    for (int i = 0; i < recur_forecaster_tensor_count(fc); i++) {
        const recur_param_view *v = recur_forecaster_tensor_at(fc, i);
        if (strcmp(v->name, "head.bias") == 0)
            for (size_t j = 0; j < v->numel; j++)
                params[v->offset + j] = 0.1f * (float)((int)(j % 7) - 3);
    }
    return fc;
}

static void seasonal_series(double *y, size_t n, int period, unsigned seed, double noise)
{
    recur_rng rng;
    recur_rng_seed(&rng, seed);
    for (size_t t = 0; t < n; t++)
        y[t] = 20 + 0.05 * (double)t + 4 * sin(2 * PI * (double)t / period) +
               noise * recur_rng_normal(&rng);
}

static void test_config_and_features(void)
{
    recur_forecast_config c = recur_forecast_config_default();
    recur_forecaster *fc = NULL;
    c.horizon = 0;
    CHECK_STATUS(recur_forecaster_create(&c, &fc), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("horizon");
    c = recur_forecast_config_default();
    c.mode = RECUR_FORECAST_AUTOREGRESSIVE;
    c.covariate_count = 1;
    CHECK_STATUS(recur_forecaster_create(&c, &fc), RECUR_E_UNSUPPORTED);
    c = recur_forecast_config_default();
    c.interval = 1.0;
    CHECK_STATUS(recur_forecaster_create(&c, &fc), RECUR_E_INVALID);

    /* features: (y_t - y_{t-1})/s, (y_t - y_{t-m})/s, (y_t - mean)/std,
     * sin and cos of the phase, standardised covariates */
    fc = make_model(2, 4, 1, RECUR_CELL_GRU, RECUR_FORECAST_QUANTILE, RECUR_FORECAST_DIRECT, 8);
    if (!fc)
        return;
    CHECK(recur_forecaster_input_size(fc) == 6);
    CHECK(recur_forecaster_output_size(fc) == 6);
    recur_forecast_scaling s;
    memset(&s, 0, sizeof s);
    s.mean = 10, s.std = 2, s.scale = 4, s.covariate_count = 1;
    s.covariate_mean[0] = 1, s.covariate_std[0] = 0.5;
    CHECK_OK(recur_forecaster_set_scaling(fc, &s));
    const double y[6] = {10, 12, 9, 15, 11, 14};
    const double cov[6] = {1, 2, 3, 4, 5, 6};
    float x[2 * 6];
    CHECK_OK(recur_forecaster_features(fc, y, cov, 6, 4, 2, x));
    const float want[12] = {(11 - 15) / 4.f, (11 - 10) / 4.f, (11 - 10) / 2.f, 0, 1, 8,
                            (14 - 11) / 4.f, (14 - 12) / 4.f, (14 - 10) / 2.f, 1, 0, 10};
    for (int i = 0; i < 12; i++)
        CHECK_NEAR(x[i], want[i], 1e-6);
    CHECK_STATUS(recur_forecaster_features(fc, y, cov, 6, 5, 2, x), RECUR_E_INVALID);
    s.std = 0;
    CHECK_STATUS(recur_forecaster_set_scaling(fc, &s), RECUR_E_INVALID);
    recur_forecaster_free(fc);
}

/* The training walk reads nothing at or after its n steps, covers each
 * target of a window once, and resumes exactly from (position, state). */
static void test_walk(void)
{
    enum { N = 200, FIT = 150 };
    double y[N];
    seasonal_series(y, N, 12, 3, 0.2);
    for (int t = FIT; t < N; t++)
        y[t] = NAN; /* a walk over FIT steps must never see these */
    recur_forecaster *fc = make_model(3, 12, 0, RECUR_CELL_LSTM, RECUR_FORECAST_QUANTILE,
                                      RECUR_FORECAST_DIRECT, 8);
    if (!fc)
        return;
    recur_forecast_scaling s;
    CHECK_OK(recur_forecast_scaling_fit(y, NULL, 0, FIT, 12, &s));
    CHECK_OK(recur_forecaster_set_scaling(fc, &s));
    recur_forecast_walk *w = NULL, *w2 = NULL;
    CHECK_STATUS(recur_forecast_walk_create(fc, y, NULL, NULL, N, 10, 2, 1, &w), RECUR_E_INVALID);
    CHECK_OK(recur_forecast_walk_create(fc, y, NULL, NULL, FIT, 10, 2, 1, &w));
    CHECK_STATUS(recur_forecast_walk_create(fc, y, NULL, NULL, FIT, 100, 2, 1, &w2),
                 RECUR_E_INVALID);
    if (!w) {
        recur_forecaster_free(fc);
        return;
    }
    const int64_t cpe = recur_forecast_walk_chunks_per_epoch(w);
    CHECK_MSG(cpe == 7, "chunks per epoch %lld", (long long)cpe); /* 75 per stream: 7 x 10 */
    recur_rng rng;
    recur_rng_seed(&rng, 2);
    size_t total = 0;
    for (int64_t i = 0; i < 3 * cpe; i++) {
        double loss = NAN;
        size_t targets = 0;
        recur_forecaster_zero_grad(fc);
        CHECK_OK(recur_forecast_walk_step(w, &rng, &loss, &targets));
        CHECK(isfinite(loss));
        CHECK(targets <= 10 * 2 * 3);
        total += targets;
    }
    CHECK(total > 0);
    int64_t epoch, chunk;
    recur_forecast_walk_get_pos(w, &epoch, &chunk);
    CHECK(epoch == 3 && chunk == 0);
    /* a step, then the same step again from the saved position and state */
    for (int i = 0; i < 2; i++) {
        double loss;
        CHECK_OK(recur_forecast_walk_step(w, &rng, &loss, NULL));
    }
    const size_t state = recur_forecast_walk_state_size(w);
    float *h = malloc(state * sizeof *h), *c = malloc(state * sizeof *c);
    memcpy(h, recur_forecast_walk_state_h(w), state * sizeof *h);
    memcpy(c, recur_forecast_walk_state_c(w), state * sizeof *c);
    recur_forecast_walk_get_pos(w, &epoch, &chunk);
    double first = NAN, again = NAN;
    recur_forecaster_zero_grad(fc);
    CHECK_OK(recur_forecast_walk_step(w, &rng, &first, NULL));
    CHECK_OK(recur_forecast_walk_create(fc, y, NULL, NULL, FIT, 10, 2, 1, &w2));
    if (w2) {
        CHECK_OK(recur_forecast_walk_set_pos(w2, epoch, chunk));
        memcpy(recur_forecast_walk_state_h(w2), h, state * sizeof *h);
        memcpy(recur_forecast_walk_state_c(w2), c, state * sizeof *c);
        CHECK_OK(recur_forecast_walk_step(w2, &rng, &again, NULL));
        CHECK_MSG(first == again, "resumed loss %.9g vs %.9g", again, first);
        CHECK_STATUS(recur_forecast_walk_set_pos(w2, 0, cpe), RECUR_E_INVALID);
    }
    free(h);
    free(c);
    recur_forecast_walk_free(w);
    recur_forecast_walk_free(w2);

    /* shards: N = 2 shards of 2 streams are column blocks of the walk of 4
     * streams, chunk after chunk (across an epoch): their targets add up to
     * the whole chunk's (recur_forecast_walk_chunk_targets), and their
     * losses and gradients, weighed by their targets, to the whole's */
    recur_forecast_walk *whole = NULL, *shard[2] = {NULL, NULL};
    CHECK_OK(recur_forecast_walk_create(fc, y, NULL, NULL, FIT, 10, 4, 1, &whole));
    CHECK_OK(recur_forecast_walk_create_shard(fc, y, NULL, NULL, FIT, 10, 4, 0, 2, 1, &shard[0]));
    CHECK_OK(recur_forecast_walk_create_shard(fc, y, NULL, NULL, FIT, 10, 4, 2, 2, 1, &shard[1]));
    CHECK_STATUS(recur_forecast_walk_create_shard(fc, y, NULL, NULL, FIT, 10, 4, 3, 2, 1, &w2),
                 RECUR_E_INVALID);
    CHECK_STATUS(recur_forecast_walk_create_shard(fc, y, NULL, NULL, FIT, 10, 4, -1, 2, 1, &w2),
                 RECUR_E_INVALID);
    if (whole && shard[0] && shard[1]) {
        const int64_t chunks = recur_forecast_walk_chunks_per_epoch(whole);
        CHECK(recur_forecast_walk_chunks_per_epoch(shard[0]) == chunks &&
              recur_forecast_walk_chunks_per_epoch(shard[1]) == chunks);
        const size_t P = recur_forecaster_size(fc);
        const size_t state_whole = recur_forecast_walk_state_size(whole);
        const size_t state_shard = recur_forecast_walk_state_size(shard[0]);
        CHECK(state_whole == 2 * state_shard);
        float *g_whole = malloc(P * sizeof *g_whole), *g_sum = calloc(P, sizeof *g_sum);
        for (int64_t i = 0; g_whole && g_sum && i < 2 * chunks + 1; i++) {
            const size_t all = recur_forecast_walk_chunk_targets(whole);
            CHECK(recur_forecast_walk_chunk_targets(shard[0]) == all &&
                  recur_forecast_walk_chunk_targets(shard[1]) == all);
            double loss_whole = NAN, loss_sum = 0;
            size_t t_whole = 0, t_sum = 0;
            recur_forecaster_zero_grad(fc);
            CHECK_OK(recur_forecast_walk_step(whole, &rng, &loss_whole, &t_whole));
            CHECK(t_whole == all);
            memcpy(g_whole, recur_forecaster_grads(fc), P * sizeof *g_whole);
            memset(g_sum, 0, P * sizeof *g_sum);
            for (int k = 0; k < 2; k++) {
                double loss = NAN;
                size_t t = 0;
                recur_forecaster_zero_grad(fc);
                CHECK_OK(recur_forecast_walk_step(shard[k], &rng, &loss, &t));
                const double weight = all ? (double)t / (double)all : 0.0;
                loss_sum += weight * loss;
                t_sum += t;
                const float *g = recur_forecaster_grads(fc);
                for (size_t j = 0; j < P; j++)
                    g_sum[j] += (float)weight * g[j];
                /* the shard's carried state: its column block of the whole's */
                const float *hs = recur_forecast_walk_state_h(shard[k]);
                const float *hw = recur_forecast_walk_state_h(whole) + (size_t)k * state_shard;
                double worst = 0;
                for (size_t j = 0; j < state_shard; j++)
                    worst = fmax(worst, fabs((double)hs[j] - (double)hw[j]));
                CHECK_NEAR(worst, 0, 1e-6);
            }
            CHECK(t_sum == t_whole);
            CHECK_NEAR(loss_sum, loss_whole, 1e-6 * fabs(loss_whole) + 1e-9);
            double worst = 0;
            for (size_t j = 0; j < P; j++)
                worst = fmax(worst, fabs((double)g_sum[j] - (double)g_whole[j]));
            CHECK_NEAR(worst, 0, 1e-5);
        }
        free(g_whole);
        free(g_sum);
        int64_t e0, c0, e1, c1;
        recur_forecast_walk_get_pos(whole, &e0, &c0);
        recur_forecast_walk_get_pos(shard[1], &e1, &c1);
        CHECK(e0 == 2 && c0 == 1 && e1 == e0 && c1 == c0);
    }
    recur_forecast_walk_free(whole);
    recur_forecast_walk_free(shard[0]);
    recur_forecast_walk_free(shard[1]);

    /* evaluation: targets from `from` on only; horizon 3 and 10 target steps,
     * each reached from 3 origins */
    double loss, mae;
    size_t targets = 0;
    CHECK_OK(recur_forecaster_evaluate(fc, y, NULL, NULL, FIT, FIT - 10, &loss, &mae, &targets));
    CHECK_MSG(targets == 30, "%zu targets", targets);
    CHECK(isfinite(loss) && isfinite(mae));
    unsigned char observed[FIT];
    memset(observed, 1, sizeof observed);
    observed[FIT - 1] = 0;
    CHECK_OK(recur_forecaster_evaluate(fc, y, NULL, observed, FIT, FIT - 10, &loss, NULL,
                                       &targets));
    CHECK(targets == 27);
    recur_forecaster_free(fc);
}

/* The head over a whole-sequence forward pass, done by hand through the
 * public API: median at origin t, step k. */
static double reference_median(recur_forecaster *fc, const double *y, size_t t, int k)
{
    const int I = recur_forecaster_input_size(fc), O = recur_forecaster_output_size(fc);
    const recur_forecast_config *c = recur_forecaster_get_config(fc);
    const int H = c->hidden_size;
    float *x = malloc((t + 1) * (size_t)I * sizeof *x);
    float *top = malloc((t + 1) * (size_t)H * sizeof *top);
    float out[64];
    recur_forecaster_features(fc, y, NULL, t + 1, 0, (int)t + 1, x);
    recur_rnn_input in = {(int)t + 1, 1, x, 0, NULL, NULL, NULL};
    recur_rnn_output ro = {top, NULL, NULL};
    recur_rnn_forward(recur_forecaster_rnn(fc), RECUR_MODE_INFER, &in, &ro, NULL);
    const float *params = recur_forecaster_params(fc);
    const int n = recur_forecaster_tensor_count(fc);
    recur_linear_forward(params + recur_forecaster_tensor_at(fc, n - 2)->offset,
                         params + recur_forecaster_tensor_at(fc, n - 1)->offset, O, H,
                         top + t * (size_t)H, 1, out);
    /* quantile outputs [k][3] sorted: the middle one */
    float q[3] = {out[(k - 1) * 3], out[(k - 1) * 3 + 1], out[(k - 1) * 3 + 2]};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2 - i; j++)
            if (q[j] > q[j + 1]) {
                float tmp = q[j];
                q[j] = q[j + 1];
                q[j + 1] = tmp;
            }
    const int m = c->period;
    const size_t base = t + (size_t)k - (size_t)m * (size_t)((k + m - 1) / m);
    free(x);
    free(top);
    return y[base] + recur_forecaster_get_scaling(fc)->scale * q[1];
}

/* The stream (one observation at a time) gives the forecasts of the whole
 * forward pass; intervals hold their median. */
static void test_stream(void)
{
    enum { N = 60 };
    double y[N];
    seasonal_series(y, N, 5, 4, 0.5);
    recur_forecaster *fc = make_model(7, 5, 0, RECUR_CELL_GRU, RECUR_FORECAST_QUANTILE,
                                      RECUR_FORECAST_DIRECT, 6);
    if (!fc)
        return;
    recur_forecast_scaling s;
    CHECK_OK(recur_forecast_scaling_fit(y, NULL, 0, N, 5, &s));
    CHECK_OK(recur_forecaster_set_scaling(fc, &s));
    recur_forecast_stream *st = NULL;
    CHECK_OK(recur_forecast_stream_create(fc, &st));
    if (!st) {
        recur_forecaster_free(fc);
        return;
    }
    double med[7], lo[7], hi[7];
    CHECK_STATUS(recur_forecast_stream_forecast(st, med, lo, hi), RECUR_E_STATE);
    CHECK_STATUS(recur_forecast_stream_push(st, NAN, NULL), RECUR_E_INVALID);
    for (size_t t = 0; t < N; t++) {
        CHECK_OK(recur_forecast_stream_push(st, y[t], NULL));
        if (t == 6 || t == 30 || t == N - 1) { /* origins with a whole period behind them */
            CHECK_OK(recur_forecast_stream_forecast(st, med, lo, hi));
            for (int k = 1; k <= 7; k++) {
                CHECK_NEAR(med[k - 1], reference_median(fc, y, t, k), 1e-4);
                CHECK(lo[k - 1] <= med[k - 1] && med[k - 1] <= hi[k - 1]);
            }
        }
    }
    CHECK(recur_forecast_stream_count(st) == N);
    /* a missing value carries the last one forward */
    recur_forecast_stream *st2 = NULL;
    CHECK_OK(recur_forecast_stream_create(fc, &st2));
    double a[7], b[7];
    CHECK_OK(recur_forecast_stream_reset(st));
    for (size_t t = 0; t < 20; t++) {
        CHECK_OK(recur_forecast_stream_push(st, t == 12 ? NAN : y[t], NULL));
        CHECK_OK(recur_forecast_stream_push(st2, t == 12 ? y[11] : y[t], NULL));
    }
    CHECK_OK(recur_forecast_stream_forecast(st, a, NULL, NULL));
    CHECK_OK(recur_forecast_stream_forecast(st2, b, NULL, NULL));
    CHECK(memcmp(a, b, sizeof a) == 0);
    recur_forecast_stream_free(st2);
    recur_forecast_stream_free(st);
    recur_forecaster_free(fc);
}

/* Forecasts at an origin depend on nothing after it: changing later values
 * leaves every earlier origin's forecast as it was. */
static void test_no_lookahead(void)
{
    enum { N = 120, TRAIN = 80, H = 4 };
    double y[N], y2[N];
    seasonal_series(y, N, 6, 8, 0.3);
    memcpy(y2, y, sizeof y);
    for (int t = 100; t < N; t++)
        y2[t] += 50;
    recur_forecaster *fc = make_model(H, 6, 0, RECUR_CELL_GRU, RECUR_FORECAST_QUANTILE,
                                      RECUR_FORECAST_DIRECT, 8);
    if (!fc)
        return;
    recur_forecast_scaling s;
    CHECK_OK(recur_forecast_scaling_fit(y, NULL, 0, TRAIN, 6, &s));
    CHECK_OK(recur_forecaster_set_scaling(fc, &s));
    const size_t count = recur_forecast_origin_count(N, TRAIN, H, 0);
    double *f1 = malloc(count * H * 3 * sizeof *f1), *f2 = malloc(count * H * 3 * sizeof *f2);
    recur_forecast_evaluation e1, e2;
    CHECK_OK(recur_forecast_evaluate(fc, y, NULL, N, TRAIN, 6, H, 0, &e1, f1));
    CHECK_OK(recur_forecast_evaluate(fc, y2, NULL, N, TRAIN, 6, H, 0, &e2, f2));
    CHECK(e1.origins == count && e1.first_origin == TRAIN - 1 && e1.last_origin == N - 1 - H);
    CHECK_NEAR(e1.mase_scale, e2.mase_scale, 0);
    int same = 1, differs = 0;
    for (size_t i = 0; i < count; i++) {
        const size_t origin = TRAIN - 1 + i;
        const int equal = memcmp(f1 + i * H * 3, f2 + i * H * 3, H * 3 * sizeof *f1) == 0;
        if (origin < 100)
            same &= equal;
        else
            differs |= !equal;
    }
    CHECK_MSG(same, "a forecast changed with data after its origin");
    CHECK(differs);
    CHECK(e1.rows[RECUR_EVAL_MODEL].count == count * H);
    CHECK(isfinite(e1.rows[RECUR_EVAL_SEASONAL_NAIVE].mase));
    CHECK(isnan(e1.rows[RECUR_EVAL_NAIVE].coverage));
    free(f1);
    free(f2);
    recur_forecaster_free(fc);
}

static void same_forecasts(recur_forecaster *a, recur_forecaster *b, const double *y, size_t n)
{
    recur_forecast_stream *sa = NULL, *sb = NULL;
    CHECK_OK(recur_forecast_stream_create(a, &sa));
    CHECK_OK(recur_forecast_stream_create(b, &sb));
    if (!sa || !sb) {
        recur_forecast_stream_free(sa);
        recur_forecast_stream_free(sb);
        return;
    }
    const int h = recur_forecaster_get_config(a)->horizon;
    double fa[3 * 16], fb[3 * 16];
    for (size_t t = 0; t < n; t++) {
        CHECK_OK(recur_forecast_stream_push(sa, y[t], NULL));
        CHECK_OK(recur_forecast_stream_push(sb, y[t], NULL));
    }
    CHECK_OK(recur_forecast_stream_forecast(sa, fa, fa + h, fa + 2 * h));
    CHECK_OK(recur_forecast_stream_forecast(sb, fb, fb + h, fb + 2 * h));
    CHECK(memcmp(fa, fb, (size_t)(3 * h) * sizeof *fa) == 0);
    recur_forecast_stream_free(sa);
    recur_forecast_stream_free(sb);
}

/* Save, load: the same config, scaling (every double exactly), weights,
 * calibration, info and forecasts; corrupt files are refused by name. */
static void test_checkpoint(void)
{
    enum { N = 90 };
    double y[N];
    seasonal_series(y, N, 6, 9, 0.4);
    recur_forecaster *fc = make_model(5, 6, 0, RECUR_CELL_LSTM, RECUR_FORECAST_GAUSSIAN,
                                      RECUR_FORECAST_DIRECT, 7);
    if (!fc)
        return;
    recur_forecast_scaling s;
    CHECK_OK(recur_forecast_scaling_fit(y, NULL, 0, 70, 6, &s));
    s.mean = 1.0 / 3.0; /* not a short decimal: must survive the JSON exactly */
    CHECK_OK(recur_forecaster_set_scaling(fc, &s));
    CHECK_OK(recur_forecaster_calibrate(fc, y, NULL, NULL, 70, 55));
    CHECK(recur_forecaster_calibrated_steps(fc) == 70);
    char dir[] = "/tmp/recur_forecast_XXXXXX", path[128], bad[128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    recur_forecast_info info = {"value", "when", NULL, 24, 70, 55};
    CHECK_OK(recur_forecaster_save(path, fc, &info));
    recur_forecaster *back = NULL;
    recur_forecast_loaded *loaded = NULL;
    CHECK_OK(recur_forecaster_load(path, &back, &loaded));
    if (back) {
        const recur_forecast_config *a = recur_forecaster_get_config(fc);
        const recur_forecast_config *b = recur_forecaster_get_config(back);
        CHECK(a->cell == b->cell && a->hidden_size == b->hidden_size && a->loss == b->loss &&
              a->horizon == b->horizon && a->period == b->period && a->interval == b->interval &&
              a->interval_adapt == b->interval_adapt && a->level_input == b->level_input);
        CHECK(memcmp(recur_forecaster_get_scaling(fc), recur_forecaster_get_scaling(back),
                     sizeof(recur_forecast_scaling)) == 0);
        CHECK(memcmp(recur_forecaster_params(fc), recur_forecaster_params(back),
                     recur_forecaster_size(fc) * sizeof(float)) == 0);
        CHECK(memcmp(recur_forecaster_calibration(fc), recur_forecaster_calibration(back),
                     5 * sizeof(double)) == 0);
        CHECK(recur_forecaster_calibrated_steps(back) == 70);
        const recur_forecast_info *li = recur_forecast_loaded_info(loaded);
        CHECK(strcmp(li->target, "value") == 0 && strcmp(li->time, "when") == 0);
        CHECK(li->lookback == 24 && li->train_steps == 70 && li->fit_steps == 55);
        same_forecasts(fc, back, y, N);
    }
    recur_forecaster_free(back);
    recur_forecast_loaded_free(loaded);

    /* corrupt metadata and tensors */
    recur_st *st = NULL;
    CHECK_OK(recur_st_open(path, &st));
    const char *meta = st ? recur_st_metadata(st, "recur_forecast") : NULL;
    CHECK(meta != NULL);
    static const struct {
        const char *from, *to, *needle;
        int status;
    } edits[] = {
        {"\"horizon\":5", "\"horizon\":\"5\"", "horizon", RECUR_E_FORMAT},
        {"\"cell\":\"lstm\"", "\"cell\":\"tree\"", "cell", RECUR_E_FORMAT},
        {"\"format\":1", "\"format\":99", "newer", RECUR_E_UNSUPPORTED},
        {"\"hidden_size\":7", "\"hidden_size\":8", "has shape", RECUR_E_FORMAT},
        {"\"std\":", "\"sd\":", "std", RECUR_E_FORMAT},
        {"\"scaling\":{", "\"scaling\":[],\"x\":{", "scaling", RECUR_E_FORMAT},
    };
    for (size_t i = 0; meta && i < sizeof edits / sizeof edits[0]; i++) {
        const char *at = strstr(meta, edits[i].from);
        CHECK_MSG(at != NULL, "metadata lacks %s: %s", edits[i].from, meta);
        if (!at)
            continue;
        char text[8192];
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - meta), meta, edits[i].to,
                 at + strlen(edits[i].from));
        recur_st_writer *w = NULL;
        CHECK_OK(recur_st_writer_create(&w));
        for (int j = 0; j < recur_st_count(st); j++) {
            const recur_st_tensor *t = recur_st_at(st, j);
            recur_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
        }
        recur_st_writer_metadata(w, "recur_forecast", text);
        CHECK_OK(recur_st_writer_save(w, bad));
        recur_st_writer_free(w);
        recur_forecaster *fc2 = NULL;
        CHECK_STATUS(recur_forecaster_load(bad, &fc2, NULL), edits[i].status);
        CHECK_ERROR_MENTIONS(edits[i].needle);
        CHECK_ERROR_MENTIONS(bad);
        CHECK(fc2 == NULL);
    }
    /* a non-finite weight; a missing tensor */
    for (int k = 0; k < 2 && st; k++) {
        recur_st_writer *w = NULL;
        CHECK_OK(recur_st_writer_create(&w));
        float *nanbuf = NULL;
        for (int j = 0; j < recur_st_count(st); j++) {
            const recur_st_tensor *t = recur_st_at(st, j);
            if (strcmp(t->name, "head.bias") == 0) {
                if (k == 1)
                    continue;
                nanbuf = malloc(t->nbytes);
                memcpy(nanbuf, t->data, t->nbytes);
                nanbuf[1] = NAN;
                recur_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, nanbuf);
            } else {
                recur_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
            }
        }
        recur_st_writer_metadata(w, "recur_forecast", meta);
        CHECK_OK(recur_st_writer_save(w, bad));
        recur_st_writer_free(w);
        free(nanbuf);
        recur_forecaster *fc2 = NULL;
        CHECK_STATUS(recur_forecaster_load(bad, &fc2, NULL), RECUR_E_FORMAT);
        CHECK_ERROR_MENTIONS(k ? "head.bias is missing" : "non-finite");
    }
    recur_st_free(st);
    unlink(path);
    unlink(bad);
    rmdir(dir);
    recur_forecaster_free(fc);
}

/* Online tracking: misses widen the interval, hits narrow it, and only
 * after the calibrated steps. */
static void test_interval_tracking(void)
{
    enum { N = 80 };
    double y[N];
    seasonal_series(y, N, 4, 12, 0.2);
    recur_forecaster *fc = make_model(2, 4, 0, RECUR_CELL_GRU, RECUR_FORECAST_QUANTILE,
                                      RECUR_FORECAST_DIRECT, 6);
    if (!fc)
        return;
    recur_forecast_scaling s;
    CHECK_OK(recur_forecast_scaling_fit(y, NULL, 0, N, 4, &s));
    CHECK_OK(recur_forecaster_set_scaling(fc, &s));
    const double margins[2] = {0.5, 0.5};
    double width[3];
    recur_rng rng;
    recur_rng_seed(&rng, 77);
    for (int run = 0; run < 3; run++) {
        /* run 0: no calibration data yet reached; 1: values far off; 2: values at the median */
        CHECK_OK(recur_forecaster_set_calibration(fc, margins, run == 0 ? 1000 : 40));
        recur_forecast_stream *st = NULL;
        CHECK_OK(recur_forecast_stream_create(fc, &st));
        if (!st)
            break;
        double med[2], lo[2], hi[2];
        for (int t = 0; t < N; t++) {
            double v = y[t];
            if (t >= 40 && run == 1)
                v = y[t] + 100 * recur_rng_normal(&rng);
            if (t >= 40 && run == 2) {
                CHECK_OK(recur_forecast_stream_forecast(st, med, lo, hi));
                v = med[0];
            }
            CHECK_OK(recur_forecast_stream_push(st, v, NULL));
        }
        CHECK_OK(recur_forecast_stream_forecast(st, med, lo, hi));
        width[run] = hi[0] - lo[0];
        recur_forecast_stream_free(st);
    }
    CHECK_MSG(width[1] > 3 * width[0], "misses: width %g vs %g", width[1], width[0]);
    CHECK_MSG(width[2] < width[0], "hits: width %g vs %g", width[2], width[0]);
    recur_forecaster_free(fc);
}

/* Autoregressive and Gaussian models train, calibrate and forecast. */
static void test_modes(void)
{
    enum { N = 120 };
    double y[N];
    seasonal_series(y, N, 6, 13, 0.3);
    for (int mode = 0; mode < 2; mode++) {
        recur_forecaster *fc =
            make_model(4, 6, 0, RECUR_CELL_GRU, mode ? RECUR_FORECAST_QUANTILE
                                                     : RECUR_FORECAST_GAUSSIAN,
                       mode ? RECUR_FORECAST_AUTOREGRESSIVE : RECUR_FORECAST_DIRECT, 8);
        if (!fc)
            continue;
        CHECK(recur_forecaster_head_steps(fc) == (mode ? 1 : 4));
        recur_forecast_scaling s;
        CHECK_OK(recur_forecast_scaling_fit(y, NULL, 0, 100, 6, &s));
        CHECK_OK(recur_forecaster_set_scaling(fc, &s));
        recur_forecast_walk *w = NULL;
        CHECK_OK(recur_forecast_walk_create(fc, y, NULL, NULL, 80, 12, 2, 5, &w));
        recur_rng rng;
        recur_rng_seed(&rng, 1);
        for (int i = 0; i < 5 && w; i++) {
            double loss;
            recur_forecaster_zero_grad(fc);
            CHECK_OK(recur_forecast_walk_step(w, &rng, &loss, NULL));
            CHECK(isfinite(loss));
        }
        recur_forecast_walk_free(w);
        CHECK_OK(recur_forecaster_calibrate(fc, y, NULL, NULL, 100, 80));
        for (int k = 0; k < 4; k++)
            CHECK(isfinite(recur_forecaster_calibration(fc)[k]));
        recur_forecast_evaluation e;
        CHECK_OK(recur_forecast_evaluate(fc, y, NULL, N, 100, 6, 4, 0, &e, NULL));
        CHECK(isfinite(e.rows[RECUR_EVAL_MODEL].mase));
        CHECK(e.rows[RECUR_EVAL_MODEL].coverage >= 0 && e.rows[RECUR_EVAL_MODEL].coverage <= 1);
        recur_forecaster_free(fc);
    }
}

/* A short training on a seasonal series with a trend: the forecaster beats
 * the seasonal-naive forecast (which misses the trend) on the test part. */
static void test_training_beats_seasonal_naive(void)
{
    enum { N = 360, TRAIN = 288, FIT = 240, H = 12 };
    double y[N];
    seasonal_series(y, N, 12, 21, 0.25);
    recur_forecaster *fc = make_model(H, 12, 0, RECUR_CELL_GRU, RECUR_FORECAST_QUANTILE,
                                      RECUR_FORECAST_DIRECT, 16);
    if (!fc)
        return;
    recur_forecast_scaling s;
    CHECK_OK(recur_forecast_scaling_fit(y, NULL, 0, TRAIN, 12, &s));
    CHECK_OK(recur_forecaster_set_scaling(fc, &s));
    recur_forecast_walk *w = NULL;
    CHECK_OK(recur_forecast_walk_create(fc, y, NULL, NULL, FIT, 24, 2, 3, &w));
    recur_optim_config oc = recur_optim_config_default(RECUR_OPTIM_ADAM);
    oc.lr = 5e-3f;
    recur_optim *opt = NULL;
    CHECK_OK(recur_optim_create(&oc, recur_forecaster_size(fc), &opt));
    recur_rng rng;
    recur_rng_seed(&rng, 4);
    double first = NAN, last = NAN;
    for (int i = 0; i < 250 && w && opt; i++) {
        double loss;
        recur_forecaster_zero_grad(fc);
        CHECK_OK(recur_forecast_walk_step(w, &rng, &loss, NULL));
        recur_clip_grad_norm(recur_forecaster_grads(fc), recur_forecaster_size(fc), 1.0, NULL);
        recur_optim_step(opt, recur_forecaster_params(fc), recur_forecaster_grads(fc), oc.lr);
        if (i == 0)
            first = loss;
        last = loss;
    }
    CHECK_MSG(last < 0.7 * first, "training loss %g -> %g", first, last);
    CHECK_OK(recur_forecaster_calibrate(fc, y, NULL, NULL, TRAIN, FIT));
    recur_forecast_evaluation e;
    CHECK_OK(recur_forecast_evaluate(fc, y, NULL, N, TRAIN, 12, H, 0, &e, NULL));
    const double model = e.rows[RECUR_EVAL_MODEL].mase;
    const double snaive = e.rows[RECUR_EVAL_SEASONAL_NAIVE].mase;
    printf("synthetic seasonal series: MASE model %.3f, seasonal naive %.3f, coverage %.2f\n",
           model, snaive, e.rows[RECUR_EVAL_MODEL].coverage);
    CHECK_MSG(model < 0.8 * snaive, "model MASE %g, seasonal naive %g", model, snaive);
    recur_optim_free(opt);
    recur_forecast_walk_free(w);
    recur_forecaster_free(fc);
}

int main(void)
{
    test_csv_basic();
    test_time_formats();
    test_wide();
    test_malformed();
    test_fill();
    test_scaling();
    test_period();
    test_metrics();
    test_config_and_features();
    test_walk();
    test_stream();
    test_no_lookahead();
    test_checkpoint();
    test_interval_tracking();
    test_modes();
    test_training_beats_seasonal_naive();
    CHECK_DONE();
}
