/* forecast_eval.c - honest evaluation of forecasts: the seasonal period
 * from the autocorrelation, the M4 competition's metrics (MAE, RMSE,
 * sMAPE, MASE), the naive, seasonal-naive and drift baselines, and the
 * rolling-origin evaluation of a forecaster beside them on the test part
 * of a series (split by time: nothing after an origin is seen by the
 * forecasts made there).
 *   sMAPE = 200/N sum |a - f| / (|a| + |f|)          (percent)
 *   MASE  = (1/N sum |a - f|) / (1/(n-m) sum_{t>=m} |y_t - y_{t-m}|)
 * with the denominator taken over the training part only. */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "recur/forecast.h"

/* ---- period ------------------------------------------------------------------- */

int recur_detect_period(const double *y, size_t n, int hint, int *period)
{
    if (!y || !period)
        return recur__error(RECUR_E_INVALID, "recur_detect_period: NULL argument");
    *period = 1;
    if (n < 8)
        return RECUR_OK;
    /* first differences remove a trend; then the autocorrelation */
    const size_t N = n - 1;
    double *d = recur__malloc(N * sizeof *d);
    if (!d)
        return recur__error(RECUR_E_NOMEM, "out of memory detecting the period");
    double mean = 0.0;
    for (size_t i = 0; i < N; i++) {
        d[i] = y[i + 1] - y[i];
        if (!isfinite(d[i])) {
            recur__free(d);
            return recur__error(RECUR_E_INVALID, "recur_detect_period: value %zu is not finite",
                                i + (isfinite(y[i]) ? 1 : 0));
        }
        mean += d[i];
    }
    mean /= (double)N;
    double var = 0.0;
    for (size_t i = 0; i < N; i++) {
        d[i] -= mean;
        var += d[i] * d[i];
    }
    /* candidate periods up to N/4, so that the lag 2p is measured too */
    size_t max_lag = N / 4;
    if (max_lag > 400)
        max_lag = 400;
    if (!(var > 0) || max_lag < 3) {
        recur__free(d);
        return RECUR_OK;
    }
    const size_t lags = 2 * max_lag + 2;
    double *acf = recur__calloc(lags + 1, sizeof *acf);
    double *se = recur__calloc(lags + 1, sizeof *se);
    if (!acf || !se) {
        recur__free(acf);
        recur__free(se);
        recur__free(d);
        return recur__error(RECUR_E_NOMEM, "out of memory detecting the period");
    }
    double sum_sq = 0.0;
    for (size_t lag = 1; lag <= lags && lag < N; lag++) {
        double sum = 0.0;
        for (size_t i = lag; i < N; i++)
            sum += d[i] * d[i - lag];
        acf[lag] = sum / var;
        /* Bartlett's standard error of r_lag under a short-memory null
         * (MA(3): the differencing makes r_1 about -1/2 for noise), so that
         * the seasonal structure being tested does not inflate it */
        se[lag] = sqrt((1.0 + 2.0 * sum_sq) / (double)N);
        if (lag <= 3)
            sum_sq += acf[lag] * acf[lag];
    }
    /* a period p: a local maximum r_p above 2.5 standard errors (and 0.1),
     * confirmed by r_2p above 2 standard errors (and 0.05): one test alone
     * would find spurious peaks among hundreds of lags of white noise */
    unsigned char *strong = recur__calloc(max_lag + 1, 1);
    if (!strong) {
        recur__free(acf);
        recur__free(se);
        recur__free(d);
        return recur__error(RECUR_E_NOMEM, "out of memory detecting the period");
    }
    size_t best = 0;
    for (size_t lag = 2; lag <= max_lag; lag++) {
        strong[lag] = acf[lag] > fmax(0.1, 2.5 * se[lag]) &&
                      acf[2 * lag] > fmax(0.05, 2.0 * se[2 * lag]);
        const int peak = acf[lag] >= acf[lag - 1] && acf[lag] >= acf[lag + 1];
        if (peak && strong[lag] && (best == 0 || acf[lag] > acf[best]))
            best = lag;
    }
    /* a period's multiples peak too (and a period between two lags, e.g.
     * 52.18 weeks, peaks on either): prefer the smallest significant divisor
     * of the best lag that is nearly as strong, and then the hint */
    for (size_t lag = 2; best && lag < best; lag++)
        if (strong[lag] && best % lag == 0 && acf[lag] >= acf[best] - 0.1) {
            best = lag;
            break;
        }
    if (hint > 1 && (size_t)hint <= max_lag && strong[hint] &&
        (best == 0 || acf[hint] >= acf[best] - 0.1))
        best = (size_t)hint;
    recur__free(strong);
    recur__free(se);
    if (best)
        *period = (int)best;
    recur__free(acf);
    recur__free(d);
    return RECUR_OK;
}

