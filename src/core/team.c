/* team.c - helper threads for microsecond-long parallel work (team.h). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "core/team.h"

#include <stdatomic.h>
#include <stdint.h>
#include <threads.h>
#include <time.h>

#include "internal.h"

struct recur_team {
    int P;
    thrd_t *helpers;
    int started;                    /* helpers created */
    void (*fn)(void *, int);
    void *ctx;
    _Alignas(64) atomic_long go;    /* number of the current run; -1: stop */
    _Alignas(64) atomic_long done;  /* helper runs finished, in all */
    _Alignas(64) atomic_int sleepers;
    mtx_t mu;
    cnd_t wake;
    long runs;                      /* runs started (the caller's count) */
};

typedef struct helper_arg {
    recur_team *team;
    int k;
} helper_arg;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

/* Waits until team->go differs from seen and returns it: spins for
 * RECUR__TEAM_SPIN_US, then sleeps. */
static long wait_for_run(recur_team *t, long seen)
{
    long g;
    double start = 0;
    for (unsigned spins = 0;; spins++) {
        if ((g = atomic_load_explicit(&t->go, memory_order_acquire)) != seen)
            return g;
        cpu_relax();
        if ((spins & 255) != 255)
            continue;
        if (start == 0)
            start = now_us();
        else if (now_us() - start > RECUR__TEAM_SPIN_US)
            break;
    }
    mtx_lock(&t->mu);
    atomic_fetch_add(&t->sleepers, 1); /* seq_cst: pairs with the caller's store of go */
    while ((g = atomic_load(&t->go)) == seen)
        cnd_wait(&t->wake, &t->mu);
    atomic_fetch_sub(&t->sleepers, 1);
    mtx_unlock(&t->mu);
    return g;
}

static int helper_main(void *p)
{
    helper_arg *a = p;
    recur_team *t = a->team;
    const int k = a->k;
    recur__free(a);
    long seen = 0;
    for (;;) {
        long g = wait_for_run(t, seen);
        if (g < 0)
            return 0;
        seen = g;
        t->fn(t->ctx, k);
        atomic_fetch_add_explicit(&t->done, 1, memory_order_acq_rel);
    }
}

void recur__team_free(recur_team *t)
{
    if (!t)
        return;
    if (t->started) {
        mtx_lock(&t->mu);
        atomic_store(&t->go, -1);
        cnd_broadcast(&t->wake);
        mtx_unlock(&t->mu);
        for (int i = 0; i < t->started; i++)
            thrd_join(t->helpers[i], NULL);
    }
    mtx_destroy(&t->mu);
    cnd_destroy(&t->wake);
    recur__free(t->helpers);
    recur__free(t);
}

int recur__team_create(int P, recur_team **out)
{
    *out = NULL;
    if (P < 2)
        return recur__error(RECUR_E_INVALID, "a team needs at least 2 threads, not %d", P);
    recur_team *t = recur__calloc(1, sizeof *t);
    if (!t)
        return recur__error(RECUR_E_NOMEM, "out of memory creating a thread team");
    t->P = P;
    atomic_init(&t->go, 0);
    atomic_init(&t->done, 0);
    atomic_init(&t->sleepers, 0);
    t->helpers = recur__calloc((size_t)P - 1, sizeof *t->helpers);
    if (!t->helpers || mtx_init(&t->mu, mtx_plain) != thrd_success) {
        recur__free(t->helpers);
        recur__free(t);
        return recur__error(RECUR_E_NOMEM, "out of memory creating a thread team");
    }
    if (cnd_init(&t->wake) != thrd_success) {
        mtx_destroy(&t->mu);
        recur__free(t->helpers);
        recur__free(t);
        return recur__error(RECUR_E_NOMEM, "out of memory creating a thread team");
    }
    for (int i = 0; i < P - 1; i++) {
        helper_arg *a = recur__malloc(sizeof *a);
        if (a) {
            a->team = t;
            a->k = i + 1;
        }
        if (!a || thrd_create(&t->helpers[i], helper_main, a) != thrd_success) {
            recur__free(a);
            recur__team_free(t);
            return recur__error(RECUR_E_NOMEM, "cannot start the helper threads of a "
                                "thread team");
        }
        t->started++;
    }
    *out = t;
    return RECUR_OK;
}

void recur__team_run(recur_team *t, void (*fn)(void *ctx, int k), void *ctx)
{
    t->fn = fn;
    t->ctx = ctx;
    const long run = ++t->runs;
    atomic_store(&t->go, run); /* seq_cst: pairs with a helper's sleepers increment */
    if (atomic_load(&t->sleepers) > 0) {
        mtx_lock(&t->mu);
        cnd_broadcast(&t->wake);
        mtx_unlock(&t->mu);
    }
    fn(ctx, 0);
    const long want = run * (long)(t->P - 1);
    for (int spins = 0; atomic_load_explicit(&t->done, memory_order_acquire) != want; spins++) {
        if (spins < 4000)
            cpu_relax();
        else
            thrd_yield();
    }
}
