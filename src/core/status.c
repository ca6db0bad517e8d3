/* status.c - status strings, the thread-local error message, the allocation
 * hook and the version. The message buffer is per thread so that concurrent
 * callers never read each other's errors. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static _Thread_local char last_error[1024];

const char *recur_strerror(int status)
{
    switch (status) {
    case RECUR_OK: return "ok";
    case RECUR_E_INVALID: return "invalid argument";
    case RECUR_E_NOMEM: return "out of memory";
    case RECUR_E_IO: return "input/output error";
    case RECUR_E_FORMAT: return "malformed input";
    case RECUR_E_SHAPE: return "shape mismatch";
    case RECUR_E_UNSUPPORTED: return "unsupported";
    case RECUR_E_NUMERIC: return "non-finite value";
    case RECUR_E_NOT_FOUND: return "not found";
    case RECUR_E_STATE: return "invalid call order";
    default: return "unknown error";
    }
}

const char *recur_last_error(void) { return last_error; }

void recur_clear_error(void) { last_error[0] = '\0'; }

const char *recur_version(void) { return RECUR_VERSION_STRING; }

int recur__error(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

/* Formats through a copy: the arguments may include recur_last_error(). */
int recur_set_error(int status, const char *fmt, ...)
{
    char message[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    memcpy(last_error, message, sizeof message);
    return status;
}

static void *default_malloc(size_t size, void *user)
{
    (void)user;
    return malloc(size);
}
static void default_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

static recur_allocator allocator = {default_malloc, default_free, NULL};

void recur_set_allocator(const recur_allocator *a)
{
    if (a && a->malloc_fn && a->free_fn)
        allocator = *a;
    else
        allocator = (recur_allocator){default_malloc, default_free, NULL};
}

void *recur__malloc(size_t size)
{
    return allocator.malloc_fn(size ? size : 1, allocator.user);
}

void *recur__calloc(size_t n, size_t size)
{
    size_t bytes;
    if (!recur__mul_size(n, size, &bytes))
        return NULL;
    void *p = recur__malloc(bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void recur__free(void *ptr)
{
    if (ptr)
        allocator.free_fn(ptr, allocator.user);
}

void recur_free(void *ptr) { recur__free(ptr); }

char *recur__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = recur__malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}
