/* test_rnn.c - the recurrent stack: gradient checks by central differences
 * for every cell (single, stacked, bidirectional, variable-length, with
 * dropout) over parameters, inputs and initial states; a padded batch equals
 * each sequence run alone; streaming equals the full forward; batch-first
 * equals time-major; truncated BPTT accumulates; configuration and call-order
 * errors. All but the errors run again with layer normalization, whose
 * forward is also checked against a direct computation. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "recur.h"

static void fill(float *v, size_t n, recur_rng *rng, float scale)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (2.0f * recur_rng_uniform(rng) - 1.0f) * scale;
}

/* Whether problem_init builds stacks with layer normalization (its gains then
 * drawn around 1, so that their gradients and effect are checked). */
static int g_layer_norm = 0;

typedef struct problem {
    recur_rnn_config cfg;
    int T, B;
    int *lengths;
    float *x, *h0, *c0, *dy, *dhn, *dcn;
    size_t nx, ny, ns;
    bool lstm;
    recur_rnn *rnn;
    uint64_t dropout_seed;
} problem;

static void problem_init(problem *p, recur_cell cell, int I, int H, int L, int bi, int T, int B,
                         const int *lengths, float dropout, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->cfg = recur_rnn_config_default();
    p->cfg.cell = cell;
    p->cfg.input_size = I;
    p->cfg.hidden_size = H;
    p->cfg.num_layers = L;
    p->cfg.bidirectional = bi;
    p->cfg.dropout = dropout;
    p->cfg.layer_norm = g_layer_norm;
    p->T = T;
    p->B = B;
    p->lstm = cell == RECUR_CELL_LSTM;
    int D = bi ? 2 : 1;
    p->nx = (size_t)T * B * I;
    p->ny = (size_t)T * B * D * H;
    p->ns = (size_t)L * D * B * H;
    recur_rng rng;
    recur_rng_seed(&rng, seed);
    p->dropout_seed = seed + 1000;
    p->x = malloc(p->nx * sizeof(float));
    p->h0 = malloc(p->ns * sizeof(float));
    p->c0 = malloc(p->ns * sizeof(float));
    p->dy = malloc(p->ny * sizeof(float));
    p->dhn = malloc(p->ns * sizeof(float));
    p->dcn = malloc(p->ns * sizeof(float));
    fill(p->x, p->nx, &rng, 1.0f);
    fill(p->h0, p->ns, &rng, 0.5f);
    fill(p->c0, p->ns, &rng, 0.5f);
    fill(p->dy, p->ny, &rng, 1.0f);
    fill(p->dhn, p->ns, &rng, 1.0f);
    fill(p->dcn, p->ns, &rng, 1.0f);
    if (lengths) {
        p->lengths = malloc(B * sizeof(int));
        memcpy(p->lengths, lengths, B * sizeof(int));
    }
    CHECK_OK(recur_rnn_create(&p->cfg, NULL, NULL, &p->rnn));
    recur_rnn_init(p->rnn, &rng);
    for (int i = 0; i < recur_rnn_tensor_count(p->rnn); i++) {
        const recur_param_view *v = recur_rnn_tensor_at(p->rnn, i);
        if (strncmp(v->name, "layer_norm", 10) == 0)
            for (size_t j = 0; j < v->numel; j++)
                recur_rnn_params(p->rnn)[v->offset + j] = 1.0f + 0.5f * (recur_rng_uniform(&rng) - 0.5f);
    }
}

static void problem_free(problem *p)
{
    recur_rnn_free(p->rnn);
    free(p->x), free(p->h0), free(p->c0), free(p->dy), free(p->dhn), free(p->dcn);
    free(p->lengths);
}

/* L = sum(y*dy) + sum(hn*dhn) + sum(cn*dcn), accumulated in double. The
 * dropout masks are redrawn from the same seed every call. */
static double problem_loss(problem *p, recur_mode mode, float *y, float *hn, float *cn)
{
    recur_rng rng;
    recur_rng_seed(&rng, p->dropout_seed);
    recur_rnn_input in = {p->T, p->B, p->x, 0, p->lengths, p->h0, p->lstm ? p->c0 : NULL};
    recur_rnn_output out = {y, hn, p->lstm ? cn : NULL};
    if (recur_rnn_forward(p->rnn, mode, &in, &out, &rng) != RECUR_OK)
        return NAN;
    double loss = 0.0;
    for (size_t i = 0; i < p->ny; i++)
        loss += (double)y[i] * p->dy[i];
    for (size_t i = 0; i < p->ns; i++) {
        loss += (double)hn[i] * p->dhn[i];
        if (p->lstm)
            loss += (double)cn[i] * p->dcn[i];
    }
    return loss;
}

/* Compares an analytic gradient with central differences of the loss with
 * respect to every element of `v` (n values). */
