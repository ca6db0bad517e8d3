/* failing_alloc.h - an allocator for recur_set_allocator whose allocations
 * fail once alloc_budget of them have been made, for tests that run a call
 * with the k-th allocation failing, for every k until it succeeds. */
#ifndef RECUR_TEST_FAILING_ALLOC_H
#define RECUR_TEST_FAILING_ALLOC_H

#include <stdlib.h>

#include "recur/core.h"

static long alloc_budget; /* allocations left before the next one fails */

static void *failing_malloc(size_t size, void *user)
{
    (void)user;
    return alloc_budget-- > 0 ? malloc(size) : NULL;
}

static void plain_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

static const recur_allocator failing_allocator = {failing_malloc, plain_free, NULL};

#endif
