/* forecast.c - the forecaster: features, a recurrent stack, a linear head
 * predicting corrections of the seasonal-naive forecast with an interval,
 * its training walk (truncated BPTT with the state carried), evaluation
 * and conformal calibration over a series, and streaming inference.
 *
 * Shapes (S = steps the head predicts: horizon, or 1 autoregressive; K =
 * values per step: 3 quantiles or mean and sd; O = S*K):
 *   x   [T, B, I]   features of each step (recur_forecaster_features)
 *   y   [T, B, H]   the stack's top layer
 *   out [T*B, O]    out = y W^T + b, out[k*K + j]
 * Targets in units of s (scaling.scale), at origin t:
 *   z_{t,k} = (y_{t+k} - b_{t,k}) / s,  b_{t,k} = y_{t+k-m*ceil(k/m)}
 * Losses, averaged over the (t, k) with a target:
 *   quantile: sum_j rho_{tau_j}(z - q_j),  rho_tau(u) = max(tau*u, (tau-1)*u),
 *             tau = (1-p)/2, 1/2, (1+p)/2 (p = the interval's coverage)
 *   gaussian: log sd + (z - mu)^2 / (2 sd^2) + log(2 pi)/2,  sd = softplus(r) + 1e-3
 * Leaves out: future covariates (covariates enter as past inputs only),
 * bidirectional stacks (they cannot stream). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "recur/forecast.h"
#include "recur/nn.h"

#define SD_FLOOR 1e-3
/* online interval tracking: the running mean of the absolute errors, which
 * sets the step of the margins, forgets at this rate and is at least
 * SCORE_FLOOR (units of s) */
#define SCORE_DECAY 0.1
#define SCORE_FLOOR 0.01
#define PI 3.14159265358979323846
/* rows of one evaluation forward pass (bounds the workspace) */
#define EVAL_CHUNK 1024

struct recur_forecaster {
    recur_forecast_config config;
    recur_forecast_scaling scaling;
    recur_rnn *rnn;
    float *params, *grads; /* [size] */
    size_t size, rnn_size;
    int I, O, S, K, H, L;
    double tau[3];         /* quantile levels */
    double z_interval;     /* gaussian: the interval is mu +- z_interval * sd */
    int tensor_count;
    recur_param_view *views;
    float *head_weight, *head_bias, *d_head_weight, *d_head_bias; /* views */
    double *calibration;   /* [horizon] */
    size_t calibrated_steps;
    /* workspace (grown on demand) */
    size_t capacity_rows;
    float *x, *y, *out, *dy; /* [rows, I], [rows, H], [rows, O], [rows, H] */
    float *z;                /* [rows, S] targets */
};

/* ---- names and configuration ------------------------------------------------- */

const char *recur_forecast_loss_name(recur_forecast_loss loss)
{
    return loss == RECUR_FORECAST_QUANTILE ? "quantile"
           : loss == RECUR_FORECAST_GAUSSIAN ? "gaussian" : "unknown";
}

int recur_forecast_loss_parse(const char *name, recur_forecast_loss *out)
{
    if (name && strcmp(name, "quantile") == 0)
        *out = RECUR_FORECAST_QUANTILE;
    else if (name && strcmp(name, "gaussian") == 0)
        *out = RECUR_FORECAST_GAUSSIAN;
    else
        return recur__error(RECUR_E_INVALID, "unknown forecast loss '%s' (quantile, gaussian)",
                            name ? name : "(null)");
    return RECUR_OK;
}

const char *recur_forecast_mode_name(recur_forecast_mode mode)
{
    return mode == RECUR_FORECAST_DIRECT ? "direct"
           : mode == RECUR_FORECAST_AUTOREGRESSIVE ? "autoregressive" : "unknown";
}

int recur_forecast_mode_parse(const char *name, recur_forecast_mode *out)
{
    if (name && strcmp(name, "direct") == 0)
        *out = RECUR_FORECAST_DIRECT;
    else if (name && strcmp(name, "autoregressive") == 0)
        *out = RECUR_FORECAST_AUTOREGRESSIVE;
    else
        return recur__error(RECUR_E_INVALID, "unknown forecast mode '%s' (direct, "
                            "autoregressive)", name ? name : "(null)");
    return RECUR_OK;
}

recur_forecast_config recur_forecast_config_default(void)
{
    recur_forecast_config c;
    memset(&c, 0, sizeof c);
    c.cell = RECUR_CELL_GRU;
    c.hidden_size = 64;
    c.num_layers = 1;
    c.dropout = 0.0f;
    c.horizon = 1;
    c.period = 1;
    c.covariate_count = 0;
    c.level_input = 1;
    c.loss = RECUR_FORECAST_QUANTILE;
    c.mode = RECUR_FORECAST_DIRECT;
    c.interval = 0.8;
    c.interval_adapt = 1.0;
    return c;
}

int recur_forecast_config_check(const recur_forecast_config *c)
{
    if (!c)
        return recur__error(RECUR_E_INVALID, "forecast config is NULL");
    if (c->horizon < 1 || c->horizon > 100000)
        return recur__error(RECUR_E_INVALID, "forecast config: horizon %d outside 1..100000",
                            c->horizon);
    if (c->period < 1 || c->period > 100000)
        return recur__error(RECUR_E_INVALID, "forecast config: period %d outside 1..100000",
                            c->period);
    if (c->covariate_count < 0 || c->covariate_count > RECUR_FORECAST_MAX_COVARIATES)
        return recur__error(RECUR_E_INVALID, "forecast config: covariate_count %d outside 0..%d",
                            c->covariate_count, RECUR_FORECAST_MAX_COVARIATES);
    if (c->loss != RECUR_FORECAST_QUANTILE && c->loss != RECUR_FORECAST_GAUSSIAN)
        return recur__error(RECUR_E_INVALID, "forecast config: unknown loss %d", (int)c->loss);
    if (c->mode != RECUR_FORECAST_DIRECT && c->mode != RECUR_FORECAST_AUTOREGRESSIVE)
        return recur__error(RECUR_E_INVALID, "forecast config: unknown mode %d", (int)c->mode);
    if (c->mode == RECUR_FORECAST_AUTOREGRESSIVE && c->covariate_count > 0)
        return recur__error(RECUR_E_UNSUPPORTED, "forecast config: the autoregressive mode "
                            "would need the covariates' future values; use the direct mode");
    if (!(c->interval > 0.0 && c->interval < 1.0))
        return recur__error(RECUR_E_INVALID, "forecast config: interval %g outside (0, 1)",
                            c->interval);
    if (!(c->interval_adapt >= 0.0 && c->interval_adapt <= 10.0))
        return recur__error(RECUR_E_INVALID, "forecast config: interval_adapt %g outside "
                            "[0, 10]", c->interval_adapt);
    return RECUR_OK;
}

static recur_rnn_config rnn_config_of(const recur_forecast_config *c, int I)
{
    recur_rnn_config r = recur_rnn_config_default();
    r.cell = c->cell;
    r.input_size = I;
    r.hidden_size = c->hidden_size;
    r.num_layers = c->num_layers;
    r.dropout = c->dropout;
    return r;
}

static int input_size_of(const recur_forecast_config *c)
{
    const int seasonal = c->period > 1;
    return 1 + seasonal + (c->level_input != 0) + 2 * seasonal + c->covariate_count;
}

