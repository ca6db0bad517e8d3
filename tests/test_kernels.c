/* test_kernels.c - the vectorized kernels against their plain references:
 * vmath's exp/sigmoid/tanh against libm over a dense range, and whole
 * forward + backward passes of every cell with the vectorized step kernels
 * against the libm reference kernels, on odd hidden sizes (not multiples of
 * the vector width); the inline dropout mask against recur_rng_uniform's
 * draws, at the boundary too. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nn/rnn_internal.h"
#include "recur.h"
#include "tensor/vmath.h"

static void test_vmath(void)
{
    double worst_exp = 0, worst_sig = 0, worst_tanh = 0;
    for (float x = -30.0f; x <= 30.0f; x += 0.000731f) {
        worst_exp = fmax(worst_exp, fabs(recur_vexp(x) - exp(x)) / exp(x));
        worst_sig = fmax(worst_sig, fabs(recur_vsigmoid(x) - 1.0 / (1.0 + exp(-x))));
        worst_tanh = fmax(worst_tanh, fabs(recur_vtanh(x) - tanh(x)));
    }
    CHECK_NEAR(worst_exp, 0.0, 3e-7);
    CHECK_NEAR(worst_sig, 0.0, 2e-7);
    CHECK_NEAR(worst_tanh, 0.0, 3e-7);
    CHECK(recur_vexp(-1000.0f) >= 0.0f && recur_vexp(-1000.0f) < 1e-37f);
    CHECK(isfinite(recur_vexp(1000.0f)));
    CHECK(recur_vsigmoid(-1000.0f) >= 0.0f && recur_vsigmoid(1000.0f) == 1.0f);
    CHECK(recur_vtanh(-50.0f) == -1.0f && recur_vtanh(50.0f) == 1.0f);
}

typedef struct run {
    float *y, *hn, *cn, *dx, *dh0, *dc0, *grads;
} run;

static void run_pass(recur_rnn *rnn, bool reference, int T, int B, const float *x, const float *h0,
                     const float *c0, const float *dy, const int *lengths, run *out, size_t ny,
                     size_t ns, size_t nx)
{
    recur__rnn_use_reference(rnn, reference);
    out->y = calloc(ny, sizeof(float));
    out->hn = calloc(ns, sizeof(float));
    out->cn = calloc(ns, sizeof(float));
    out->dx = calloc(nx, sizeof(float));
    out->dh0 = calloc(ns, sizeof(float));
    out->dc0 = calloc(ns, sizeof(float));
    recur_rnn_zero_grad(rnn);
    recur_rnn_input in = {T, B, x, 0, lengths, h0, c0};
    recur_rnn_output o = {out->y, out->hn, out->cn};
    CHECK_OK(recur_rnn_forward(rnn, RECUR_MODE_TRAIN, &in, &o, NULL));
    recur_rnn_grad_in gin = {dy, out->hn, out->cn};
    recur_rnn_grad_out gout = {out->dx, out->dh0, out->dc0};
    CHECK_OK(recur_rnn_backward(rnn, &gin, &gout));
    size_t np = recur_rnn_size(rnn);
    out->grads = malloc(np * sizeof(float));
    memcpy(out->grads, recur_rnn_grads(rnn), np * sizeof(float));
}

static void compare(const char *what, recur_cell cell, int H, const float *a, const float *b, size_t n)
{
    double scale = 0, err = 0;
    for (size_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs(b[i]));
        double e = fabs((double)a[i] - b[i]);
        err = isnan(e) ? INFINITY : fmax(err, e);
    }
    CHECK_MSG(err <= 1e-5 * fmax(scale, 1e-3), "%s H=%d %s: vectorized vs reference error %.3g (max %.3g)",
              recur_cell_name(cell), H, what, err, scale);
}

static void run_free(run *r)
{
    free(r->y), free(r->hn), free(r->cn), free(r->dx), free(r->dh0), free(r->dc0), free(r->grads);
}

static void test_cells(void)
{
    const recur_cell cells[] = {RECUR_CELL_RNN_TANH, RECUR_CELL_RNN_RELU, RECUR_CELL_LSTM, RECUR_CELL_GRU};
    const int sizes[] = {1, 7, 17, 33, 100};
    recur_rng rng;
    recur_rng_seed(&rng, 3);
    for (int k = 0; k < 4; k++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            const int H = sizes[s], I = 5, T = 7, B = 3, L = 2, D = 2;
            recur_rnn_config cfg = recur_rnn_config_default();
            cfg.cell = cells[k];
            cfg.input_size = I;
            cfg.hidden_size = H;
            cfg.num_layers = L;
            cfg.bidirectional = 1;
            recur_rnn *rnn;
            CHECK_OK(recur_rnn_create(&cfg, NULL, NULL, &rnn));
            recur_rnn_init(rnn, &rng);
            size_t nx = (size_t)T * B * I, ny = (size_t)T * B * D * H, ns = (size_t)L * D * B * H;
            float *x = malloc(nx * sizeof(float)), *h0 = malloc(ns * sizeof(float));
            float *c0 = malloc(ns * sizeof(float)), *dy = malloc(ny * sizeof(float));
            for (size_t i = 0; i < nx; i++)
                x[i] = 4.0f * (recur_rng_uniform(&rng) - 0.5f);
            for (size_t i = 0; i < ns; i++) {
                h0[i] = recur_rng_uniform(&rng) - 0.5f;
                c0[i] = 2.0f * (recur_rng_uniform(&rng) - 0.5f);
            }
            for (size_t i = 0; i < ny; i++)
                dy[i] = recur_rng_uniform(&rng) - 0.5f;
            const int lengths[3] = {7, 2, 5};
            run fast, ref;
            run_pass(rnn, false, T, B, x, h0, c0, dy, lengths, &fast, ny, ns, nx);
            run_pass(rnn, true, T, B, x, h0, c0, dy, lengths, &ref, ny, ns, nx);
            compare("y", cells[k], H, fast.y, ref.y, ny);
            compare("hn", cells[k], H, fast.hn, ref.hn, ns);
            compare("cn", cells[k], H, fast.cn, ref.cn, ns);
            compare("dx", cells[k], H, fast.dx, ref.dx, nx);
            compare("dh0", cells[k], H, fast.dh0, ref.dh0, ns);
            compare("dc0", cells[k], H, fast.dc0, ref.dc0, ns);
            compare("grads", cells[k], H, fast.grads, ref.grads, recur_rnn_size(rnn));
            run_free(&fast);
            run_free(&ref);
            free(x), free(h0), free(c0), free(dy);
            recur_rnn_free(rnn);
        }
}

/* recur_dropout_forward draws its mask inline (internal.h): the same draws, in the same
 * order, as recur_rng_uniform(rng) < p, and the generator left where n calls leave it */
