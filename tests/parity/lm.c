/* lm.c - parity for `kind: lm` fixtures: a character language model
 * (embedding, stack, head), mean cross-entropy of tokens[1:] given
 * tokens[:-1] from a zero state, and the gradient of every parameter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parity.h"

int parity_lm(const recur_st *st, parity_result *r)
{
    recur_lm_config cfg = recur_lm_config_default();
    const char *cell = recur_st_metadata(st, "cell");
    if (!cell || recur_cell_parse(cell, &cfg.cell) != RECUR_OK) {
        snprintf(r->message, sizeof r->message, "unknown cell '%s'", cell ? cell : "(none)");
        return PARITY_SKIP;
    }
    cfg.vocab_size = (int)parity_meta_long(st, "vocab_size", 0);
    cfg.embedding_size = (int)parity_meta_long(st, "embedding_size", 0);
    cfg.hidden_size = (int)parity_meta_long(st, "hidden_size", 0);
    cfg.num_layers = (int)parity_meta_long(st, "num_layers", 1);
    /* sizes from the metadata, or from tokens [T+1, B] when a key is absent */
    const recur_st_tensor *tt = recur_st_find(st, "tokens");
    const int T =
        (int)parity_meta_long(st, "seq_len", tt && tt->ndim == 2 ? (long)tt->shape[0] - 1 : 0);
    const int B = (int)parity_meta_long(st, "batch", tt && tt->ndim == 2 ? (long)tt->shape[1] : 0);
    r->tol = 1e-4; /* the language-model loss sums over many terms */
    recur_lm *lm = NULL;
    if (recur_lm_create(&cfg, &lm) != RECUR_OK) {
        snprintf(r->message, sizeof r->message, "config: %s", recur_last_error());
        return PARITY_ERROR;
    }
    int outcome = PARITY_PASS;
    double *tok = NULL, *want = NULL;
    int32_t *tokens = NULL;
    for (int i = 0; i < recur_lm_tensor_count(lm); i++) {
        const recur_param_view *v = recur_lm_tensor_at(lm, i);
        if (recur_st_read_f32_shape(st, v->name, v->ndim, v->shape,
                                    recur_lm_params(lm) + v->offset)) {
            snprintf(r->message, sizeof r->message, "%s: %s", v->name, recur_last_error());
            outcome = PARITY_ERROR;
            goto done;
        }
    }
    size_t n = 0;
    tok = parity_read(st, "tokens", &n);
    if (!tok || n != (size_t)(T + 1) * B) {
        snprintf(r->message, sizeof r->message, "tokens missing or of the wrong size");
        outcome = PARITY_ERROR;
        goto done;
    }
    tokens = malloc(n * sizeof *tokens);
    for (size_t i = 0; i < n; i++)
        tokens[i] = (int32_t)tok[i];
    double loss = 0.0;
    recur_lm_zero_grad(lm);
    if (recur_lm_train_step(lm, tokens, T, B, NULL, NULL, NULL, &loss) != RECUR_OK) {
        snprintf(r->message, sizeof r->message, "train step: %s", recur_last_error());
        outcome = PARITY_ERROR;
        goto done;
    }
    want = parity_read(st, "loss", &n);
    if (!want || n != 1) {
        snprintf(r->message, sizeof r->message, "loss missing");
        outcome = PARITY_ERROR;
        goto done;
    }
    float got = (float)loss;
    parity_compare(r, "loss", &got, want, 1);
    free(want);
    want = NULL;
    for (int i = 0; i < recur_lm_tensor_count(lm); i++) {
        const recur_param_view *v = recur_lm_tensor_at(lm, i);
        char name[80];
        snprintf(name, sizeof name, "grad.%s", v->name);
        want = parity_read(st, name, &n);
        if (!want || n != v->numel) {
            snprintf(r->message, sizeof r->message, "%s missing or of the wrong size", name);
            outcome = PARITY_ERROR;
            goto done;
        }
        parity_compare(r, name, recur_lm_grads(lm) + v->offset, want, n);
        free(want);
        want = NULL;
    }
    outcome = r->failed ? PARITY_FAIL : PARITY_PASS;
done:
    recur_lm_free(lm);
    free(tok), free(want), free(tokens);
    return outcome;
}
