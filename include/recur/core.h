/* recur/core.h - status codes, error messages, allocation hook, threads, RNG.
 *
 * Conventions used by every recur header:
 *   - every fallible call returns an int status: RECUR_OK (0) or a negative
 *     recur_status; results are written through out-parameters;
 *   - after a failure, recur_last_error() gives a message with the detail
 *     (which file, which tensor, expected vs got);
 *   - whoever creates an object frees it; every *_free(NULL) is a no-op;
 *   - dimension letters: B batch, T time, I input, H hidden, G gates,
 *     V vocab, O output, L layers, D directions. Shapes are given as [T, B, I]
 *     (row-major, last index fastest). */
#ifndef RECUR_CORE_H
#define RECUR_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RECUR_VERSION_MAJOR 0
#define RECUR_VERSION_MINOR 1
#define RECUR_VERSION_PATCH 0
#define RECUR_VERSION_STRING "0.1.0"

#if defined(_WIN32)
#define RECUR_API
#else
#define RECUR_API __attribute__((visibility("default")))
#endif

typedef enum recur_status {
    RECUR_OK = 0,
    RECUR_E_INVALID = -1,     /* a bad argument or configuration value */
    RECUR_E_NOMEM = -2,       /* allocation failed or a size overflowed */
    RECUR_E_IO = -3,          /* open/read/write/rename failed */
    RECUR_E_FORMAT = -4,      /* a file or text is malformed */
    RECUR_E_SHAPE = -5,       /* tensor shapes do not agree */
    RECUR_E_UNSUPPORTED = -6, /* valid request this build or object cannot do */
    RECUR_E_NUMERIC = -7,     /* NaN or Inf met where a finite value is needed */
    RECUR_E_NOT_FOUND = -8,   /* a named tensor, key or file is absent */
    RECUR_E_STATE = -9        /* call order violated (e.g. backward before forward) */
} recur_status;

/* A short constant description of a status code. Never NULL. */
RECUR_API const char *recur_strerror(int status);

/* The detailed message of the last failure in the calling thread (thread-local
 * storage; valid until the next recur call in this thread). "" if none. */
RECUR_API const char *recur_last_error(void);
RECUR_API void recur_clear_error(void);
/* Sets the calling thread's message (printf format; the arguments may
 * include recur_last_error() itself, e.g. to add context) and returns
 * status: code built on recur reports its own failures the same way. */
RECUR_API int recur_set_error(int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

RECUR_API const char *recur_version(void);

/* Allocation hook. All memory the library allocates goes through it. The
 * functions receive `user`. Set it before creating any object; objects must
 * be freed under the allocator that created them. NULL restores libc. */
typedef struct recur_allocator {
    void *(*malloc_fn)(size_t size, void *user);
    void (*free_fn)(void *ptr, void *user);
    void *user;
} recur_allocator;
RECUR_API void recur_set_allocator(const recur_allocator *allocator);
/* Frees a buffer that a recur function returned to the caller (through the
 * allocator that made it). NULL is a no-op. */
RECUR_API void recur_free(void *ptr);

/* Threads used by the matrix products and recur's own parallel loops
 * (one OpenMP pool shared by both, so they never spin against each other).
 * n <= 0 means all cores. */
RECUR_API void recur_set_threads(int n);
RECUR_API int recur_get_threads(void);

typedef enum recur_precision {
    RECUR_PRECISION_F32 = 0, /* float inputs and arithmetic */
    RECUR_PRECISION_BF16 = 1 /* the inputs of matrix products rounded to bfloat16 (8 bits
                                of mantissa), the products accumulated in float */
} recur_precision;

/* The precision of recur's large matrix products, process-wide like
 * recur_set_threads (the default RECUR_PRECISION_F32). With
 * RECUR_PRECISION_BF16 every product of at least 64 rows, 64 columns and an
 * inner size of 64 (the layers' products over a whole batch or sequence, the
 * output layers, the weight gradients; not the small per-step products of a
 * recurrence at small batches) rounds its two inputs to bfloat16 and
 * accumulates in float, with oneDNN's bf16 matrix multiplication: mixed-
 * precision training, the weights, gradients and optimizer state staying
 * float. Training measured 1.2-1.3 times as fast; see docs/PERFORMANCE.md.
 * Needs the oneDNN backend and a CPU with AVX512-BF16: elsewhere
 * RECUR_E_UNSUPPORTED, and the products stay float. RECUR_PRECISION_F32
 * always succeeds. */
RECUR_API int recur_set_matmul_precision(recur_precision precision);
RECUR_API recur_precision recur_get_matmul_precision(void);

/* Name of the matrix-product backend compiled in: "onednn", "openblas" or
 * "reference". */
RECUR_API const char *recur_blas_backend(void);

/* Random numbers with explicit state (xoshiro256**, seeded by splitmix64).
 * The struct is public so that it can be copied and saved in checkpoints. */
typedef struct recur_rng {
    uint64_t s[4];
} recur_rng;

RECUR_API void recur_rng_seed(recur_rng *rng, uint64_t seed);
RECUR_API uint64_t recur_rng_next(recur_rng *rng);
/* Uniform in [0, 1) with 24 random bits. */
RECUR_API float recur_rng_uniform(recur_rng *rng);
/* Uniform in [0, 1) with 53 random bits. */
RECUR_API double recur_rng_uniform_double(recur_rng *rng);
/* Standard normal (Box-Muller; uses two uniforms per call). */
RECUR_API double recur_rng_normal(recur_rng *rng);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
RECUR_API uint64_t recur_rng_below(recur_rng *rng, uint64_t n);

#ifdef __cplusplus
}
#endif
#endif
