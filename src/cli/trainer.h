/* trainer.h - the training loop that every training command of the
 * `recur` tool shares (`recur train`, `recur classify train`, ...): the
 * training options, and a loop driven by callbacks that the command supplies.
 *
 * API summary
 * -----------
 * A command that trains does, in this order (every int-returning call
 * gives CLI_OK, or CLI_FAILURE / CLI_USAGE after printing the message;
 * return that code from the command):
 *
 *   1. trainer_options to; trainer_options_default(&to);
 *      then change the defaults it wants (to.lr = 1e-3; to.val_every = 0; ...).
 *   2. Its option table: its own entries, then the training options:
 *        cli_option options[80] = {...own entries...};
 *        int n = own_count;
 *        n += trainer_add_options(options + n, 80 - 1 - n, &to);   (then CLI_END)
 *        options[n] = (cli_option)CLI_END;
 *      and cli_parse(cmd, options, ...). Flags on its own entries: CLI_SAVED
 *      (stored in the checkpoint, restored by --resume), CLI_SAVED|CLI_FROZEN
 *      (also must not change on --resume: model shape, data walk).
 *   3. trainer_create(cmd, options, &to, argc, argv, &t): logs the command line.
 *   4. trainer_open_run(t, default_out): picks the run folder (--out, else
 *      default_out) and refuses to start over an existing run without
 *      --resume or --overwrite. trainer_latest_path(t) / trainer_best_path(t)
 *      / trainer_out_dir(t) are then known.
 *   5. When to.resume: load your checkpoint from trainer_latest_path(t)
 *      together with its recur_train_state (recur_checkpoint_load for a
 *      language model; recur_st_open + recur_train_state_read for any other
 *      model), then trainer_resume(t, state) (state may be NULL: "no
 *      training state" error). It merges the saved options under those of
 *      the command line. The state stays yours: free it after trainer_start.
 *      Restore your own data position from state->data_position.
 *   6. trainer_prepare(t): resolves the optimizer settings, applies
 *      --threads, prints the seed. trainer_rng(t) is then seeded from --seed:
 *      initialise new weights with it (it is also the RNG the step callback
 *      gets, for dropout and shuffling; on --resume trainer_start replaces it
 *      by the saved one).
 *   7. Build the data and the model, fill a trainer_task (below).
 *   8. trainer_start(t, &task): optimizer (new, or restored with its moments
 *      from the state), step / best validation / elapsed time / RNG restored,
 *      the stop limit (--steps, --epochs x steps_per_epoch, --time; one epoch
 *      when none is given), the schedule, the run folder and metrics file.
 *      trainer_max_steps(t) is then known (0: only --time limits the run).
 *   9. Print your own summary lines, then trainer_run(t): the loop, to the
 *      step limit, --time or Ctrl-C (which saves and returns CLI_OK). Each
 *      step: task.step (gradient of one batch), NaN/Inf check (--on-nan stop
 *      exits 1 without saving; skip drops the update and calls task.skipped),
 *      --inject-nan, --clip-value then --clip (the pre-clip global norm is
 *      reported), the optimizer update at the scheduled rate, the --ema
 *      average of the weights (from --ema-start on); validation every
 *      --val-every steps (best.safetensors kept by validation loss), latest
 *      every --save-every steps, progress line + metrics row every
 *      --log-every steps, task.after_step. At the end: a last validation,
 *      latest.safetensors, and a summary naming the checkpoints.
 *  10. trainer_free(t).
 *
 * Checkpoints: task.save(ctx, path, ts) receives a recur_train_state whose
 * trainer fields are filled (step, RNG, optimizer config/moments/step,
 * schedule, best validation loss and step, elapsed time, the CLI_SAVED
 * options); it adds its own (data_tokens / data_hash fingerprint of its
 * data, data_position; a language model also position/batch/seq_len/h/c)
 * and writes the file atomically: recur_checkpoint_save, or its tensors +
 * recur_train_state_write + recur_st_writer_save. That is what makes
 * --resume exact for every command.
 *
 * Weight averaging (--ema DECAY): once the average runs, task.validate and
 * task.save see the averaged weights in task.params (the trainer swaps them
 * in and back), and ts->weights holds the optimizer's own iterate, which
 * trainer_start puts back into task.params on --resume. So best and latest
 * checkpoints are averaged models that sample and evaluate as they are.
 *
 * Progress line (stderr; live on a terminal, one line per --log-every steps
 * otherwise):
 *   step 120/500 | epoch 0.48 | loss 1.2345 | val 1.1000, acc 0.9120 |
 *   3.2k ex/s | grad 0.87 | lr 0.002 | 12.3s, ETA 40.1s
 * (with task.bits: "loss 1.2345 (1.781 bpc)" and "val 1.1000 (1.587 bpc)").
 * MPI (docs/mpi.md, builds with RECUR_MPI=ON, `mpirun -np N recur ...`):
 * every rank runs the same calls. The trainer broadcasts rank 0's weights
 * and moments in trainer_start, averages the gradients over the ranks after
 * each task.step (before clipping), validates on rank 0, and lets rank 0
 * alone print, write metrics and save; --resume needs the same N. A command
 * spreads its data with dist.h: rank dist_rank() of dist_size() reads its
 * own share of each batch (then set task.shards_data), and when it carries
 * per-rank state that its checkpoint holds (an LM's hidden state), it
 * brings that state to rank 0 in task.gather_state. Print your own summary
 * lines only where dist_is_main().
 *
 * Metrics CSV (--metrics, default DIR/metrics.csv): step, epoch,
 * train_loss, val_loss, <metric_name>, <unit_csv>_per_s, grad_norm (before
 * clipping), lr, elapsed_s; a resumed run keeps the rows up to its step. */
