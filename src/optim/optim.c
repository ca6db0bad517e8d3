/* optim.c - SGD, Adam, AdamW, RMSprop and Adagrad over one flat parameter
 * array, following PyTorch 1.13's single-tensor update rules
 * (torch/optim/{sgd,adam,adamw,rmsprop,adagrad}.py); docs/optimizers.md
 * writes out the math. Not implemented: `maximize`, sparse gradients,
 * per-parameter groups (a caller wanting two rates runs two optimizers).
 *
 * Conventions: all moment buffers live in one float allocation (`state`)
 * with named views into it, so a checkpoint saves one array plus the step
 * counter. Per-element arithmetic is float, as PyTorch's float32 tensors
 * do; scalar factors that depend on the step (bias corrections, Adagrad's
 * decayed rate) are computed in double and rounded once, as PyTorch
 * computes them in Python floats. */
#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"
#include "recur/optim.h"

struct recur_optim {
    recur_optim_config config;
    size_t n;
    int64_t step;
    float *state; /* [state_count]: every buffer below, back to back */
    size_t state_count;
    /* views into state, each [n] or NULL when the config does not use it */
    float *momentum_buffer; /* sgd, rmsprop */
    float *exp_avg;         /* adam(w) */
    float *exp_avg_sq;      /* adam(w) */
    float *max_exp_avg_sq;  /* adam(w) with amsgrad */
    float *square_avg;      /* rmsprop */
    float *grad_avg;        /* rmsprop centered */
    float *sum;             /* adagrad */
};

/* The element-wise updates below are split over the threads for models of at
 * least this many parameters. Each element's arithmetic is the same whichever
 * thread does it, so the result does not depend on the number of threads. */
#define PARALLEL_MIN 32768

static const char *const optim_names[] = {"sgd", "adam", "adamw", "rmsprop", "adagrad"};
#define OPTIM_KINDS ((int)(sizeof optim_names / sizeof optim_names[0]))

const char *recur_optim_name(recur_optim_kind kind)
{
    if ((int)kind < 0 || (int)kind >= OPTIM_KINDS)
        return "unknown";
    return optim_names[kind];
}

static int equal_ignoring_case(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return 0;
    return *a == *b;
}

int recur_optim_parse(const char *name, recur_optim_kind *out)
{
    if (!name || !out)
        return recur__error(RECUR_E_INVALID, "recur_optim_parse: NULL argument");
    for (int k = 0; k < OPTIM_KINDS; k++) {
        if (equal_ignoring_case(name, optim_names[k])) {
            *out = (recur_optim_kind)k;
            return RECUR_OK;
        }
    }
    return recur__error(RECUR_E_INVALID,
                        "unknown optimizer '%s' (expected sgd, adam, adamw, rmsprop or adagrad)",
                        name);
}

recur_optim_config recur_optim_config_default(recur_optim_kind kind)
{
    recur_optim_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.lr = 0.01f;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    c.alpha = 0.99f;
    switch (kind) {
    case RECUR_OPTIM_ADAM:
        c.lr = 1e-3f;
        break;
    case RECUR_OPTIM_ADAMW:
        c.lr = 1e-3f;
        c.weight_decay = 1e-2f;
        break;
    case RECUR_OPTIM_ADAGRAD:
        c.eps = 1e-10f;
        break;
    default: /* sgd, rmsprop: lr 0.01, the shared values above */
        break;
    }
    return c;
}

/* value >= 0 and finite; `!(x >= 0)` also rejects NaN. */
static int check_nonnegative(float value, const char *field, const char *optimizer)
{
    if (!(value >= 0.0f) || isinf(value))
        return recur__error(RECUR_E_INVALID, "%s: %s must be finite and >= 0 (got %g)", optimizer,
                            field, (double)value);
    return RECUR_OK;
}

static int check_beta(float value, const char *field, const char *optimizer)
{
    if (!(value >= 0.0f && value < 1.0f))
        return recur__error(RECUR_E_INVALID, "%s: %s must be in [0, 1) (got %g)", optimizer,
                            field, (double)value);
    return RECUR_OK;
}

