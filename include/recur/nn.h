/* recur/nn.h - the non-recurrent pieces of a model, each a forward/backward
 * pair over plain arrays: token embedding, linear layer, dropout, softmax
 * cross-entropy. Backward functions ADD into parameter gradients (zeroing is
 * the caller's) and OVERWRITE input gradients. Rows are independent: n is
 * any number of rows (e.g. T*B). */
#ifndef RECUR_NN_H
#define RECUR_NN_H

#include "recur/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[n, E] = W[ids[n], :] with W [V, E]. RECUR_E_INVALID (naming the row and
 * the id) for an id outside 0..V-1. */
RECUR_API int recur_embedding_forward(const float *W, int V, int E, const int32_t *ids, size_t n,
                                      float *out);
/* dW[ids[i], :] += dout[i, :]. Ids are assumed checked by the forward. */
RECUR_API void recur_embedding_backward(float *dW, int E, const int32_t *ids, size_t n,
                                        const float *dout);

/* y[n, O] = x[n, I] W^T + b, W [O, I], b [O] (b may be NULL). */
RECUR_API void recur_linear_forward(const float *W, const float *b, int O, int I, const float *x,
                                    size_t n, float *y);
/* dW += dy^T x, db += column sums of dy (db may be NULL), dx = dy W (dx may
 * be NULL). dx may also be x itself: it is written after dW is complete. */
RECUR_API void recur_linear_backward(const float *W, int O, int I, const float *x, size_t n,
                                     const float *dy, float *dW, float *db, float *dx);

/* Inverted dropout: mask[i] = 0 with probability p, else 1/(1-p), one
 * uniform draw from rng per element in order; y[i] = x[i] * mask[i] (y may
 * alias x). The backward is dx[i] = dy[i] * mask[i]. p in [0, 1). */
RECUR_API void recur_dropout_forward(const float *x, size_t n, float p, recur_rng *rng,
                                     float *mask, float *y);

/* Mean softmax cross-entropy in nats over the rows whose target is >= 0
 * (a negative target marks a row to ignore, e.g. padding):
 *   loss = -1/N sum_i log softmax(logits[i])[targets[i]]
 * computed stably (max subtracted, sums in double). When dlogits is non-NULL
 * it receives scale * dloss/dlogits = scale * (softmax - onehot) / N (zero
 * on ignored rows); dlogits may alias logits. *count receives N (may be
 * NULL). RECUR_E_INVALID for a target >= V; RECUR_E_NUMERIC (loss stays
 * written) when a logit is NaN or Inf. */
RECUR_API int recur_softmax_xent(const float *logits, size_t n, int V, const int32_t *targets,
                                 float scale, float *dlogits, double *loss, size_t *count);

#ifdef __cplusplus
}
#endif
#endif
