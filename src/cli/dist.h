/* dist.h - data-parallel training over MPI for the training commands of the
 * `recur` tool (docs/mpi.md). Everything MPI is behind this header; the
 * library itself never calls MPI.
 *
 * Built with RECUR_MPI=ON, a process started by mpirun (OMPI_COMM_WORLD_SIZE,
 * PMI_SIZE or PMIX_RANK in its environment) joins the job in dist_init; any
 * other process, and every process of a build without MPI, is rank 0 of 1
 * and every call below is a cheap no-op. Only the main thread calls MPI
 * (MPI_THREAD_FUNNELED); OpenMP threads never do.
 *
 * What the trainer (trainer.c) does with it, on every rank:
 *   - dist_init; rank 0 alone prints progress, writes metrics and
 *     checkpoints;
 *   - at the start: dist_broadcast of the flat parameters and optimizer
 *     moments from rank 0, dist_check_same of the step (a resumed run);
 *   - after each backward pass: dist_step_end, which averages the flat
 *     gradients (bucketed non-blocking all-reduces, or one blocking one)
 *     together with the loss, the item count and the stop requests, so that
 *     NaN handling, clipping (global norm) and the optimizer step see the
 *     same numbers on every rank, and every rank stops at the same step;
 *   - validation on rank 0, shared with dist_broadcast; before a save,
 *     the command's dist_gather_layers of per-rank state; dist_agree of the
 *     save's status;
 *   - dist_finish: MPI_Finalize after an agreed end, MPI_Abort (which ends
 *     every rank) otherwise.
 * Communication errors (MPI_ERRORS_RETURN) and waits longer than
 * --mpi-timeout return DIST_LOST with a message in dist_error(): a rank died
 * or a host became unreachable; the caller reports it and ends the job.
 *
 * Return values: 0 (DIST_OK) or DIST_LOST (negative). */
#ifndef RECUR_CLI_DIST_H
#define RECUR_CLI_DIST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"

enum { DIST_OK = 0, DIST_LOST = -1, DIST_PEER_FAILED = 1 };

/* The option name under which a checkpoint records the number of ranks of
 * a multi-rank run (absent: 1 rank). */
#define DIST_RANKS_OPTION "mpi_ranks"

/* Joins the MPI job when launched by mpirun (once; later calls do nothing).
 * CLI_OK, or CLI_FAILURE after printing why. */
int dist_init(const char *cmd);
/* Leaves the job: MPI_Finalize when `agreed` (every rank ends here by the
 * same decision) and no communication failed, else MPI_Abort with exit code
 * 1, which ends every rank of the job (a rank that stopped alone would leave
 * the others waiting). No-op without MPI. */
void dist_finish(int agreed);

int dist_rank(void);
int dist_size(void);
/* 1 on rank 0 (and always without MPI). */
int dist_is_main(void);
/* 1 when the job has more than one rank: the trainer's MPI paths run. */
int dist_active(void);
/* Threads per rank when --threads is 0: 0 (all cores) for a single
 * process, else the cores this rank may run on, shared evenly by the ranks
 * on its machine (at least 1). */
int dist_default_threads(void);

/* The MPI options (--mpi-bucket, --mpi-overlap, --mpi-timeout) as option-table entries,
 * written to table[0..capacity); returns how many (0 without MPI), or -1
 * when capacity is too small. */
int dist_add_options(cli_option *table, int capacity);

/* The message of the last DIST_LOST. */
const char *dist_error(void);

/* Rank 0's bytes to every rank. */
int dist_broadcast(void *data, size_t bytes);
/* Rank 0's status to every rank (each receives it in *status). */
int dist_agree(int *status);
/* DIST_PEER_FAILED, with a message naming both values in dist_error(),
 * when `value` differs between ranks. */
int dist_check_same(int64_t value, const char *what);

/* The end of one training step on every rank: averages grads [n] over the
 * ranks, and combines the rest: *status becomes RECUR_E_NUMERIC on every
 * rank when any rank's loss or status was not finite; *loss the mean of the
 * ranks' losses; *items their sum; *stop the OR of the ranks' local_stop
 * bits. Returns DIST_OK; DIST_PEER_FAILED on the ranks whose own step was
 * fine when another rank's step failed (rank 0 prints which); a rank whose
 * own step failed keeps its *status and gets DIST_OK, to report its own
 * error. Gradients go in buckets of --mpi-bucket MB started from the end of
 * the array (the last layers' gradients are the first ready in a backward
 * pass) with MPI_Iallreduce, or in one MPI_Allreduce with --mpi-bucket 0. */
int dist_step_end(const char *cmd, float *grads, size_t n, int *status, double *loss,
                  double *items, int local_stop, int *stop);

/* The bucketed all-reduce on its own, for a backward pass that reports
 * gradients as they become final: begin, then ready(from) each time
 * grads[from..n) are final (starts every bucket inside that range and
 * progresses those in flight), then end (starts the rest, waits, divides by
 * the rank count). `extra` [extra_count] doubles are summed alongside (NULL,
 * 0: none). */
int dist_reduce_begin(float *grads, size_t n);
/* 1 when buckets should be started during the backward pass (MPI with
 * more than one rank, --mpi-overlap 1, --mpi-bucket > 0): the trainer then
 * begins the all-reduce before task.step, the command has its model call
 * dist_reduce_ready as gradients become final, and dist_step_end ends it. */
int dist_overlap(void);
int dist_reduce_ready(size_t from);
int dist_reduce_end(double *extra, int extra_count);

/* Collects every rank's [layers, per_layer] block on rank 0 as
 * all [layers, size * per_layer], rank r's block at column block r of
 * each layer (e.g. the carried state [L, B, H] of every rank as the state
 * [L, N*B, H] of the whole batch). `all` is written on rank 0 only. */
int dist_gather_layers(const float *mine, size_t layers, size_t per_layer, float *all);
/* The inverse, without communication: this rank's block of `all`. */
void dist_slice_layers(const float *all, size_t layers, size_t per_layer, float *mine);

/* Sharding a command's batches (docs/mpi.md): with --batch B a step takes
 * the global batch of N*B items a one-process run with --batch N*B takes.
 * dist_share: this rank's share [*lo, *hi) of a global batch of n items:
 * [rank*B, (rank+1)*B) clamped to n, so the last, short batch of an epoch
 * can leave a rank none (one process: [0, n)).
 * dist_weigh_share: the trainer averages the ranks' gradients and losses
 * with equal weights (sum / N), so a rank whose mean covers `mine` of the
 * global batch's `all` items (or tokens) weighs it by mine * N / all; the
 * average is then the global batch's mean. No-op for one process.
 * dist_share_rng: the random stream for this rank's share: every rank takes
 * one draw of the shared stream (which stays the same on every rank and is
 * what checkpoints save) and seeds `own` from it and its rank, so shares of
 * different shapes never make the ranks' streams drift apart. One process
 * gets the shared stream itself. */
void dist_share(size_t n, size_t B, size_t *lo, size_t *hi);
void dist_weigh_share(float *grads, size_t count, double *loss, size_t mine, size_t all);
recur_rng *dist_share_rng(recur_rng *shared, recur_rng *own);

/* Seconds spent in communication (including waits for slower ranks) and
 * the number of dist_step_end calls, since dist_init. */
double dist_comm_seconds(void);
int64_t dist_steps(void);

#endif