static void test_dropout(void)
{
    enum { N = 5003 };
    static float x[N], y[N], mask[N];
    const float ps[] = {0.5f, 0.1f, 1.0f / 3.0f, 0.9f, 0x1p-24f, 0.3f};
    for (int i = 0; i < N; i++)
        x[i] = (float)(i % 17) - 8.0f;
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        recur_rng a, b;
        recur_rng_seed(&a, 11 + k);
        recur_rng_seed(&b, 11 + k);
        recur_dropout_forward(x, N, ps[k], &a, mask, y);
        const float keep = 1.0f / (1.0f - ps[k]);
        int same = 0, dropped = 0;
        for (int i = 0; i < N; i++) {
            const float m = recur_rng_uniform(&b) < ps[k] ? 0.0f : keep;
            same += mask[i] == m && y[i] == x[i] * m;
            dropped += m == 0.0f;
        }
        CHECK_MSG(same == N, "p %g: %d of %d mask values as recur_rng_uniform draws them",
                  (double)ps[k], same, N);
        CHECK(memcmp(a.s, b.s, sizeof a.s) == 0);
        CHECK_MSG(fabs((double)dropped / N - ps[k]) < 0.03, "p %g: dropped %d of %d",
                  (double)ps[k], dropped, N);
    }
    /* at the boundary: p equal to the first draw keeps it, the next float above drops it */
    for (int k = 0; k < 2; k++) {
        recur_rng a, b;
        recur_rng_seed(&a, 5);
        b = a;
        const float u = recur_rng_uniform(&b);
        const float p = k ? nextafterf(u, 1.0f) : u;
        recur_dropout_forward(x, 1, p, &a, mask, y);
        CHECK_MSG((mask[0] == 0.0f) == (k == 1), "p %.9g against the draw %.9g: mask %g",
                  (double)p, (double)u, (double)mask[0]);
    }
}

int main(void)
{
    test_vmath();
    test_cells();
    test_dropout();
    CHECK_DONE();
}
