/* internal.h - private helpers shared by every source file of the library:
 * allocation through the user's hook, overflow-checked size arithmetic and
 * the thread-local error message. Nothing here is exported. */
#ifndef RECUR_INTERNAL_H
#define RECUR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "recur/core.h"

#if defined(__GNUC__)
#define RECUR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RECUR_PRINTF(a, b)
#endif

/* Allocation through the hook set by recur_set_allocator. */
void *recur__malloc(size_t size);
/* Zeroed allocation of n * size bytes; NULL on overflow or failure. */
void *recur__calloc(size_t n, size_t size);
void recur__free(void *ptr);
char *recur__strdup(const char *s);

/* Records a message for recur_last_error() and returns status, so that
 * failures read `return recur__error(RECUR_E_IO, "cannot open %s", path);` */
int recur__error(int status, const char *fmt, ...) RECUR_PRINTF(2, 3);

/* Overflow-checked size arithmetic: return false on overflow. */
static inline bool recur__mul_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool recur__add_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

/* The calling thread's index inside an OpenMP parallel region (0 outside). */
int recur__thread_index(void);

/* mask[i] = recur_rng_uniform(rng) < p ? 0 : keep for i < n: the same draws as n calls
 * (rng advances n times), made faster (rng.c). */
void recur__rng_dropout_mask(recur_rng *rng, size_t n, float p, float keep, float *mask);

#endif
