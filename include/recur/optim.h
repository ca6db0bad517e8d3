/* recur/optim.h - optimizers, gradient clipping and learning-rate schedules.
 *
 * Parameters, gradients and optimizer moments are each one flat float array,
 * so every optimizer step, clip and schedule is a single loop. The update
 * rules are PyTorch 1.13's (the single-tensor code paths of torch/optim); the
 * math of each is written out in docs/optimizers.md:
 *   sgd      g += wd*p;  b = g (first step) | mu*b + (1-damp)*g;
 *            g = nesterov ? g + mu*b : b;  p -= lr*g
 *   adam     g += wd*p;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
 *            p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 *   adamw    p *= 1 - lr*wd; then adam without the g += wd*p
 *   rmsprop  g += wd*p;  v = a*v + (1-a)*g^2;  [centered: ga = a*ga + (1-a)*g]
 *            d = sqrt(v [- ga^2]) + eps;  momentum: b = mu*b + g/d, p -= lr*b
 *            else p -= lr*g/d
 *   adagrad  g += wd*p;  s += g^2;  p -= lr/(1+(t-1)*lr_decay) * g/(sqrt(s)+eps)
 * with t the step number counted from 1. */
#ifndef RECUR_OPTIM_H
#define RECUR_OPTIM_H

#include "recur/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Optimizers                                                               */

typedef enum recur_optim_kind {
    RECUR_OPTIM_SGD,
    RECUR_OPTIM_ADAM,
    RECUR_OPTIM_ADAMW,
    RECUR_OPTIM_RMSPROP,
    RECUR_OPTIM_ADAGRAD
} recur_optim_kind;

/* "sgd", "adam", "adamw", "rmsprop", "adagrad"; "unknown" otherwise. */
RECUR_API const char *recur_optim_name(recur_optim_kind kind);
/* Parses those names, ignoring case (so PyTorch's "RMSprop" is accepted).
 * RECUR_E_INVALID (message lists the choices) otherwise. */
RECUR_API int recur_optim_parse(const char *name, recur_optim_kind *out);

/* Hyper-parameters. Each optimizer reads only the fields listed for it;
 * the others are ignored (and not checked).
 *   sgd:     lr, momentum, dampening, nesterov, weight_decay
 *   adam:    lr, beta1, beta2, eps, weight_decay, amsgrad
 *   adamw:   lr, beta1, beta2, eps, weight_decay (decoupled), amsgrad
 *   rmsprop: lr, alpha, eps, weight_decay, momentum, centered
 *   adagrad: lr, lr_decay, weight_decay, initial_accumulator_value, eps
 * `lr` is the base learning rate a caller (or a schedule) starts from; the
 * rate actually used is the one passed to each recur_optim_step. */
typedef struct recur_optim_config {
    recur_optim_kind kind;
    float lr;
    float momentum;
    float dampening;
    int nesterov; /* non-zero: Nesterov momentum (needs momentum > 0, dampening 0) */
    float weight_decay;
    float beta1;
    float beta2;
    float eps;
    int amsgrad; /* non-zero: keep the running maximum of v */
    float alpha; /* RMSprop smoothing constant */
    int centered; /* RMSprop: normalise by the variance estimate */
    float lr_decay;
    float initial_accumulator_value;
} recur_optim_config;

/* PyTorch 1.13's defaults for `kind`:
 *   sgd:     lr 0.01 (PyTorch has no default), momentum 0, dampening 0,
 *            nesterov off, weight_decay 0
 *   adam:    lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0, amsgrad off
 *   adamw:   as adam but weight_decay 1e-2
 *   rmsprop: lr 1e-2, alpha 0.99, eps 1e-8, weight_decay 0, momentum 0,
 *            centered off
 *   adagrad: lr 1e-2, lr_decay 0, weight_decay 0, initial_accumulator_value 0,
 *            eps 1e-10
 * An unknown kind gives the sgd defaults with that kind (rejected by
 * recur_optim_config_check). */
RECUR_API recur_optim_config recur_optim_config_default(recur_optim_kind kind);

/* Checks the fields `config->kind` uses: every value finite; lr,
 * momentum, weight_decay, eps, lr_decay, initial_accumulator_value >= 0;
 * beta1, beta2 in [0, 1); alpha in [0, 1]; nesterov only with momentum > 0
 * and dampening 0. RECUR_E_INVALID with a message naming the field. */
RECUR_API int recur_optim_config_check(const recur_optim_config *config);

typedef struct recur_optim recur_optim;

/* Creates an optimizer for a flat parameter array of n floats (n may be 0).
 * The config is copied and checked (recur_optim_config_check). Moment
 * buffers start at zero (Adagrad's sum at initial_accumulator_value) and
 * the step counter at 0. RECUR_E_NOMEM on allocation failure. */
RECUR_API int recur_optim_create(const recur_optim_config *config, size_t n, recur_optim **out);
RECUR_API void recur_optim_free(recur_optim *opt);

RECUR_API const recur_optim_config *recur_optim_get_config(const recur_optim *opt);
/* The n given at creation. */
RECUR_API size_t recur_optim_size(const recur_optim *opt);

