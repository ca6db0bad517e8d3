/* cell_rnn.c - the vanilla RNN step, tanh or ReLU, forward and backward.
 *   forward:  h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
 *   backward: dpre = dh_t * act'(pre), act'(pre) = 1 - h_t^2 (tanh) or [h_t > 0] (relu)
 *             dW_ih, dW_hh, dx, dh_{t-1} follow from dpre in rnn.c's products.
 * G = 1; act saves h_t. */
#include <math.h>
#include <string.h>

#include "cell.h"
#include "tensor/vmath.h"

CELL_IMPL void rnn_forward(const cell_forward_args *a, bool relu, const bool fast)
{
    const int H = a->H;
    for (int b = 0; b < a->B; b++) {
        float *h = a->h + (size_t)b * H, *act = a->act + (size_t)b * H;
        if (a->active && !a->active[b]) {
            for (int j = a->j0; j < a->j1; j++) {
                h[j] = a->h_prev[(size_t)b * H + j];
                act[j] = 0.0f;
            }
            continue;
        }
        const float *xg = a->xg + (size_t)b * H, *hg = a->hg + (size_t)b * H;
#pragma omp simd
        for (int j = a->j0; j < a->j1; j++) {
            float pre = xg[j] + a->b_ih[j] + hg[j] + a->b_hh[j];
            float v = relu ? (pre > 0.0f ? pre : 0.0f) : TANH(pre);
            h[j] = v;
            act[j] = v;
        }
    }
}

CELL_IMPL void rnn_backward(const cell_backward_args *a, bool relu, const bool fast)
{
    const int H = a->H;
    for (int b = 0; b < a->B; b++) {
        const float *dh = a->dh + (size_t)b * H;
        float *dgx = a->dgx + (size_t)b * H, *dhp = a->dh_prev + (size_t)b * H;
        if (a->active && !a->active[b]) {
            for (int j = a->j0; j < a->j1; j++) {
                dgx[j] = 0.0f;
                dhp[j] = dh[j];
            }
            continue;
        }
        const float *h = a->act + (size_t)b * H;
#pragma omp simd
        for (int j = a->j0; j < a->j1; j++) {
            dgx[j] = relu ? (h[j] > 0.0f ? dh[j] : 0.0f) : dh[j] * (1.0f - h[j] * h[j]);
            dhp[j] = 0.0f;
        }
    }
}

/* Reference (libm) and vectorized variants of both activations. */
static void tanh_forward_ref(const cell_forward_args *a)
{
    rnn_forward(a, false, false);
}
static void tanh_backward_ref(const cell_backward_args *a)
{
    rnn_backward(a, false, false);
}
static void relu_forward_ref(const cell_forward_args *a)
{
    rnn_forward(a, true, false);
}
static void relu_backward_ref(const cell_backward_args *a)
{
    rnn_backward(a, true, false);
}
RECUR_VECTOR_CLONES static void tanh_forward(const cell_forward_args *a)
{
    rnn_forward(a, false, true);
}
RECUR_VECTOR_CLONES static void tanh_backward(const cell_backward_args *a)
{
    rnn_backward(a, false, true);
}
RECUR_VECTOR_CLONES static void relu_forward(const cell_forward_args *a)
{
    rnn_forward(a, true, true);
}
RECUR_VECTOR_CLONES static void relu_backward(const cell_backward_args *a)
{
    rnn_backward(a, true, true);
}

const cell_ops recur_cell_rnn_tanh = {
    1, false, false, false, tanh_forward, tanh_backward, tanh_forward_ref, tanh_backward_ref};
const cell_ops recur_cell_rnn_relu = {
    1, false, false, false, relu_forward, relu_backward, relu_forward_ref, relu_backward_ref};
