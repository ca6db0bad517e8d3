/* layer.c - parity for `kind: layer` fixtures: one recurrent stack, forward
 * (y, hn, cn) and backward (grad.x, grad.h0, grad.c0 and every parameter)
 * for the loss sum(y*dy) + sum(hn*dhn) + sum(cn*dcn). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parity.h"

#define FAIL_WITH(...)                                                                             \
    do {                                                                                           \
        snprintf(r->message, sizeof r->message, __VA_ARGS__);                                      \
        outcome = PARITY_ERROR;                                                                    \
        goto done;                                                                                 \
    } while (0)

int parity_layer(const recur_st *st, parity_result *r)
{
    int outcome = PARITY_PASS;
    recur_rnn *rnn = NULL;
    float *x = NULL, *h0 = NULL, *c0 = NULL, *dy = NULL, *dhn = NULL, *dcn = NULL;
    float *y = NULL, *hn = NULL, *cn = NULL, *dx = NULL, *dh0 = NULL, *dc0 = NULL;
    double *want = NULL;
    int *lengths = NULL;

    recur_rnn_config cfg = recur_rnn_config_default();
    const char *cell = recur_st_metadata(st, "cell");
    if (!cell || recur_cell_parse(cell, &cfg.cell) != RECUR_OK) {
        snprintf(r->message, sizeof r->message, "unknown cell '%s'", cell ? cell : "(none)");
        return PARITY_SKIP;
    }
    cfg.input_size = (int)parity_meta_long(st, "input_size", 0);
    cfg.hidden_size = (int)parity_meta_long(st, "hidden_size", 0);
    cfg.num_layers = (int)parity_meta_long(st, "num_layers", 1);
    const char *bi = recur_st_metadata(st, "bidirectional");
    cfg.bidirectional = bi && strcmp(bi, "true") == 0;
    /* sizes from the metadata, or from x [T, B, I] when a key is absent */
    const recur_st_tensor *xt = recur_st_find(st, "x");
    const int T =
        (int)parity_meta_long(st, "seq_len", xt && xt->ndim == 3 ? (long)xt->shape[0] : 0);
    const int B = (int)parity_meta_long(st, "batch", xt && xt->ndim == 3 ? (long)xt->shape[1] : 0);
    if (!cfg.input_size && xt && xt->ndim == 3)
        cfg.input_size = (int)xt->shape[2];
    if (!cfg.hidden_size && recur_st_find(st, "weight_hh_l0"))
        cfg.hidden_size = (int)recur_st_find(st, "weight_hh_l0")->shape[1];
    if (!bi)
        cfg.bidirectional = recur_st_find(st, "weight_ih_l0_reverse") != NULL;
    const int D = cfg.bidirectional ? 2 : 1, H = cfg.hidden_size;
    const bool lstm = cfg.cell == RECUR_CELL_LSTM;
    if (T >= 20)
        r->tol = 1e-4; /* long sequences */
    if (recur_rnn_create(&cfg, NULL, NULL, &rnn) != RECUR_OK)
        FAIL_WITH("config: %s", recur_last_error());
    for (int i = 0; i < recur_rnn_tensor_count(rnn); i++) {
        const recur_param_view *v = recur_rnn_tensor_at(rnn, i);
        if (recur_st_read_f32_shape(st, v->name, v->ndim, v->shape,
                                    recur_rnn_params(rnn) + v->offset) != RECUR_OK)
            FAIL_WITH("parameter %s: %s", v->name, recur_last_error());
    }
    size_t nx = 0, ny = (size_t)T * B * D * H, ns = (size_t)cfg.num_layers * D * B * H;
    x = parity_read_f32(st, "x", &nx);
    h0 = parity_read_f32(st, "h0", NULL);
    c0 = lstm ? parity_read_f32(st, "c0", NULL) : NULL;
    dy = parity_read_f32(st, "dy", NULL);
    dhn = parity_read_f32(st, "dhn", NULL);
    dcn = lstm ? parity_read_f32(st, "dcn", NULL) : NULL;
    if (!x || nx != (size_t)T * B * cfg.input_size)
        FAIL_WITH("x missing or of the wrong size");
    if (recur_st_find(st, "lengths")) {
        size_t nl = 0;
        double *len = parity_read(st, "lengths", &nl);
        if (!len || nl != (size_t)B)
            FAIL_WITH("lengths of the wrong size");
        lengths = malloc(B * sizeof *lengths);
        for (int b = 0; b < B; b++)
            lengths[b] = (int)len[b];
        free(len);
    }
    y = calloc(ny, sizeof *y);
    hn = calloc(ns, sizeof *hn);
    cn = calloc(ns, sizeof *cn);
    dx = calloc(nx, sizeof *dx);
    dh0 = calloc(ns, sizeof *dh0);
    dc0 = calloc(ns, sizeof *dc0);

    recur_rnn_input in = {.T = T, .B = B, .x = x, .lengths = lengths, .h0 = h0, .c0 = c0};
    recur_rnn_output out = {y, hn, lstm ? cn : NULL};
    if (recur_rnn_forward(rnn, RECUR_MODE_TRAIN, &in, &out, NULL) != RECUR_OK)
        FAIL_WITH("forward: %s", recur_last_error());
    recur_rnn_grad_in gin = {dy, dhn, dcn};
    recur_rnn_grad_out gout = {dx, dh0, lstm ? dc0 : NULL};
    if (recur_rnn_backward(rnn, &gin, &gout) != RECUR_OK)
        FAIL_WITH("backward: %s", recur_last_error());

    struct {
        const char *name;
        const float *got;
        size_t n;
    } checks[] = {
        {"y", y, ny},       {"hn", hn, ns},       {"cn", cn, ns},
        {"grad.x", dx, nx}, {"grad.h0", dh0, ns}, {"grad.c0", dc0, ns},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        if (!lstm && (strcmp(checks[i].name, "cn") == 0 || strcmp(checks[i].name, "grad.c0") == 0))
            continue;
        size_t n = 0;
        want = parity_read(st, checks[i].name, &n);
        if (!want) {
            if (strcmp(checks[i].name, "grad.h0") == 0 && !h0)
                continue;
            FAIL_WITH("reference tensor %s missing", checks[i].name);
        }
        if (n != checks[i].n)
            FAIL_WITH("reference %s has %zu values, expected %zu", checks[i].name, n, checks[i].n);
        parity_compare(r, checks[i].name, checks[i].got, want, n);
        free(want);
        want = NULL;
    }
    for (int i = 0; i < recur_rnn_tensor_count(rnn); i++) {
        const recur_param_view *v = recur_rnn_tensor_at(rnn, i);
        char name[80];
        snprintf(name, sizeof name, "grad.%s", v->name);
        size_t n = 0;
        want = parity_read(st, name, &n);
        if (!want || n != v->numel)
            FAIL_WITH("reference %s missing or of the wrong size", name);
        parity_compare(r, name, recur_rnn_grads(rnn) + v->offset, want, n);
        free(want);
        want = NULL;
    }
    outcome = r->failed ? PARITY_FAIL : PARITY_PASS;
done:
    recur_rnn_free(rnn);
    free(x), free(h0), free(c0), free(dy), free(dhn), free(dcn);
    free(y), free(hn), free(cn), free(dx), free(dh0), free(dc0);
    free(want), free(lengths);
    return outcome;
}