/* The standard normal quantile by bisection on erfc (needed once). */
static double normal_quantile(double p)
{
    double lo = -40.0, hi = 40.0;
    for (int i = 0; i < 200; i++) {
        const double mid = 0.5 * (lo + hi);
        if (0.5 * erfc(-mid / sqrt(2.0)) < p)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

int recur_forecaster_create(const recur_forecast_config *config, recur_forecaster **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_forecaster_create: out is NULL");
    *out = NULL;
    int status = recur_forecast_config_check(config);
    if (status)
        return status;
    const int I = input_size_of(config);
    recur_rnn_config rc = rnn_config_of(config, I);
    if ((status = recur_rnn_config_check(&rc)))
        return status;
    if (rc.bidirectional)
        return recur__error(RECUR_E_UNSUPPORTED, "a forecaster cannot be bidirectional");
    recur_forecaster *fc = recur__calloc(1, sizeof *fc);
    if (!fc)
        return recur__error(RECUR_E_NOMEM, "out of memory creating a forecaster");
    fc->config = *config;
    fc->I = I;
    fc->H = config->hidden_size;
    fc->L = config->num_layers;
    fc->S = config->mode == RECUR_FORECAST_DIRECT ? config->horizon : 1;
    fc->K = config->loss == RECUR_FORECAST_QUANTILE ? 3 : 2;
    fc->O = fc->S * fc->K;
    const double p = config->interval;
    fc->tau[0] = (1.0 - p) / 2.0;
    fc->tau[1] = 0.5;
    fc->tau[2] = (1.0 + p) / 2.0;
    fc->z_interval = normal_quantile((1.0 + p) / 2.0);
    fc->scaling.std = 1.0;
    fc->scaling.scale = 1.0;
    fc->scaling.covariate_count = config->covariate_count;
    for (int c = 0; c < RECUR_FORECAST_MAX_COVARIATES; c++)
        fc->scaling.covariate_std[c] = 1.0;
    fc->rnn_size = recur_rnn_param_size(&rc);
    const size_t H = (size_t)fc->H, O = (size_t)fc->O;
    fc->size = fc->rnn_size + O * H + O;
    fc->params = recur__calloc(fc->size, sizeof(float));
    fc->grads = recur__calloc(fc->size, sizeof(float));
    fc->calibration = recur__calloc((size_t)config->horizon, sizeof(double));
    if (!fc->params || !fc->grads || !fc->calibration) {
        recur_forecaster_free(fc);
        return recur__error(RECUR_E_NOMEM, "out of memory: forecaster of %zu parameters",
                            fc->size);
    }
    if ((status = recur_rnn_create(&rc, fc->params, fc->grads, &fc->rnn))) {
        recur_forecaster_free(fc);
        return status;
    }
    fc->head_weight = fc->params + fc->rnn_size;
    fc->d_head_weight = fc->grads + fc->rnn_size;
    fc->head_bias = fc->head_weight + O * H;
    fc->d_head_bias = fc->d_head_weight + O * H;
    const int nr = recur_rnn_tensor_count(fc->rnn);
    fc->tensor_count = nr + 2;
    fc->views = recur__calloc((size_t)fc->tensor_count, sizeof *fc->views);
    if (!fc->views) {
        recur_forecaster_free(fc);
        return recur__error(RECUR_E_NOMEM, "out of memory creating a forecaster");
    }
    for (int i = 0; i < nr; i++) {
        const recur_param_view *v = recur_rnn_tensor_at(fc->rnn, i);
        fc->views[i] = *v;
        snprintf(fc->views[i].name, sizeof fc->views[i].name, "rnn.%.40s", v->name);
    }
    fc->views[nr] = (recur_param_view){"head.weight", 2, {(int64_t)O, (int64_t)H}, fc->rnn_size,
                                       O * H};
    fc->views[nr + 1] = (recur_param_view){"head.bias", 1, {(int64_t)O, 0},
                                           fc->rnn_size + O * H, O};
    *out = fc;
    return RECUR_OK;
}

void recur_forecaster_free(recur_forecaster *fc)
{
    if (!fc)
        return;
    recur_rnn_free(fc->rnn);
    recur__free(fc->params);
    recur__free(fc->grads);
    recur__free(fc->views);
    recur__free(fc->calibration);
    recur__free(fc->x);
    recur__free(fc->y);
    recur__free(fc->out);
    recur__free(fc->dy);
    recur__free(fc->z);
    recur__free(fc);
}

const recur_forecast_config *recur_forecaster_get_config(const recur_forecaster *fc)
{
    return fc ? &fc->config : NULL;
}

int recur_forecaster_set_scaling(recur_forecaster *fc, const recur_forecast_scaling *s)
{
    if (!fc || !s)
        return recur__error(RECUR_E_INVALID, "recur_forecaster_set_scaling: NULL argument");
    if (s->covariate_count != fc->config.covariate_count)
        return recur__error(RECUR_E_INVALID, "scaling has %d covariates, the forecaster %d",
                            s->covariate_count, fc->config.covariate_count);
    if (!isfinite(s->mean) || !(s->std > 0) || !isfinite(s->std) || !(s->scale > 0) ||
        !isfinite(s->scale))
        return recur__error(RECUR_E_INVALID, "scaling: mean %g, std %g, scale %g (need finite, "
                            "std and scale > 0)", s->mean, s->std, s->scale);
    for (int c = 0; c < s->covariate_count; c++)
        if (!isfinite(s->covariate_mean[c]) || !(s->covariate_std[c] > 0) ||
            !isfinite(s->covariate_std[c]))
            return recur__error(RECUR_E_INVALID, "scaling: covariate %d has mean %g, std %g",
                                c + 1, s->covariate_mean[c], s->covariate_std[c]);
    fc->scaling = *s;
    return RECUR_OK;
}

const recur_forecast_scaling *recur_forecaster_get_scaling(const recur_forecaster *fc)
{
    return fc ? &fc->scaling : NULL;
}

int recur_forecaster_input_size(const recur_forecaster *fc) { return fc ? fc->I : 0; }
int recur_forecaster_output_size(const recur_forecaster *fc) { return fc ? fc->O : 0; }
int recur_forecaster_head_steps(const recur_forecaster *fc) { return fc ? fc->S : 0; }
float *recur_forecaster_params(recur_forecaster *fc) { return fc ? fc->params : NULL; }
float *recur_forecaster_grads(recur_forecaster *fc) { return fc ? fc->grads : NULL; }
size_t recur_forecaster_size(const recur_forecaster *fc) { return fc ? fc->size : 0; }
recur_rnn *recur_forecaster_rnn(recur_forecaster *fc) { return fc ? fc->rnn : NULL; }
int recur_forecaster_tensor_count(const recur_forecaster *fc) { return fc ? fc->tensor_count : 0; }

const recur_param_view *recur_forecaster_tensor_at(const recur_forecaster *fc, int index)
{
    return fc && index >= 0 && index < fc->tensor_count ? &fc->views[index] : NULL;
}

void recur_forecaster_zero_grad(recur_forecaster *fc)
{
    if (fc)
        memset(fc->grads, 0, fc->size * sizeof *fc->grads);
}

void recur_forecaster_init(recur_forecaster *fc, recur_rng *rng)
{
    if (!fc || !rng)
        return;
    recur_rnn_init(fc->rnn, rng);
    const float bound = 1.0f / sqrtf((float)fc->H);
    const size_t nw = (size_t)fc->O * (size_t)fc->H;
    for (size_t i = 0; i < nw; i++)
        fc->head_weight[i] = bound * (2.0f * recur_rng_uniform(rng) - 1.0f);
    memset(fc->head_bias, 0, (size_t)fc->O * sizeof *fc->head_bias);
}

const double *recur_forecaster_calibration(const recur_forecaster *fc)
{
    return fc ? fc->calibration : NULL;
}

size_t recur_forecaster_calibrated_steps(const recur_forecaster *fc)
{
    return fc ? fc->calibrated_steps : 0;
}

int recur_forecaster_set_calibration(recur_forecaster *fc, const double *margins,
                                     size_t calibrated_steps)
{
    if (!fc || !margins)
        return recur__error(RECUR_E_INVALID, "recur_forecaster_set_calibration: NULL argument");
    for (int k = 0; k < fc->config.horizon; k++)
        if (!isfinite(margins[k]))
            return recur__error(RECUR_E_INVALID, "calibration margin %d is not finite", k + 1);
    memcpy(fc->calibration, margins, (size_t)fc->config.horizon * sizeof *margins);
    fc->calibrated_steps = calibrated_steps;
    return RECUR_OK;
}

static int reserve_rows(recur_forecaster *fc, size_t rows)
{
    if (rows <= fc->capacity_rows)
        return RECUR_OK;
    recur__free(fc->x), recur__free(fc->y), recur__free(fc->out), recur__free(fc->dy);
    recur__free(fc->z);
    fc->x = recur__calloc(rows, (size_t)fc->I * sizeof(float));
    fc->y = recur__calloc(rows, (size_t)fc->H * sizeof(float));
    fc->out = recur__calloc(rows, (size_t)fc->O * sizeof(float));
    fc->dy = recur__calloc(rows, (size_t)fc->H * sizeof(float));
    fc->z = recur__calloc(rows, (size_t)fc->S * sizeof(float));
    if (!fc->x || !fc->y || !fc->out || !fc->dy || !fc->z) {
        recur__free(fc->x), recur__free(fc->y), recur__free(fc->out), recur__free(fc->dy);
        recur__free(fc->z);
        fc->x = fc->y = fc->out = fc->dy = fc->z = NULL;
        fc->capacity_rows = 0;
        return recur__error(RECUR_E_NOMEM, "out of memory: forecaster workspace of %zu rows",
                            rows);
    }
    fc->capacity_rows = rows;
    return RECUR_OK;
}

/* ---- scaling and features ----------------------------------------------------- */

int recur_forecast_scaling_fit(const double *y, const double *cov, int C, size_t n_train,
                               int period, recur_forecast_scaling *out)
{
    if (!y || !out || (C > 0 && !cov))
        return recur__error(RECUR_E_INVALID, "recur_forecast_scaling_fit: NULL argument");
    if (C < 0 || C > RECUR_FORECAST_MAX_COVARIATES)
        return recur__error(RECUR_E_INVALID, "recur_forecast_scaling_fit: %d covariates", C);
    memset(out, 0, sizeof *out);
    out->covariate_count = C;
    double sum = 0.0, sq = 0.0;
    size_t count = 0;
    for (size_t i = 0; i < n_train; i++)
        if (!isnan(y[i])) {
            sum += y[i];
            count++;
        }
    if (count < 2)
        return recur__error(RECUR_E_INVALID, "the training part has %zu observed value%s; the "
                            "scaling needs at least 2", count, count == 1 ? "" : "s");
    out->mean = sum / (double)count;
    for (size_t i = 0; i < n_train; i++)
        if (!isnan(y[i]))
            sq += (y[i] - out->mean) * (y[i] - out->mean);
    out->std = sqrt(sq / (double)count);
    if (!(out->std > 0))
        out->std = fabs(out->mean) > 0 ? fabs(out->mean) : 1.0;
    double scale = 0.0;
    if (recur_mase_scale(y, n_train, period > 0 ? period : 1, &scale) != RECUR_OK &&
        recur_mase_scale(y, n_train, 1, &scale) != RECUR_OK)
        scale = out->std;
    recur_clear_error();
    out->scale = scale > 0 && isfinite(scale) ? scale : 1.0;
    for (int c = 0; c < C; c++) {
        double s = 0.0, q = 0.0;
        size_t k = 0;
        for (size_t i = 0; i < n_train; i++) {
            const double v = cov[i * (size_t)C + (size_t)c];
            if (!isnan(v)) {
                s += v;
                k++;
            }
        }
        const double mean = k ? s / (double)k : 0.0;
        for (size_t i = 0; i < n_train; i++) {
            const double v = cov[i * (size_t)C + (size_t)c];
            if (!isnan(v))
                q += (v - mean) * (v - mean);
        }
        const double sd = k ? sqrt(q / (double)k) : 0.0;
        out->covariate_mean[c] = mean;
        out->covariate_std[c] = sd > 0 ? sd : 1.0;
    }
    return RECUR_OK;
}

/* The features of step t from the values it needs: the newest value v, the
 * one before (prev), the one m steps back (back_m) and the covariates. */
static void features_of(const recur_forecaster *fc, double v, double prev, double back_m,
                        const double *cov, size_t t, float *x)
{
    const recur_forecast_scaling *s = &fc->scaling;
    const int m = fc->config.period;
    int i = 0;
    x[i++] = (float)((v - prev) / s->scale);
    if (m > 1)
        x[i++] = (float)((v - back_m) / s->scale);
    if (fc->config.level_input)
        x[i++] = (float)((v - s->mean) / s->std);
    if (m > 1) {
        const double phase = 2.0 * PI * (double)(t % (size_t)m) / (double)m;
        x[i++] = (float)sin(phase);
        x[i++] = (float)cos(phase);
    }
    for (int c = 0; c < fc->config.covariate_count; c++)
        x[i++] = (float)((cov[c] - s->covariate_mean[c]) / s->covariate_std[c]);
}

static void features_at(const recur_forecaster *fc, const double *y, const double *cov,
                        size_t t, float *x)
{
    const size_t m = (size_t)fc->config.period;
    const double prev = t >= 1 ? y[t - 1] : y[0];
    const double back = t >= m ? y[t - m] : y[0];
    features_of(fc, y[t], prev, back, cov ? cov + t * (size_t)fc->config.covariate_count : NULL,
                t, x);
}

int recur_forecaster_features(const recur_forecaster *fc, const double *y, const double *cov,
                              size_t n, size_t t0, int T, float *x)
{
    if (!fc || !y || !x || (fc->config.covariate_count > 0 && !cov))
        return recur__error(RECUR_E_INVALID, "recur_forecaster_features: NULL argument");
    if (T < 0 || t0 + (size_t)T > n)
        return recur__error(RECUR_E_INVALID, "recur_forecaster_features: steps %zu..%zu outside "
                            "the series of %zu", t0, t0 + (size_t)T, n);
    for (int i = 0; i < T; i++)
        features_at(fc, y, cov, t0 + (size_t)i, x + (size_t)i * (size_t)fc->I);
    return RECUR_OK;
}

/* The seasonal-naive base of step k (1-based) after the origin t: the index
 * t + k - m*ceil(k/m), or -1 when it is before the series. */
static long base_index(size_t t, int k, int m)
{
    const long back = (long)m * (long)((k + m - 1) / m);
    return (long)t + k - back;
}

/* ---- the head's loss ----------------------------------------------------------- */

/* Loss of one step's outputs o[K] against the target z (units of s), and
 * its gradient (added, scaled by `scale`) into d[K] when d is not NULL. */
static double step_loss(const recur_forecaster *fc, const float *o, double z, float *d,
                        double scale)
{
    if (fc->config.loss == RECUR_FORECAST_QUANTILE) {
        double loss = 0.0;
        for (int j = 0; j < 3; j++) {
            const double tau = fc->tau[j], u = z - (double)o[j];
            loss += u >= 0 ? tau * u : (tau - 1.0) * u;
            if (d)
                d[j] += (float)(scale * (u > 0 ? -tau : u < 0 ? 1.0 - tau : 0.0));
        }
        return loss;
    }
    const double mu = o[0], r = o[1];
    const double sp = r > 30 ? r : log1p(exp(r)); /* softplus */
    const double sd = sp + SD_FLOOR, e = z - mu;
    if (d) {
        const double sig = 1.0 / (1.0 + exp(-r));
        d[0] += (float)(scale * (-e / (sd * sd)));
        d[1] += (float)(scale * (1.0 / sd - e * e / (sd * sd * sd)) * sig);
    }
    return log(sd) + 0.5 * e * e / (sd * sd) + 0.5 * log(2.0 * PI);
}

/* Median (or mean) and raw interval bounds of one step's outputs, in units
 * of s, before calibration. */
static void step_quantiles(const recur_forecaster *fc, const float *o, double *mid, double *lo,
                           double *hi)
{
    if (fc->config.loss == RECUR_FORECAST_QUANTILE) {
        double a = o[0], b = o[1], c = o[2];
        /* the three quantiles are fitted independently: sort them */
        if (a > b) { double t = a; a = b; b = t; }
        if (b > c) { double t = b; b = c; c = t; }
        if (a > b) { double t = a; a = b; b = t; }
        *lo = a, *mid = b, *hi = c;
        return;
    }
    const double r = o[1];
    const double sd = (r > 30 ? r : log1p(exp(r))) + SD_FLOOR;
    *mid = o[0];
    *lo = o[0] - fc->z_interval * sd;
    *hi = o[0] + fc->z_interval * sd;
}

/* ---- training walk --------------------------------------------------------------- */

struct recur_forecast_walk {
    recur_forecaster *fc;
    size_t n;
    int T, B;
    int total_batch, first; /* a shard: streams first .. first+B-1 of total_batch */
    uint64_t seed;
    int64_t cpe;           /* chunks per epoch */
    size_t segment;        /* steps per stream per epoch: cpe * T */
    size_t slack;          /* n - B * segment: room for the epoch's shift */
    int64_t epoch, chunk;
    size_t shift;          /* of the current epoch */
    float *features;       /* [n, I] */
    float *targets;        /* [n, S], NaN where there is none */
    float *h, *c;          /* [L, B, H] carried state */
    float *hn, *cn;        /* [L, B, H] */
    size_t state_size;
};

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t epoch_shift(const recur_forecast_walk *w, int64_t epoch)
{
    return w->slack ? (size_t)(mix64(w->seed ^ mix64((uint64_t)epoch)) % (w->slack + 1)) : 0;
}

/* Targets z[t, k] of origins t in [0, n) whose target t+k+1 lies in
 * [from, n) and was observed; NaN otherwise. */
static void fill_targets(const recur_forecaster *fc, const double *y,
                         const unsigned char *observed, size_t n, size_t from, float *z)
{
    const int S = fc->S, m = fc->config.period;
    const double s = fc->scaling.scale;
    for (size_t t = 0; t < n; t++)
        for (int k = 1; k <= S; k++) {
            float v = NAN;
            const size_t target = t + (size_t)k;
            const long b = base_index(t, k, m);
            if (target < n && target >= from && b >= 0 && (!observed || observed[target]))
                v = (float)((y[target] - y[b]) / s);
            z[t * (size_t)S + (size_t)(k - 1)] = v;
        }
}

int recur_forecast_walk_create(recur_forecaster *fc, const double *y, const double *cov,
                               const unsigned char *observed, size_t n, int T, int B,
                               uint64_t seed, recur_forecast_walk **out)
{
    return recur_forecast_walk_create_shard(fc, y, cov, observed, n, T, B, 0, B, seed, out);
}

int recur_forecast_walk_create_shard(recur_forecaster *fc, const double *y, const double *cov,
                                     const unsigned char *observed, size_t n, int T,
                                     int total_batch, int first, int B, uint64_t seed,
                                     recur_forecast_walk **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_forecast_walk_create: out is NULL");
    *out = NULL;
    if (!fc || !y || (fc->config.covariate_count > 0 && !cov))
        return recur__error(RECUR_E_INVALID, "recur_forecast_walk_create: NULL argument");
    if (T < 1 || B < 1)
        return recur__error(RECUR_E_INVALID, "training walk: lookback %d and batch %d must be "
                            ">= 1", T, B);
    if (first < 0 || total_batch < B || first > total_batch - B)
        return recur__error(RECUR_E_INVALID, "training walk shard: streams %d..%d (first %d, "
                            "batch %d) are not within the %d streams of the walk", first,
                            first + B - 1, first, B, total_batch);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(y[i]))
            return recur__error(RECUR_E_INVALID, "training walk: value %zu is not finite (fill "
                                "missing values first)", i);
    const size_t per_stream = n / (size_t)total_batch;
    if (per_stream < (size_t)T + 1)
        return recur__error(RECUR_E_INVALID, "training walk: %zu steps are too few for %d "
                            "stream%s of lookback %d (need at least %zu)", n, total_batch,
                            total_batch == 1 ? "" : "s", T,
                            (size_t)total_batch * ((size_t)T + 1));
    recur_forecast_walk *w = recur__calloc(1, sizeof *w);
    if (!w)
        return recur__error(RECUR_E_NOMEM, "out of memory creating the training walk");
    w->fc = fc;
    w->n = n;
    w->T = T;
    w->B = B;
    w->total_batch = total_batch;
    w->first = first;
    w->seed = seed;
    /* steps per stream: whole chunks; the room left shifts every epoch */
    w->cpe = (int64_t)(per_stream / (size_t)T);
    if ((size_t)w->cpe * (size_t)T == per_stream && w->cpe > 1)
        w->cpe--; /* keep some room so that chunk boundaries move */
    w->segment = (size_t)w->cpe * (size_t)T;
    w->slack = n - (size_t)total_batch * w->segment;
    w->shift = epoch_shift(w, 0);
    const size_t I = (size_t)fc->I, S = (size_t)fc->S;
    w->state_size = (size_t)fc->L * (size_t)B * (size_t)fc->H;
    w->features = recur__calloc(n, I * sizeof(float));
    w->targets = recur__calloc(n, S * sizeof(float));
    w->h = recur__calloc(w->state_size, sizeof(float));
    w->hn = recur__calloc(w->state_size, sizeof(float));
    const int lstm = fc->config.cell == RECUR_CELL_LSTM;
    if (lstm) {
        w->c = recur__calloc(w->state_size, sizeof(float));
        w->cn = recur__calloc(w->state_size, sizeof(float));
    }
    if (!w->features || !w->targets || !w->h || !w->hn || (lstm && (!w->c || !w->cn))) {
        recur_forecast_walk_free(w);
        return recur__error(RECUR_E_NOMEM, "out of memory creating the training walk");
    }
    for (size_t t = 0; t < n; t++)
        features_at(fc, y, cov, t, w->features + t * I);
    fill_targets(fc, y, observed, n, 0, w->targets);
    int status = reserve_rows(fc, (size_t)T * (size_t)B);
    if (!status)
        status = recur_rnn_reserve(fc->rnn, T, B);
    if (status) {
        recur_forecast_walk_free(w);
        return status;
    }
    *out = w;
    return RECUR_OK;
}

void recur_forecast_walk_free(recur_forecast_walk *w)
{
    if (!w)
        return;
    recur__free(w->features);
    recur__free(w->targets);
    recur__free(w->h);
    recur__free(w->c);
    recur__free(w->hn);
    recur__free(w->cn);
    recur__free(w);
}

int64_t recur_forecast_walk_chunks_per_epoch(const recur_forecast_walk *w)
{
    return w ? w->cpe : 0;
}

void recur_forecast_walk_get_pos(const recur_forecast_walk *w, int64_t *epoch, int64_t *chunk)
{
    if (epoch)
        *epoch = w ? w->epoch : 0;
    if (chunk)
        *chunk = w ? w->chunk : 0;
}

int recur_forecast_walk_set_pos(recur_forecast_walk *w, int64_t epoch, int64_t chunk)
{
    if (!w)
        return recur__error(RECUR_E_INVALID, "recur_forecast_walk_set_pos: walk is NULL");
    if (epoch < 0 || chunk < 0 || chunk >= w->cpe)
        return recur__error(RECUR_E_INVALID, "training walk position (epoch %lld, chunk %lld) "
                            "outside the walk's %lld chunks per epoch", (long long)epoch,
                            (long long)chunk, (long long)w->cpe);
    w->epoch = epoch;
    w->chunk = chunk;
    w->shift = epoch_shift(w, epoch);
    return RECUR_OK;
}

size_t recur_forecast_walk_state_size(const recur_forecast_walk *w)
{
    return w ? w->state_size : 0;
}
float *recur_forecast_walk_state_h(recur_forecast_walk *w) { return w ? w->h : NULL; }
float *recur_forecast_walk_state_c(recur_forecast_walk *w) { return w ? w->c : NULL; }

/* Loss over rows of head outputs out [rows, O] against targets z [rows, S]
 * (NaN: none); the gradient of the mean goes to dout (may alias out) when
 * not NULL. Returns the number of targets. */
static size_t head_loss(const recur_forecaster *fc, const float *out, const float *z,
                        size_t rows, float *dout, double *loss)
{
    const int S = fc->S, K = fc->K, O = fc->O;
    size_t count = 0;
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < S; k++)
            count += !isnan(z[r * (size_t)S + (size_t)k]);
    double total = 0.0;
    const double scale = count ? 1.0 / (double)count : 0.0;
    for (size_t r = 0; r < rows; r++) {
        float d[3];
        for (int k = 0; k < S; k++) {
            const float target = z[r * (size_t)S + (size_t)k];
            const float *o = out + r * (size_t)O + (size_t)k * (size_t)K;
            d[0] = d[1] = d[2] = 0.0f;
            if (!isnan(target))
                total += step_loss(fc, o, target, d, scale);
            if (dout)
                memcpy(dout + r * (size_t)O + (size_t)k * (size_t)K, d, (size_t)K * sizeof *d);
        }
    }
    *loss = count ? total / (double)count : 0.0;
    return count;
}