static void check_gradient(problem *p, const char *what, float *v, const float *analytic, size_t n,
                           float eps)
{
    float *y = malloc(p->ny * sizeof(float)), *hn = malloc(p->ns * sizeof(float));
    float *cn = malloc(p->ns * sizeof(float));
    double scale = 0.0, worst = 0.0;
    size_t worst_at = 0;
    double worst_num = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(analytic[i]) > scale)
            scale = fabs(analytic[i]);
    for (size_t i = 0; i < n; i++) {
        float saved = v[i];
        v[i] = saved + eps;
        double lp = problem_loss(p, RECUR_MODE_TRAIN, y, hn, cn);
        v[i] = saved - eps;
        double lm = problem_loss(p, RECUR_MODE_TRAIN, y, hn, cn);
        v[i] = saved;
        double numeric = (lp - lm) / (2.0 * eps);
        double err = fabs(numeric - analytic[i]);
        if (!(err <= worst)) {
            worst = err;
            worst_at = i;
            worst_num = numeric;
        }
    }
    double rel = worst / (scale > 1e-6 ? scale : 1e-6);
    /* ReLU under layer normalization: the kinks sit where the normalized values do, near 0,
     * so the step must be small (2e-4) and float rounding shows more */
    const double tol = p->cfg.layer_norm && p->cfg.cell == RECUR_CELL_RNN_RELU ? 5e-3 : 2e-3;
    CHECK_MSG(rel < tol, "%s %s L%d D%d varlen=%d ln=%d dropout=%g: gradient error %.3g (rel %.3g > %g) at "
              "[%zu]: analytic %.6g numeric %.6g", recur_cell_name(p->cfg.cell), what,
              p->cfg.num_layers, p->cfg.bidirectional ? 2 : 1, p->lengths != NULL, p->cfg.layer_norm,
              (double)p->cfg.dropout, worst, rel, tol, worst_at, (double)analytic[worst_at], worst_num);
    free(y), free(hn), free(cn);
}

static void gradient_case(recur_cell cell, int I, int H, int L, int bi, int T, int B,
                          const int *lengths, float dropout, uint64_t seed)
{
    problem p;
    problem_init(&p, cell, I, H, L, bi, T, B, lengths, dropout, seed);
    float *y = malloc(p.ny * sizeof(float)), *hn = malloc(p.ns * sizeof(float));
    float *cn = malloc(p.ns * sizeof(float));
    float *dx = malloc(p.nx * sizeof(float)), *dh0 = malloc(p.ns * sizeof(float));
    float *dc0 = malloc(p.ns * sizeof(float));
    recur_rnn_zero_grad(p.rnn);
    double loss = problem_loss(&p, RECUR_MODE_TRAIN, y, hn, cn);
    CHECK(isfinite(loss));
    recur_rnn_grad_in gin = {p.dy, p.dhn, p.lstm ? p.dcn : NULL};
    recur_rnn_grad_out gout = {dx, dh0, p.lstm ? dc0 : NULL};
    CHECK_OK(recur_rnn_backward(p.rnn, &gin, &gout));
    size_t np = recur_rnn_size(p.rnn);
    float *grads = malloc(np * sizeof(float));
    memcpy(grads, recur_rnn_grads(p.rnn), np * sizeof(float));
    /* ReLU has kinks: a smaller step keeps the difference on one side. */
    float eps = cell == RECUR_CELL_RNN_RELU ? (g_layer_norm ? 2e-4f : 1e-3f)
                : g_layer_norm                ? 1e-3f
                                              : 1e-2f;
    check_gradient(&p, "params", recur_rnn_params(p.rnn), grads, np, eps);
    check_gradient(&p, "x", p.x, dx, p.nx, eps);
    check_gradient(&p, "h0", p.h0, dh0, p.ns, eps);
    if (p.lstm)
        check_gradient(&p, "c0", p.c0, dc0, p.ns, eps);
    if (lengths) {
        /* no gradient reaches inputs past a sequence's end */
        double past = 0.0;
        for (int t = 0; t < T; t++)
            for (int b = 0; b < B; b++)
                if (t >= lengths[b])
                    for (int i = 0; i < I; i++)
                        past += fabs(dx[((size_t)t * B + b) * I + i]);
        CHECK_NEAR(past, 0.0, 0.0);
    }
    free(grads), free(y), free(hn), free(cn), free(dx), free(dh0), free(dc0);
    problem_free(&p);
}

static const recur_cell all_cells[] = {RECUR_CELL_RNN_TANH, RECUR_CELL_RNN_RELU, RECUR_CELL_LSTM,
                                       RECUR_CELL_GRU};

static void test_gradients(void)
{
    const int lengths[3] = {4, 1, 3};
    if (g_layer_norm) {
        /* Normalizing 3 to 5 values is steep where they nearly agree: wider
         * layers keep central differences (step 1e-3) accurate. */
        for (size_t k = 0; k < 4; k++) {
            recur_cell c = all_cells[k];
            gradient_case(c, 3, 8, 1, 0, 4, 2, NULL, 0.0f, 111 + k);
            gradient_case(c, 3, 8, 2, 1, 4, 3, lengths, 0.0f, 141 + k);
            gradient_case(c, 2, 8, 2, 0, 3, 2, NULL, 0.5f, 151 + k);
        }
        return;
    }
    for (size_t k = 0; k < 4; k++) {
        recur_cell c = all_cells[k];
        gradient_case(c, 3, 5, 1, 0, 4, 2, NULL, 0.0f, 11 + k);   /* single layer */
        gradient_case(c, 2, 3, 3, 0, 3, 2, NULL, 0.0f, 21 + k);   /* stacked */
        gradient_case(c, 3, 4, 2, 1, 3, 2, NULL, 0.0f, 31 + k);   /* bidirectional */
        gradient_case(c, 2, 3, 2, 1, 4, 3, lengths, 0.0f, 41 + k);/* variable length */
        gradient_case(c, 2, 3, 2, 0, 3, 2, NULL, 0.5f, 51 + k);   /* dropout between layers */
    }
}

