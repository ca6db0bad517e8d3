/* dist_check.c - the MPI layer of the recur tool (src/cli/dist.c) under
 * `mpirun -np 2` (CTest test_dist, built with RECUR_MPI=ON): broadcast;
 * the averaged gradient all-reduce in one blocking call and in buckets of
 * several sizes, started all at once or as a backward pass would report
 * them (dist_reduce_ready from the end down), odd lengths included;
 * dist_step_end's agreement on NaN steps, failed steps, stop requests, the
 * mean loss and summed items; the gather of per-rank [layers, per_layer]
 * state and its inverse; dist_check_same. Every rank checks its own
 * results; the exit status is non-zero when any check fails on this rank.
 *
 * `mpirun -np N test_dist bench FLOATS [REPS]` instead times the all-reduce
 * of FLOATS floats (blocking, and buckets of 1, 4 and 16 MB) and prints the
 * mean time per call on rank 0 (docs/mpi.md). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "dist.h"

static cli_option options[8];

static void set_option(const char *name, const char *value)
{
    cli_option *o = cli_find(options, name);
    CHECK(o != NULL && cli_set("test", o, value) == CLI_OK);
}

/* x[i] on rank r: a value whose sum over ranks is known exactly */
static float value_of(int rank, size_t i) { return (float)(rank + 1) * (float)(i % 1000) * 0.25f; }

static void check_allreduce(size_t n, const char *bucket_mb, int progressive)
{
    const int rank = dist_rank(), size = dist_size();
    set_option("mpi-bucket", bucket_mb);
    float *x = malloc(n * sizeof *x);
    if (!x)
        return;
    for (size_t i = 0; i < n; i++)
        x[i] = value_of(rank, i);
    double extra[2] = {rank + 1.0, 10.0};
    CHECK(dist_reduce_begin(x, n) == DIST_OK);
    if (progressive) /* a backward pass reporting ten tensors, last first */
        for (int k = 9; k >= 0; k--)
            CHECK(dist_reduce_ready(n * (size_t)k / 10) == DIST_OK);
    CHECK(dist_reduce_end(extra, 2) == DIST_OK);
    /* mean over ranks of (r + 1) * v = v * (size + 1) / 2 */
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        float want = (float)(i % 1000) * 0.25f * (float)(size + 1) / 2.0f;
        wrong += fabsf(x[i] - want) > 1e-6f * fabsf(want);
    }
    CHECK_MSG(wrong == 0, "%zu of %zu averaged values wrong (bucket %s MB, progressive %d)",
              wrong, n, bucket_mb, progressive);
    CHECK_NEAR(extra[0], size * (size + 1) / 2.0, 0);
    CHECK_NEAR(extra[1], 10.0 * size, 0);
    free(x);
}

static void check_step_end(void)
{
    const int rank = dist_rank(), size = dist_size();
    float g[5] = {1, 2, 3, 4, (float)rank};
    int status = RECUR_OK, stop = 0;
    double loss = rank == 0 ? 1.0 : 3.0, items = 100;
    CHECK(dist_step_end("test", g, 5, &status, &loss, &items, rank == 1 ? 2 : 0, &stop) ==
          DIST_OK);
    CHECK(status == RECUR_OK);
    CHECK_NEAR(loss, size == 2 ? 2.0 : loss, 1e-12);
    CHECK_NEAR(items, 100.0 * size, 0);
    CHECK(stop == (size > 1 ? 2 : 0));
    CHECK_NEAR(g[4], (size - 1) / 2.0, 1e-6);

    /* begun before the step (the trainer with --mpi-overlap), part of it
     * reported during the "backward pass", ended by dist_step_end */
    set_option("mpi-bucket", "0.000004"); /* one float per bucket */
    CHECK(dist_overlap() == 1);
    float h[5] = {1, 2, 3, 4, (float)rank};
    CHECK(dist_reduce_begin(h, 5) == DIST_OK);
    CHECK(dist_reduce_ready(3) == DIST_OK);
    CHECK(dist_step_end("test", h, 5, &status, &loss, &items, 0, &stop) == DIST_OK);
    CHECK_NEAR(h[0], 1.0, 0);
    CHECK_NEAR(h[4], (size - 1) / 2.0, 1e-6);
    set_option("mpi-overlap", "0");
    CHECK(dist_overlap() == 0);
    set_option("mpi-overlap", "1");
    set_option("mpi-bucket", "4");

    /* a NaN loss on rank 1 is a NaN step everywhere */
    status = rank == 1 ? RECUR_E_NUMERIC : RECUR_OK;
    loss = rank == 1 ? NAN : 1.0;
    CHECK(dist_step_end("test", g, 5, &status, &loss, &items, rank == 0 ? 1 : 0, &stop) ==
          DIST_OK);
    CHECK(status == RECUR_E_NUMERIC && isnan(loss));
    CHECK(stop == 1);

    /* a failed step on rank 1: it reports its own error, the others stop */
    status = rank == 1 ? RECUR_E_IO : RECUR_OK;
    loss = 1.0;
    int rc = dist_step_end("test", g, 5, &status, &loss, &items, 0, &stop);
    if (rank == 1) {
        CHECK(rc == DIST_OK && status == RECUR_E_IO);
    } else {
        CHECK(rc == DIST_PEER_FAILED);
    }
    CHECK(dist_steps() == 4);
}

