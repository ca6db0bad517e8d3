/* parity.h - shared pieces of test_parity: one runner per fixture kind,
 * each comparing recur (float32) against PyTorch's float64 reference. */
#ifndef RECUR_PARITY_H
#define RECUR_PARITY_H

#include <stdbool.h>
#include <stddef.h>

#include "recur.h"

#define PARITY_PASS 0
#define PARITY_FAIL 1
#define PARITY_SKIP 2
#define PARITY_ERROR 3

typedef struct parity_result {
    double worst;       /* largest error found, relative to each tensor's max |value| */
    char worst_name[64];/* the tensor it was found in */
    double tol;         /* the tolerance the case is held to */
    int failed;         /* number of tensors over tolerance */
    char message[256];  /* for SKIP/ERROR: why */
} parity_result;

/* Compares got (float) with want (double, n values): the error is
 * max|got - want| / max(max|want|, 1e-30). Records the worst in r, prints a
 * line and counts a failure when it exceeds r->tol. */
void parity_compare(parity_result *r, const char *name, const float *got, const double *want,
                    size_t n);

/* Reads a float64 tensor of the fixture as doubles into a new malloc'd
 * buffer (n elements written to *n if non-NULL); NULL when absent. */
double *parity_read(const recur_st *st, const char *name, size_t *n);
/* Same, converted to float. */
float *parity_read_f32(const recur_st *st, const char *name, size_t *n);
/* Integer metadata value, or fallback when absent. */
long parity_meta_long(const recur_st *st, const char *key, long fallback);

int parity_layer(const recur_st *st, parity_result *r);
int parity_lm(const recur_st *st, parity_result *r);
int parity_optim(const recur_st *st, parity_result *r);
int parity_clip(const recur_st *st, parity_result *r);
int parity_ctc(const recur_st *st, parity_result *r);

#endif