/* A padded batch gives exactly what each sequence gives alone. */
static void test_padded_equals_alone(void)
{
    for (size_t k = 0; k < 4; k++) {
        const int T = 5, B = 3, I = 3, H = 4, L = 2, D = 2;
        const int lengths[3] = {2, 5, 1};
        problem p;
        problem_init(&p, all_cells[k], I, H, L, 1, T, B, lengths, 0.0f, 61 + k);
        size_t ny = p.ny, ns = p.ns;
        float *y = calloc(ny, sizeof(float)), *hn = calloc(ns, sizeof(float));
        float *cn = calloc(ns, sizeof(float));
        problem_loss(&p, RECUR_MODE_INFER, y, hn, cn);
        double worst = 0.0, padding = 0.0;
        for (int b = 0; b < B; b++) {
            int Tb = lengths[b];
            float *xb = malloc((size_t)Tb * I * sizeof(float));
            float *h0b = malloc((size_t)L * D * H * sizeof(float));
            float *c0b = malloc((size_t)L * D * H * sizeof(float));
            float *yb = malloc((size_t)Tb * D * H * sizeof(float));
            float *hnb = malloc((size_t)L * D * H * sizeof(float));
            float *cnb = malloc((size_t)L * D * H * sizeof(float));
            for (int t = 0; t < Tb; t++)
                memcpy(xb + (size_t)t * I, p.x + ((size_t)t * B + b) * I, I * sizeof(float));
            for (int s = 0; s < L * D; s++) {
                memcpy(h0b + (size_t)s * H, p.h0 + ((size_t)s * B + b) * H, H * sizeof(float));
                memcpy(c0b + (size_t)s * H, p.c0 + ((size_t)s * B + b) * H, H * sizeof(float));
            }
            recur_rnn_input in = {Tb, 1, xb, 0, NULL, h0b, p.lstm ? c0b : NULL};
            recur_rnn_output out = {yb, hnb, p.lstm ? cnb : NULL};
            CHECK_OK(recur_rnn_forward(p.rnn, RECUR_MODE_INFER, &in, &out, NULL));
            for (int t = 0; t < T; t++)
                for (int j = 0; j < D * H; j++) {
                    float v = y[((size_t)t * B + b) * D * H + j];
                    if (t < Tb)
                        worst = fmax(worst, fabs(v - yb[(size_t)t * D * H + j]));
                    else
                        padding += fabs(v);
                }
            for (int s = 0; s < L * D; s++)
                for (int j = 0; j < H; j++) {
                    worst = fmax(worst, fabs(hn[((size_t)s * B + b) * H + j] - hnb[(size_t)s * H + j]));
                    if (p.lstm)
                        worst = fmax(worst, fabs(cn[((size_t)s * B + b) * H + j] - cnb[(size_t)s * H + j]));
                }
            free(xb), free(h0b), free(c0b), free(yb), free(hnb), free(cnb);
        }
        /* the normalization divides rounding differences by a small spread */
        CHECK_NEAR(worst, 0.0, g_layer_norm ? 1e-5 : 1e-6);
        CHECK_NEAR(padding, 0.0, 0.0);
        free(y), free(hn), free(cn);
        problem_free(&p);
    }
}

/* A large batch (33) on 2 threads gives the outputs and gradients of one
 * thread, up to summation order, for every cell, stacked, bidirectional,
 * variable-length, with dropout; and the outputs of its first sequences run
 * as a small batch (B >= 8 reads a transposed copy of W_hh). */