int recur_forecast_walk_step(recur_forecast_walk *w, recur_rng *rng, double *loss,
                             size_t *targets)
{
    if (!w || !loss)
        return recur__error(RECUR_E_INVALID, "recur_forecast_walk_step: NULL argument");
    recur_forecaster *fc = w->fc;
    const int T = w->T, B = w->B;
    const size_t I = (size_t)fc->I, S = (size_t)fc->S, H = (size_t)fc->H, O = (size_t)fc->O;
    const size_t rows = (size_t)T * (size_t)B;
    int status = reserve_rows(fc, rows);
    if (status)
        return status;
    /* the chunk: step t of stream b (of the whole layout) is series step
     * shift + b*segment + chunk*T + t; this walk's streams are first .. first+B-1 */
    float *z = fc->z; /* [T, B, S] */
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            const size_t step = w->shift + (size_t)(w->first + b) * w->segment +
                                (size_t)w->chunk * (size_t)T + (size_t)t;
            const size_t row = (size_t)t * (size_t)B + (size_t)b;
            memcpy(fc->x + row * I, w->features + step * I, I * sizeof(float));
            memcpy(z + row * S, w->targets + step * S, S * sizeof(float));
        }
    const int lstm = fc->config.cell == RECUR_CELL_LSTM;
    recur_rnn_input in = {T, B, fc->x, 0, NULL, w->h, lstm ? w->c : NULL};
    recur_rnn_output ro = {fc->y, w->hn, lstm ? w->cn : NULL};
    status = recur_rnn_forward(fc->rnn, RECUR_MODE_TRAIN, &in, &ro, rng);
    if (status)
        return status;
    recur_linear_forward(fc->head_weight, fc->head_bias, (int)O, (int)H, fc->y, rows, fc->out);
    size_t count = head_loss(fc, fc->out, z, rows, fc->out, loss);
    if (targets)
        *targets = count;
    if (!isfinite(*loss))
        return recur__error(RECUR_E_NUMERIC, "forecaster training loss is %g", *loss);
    if (count) {
        recur_linear_backward(fc->head_weight, (int)O, (int)H, fc->y, rows, fc->out,
                              fc->d_head_weight, fc->d_head_bias, fc->dy);
        recur_rnn_grad_in gi = {fc->dy, NULL, NULL};
        recur_rnn_grad_out go = {NULL, NULL, NULL};
        if ((status = recur_rnn_backward(fc->rnn, &gi, &go)))
            return status;
    }
    /* carry the state (detached) and move on */
    memcpy(w->h, w->hn, w->state_size * sizeof *w->h);
    if (lstm)
        memcpy(w->c, w->cn, w->state_size * sizeof *w->c);
    if (++w->chunk >= w->cpe) {
        w->chunk = 0;
        w->epoch++;
        w->shift = epoch_shift(w, w->epoch);
        memset(w->h, 0, w->state_size * sizeof *w->h);
        if (lstm)
            memset(w->c, 0, w->state_size * sizeof *w->c);
    }
    return RECUR_OK;
}