int recur_optim_config_check(const recur_optim_config *c)
{
    if (!c)
        return recur__error(RECUR_E_INVALID, "optimizer config is NULL");
    if ((int)c->kind < 0 || (int)c->kind >= OPTIM_KINDS)
        return recur__error(RECUR_E_INVALID, "optimizer kind %d is not one of sgd, adam, adamw, "
                                             "rmsprop, adagrad", (int)c->kind);
    const char *name = optim_names[c->kind];
    int status;
    if ((status = check_nonnegative(c->lr, "lr", name)))
        return status;
    if ((status = check_nonnegative(c->weight_decay, "weight_decay", name)))
        return status;
    switch (c->kind) {
    case RECUR_OPTIM_SGD:
        if ((status = check_nonnegative(c->momentum, "momentum", name)))
            return status;
        if (!isfinite(c->dampening))
            return recur__error(RECUR_E_INVALID, "sgd: dampening must be finite (got %g)",
                                (double)c->dampening);
        if (c->nesterov && (c->momentum <= 0.0f || c->dampening != 0.0f))
            return recur__error(RECUR_E_INVALID,
                                "sgd: nesterov needs momentum > 0 and dampening 0 "
                                "(got momentum %g, dampening %g)",
                                (double)c->momentum, (double)c->dampening);
        return RECUR_OK;
    case RECUR_OPTIM_ADAM:
    case RECUR_OPTIM_ADAMW:
        if ((status = check_beta(c->beta1, "beta1", name)))
            return status;
        if ((status = check_beta(c->beta2, "beta2", name)))
            return status;
        return check_nonnegative(c->eps, "eps", name);
    case RECUR_OPTIM_RMSPROP:
        if (!(c->alpha >= 0.0f && c->alpha <= 1.0f))
            return recur__error(RECUR_E_INVALID, "rmsprop: alpha must be in [0, 1] (got %g)",
                                (double)c->alpha);
        if ((status = check_nonnegative(c->momentum, "momentum", name)))
            return status;
        return check_nonnegative(c->eps, "eps", name);
    case RECUR_OPTIM_ADAGRAD:
        if ((status = check_nonnegative(c->lr_decay, "lr_decay", name)))
            return status;
        if ((status = check_nonnegative(c->initial_accumulator_value,
                                        "initial_accumulator_value", name)))
            return status;
        return check_nonnegative(c->eps, "eps", name);
    }
    return RECUR_OK;
}

/* Carves the next [n] buffer out of the state array. */
static float *take_buffer(recur_optim *opt, size_t *used)
{
    float *view = opt->state + *used;
    *used += opt->n;
    return view;
}

int recur_optim_create(const recur_optim_config *config, size_t n, recur_optim **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_optim_create: out is NULL");
    *out = NULL;
    int status = recur_optim_config_check(config);
    if (status)
        return status;

    const recur_optim_config *c = config;
    size_t buffers = 0;
    switch (c->kind) {
    case RECUR_OPTIM_SGD:
        buffers = c->momentum > 0.0f;
        break;
    case RECUR_OPTIM_ADAM:
    case RECUR_OPTIM_ADAMW:
        buffers = 2 + (c->amsgrad != 0);
        break;
    case RECUR_OPTIM_RMSPROP:
        buffers = 1 + (c->momentum > 0.0f) + (c->centered != 0);
        break;
    case RECUR_OPTIM_ADAGRAD:
        buffers = 1;
        break;
    }
    size_t count, bytes;
    if (!recur__mul_size(n, buffers, &count) || !recur__mul_size(count, sizeof(float), &bytes))
        return recur__error(RECUR_E_NOMEM, "optimizer state of %zu x %zu floats overflows",
                            buffers, n);

    recur_optim *opt = recur__calloc(1, sizeof *opt);
    if (!opt)
        return recur__error(RECUR_E_NOMEM, "cannot allocate the optimizer");
    opt->config = *c;
    opt->n = n;
    opt->state_count = count;
    if (count) {
        opt->state = recur__calloc(count, sizeof(float));
        if (!opt->state) {
            recur__free(opt);
            return recur__error(RECUR_E_NOMEM, "cannot allocate %zu bytes of optimizer state",
                                bytes);
        }
    }

    size_t used = 0;
    switch (c->kind) {
    case RECUR_OPTIM_SGD:
        if (c->momentum > 0.0f)
            opt->momentum_buffer = take_buffer(opt, &used);
        break;
    case RECUR_OPTIM_ADAM:
    case RECUR_OPTIM_ADAMW:
        opt->exp_avg = take_buffer(opt, &used);
        opt->exp_avg_sq = take_buffer(opt, &used);
        if (c->amsgrad)
            opt->max_exp_avg_sq = take_buffer(opt, &used);
        break;
    case RECUR_OPTIM_RMSPROP:
        opt->square_avg = take_buffer(opt, &used);
        if (c->momentum > 0.0f)
            opt->momentum_buffer = take_buffer(opt, &used);
        if (c->centered)
            opt->grad_avg = take_buffer(opt, &used);
        break;
    case RECUR_OPTIM_ADAGRAD:
        opt->sum = take_buffer(opt, &used);
        for (size_t i = 0; i < n; i++)
            opt->sum[i] = c->initial_accumulator_value;
        break;
    }
    *out = opt;
    return RECUR_OK;
}