static void test_wide_steps(void)
{
    const int saved_threads = recur_get_threads();
    for (size_t k = 0; k < 4; k++) {
        const int T = 6, B = 33, I = 5, H = 64, L = 2;
        int lengths[33];
        for (int b = 0; b < B; b++)
            lengths[b] = 1 + (b * 7) % T;
        problem p;
        problem_init(&p, all_cells[k], I, H, L, 1, T, B, lengths, 0.3f, 81 + k);
        const size_t np = recur_rnn_size(p.rnn);
        float *out[2][6];
        const size_t sizes[6] = {p.ny, p.ns, p.ns, p.nx, p.ns, np};
        for (int run = 0; run < 2; run++) {
            recur_set_threads(run == 0 ? 2 : 1);
            for (int i = 0; i < 6; i++)
                out[run][i] = calloc(sizes[i], sizeof(float));
            recur_rnn_zero_grad(p.rnn);
            CHECK(isfinite(problem_loss(&p, RECUR_MODE_TRAIN, out[run][0], out[run][1],
                                        out[run][2])));
            recur_rnn_grad_in gin = {p.dy, p.dhn, p.lstm ? p.dcn : NULL};
            recur_rnn_grad_out gout = {out[run][3], out[run][4], NULL};
            CHECK_OK(recur_rnn_backward(p.rnn, &gin, &gout));
            memcpy(out[run][5], recur_rnn_grads(p.rnn), np * sizeof(float));
        }
        const char *names[6] = {"y", "hn", "cn", "dx", "dh0", "grads"};
        for (int i = 0; i < 6; i++) {
            double worst = 0.0, scale = 1e-3;
            for (size_t j = 0; j < sizes[i]; j++) {
                worst = fmax(worst, fabs(out[0][i][j] - out[1][i][j]));
                scale = fmax(scale, fabs(out[1][i][j]));
            }
            CHECK_MSG(worst <= 2e-5 * scale, "%s %s: 2 threads (B = 33) differ from 1 by %g "
                      "(scale %g)", recur_cell_name(all_cells[k]), names[i], worst, scale);
        }
        for (int run = 0; run < 2; run++)
            for (int i = 0; i < 6; i++)
                free(out[run][i]);
        problem_free(&p);

        /* B >= 8 reads a transposed copy of W_hh, B < 8 W_hh itself: the
         * first 4 sequences of the batch alone give the same outputs */
        problem q;
        problem_init(&q, all_cells[k], I, H, L, 1, T, B, lengths, 0.0f, 85 + k);
        const int D = 2, b4 = 4;
        float *y = calloc(q.ny, sizeof(float)), *hn = calloc(q.ns, sizeof(float));
        float *cn = calloc(q.ns, sizeof(float));
        float *x4 = calloc((size_t)T * b4 * I, sizeof(float));
        float *h4 = calloc((size_t)L * D * b4 * H, sizeof(float));
        float *c4 = calloc((size_t)L * D * b4 * H, sizeof(float));
        float *y4 = calloc((size_t)T * b4 * D * H, sizeof(float));
        float *hn4 = calloc((size_t)L * D * b4 * H, sizeof(float));
        float *cn4 = calloc((size_t)L * D * b4 * H, sizeof(float));
        for (int mode = 0; mode < 2; mode++) {
            const recur_mode m = mode ? RECUR_MODE_TRAIN : RECUR_MODE_INFER;
            recur_set_threads(2);
            problem_loss(&q, m, y, hn, cn);
            for (int t = 0; t < T; t++)
                memcpy(x4 + (size_t)t * b4 * I, q.x + (size_t)t * B * I, (size_t)b4 * I * 4);
            for (int st = 0; st < L * D; st++) {
                memcpy(h4 + (size_t)st * b4 * H, q.h0 + (size_t)st * B * H, (size_t)b4 * H * 4);
                memcpy(c4 + (size_t)st * b4 * H, q.c0 + (size_t)st * B * H, (size_t)b4 * H * 4);
            }
            recur_rnn_input in = {T, b4, x4, 0, lengths, h4, q.lstm ? c4 : NULL};
            recur_rnn_output o4 = {y4, hn4, q.lstm ? cn4 : NULL};
            CHECK_OK(recur_rnn_forward(q.rnn, m, &in, &o4, NULL));
            double worst = 0.0;
            for (int t = 0; t < T; t++)
                for (size_t j = 0; j < (size_t)b4 * D * H; j++)
                    worst = fmax(worst, fabs(y4[(size_t)t * b4 * D * H + j] -
                                             y[(size_t)t * B * D * H + j]));
            for (int st = 0; st < L * D; st++)
                for (size_t j = 0; j < (size_t)b4 * H; j++) {
                    worst = fmax(worst, fabs(hn4[(size_t)st * b4 * H + j] -
                                             hn[(size_t)st * B * H + j]));
                    if (q.lstm)
                        worst = fmax(worst, fabs(cn4[(size_t)st * b4 * H + j] -
                                                 cn[(size_t)st * B * H + j]));
                }
            CHECK_MSG(worst < 1e-5, "%s %s: B = 33 (W_hh transposed) and B = 4 differ by %g",
                      recur_cell_name(all_cells[k]), mode ? "train" : "infer", worst);
        }
        free(y), free(hn), free(cn), free(x4), free(h4), free(c4), free(y4), free(hn4),
            free(cn4);
        problem_free(&q);
    }
    recur_set_threads(saved_threads);
}

/* Inference (its own small workspace: ping-ponged state, reused
 * activations) gives exactly what a training forward gives, for stacked,
 * bidirectional, variable-length batches, also after a larger call. */
static void test_infer_equals_train(void)
{
    const int lengths[4] = {3, 6, 1, 6};
    for (size_t k = 0; k < 4; k++) {
        problem p;
        problem_init(&p, all_cells[k], 3, 17, 3, 1, 6, 4, lengths, 0.3f, 301 + k);
        float *y1 = calloc(p.ny, sizeof(float)), *hn1 = calloc(p.ns, sizeof(float));
        float *cn1 = calloc(p.ns, sizeof(float)), *y2 = calloc(p.ny, sizeof(float));
        float *hn2 = calloc(p.ns, sizeof(float)), *cn2 = calloc(p.ns, sizeof(float));
        problem_loss(&p, RECUR_MODE_INFER, y1, hn1, cn1);
        recur_rnn_config cfg = p.cfg;
        cfg.dropout = 0.0f; /* dropout is off in inference: compare with a dropout-free train pass */
        recur_rnn *twin;
        CHECK_OK(recur_rnn_create(&cfg, NULL, NULL, &twin));
        memcpy(recur_rnn_params(twin), recur_rnn_params(p.rnn), recur_rnn_size(p.rnn) * sizeof(float));
        recur_rnn_input in = {p.T, p.B, p.x, 0, p.lengths, p.h0, p.lstm ? p.c0 : NULL};
        recur_rnn_output out = {y2, hn2, p.lstm ? cn2 : NULL};
        CHECK_OK(recur_rnn_forward(twin, RECUR_MODE_TRAIN, &in, &out, NULL));
        double worst = 0.0;
        for (size_t i = 0; i < p.ny; i++)
            worst = fmax(worst, fabs(y1[i] - y2[i]));
        for (size_t i = 0; i < p.ns; i++)
            worst = fmax(worst, fmax(fabs(hn1[i] - hn2[i]), fabs(cn1[i] - cn2[i])));
        CHECK_MSG(worst == 0.0, "%s: inference differs from training forward by %g",
                  recur_cell_name(all_cells[k]), worst);
        /* the twin now holds a training-size workspace; inference reuses it */
        recur_rnn_output out2 = {y1, hn1, p.lstm ? cn1 : NULL};
        CHECK_OK(recur_rnn_forward(twin, RECUR_MODE_INFER, &in, &out2, NULL));
        worst = 0.0;
        for (size_t i = 0; i < p.ny; i++)
            worst = fmax(worst, fabs(y1[i] - y2[i]));
        CHECK_NEAR(worst, 0.0, 0.0);
        recur_rnn_free(twin);
        free(y1), free(hn1), free(cn1), free(y2), free(hn2), free(cn2);
        problem_free(&p);
    }
}