size_t recur_forecast_walk_chunk_targets(const recur_forecast_walk *w)
{
    if (!w)
        return 0;
    const size_t S = (size_t)w->fc->S;
    size_t count = 0;
    for (int b = 0; b < w->total_batch; b++) {
        const size_t from = w->shift + (size_t)b * w->segment + (size_t)w->chunk * (size_t)w->T;
        const float *z = w->targets + from * S; /* [T, S] */
        for (size_t i = 0; i < (size_t)w->T * S; i++)
            count += !isnan(z[i]);
    }
    return count;
}

/* ---- evaluation and calibration over a whole series ---------------------------- */

/* Runs the stack over y [n] from a zero state in chunks and calls `visit`
 * with each chunk's head outputs out [rows, O] for steps t0..t0+rows-1. */
typedef int (*visit_fn)(void *ctx, size_t t0, size_t rows, const float *out);

static int run_series(recur_forecaster *fc, const double *y, const double *cov, size_t n,
                      visit_fn visit, void *ctx)
{
    const size_t chunk = n < EVAL_CHUNK ? n : EVAL_CHUNK;
    int status = reserve_rows(fc, chunk);
    if (status)
        return status;
    const size_t state = (size_t)fc->L * (size_t)fc->H;
    const int lstm = fc->config.cell == RECUR_CELL_LSTM;
    float *h = recur__calloc(4 * state, sizeof *h); /* h, c, hn, cn */
    if (!h)
        return recur__error(RECUR_E_NOMEM, "out of memory evaluating the forecaster");
    float *c = h + state, *hn = h + 2 * state, *cn = h + 3 * state;
    for (size_t t0 = 0; t0 < n && !status; t0 += chunk) {
        const size_t rows = n - t0 < chunk ? n - t0 : chunk;
        for (size_t i = 0; i < rows; i++)
            features_at(fc, y, cov, t0 + i, fc->x + i * (size_t)fc->I);
        recur_rnn_input in = {(int)rows, 1, fc->x, 0, NULL, h, lstm ? c : NULL};
        recur_rnn_output ro = {fc->y, hn, lstm ? cn : NULL};
        status = recur_rnn_forward(fc->rnn, RECUR_MODE_INFER, &in, &ro, NULL);
        if (status)
            break;
        memcpy(h, hn, state * sizeof *h);
        memcpy(c, cn, state * sizeof *c);
        recur_linear_forward(fc->head_weight, fc->head_bias, fc->O, fc->H, fc->y, rows, fc->out);
        status = visit(ctx, t0, rows, fc->out);
    }
    recur__free(h);
    return status;
}

