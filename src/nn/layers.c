/* layers.c - token embedding, linear layer and fused softmax cross-entropy,
 * each forward beside its backward.
 *   embedding: out[i] = W[ids[i]]               dW[ids[i]] += dout[i]
 *   linear:    y = x W^T + b                    dW += dy^T x, db += sum_i dy[i], dx = dy W
 *   xent:      loss = -1/N sum_i log p_i[t_i],  p_i = softmax(logits_i)
 *              dlogits_i = (p_i - onehot(t_i)) / N
 * The softmax subtracts the row maximum and sums in double, so large logits
 * neither overflow nor lose the small probabilities. */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "recur/nn.h"
#include "tensor/gemm.h"

int recur_embedding_forward(const float *W, int V, int E, const int32_t *ids, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V)
            return recur__error(RECUR_E_INVALID, "token id %d at position %zu outside the vocabulary (0..%d)",
                                (int)ids[i], i, V - 1);
        memcpy(out + i * E, W + (size_t)ids[i] * E, (size_t)E * sizeof(float));
    }
    return RECUR_OK;
}

void recur_embedding_backward(float *dW, int E, const int32_t *ids, size_t n, const float *dout)
{
    for (size_t i = 0; i < n; i++) {
        float *row = dW + (size_t)ids[i] * E;
        const float *g = dout + i * E;
        for (int j = 0; j < E; j++)
            row[j] += g[j];
    }
}

void recur_linear_forward(const float *W, const float *b, int O, int I, const float *x, size_t n,
                          float *y)
{
    if (b)
        for (size_t i = 0; i < n; i++)
            memcpy(y + i * O, b, (size_t)O * sizeof(float));
    recur_gemm(false, true, (int)n, O, I, 1.0f, x, I, W, I, b ? 1.0f : 0.0f, y, O);
}

void recur_linear_backward(const float *W, int O, int I, const float *x, size_t n, const float *dy,
                           float *dW, float *db, float *dx)
{
    recur_gemm(true, false, O, I, (int)n, 1.0f, dy, O, x, I, 1.0f, dW, I);
    if (db)
        for (size_t i = 0; i < n; i++)
            for (int o = 0; o < O; o++)
                db[o] += dy[i * O + o];
    if (dx)
        recur_gemm(false, false, (int)n, I, O, 1.0f, dy, O, W, I, 0.0f, dx, I);
}

void recur_dropout_forward(const float *x, size_t n, float p, recur_rng *rng, float *mask,
                           float *y)
{
    recur__rng_dropout_mask(rng, n, p, 1.0f / (1.0f - p), mask);
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * mask[i];
}

int recur_softmax_xent(const float *logits, size_t n, int V, const int32_t *targets, float scale,
                       float *dlogits, double *loss, size_t *count)
{
    size_t N = 0;
    for (size_t i = 0; i < n; i++) {
        if (targets[i] >= V)
            return recur__error(RECUR_E_INVALID, "target %d at row %zu outside 0..%d",
                                (int)targets[i], i, V - 1);
        N += targets[i] >= 0;
    }
    double total = 0.0;
    bool finite = true;
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * (size_t)V;
        float *dz = dlogits ? dlogits + i * (size_t)V : NULL;
        if (targets[i] < 0) {
            if (dz)
                memset(dz, 0, (size_t)V * sizeof(float));
            continue;
        }
        float max = z[0];
        for (int v = 1; v < V; v++)
            max = z[v] > max ? z[v] : max;
        double sum = 0.0;
        for (int v = 0; v < V; v++)
            sum += exp((double)z[v] - max);
        double log_sum = log(sum) + max;
        double row = log_sum - z[targets[i]];
        finite = finite && isfinite(row);
        total += row;
        if (dz) {
            double k = (double)scale / (double)N;
            for (int v = 0; v < V; v++)
                dz[v] = (float)(k * exp((double)z[v] - log_sum));
            dz[targets[i]] -= (float)k;
        }
    }
    *loss = N ? total / (double)N : 0.0;
    if (count)
        *count = N;
    if (!finite)
        return recur__error(RECUR_E_NUMERIC, "cross-entropy is not finite (a logit is NaN or Inf)");
    return RECUR_OK;
}