/* Streaming one step at a time equals the full-sequence forward. */
static void test_streaming(void)
{
    for (size_t k = 0; k < 4; k++) {
        const int T = 6, B = 2, I = 3, H = 5, L = 3;
        problem p;
        problem_init(&p, all_cells[k], I, H, L, 0, T, B, NULL, 0.0f, 71 + k);
        float *y = calloc(p.ny, sizeof(float)), *hn = calloc(p.ns, sizeof(float));
        float *cn = calloc(p.ns, sizeof(float));
        problem_loss(&p, RECUR_MODE_INFER, y, hn, cn);
        recur_rnn_stream *s = NULL;
        CHECK_OK(recur_rnn_stream_create(p.rnn, B, &s));
        CHECK_OK(recur_rnn_stream_reset(s, p.h0, p.lstm ? p.c0 : NULL));
        float ys[2 * 5], hs[3 * 2 * 5], cs[3 * 2 * 5];
        double worst = 0.0;
        for (int t = 0; t < T; t++) {
            CHECK_OK(recur_rnn_stream_step(s, p.x + (size_t)t * B * I, ys));
            for (int j = 0; j < B * H; j++)
                worst = fmax(worst, fabs(ys[j] - y[(size_t)t * B * H + j]));
        }
        CHECK_OK(recur_rnn_stream_state(s, hs, cs));
        for (size_t j = 0; j < p.ns; j++) {
            worst = fmax(worst, fabs(hs[j] - hn[j]));
            if (p.lstm)
                worst = fmax(worst, fabs(cs[j] - cn[j]));
        }
        CHECK_NEAR(worst, 0.0, g_layer_norm ? 1e-5 : 1e-6);
        recur_rnn_stream_free(s);
        free(y), free(hn), free(cn);
        problem_free(&p);
    }
    /* two threads split the hidden units (H = 128: 64 units each): equal to
     * one thread bit for bit (each block of 16 rows sums in the same order)
     * and to the full forward, in f32 and bf16, over several steps and layers */
    const int saved_threads = recur_get_threads();
    for (size_t k = 0; k < 4; k++) {
        const int T = 7, B = 2, I = 24, H = 128, L = 2;
        problem p;
        problem_init(&p, all_cells[k], I, H, L, 0, T, B, NULL, 0.0f, 91 + k);
        float *y = calloc(p.ny, sizeof(float)), *hn = calloc(p.ns, sizeof(float));
        float *cn = calloc(p.ns, sizeof(float));
        problem_loss(&p, RECUR_MODE_INFER, y, hn, cn);
        for (int prec = 0; prec < 2; prec++) {
            const recur_precision pr = prec ? RECUR_PRECISION_BF16 : RECUR_PRECISION_F32;
            recur_rnn_stream *s1 = NULL, *s2 = NULL;
            recur_set_threads(1);
            CHECK_OK(recur_rnn_stream_create_with(p.rnn, B, pr, &s1));
            recur_set_threads(2);
            CHECK_OK(recur_rnn_stream_create_with(p.rnn, B, pr, &s2));
            CHECK_OK(recur_rnn_stream_reset(s1, p.h0, p.lstm ? p.c0 : NULL));
            CHECK_OK(recur_rnn_stream_reset(s2, p.h0, p.lstm ? p.c0 : NULL));
            float y1[2 * 128], y2[2 * 128];
            double worst = 0.0;
            int same = 1;
            for (int t = 0; t < T && s1 && s2; t++) {
                if (t == 3) { /* the helper thread goes to sleep and is woken */
                    struct timespec pause = {0, 3000000};
                    nanosleep(&pause, NULL);
                }
                CHECK_OK(recur_rnn_stream_step(s1, p.x + (size_t)t * B * I, y1));
                CHECK_OK(recur_rnn_stream_step(s2, p.x + (size_t)t * B * I, y2));
                same &= memcmp(y1, y2, sizeof y1) == 0;
                for (int j = 0; j < B * H; j++)
                    worst = fmax(worst, fabs(y2[j] - y[(size_t)t * B * H + j]));
            }
            CHECK_MSG(same, "%s %s stream: 2 threads differ from 1", recur_cell_name(all_cells[k]),
                      prec ? "bf16" : "f32");
            CHECK_MSG(prec ? worst > 0 && worst < 0.05 : worst < 1e-5,
                      "%s %s stream on 2 threads vs full forward: %g",
                      recur_cell_name(all_cells[k]), prec ? "bf16" : "f32", worst);
            recur_rnn_stream_free(s1);
            recur_rnn_stream_free(s2);
        }
        free(y), free(hn), free(cn);
        problem_free(&p);
    }
    recur_set_threads(saved_threads);
    /* bf16 streaming: close to f32 (weights and products rounded to 8 bits of
     * mantissa), but really rounded; B = 3 and G*H = 4*20 not a multiple of 16 */
    for (size_t k = 0; k < 4; k++) {
        const int T = 20, B = 3, I = 7, H = 20, L = 2;
        problem p;
        problem_init(&p, all_cells[k], I, H, L, 0, T, B, NULL, 0.0f, 171 + k);
        recur_rnn_stream *s32 = NULL, *s16 = NULL;
        CHECK_OK(recur_rnn_stream_create(p.rnn, B, &s32));
        CHECK_OK(recur_rnn_stream_create_with(p.rnn, B, RECUR_PRECISION_BF16, &s16));
        float y32[3 * 20], y16[3 * 20];
        double worst = 0.0;
        for (int t = 0; t < T; t++) {
            CHECK_OK(recur_rnn_stream_step(s32, p.x + (size_t)t * B * I, y32));
            CHECK_OK(recur_rnn_stream_step(s16, p.x + (size_t)t * B * I, y16));
            for (int j = 0; j < B * H; j++)
                worst = fmax(worst, fabs(y32[j] - y16[j]));
        }
        CHECK_MSG(worst > 0.0 && worst < 0.05, "%s bf16 stream vs f32: max difference %g",
                  recur_cell_name(all_cells[k]), worst);
        recur_rnn_stream_free(s32);
        recur_rnn_stream_free(s16);
        problem_free(&p);
    }
    /* a bidirectional stack cannot stream */
    problem p;
    problem_init(&p, RECUR_CELL_GRU, 2, 3, 1, 1, 2, 1, NULL, 0.0f, 5);
    recur_rnn_stream *s = (recur_rnn_stream *)&p;
    CHECK_STATUS(recur_rnn_stream_create(p.rnn, 1, &s), RECUR_E_UNSUPPORTED);
    CHECK(s == NULL);
    CHECK_ERROR_MENTIONS("unidirectional");
    problem_free(&p);
}

