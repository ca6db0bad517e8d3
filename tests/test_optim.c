/* test_optim.c - optimizers, gradient clipping and learning-rate schedules:
 * every optimizer (and each of its options) minimises a quadratic; first
 * steps match hand-computed values; invalid hyper-parameters are rejected
 * naming the field; saving the state and step and loading them into a fresh
 * optimizer continues bit-exactly; clipping and schedules at hand-computed
 * points; allocation failures come back as RECUR_E_NOMEM; large arrays (updated
 * and measured by several threads) give the same bits on one thread and two.
 * (PyTorch parity of the optimizers and of clipping is in test_parity.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "recur.h"

#define N 10
#define PI 3.14159265358979323846

/* loss(p) = 1/2 sum_i a_i (p_i - c_i)^2, a_i = 1 + i/2, c_i = i/10 - 0.3;
 * grad_i = a_i (p_i - c_i). */
static double quadratic(const float *p, float *grad)
{
    double loss = 0.0;
    for (int i = 0; i < N; i++) {
        double a = 1.0 + 0.5 * i, d = (double)p[i] - (0.1 * i - 0.3);
        loss += 0.5 * a * d * d;
        if (grad)
            grad[i] = (float)(a * d);
    }
    return loss;
}

static void start_params(float *p)
{
    for (int i = 0; i < N; i++)
        p[i] = 1.0f - 0.15f * (float)i;
}

/* One optimizer setting per line: the kind, its defaults changed by `tweak`. */
typedef struct {
    const char *label;
    recur_optim_kind kind;
    float lr;
    float momentum, dampening, weight_decay, alpha, lr_decay, initial_accumulator_value;
    int nesterov, amsgrad, centered;
} variant;

static const variant variants[] = {
    {"sgd", RECUR_OPTIM_SGD, 0.05f, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"sgd momentum dampening wd", RECUR_OPTIM_SGD, 0.02f, 0.9f, 0.3f, 0.01f, 0, 0, 0, 0, 0, 0},
    {"sgd nesterov", RECUR_OPTIM_SGD, 0.02f, 0.9f, 0, 0, 0, 0, 0, 1, 0, 0},
    {"adam", RECUR_OPTIM_ADAM, 0.05f, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"adam amsgrad wd", RECUR_OPTIM_ADAM, 0.05f, 0, 0, 0.01f, 0, 0, 0, 0, 1, 0},
    {"adamw", RECUR_OPTIM_ADAMW, 0.05f, 0, 0, 0.01f, 0, 0, 0, 0, 0, 0},
    {"adamw amsgrad", RECUR_OPTIM_ADAMW, 0.05f, 0, 0, 0.01f, 0, 0, 0, 0, 1, 0},
    {"rmsprop", RECUR_OPTIM_RMSPROP, 0.01f, 0, 0, 0, 0.99f, 0, 0, 0, 0, 0},
    {"rmsprop centered momentum wd", RECUR_OPTIM_RMSPROP, 0.005f, 0.5f, 0, 0.01f, 0.9f, 0, 0, 0,
     0, 1},
    {"adagrad", RECUR_OPTIM_ADAGRAD, 0.3f, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"adagrad lr_decay init wd", RECUR_OPTIM_ADAGRAD, 0.3f, 0, 0, 0.01f, 0, 0.01f, 0.1f, 0, 0, 0},
};
#define VARIANTS ((int)(sizeof variants / sizeof variants[0]))

static recur_optim_config config_of(const variant *v)
{
    recur_optim_config c = recur_optim_config_default(v->kind);
    c.lr = v->lr;
    c.momentum = v->momentum;
    c.dampening = v->dampening;
    c.weight_decay = v->weight_decay;
    if (v->kind == RECUR_OPTIM_RMSPROP)
        c.alpha = v->alpha;
    c.lr_decay = v->lr_decay;
    c.initial_accumulator_value = v->initial_accumulator_value;
    c.nesterov = v->nesterov;
    c.amsgrad = v->amsgrad;
    c.centered = v->centered;
    return c;
}