/* One update of params [n] from grads [n] at learning rate lr (>= 0 and
 * finite, else RECUR_E_INVALID and nothing changes). Increments the step
 * counter first, as PyTorch does, so the first call is step t = 1. The
 * gradients are read only; NaN/Inf in them propagate (check with
 * recur_grads_finite before stepping when that matters). */
RECUR_API int recur_optim_step(recur_optim *opt, float *params, const float *grads, float lr);

/* Checkpointing. All moment buffers are ONE flat float array owned by the
 * optimizer; *state points at it (writable, valid until recur_optim_free)
 * and *count is its length: a multiple of n, one block of n per buffer in
 * this order (only the buffers the config uses are present):
 *   sgd:     momentum_buffer (if momentum > 0)
 *   adam(w): exp_avg, exp_avg_sq, max_exp_avg_sq (if amsgrad)
 *   rmsprop: square_avg, momentum_buffer (if momentum > 0), grad_avg (if centered)
 *   adagrad: sum
 * *state is NULL when *count is 0. To resume, create an optimizer with the
 * same config and n, copy the saved array into its state and call
 * recur_optim_set_step with the saved step: the following steps are then
 * bit-identical to an uninterrupted run. (SGD's momentum buffer is taken
 * to be initialised exactly when step > 0.) */
RECUR_API int recur_optim_state(recur_optim *opt, float **state, size_t *count);
/* The number of steps taken (0 for a new optimizer). */
RECUR_API int64_t recur_optim_get_step(const recur_optim *opt);
/* Sets the step counter; RECUR_E_INVALID when step < 0. */
RECUR_API int recur_optim_set_step(recur_optim *opt, int64_t step);

/* ------------------------------------------------------------------------ */
/* Gradient clipping                                                        */

/* The 2-norm of grads [n], accumulated in double. 0 for n = 0; NaN or Inf
 * when a gradient is. */
RECUR_API double recur_grad_norm(const float *grads, size_t n);

/* torch.nn.utils.clip_grad_norm_ with norm_type 2 over the whole array
 * (concatenate all parameters' gradients: they are one flat array):
 *   total = ||g||_2 (in double),  c = max_norm / (total + 1e-6),
 *   g *= c  only when c < 1.
 * The total norm (before clipping) goes to *total_norm_out when it is not
 * NULL. max_norm must be > 0 (RECUR_E_INVALID); +Inf disables clipping.
 * A non-finite total norm returns RECUR_E_NUMERIC and leaves grads
 * untouched (PyTorch would fill them with NaN). */
RECUR_API int recur_clip_grad_norm(float *grads, size_t n, double max_norm,
                                   double *total_norm_out);

/* torch.nn.utils.clip_grad_value_: clamps every gradient to [-clip, clip].
 * clip must be >= 0 (RECUR_E_INVALID otherwise). NaN gradients stay NaN. */
RECUR_API int recur_clip_grad_value(float *grads, size_t n, float clip);

/* 1 when every one of the n values is finite, else 0. */
RECUR_API int recur_grads_finite(const float *grads, size_t n);

/* ------------------------------------------------------------------------ */
/* Learning-rate schedules                                                  */

typedef enum recur_schedule_kind {
    RECUR_SCHEDULE_CONSTANT,
    RECUR_SCHEDULE_STEP,
    RECUR_SCHEDULE_COSINE
} recur_schedule_kind;

/* "constant", "step", "cosine"; "unknown" otherwise. */
RECUR_API const char *recur_schedule_name(recur_schedule_kind kind);
/* Parses those names (case ignored); RECUR_E_INVALID otherwise. */
RECUR_API int recur_schedule_parse(const char *name, recur_schedule_kind *out);

/* The learning rate at step s (counted from 0) for base rate lr:
 *   warm-up (any kind, s < warmup_steps):  lr * s / warmup_steps
 *   constant:  lr
 *   step:      lr * gamma^floor(s / step_size)            (torch StepLR)
 *   cosine:    min_lr + (lr - min_lr) * (1 + cos(pi * q)) / 2,
 *              q = (s - warmup_steps) / (total_steps - warmup_steps), clamped
 *              to [0, 1], so the rate is min_lr from total_steps on. */
typedef struct recur_schedule {
    recur_schedule_kind kind;
    int64_t warmup_steps; /* >= 0; 0 disables the warm-up */
    int64_t step_size;    /* step: >= 1 */
    float gamma;          /* step: > 0 */
    int64_t total_steps;  /* cosine: the whole run, warm-up included; > warmup_steps */
    float min_lr;         /* cosine: >= 0 */
} recur_schedule;

/* constant, no warm-up, step_size 1, gamma 0.1, total_steps 0, min_lr 0. */
RECUR_API recur_schedule recur_schedule_default(void);
/* Checks the fields the kind uses (warmup_steps always);
 * RECUR_E_INVALID with a message naming the field. */
RECUR_API int recur_schedule_check(const recur_schedule *schedule);
/* The rate at step (< 0 is taken as 0). The schedule must pass
 * recur_schedule_check; base_lr is returned unchanged when it does not. */
RECUR_API float recur_schedule_lr(const recur_schedule *schedule, float base_lr, int64_t step);

#ifdef __cplusplus
}
#endif
#endif