/* batch_first input gives the transposed time-major results and gradients. */
static void test_batch_first(void)
{
    const int T = 4, B = 3, I = 2, H = 3;
    problem p;
    problem_init(&p, RECUR_CELL_LSTM, I, H, 2, 1, T, B, NULL, 0.0f, 81);
    float *y = calloc(p.ny, sizeof(float)), *hn = calloc(p.ns, sizeof(float));
    float *cn = calloc(p.ns, sizeof(float)), *dx = calloc(p.nx, sizeof(float));
    problem_loss(&p, RECUR_MODE_TRAIN, y, hn, cn);
    recur_rnn_grad_in gin = {p.dy, NULL, NULL};
    recur_rnn_grad_out gout = {dx, NULL, NULL};
    CHECK_OK(recur_rnn_backward(p.rnn, &gin, &gout));

    const int DH = 2 * H;
    float *xb = malloc(p.nx * sizeof(float)), *dyb = malloc(p.ny * sizeof(float));
    float *yb = malloc(p.ny * sizeof(float)), *dxb = malloc(p.nx * sizeof(float));
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            memcpy(xb + ((size_t)b * T + t) * I, p.x + ((size_t)t * B + b) * I, I * sizeof(float));
            memcpy(dyb + ((size_t)b * T + t) * DH, p.dy + ((size_t)t * B + b) * DH, DH * sizeof(float));
        }
    recur_rnn_input in = {T, B, xb, 1, NULL, p.h0, p.c0};
    recur_rnn_output out = {yb, NULL, NULL};
    CHECK_OK(recur_rnn_forward(p.rnn, RECUR_MODE_TRAIN, &in, &out, NULL));
    recur_rnn_grad_in gin2 = {dyb, NULL, NULL};
    recur_rnn_grad_out gout2 = {dxb, NULL, NULL};
    CHECK_OK(recur_rnn_backward(p.rnn, &gin2, &gout2));
    double worst = 0.0;
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            for (int j = 0; j < DH; j++)
                worst = fmax(worst, fabs(yb[((size_t)b * T + t) * DH + j] - y[((size_t)t * B + b) * DH + j]));
            for (int j = 0; j < I; j++)
                worst = fmax(worst, fabs(dxb[((size_t)b * T + t) * I + j] - dx[((size_t)t * B + b) * I + j]));
        }
    CHECK_NEAR(worst, 0.0, 0.0);
    free(y), free(hn), free(cn), free(dx), free(xb), free(dyb), free(yb), free(dxb);
    problem_free(&p);
}

/* Two consecutive truncated chunks with the state carried accumulate into
 * the same parameter gradient as two separate backward calls summed. */
