/* cell_gru.c - the GRU step as PyTorch defines it (Cho et al. 2014, with the
 * reset gate applied after the recurrent product), forward and backward.
 *   forward:  r = sig(W_ir x + b_ir + W_hr h + b_hr)
 *             z = sig(W_iz x + b_iz + W_hz h + b_hz)
 *             a = W_hn h + b_hn                       (saved as aux)
 *             n = tanh(W_in x + b_in + r * a)
 *             h_t = (1 - z) * n + z * h_{t-1}
 *   backward: dn = dh (1 - z)      dz = dh (h_{t-1} - n)     dh_{t-1} += dh z
 *             dn_pre = dn (1 - n^2)    dr = dn_pre a
 *             input side:     dpre_x = [dr r(1-r), dz z(1-z), dn_pre]
 *             recurrent side: dpre_h = [dr r(1-r), dz z(1-z), dn_pre r]
 * act saves [r z n]. */
#include <math.h>
#include <string.h>

#include "cell.h"
#include "tensor/vmath.h"

CELL_IMPL void gru_forward_impl(const cell_forward_args *a, const bool fast)
{
    const int H = a->H, GH = 3 * a->H;
    for (int b = 0; b < a->B; b++) {
        float *h = a->h + (size_t)b * H, *act = a->act + (size_t)b * GH;
        float *aux = a->aux + (size_t)b * H;
        const float *hp = a->h_prev + (size_t)b * H;
        if (a->active && !a->active[b]) {
            for (int j = a->j0; j < a->j1; j++) {
                h[j] = hp[j];
                act[j] = act[H + j] = act[2 * H + j] = aux[j] = 0.0f;
            }
            continue;
        }
        const float *xg = a->xg + (size_t)b * GH, *hg = a->hg + (size_t)b * GH;
#pragma omp simd
        for (int j = a->j0; j < a->j1; j++) {
            float r = SIGMOID(xg[j] + a->b_ih[j] + hg[j] + a->b_hh[j]);
            float z = SIGMOID(xg[H + j] + a->b_ih[H + j] + hg[H + j] + a->b_hh[H + j]);
            float hn = hg[2 * H + j] + a->b_hh[2 * H + j];
            float n = TANH(xg[2 * H + j] + a->b_ih[2 * H + j] + r * hn);
            float hprev = hp[j];
            h[j] = (1.0f - z) * n + z * hprev;
            act[j] = r;
            act[H + j] = z;
            act[2 * H + j] = n;
            aux[j] = hn;
        }
    }
}

CELL_IMPL void gru_backward_impl(const cell_backward_args *a, const bool fast)
{
    const int H = a->H, GH = 3 * a->H;
    for (int b = 0; b < a->B; b++) {
        const float *dh = a->dh + (size_t)b * H;
        float *dgx = a->dgx + (size_t)b * GH, *dgh = a->dgh + (size_t)b * GH;
        float *dhp = a->dh_prev + (size_t)b * H;
        if (a->active && !a->active[b]) {
            for (int j = a->j0; j < a->j1; j++) {
                dgx[j] = dgx[H + j] = dgx[2 * H + j] = 0.0f;
                dgh[j] = dgh[H + j] = dgh[2 * H + j] = 0.0f;
                dhp[j] = dh[j];
            }
            continue;
        }
        const float *act = a->act + (size_t)b * GH, *aux = a->aux + (size_t)b * H;
        const float *hp = a->h_prev + (size_t)b * H;
#pragma omp simd
        for (int j = a->j0; j < a->j1; j++) {
            float r = act[j], z = act[H + j], n = act[2 * H + j];
            float dn_pre = dh[j] * (1.0f - z) * (1.0f - n * n);
            float dz_pre = dh[j] * (hp[j] - n) * z * (1.0f - z);
            float dr_pre = dn_pre * aux[j] * r * (1.0f - r);
            dgx[j] = dr_pre;
            dgx[H + j] = dz_pre;
            dgx[2 * H + j] = dn_pre;
            dgh[j] = dr_pre;
            dgh[H + j] = dz_pre;
            dgh[2 * H + j] = dn_pre * r;
            dhp[j] = dh[j] * z;
        }
    }
}

static void gru_forward_ref(const cell_forward_args *a)
{
    gru_forward_impl(a, false);
}
static void gru_backward_ref(const cell_backward_args *a)
{
    gru_backward_impl(a, false);
}
RECUR_VECTOR_CLONES static void gru_forward(const cell_forward_args *a)
{
    gru_forward_impl(a, true);
}
RECUR_VECTOR_CLONES static void gru_backward(const cell_backward_args *a)
{
    gru_backward_impl(a, true);
}

const cell_ops recur_cell_gru = {
    3, false, true, true, gru_forward, gru_backward, gru_forward_ref, gru_backward_ref};