typedef struct eval_ctx {
    recur_forecaster *fc;
    const float *z; /* [n, S] targets */
    double total, abs_total;
    size_t count;
    double *scores; /* calibration: [horizon][origins] conformity scores, or NULL */
    size_t *score_count; /* [horizon] */
    size_t origins;
    const double *y;
    const unsigned char *observed;
    size_t n, from;
} eval_ctx;

static int visit_loss(void *p, size_t t0, size_t rows, const float *out)
{
    eval_ctx *e = p;
    recur_forecaster *fc = e->fc;
    double loss = 0.0;
    const float *z = e->z + t0 * (size_t)fc->S;
    size_t count = head_loss(fc, out, z, rows, NULL, &loss);
    e->total += loss * (double)count;
    e->count += count;
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < fc->S; k++) {
            const float target = z[r * (size_t)fc->S + (size_t)k];
            double mid, lo, hi;
            if (isnan(target))
                continue;
            step_quantiles(fc, out + r * (size_t)fc->O + (size_t)k * (size_t)fc->K, &mid, &lo,
                           &hi);
            e->abs_total += fabs(target - mid);
        }
    return RECUR_OK;
}

static int make_targets(recur_forecaster *fc, const double *y, const unsigned char *observed,
                        size_t n, size_t from, float **z)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(y[i]))
            return recur__error(RECUR_E_INVALID, "value %zu of the series is not finite (fill "
                                "missing values first)", i);
    *z = recur__calloc(n ? n : 1, (size_t)fc->S * sizeof **z);
    if (!*z)
        return recur__error(RECUR_E_NOMEM, "out of memory evaluating the forecaster");
    fill_targets(fc, y, observed, n, from, *z);
    return RECUR_OK;
}

