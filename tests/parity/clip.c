/* clip.c - parity for `kind: clip` fixtures: gradients g0 and g1 clipped
 * together by torch.nn.utils.clip_grad_norm_(max_norm) with the 2-norm.
 * recur keeps all gradients in one flat array, so the two tensors are
 * concatenated, clipped in one call and split again for comparison with
 * clipped0, clipped1 and total_norm. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parity.h"

int parity_clip(const recur_st *st, parity_result *r)
{
    const char *max_text = recur_st_metadata(st, "max_norm");
    const char *norm_type = recur_st_metadata(st, "norm_type");
    if (norm_type && strcmp(norm_type, "2") != 0 && strcmp(norm_type, "2.0") != 0) {
        snprintf(r->message, sizeof r->message, "norm_type %s not supported (2 only)", norm_type);
        return PARITY_SKIP;
    }
    char *end = NULL;
    double max_norm = max_text ? strtod(max_text, &end) : 0.0;
    if (!max_text || end == max_text || *end != '\0') {
        snprintf(r->message, sizeof r->message, "metadata 'max_norm' missing or not a number");
        return PARITY_ERROR;
    }

    size_t n0 = 0, n1 = 0, nc0 = 0, nc1 = 0, nt = 0;
    float *g0 = parity_read_f32(st, "g0", &n0);
    float *g1 = parity_read_f32(st, "g1", &n1);
    double *want0 = parity_read(st, "clipped0", &nc0);
    double *want1 = parity_read(st, "clipped1", &nc1);
    double *want_total = parity_read(st, "total_norm", &nt);
    float *grads = NULL;
    int outcome = PARITY_PASS;
    if (!g0 || !g1 || !want0 || !want1 || !want_total || nc0 != n0 || nc1 != n1 || nt != 1) {
        snprintf(r->message, sizeof r->message,
                 "tensors g0, g1, clipped0, clipped1, total_norm[1] missing or mismatched");
        outcome = PARITY_ERROR;
        goto done;
    }
    grads = malloc((n0 + n1 ? n0 + n1 : 1) * sizeof *grads); /* [g0 | g1] */
    if (!grads) {
        snprintf(r->message, sizeof r->message, "out of memory");
        outcome = PARITY_ERROR;
        goto done;
    }
    memcpy(grads, g0, n0 * sizeof *grads);
    memcpy(grads + n0, g1, n1 * sizeof *grads);
    double total = 0.0;
    if (recur_clip_grad_norm(grads, n0 + n1, max_norm, &total) != RECUR_OK) {
        snprintf(r->message, sizeof r->message, "recur_clip_grad_norm: %s", recur_last_error());
        outcome = PARITY_ERROR;
        goto done;
    }
    float total_f = (float)total;
    parity_compare(r, "clipped0", grads, want0, n0);
    parity_compare(r, "clipped1", grads + n0, want1, n1);
    parity_compare(r, "total_norm", &total_f, want_total, 1);
    outcome = r->failed ? PARITY_FAIL : PARITY_PASS;
done:
    free(grads);
    free(g0);
    free(g1);
    free(want0);
    free(want1);
    free(want_total);
    return outcome;
}