/* ---- metrics ------------------------------------------------------------------- */

int recur_mase_scale(const double *y, size_t n, int period, double *scale)
{
    if (!y || !scale)
        return recur__error(RECUR_E_INVALID, "recur_mase_scale: NULL argument");
    if (period < 1)
        return recur__error(RECUR_E_INVALID, "recur_mase_scale: period %d < 1", period);
    double sum = 0.0;
    size_t count = 0;
    for (size_t t = (size_t)period; t < n; t++) {
        const double a = y[t], b = y[t - (size_t)period];
        if (!isnan(a) && !isnan(b)) {
            sum += fabs(a - b);
            count++;
        }
    }
    if (count == 0)
        return recur__error(RECUR_E_INVALID, "the MASE scale needs two observed values %d steps "
                            "apart in the training part (%zu steps)", period, n);
    *scale = sum / (double)count;
    if (!(*scale > 0))
        return recur__error(RECUR_E_INVALID, "the training part's seasonal-naive error is 0 "
                            "(a series that repeats exactly every %d steps): MASE is undefined",
                            period);
    return RECUR_OK;
}

void recur_forecast_errors_add(recur_forecast_errors *e, double a, double f, double lo,
                               double hi)
{
    if (!e)
        return;
    const double err = fabs(a - f), denom = fabs(a) + fabs(f);
    e->count++;
    e->abs_sum += err;
    e->sq_sum += err * err;
    e->smape_sum += denom > 0 ? 2.0 * err / denom : 0.0;
    if (!isnan(lo) && !isnan(hi)) {
        e->interval_count++;
        e->covered += a >= lo && a <= hi;
    }
}

recur_forecast_metrics recur_forecast_errors_summary(const recur_forecast_errors *e,
                                                     double mase_scale)
{
    recur_forecast_metrics m = {0, NAN, NAN, NAN, NAN, NAN};
    if (!e || e->count == 0)
        return m;
    const double N = (double)e->count;
    m.count = e->count;
    m.mae = e->abs_sum / N;
    m.rmse = sqrt(e->sq_sum / N);
    m.smape = 100.0 * e->smape_sum / N;
    m.mase = mase_scale > 0 ? m.mae / mase_scale : NAN;
    if (e->interval_count)
        m.coverage = (double)e->covered / (double)e->interval_count;
    return m;
}

/* ---- baselines ------------------------------------------------------------------ */

const char *recur_baseline_name(recur_baseline kind)
{
    switch (kind) {
    case RECUR_BASELINE_NAIVE: return "naive";
    case RECUR_BASELINE_SEASONAL_NAIVE: return "seasonal naive";
    case RECUR_BASELINE_DRIFT: return "drift";
    }
    return "unknown";
}

