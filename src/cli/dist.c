/* dist.c - data-parallel training over MPI (dist.h, docs/mpi.md): joining
 * the job, broadcasts, the averaged gradient all-reduce (bucketed and
 * non-blocking, or one blocking call), gathers of per-rank state, failure
 * detection, and a stub for builds without MPI (RECUR_MPI=OFF).
 *
 * Every wait goes through wait_requests: MPI_Testall in a loop (the calls
 * that progress non-blocking collectives in Open MPI, which has no progress
 * thread by default), spinning for a short while and then sleeping between
 * polls so that a rank waiting for a slower one leaves the cores to it; the
 * loop gives up after --mpi-timeout seconds. The communicator is a
 * duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN, so that a broken
 * connection becomes a message instead of an abort inside the library.
 * Leaves out: gradient compression, hierarchical (per-machine) reductions,
 * and recovering from a lost rank (the job ends; the last checkpoint is
 * intact). */
#define _GNU_SOURCE
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dist.h"

#ifdef RECUR_MPI
#include <limits.h>
#include <mpi.h>
#endif

static char error_text[1024];
static double comm_seconds;
static int64_t step_count;

const char *dist_error(void) { return error_text; }
double dist_comm_seconds(void) { return comm_seconds; }
int64_t dist_steps(void) { return step_count; }

/* The job size mpirun (Open MPI, MPICH/Hydra, PMIx launchers) announces in
 * the environment; 0 when not launched by one. */
static int launcher_size(void)
{
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v && *v)
            return atoi(v);
    }
    return getenv("PMIX_RANK") ? 1 : 0;
}

void dist_slice_layers(const float *all, size_t layers, size_t per_layer, float *mine)
{
    const size_t size = (size_t)dist_size(), rank = (size_t)dist_rank();
    for (size_t l = 0; l < layers; l++)
        memcpy(mine + l * per_layer, all + (l * size + rank) * per_layer,
               per_layer * sizeof *mine);
}

#ifdef RECUR_MPI

/* The MPI options and their defaults. */
static double bucket_mb = 4.0;
static double timeout_s = 300.0;
static int overlap = 1;

static int set_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int set_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_text, sizeof error_text, fmt, ap);
    va_end(ap);
    return code;
}

static struct {
    int joined;   /* MPI_Init_thread was called by dist_init */
    int broken;   /* a communication failed: finish with MPI_Abort */
    int rank, size, local_size;
    char host[MPI_MAX_PROCESSOR_NAME];
    MPI_Comm comm;
    /* the all-reduce in flight (dist_reduce_begin .. end) */
    int open; /* dist_reduce_begin was called, dist_reduce_end not yet */
    float *grads;
    size_t n, bucket, next_hi; /* buckets [lo, next_hi) are started from the end down */
    MPI_Request *requests;
    int request_count, request_capacity;
} d = {.size = 1, .local_size = 1};

int dist_rank(void) { return d.rank; }
int dist_size(void) { return d.size; }
int dist_is_main(void) { return d.rank == 0; }
int dist_active(void) { return d.size > 1; }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int lost(int mpi_code, const char *what)
{
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(mpi_code, text, &len);
    d.broken = 1;
    return set_error(DIST_LOST, "rank %d of %d (host %s) lost contact with the other ranks "
                     "during %s: %s; a rank has died or its host is unreachable", d.rank,
                     d.size, d.host, what, text);
}

/* Waits for count requests, with the --mpi-timeout deadline. */
static int wait_requests(MPI_Request *requests, int count, const char *what)
{
    const double start = now();
    double spin_until = start + 1e-3;
    for (;;) {
        int done = 0;
        int rc = MPI_Testall(count, requests, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) {
            comm_seconds += now() - start;
            return lost(rc, what);
        }
        if (done)
            break;
        double t = now();
        if (timeout_s > 0 && t - start > timeout_s) {
            comm_seconds += t - start;
            d.broken = 1;
            return set_error(DIST_LOST, "rank %d of %d (host %s) waited %.0f s for the other "
                             "ranks during %s (--mpi-timeout): a rank has died or hangs, or "
                             "its host is unreachable", d.rank, d.size, d.host, t - start,
                             what);
        }
        if (t > spin_until) {
            /* a long wait: poll every 20 us and leave the core to the others */
            struct timespec pause = {0, 20000};
            nanosleep(&pause, NULL);
        }
    }
    comm_seconds += now() - start;
    return DIST_OK;
}