static void test_accumulation(void)
{
    problem p;
    problem_init(&p, RECUR_CELL_GRU, 2, 3, 1, 0, 3, 2, NULL, 0.0f, 91);
    float y[3 * 2 * 3], hn[2 * 3], cn[2 * 3];
    size_t np = recur_rnn_size(p.rnn);
    float *once = malloc(np * sizeof(float));
    recur_rnn_zero_grad(p.rnn);
    problem_loss(&p, RECUR_MODE_TRAIN, y, hn, cn);
    recur_rnn_grad_in gin = {p.dy, p.dhn, NULL};
    recur_rnn_grad_out gout = {NULL, NULL, NULL};
    CHECK_OK(recur_rnn_backward(p.rnn, &gin, &gout));
    memcpy(once, recur_rnn_grads(p.rnn), np * sizeof(float));
    problem_loss(&p, RECUR_MODE_TRAIN, y, hn, cn);
    CHECK_OK(recur_rnn_backward(p.rnn, &gin, &gout));
    double worst = 0.0;
    for (size_t i = 0; i < np; i++)
        worst = fmax(worst, fabs(recur_rnn_grads(p.rnn)[i] - 2.0f * once[i]));
    CHECK_NEAR(worst, 0.0, 1e-5);
    recur_rnn_zero_grad(p.rnn);
    double total = 0.0;
    for (size_t i = 0; i < np; i++)
        total += fabs(recur_rnn_grads(p.rnn)[i]);
    CHECK_NEAR(total, 0.0, 0.0);
    free(once);
    problem_free(&p);
}

