/* recur/checkpoint.h - language-model checkpoints as safetensors files
 * (docs/checkpoints.md), loadable by PyTorch and writable from PyTorch.
 *
 * A checkpoint holds:
 *   - the model tensors, F32, under PyTorch's state_dict names:
 *       embedding.weight [V, E], rnn.weight_ih_l0 [G*H, E], rnn.weight_hh_l0
 *       [G*H, H], rnn.bias_ih_l0 [G*H], rnn.bias_hh_l0 [G*H], ... (each
 *       layer k), head.weight [V, H], head.bias [V];
 *   - __metadata__ key "recur": a JSON object describing the model
 *       {"format": 1, "cell": "lstm", "vocab_size": V, "embedding_size": E,
 *        "hidden_size": H, "num_layers": L, "bidirectional": false,
 *        "dropout": 0.0, "vocab_kind": "char", "vocab": ["\n", " ", ...]};
 *   - optionally the training state needed to continue a run exactly:
 *       tensors optimizer.<buffer> [n] (the optimizer's moments, e.g.
 *       optimizer.exp_avg), state.h [L, B, H] and state.c [L, B, H] (LSTM)
 *       (the hidden state carried between chunks) and __metadata__ key
 *       "recur_train" (a JSON object: step, data position, RNG, optimizer
 *       and schedule, best validation loss, the run's options).
 * A file with only the model tensors and "recur" (e.g. written by PyTorch)
 * loads for evaluation and sampling.
 *
 * The training state is not tied to the language model: any model's
 * checkpoint (a classifier's, a forecaster's) can carry it with
 * recur_train_state_write / recur_train_state_read, next to its own
 * tensors and metadata, so that every training command resumes exactly.
 *
 * Saving goes through the atomic safetensors writer: a crash or kill during
 * a save never damages the file that was at the path before. */
#ifndef RECUR_CHECKPOINT_H
#define RECUR_CHECKPOINT_H

#include "recur/core.h"
#include "recur/data.h"
#include "recur/lm.h"
#include "recur/optim.h"
#include "recur/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The "format" written in "recur" and "recur_train". Files with a larger
 * format are refused (RECUR_E_UNSUPPORTED); a "recur" object without
 * "format" is read as format 1. */
#define RECUR_CHECKPOINT_FORMAT 1

/* The most values of an application's data position (data_position). */
#define RECUR_TRAIN_POSITION_MAX 16

/* Everything beyond the model that a training run needs to continue
 * exactly where it stopped. The same struct serves both directions:
 *   - to save, the caller fills it and every pointer is BORROWED for the
 *     duration of recur_checkpoint_save / recur_train_state_write;
 *   - after a load, the pointers point into memory owned by the struct
 *     (free the whole struct with recur_train_state_free).
 * The first group of fields is what any trainer keeps (language model,
 * classifier, forecaster, ...); the second is the language model's own
 * (recur_checkpoint_save / recur_checkpoint_load). */
typedef struct recur_train_state {
    /* ---- any trainer (recur_train_state_write / recur_train_state_read) */
    int64_t step;                  /* optimizer updates done so far (>= 0) */
    uint64_t data_tokens;          /* size of the training data (tokens, examples, ...) */
    uint64_t data_hash;            /* a fingerprint of that data (recur_checkpoint_data_hash) */
    recur_rng rng;                 /* the training RNG (dropout, shuffling) */
    recur_optim_config optim;      /* the optimizer's configuration */
    int64_t optim_step;            /* recur_optim_get_step */
    const float *optim_state;      /* [optim_state_count]: recur_optim_state */
    size_t optim_state_count;      /* a multiple of the parameter count n */
    recur_schedule schedule;       /* learning-rate schedule */
    double best_val_loss;          /* +INFINITY when no validation ran yet */
    int64_t best_step;             /* step of best_val_loss (0 when none) */
    double elapsed_s;              /* training time spent so far, seconds */
    /* When the saved model's weights are an average of the optimizer's
     * iterates (recur train --ema), the iterate itself, which training
     * continues from: 0 or n floats, tensor "optimizer.weights". */
    const float *weights;
    size_t weights_count;
    /* The run's options as name/value strings, stored so that a resumed run
     * uses the same settings. Names must be unique and non-empty. */
    int option_count;
    const char *const *option_names;
    const char *const *option_values;
    /* Where the application's data walk continues, as values only it
     * interprets (e.g. epoch, batch index within the epoch); 0 to
     * RECUR_TRAIN_POSITION_MAX of them. Saved as "data_position" when
     * data_position_count > 0. */
    int data_position_count;
    int64_t data_position[RECUR_TRAIN_POSITION_MAX];

    /* ---- the language model only (recur_checkpoint_save / _load) ------- */
    recur_textstream_pos position; /* where the training stream continues */
    int batch;                     /* B of the stream (>= 1) */
    int seq_len;                   /* T of the stream (>= 1) */
    const float *h;                /* [L, B, H] state carried to the next chunk */
    const float *c;                /* [L, B, H] cell state (LSTM); NULL otherwise */
} recur_train_state;