int recur_baseline_forecast(recur_baseline kind, const double *y, size_t n, int period,
                            int horizon, double *out)
{
    if (!y || !out)
        return recur__error(RECUR_E_INVALID, "recur_baseline_forecast: NULL argument");
    if (n < 1 || horizon < 1 || period < 1)
        return recur__error(RECUR_E_INVALID, "recur_baseline_forecast: history %zu, horizon %d, "
                            "period %d (each must be >= 1)", n, horizon, period);
    const double last = y[n - 1];
    switch (kind) {
    case RECUR_BASELINE_NAIVE:
        for (int k = 1; k <= horizon; k++)
            out[k - 1] = last;
        return RECUR_OK;
    case RECUR_BASELINE_SEASONAL_NAIVE:
        if (n < (size_t)period)
            return recur__error(RECUR_E_INVALID, "seasonal naive: the history (%zu) is shorter "
                                "than the period (%d)", n, period);
        for (int k = 1; k <= horizon; k++) {
            const size_t back = (size_t)period * (size_t)((k + period - 1) / period) - (size_t)k;
            out[k - 1] = y[n - 1 - back];
        }
        return RECUR_OK;
    case RECUR_BASELINE_DRIFT: {
        const double slope = n > 1 ? (last - y[0]) / (double)(n - 1) : 0.0;
        for (int k = 1; k <= horizon; k++)
            out[k - 1] = last + slope * (double)k;
        return RECUR_OK;
    }
    }
    return recur__error(RECUR_E_INVALID, "unknown baseline %d", (int)kind);
}

/* ---- rolling origins --------------------------------------------------------------- */

size_t recur_forecast_origin_count(size_t n, size_t n_train, int horizon, size_t origins)
{
    if (n_train < 1 || horizon < 1 || n < n_train + (size_t)horizon)
        return 0;
    const size_t available = n - (size_t)horizon - n_train + 1; /* origins n_train-1 .. n-1-h */
    return origins == 0 || origins > available ? available : origins;
}

size_t recur_forecast_origin_at(size_t n, size_t n_train, int horizon, size_t origins, size_t i)
{
    const size_t count = recur_forecast_origin_count(n, n_train, horizon, origins);
    if (count == 0 || i >= count)
        return 0;
    const size_t first = n_train - 1, last = n - 1 - (size_t)horizon;
    if (count == 1)
        return last;
    /* evenly spaced, both ends included */
    return first + (size_t)llround((double)i * (double)(last - first) / (double)(count - 1));
}

