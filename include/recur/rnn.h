/* recur/rnn.h - recurrent stacks (vanilla RNN, LSTM, GRU) with exact
 * backpropagation through time, variable-length batches and streaming.
 *
 * The equations are PyTorch's torch.nn.RNN / LSTM / GRU (docs/cells.md):
 *   rnn:  h' = act(W_ih x + b_ih + W_hh h + b_hh)          act = tanh or relu
 *   lstm: i,f,g,o = sigma,sigma,tanh,sigma(W_ih x + b_ih + W_hh h + b_hh)
 *         c' = f*c + i*g,  h' = o*tanh(c')
 *   gru:  r,z = sigma(W_i{r,z} x + b_i{r,z} + W_h{r,z} h + b_h{r,z})
 *         n = tanh(W_in x + b_in + r*(W_hn h + b_hn)),  h' = (1-z)*n + z*h
 * Parameters are one flat float array laid out in PyTorch's state_dict order:
 * for each layer k, for each direction (forward, then "_reverse"):
 *   weight_ih_l{k}[G*H, I or D*H], weight_hh_l{k}[G*H, H], bias_ih_l{k}[G*H],
 *   bias_hh_l{k}[G*H], with G = 1 (rnn), 4 (lstm: i,f,g,o) or 3 (gru: r,z,n).
 * With layer_norm, each direction also has layer_norm_ih_l{k}[G*H] and
 * layer_norm_hh_l{k}[G*H] after its biases (docs/cells.md, "Layer
 * normalization"): the two products are normalized per gate before the biases,
 *   W_ih x -> g_ih * LN(W_ih x),  W_hh h -> g_hh * LN(W_hh h),
 *   LN(v) = (v - mean(v)) / sqrt(var(v) + 1e-5) over each gate's H values,
 * as in Ba et al. 2016; the biases act as LN's shift. PyTorch has no such
 * cell: models with layer_norm do not move to torch.nn.RNN/LSTM/GRU.
 * Gradients are a second flat array with the same layout. */
#ifndef RECUR_RNN_H
#define RECUR_RNN_H

#include "recur/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum recur_cell {
    RECUR_CELL_RNN_TANH,
    RECUR_CELL_RNN_RELU,
    RECUR_CELL_LSTM,
    RECUR_CELL_GRU
} recur_cell;

/* "rnn_tanh", "rnn_relu", "lstm", "gru". */
RECUR_API const char *recur_cell_name(recur_cell cell);
/* Parses those names (also "rnn" for rnn_tanh). RECUR_E_INVALID otherwise. */
RECUR_API int recur_cell_parse(const char *name, recur_cell *out);
/* Gates per cell: 1, 1, 4, 3. */
RECUR_API int recur_cell_gates(recur_cell cell);

typedef struct recur_rnn_config {
    recur_cell cell;
    int input_size;    /* I */
    int hidden_size;   /* H */
    int num_layers;    /* L */
    int bidirectional; /* D = 2 when non-zero, else 1 */
    float dropout;     /* probability of zeroing a layer's output before the
                          next layer (not after the last); training only */
    int layer_norm;    /* non-zero: layer normalization of both products (above) */
} recur_rnn_config;

/* lstm, I = H = 0 (must be set), 1 layer, unidirectional, no dropout, no
 * layer normalization. */
RECUR_API recur_rnn_config recur_rnn_config_default(void);
/* Checks a configuration; RECUR_E_INVALID with the field named otherwise. */
RECUR_API int recur_rnn_config_check(const recur_rnn_config *config);
/* Number of floats of the flat parameter array; 0 for an invalid config. */
RECUR_API size_t recur_rnn_param_size(const recur_rnn_config *config);

typedef struct recur_rnn recur_rnn;

/* Creates a stack. `params` and `grads` are either both NULL (the stack
 * allocates and owns zeroed arrays) or both borrowed arrays of
 * recur_rnn_param_size(config) floats that must outlive the stack (this is
 * how a model keeps all its parameters in one allocation). The weights are
 * not initialised: call recur_rnn_init or load them. */
RECUR_API int recur_rnn_create(const recur_rnn_config *config, float *params, float *grads,
                               recur_rnn **out);
RECUR_API void recur_rnn_free(recur_rnn *rnn);

RECUR_API const recur_rnn_config *recur_rnn_get_config(const recur_rnn *rnn);
RECUR_API float *recur_rnn_params(recur_rnn *rnn);
RECUR_API float *recur_rnn_grads(recur_rnn *rnn);
RECUR_API size_t recur_rnn_size(const recur_rnn *rnn);
RECUR_API void recur_rnn_zero_grad(recur_rnn *rnn);

/* PyTorch's default: every parameter ~ U(-1/sqrt(H), 1/sqrt(H)); the layer
 * normalization gains start at 1. */
RECUR_API void recur_rnn_init(recur_rnn *rnn, recur_rng *rng);

/* A named view into a flat parameter array. */
typedef struct recur_param_view {
    char name[48];   /* PyTorch's name, e.g. "weight_hh_l1_reverse" */
    int ndim;        /* 1 or 2 */
    int64_t shape[2];
    size_t offset;   /* in floats from the start of the flat array */
    size_t numel;
} recur_param_view;

RECUR_API int recur_rnn_tensor_count(const recur_rnn *rnn);
RECUR_API const recur_param_view *recur_rnn_tensor_at(const recur_rnn *rnn, int index);
/* NULL when no tensor has that name. */
RECUR_API const recur_param_view *recur_rnn_tensor_find(const recur_rnn *rnn, const char *name);