/* Writes `lm` and its vocabulary (V must equal the model's vocab_size) to
 * path, atomically. `train` may be NULL (model only). With `train`, its h
 * (and c for an LSTM) must hold recur_lm_state_size(lm, batch) floats, the
 * optimizer state must be a whole number of blocks of recur_lm_size(lm)
 * floats matching the buffers its config uses (see recur_optim_state), and
 * every number must be finite except best_val_loss (+INFINITY allowed).
 * Errors: RECUR_E_INVALID (naming the field), RECUR_E_IO (naming the path;
 * the previous file at path is left intact), RECUR_E_NOMEM. */
RECUR_API int recur_checkpoint_save(const char *path, recur_lm *lm,
                                    const recur_vocab *vocab, const recur_train_state *train);

/* Reads and validates a checkpoint. *lm and *vocab receive new objects the
 * caller frees (recur_lm_free, recur_vocab_free). When `train` is not
 * NULL, *train receives the training state (free with
 * recur_train_state_free), or NULL when the file holds none (e.g. written
 * by PyTorch); when `train` is NULL the training entries are ignored.
 * Every check names the file and the problem:
 *   RECUR_E_NOT_FOUND / RECUR_E_IO    the file cannot be opened or read;
 *   RECUR_E_FORMAT   not a safetensors file, truncated or garbled; no
 *                    "recur" metadata; bad JSON; a field missing or of the
 *                    wrong type; an unknown cell or vocab kind; a tensor
 *                    missing, unexpected, or of the wrong shape; a
 *                    vocabulary whose size does not match embedding.weight;
 *                    a non-finite weight; inconsistent training state;
 *   RECUR_E_UNSUPPORTED  a newer format, or a bidirectional model.
 * On failure the out-parameters are NULL. */
RECUR_API int recur_checkpoint_load(const char *path, recur_lm **lm, recur_vocab **vocab,
                                    recur_train_state **train);

RECUR_API void recur_train_state_free(recur_train_state *train);

/* For checkpoints of any model: adds the training state of a model of n
 * parameters to a safetensors writer that the caller fills with its own
 * tensors and metadata and then saves (recur_st_writer_save, atomic). It
 * adds the tensors optimizer.<buffer> [n] and the metadata key
 * "recur_train" (docs/checkpoints.md) holding the fields of the first
 * group of recur_train_state; the language-model fields are ignored. The
 * borrowed pointers must stay valid until the writer is saved or freed.
 * Errors: RECUR_E_INVALID (naming the field), RECUR_E_NOMEM, and the
 * writer's errors (e.g. a tensor name already added). */
RECUR_API int recur_train_state_write(recur_st_writer *w, const recur_train_state *train,
                                      size_t n);

/* Reads what recur_train_state_write added from an open file of a model of
 * n parameters (`path` only names the file in messages). *train receives
 * the state (free with recur_train_state_free; its language-model fields
 * are zero), or NULL when the file has no "recur_train" metadata. Checks:
 * the JSON fields, the optimizer.<buffer> tensors (exactly those the saved
 * optimizer uses, [n] each, finite); other tensors are the caller's.
 * Errors: RECUR_E_FORMAT (naming the file and the problem; also for
 * optimizer.* tensors without "recur_train"), RECUR_E_UNSUPPORTED (a
 * newer format), RECUR_E_NOMEM. */
RECUR_API int recur_train_state_read(const recur_st *st, const char *path, size_t n,
                                     recur_train_state **train);

/* The value of a saved option, or NULL when the state has none by that
 * name. The string is owned by the state. */
RECUR_API const char *recur_train_state_option(const recur_train_state *train,
                                               const char *name);

/* Creates an optimizer of n parameters from a loaded training state: the
 * saved config, moments and step count, so that the next step is
 * bit-identical to the one an uninterrupted run would take. n must be the
 * model's parameter count (RECUR_E_INVALID otherwise). */
RECUR_API int recur_train_state_make_optim(const recur_train_state *train, size_t n,
                                           recur_optim **out);

/* A 64-bit FNV-1a fingerprint of a token array, stored in a checkpoint so
 * that a resumed run can tell that its data changed. */
RECUR_API uint64_t recur_checkpoint_data_hash(const int32_t *tokens, size_t n);

#ifdef __cplusplus
}
#endif
#endif