#ifndef RECUR_CLI_TRAINER_H
#define RECUR_CLI_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"

/* The values of the training options (step 1 above). Strings point into
 * argv, into the option's default, or into a resumed checkpoint. */
typedef struct trainer_options {
    /* stop limits */
    int64_t steps, epochs;
    double time_s;
    /* optimizer: NAN means "the optimizer's default" (filled in by
     * trainer_prepare so that the effective value is saved) */
    const char *optimizer;
    double lr, momentum, dampening, weight_decay, beta1, beta2, eps, alpha, lr_decay, init_acc;
    int nesterov, amsgrad, centered;
    /* learning-rate schedule */
    const char *schedule;
    int64_t warmup, step_size, decay_steps;
    double gamma, min_lr;
    /* gradients */
    double clip, clip_value;
    /* weight averaging: an exponential moving average with decay `ema`
     * (0: off) from step ema_start on */
    double ema;
    int64_t ema_start;
    const char *on_nan;  /* "stop" or "skip" */
    int64_t inject_nan;  /* testing: NaN gradients at this step (0: off) */
    /* randomness and threads */
    int64_t seed;
    int threads;
    const char *matmul;  /* "f32" or "bf16": recur_set_matmul_precision */
    /* the run folder, checkpoints and logs */
    const char *out, *metrics;
    int resume, overwrite;
    int64_t val_every, save_every, log_every;
    int64_t keep_every;  /* also keep step-NNNNNNNN.safetensors every N steps (0: off) */
    /* --help text of --out's default, e.g. "runs/<data file name>" */
    const char *out_default_text;
} trainer_options;

/* The defaults of `recur train`: adam, lr 2e-3, constant schedule, clip 5,
 * seed 1, all cores, val/save every 250 steps, log every 20, on-nan stop. */
void trainer_options_default(trainer_options *o);

/* Writes the training options' entries (they point into `o`) to
 * table[0..capacity) and returns how many (about 35), or -1 when capacity
 * is too small. Does not write the CLI_END sentinel. */
int trainer_add_options(cli_option *table, int capacity, trainer_options *o);

