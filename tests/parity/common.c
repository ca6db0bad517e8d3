/* common.c - comparison and fixture-reading helpers for test_parity. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parity.h"

void parity_compare(parity_result *r, const char *name, const float *got, const double *want,
                    size_t n)
{
    double scale = 0.0, err = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(want[i]) > scale)
            scale = fabs(want[i]);
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= err)) { /* also catches NaN */
            err = isnan(e) ? INFINITY : e;
            at = i;
        }
    }
    double rel = err / (scale > 1e-30 ? scale : 1e-30);
    if (scale <= 1e-30)
        rel = err; /* an all-zero reference: compare absolutely */
    if (rel > r->worst || r->worst_name[0] == '\0') {
        if (rel >= r->worst) {
            r->worst = rel;
            snprintf(r->worst_name, sizeof r->worst_name, "%s", name);
        }
    }
    if (!(rel <= r->tol)) {
        r->failed++;
        fprintf(stderr, "    %s: error %.3g > tol %.1g at [%zu]: got %.9g want %.9g (max |want| %.3g)\n",
                name, rel, r->tol, at, n ? (double)got[at] : 0.0, n ? want[at] : 0.0, scale);
    }
}

double *parity_read(const recur_st *st, const char *name, size_t *n)
{
    const recur_st_tensor *t = recur_st_find(st, name);
    if (!t)
        return NULL;
    double *out = malloc((t->numel ? t->numel : 1) * sizeof *out);
    if (!out || recur_st_read_f64(st, name, out, t->numel) != RECUR_OK) {
        free(out);
        return NULL;
    }
    if (n)
        *n = t->numel;
    return out;
}

float *parity_read_f32(const recur_st *st, const char *name, size_t *n)
{
    const recur_st_tensor *t = recur_st_find(st, name);
    if (!t)
        return NULL;
    float *out = malloc((t->numel ? t->numel : 1) * sizeof *out);
    if (!out || recur_st_read_f32(st, name, out, t->numel) != RECUR_OK) {
        free(out);
        return NULL;
    }
    if (n)
        *n = t->numel;
    return out;
}

long parity_meta_long(const recur_st *st, const char *key, long fallback)
{
    const char *v = recur_st_metadata(st, key);
    if (!v)
        return fallback;
    char *end;
    long x = strtol(v, &end, 10);
    return end == v ? fallback : x;
}