static void test_errors(void)
{
    recur_rnn *rnn = (recur_rnn *)1;
    recur_rnn_config cfg = recur_rnn_config_default();
    CHECK_STATUS(recur_rnn_create(&cfg, NULL, NULL, &rnn), RECUR_E_INVALID);
    CHECK(rnn == NULL);
    CHECK_ERROR_MENTIONS("input_size");
    cfg.input_size = 3;
    cfg.hidden_size = 4;
    cfg.dropout = 1.0f;
    CHECK_STATUS(recur_rnn_create(&cfg, NULL, NULL, &rnn), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("dropout");
    cfg.dropout = 0.0f;
    cfg.num_layers = 0;
    CHECK_STATUS(recur_rnn_create(&cfg, NULL, NULL, &rnn), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("num_layers");
    cfg.num_layers = 2;
    recur_cell cell;
    CHECK_STATUS(recur_cell_parse("lstmm", &cell), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("lstmm");
    CHECK_OK(recur_cell_parse("gru", &cell));
    CHECK(cell == RECUR_CELL_GRU);
    CHECK(recur_rnn_param_size(&cfg) == (16 * 3 + 16 * 4 + 32) + (16 * 4 + 16 * 4 + 32));

    CHECK_OK(recur_rnn_create(&cfg, NULL, NULL, &rnn));
    CHECK(recur_rnn_tensor_count(rnn) == 8);
    CHECK(strcmp(recur_rnn_tensor_at(rnn, 5)->name, "weight_hh_l1") == 0);
    CHECK(recur_rnn_tensor_find(rnn, "bias_hh_l1")->offset + 16 == recur_rnn_size(rnn));
    float x[2 * 1 * 3] = {0}, y[2 * 4];
    recur_rnn_grad_in gin = {y, NULL, NULL};
    recur_rnn_grad_out gout = {NULL, NULL, NULL};
    CHECK_STATUS(recur_rnn_backward(rnn, &gin, &gout), RECUR_E_STATE);
    int bad_lengths[1] = {3};
    recur_rnn_input in = {2, 1, x, 0, bad_lengths, NULL, NULL};
    recur_rnn_output out = {y, NULL, NULL};
    CHECK_STATUS(recur_rnn_forward(rnn, RECUR_MODE_INFER, &in, &out, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("lengths[0] = 3");
    in.lengths = NULL;
    in.T = 0;
    CHECK_STATUS(recur_rnn_forward(rnn, RECUR_MODE_INFER, &in, &out, NULL), RECUR_E_INVALID);
    in.T = 2;
    CHECK_OK(recur_rnn_forward(rnn, RECUR_MODE_INFER, &in, &out, NULL));
    /* an inference pass cannot be differentiated */
    CHECK_STATUS(recur_rnn_backward(rnn, &gin, &gout), RECUR_E_STATE);
    recur_rnn_free(rnn);
    recur_rnn_free(NULL);
    recur_rnn_stream_free(NULL);

    /* dropout in training needs an rng */
    cfg.dropout = 0.3f;
    CHECK_OK(recur_rnn_create(&cfg, NULL, NULL, &rnn));
    CHECK_STATUS(recur_rnn_forward(rnn, RECUR_MODE_TRAIN, &in, &out, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("rng");
    CHECK_OK(recur_rnn_forward(rnn, RECUR_MODE_INFER, &in, &out, NULL));
    recur_rnn_free(rnn);
}

/* Default init is U(-1/sqrt(H), 1/sqrt(H)). */
static void test_init(void)
{
    recur_rnn_config cfg = recur_rnn_config_default();
    cfg.input_size = 10;
    cfg.hidden_size = 64;
    recur_rnn *rnn;
    CHECK_OK(recur_rnn_create(&cfg, NULL, NULL, &rnn));
    recur_rng rng;
    recur_rng_seed(&rng, 1);
    recur_rnn_init(rnn, &rng);
    float lo = 1e9f, hi = -1e9f;
    for (size_t i = 0; i < recur_rnn_size(rnn); i++) {
        lo = fminf(lo, recur_rnn_params(rnn)[i]);
        hi = fmaxf(hi, recur_rnn_params(rnn)[i]);
    }
    CHECK(lo >= -0.125f && lo < -0.12f);
    CHECK(hi <= 0.125f && hi > 0.12f);
    recur_rnn_free(rnn);
}

/* Layer normalization: the tensors (names, shapes, gains starting at 1),
 * and one GRU step against the equations of recur/rnn.h computed directly. */
static void test_layer_norm(void)
{
    recur_rnn_config cfg = recur_rnn_config_default();
    cfg.cell = RECUR_CELL_GRU;
    cfg.input_size = 3;
    cfg.hidden_size = 4;
    cfg.num_layers = 2;
    cfg.bidirectional = 1;
    cfg.layer_norm = 1;
    const size_t plain = (size_t)2 * (12 * 3 + 12 * 4 + 24) + (size_t)2 * (12 * 8 + 12 * 4 + 24);
    CHECK(recur_rnn_param_size(&cfg) == plain + 4 * 24);
    recur_rnn *rnn;
    CHECK_OK(recur_rnn_create(&cfg, NULL, NULL, &rnn));
    CHECK(recur_rnn_tensor_count(rnn) == 24);
    const recur_param_view *v = recur_rnn_tensor_at(rnn, 5);
    CHECK(v && strcmp(v->name, "layer_norm_hh_l0") == 0 && v->ndim == 1 && v->shape[0] == 12);
    v = recur_rnn_tensor_find(rnn, "layer_norm_ih_l1_reverse");
    CHECK(v && v->offset + v->numel == recur_rnn_size(rnn) - 12);
    recur_rng rng;
    recur_rng_seed(&rng, 3);
    recur_rnn_init(rnn, &rng);
    for (size_t j = 0; v && j < v->numel; j++)
        CHECK(recur_rnn_params(rnn)[v->offset + j] == 1.0f);
    recur_rnn_free(rnn);

    /* one step of a one-layer GRU, B = 2, against double arithmetic */
    const int I = 3, H = 5, B = 2, G = 3, GH = 15;
    cfg.input_size = I;
    cfg.hidden_size = H;
    cfg.num_layers = 1;
    cfg.bidirectional = 0;
    CHECK_OK(recur_rnn_create(&cfg, NULL, NULL, &rnn));
    float *w = recur_rnn_params(rnn);
    fill(w, recur_rnn_size(rnn), &rng, 0.8f);
    const float *w_ih = w, *w_hh = w + GH * I, *b_ih = w_hh + GH * H, *b_hh = b_ih + GH;
    float *g_ih = (float *)b_hh + GH, *g_hh = g_ih + GH;
    for (int j = 0; j < GH; j++) {
        g_ih[j] = 1.0f + 0.1f * (float)j;
        g_hh[j] = 1.5f - 0.05f * (float)j;
    }
    float x[2 * 3], h0[2 * 5], y[2 * 5];
    fill(x, sizeof x / sizeof x[0], &rng, 1.0f);
    fill(h0, sizeof h0 / sizeof h0[0], &rng, 1.0f);
    recur_rnn_input in = {1, B, x, 0, NULL, h0, NULL};
    recur_rnn_output out = {y, NULL, NULL};
    CHECK_OK(recur_rnn_forward(rnn, RECUR_MODE_INFER, &in, &out, NULL));
    double worst = 0.0;
    for (int b = 0; b < B; b++) {
        double xg[15], hg[15];
        for (int r = 0; r < GH; r++) {
            xg[r] = hg[r] = 0.0;
            for (int i = 0; i < I; i++)
                xg[r] += (double)w_ih[r * I + i] * x[b * I + i];
            for (int i = 0; i < H; i++)
                hg[r] += (double)w_hh[r * H + i] * h0[b * H + i];
        }
        for (int g = 0; g < G; g++) {
            double *u[2] = {xg + g * H, hg + g * H};
            const float *gain[2] = {g_ih + g * H, g_hh + g * H};
            for (int k = 0; k < 2; k++) {
                double mean = 0.0, var = 0.0;
                for (int j = 0; j < H; j++)
                    mean += u[k][j] / H;
                for (int j = 0; j < H; j++)
                    var += (u[k][j] - mean) * (u[k][j] - mean) / H;
                for (int j = 0; j < H; j++)
                    u[k][j] = gain[k][j] * (u[k][j] - mean) / sqrt(var + 1e-5);
            }
        }
        for (int j = 0; j < H; j++) {
            double r = 1.0 / (1.0 + exp(-(xg[j] + b_ih[j] + hg[j] + b_hh[j])));
            double z = 1.0 / (1.0 + exp(-(xg[H + j] + b_ih[H + j] + hg[H + j] + b_hh[H + j])));
            double n = tanh(xg[2 * H + j] + b_ih[2 * H + j] + r * (hg[2 * H + j] + b_hh[2 * H + j]));
            double h = (1.0 - z) * n + z * h0[b * H + j];
            worst = fmax(worst, fabs(h - y[b * H + j]));
        }
    }
    CHECK_NEAR(worst, 0.0, 2e-6);
    recur_rnn_free(rnn);
}

int main(void)
{
    test_errors();
    test_init();
    test_layer_norm();
    for (g_layer_norm = 0; g_layer_norm < 2; g_layer_norm++) {
        test_gradients();
        test_padded_equals_alone();
        test_wide_steps();
        test_infer_equals_train();
        test_streaming();
        test_batch_first();
        test_accumulation();
    }
    CHECK_DONE();
}