void recur_optim_free(recur_optim *opt)
{
    if (!opt)
        return;
    recur__free(opt->state);
    recur__free(opt);
}

const recur_optim_config *recur_optim_get_config(const recur_optim *opt)
{
    return opt ? &opt->config : NULL;
}

size_t recur_optim_size(const recur_optim *opt)
{
    return opt ? opt->n : 0;
}

/* SGD (torch/optim/sgd.py):
 *   g = grad + wd*p
 *   b = g                         on the first step
 *   b = mu*b + (1-dampening)*g    afterwards
 *   g = g + mu*b (nesterov) or b
 *   p = p - lr*g                  */
static void step_sgd(recur_optim *opt, float *p, const float *grad, float lr)
{
    const recur_optim_config *c = &opt->config;
    const float wd = c->weight_decay, mu = c->momentum;
    const float keep = (float)(1.0 - (double)c->dampening);
    float *b = opt->momentum_buffer;
    const int first = opt->step == 1;
#pragma omp parallel for schedule(static) if (opt->n >= PARALLEL_MIN)
    for (size_t i = 0; i < opt->n; i++) {
        float g = grad[i];
        if (wd != 0.0f)
            g += wd * p[i];
        if (b) {
            b[i] = first ? g : mu * b[i] + keep * g;
            g = c->nesterov ? g + mu * b[i] : b[i];
        }
        p[i] -= lr * g;
    }
}

/* Adam and AdamW (torch/optim/adam.py, adamw.py), t = step:
 *   adam:  g = grad + wd*p          adamw: p = p * (1 - lr*wd), g = grad
 *   m = b1*m + (1-b1)*g
 *   v = b2*v + (1-b2)*g^2
 *   vmax = max(vmax, v)             (amsgrad; then v below means vmax)
 *   denom = sqrt(v) / sqrt(1 - b2^t) + eps
 *   p = p - (lr / (1 - b1^t)) * m / denom */
static void step_adam(recur_optim *opt, float *p, const float *grad, float lr)
{
    const recur_optim_config *c = &opt->config;
    const int decoupled = c->kind == RECUR_OPTIM_ADAMW;
    const float wd = c->weight_decay;
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    const float one_minus_b1 = (float)(1.0 - (double)b1);
    const float one_minus_b2 = (float)(1.0 - (double)b2);
    const double t = (double)opt->step;
    const double bias_correction1 = 1.0 - pow((double)b1, t);
    const double bias_correction2 = 1.0 - pow((double)b2, t);
    const float step_size = (float)((double)lr / bias_correction1);
    const float bias_correction2_sqrt = (float)sqrt(bias_correction2);
    const float decay = (float)(1.0 - (double)lr * (double)wd);
    /* branch-free so that the loops vectorize: multiplying p by 1 and adding 0 * p are
     * exact, so AdamW's decay and Adam's L2 term are applied to every element; AMSGrad
     * gets a loop of its own rather than a test per element */
    const float l2 = decoupled ? 0.0f : wd, keep = decoupled ? decay : 1.0f;
    float *restrict m = opt->exp_avg, *restrict v = opt->exp_avg_sq;
    float *restrict vmax = opt->max_exp_avg_sq, *restrict pp = p;
    const float *restrict gg = grad;
    const ptrdiff_t n = (ptrdiff_t)opt->n;
    if (!vmax) {
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
        for (ptrdiff_t i = 0; i < n; i++) {
            const float g = gg[i] + l2 * pp[i];
            const float q = pp[i] * keep;
            m[i] = b1 * m[i] + one_minus_b1 * g;
            v[i] = b2 * v[i] + one_minus_b2 * g * g;
            const float denom = sqrtf(v[i]) / bias_correction2_sqrt + eps;
            pp[i] = q - step_size * (m[i] / denom);
        }
    } else {
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
        for (ptrdiff_t i = 0; i < n; i++) {
            const float g = gg[i] + l2 * pp[i];
            const float q = pp[i] * keep;
            m[i] = b1 * m[i] + one_minus_b1 * g;
            v[i] = b2 * v[i] + one_minus_b2 * g * g;
            vmax[i] = v[i] > vmax[i] ? v[i] : vmax[i];
            const float denom = sqrtf(vmax[i]) / bias_correction2_sqrt + eps;
            pp[i] = q - step_size * (m[i] / denom);
        }
    }
}