int dist_init(const char *cmd)
{
    if (d.joined)
        return CLI_OK;
    if (launcher_size() == 0)
        return CLI_OK; /* not started by mpirun: one process, no MPI */
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return cli_fail(cmd, "Check the MPI installation (mpirun --version).",
                        "MPI_Init failed");
    d.joined = 1;
    MPI_Comm_dup(MPI_COMM_WORLD, &d.comm);
    MPI_Comm_set_errhandler(d.comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(d.comm, &d.rank);
    MPI_Comm_size(d.comm, &d.size);
    int len = 0;
    MPI_Get_processor_name(d.host, &len);
    MPI_Comm local;
    d.local_size = 1;
    if (MPI_Comm_split_type(d.comm, MPI_COMM_TYPE_SHARED, d.rank, MPI_INFO_NULL, &local) ==
        MPI_SUCCESS) {
        MPI_Comm_size(local, &d.local_size);
        MPI_Comm_free(&local);
    }
    return CLI_OK;
}

void dist_finish(int agreed)
{
    if (!d.joined)
        return;
    free(d.requests);
    d.requests = NULL;
    if (d.size > 1 && (!agreed || d.broken)) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Comm_free(&d.comm);
    MPI_Finalize();
    d.joined = 0;
}

int dist_default_threads(void)
{
    if (d.size <= 1)
        return 0;
    cpu_set_t set;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int mine = (int)(online > 0 ? online : 1);
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        mine = CPU_COUNT(&set);
    int share = (int)(online > 0 ? online : 1) / (d.local_size > 0 ? d.local_size : 1);
    int threads = mine < share ? mine : share;
    return threads > 0 ? threads : 1;
}

int dist_add_options(cli_option *table, int capacity)
{
    const cli_option entries[] = {
        {"mpi-bucket", CLI_DOUBLE, &bucket_mb, "MB", "MPI: gradients are averaged in "
         "non-blocking all-reduces of MB megabytes each, last layers first (0: one blocking "
         "all-reduce)", 0, 1e6, NULL, NULL, 0, 0},
        {"mpi-overlap", CLI_INT, &overlap, "0|1", "MPI: start each bucket's all-reduce during "
         "the backward pass as soon as its gradients are final, where the model reports them "
         "(recur train); 0: after the backward pass", 0, 1, NULL, NULL, 0, 0},
        {"mpi-timeout", CLI_DOUBLE, &timeout_s, "SECONDS", "MPI: end the job when the other "
         "ranks do not answer for this long (0: wait forever)", 0, 1e9, NULL, NULL, 0, 0},
    };
    const int count = (int)(sizeof entries / sizeof entries[0]);
    if (!table || capacity < count)
        return -1;
    memcpy(table, entries, sizeof entries);
    return count;
}

int dist_broadcast(void *data, size_t bytes)
{
    if (d.size <= 1)
        return DIST_OK;
    char *p = data;
    while (bytes > 0) {
        int part = bytes > (size_t)1 << 30 ? 1 << 30 : (int)bytes;
        MPI_Request request = MPI_REQUEST_NULL;
        int rc = MPI_Ibcast(p, part, MPI_BYTE, 0, d.comm, &request);
        if (rc != MPI_SUCCESS)
            return lost(rc, "a broadcast");
        if (wait_requests(&request, 1, "a broadcast from rank 0"))
            return DIST_LOST;
        p += part;
        bytes -= (size_t)part;
    }
    return DIST_OK;
}

int dist_agree(int *status)
{
    return dist_broadcast(status, sizeof *status);
}

int dist_check_same(int64_t value, const char *what)
{
    if (d.size <= 1)
        return DIST_OK;
    int64_t low = value, high = value;
    MPI_Request requests[2];
    int rc = MPI_Iallreduce(MPI_IN_PLACE, &low, 1, MPI_INT64_T, MPI_MIN, d.comm, &requests[0]);
    if (rc == MPI_SUCCESS)
        rc = MPI_Iallreduce(MPI_IN_PLACE, &high, 1, MPI_INT64_T, MPI_MAX, d.comm, &requests[1]);
    if (rc != MPI_SUCCESS)
        return lost(rc, "a consistency check");
    if (wait_requests(requests, 2, "a consistency check"))
        return DIST_LOST;
    if (low != high)
        return set_error(DIST_PEER_FAILED, "the ranks disagree on %s: from %lld to %lld "
                         "(rank %d has %lld)", what, (long long)low, (long long)high, d.rank,
                         (long long)value);
    return DIST_OK;
}

/* ---- the gradient all-reduce ----------------------------------------------- */

static int add_request(MPI_Request **request)
{
    if (d.request_count == d.request_capacity) {
        int capacity = d.request_capacity ? 2 * d.request_capacity : 16;
        MPI_Request *grown = realloc(d.requests, (size_t)capacity * sizeof *grown);
        if (!grown)
            return set_error(DIST_LOST, "out of memory for MPI requests");
        d.requests = grown;
        d.request_capacity = capacity;
    }
    *request = &d.requests[d.request_count++];
    return DIST_OK;
}

/* Starts the all-reduce (sum) of grads[lo, hi), in pieces below INT_MAX. */
static int start_range(size_t lo, size_t hi)
{
    while (lo < hi) {
        size_t part = hi - lo > (size_t)INT_MAX ? (size_t)INT_MAX : hi - lo;
        MPI_Request *request = NULL;
        if (add_request(&request))
            return DIST_LOST;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, d.grads + lo, (int)part, MPI_FLOAT, MPI_SUM,
                                d.comm, request);
        if (rc != MPI_SUCCESS)
            return lost(rc, "the gradient all-reduce");
        lo += part;
    }
    return DIST_OK;
}

