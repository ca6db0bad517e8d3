/* cell_lstm.c - the LSTM step (Hochreiter & Schmidhuber 1997, with PyTorch's
 * gate order i, f, g, o and two bias vectors), forward and backward.
 *   forward:  [i f g o] = [sig sig tanh sig](W_ih x + b_ih + W_hh h_{t-1} + b_hh)
 *             c_t = f * c_{t-1} + i * g
 *             h_t = o * tanh(c_t)
 *   backward: given dh = dL/dh_t and dc = dL/dc_t from later steps,
 *             dc  += dh * o * (1 - tanh(c_t)^2)
 *             di = dc * g   df = dc * c_{t-1}   dg = dc * i   do = dh * tanh(c_t)
 *             dpre = [di*i(1-i), df*f(1-f), dg*(1-g^2), do*o(1-o)]
 *             dc_{t-1} = dc * f
 * act saves [i f g o]; the states c_{t-1}, c_t are kept by rnn.c. */
#include <math.h>
#include <string.h>

#include "cell.h"
#include "tensor/vmath.h"

CELL_IMPL void lstm_forward_impl(const cell_forward_args *a, const bool fast)
{
    const int H = a->H, GH = 4 * a->H;
    for (int b = 0; b < a->B; b++) {
        float *h = a->h + (size_t)b * H, *c = a->c + (size_t)b * H;
        float *act = a->act + (size_t)b * GH;
        if (a->active && !a->active[b]) {
            for (int j = a->j0; j < a->j1; j++) {
                h[j] = a->h_prev[(size_t)b * H + j];
                c[j] = a->c_prev[(size_t)b * H + j];
                act[j] = act[H + j] = act[2 * H + j] = act[3 * H + j] = 0.0f;
            }
            continue;
        }
        const float *xg = a->xg + (size_t)b * GH, *hg = a->hg + (size_t)b * GH;
        const float *cp = a->c_prev + (size_t)b * H;
#pragma omp simd
        for (int j = a->j0; j < a->j1; j++) {
            float i = SIGMOID(xg[j] + a->b_ih[j] + hg[j] + a->b_hh[j]);
            float f = SIGMOID(xg[H + j] + a->b_ih[H + j] + hg[H + j] + a->b_hh[H + j]);
            float g = TANH(xg[2 * H + j] + a->b_ih[2 * H + j] + hg[2 * H + j] + a->b_hh[2 * H + j]);
            float o =
                SIGMOID(xg[3 * H + j] + a->b_ih[3 * H + j] + hg[3 * H + j] + a->b_hh[3 * H + j]);
            float cn = f * cp[j] + i * g;
            c[j] = cn;
            h[j] = o * TANH(cn);
            act[j] = i;
            act[H + j] = f;
            act[2 * H + j] = g;
            act[3 * H + j] = o;
        }
    }
}

CELL_IMPL void lstm_backward_impl(const cell_backward_args *a, const bool fast)
{
    const int H = a->H, GH = 4 * a->H;
    for (int b = 0; b < a->B; b++) {
        const float *dh = a->dh + (size_t)b * H;
        float *dc = a->dc + (size_t)b * H, *dgx = a->dgx + (size_t)b * GH;
        float *dhp = a->dh_prev + (size_t)b * H;
        if (a->active && !a->active[b]) {
            for (int j = a->j0; j < a->j1; j++) {
                dgx[j] = dgx[H + j] = dgx[2 * H + j] = dgx[3 * H + j] = 0.0f;
                dhp[j] = dh[j];
            }
            continue; /* dc passes through unchanged */
        }
        const float *act = a->act + (size_t)b * GH;
        const float *c = a->c + (size_t)b * H, *cp = a->c_prev + (size_t)b * H;
#pragma omp simd
        for (int j = a->j0; j < a->j1; j++) {
            float i = act[j], f = act[H + j], g = act[2 * H + j], o = act[3 * H + j];
            float tc = TANH(c[j]);
            float dcj = dc[j] + dh[j] * o * (1.0f - tc * tc);
            float di = dcj * g, df = dcj * cp[j], dg = dcj * i, dout = dh[j] * tc;
            dgx[j] = di * i * (1.0f - i);
            dgx[H + j] = df * f * (1.0f - f);
            dgx[2 * H + j] = dg * (1.0f - g * g);
            dgx[3 * H + j] = dout * o * (1.0f - o);
            dc[j] = dcj * f;
            dhp[j] = 0.0f;
        }
    }
}

static void lstm_forward_ref(const cell_forward_args *a)
{
    lstm_forward_impl(a, false);
}
static void lstm_backward_ref(const cell_backward_args *a)
{
    lstm_backward_impl(a, false);
}
RECUR_VECTOR_CLONES static void lstm_forward(const cell_forward_args *a)
{
    lstm_forward_impl(a, true);
}
RECUR_VECTOR_CLONES static void lstm_backward(const cell_backward_args *a)
{
    lstm_backward_impl(a, true);
}

const cell_ops recur_cell_lstm = {
    4, true, false, false, lstm_forward, lstm_backward, lstm_forward_ref, lstm_backward_ref};