/* What a command supplies to the loop (step 7). */
typedef struct trainer_task {
    void *ctx;        /* passed to every callback */
    float *params;    /* [n_params] the model's flat parameters */
    float *grads;     /* [n_params] their gradients, written by step() */
    size_t n_params;
    int64_t steps_per_epoch; /* batches in one pass over the training data (>= 1) */

    /* One training batch: set the gradients (zero them first) of the mean
     * loss of the next batch, advancing the data walk (and starting a new
     * epoch when it ends). *loss: that mean loss; *items: what it covered
     * (tokens, examples, frames) for the throughput. Returns RECUR_OK,
     * RECUR_E_NUMERIC when the loss came out NaN/Inf (handled like a NaN
     * step), or another status to stop (message in recur_last_error). */
    int (*step)(void *ctx, recur_rng *rng, double *loss, double *items);
    /* Epochs done, as a fraction (2.5: half-way through the third pass). */
    double (*epoch)(void *ctx);
    /* Optional (NULL: no validation): the mean validation loss, and a metric
     * (*metric = NAN when none) reported as "<metric_name> value". Returns
     * a status (message in recur_last_error). */
    int (*validate)(void *ctx, double *loss, double *metric);
    /* Writes a checkpoint at path (atomically) with the training state ts,
     * whose trainer fields are filled: add the command's own fields and
     * save. Returns a status (message in recur_last_error). */
    int (*save)(void *ctx, const char *path, recur_train_state *ts);
    /* Optional: called after a NaN/Inf step was skipped (--on-nan skip),
     * e.g. to reset a carried hidden state. */
    void (*skipped)(void *ctx);
    /* Optional: called after every step, e.g. to print a sample; call
     * trainer_clear_line first when printing to stderr. */
    void (*after_step)(void *ctx, int64_t step);

    const char *unit;        /* progress line: "3.2k <unit>/s" ("tok", "ex") */
    const char *unit_csv;    /* metrics column "<unit_csv>_per_s" ("tokens") */
    int bits;                /* losses are nats per character: also shown in bits
                                ("bpc"), and the validation metric is val/ln 2 */
    const char *metric_name; /* the validation metric's name ("acc"; "bpc" with bits) */
    /* Printed after the run with the best (else latest) checkpoint's path
     * for %s, e.g. "Sample with: recur sample --model %s"; NULL: nothing. */
    const char *next_hint;

    /* MPI only (see above; ignored by a single process). shards_data: 1
     * when step() reads only this rank's share of each batch (else every
     * rank computes the same batches and the trainer warns). gather_state
     * (optional): called on every rank before each save; collects the
     * ranks' own carried state on rank 0 for save() (dist_gather_layers);
     * returns 0, or DIST_LOST when communication failed. */
    int shards_data;
    int (*gather_state)(void *ctx);
} trainer_task;

typedef struct trainer trainer;

int trainer_create(const char *cmd, cli_option *options, trainer_options *o, int argc,
                   char **argv, trainer **out);
int trainer_open_run(trainer *t, const char *default_out);
int trainer_resume(trainer *t, const recur_train_state *state);
int trainer_prepare(trainer *t);
int trainer_start(trainer *t, const trainer_task *task);
int trainer_run(trainer *t);

/* Call first in main, before any thread is created: Ctrl-C and SIGTERM are
 * then taken by a thread of their own (trainer.c says why). */
void trainer_signals_init(void);
void trainer_free(trainer *t);

const char *trainer_out_dir(const trainer *t);
const char *trainer_latest_path(const trainer *t);
const char *trainer_best_path(const trainer *t);
recur_rng *trainer_rng(trainer *t);
/* The step limit (0: none, only --time), and the current step. */
int64_t trainer_max_steps(const trainer *t);
int64_t trainer_step(const trainer *t);
/* The effective optimizer configuration (after trainer_prepare). */
const recur_optim_config *trainer_optim_config(const trainer *t);
/* Ends a live progress line so that other output can go to stderr. */
void trainer_clear_line(trainer *t);

#endif