int dist_overlap(void)
{
    return d.size > 1 && overlap && bucket_mb > 0;
}

static int reduce_open(void)
{
    return d.open;
}

int dist_reduce_begin(float *grads, size_t n)
{
    d.open = 1;
    d.grads = grads;
    d.n = n;
    d.next_hi = n;
    d.request_count = 0;
    d.bucket = (size_t)(bucket_mb * 1048576.0 / sizeof(float));
    return DIST_OK;
}

int dist_reduce_ready(size_t from)
{
    if (d.broken)
        return DIST_LOST; /* the message is already set */
    if (d.size <= 1 || d.bucket == 0 || !d.open)
        return DIST_OK;
    while (d.next_hi > 0) {
        size_t lo = d.next_hi > d.bucket ? d.next_hi - d.bucket : 0;
        if (lo < from)
            break;
        if (start_range(lo, d.next_hi))
            return DIST_LOST;
        d.next_hi = lo;
    }
    if (d.request_count > 0) {
        int done = 0, rc = MPI_Testall(d.request_count, d.requests, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS)
            return lost(rc, "the gradient all-reduce");
    }
    return DIST_OK;
}

int dist_reduce_end(double *extra, int extra_count)
{
    if (d.size <= 1)
        return DIST_OK;
    if (d.broken) {
        d.open = 0;
        return DIST_LOST; /* a notification during the backward pass failed */
    }
    if (d.bucket == 0) {
        /* one blocking call: Open MPI's tuned all-reduce, no timeout inside */
        const double start = now();
        for (size_t lo = 0; lo < d.n;) {
            size_t part = d.n - lo > (size_t)INT_MAX ? (size_t)INT_MAX : d.n - lo;
            int rc = MPI_Allreduce(MPI_IN_PLACE, d.grads + lo, (int)part, MPI_FLOAT, MPI_SUM,
                                   d.comm);
            if (rc != MPI_SUCCESS)
                return lost(rc, "the gradient all-reduce");
            lo += part;
        }
        comm_seconds += now() - start;
    } else {
        int rc = dist_reduce_ready(0);
        d.open = 0;
        if (rc)
            return DIST_LOST;
    }
    d.open = 0;
    if (extra_count > 0) {
        MPI_Request *request = NULL;
        if (add_request(&request))
            return DIST_LOST;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, extra, extra_count, MPI_DOUBLE, MPI_SUM, d.comm,
                                request);
        if (rc != MPI_SUCCESS)
            return lost(rc, "the all-reduce of the losses");
    }
    if (d.request_count > 0 &&
        wait_requests(d.requests, d.request_count, "the gradient all-reduce"))
        return DIST_LOST;
    d.request_count = 0;
    const float scale = 1.0f / (float)d.size;
    for (size_t i = 0; i < d.n; i++)
        d.grads[i] *= scale;
    return DIST_OK;
}

int dist_gather_layers(const float *mine, size_t layers, size_t per_layer, float *all)
{
    if (d.size <= 1) {
        memcpy(all, mine, layers * per_layer * sizeof *all);
        return DIST_OK;
    }
    const size_t block = layers * per_layer;
    if (block * sizeof(float) > (size_t)INT_MAX)
        return set_error(DIST_LOST, "a state of %zu floats is too large to gather", block);
    float *staged = NULL;
    if (d.rank == 0 && !(staged = malloc(block * (size_t)d.size * sizeof *staged)))
        return set_error(DIST_LOST, "out of memory gathering the ranks' state");
    MPI_Request request = MPI_REQUEST_NULL;
    int rc = MPI_Igather(mine, (int)(block * sizeof(float)), MPI_BYTE, staged,
                         (int)(block * sizeof(float)), MPI_BYTE, 0, d.comm, &request);
    if (rc != MPI_SUCCESS) {
        free(staged);
        return lost(rc, "the gather of the carried state");
    }
    if (wait_requests(&request, 1, "the gather of the carried state")) {
        free(staged);
        return DIST_LOST;
    }
    if (d.rank == 0) {
        /* staged [size, layers, per_layer] -> all [layers, size, per_layer] */
        for (size_t r = 0; r < (size_t)d.size; r++)
            for (size_t l = 0; l < layers; l++)
                memcpy(all + (l * (size_t)d.size + r) * per_layer,
                       staged + (r * layers + l) * per_layer, per_layer * sizeof *all);
    }
    free(staged);
    return DIST_OK;
}