/* Input of a forward pass. All pointers are borrowed for the call only. */
typedef struct recur_rnn_input {
    int T, B;            /* steps and batch */
    const float *x;      /* [T, B, I], or [B, T, I] when batch_first */
    int batch_first;     /* also makes y (and dy, dx) batch-first */
    const int *lengths;  /* [B] valid steps per sequence in 1..T, any order
                            (PyTorch's packed sequences); NULL: all T */
    const float *h0;     /* [L*D, B, H] or NULL for zeros */
    const float *c0;     /* [L*D, B, H] (LSTM) or NULL for zeros */
} recur_rnn_input;

/* Output buffers, owned by the caller; any may be NULL when not wanted.
 * y is zero past each sequence's length; hn/cn hold each sequence's state at
 * its own last step (the reverse direction's at step 0). */
typedef struct recur_rnn_output {
    float *y;   /* [T, B, D*H] (or [B, T, D*H]), directions concatenated */
    float *hn;  /* [L*D, B, H] */
    float *cn;  /* [L*D, B, H] (LSTM) */
} recur_rnn_output;

typedef enum recur_mode { RECUR_MODE_INFER = 0, RECUR_MODE_TRAIN = 1 } recur_mode;

/* Grows the internal workspace for (T, B) ahead of time, so that later
 * forward passes of at most that size do not allocate. Optional. */
RECUR_API int recur_rnn_reserve(recur_rnn *rnn, int T, int B);

/* Runs the stack over a whole sequence. In RECUR_MODE_TRAIN the activations
 * are kept for recur_rnn_backward and dropout is drawn from rng (which may be
 * NULL only when dropout is 0). Errors: RECUR_E_INVALID for bad sizes or
 * lengths, RECUR_E_NOMEM. */
RECUR_API int recur_rnn_forward(recur_rnn *rnn, recur_mode mode, const recur_rnn_input *in,
                                const recur_rnn_output *out, recur_rng *rng);

/* Upstream gradients, each may be NULL (zero). Shapes as recur_rnn_output. */
typedef struct recur_rnn_grad_in {
    const float *dy;
    const float *dhn;
    const float *dcn;
} recur_rnn_grad_in;

/* Gradients with respect to the inputs, overwritten; each may be NULL. */
typedef struct recur_rnn_grad_out {
    float *dx;   /* like x */
    float *dh0;  /* [L*D, B, H] */
    float *dc0;  /* [L*D, B, H] (LSTM) */
} recur_rnn_grad_out;

/* Backpropagation through time for the last RECUR_MODE_TRAIN forward.
 * Parameter gradients are ADDED to the gradient array, so consecutive
 * truncated chunks and accumulation steps just work; zeroing is explicit
 * (recur_rnn_zero_grad). RECUR_E_STATE when no training forward preceded. */
RECUR_API int recur_rnn_backward(recur_rnn *rnn, const recur_rnn_grad_in *grad_in,
                                 const recur_rnn_grad_out *grad_out);

/* Gradient-ready notifications, for overlapping communication (a
 * data-parallel all-reduce) with the backward pass. During
 * recur_rnn_backward, on the calling thread:
 *   - hook(user, l) once layer l's parameter gradients are final, for
 *     l = L-1 down to 0 (all directions of the layer; nothing in the
 *     backward writes them again);
 *   - hook(user, -1) every few steps of each backward time loop: nothing
 *     new is final, a chance to progress communication in flight.
 * The hook must not touch the stack. NULL removes it. */
typedef void (*recur_rnn_grad_hook)(void *user, int layer);
RECUR_API void recur_rnn_set_grad_hook(recur_rnn *rnn, recur_rnn_grad_hook hook, void *user);

/* Streaming inference: one step at a time with carried state, no allocation
 * per step. Unidirectional stacks only (RECUR_E_UNSUPPORTED otherwise).
 * The stream packs a copy of the weights at creation into the layout of its
 * matrix-vector kernels (weights + about 1x their size in memory), so it
 * computes with the weights the stack had then: create a new stream after
 * changing them. The stack must outlive the stream (biases are read live). */
typedef struct recur_rnn_stream recur_rnn_stream;

/* F32 stream; _with takes a recur_precision (core.h): a BF16 stream packs the
 * weights as bfloat16 and rounds its inputs so (AVX512-BF16 dot products where
 * the CPU has them, the same numbers emulated elsewhere); gates and state stay
 * float. See docs/PERFORMANCE.md for the accuracy loss. */
RECUR_API int recur_rnn_stream_create(const recur_rnn *rnn, int B, recur_rnn_stream **out);
RECUR_API int recur_rnn_stream_create_with(const recur_rnn *rnn, int B, recur_precision precision,
                                           recur_rnn_stream **out);
RECUR_API void recur_rnn_stream_free(recur_rnn_stream *stream);
/* Sets the state from h0/c0 [L, B, H] (NULL: zeros). */
RECUR_API int recur_rnn_stream_reset(recur_rnn_stream *stream, const float *h0, const float *c0);
/* x [B, I] -> y [B, H] (the top layer's new state; y may be NULL). */
RECUR_API int recur_rnn_stream_step(recur_rnn_stream *stream, const float *x, float *y);
/* Copies the current state out: h [L, B, H], c [L, B, H] (LSTM); either may be NULL. */
RECUR_API int recur_rnn_stream_state(const recur_rnn_stream *stream, float *h, float *c);

#ifdef __cplusplus
}
#endif
#endif
