/* recur/lm.h - a token-level language model: embedding -> recurrent stack
 * -> linear head -> softmax, as char-rnn. One flat parameter array (and one
 * gradient array) holds, in order, embedding.weight [V, E], the stack's
 * tensors (named rnn.<PyTorch name>), head.weight [V, H], head.bias [V]:
 * exactly the state_dict of the PyTorch module in docs/checkpoints.md. */
#ifndef RECUR_LM_H
#define RECUR_LM_H

#include "recur/core.h"
#include "recur/rnn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct recur_lm_config {
    recur_cell cell;
    int vocab_size;     /* V */
    int embedding_size; /* E */
    int hidden_size;    /* H */
    int num_layers;     /* L */
    float dropout;      /* between recurrent layers, training only */
    float embedding_dropout; /* on the embedded tokens entering the stack, training only */
    float output_dropout;    /* on the stack's output entering the head, training only */
    float weight_dropout;    /* DropConnect on every W_hh (one mask per chunk), training only */
} recur_lm_config;

/* lstm, V = 0 (must be set), E = 64, H = 256, L = 2, all dropouts 0. */
RECUR_API recur_lm_config recur_lm_config_default(void);

typedef struct recur_lm recur_lm;

RECUR_API int recur_lm_create(const recur_lm_config *config, recur_lm **out);
RECUR_API void recur_lm_free(recur_lm *lm);
RECUR_API const recur_lm_config *recur_lm_get_config(const recur_lm *lm);

RECUR_API float *recur_lm_params(recur_lm *lm);
RECUR_API float *recur_lm_grads(recur_lm *lm);
RECUR_API size_t recur_lm_size(const recur_lm *lm);
RECUR_API void recur_lm_zero_grad(recur_lm *lm);
/* The recurrent stack inside (borrowed; lives as long as lm). */
RECUR_API recur_rnn *recur_lm_rnn(recur_lm *lm);

/* PyTorch's defaults: embedding ~ N(0, 1); stack U(-1/sqrt(H), 1/sqrt(H));
 * head weight and bias U(-1/sqrt(H), 1/sqrt(H)) (nn.Linear). */
RECUR_API void recur_lm_init(recur_lm *lm, recur_rng *rng);

/* Named views in state_dict order ("embedding.weight", "rnn.weight_ih_l0",
 * ..., "head.weight", "head.bias"). */
RECUR_API int recur_lm_tensor_count(const recur_lm *lm);
RECUR_API const recur_param_view *recur_lm_tensor_at(const recur_lm *lm, int index);
RECUR_API const recur_param_view *recur_lm_tensor_find(const recur_lm *lm, const char *name);

/* Size in floats of one recurrent state array h (or c): [L, B, H]. */
RECUR_API size_t recur_lm_state_size(const recur_lm *lm, int B);

/* One truncated-BPTT chunk. tokens [T+1, B] time-major: rows 0..T-1 are the
 * inputs, rows 1..T the targets. h and c ([L, B, H], c used by LSTM only,
 * may be NULL for zeros) hold the state entering the chunk and receive the
 * state leaving it (carried to the next chunk, detached). *loss receives the
 * mean cross-entropy in nats over the T*B predictions.
 * recur_lm_train_step also back-propagates and ADDS the gradient of that
 * mean loss to recur_lm_grads (dropout drawn from rng);
 * recur_lm_evaluate only computes the loss (no dropout). Errors:
 * RECUR_E_INVALID (a token id outside the vocabulary, named with its
 * position), RECUR_E_NUMERIC when the loss is NaN or Inf. */
RECUR_API int recur_lm_train_step(recur_lm *lm, const int32_t *tokens, int T, int B, float *h,
                                  float *c, recur_rng *rng, double *loss);
RECUR_API int recur_lm_evaluate(recur_lm *lm, const int32_t *tokens, int T, int B, float *h,
                                float *c, double *loss);

/* recur_lm_evaluate that also lends the logits it computed: *logits points
 * to [T*B, V] floats (row t*B + b scores the token at row t+1 of sequence b),
 * owned by lm and valid until the next call on lm. For mixing models
 * (recur_log_mixture) or any per-token use of the scores. */
RECUR_API int recur_lm_evaluate_logits(recur_lm *lm, const int32_t *tokens, int T, int B,
                                       float *h, float *c, double *loss, const float **logits);

/* Ensembles. The mixture of K models over one vocabulary predicts
 * p(v) = (1/K) sum_k softmax(logits_k)(v); this writes out[r, v] =
 * log p(v) for each of `rows` rows of V scores, so that out can be used as
 * logits (recur_sample_logits, cross-entropy). logits[k] points to model
 * k's [rows, V] scores; out may be logits[0]. K = 1 gives log_softmax.
 * Computed in double per row. RECUR_E_INVALID on NULL or K, V < 1;
 * RECUR_E_NUMERIC (naming the model and row) when a row holds NaN or +Inf. */
RECUR_API int recur_log_mixture(const float *const *logits, int K, size_t rows, int V,
                                float *out);

/* Gradient-ready notifications during recur_lm_train_step, for
 * overlapping a data-parallel all-reduce with the backward pass:
 * hook(user, from) each time recur_lm_grads()[from .. size) became final
 * (from decreasing: the head, then each recurrent layer from the top, then
 * 0 with the embedding), and hook(user, from) with an unchanged `from`
 * every few steps of the recurrent backward time loops (a chance to
 * progress communication in flight). Called on the thread that called
 * recur_lm_train_step; the hook must not touch the model. NULL removes it. */
typedef void (*recur_lm_grad_hook)(void *user, size_t from);
RECUR_API void recur_lm_set_grad_hook(recur_lm *lm, recur_lm_grad_hook hook, void *user);

/* Streaming generation: feeds one token per sequence and returns the logits
 * of the next one. The sampler owns its state; the model must outlive it. */
typedef struct recur_lm_sampler recur_lm_sampler;

RECUR_API int recur_lm_sampler_create(recur_lm *lm, int B, recur_lm_sampler **out);
/* The same with the recurrent stack's precision (recur_precision):
 * RECUR_PRECISION_BF16 runs the stack's products in bfloat16; the embedding
 * and the head stay float. recur_lm_sampler_create is RECUR_PRECISION_F32. */
RECUR_API int recur_lm_sampler_create_with(recur_lm *lm, int B, recur_precision precision,
                                           recur_lm_sampler **out);
RECUR_API void recur_lm_sampler_free(recur_lm_sampler *s);
/* Zero state. */
RECUR_API int recur_lm_sampler_reset(recur_lm_sampler *s);
/* tokens [B] -> logits [B, V] of the next token. */
RECUR_API int recur_lm_sampler_step(recur_lm_sampler *s, const int32_t *tokens, float *logits);

/* Draws a token from logits [V] with temperature (> 0), top_k (0: off) and
 * top_p (1: off) filtering, using rng. */
RECUR_API int recur_sample_logits(const float *logits, int V, float temperature, int top_k,
                                  float top_p, recur_rng *rng, int32_t *token);

#ifdef __cplusplus
}
#endif
#endif
