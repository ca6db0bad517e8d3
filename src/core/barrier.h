/* barrier.h - the barrier of the time loop's threads: spin briefly (a step's
 * threads normally arrive within microseconds of each other), then yield the
 * core. OpenMP's own barrier spins far longer before sleeping, and when
 * another process holds one of the cores that spinning starves the very
 * thread being waited for: a 40x slowdown was measured here. With yielding,
 * a busy machine costs recur only its fair share. */
#ifndef RECUR_BARRIER_H
#define RECUR_BARRIER_H

#include <stdatomic.h>
#include <threads.h>

typedef struct recur__barrier {
    atomic_int arrived;
    atomic_int generation;
    int threads;
} recur__barrier;

static inline void recur__barrier_init(recur__barrier *b, int threads)
{
    atomic_init(&b->arrived, 0);
    atomic_init(&b->generation, 0);
    b->threads = threads;
}

static inline void recur__barrier_wait(recur__barrier *b)
{
    if (b->threads <= 1)
        return;
    int generation = atomic_load_explicit(&b->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) == b->threads - 1) {
        atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->generation, 1, memory_order_release);
        return;
    }
    for (int spins = 0; atomic_load_explicit(&b->generation, memory_order_acquire) == generation;
         spins++) {
        if (spins < 2000) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else
            thrd_yield();
    }
}

#endif