#else /* no MPI: one process */

int dist_rank(void) { return 0; }
int dist_size(void) { return 1; }
int dist_is_main(void) { return 1; }
int dist_active(void) { return 0; }
int dist_default_threads(void) { return 0; }
void dist_finish(int agreed) { (void)agreed; }

int dist_init(const char *cmd)
{
    /* mpirun -np N of a build without MPI would start N independent runs
     * writing the same folder */
    if (launcher_size() > 1)
        return cli_fail(cmd, "Rebuild with cmake -DRECUR_MPI=ON (docs/mpi.md), or run one "
                        "process.", "this recur was built without MPI, but mpirun started %d "
                        "copies of it: they would train %d separate models into the same "
                        "folder", launcher_size(), launcher_size());
    return CLI_OK;
}

int dist_add_options(cli_option *table, int capacity)
{
    (void)table;
    (void)capacity;
    return 0;
}

int dist_broadcast(void *data, size_t bytes)
{
    (void)data;
    (void)bytes;
    return DIST_OK;
}

int dist_agree(int *status)
{
    (void)status;
    return DIST_OK;
}

int dist_check_same(int64_t value, const char *what)
{
    (void)value;
    (void)what;
    return DIST_OK;
}

int dist_overlap(void)
{
    return 0;
}

static int reduce_open(void)
{
    return 0;
}

int dist_reduce_begin(float *grads, size_t n)
{
    (void)grads;
    (void)n;
    return DIST_OK;
}

int dist_reduce_ready(size_t from)
{
    (void)from;
    return DIST_OK;
}

int dist_reduce_end(double *extra, int extra_count)
{
    (void)extra;
    (void)extra_count;
    return DIST_OK;
}

int dist_gather_layers(const float *mine, size_t layers, size_t per_layer, float *all)
{
    memcpy(all, mine, layers * per_layer * sizeof *all);
    return DIST_OK;
}

#endif

int dist_step_end(const char *cmd, float *grads, size_t n, int *status, double *loss,
                  double *items, int local_stop, int *stop)
{
    *stop = local_stop;
    if (!dist_active())
        return DIST_OK;
    const int own_bad = *status == RECUR_E_NUMERIC || (*status == RECUR_OK && !isfinite(*loss));
    const int own_failed = *status != RECUR_OK && *status != RECUR_E_NUMERIC;
    /* summed over the ranks: loss, items, NaN steps, failed steps, the two stop bits */
    double extra[6] = {own_bad || own_failed ? 0.0 : *loss, *items, own_bad, own_failed,
                       (double)(local_stop & 1), (double)((local_stop >> 1) & 1)};
    /* the trainer may have begun it before the step, for a model that
     * reports its gradients during the backward pass */
    if ((!reduce_open() && dist_reduce_begin(grads, n)) || dist_reduce_end(extra, 6))
        return DIST_LOST;
    step_count++;
    *stop = (extra[4] > 0 ? 1 : 0) | (extra[5] > 0 ? 2 : 0);
    *items = extra[1];
    if (extra[3] > 0) {
        if (own_failed)
            return DIST_OK; /* the caller reports its own error */
        if (dist_is_main())
            fprintf(stderr, "recur %s: error: the training step failed on %.0f of the %d ranks "
                    "(their messages are above); stopping every rank.\n", cmd, extra[3],
                    dist_size());
        return DIST_PEER_FAILED;
    }
    if (extra[2] > 0) {
        *status = RECUR_E_NUMERIC;
        *loss = NAN;
    } else {
        *loss = extra[0] / (double)dist_size();
    }
    return DIST_OK;
}

/* ---- sharding helpers (both builds) --------------------------------------- */

void dist_share(size_t n, size_t B, size_t *lo, size_t *hi)
{
    const size_t first = (size_t)dist_rank() * B;
    *lo = first < n ? first : n;
    *hi = n - *lo < B ? n : *lo + B;
}

void dist_weigh_share(float *grads, size_t count, double *loss, size_t mine, size_t all)
{
    if (!dist_active() || all == 0)
        return;
    const double w = (double)mine * (double)dist_size() / (double)all;
    for (size_t i = 0; i < count; i++)
        grads[i] *= (float)w;
    *loss *= w;
}

recur_rng *dist_share_rng(recur_rng *shared, recur_rng *own)
{
    if (!dist_active())
        return shared;
    recur_rng_seed(own, recur_rng_next(shared) ^
                            (uint64_t)(dist_rank() + 1) * 0x9e3779b97f4a7c15ull);
    return own;
}