int recur_forecast_evaluate(const recur_forecaster *fc, const double *y, const double *cov,
                            size_t n, size_t n_train, int period, int horizon, size_t origins,
                            recur_forecast_evaluation *out, double *forecasts)
{
    if (!y || !out)
        return recur__error(RECUR_E_INVALID, "recur_forecast_evaluate: NULL argument");
    memset(out, 0, sizeof *out);
    const int C = fc ? recur_forecaster_get_config(fc)->covariate_count : 0;
    if (C > 0 && !cov)
        return recur__error(RECUR_E_INVALID, "recur_forecast_evaluate: the covariates are NULL");
    if (period < 1 || horizon < 1)
        return recur__error(RECUR_E_INVALID, "evaluation: period %d and horizon %d must be >= 1",
                            period, horizon);
    if (fc && recur_forecaster_get_config(fc)->horizon != horizon)
        return recur__error(RECUR_E_INVALID, "evaluation: horizon %d, the forecaster's is %d",
                            horizon, recur_forecaster_get_config(fc)->horizon);
    if (n_train < 2 || n_train < (size_t)period + 1)
        return recur__error(RECUR_E_INVALID, "evaluation: the training part (%zu steps) must be "
                            "longer than the period (%d) and at least 2 steps", n_train, period);
    const size_t count = recur_forecast_origin_count(n, n_train, horizon, origins);
    if (count == 0)
        return recur__error(RECUR_E_INVALID, "evaluation: the test part (%zu steps) is shorter "
                            "than the horizon (%d)", n > n_train ? n - n_train : 0, horizon);
    int status = recur_mase_scale(y, n_train, period, &out->mase_scale);
    if (status)
        return status;
    /* the history every forecast sees: interpolated in the training part,
     * the last observation carried forward after it */
    const size_t Cs = (size_t)C;
    double *hist = recur__malloc(n * sizeof *hist);
    double *hist_cov = C ? recur__malloc(n * Cs * sizeof *hist_cov) : NULL;
    double *f = recur__malloc((size_t)horizon * 3 * sizeof *f);
    recur_forecast_stream *stream = NULL;
    if (!hist || !f || (C && !hist_cov)) {
        status = recur__error(RECUR_E_NOMEM, "out of memory evaluating");
        goto done;
    }
    if ((status = recur_fill_missing(y, n, 1, n_train, hist)))
        goto done;
    for (size_t c = 0; c < Cs; c++) {
        size_t first = 0;
        while (first < n_train && isnan(cov[first * Cs + c]))
            first++;
        if (first == n_train) { /* never observed in training: its mean (0 after scaling) */
            const double mean = recur_forecaster_get_scaling(fc)->covariate_mean[c];
            for (size_t i = 0; i < n; i++)
                hist_cov[i * Cs + c] = isnan(cov[i * Cs + c]) ? mean : cov[i * Cs + c];
        } else if ((status = recur_fill_missing(cov + c, n, Cs, n_train, hist_cov + c))) {
            goto done;
        }
    }
    if (fc && (status = recur_forecast_stream_create(fc, &stream)))
        goto done;
    recur_forecast_errors errors[RECUR_EVAL_ROWS];
    memset(errors, 0, sizeof errors);
    double *median = f, *lo = f + horizon, *hi = f + 2 * horizon;
    size_t next = 0, fed = 0;
    out->origins = count;
    out->first_origin = recur_forecast_origin_at(n, n_train, horizon, origins, 0);
    out->last_origin = recur_forecast_origin_at(n, n_train, horizon, origins, count - 1);
    for (size_t i = 0; i < count; i++) {
        const size_t o = recur_forecast_origin_at(n, n_train, horizon, origins, i);
        if (stream) {
            /* the test part goes in as it is: the stream carries a missing
             * value forward itself (the same value as hist) and does not
             * count it as an observation when it tracks the interval */
            for (; fed <= o; fed++)
                if ((status = recur_forecast_stream_push(
                         stream, fed < n_train ? hist[fed] : y[fed],
                         C ? (fed < n_train ? hist_cov : cov) + fed * Cs : NULL)))
                    goto done;
            if ((status = recur_forecast_stream_forecast(stream, median, lo, hi)))
                goto done;
            for (int k = 1; k <= horizon; k++) {
                const double a = y[o + (size_t)k];
                if (!isnan(a))
                    recur_forecast_errors_add(&errors[RECUR_EVAL_MODEL], a, median[k - 1],
                                              lo[k - 1], hi[k - 1]);
                if (forecasts) {
                    double *row = forecasts + (next * (size_t)horizon + (size_t)(k - 1)) * 3;
                    row[0] = median[k - 1], row[1] = lo[k - 1], row[2] = hi[k - 1];
                }
            }
        }
        static const recur_baseline kinds[3] = {RECUR_BASELINE_NAIVE,
                                                RECUR_BASELINE_SEASONAL_NAIVE,
                                                RECUR_BASELINE_DRIFT};
        for (int b = 0; b < 3; b++) {
            if ((status = recur_baseline_forecast(kinds[b], hist, o + 1, period, horizon,
                                                  median)))
                goto done;
            for (int k = 1; k <= horizon; k++) {
                const double a = y[o + (size_t)k];
                if (!isnan(a))
                    recur_forecast_errors_add(&errors[RECUR_EVAL_NAIVE + b], a, median[k - 1],
                                              NAN, NAN);
            }
        }
        next++;
    }
    for (int r = 0; r < RECUR_EVAL_ROWS; r++)
        out->rows[r] = recur_forecast_errors_summary(&errors[r], out->mase_scale);
done:
    recur_forecast_stream_free(stream);
    recur__free(hist);
    recur__free(hist_cov);
    recur__free(f);
    return status;
}
