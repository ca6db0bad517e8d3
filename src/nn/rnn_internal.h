/* rnn_internal.h - hooks into recur_rnn for the tests, the stream and the
 * language model. */
#ifndef RECUR_RNN_INTERNAL_H
#define RECUR_RNN_INTERNAL_H

#include <stdbool.h>

#include "cell.h"
#include "recur/rnn.h"

/* true: the cells use their plain libm reference kernels instead of the
 * vectorized ones (streams created afterwards follow the stack). */
void recur__rnn_use_reference(recur_rnn *rnn, bool reference);

/* For stream.c and the input-feeding decoder of seq2seq.c: the cell table,
 * the four tensors of a forward-direction layer, and the step kernels in use
 * (vectorized or reference). */
const cell_ops *recur__rnn_cell_ops(const recur_rnn *rnn);
void recur__rnn_layer_weights(const recur_rnn *rnn, int layer, const float **w_ih,
                              const float **w_hh, const float **b_ih, const float **b_hh);
/* The layer normalization gains of a forward-direction layer (both NULL
 * without layer_norm), and the normalization of one row of G gate blocks of
 * H values (rnn.c): v <- gain * (v - mean) / sqrt(var + 1e-5) per block,
 * keeping the normalized values and 1/std where hat and rstd are not NULL. */
void recur__rnn_layer_norm(const recur_rnn *rnn, int layer, const float **ln_ih,
                           const float **ln_hh);
void recur__ln_forward(float *v, const float *gain, int G, int H, float *hat, float *rstd);
void (*recur__rnn_step_forward(const recur_rnn *rnn))(const cell_forward_args *);
void (*recur__rnn_step_backward(const recur_rnn *rnn))(const cell_backward_args *);

/* For lm.c, which saves copies of whole sequences: the top layer's output
 * [T, B, D*H] in the stack's workspace, valid after a time-major forward
 * until the next backward (which overwrites it with dL/dy; it may be
 * changed in between, e.g. by dropout, and passed back as grad_in->dy),
 * and dL/dx [T, B, I] after a backward with grad_out->dx NULL, valid until
 * the next forward. */
float *recur__rnn_output(recur_rnn *rnn);
/* *x = where a time-major forward of (mode, T, B) keeps its input [T, B, I]:
 * a caller that writes the input there and passes that pointer as in->x
 * saves the copy. Reserves the workspace (a status). */
int recur__rnn_input(recur_rnn *rnn, recur_mode mode, int T, int B, float **x);
float *recur__rnn_input_grad(recur_rnn *rnn);

#endif
