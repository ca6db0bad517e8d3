/* clip.c - gradient clipping over one flat gradient array:
 * torch.nn.utils.clip_grad_norm_ (2-norm only) and clip_grad_value_, plus
 * the norm itself and a finiteness check used to skip bad steps.
 * The norm is accumulated in double so that millions of float squares lose
 * nothing; the scaling is applied in float. */
#include <math.h>

#include "internal.h"
#include "recur/optim.h"

/* ||g||_2 = sqrt(sum_i g_i^2), summed in double: blocks of consecutive squares
 * summed in order (in parallel for large arrays), then the blocks' sums in
 * order, so the rounding does not depend on the number of threads. */
enum { NORM_BLOCKS = 256, NORM_MIN_BLOCK = 8192 };

double recur_grad_norm(const float *grads, size_t n)
{
    if (!grads || n == 0)
        return 0.0;
    size_t block = (n + NORM_BLOCKS - 1) / NORM_BLOCKS;
    block = block < NORM_MIN_BLOCK ? NORM_MIN_BLOCK : block;
    const int blocks = (int)((n + block - 1) / block);
    double partial[NORM_BLOCKS];
#pragma omp parallel for schedule(static) if (blocks > 1)
    for (int k = 0; k < blocks; k++) {
        const size_t end = (size_t)(k + 1) * block < n ? (size_t)(k + 1) * block : n;
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (size_t i = (size_t)k * block; i < end; i++)
            sum += (double)grads[i] * (double)grads[i];
        partial[k] = sum;
    }
    double sum = 0.0;
    for (int k = 0; k < blocks; k++)
        sum += partial[k];
    return sqrt(sum);
}

/* total = ||g||_2, c = max_norm / (total + 1e-6), g *= c when c < 1. */
int recur_clip_grad_norm(float *grads, size_t n, double max_norm, double *total_norm_out)
{
    if (n && !grads)
        return recur__error(RECUR_E_INVALID, "recur_clip_grad_norm: grads is NULL");
    if (!(max_norm > 0.0))
        return recur__error(RECUR_E_INVALID, "clip: max_norm must be > 0 (got %g)", max_norm);
    double total = recur_grad_norm(grads, n);
    if (total_norm_out)
        *total_norm_out = total;
    if (!isfinite(total))
        return recur__error(RECUR_E_NUMERIC,
                            "clip: the gradient norm is %g; gradients left unclipped", total);
    double coef = max_norm / (total + 1e-6);
    if (coef < 1.0) {
        const float scale = (float)coef;
#pragma omp parallel for schedule(static) if (n >= 32768)
        for (size_t i = 0; i < n; i++)
            grads[i] *= scale;
    }
    return RECUR_OK;
}

/* g_i = min(max(g_i, -clip), clip); NaN compares false and is kept. */
int recur_clip_grad_value(float *grads, size_t n, float clip)
{
    if (n && !grads)
        return recur__error(RECUR_E_INVALID, "recur_clip_grad_value: grads is NULL");
    if (!(clip >= 0.0f))
        return recur__error(RECUR_E_INVALID, "clip: clip value must be >= 0 (got %g)",
                            (double)clip);
    for (size_t i = 0; i < n; i++) {
        if (grads[i] > clip)
            grads[i] = clip;
        else if (grads[i] < -clip)
            grads[i] = -clip;
    }
    return RECUR_OK;
}

int recur_grads_finite(const float *grads, size_t n)
{
    if (!grads)
        return 1;
    int finite = 1;
#pragma omp parallel for schedule(static) reduction(&& : finite) if (n >= 32768)
    for (size_t i = 0; i < n; i++)
        finite = finite && isfinite(grads[i]);
    return finite;
}