/* RMSprop (torch/optim/rmsprop.py):
 *   g = grad + wd*p
 *   v = a*v + (1-a)*g^2
 *   centered: ga = a*ga + (1-a)*g, avg = sqrt(v - ga^2) + eps
 *   else:     avg = sqrt(v) + eps
 *   momentum: b = mu*b + g/avg, p = p - lr*b
 *   else:     p = p - lr*g/avg
 * v - ga^2 >= 0 in exact arithmetic (Cauchy-Schwarz); it is clamped at 0
 * so that float rounding cannot produce sqrt of a tiny negative (NaN),
 * the one place this departs from PyTorch. */
static void step_rmsprop(recur_optim *opt, float *p, const float *grad, float lr)
{
    const recur_optim_config *c = &opt->config;
    const float wd = c->weight_decay, a = c->alpha, mu = c->momentum, eps = c->eps;
    const float one_minus_a = (float)(1.0 - (double)a);
    float *v = opt->square_avg, *ga = opt->grad_avg, *b = opt->momentum_buffer;
#pragma omp parallel for schedule(static) if (opt->n >= PARALLEL_MIN)
    for (size_t i = 0; i < opt->n; i++) {
        float g = grad[i];
        if (wd != 0.0f)
            g += wd * p[i];
        v[i] = a * v[i] + one_minus_a * g * g;
        float avg;
        if (ga) {
            ga[i] = a * ga[i] + one_minus_a * g;
            float var = v[i] - ga[i] * ga[i];
            avg = sqrtf(var > 0.0f ? var : 0.0f) + eps;
        } else {
            avg = sqrtf(v[i]) + eps;
        }
        if (b) {
            b[i] = mu * b[i] + g / avg;
            p[i] -= lr * b[i];
        } else {
            p[i] -= lr * (g / avg);
        }
    }
}

/* Adagrad (torch/optim/adagrad.py), t = step:
 *   g = grad + wd*p
 *   clr = lr / (1 + (t-1)*lr_decay)
 *   s = s + g^2
 *   p = p - clr * g / (sqrt(s) + eps) */
static void step_adagrad(recur_optim *opt, float *p, const float *grad, float lr)
{
    const recur_optim_config *c = &opt->config;
    const float wd = c->weight_decay, eps = c->eps;
    const float clr =
        (float)((double)lr / (1.0 + (double)(opt->step - 1) * (double)c->lr_decay));
    float *s = opt->sum;
#pragma omp parallel for schedule(static) if (opt->n >= PARALLEL_MIN)
    for (size_t i = 0; i < opt->n; i++) {
        float g = grad[i];
        if (wd != 0.0f)
            g += wd * p[i];
        s[i] += g * g;
        p[i] -= clr * (g / (sqrtf(s[i]) + eps));
    }
}

int recur_optim_step(recur_optim *opt, float *params, const float *grads, float lr)
{
    if (!opt)
        return recur__error(RECUR_E_INVALID, "recur_optim_step: optimizer is NULL");
    if (opt->n && (!params || !grads))
        return recur__error(RECUR_E_INVALID, "recur_optim_step: %s is NULL",
                            params ? "grads" : "params");
    if (!(lr >= 0.0f) || isinf(lr))
        return recur__error(RECUR_E_INVALID, "%s: lr must be finite and >= 0 (got %g)",
                            optim_names[opt->config.kind], (double)lr);
    if (opt->step == INT64_MAX)
        return recur__error(RECUR_E_STATE, "optimizer step counter is at its maximum");
    opt->step++;
    switch (opt->config.kind) {
    case RECUR_OPTIM_SGD:
        step_sgd(opt, params, grads, lr);
        break;
    case RECUR_OPTIM_ADAM:
    case RECUR_OPTIM_ADAMW:
        step_adam(opt, params, grads, lr);
        break;
    case RECUR_OPTIM_RMSPROP:
        step_rmsprop(opt, params, grads, lr);
        break;
    case RECUR_OPTIM_ADAGRAD:
        step_adagrad(opt, params, grads, lr);
        break;
    }
    return RECUR_OK;
}

int recur_optim_state(recur_optim *opt, float **state, size_t *count)
{
    if (!opt || !state || !count)
        return recur__error(RECUR_E_INVALID, "recur_optim_state: NULL argument");
    *state = opt->state;
    *count = opt->state_count;
    return RECUR_OK;
}

int64_t recur_optim_get_step(const recur_optim *opt)
{
    return opt ? opt->step : 0;
}

int recur_optim_set_step(recur_optim *opt, int64_t step)
{
    if (!opt)
        return recur__error(RECUR_E_INVALID, "recur_optim_set_step: optimizer is NULL");
    if (step < 0)
        return recur__error(RECUR_E_INVALID, "optimizer step must be >= 0 (got %lld)",
                            (long long)step);
    opt->step = step;
    return RECUR_OK;
}