static void check_gather(void)
{
    const int rank = dist_rank(), size = dist_size();
    enum { LAYERS = 3, PER = 5 };
    float mine[LAYERS * PER], all[LAYERS * PER * 4], back[LAYERS * PER];
    for (int l = 0; l < LAYERS; l++)
        for (int j = 0; j < PER; j++)
            mine[l * PER + j] = (float)(100 * rank + 10 * l + j);
    CHECK(dist_gather_layers(mine, LAYERS, PER, all) == DIST_OK);
    int status = 0;
    if (rank == 0) {
        int wrong = 0;
        for (int l = 0; l < LAYERS; l++)
            for (int r = 0; r < size; r++)
                for (int j = 0; j < PER; j++)
                    wrong += all[(l * size + r) * PER + j] != (float)(100 * r + 10 * l + j);
        CHECK_MSG(wrong == 0, "%d gathered values are misplaced", wrong);
    }
    /* rank 0's gathered array, sliced by each rank, gives back its own */
    CHECK(dist_broadcast(all, sizeof(float) * LAYERS * PER * (size_t)size) == DIST_OK);
    dist_slice_layers(all, LAYERS, PER, back);
    CHECK(memcmp(back, mine, sizeof mine) == 0);
    CHECK(dist_agree(&status) == DIST_OK && status == 0);
}

static void check_broadcast_and_same(void)
{
    const int rank = dist_rank();
    char text[64];
    snprintf(text, sizeof text, "from rank %d", rank);
    CHECK(dist_broadcast(text, sizeof text) == DIST_OK);
    CHECK(strcmp(text, "from rank 0") == 0);
    int status = rank == 0 ? -4 : 0;
    CHECK(dist_agree(&status) == DIST_OK && status == -4);
    CHECK(dist_check_same(42, "the step") == DIST_OK);
    CHECK(dist_check_same(rank == 0 ? 7 : 9, "the step") == DIST_PEER_FAILED);
    CHECK_MSG(strstr(dist_error(), "the ranks disagree on the step: from 7 to 9") != NULL,
              "message: %s", dist_error());
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench(size_t n, int reps)
{
    float *x = calloc(n, sizeof *x);
    if (!x)
        return 1;
    const char *buckets[] = {"0", "1", "4", "16"};
    for (size_t b = 0; b < 4; b++) {
        set_option("mpi-bucket", buckets[b]);
        for (int warm = 0; warm < 2; warm++) {
            dist_reduce_begin(x, n);
            dist_reduce_end(NULL, 0);
        }
        int status = 0;
        dist_agree(&status);
        double t0 = seconds();
        for (int r = 0; r < reps; r++) {
            dist_reduce_begin(x, n);
            if (dist_reduce_end(NULL, 0)) {
                fprintf(stderr, "%s\n", dist_error());
                return 1;
            }
        }
        double per_call = (seconds() - t0) / reps;
        if (dist_is_main())
            printf("ranks %d floats %zu (%.1f MB) bucket %s MB: %.3f ms per all-reduce, "
                   "%.2f GB/s algorithm bandwidth\n", dist_size(), n, n * 4.0 / 1e6,
                   buckets[b], per_call * 1e3, n * 4.0 / per_call / 1e9);
    }
    free(x);
    return 0;
}

int main(int argc, char **argv)
{
    if (dist_init("test") != CLI_OK)
        return 1;
    int count = dist_add_options(options, 7);
    options[count > 0 ? count : 0] = (cli_option)CLI_END;
    CHECK(count == 3); /* --mpi-bucket, --mpi-overlap, --mpi-timeout */
    if (argc >= 3 && strcmp(argv[1], "bench") == 0) {
        int rc = bench((size_t)atoll(argv[2]), argc >= 4 ? atoi(argv[3]) : 20);
        dist_finish(1);
        return rc;
    }
    CHECK(dist_size() >= 2 && dist_active());
    set_option("mpi-timeout", "60");
    check_broadcast_and_same();
    check_allreduce(1, "0", 0);
    check_allreduce(1000003, "0", 0);
    check_allreduce(1000003, "1", 0);
    check_allreduce(1000003, "0.5", 1);
    check_allreduce(777, "0.001", 1); /* buckets of 262 floats */
    check_step_end();
    check_gather();
    int failed = check_failed;
    dist_finish(1);
    printf("rank %d: %d passed, %d failed\n", dist_rank(), check_passed, failed);
    return failed ? 1 : 0;
}