int recur_forecaster_evaluate(recur_forecaster *fc, const double *y, const double *cov,
                              const unsigned char *observed, size_t n, size_t from,
                              double *loss, double *mae, size_t *targets)
{
    if (!fc || !y || !loss || (fc->config.covariate_count > 0 && !cov))
        return recur__error(RECUR_E_INVALID, "recur_forecaster_evaluate: NULL argument");
    *loss = NAN;
    if (mae)
        *mae = NAN;
    if (targets)
        *targets = 0;
    eval_ctx e;
    memset(&e, 0, sizeof e);
    e.fc = fc;
    float *z = NULL;
    int status = make_targets(fc, y, observed, n, from, &z);
    if (status)
        return status;
    e.z = z;
    status = run_series(fc, y, cov, n, visit_loss, &e);
    recur__free(z);
    if (status)
        return status;
    *loss = e.count ? e.total / (double)e.count : NAN;
    if (mae)
        *mae = e.count ? e.abs_total / (double)e.count : NAN;
    if (targets)
        *targets = e.count;
    return RECUR_OK;
}

static int visit_calibrate(void *p, size_t t0, size_t rows, const float *out)
{
    eval_ctx *e = p;
    recur_forecaster *fc = e->fc;
    const int h = fc->config.horizon;
    for (size_t r = 0; r < rows; r++) {
        const size_t t = t0 + r;
        if (t + 1 < e->from)
            continue;
        if (fc->config.mode == RECUR_FORECAST_DIRECT) {
            for (int k = 1; k <= h; k++) {
                const float z = e->z[t * (size_t)fc->S + (size_t)(k - 1)];
                if (isnan(z))
                    continue;
                double mid, lo, hi;
                step_quantiles(fc, out + r * (size_t)fc->O + (size_t)(k - 1) * (size_t)fc->K,
                               &mid, &lo, &hi);
                const double score = fmax(lo - z, z - hi);
                e->scores[(size_t)(k - 1) * e->origins + e->score_count[k - 1]++] = score;
            }
        }
    }
    return RECUR_OK;
}

static int compare_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The CQR margin from N scores: the ceil((1 - a)(N + 1))-th smallest (the
 * largest when that exceeds N). */
static double cqr_margin(double *scores, size_t N, double coverage)
{
    if (N == 0)
        return 0.0;
    qsort(scores, N, sizeof *scores, compare_double);
    size_t rank = (size_t)ceil(coverage * ((double)N + 1.0) - 1e-9);
    if (rank < 1)
        rank = 1;
    if (rank > N)
        rank = N;
    return scores[rank - 1];
}

static int calibrate_autoregressive(recur_forecaster *fc, const double *y, const double *cov,
                                    const unsigned char *observed, size_t n, size_t from,
                                    double *scores, size_t *score_count, size_t origins);

int recur_forecaster_calibrate(recur_forecaster *fc, const double *y, const double *cov,
                               const unsigned char *observed, size_t n, size_t from)
{
    if (!fc || !y || (fc->config.covariate_count > 0 && !cov))
        return recur__error(RECUR_E_INVALID, "recur_forecaster_calibrate: NULL argument");
    const int h = fc->config.horizon;
    const size_t origins = n + 1 > from ? n + 1 - from : 0;
    eval_ctx e;
    memset(&e, 0, sizeof e);
    e.fc = fc;
    e.origins = origins ? origins : 1;
    e.from = from;
    e.scores = recur__calloc((size_t)h * e.origins, sizeof *e.scores);
    e.score_count = recur__calloc((size_t)h, sizeof *e.score_count);
    float *z = NULL;
    int status = e.scores && e.score_count ? RECUR_OK
                 : recur__error(RECUR_E_NOMEM, "out of memory calibrating the forecaster");
    if (!status && fc->config.mode == RECUR_FORECAST_DIRECT) {
        status = make_targets(fc, y, observed, n, from, &z);
        e.z = z;
        if (!status)
            status = run_series(fc, y, cov, n, visit_calibrate, &e);
    } else if (!status) {
        status = calibrate_autoregressive(fc, y, cov, observed, n, from, e.scores,
                                          e.score_count, e.origins);
    }
    if (!status) {
        for (int k = 0; k < h; k++)
            fc->calibration[k] = cqr_margin(e.scores + (size_t)k * e.origins, e.score_count[k],
                                            fc->config.interval);
        fc->calibrated_steps = n;
    }
    recur__free(z);
    recur__free(e.scores);
    recur__free(e.score_count);
    return status;
}

/* ---- streaming -------------------------------------------------------------------- */