static void test_defaults_and_names(void)
{
    recur_optim_config c = recur_optim_config_default(RECUR_OPTIM_ADAM);
    CHECK(c.lr == 1e-3f);
    CHECK_NEAR(c.beta1, 0.9, 1e-7);
    CHECK_NEAR(c.beta2, 0.999, 1e-7);
    CHECK_NEAR(c.eps, 1e-8, 1e-15);
    CHECK(c.weight_decay == 0.0f && !c.amsgrad);
    c = recur_optim_config_default(RECUR_OPTIM_ADAMW);
    CHECK_NEAR(c.weight_decay, 1e-2, 1e-9);
    CHECK(c.lr == 1e-3f);
    c = recur_optim_config_default(RECUR_OPTIM_RMSPROP);
    CHECK(c.lr == 1e-2f);
    CHECK_NEAR(c.alpha, 0.99, 1e-7);
    CHECK_NEAR(c.eps, 1e-8, 1e-15);
    CHECK(c.momentum == 0.0f && !c.centered);
    c = recur_optim_config_default(RECUR_OPTIM_ADAGRAD);
    CHECK(c.lr == 1e-2f);
    CHECK_NEAR(c.eps, 1e-10, 1e-17);
    CHECK(c.lr_decay == 0.0f && c.initial_accumulator_value == 0.0f);
    c = recur_optim_config_default(RECUR_OPTIM_SGD);
    CHECK(c.momentum == 0.0f && c.dampening == 0.0f && !c.nesterov && c.weight_decay == 0.0f);
    for (int k = RECUR_OPTIM_SGD; k <= RECUR_OPTIM_ADAGRAD; k++) {
        c = recur_optim_config_default((recur_optim_kind)k);
        CHECK(c.kind == (recur_optim_kind)k);
        CHECK_OK(recur_optim_config_check(&c));
        recur_optim_kind parsed;
        CHECK_OK(recur_optim_parse(recur_optim_name((recur_optim_kind)k), &parsed));
        CHECK(parsed == (recur_optim_kind)k);
    }
    recur_optim_kind kind;
    CHECK_OK(recur_optim_parse("RMSprop", &kind));
    CHECK(kind == RECUR_OPTIM_RMSPROP);
    CHECK_OK(recur_optim_parse("AdamW", &kind));
    CHECK(kind == RECUR_OPTIM_ADAMW);
    CHECK_STATUS(recur_optim_parse("adamax", &kind), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("adamax");
    CHECK_STATUS(recur_optim_parse("adam ", &kind), RECUR_E_INVALID);
    CHECK(strcmp(recur_optim_name((recur_optim_kind)42), "unknown") == 0);
}

static void test_quadratic(void)
{
    for (int v = 0; v < VARIANTS; v++) {
        recur_optim_config c = config_of(&variants[v]);
        recur_optim *opt = NULL;
        CHECK_OK(recur_optim_create(&c, N, &opt));
        if (!opt)
            continue;
        float p[N], g[N];
        start_params(p);
        double first = quadratic(p, NULL), loss = first;
        for (int t = 0; t < 300; t++) {
            quadratic(p, g);
            CHECK_OK(recur_optim_step(opt, p, g, c.lr));
        }
        loss = quadratic(p, NULL);
        CHECK_MSG(loss < 1e-2 * first, "%s: loss %g after 300 steps from %g",
                  variants[v].label, loss, first);
        CHECK(recur_optim_get_step(opt) == 300);
        recur_optim_free(opt);
    }
}

/* First steps against the formulas, written out by hand. */
static void test_first_steps(void)
{
    const float p0[3] = {1.0f, -2.0f, 0.5f}, g1[3] = {0.5f, -1.5f, 2.0f};
    const float g2[3] = {-1.0f, 0.25f, 1.0f};
    float p[3];
    recur_optim *opt = NULL;

    /* sgd, momentum 0.9, dampening 0.5, lr 0.1: b1 = g1, b2 = 0.9 g1 + 0.5 g2 */
    recur_optim_config c = recur_optim_config_default(RECUR_OPTIM_SGD);
    c.momentum = 0.9f;
    c.dampening = 0.5f;
    CHECK_OK(recur_optim_create(&c, 3, &opt));
    memcpy(p, p0, sizeof p);
    CHECK_OK(recur_optim_step(opt, p, g1, 0.1f));
    CHECK_OK(recur_optim_step(opt, p, g2, 0.1f));
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(p[i], p0[i] - 0.1 * g1[i] - 0.1 * (0.9 * g1[i] + 0.5 * g2[i]), 1e-6);
    recur_optim_free(opt);

    /* sgd nesterov, momentum 0.9, weight decay 0.1: d = g + 0.1 p,
     * step 1: b = d, p -= lr (d + 0.9 b) = lr * 1.9 d */
    c = recur_optim_config_default(RECUR_OPTIM_SGD);
    c.momentum = 0.9f;
    c.nesterov = 1;
    c.weight_decay = 0.1f;
    CHECK_OK(recur_optim_create(&c, 3, &opt));
    memcpy(p, p0, sizeof p);
    CHECK_OK(recur_optim_step(opt, p, g1, 0.1f));
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(p[i], p0[i] - 0.1 * 1.9 * (g1[i] + 0.1 * p0[i]), 1e-6);
    recur_optim_free(opt);

    /* adam step 1: m = 0.1 g, v = 0.001 g^2, bias corrections 0.1 and 0.001,
     * so p -= lr * g / (|g| + eps) = lr * sign(g) */
    c = recur_optim_config_default(RECUR_OPTIM_ADAM);
    CHECK_OK(recur_optim_create(&c, 3, &opt));
    memcpy(p, p0, sizeof p);
    CHECK_OK(recur_optim_step(opt, p, g1, 0.01f));
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(p[i], p0[i] - 0.01 * (g1[i] > 0 ? 1 : -1), 1e-6);
    float *state = NULL;
    size_t count = 0;
    CHECK_OK(recur_optim_state(opt, &state, &count));
    CHECK(count == 6);
    if (count == 6) {
        CHECK_NEAR(state[0], (1 - (double)0.9f) * g1[0], 1e-9); /* exp_avg */
        CHECK_NEAR(state[3 + 2], (1 - (double)0.999f) * g1[2] * g1[2], 1e-9); /* exp_avg_sq */
    }
    recur_optim_free(opt);

    /* adamw step 1, wd 0.5: p = p (1 - lr wd) - lr sign(g) */
    c = recur_optim_config_default(RECUR_OPTIM_ADAMW);
    c.weight_decay = 0.5f;
    CHECK_OK(recur_optim_create(&c, 3, &opt));
    memcpy(p, p0, sizeof p);
    CHECK_OK(recur_optim_step(opt, p, g1, 0.01f));
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(p[i], p0[i] * (1 - 0.01 * 0.5) - 0.01 * (g1[i] > 0 ? 1 : -1), 1e-6);
    recur_optim_free(opt);

    /* rmsprop step 1, alpha 0.99: v = 0.01 g^2, p -= lr g / (0.1 |g|) */
    c = recur_optim_config_default(RECUR_OPTIM_RMSPROP);
    CHECK_OK(recur_optim_create(&c, 3, &opt));
    memcpy(p, p0, sizeof p);
    CHECK_OK(recur_optim_step(opt, p, g1, 0.01f));
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(p[i], p0[i] - 0.1 * (g1[i] > 0 ? 1 : -1), 1e-6);
    recur_optim_free(opt);

    /* adagrad, lr_decay 0.5: step 1 s = g1^2, p -= lr sign(g1);
     * step 2 s += g2^2, p -= lr / 1.5 * g2 / sqrt(s) */
    c = recur_optim_config_default(RECUR_OPTIM_ADAGRAD);
    c.lr_decay = 0.5f;
    CHECK_OK(recur_optim_create(&c, 3, &opt));
    memcpy(p, p0, sizeof p);
    CHECK_OK(recur_optim_step(opt, p, g1, 0.1f));
    CHECK_OK(recur_optim_step(opt, p, g2, 0.1f));
    for (int i = 0; i < 3; i++) {
        double s = (double)g1[i] * g1[i] + (double)g2[i] * g2[i];
        double want = p0[i] - 0.1 * (g1[i] > 0 ? 1 : -1) - 0.1 / 1.5 * g2[i] / sqrt(s);
        CHECK_NEAR(p[i], want, 1e-6);
    }
    recur_optim_free(opt);

    /* adagrad's accumulator starts at initial_accumulator_value */
    c.initial_accumulator_value = 0.25f;
    CHECK_OK(recur_optim_create(&c, 3, &opt));
    CHECK_OK(recur_optim_state(opt, &state, &count));
    CHECK(count == 3 && state && state[0] == 0.25f && state[2] == 0.25f);
    recur_optim_free(opt);
}

typedef struct {
    recur_optim_kind kind;
    const char *field; /* field set to `value` */
    float value;
    const char *mentions;
} bad_setting;

static void set_field(recur_optim_config *c, const char *field, float value)
{
    if (strcmp(field, "lr") == 0) c->lr = value;
    else if (strcmp(field, "momentum") == 0) c->momentum = value;
    else if (strcmp(field, "dampening") == 0) c->dampening = value;
    else if (strcmp(field, "weight_decay") == 0) c->weight_decay = value;
    else if (strcmp(field, "beta1") == 0) c->beta1 = value;
    else if (strcmp(field, "beta2") == 0) c->beta2 = value;
    else if (strcmp(field, "eps") == 0) c->eps = value;
    else if (strcmp(field, "alpha") == 0) c->alpha = value;
    else if (strcmp(field, "lr_decay") == 0) c->lr_decay = value;
    else if (strcmp(field, "initial_accumulator_value") == 0) c->initial_accumulator_value = value;
    else if (strcmp(field, "nesterov") == 0) c->nesterov = (int)value;
}

static void test_invalid(void)
{
    const bad_setting bad[] = {
        {RECUR_OPTIM_SGD, "lr", -0.1f, "lr must"},
        {RECUR_OPTIM_ADAM, "lr", NAN, "lr must"},
        {RECUR_OPTIM_ADAM, "lr", INFINITY, "lr must"},
        {RECUR_OPTIM_SGD, "momentum", -0.5f, "momentum"},
        {RECUR_OPTIM_SGD, "weight_decay", -1.0f, "weight_decay"},
        {RECUR_OPTIM_SGD, "nesterov", 1.0f, "nesterov"}, /* momentum 0 */
        {RECUR_OPTIM_SGD, "dampening", NAN, "dampening"},
        {RECUR_OPTIM_ADAM, "beta1", 1.0f, "beta1"},
        {RECUR_OPTIM_ADAM, "beta1", -0.1f, "beta1"},
        {RECUR_OPTIM_ADAMW, "beta2", 1.5f, "beta2"},
        {RECUR_OPTIM_ADAMW, "beta2", NAN, "beta2"},
        {RECUR_OPTIM_ADAM, "eps", -1e-8f, "eps"},
        {RECUR_OPTIM_ADAMW, "weight_decay", -0.01f, "weight_decay"},
        {RECUR_OPTIM_RMSPROP, "alpha", 1.5f, "alpha"},
        {RECUR_OPTIM_RMSPROP, "alpha", -0.5f, "alpha"},
        {RECUR_OPTIM_RMSPROP, "eps", -1.0f, "eps"},
        {RECUR_OPTIM_RMSPROP, "momentum", -0.9f, "momentum"},
        {RECUR_OPTIM_ADAGRAD, "lr_decay", -0.1f, "lr_decay"},
        {RECUR_OPTIM_ADAGRAD, "initial_accumulator_value", -1.0f, "initial_accumulator_value"},
        {RECUR_OPTIM_ADAGRAD, "eps", -1e-10f, "eps"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        recur_optim_config c = recur_optim_config_default(bad[k].kind);
        set_field(&c, bad[k].field, bad[k].value);
        recur_optim *opt = (recur_optim *)&c; /* must be reset to NULL on failure */
        CHECK_STATUS(recur_optim_create(&c, 4, &opt), RECUR_E_INVALID);
        CHECK_ERROR_MENTIONS(bad[k].mentions);
        CHECK(opt == NULL);
        CHECK_STATUS(recur_optim_config_check(&c), RECUR_E_INVALID);
    }

    /* nesterov with momentum but with dampening */
    recur_optim_config c = recur_optim_config_default(RECUR_OPTIM_SGD);
    c.nesterov = 1;
    c.momentum = 0.9f;
    CHECK_OK(recur_optim_config_check(&c));
    c.dampening = 0.1f;
    CHECK_STATUS(recur_optim_config_check(&c), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("nesterov");
    CHECK_ERROR_MENTIONS("dampening");

    /* an unknown kind */
    c = recur_optim_config_default(RECUR_OPTIM_SGD);
    c.kind = (recur_optim_kind)17;
    CHECK_STATUS(recur_optim_config_check(&c), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("kind");
    CHECK_STATUS(recur_optim_config_check(NULL), RECUR_E_INVALID);

    /* fields another optimizer uses are ignored: beta1 = 5 is fine for sgd */
    c = recur_optim_config_default(RECUR_OPTIM_SGD);
    c.beta1 = 5.0f;
    CHECK_OK(recur_optim_config_check(&c));

    /* a bad per-step rate or step counter changes nothing */
    c = recur_optim_config_default(RECUR_OPTIM_ADAM);
    recur_optim *opt = NULL;
    CHECK_OK(recur_optim_create(&c, 2, &opt));
    float p[2] = {1, 2}, g[2] = {0.5f, -0.5f};
    CHECK_STATUS(recur_optim_step(opt, p, g, -1e-3f), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("lr");
    CHECK_STATUS(recur_optim_step(opt, p, g, NAN), RECUR_E_INVALID);
    CHECK(recur_optim_get_step(opt) == 0 && p[0] == 1.0f && p[1] == 2.0f);
    CHECK_STATUS(recur_optim_step(opt, NULL, g, 1e-3f), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("params");
    CHECK_STATUS(recur_optim_step(opt, p, NULL, 1e-3f), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("grads");
    CHECK_STATUS(recur_optim_set_step(opt, -1), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("step");
    CHECK(recur_optim_get_step(opt) == 0);
    CHECK_OK(recur_optim_set_step(opt, 7));
    CHECK(recur_optim_get_step(opt) == 7);
    recur_optim_free(opt);
    recur_optim_free(NULL);
    CHECK_STATUS(recur_optim_create(&c, 2, NULL), RECUR_E_INVALID);
}

/* Run A for 4 steps, save its state, step and parameters; continue A for 5
 * more steps, and a fresh B loaded from the save for the same 5 steps: the
 * parameters and states must be identical bit for bit. */
static void test_resume(void)
{
    const size_t expected_buffers[VARIANTS] = {0, 1, 1, 2, 3, 2, 3, 1, 3, 1, 1};
    for (int v = 0; v < VARIANTS; v++) {
        recur_optim_config c = config_of(&variants[v]);
        recur_optim *a = NULL, *b = NULL;
        CHECK_OK(recur_optim_create(&c, N, &a));
        CHECK_OK(recur_optim_create(&c, N, &b));
        if (!a || !b) {
            recur_optim_free(a);
            recur_optim_free(b);
            continue;
        }
        float pa[N], pb[N], g[N], saved[3 * N];
        start_params(pa);
        for (int t = 0; t < 4; t++) {
            quadratic(pa, g);
            CHECK_OK(recur_optim_step(a, pa, g, c.lr));
        }
        float *sa = NULL, *sb = NULL;
        size_t ca = 0, cb = 0;
        CHECK_OK(recur_optim_state(a, &sa, &ca));
        CHECK_OK(recur_optim_state(b, &sb, &cb));
        CHECK_MSG(ca == expected_buffers[v] * N, "%s: state of %zu floats, expected %zu",
                  variants[v].label, ca, expected_buffers[v] * N);
        CHECK(ca == cb && ca <= 3 * N);
        CHECK((ca == 0) == (sa == NULL));
        if (ca != cb || ca > 3 * N) {
            recur_optim_free(a);
            recur_optim_free(b);
            continue;
        }
        /* the save: state, step and parameters */
        if (ca)
            memcpy(saved, sa, ca * sizeof(float));
        int64_t step = recur_optim_get_step(a);
        memcpy(pb, pa, sizeof pb);
        /* the load into the fresh optimizer */
        if (cb)
            memcpy(sb, saved, cb * sizeof(float));
        CHECK_OK(recur_optim_set_step(b, step));
        for (int t = 0; t < 5; t++) {
            quadratic(pa, g);
            CHECK_OK(recur_optim_step(a, pa, g, c.lr * 0.9f));
            quadratic(pb, g);
            CHECK_OK(recur_optim_step(b, pb, g, c.lr * 0.9f));
        }
        CHECK_MSG(memcmp(pa, pb, sizeof pa) == 0, "%s: resumed parameters differ",
                  variants[v].label);
        CHECK_MSG(ca == 0 || memcmp(sa, sb, ca * sizeof(float)) == 0,
                  "%s: resumed state differs", variants[v].label);
        CHECK(recur_optim_get_step(a) == 9 && recur_optim_get_step(b) == 9);
        recur_optim_free(a);
        recur_optim_free(b);
    }

    /* the step counter matters: Adam restored without it (bias correction
     * restarts) and SGD momentum restored without it (buffer re-initialised)
     * both diverge, so the test above would notice a lost step. */
    const recur_optim_kind kinds[2] = {RECUR_OPTIM_ADAM, RECUR_OPTIM_SGD};
    for (int k = 0; k < 2; k++) {
        recur_optim_config c = recur_optim_config_default(kinds[k]);
        c.momentum = 0.9f;
        recur_optim *a = NULL, *b = NULL;
        CHECK_OK(recur_optim_create(&c, N, &a));
        CHECK_OK(recur_optim_create(&c, N, &b));
        if (!a || !b) {
            recur_optim_free(a);
            recur_optim_free(b);
            continue;
        }
        float pa[N], pb[N], g[N];
        start_params(pa);
        for (int t = 0; t < 3; t++) {
            quadratic(pa, g);
            CHECK_OK(recur_optim_step(a, pa, g, 0.01f));
        }
        float *sa, *sb;
        size_t ca, cb;
        CHECK_OK(recur_optim_state(a, &sa, &ca));
        CHECK_OK(recur_optim_state(b, &sb, &cb));
        memcpy(sb, sa, ca * sizeof(float));
        memcpy(pb, pa, sizeof pb);
        quadratic(pa, g);
        CHECK_OK(recur_optim_step(a, pa, g, 0.01f));
        CHECK_OK(recur_optim_step(b, pb, g, 0.01f));
        CHECK_MSG(memcmp(pa, pb, sizeof pa) != 0, "%s: step counter had no effect",
                  recur_optim_name(kinds[k]));
        recur_optim_free(a);
        recur_optim_free(b);
    }
}

static void test_clip(void)
{
    float g[2] = {3.0f, 4.0f};
    double total = -1.0;
    CHECK_NEAR(recur_grad_norm(g, 2), 5.0, 0.0);
    CHECK_OK(recur_clip_grad_norm(g, 2, 1.0, &total));
    CHECK_NEAR(total, 5.0, 0.0);
    CHECK_NEAR(g[0], 0.6, 1e-6);
    CHECK_NEAR(g[1], 0.8, 1e-6);
    /* exactly: 3 / (5 + 1e-6), the epsilon included */
    CHECK_NEAR(g[0], 3.0 / (5.0 + 1e-6), 1e-7);

    /* below max_norm: untouched, bit for bit */
    float small[3] = {0.3f, -0.4f, 0.1f};
    CHECK_OK(recur_clip_grad_norm(small, 3, 1.0, &total));
    CHECK(small[0] == 0.3f && small[1] == -0.4f && small[2] == 0.1f);
    CHECK_NEAR(total, sqrt(0.3 * 0.3 + 0.4 * 0.4 + 0.1 * 0.1), 1e-7);

    /* at max_norm the 1e-6 still scales by 1 / (1 + 1e-6), as PyTorch does */
    float edge[2] = {0.6f, 0.8f};
    double edge_norm = recur_grad_norm(edge, 2);
    CHECK_OK(recur_clip_grad_norm(edge, 2, edge_norm, NULL));
    CHECK(edge[0] < 0.6f);
    CHECK_NEAR(edge[0], 0.6f * (edge_norm / (edge_norm + 1e-6)), 1e-7);

    /* +Inf disables clipping; a non-positive max_norm is refused */
    float big[2] = {300.0f, 400.0f};
    CHECK_OK(recur_clip_grad_norm(big, 2, INFINITY, &total));
    CHECK(big[0] == 300.0f && total == 500.0);
    CHECK_STATUS(recur_clip_grad_norm(big, 2, 0.0, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("max_norm");
    CHECK_STATUS(recur_clip_grad_norm(big, 2, NAN, NULL), RECUR_E_INVALID);

    /* a non-finite norm: RECUR_E_NUMERIC, gradients left as they were */
    float bad[3] = {1.0f, NAN, 2.0f};
    CHECK_STATUS(recur_clip_grad_norm(bad, 3, 1.0, &total), RECUR_E_NUMERIC);
    CHECK(isnan(total) && bad[0] == 1.0f && bad[2] == 2.0f);
    float inf[2] = {INFINITY, 1.0f};
    CHECK_STATUS(recur_clip_grad_norm(inf, 2, 1.0, &total), RECUR_E_NUMERIC);
    CHECK(isinf(total) && inf[1] == 1.0f);

    /* the empty array and the double accumulation (float would drift:
     * a million 0.1f squared sums to 1e4 only in double) */
    CHECK_OK(recur_clip_grad_norm(NULL, 0, 1.0, &total));
    CHECK(total == 0.0);
    size_t n = 1000000;
    float *many = malloc(n * sizeof *many);
    if (many) {
        for (size_t i = 0; i < n; i++)
            many[i] = 0.1f;
        double want = sqrt((double)n) * (double)0.1f;
        CHECK_NEAR(recur_grad_norm(many, n), want, 1e-9 * want);
        CHECK_OK(recur_clip_grad_norm(many, n, 1.0, &total));
        CHECK_NEAR(recur_grad_norm(many, n), 1.0, 1e-5);
        free(many);
    }

    /* by value */
    float v[5] = {-3.0f, 0.5f, 2.0f, -0.25f, NAN};
    CHECK_OK(recur_clip_grad_value(v, 5, 1.0f));
    CHECK(v[0] == -1.0f && v[1] == 0.5f && v[2] == 1.0f && v[3] == -0.25f && isnan(v[4]));
    CHECK_STATUS(recur_clip_grad_value(v, 5, -1.0f), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("clip");
    float zero[2] = {2.0f, -2.0f};
    CHECK_OK(recur_clip_grad_value(zero, 2, 0.0f));
    CHECK(zero[0] == 0.0f && zero[1] == 0.0f);

    /* finiteness */
    float ok[3] = {1.0f, -1e30f, 0.0f};
    CHECK(recur_grads_finite(ok, 3) == 1);
    CHECK(recur_grads_finite(NULL, 0) == 1);
    ok[1] = INFINITY;
    CHECK(recur_grads_finite(ok, 3) == 0);
    ok[1] = -INFINITY;
    CHECK(recur_grads_finite(ok, 3) == 0);
    ok[1] = NAN;
    CHECK(recur_grads_finite(ok, 3) == 0);
    CHECK(recur_grads_finite(ok, 1) == 1); /* only the first n are read */
}

static void test_schedules(void)
{
    recur_schedule s = recur_schedule_default();
    CHECK(s.kind == RECUR_SCHEDULE_CONSTANT);
    CHECK_OK(recur_schedule_check(&s));
    CHECK(recur_schedule_lr(&s, 0.01f, 0) == 0.01f);
    CHECK(recur_schedule_lr(&s, 0.01f, 123456) == 0.01f);

    /* step decay: gamma 0.5 every 10 steps */
    s.kind = RECUR_SCHEDULE_STEP;
    s.step_size = 10;
    s.gamma = 0.5f;
    CHECK_OK(recur_schedule_check(&s));
    CHECK_NEAR(recur_schedule_lr(&s, 0.1f, 0), 0.1, 1e-8);
    CHECK_NEAR(recur_schedule_lr(&s, 0.1f, 9), 0.1, 1e-8);
    CHECK_NEAR(recur_schedule_lr(&s, 0.1f, 10), 0.05, 1e-8);
    CHECK_NEAR(recur_schedule_lr(&s, 0.1f, 19), 0.05, 1e-8);
    CHECK_NEAR(recur_schedule_lr(&s, 0.1f, 20), 0.025, 1e-8);
    CHECK_NEAR(recur_schedule_lr(&s, 0.1f, 35), 0.0125, 1e-8);

    /* warm-up applies to step decay too */
    s.warmup_steps = 4;
    CHECK_NEAR(recur_schedule_lr(&s, 0.1f, 0), 0.0, 0.0);
    CHECK_NEAR(recur_schedule_lr(&s, 0.1f, 2), 0.05, 1e-8);
    CHECK_NEAR(recur_schedule_lr(&s, 0.1f, 4), 0.1, 1e-8);

    /* cosine: warm-up 10, total 110, lr 1 -> 0.1 */
    s = recur_schedule_default();
    s.kind = RECUR_SCHEDULE_COSINE;
    s.warmup_steps = 10;
    s.total_steps = 110;
    s.min_lr = 0.1f;
    CHECK_OK(recur_schedule_check(&s));
    CHECK_NEAR(recur_schedule_lr(&s, 1.0f, -3), 0.0, 0.0);
    CHECK_NEAR(recur_schedule_lr(&s, 1.0f, 0), 0.0, 0.0);  /* warm-up start */
    CHECK_NEAR(recur_schedule_lr(&s, 1.0f, 1), 0.1, 1e-7);
    CHECK_NEAR(recur_schedule_lr(&s, 1.0f, 5), 0.5, 1e-7);
    CHECK_NEAR(recur_schedule_lr(&s, 1.0f, 10), 1.0, 1e-7); /* warm-up end: peak */
    CHECK_NEAR(recur_schedule_lr(&s, 1.0f, 35), 0.1 + 0.9 * (1 + cos(PI / 4)) / 2, 1e-7);
    CHECK_NEAR(recur_schedule_lr(&s, 1.0f, 60), 0.55, 1e-7); /* midpoint */
    CHECK_NEAR(recur_schedule_lr(&s, 1.0f, 110), 0.1, 1e-7); /* end: min_lr */
    CHECK_NEAR(recur_schedule_lr(&s, 1.0f, 5000), 0.1, 1e-7);
    float previous = recur_schedule_lr(&s, 1.0f, 10);
    int increasing = 0;
    for (int64_t t = 11; t <= 110; t++) {
        float lr = recur_schedule_lr(&s, 1.0f, t);
        increasing += lr > previous;
        previous = lr;
    }
    CHECK(increasing == 0);

    /* cosine without warm-up starts at the base rate */
    s.warmup_steps = 0;
    s.total_steps = 100;
    s.min_lr = 0.0f;
    CHECK_NEAR(recur_schedule_lr(&s, 2.0f, 0), 2.0, 1e-7);
    CHECK_NEAR(recur_schedule_lr(&s, 2.0f, 50), 1.0, 1e-7);
    CHECK_NEAR(recur_schedule_lr(&s, 2.0f, 100), 0.0, 1e-7);

    /* constant with warm-up */
    s = recur_schedule_default();
    s.warmup_steps = 100;
    CHECK_NEAR(recur_schedule_lr(&s, 0.2f, 25), 0.05, 1e-8);
    CHECK_NEAR(recur_schedule_lr(&s, 0.2f, 100), 0.2, 1e-8);

    /* invalid schedules name their field; recur_schedule_lr then returns base_lr */
    s = recur_schedule_default();
    s.kind = RECUR_SCHEDULE_STEP;
    s.step_size = 0;
    CHECK_STATUS(recur_schedule_check(&s), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("step_size");
    CHECK(recur_schedule_lr(&s, 0.3f, 50) == 0.3f);
    s.step_size = 5;
    s.gamma = 0.0f;
    CHECK_STATUS(recur_schedule_check(&s), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("gamma");
    s.gamma = NAN;
    CHECK_STATUS(recur_schedule_check(&s), RECUR_E_INVALID);
    s = recur_schedule_default();
    s.warmup_steps = -1;
    CHECK_STATUS(recur_schedule_check(&s), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("warmup_steps");
    s = recur_schedule_default();
    s.kind = RECUR_SCHEDULE_COSINE;
    s.warmup_steps = 10;
    s.total_steps = 10;
    CHECK_STATUS(recur_schedule_check(&s), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("total_steps");
    s.total_steps = 20;
    s.min_lr = -0.1f;
    CHECK_STATUS(recur_schedule_check(&s), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("min_lr");
    s = recur_schedule_default();
    s.kind = (recur_schedule_kind)9;
    CHECK_STATUS(recur_schedule_check(&s), RECUR_E_INVALID);
    CHECK_STATUS(recur_schedule_check(NULL), RECUR_E_INVALID);

    /* names */
    recur_schedule_kind kind;
    for (int k = RECUR_SCHEDULE_CONSTANT; k <= RECUR_SCHEDULE_COSINE; k++) {
        CHECK_OK(recur_schedule_parse(recur_schedule_name((recur_schedule_kind)k), &kind));
        CHECK(kind == (recur_schedule_kind)k);
    }
    CHECK_OK(recur_schedule_parse("Cosine", &kind));
    CHECK(kind == RECUR_SCHEDULE_COSINE);
    CHECK_STATUS(recur_schedule_parse("linear", &kind), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("linear");
    CHECK_STATUS(recur_schedule_parse("step2", &kind), RECUR_E_INVALID);
    CHECK(strcmp(recur_schedule_name((recur_schedule_kind)5), "unknown") == 0);
}

/* An allocator that fails after `allow` successful allocations. */
static int allow;
static int live;
static void *failing_malloc(size_t size, void *user)
{
    (void)user;
    if (allow-- <= 0)
        return NULL;
    live++;
    return malloc(size);
}
static void counting_free(void *ptr, void *user)
{
    (void)user;
    if (ptr)
        live--;
    free(ptr);
}

static void test_out_of_memory(void)
{
    recur_allocator a = {failing_malloc, counting_free, NULL};
    recur_set_allocator(&a);
    recur_optim_config c = recur_optim_config_default(RECUR_OPTIM_ADAM);
    for (int k = 0; k < 2; k++) {
        allow = k;
        live = 0;
        recur_optim *opt = NULL;
        CHECK_STATUS(recur_optim_create(&c, 100, &opt), RECUR_E_NOMEM);
        CHECK(opt == NULL && live == 0);
    }
    allow = 2;
    live = 0;
    recur_optim *opt = NULL;
    CHECK_OK(recur_optim_create(&c, 100, &opt));
    recur_optim_free(opt);
    CHECK(live == 0);
    /* a state size that overflows */
    recur_set_allocator(NULL);
    CHECK_STATUS(recur_optim_create(&c, SIZE_MAX / 2, &opt), RECUR_E_NOMEM);
}

/* Above the size where the updates, the norm, the clipping and the finiteness
 * check are split over threads: 1 and 2 threads give the same bits, every
 * optimizer variant, over a few steps; the norm equals a plain double sum. */
static void test_threads_agree(void)
{
    enum { BIG = 100003, STEPS = 3 };
    float *g = malloc(BIG * sizeof *g), *p[2] = {malloc(BIG * sizeof(float)),
                                                 malloc(BIG * sizeof(float))};
    CHECK(g && p[0] && p[1]);
    if (!g || !p[0] || !p[1]) {
        free(g), free(p[0]), free(p[1]);
        return;
    }
    recur_rng rng;
    for (int v = 0; v < VARIANTS; v++) {
        recur_optim_config c = config_of(&variants[v]);
        for (int threads = 1; threads <= 2; threads++) {
            recur_set_threads(threads);
            recur_optim *opt = NULL;
            CHECK_OK(recur_optim_create(&c, BIG, &opt));
            recur_rng_seed(&rng, 11);
            for (int i = 0; i < BIG; i++)
                p[threads - 1][i] = (float)recur_rng_uniform(&rng) - 0.5f;
            for (int step = 0; opt && step < STEPS; step++) {
                for (int i = 0; i < BIG; i++)
                    g[i] = (float)recur_rng_uniform(&rng) - 0.3f;
                CHECK_OK(recur_clip_grad_norm(g, BIG, 50.0, NULL));
                CHECK_OK(recur_optim_step(opt, p[threads - 1], g, c.lr));
            }
            recur_optim_free(opt);
        }
        CHECK_MSG(memcmp(p[0], p[1], BIG * sizeof(float)) == 0,
                  "%s: 2 threads differ from 1", variants[v].label);
    }
    double plain = 0.0, norm[2];
    for (int i = 0; i < BIG; i++)
        plain += (double)g[i] * (double)g[i];
    for (int threads = 1; threads <= 2; threads++) {
        recur_set_threads(threads);
        norm[threads - 1] = recur_grad_norm(g, BIG);
        CHECK(recur_grads_finite(g, BIG));
    }
    CHECK(norm[0] == norm[1]);
    CHECK_NEAR(norm[0], sqrt(plain), 1e-12 * sqrt(plain));
    g[BIG - 2] = NAN;
    CHECK(!recur_grads_finite(g, BIG));
    recur_set_threads(0);
    free(g), free(p[0]), free(p[1]);
}

int main(void)
{
    test_defaults_and_names();
    test_quadratic();
    test_first_steps();
    test_invalid();
    test_resume();
    test_clip();
    test_schedules();
    test_out_of_memory();
    test_threads_agree();
    CHECK_DONE();
}
