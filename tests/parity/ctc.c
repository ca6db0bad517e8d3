/* ctc.c - parity for `kind: ctc` fixtures: recur_ctc_loss on the fixture's
 * logits converted to float32, compared with PyTorch's float64
 * ctc_loss(reduction="sum"): the summed loss and grad.logits. */
#include <stdio.h>
#include <stdlib.h>

#include "parity.h"
#include "recur/ctc.h"

int parity_ctc(const recur_st *st, parity_result *r)
{
    const recur_st_tensor *tl = recur_st_find(st, "logits");
    const recur_st_tensor *tt = recur_st_find(st, "targets");
    if (!tl || !tt || tl->ndim != 3 || tt->ndim != 2) {
        snprintf(r->message, sizeof r->message, "needs logits [T, B, C] and targets [B, S]");
        return PARITY_ERROR;
    }
    int T = (int)tl->shape[0], B = (int)tl->shape[1], C = (int)tl->shape[2];
    int S = (int)tt->shape[1];
    size_t n_logits = 0, n_targets = 0, n_in = 0, n_tl = 0, n_loss = 0, n_grad = 0;
    float *logits = parity_read_f32(st, "logits", &n_logits);
    double *targets_f = parity_read(st, "targets", &n_targets);
    double *input_f = parity_read(st, "input_lengths", &n_in);
    double *target_len_f = parity_read(st, "target_lengths", &n_tl);
    double *loss_want = parity_read(st, "loss", &n_loss);
    double *grad_want = parity_read(st, "grad.logits", &n_grad);
    int32_t *targets = malloc((n_targets ? n_targets : 1) * sizeof *targets);
    int32_t *lengths = malloc(2 * (size_t)(B > 0 ? B : 1) * sizeof *lengths);
    double *losses = malloc((size_t)(B > 0 ? B : 1) * sizeof *losses);
    float *grad = malloc((n_logits ? n_logits : 1) * sizeof *grad);
    int outcome = PARITY_ERROR;

    if (!logits || !targets_f || !input_f || !target_len_f || !loss_want || !grad_want ||
        !targets || !lengths || !losses || !grad) {
        snprintf(r->message, sizeof r->message,
                 "missing tensor (logits, targets, input_lengths, target_lengths, loss, "
                 "grad.logits) or out of memory");
        goto done;
    }
    if (tt->shape[0] != B || n_in != (size_t)B || n_tl != (size_t)B || n_loss != 1 ||
        n_grad != n_logits) {
        snprintf(r->message, sizeof r->message, "tensor shapes disagree with logits [%d, %d, %d]",
                 T, B, C);
        goto done;
    }
    for (size_t i = 0; i < n_targets; i++)
        targets[i] = (int32_t)targets_f[i];
    for (int b = 0; b < B; b++) {
        lengths[b] = (int32_t)input_f[b];
        lengths[B + b] = (int32_t)target_len_f[b];
    }
    recur_ctc_config config = recur_ctc_config_default();
    config.blank = (int)parity_meta_long(st, "blank", 0);
    int status =
        recur_ctc_loss(logits, T, B, C, targets, S, lengths, lengths + B, &config, losses, grad);
    if (status != RECUR_OK) {
        snprintf(r->message, sizeof r->message, "recur_ctc_loss: %s", recur_last_error());
        goto done;
    }
    double sum = 0.0;
    for (int b = 0; b < B; b++)
        sum += losses[b];
    float loss_got = (float)sum;
    parity_compare(r, "loss", &loss_got, loss_want, 1);
    parity_compare(r, "grad.logits", grad, grad_want, n_logits);
    outcome = r->failed ? PARITY_FAIL : PARITY_PASS;

done:
    free(logits);
    free(targets_f);
    free(input_f);
    free(target_len_f);
    free(loss_want);
    free(grad_want);
    free(targets);
    free(lengths);
    free(losses);
    free(grad);
    return outcome;
}