struct recur_forecast_stream {
    const recur_forecaster *fc;
    recur_rnn_stream *rnn;
    size_t count;          /* values pushed */
    int m;                 /* period */
    double *ring;          /* [m + 1] the newest values, ring[count % (m+1)] next */
    double *cov_last;      /* [C] last observed covariates */
    int cov_seen;
    float *x;              /* [I] */
    float *top;            /* [H] the top layer after the newest step */
    float *out;            /* [O] */
    /* autoregressive roll-outs: saved state and ring */
    float *h, *c;          /* [L, H] */
    double *ring_saved;    /* [m + 1] */
    float *top_saved;      /* [H] */
    /* online interval tracking */
    int adapt;             /* tracking on */
    double *margins;       /* [horizon] the margins q_k (units of s), tracked online */
    double *score_scale;   /* [horizon] running mean |y - median| (units of s); < 0: none yet */
    double *past;          /* [horizon slots][horizon][3] lo, hi, median of the last forecasts */
    unsigned char *past_valid; /* [horizon slots] */
    double *scratch;       /* [3 * horizon] */
};

static double ring_get(const recur_forecast_stream *s, size_t back)
{
    /* the value pushed `back` steps before the newest (0: the newest);
     * before the first value the first one stands in */
    const size_t size = (size_t)s->m + 1;
    if (back >= s->count)
        back = s->count - 1;
    if (back >= size)
        back = size - 1;
    return s->ring[(s->count - 1 - back) % size];
}

void recur_forecast_stream_free(recur_forecast_stream *s)
{
    if (!s)
        return;
    recur_rnn_stream_free(s->rnn);
    recur__free(s->ring);
    recur__free(s->cov_last);
    recur__free(s->x);
    recur__free(s->top);
    recur__free(s->out);
    recur__free(s->h);
    recur__free(s->c);
    recur__free(s->ring_saved);
    recur__free(s->top_saved);
    recur__free(s->margins);
    recur__free(s->score_scale);
    recur__free(s->past);
    recur__free(s->past_valid);
    recur__free(s->scratch);
    recur__free(s);
}

int recur_forecast_stream_create(const recur_forecaster *fc, recur_forecast_stream **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_forecast_stream_create: out is NULL");
    *out = NULL;
    if (!fc)
        return recur__error(RECUR_E_INVALID, "recur_forecast_stream_create: forecaster is NULL");
    recur_forecast_stream *s = recur__calloc(1, sizeof *s);
    if (!s)
        return recur__error(RECUR_E_NOMEM, "out of memory creating a forecast stream");
    s->fc = fc;
    s->m = fc->config.period;
    const size_t ring = (size_t)s->m + 1, C = (size_t)fc->config.covariate_count;
    const size_t state = (size_t)fc->L * (size_t)fc->H;
    s->ring = recur__calloc(ring, sizeof *s->ring);
    s->ring_saved = recur__calloc(ring, sizeof *s->ring_saved);
    s->cov_last = recur__calloc(C ? C : 1, sizeof *s->cov_last);
    s->x = recur__calloc((size_t)fc->I, sizeof *s->x);
    s->top = recur__calloc((size_t)fc->H, sizeof *s->top);
    s->top_saved = recur__calloc((size_t)fc->H, sizeof *s->top_saved);
    s->out = recur__calloc((size_t)fc->O, sizeof *s->out);
    s->h = recur__calloc(state, sizeof *s->h);
    s->c = recur__calloc(state, sizeof *s->c);
    const size_t h = (size_t)fc->config.horizon;
    s->margins = recur__calloc(h, sizeof *s->margins);
    s->score_scale = recur__calloc(h, sizeof *s->score_scale);
    for (size_t k = 0; s->score_scale && k < h; k++)
        s->score_scale[k] = -1.0;
    s->scratch = recur__calloc(3 * h, sizeof *s->scratch);
    s->adapt = fc->config.interval_adapt > 0 && h * h <= ((size_t)1 << 20);
    if (s->adapt) {
        s->past = recur__calloc(h * h * 3, sizeof *s->past);
        s->past_valid = recur__calloc(h, 1);
    }
    if (!s->ring || !s->ring_saved || !s->cov_last || !s->x || !s->top || !s->top_saved ||
        !s->out || !s->h || !s->c || !s->margins || !s->score_scale || !s->scratch ||
        (s->adapt && (!s->past || !s->past_valid))) {
        recur_forecast_stream_free(s);
        return recur__error(RECUR_E_NOMEM, "out of memory creating a forecast stream");
    }
    memcpy(s->margins, fc->calibration, h * sizeof *s->margins);
    int status = recur_rnn_stream_create(fc->rnn, 1, &s->rnn);
    if (status) {
        recur_forecast_stream_free(s);
        return status;
    }
    *out = s;
    return RECUR_OK;
}

int recur_forecast_stream_reset(recur_forecast_stream *s)
{
    if (!s)
        return recur__error(RECUR_E_INVALID, "recur_forecast_stream_reset: stream is NULL");
    s->count = 0;
    s->cov_seen = 0;
    memset(s->top, 0, (size_t)s->fc->H * sizeof *s->top);
    const size_t h = (size_t)s->fc->config.horizon;
    memcpy(s->margins, s->fc->calibration, h * sizeof *s->margins);
    for (size_t k = 0; k < h; k++)
        s->score_scale[k] = -1.0;
    if (s->past_valid)
        memset(s->past_valid, 0, h);
    return recur_rnn_stream_reset(s->rnn, NULL, NULL);
}

size_t recur_forecast_stream_count(const recur_forecast_stream *s) { return s ? s->count : 0; }

/* Pushes a value already known to be finite. */
static int stream_step(recur_forecast_stream *s, double v, const double *cov)
{
    const size_t ring = (size_t)s->m + 1;
    const size_t t = s->count;
    s->ring[t % ring] = v;
    s->count++;
    const double prev = ring_get(s, 1), back = ring_get(s, (size_t)s->m);
    features_of(s->fc, v, prev, back, cov, t, s->x);
    return recur_rnn_stream_step(s->rnn, s->x, s->top);
}

static int track_interval(recur_forecast_stream *s, double y);

int recur_forecast_stream_push(recur_forecast_stream *s, double y, const double *cov)
{
    if (!s)
        return recur__error(RECUR_E_INVALID, "recur_forecast_stream_push: stream is NULL");
    const int C = s->fc->config.covariate_count;
    if (C > 0 && !cov)
        return recur__error(RECUR_E_INVALID, "forecast stream: the %d covariates are missing",
                            C);
    if (isinf(y))
        return recur__error(RECUR_E_INVALID, "forecast stream: the value is infinite");
    const int observed = !isnan(y);
    if (isnan(y)) {
        if (s->count == 0)
            return recur__error(RECUR_E_INVALID, "forecast stream: the first value is missing "
                                "(nothing to carry forward)");
        y = ring_get(s, 0);
    }
    for (int c = 0; c < C; c++) {
        if (isinf(cov[c]))
            return recur__error(RECUR_E_INVALID, "forecast stream: covariate %d is infinite",
                                c + 1);
        if (!isnan(cov[c]))
            s->cov_last[c] = cov[c];
        else if (!s->cov_seen)
            s->cov_last[c] = s->fc->scaling.covariate_mean[c];
    }
    s->cov_seen = 1;
    int status = stream_step(s, y, C > 0 ? s->cov_last : NULL);
    if (status || !s->adapt)
        return status;
    return track_interval(s, observed ? y : NAN);
}

/* The forecast of one step k (1-based) from the head's outputs for it. */
static void finish_step(const recur_forecast_stream *s, const float *o, int k, double base,
                        double *mid, double *lo, double *hi)
{
    const recur_forecaster *fc = s->fc;
    const double scale = fc->scaling.scale, margin = s->margins[k - 1];
    double zm, zl, zh;
    step_quantiles(fc, o, &zm, &zl, &zh);
    /* calibrated bounds, never across the median */
    zl = fmin(zl - margin, zm);
    zh = fmax(zh + margin, zm);
    *mid = base + scale * zm;
    *lo = base + scale * zl;
    *hi = base + scale * zh;
}

static double stream_base(const recur_forecast_stream *s, int k)
{
    /* y_{t+k-m*ceil(k/m)}: m*ceil(k/m) - k steps before the newest */
    const int m = s->m;
    const size_t back = (size_t)((long)m * (long)((k + m - 1) / m) - k);
    return ring_get(s, back);
}

static int forecast_autoregressive(recur_forecast_stream *s, double *median, double *lo,
                                   double *hi)
{
    const recur_forecaster *fc = s->fc;
    const size_t ring = (size_t)s->m + 1;
    const int lstm = fc->config.cell == RECUR_CELL_LSTM;
    int status = recur_rnn_stream_state(s->rnn, s->h, lstm ? s->c : NULL);
    if (status)
        return status;
    memcpy(s->ring_saved, s->ring, ring * sizeof *s->ring);
    memcpy(s->top_saved, s->top, (size_t)fc->H * sizeof *s->top);
    const size_t count = s->count;
    for (int k = 1; k <= fc->config.horizon && !status; k++) {
        recur_linear_forward(fc->head_weight, fc->head_bias, fc->O, fc->H, s->top, 1, s->out);
        double mid, l, h;
        finish_step(s, s->out, k, stream_base(s, 1), &mid, &l, &h);
        if (median)
            median[k - 1] = mid;
        if (lo)
            lo[k - 1] = l;
        if (hi)
            hi[k - 1] = h;
        if (k < fc->config.horizon)
            status = stream_step(s, mid, NULL);
    }
    /* back to the state of the real history */
    memcpy(s->ring, s->ring_saved, ring * sizeof *s->ring);
    memcpy(s->top, s->top_saved, (size_t)fc->H * sizeof *s->top);
    s->count = count;
    int reset = recur_rnn_stream_reset(s->rnn, s->h, lstm ? s->c : NULL);
    return status ? status : reset;
}

int recur_forecast_stream_forecast(recur_forecast_stream *s, double *median, double *lo,
                                   double *hi)
{
    if (!s)
        return recur__error(RECUR_E_INVALID, "recur_forecast_stream_forecast: stream is NULL");
    if (s->count == 0)
        return recur__error(RECUR_E_STATE, "forecast stream: push a value before forecasting");
    const recur_forecaster *fc = s->fc;
    if (fc->config.mode == RECUR_FORECAST_AUTOREGRESSIVE)
        return forecast_autoregressive(s, median, lo, hi);
    recur_linear_forward(fc->head_weight, fc->head_bias, fc->O, fc->H, s->top, 1, s->out);
    for (int k = 1; k <= fc->config.horizon; k++) {
        double mid, l, h;
        finish_step(s, s->out + (size_t)(k - 1) * (size_t)fc->K, k, stream_base(s, k), &mid, &l,
                    &h);
        if (median)
            median[k - 1] = mid;
        if (lo)
            lo[k - 1] = l;
        if (hi)
            hi[k - 1] = h;
    }
    return RECUR_OK;
}

/* Online interval tracking after a push of y (NaN: not observed) at step
 * t: update q_k from the forecasts made k steps ago, then keep the new
 * forecast's bounds (recur_forecast_stream_push explains the rule). */
static int track_interval(recur_forecast_stream *s, double y)
{
    const recur_forecaster *fc = s->fc;
    const size_t h = (size_t)fc->config.horizon, t = s->count - 1;
    const size_t from = fc->calibrated_steps;
    const double miss_rate = 1.0 - fc->config.interval, eta = fc->config.interval_adapt;
    if (t + 1 < from)
        return RECUR_OK;
    if (!isnan(y) && t >= from) {
        for (size_t k = 1; k <= h && k <= t; k++) {
            const size_t origin = t - k, slot = origin % h;
            if (origin + 1 < from || !s->past_valid[slot])
                continue;
            const double *past = s->past + (slot * h + (k - 1)) * 3;
            const double miss = y < past[0] || y > past[1] ? 1.0 : 0.0;
            const double error = fabs(y - past[2]) / fc->scaling.scale;
            /* the step follows the scale of the errors seen before this one
             * (this error would tie the step to this very miss or hit), or
             * of the calibration margin when that is larger: neither depends
             * on how wide the interval is now, which would bias the level */
            double *b = &s->score_scale[k - 1];
            if (*b >= 0)
                s->margins[k - 1] += eta / sqrt((double)k) *
                                     fmax(fmax(*b, fabs(fc->calibration[k - 1])), SCORE_FLOOR) *
                                     (miss - miss_rate);
            *b = *b >= 0 ? (1.0 - SCORE_DECAY) * *b + SCORE_DECAY * error : error;
        }
    }
    double *mid = s->scratch, *lo = mid + h, *hi = mid + 2 * h;
    int status = recur_forecast_stream_forecast(s, mid, lo, hi);
    if (status)
        return status;
    const size_t slot = t % h;
    for (size_t k = 0; k < h; k++) {
        s->past[(slot * h + k) * 3] = lo[k];
        s->past[(slot * h + k) * 3 + 1] = hi[k];
        s->past[(slot * h + k) * 3 + 2] = mid[k];
    }
    s->past_valid[slot] = 1;
    return RECUR_OK;
}

/* Autoregressive calibration: roll the stream out from every origin of the
 * validation part and score the raw (uncalibrated) bounds. */
static int calibrate_autoregressive(recur_forecaster *fc, const double *y, const double *cov,
                                    const unsigned char *observed, size_t n, size_t from,
                                    double *scores, size_t *score_count, size_t origins)
{
    const int h = fc->config.horizon;
    double *mid = recur__calloc((size_t)(3 * h), sizeof *mid);
    recur_forecast_stream *s = NULL;
    int status = mid ? recur_forecast_stream_create(fc, &s)
                              : recur__error(RECUR_E_NOMEM, "out of memory calibrating");
    if (!status) {
        /* raw bounds: no margins, no tracking */
        s->adapt = 0;
        memset(s->margins, 0, (size_t)h * sizeof *s->margins);
    }
    double *lo = mid + h, *hi = mid + 2 * h;
    for (size_t t = 0; t < n && !status; t++) {
        if (!isfinite(y[t])) {
            status = recur__error(RECUR_E_INVALID, "value %zu of the series is not finite", t);
            break;
        }
        status = recur_forecast_stream_push(s, y[t], cov ? cov + t * (size_t)fc->config.covariate_count : NULL);
        if (status || t + 1 < from || t + 1 >= n)
            continue;
        status = recur_forecast_stream_forecast(s, mid, lo, hi);
        for (int k = 1; k <= h && !status; k++) {
            const size_t target = t + (size_t)k;
            if (target >= n || (observed && !observed[target]))
                continue;
            /* scores in units of s, like the direct mode's */
            const double score = fmax(lo[k - 1] - y[target], y[target] - hi[k - 1]) /
                                 fc->scaling.scale;
            if (score_count[k - 1] < origins)
                scores[(size_t)(k - 1) * origins + score_count[k - 1]++] = score;
        }
    }
    recur_forecast_stream_free(s);
    recur__free(mid);
    return status;
}
