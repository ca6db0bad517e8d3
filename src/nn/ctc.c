/* ctc.c - the CTC loss (Graves et al. 2006, "Connectionist Temporal
 * Classification") and its gradient with respect to raw logits.
 *
 * For one batch item with Tb frames and target l[0..Sb), the extended label
 * sequence l' has L = 2*Sb + 1 positions: blanks at even s, l[s/2] at odd s.
 * With lp[t, c] = log_softmax(logits[t])[c], everything in log space and in
 * double:
 *   alpha[0, 0] = lp[0, blank],  alpha[0, 1] = lp[0, l'_1]
 *   alpha[t, s] = lp[t, l'_s] + lse(alpha[t-1, s], alpha[t-1, s-1],
 *                                   alpha[t-1, s-2] if l'_s != blank and l'_s != l'_{s-2})
 *   beta[Tb-1, s] = 0 (log 1) for s in {L-1, L-2}, -inf elsewhere
 *   beta[t, s] = lse over s' in {s, s+1, s+2 (same rule)} of beta[t+1, s'] + lp[t+1, l'_s']
 * alpha includes frame t's emission and beta does not, so alpha*beta is the
 * probability of all paths through position s at frame t, and
 *   log p = lse(alpha[Tb-1, L-1], alpha[Tb-1, L-2]),  loss = -log p,
 *   dloss/dlogits[t, c] = softmax[t, c] - (1/p) * sum_{s: l'_s = c} alpha[t, s] beta[t, s].
 * alpha is kept for all frames [Tb, L]; beta needs only two rows, because
 * the gradient of frame t is formed as soon as beta[t] is known.
 * Not here: reductions (the caller sums or scales), the concatenated-target
 * layout, and parallelism over the batch (items run one after the other,
 * sharing one workspace). */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "recur/ctc.h"

recur_ctc_config recur_ctc_config_default(void)
{
    recur_ctc_config config;
    config.blank = 0;
    config.zero_infinity = 0;
    return config;
}

/* log(exp(a) + exp(b)) without overflow; -inf is the log of 0. */
static inline double log_add(double a, double b)
{
    if (a == -INFINITY)
        return b;
    if (b == -INFINITY)
        return a;
    return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b));
}

/* Label at position s of the extended sequence: blank at even s. */
static inline int extended_label(const int32_t *target, int blank, int s)
{
    return (s & 1) ? target[s >> 1] : blank;
}

/* Checks sizes, lengths and label ids; writes the largest input and target
 * lengths to *max_t and *max_s. Touches no output. */
static int validate(const float *logits, int T, int B, int C, const int32_t *targets, int S,
                    const int32_t *input_lengths, const int32_t *target_lengths,
                    const recur_ctc_config *config, int *max_t, int *max_s)
{
    if (T < 0 || B < 0 || C < 1 || S < 0)
        return recur__error(RECUR_E_INVALID,
                            "ctc_loss: sizes T = %d, B = %d, C = %d, S = %d (need T, B, S >= 0 "
                            "and C >= 1)",
                            T, B, C, S);
    if (config->blank < 0 || config->blank >= C)
        return recur__error(RECUR_E_INVALID, "ctc_loss: blank id %d is outside [0, %d)",
                            config->blank, C);
    if (B > 0 && (!input_lengths || !target_lengths))
        return recur__error(RECUR_E_INVALID, "ctc_loss: %s is NULL",
                            !input_lengths ? "input_lengths" : "target_lengths");
    if (B > 0 && T > 0 && !logits)
        return recur__error(RECUR_E_INVALID, "ctc_loss: logits is NULL");
    if (B > 0 && S > 0 && !targets)
        return recur__error(RECUR_E_INVALID, "ctc_loss: targets is NULL with S = %d", S);
    size_t numel;
    if (!recur__mul_size((size_t)T, (size_t)B, &numel) ||
        !recur__mul_size(numel, (size_t)C, &numel))
        return recur__error(RECUR_E_NOMEM, "ctc_loss: T*B*C = %d*%d*%d overflows", T, B, C);
    *max_t = 0;
    *max_s = 0;
    for (int b = 0; b < B; b++) {
        int32_t tb = input_lengths[b], sb = target_lengths[b];
        if (tb < 0 || tb > T)
            return recur__error(RECUR_E_INVALID,
                                "ctc_loss: batch item %d: input_lengths[%d] = %d is outside "
                                "[0, T = %d]",
                                b, b, (int)tb, T);
        if (sb < 0 || sb > S)
            return recur__error(RECUR_E_INVALID,
                                "ctc_loss: batch item %d: target_lengths[%d] = %d is outside "
                                "[0, S = %d]",
                                b, b, (int)sb, S);
        if (sb > tb)
            return recur__error(RECUR_E_INVALID,
                                "ctc_loss: batch item %d: target_lengths[%d] = %d exceeds "
                                "input_lengths[%d] = %d",
                                b, b, (int)sb, b, (int)tb);
        const int32_t *target = targets ? targets + (size_t)b * (size_t)S : NULL;
        for (int s = 0; s < sb; s++) {
            if (target[s] < 0 || target[s] >= C)
                return recur__error(RECUR_E_INVALID,
                                    "ctc_loss: batch item %d: targets[%d][%d] = %d is outside "
                                    "[0, C = %d)",
                                    b, b, s, (int)target[s], C);
            if (target[s] == config->blank)
                return recur__error(RECUR_E_INVALID,
                                    "ctc_loss: batch item %d: targets[%d][%d] = %d is the blank "
                                    "id",
                                    b, b, s, (int)target[s]);
        }
        if (tb > *max_t)
            *max_t = tb;
        if (sb > *max_s)
            *max_s = sb;
    }
    return RECUR_OK;
}

/* lp[t, :] = log_softmax(logits[t, b, :]) for t < tb, in double. */
static int log_softmax_item(const float *logits, int B, int C, int b, int tb, double *lp)
{
    for (int t = 0; t < tb; t++) {
        const float *row = logits + ((size_t)t * (size_t)B + (size_t)b) * (size_t)C; /* [C] */
        double *out = lp + (size_t)t * (size_t)C;
        double max = -INFINITY;
        for (int c = 0; c < C; c++) {
            if (!isfinite(row[c]))
                return recur__error(RECUR_E_NUMERIC,
                                    "ctc_loss: batch item %d: logits[%d][%d][%d] = %g is not "
                                    "finite",
                                    b, t, b, c, (double)row[c]);
            if (row[c] > max)
                max = row[c];
        }
        double sum = 0.0;
        for (int c = 0; c < C; c++)
            sum += exp((double)row[c] - max);
        double lse = max + log(sum);
        for (int c = 0; c < C; c++)
            out[c] = (double)row[c] - lse;
    }
    return RECUR_OK;
}

/* alpha [tb, L] for one item; returns log p. */
static double forward_item(const double *lp, int C, const int32_t *target, int blank, int tb, int L,
                           double *alpha)
{
    for (int s = 0; s < L; s++)
        alpha[s] = -INFINITY;
    alpha[0] = lp[blank];
    if (L > 1)
        alpha[1] = lp[target[0]];
    for (int t = 1; t < tb; t++) {
        const double *prev = alpha + (size_t)(t - 1) * (size_t)L; /* [L] */
        double *cur = alpha + (size_t)t * (size_t)L;              /* [L] */
        const double *lpt = lp + (size_t)t * (size_t)C;           /* [C] */
        for (int s = 0; s < L; s++) {
            int label = extended_label(target, blank, s);
            double a = prev[s];
            if (s >= 1)
                a = log_add(a, prev[s - 1]);
            if (s >= 2 && label != blank && label != extended_label(target, blank, s - 2))
                a = log_add(a, prev[s - 2]);
            cur[s] = a == -INFINITY ? -INFINITY : a + lpt[label];
        }
    }
    const double *last = alpha + (size_t)(tb - 1) * (size_t)L;
    return L > 1 ? log_add(last[L - 1], last[L - 2]) : last[L - 1];
}

/* Runs beta backwards and writes the gradient of -log p for frames < tb of
 * item b: dlogits[t, b, c] = exp(lp[t, c]) - exp(lse_{s: l'_s = c}(alpha + beta) + nll).
 * beta: two rows of [L]; class_sum: [C]. */
static void backward_item(const double *lp, int B, int C, const int32_t *target, int blank, int tb,
                          int L, const double *alpha, double nll, int b, double *beta,
                          double *class_sum, float *dlogits)
{
    double *cur = beta, *next = beta + L; /* beta[t], beta[t+1] */
    for (int t = tb - 1; t >= 0; t--) {
        if (t == tb - 1) {
            for (int s = 0; s < L; s++)
                cur[s] = (s == L - 1 || s == L - 2) ? 0.0 : -INFINITY;
        } else {
            const double *lpn = lp + (size_t)(t + 1) * (size_t)C; /* [C] */
            for (int s = 0; s < L; s++) {
                int label = extended_label(target, blank, s);
                double v = next[s] + lpn[label];
                if (s + 1 < L)
                    v = log_add(v, next[s + 1] + lpn[extended_label(target, blank, s + 1)]);
                if (s + 2 < L) {
                    int label2 = extended_label(target, blank, s + 2);
                    if (label2 != blank && label2 != label)
                        v = log_add(v, next[s + 2] + lpn[label2]);
                }
                cur[s] = v;
            }
        }
        for (int c = 0; c < C; c++)
            class_sum[c] = -INFINITY;
        const double *at = alpha + (size_t)t * (size_t)L; /* [L] */
        for (int s = 0; s < L; s++) {
            int label = extended_label(target, blank, s);
            class_sum[label] = log_add(class_sum[label], at[s] + cur[s]);
        }
        const double *lpt = lp + (size_t)t * (size_t)C;
        float *g = dlogits + ((size_t)t * (size_t)B + (size_t)b) * (size_t)C; /* [C] */
        for (int c = 0; c < C; c++)
            g[c] = (float)(exp(lpt[c]) - exp(class_sum[c] + nll));
        double *swap = cur;
        cur = next;
        next = swap;
    }
}

int recur_ctc_loss(const float *logits, int T, int B, int C, const int32_t *targets, int S,
                   const int32_t *input_lengths, const int32_t *target_lengths,
                   const recur_ctc_config *config, double *losses, float *dlogits)
{
    recur_ctc_config defaults = recur_ctc_config_default();
    if (!config)
        config = &defaults;
    int max_t = 0, max_s = 0;
    int status = validate(logits, T, B, C, targets, S, input_lengths, target_lengths, config,
                          &max_t, &max_s);
    if (status != RECUR_OK)
        return status;
    if (dlogits && B > 0 && T > 0)
        memset(dlogits, 0, (size_t)T * (size_t)B * (size_t)C * sizeof *dlogits);
    if (B == 0)
        return RECUR_OK;

    /* Workspace, sized for the longest item: lp [max_t, C], alpha [max_t, L],
     * beta [2, L], class_sum [C], with L = 2 * max_s + 1. */
    size_t L = 2 * (size_t)max_s + 1;
    size_t n_lp, n_alpha, n_total, bytes;
    if (!recur__mul_size((size_t)max_t, (size_t)C, &n_lp) ||
        !recur__mul_size((size_t)max_t, L, &n_alpha) || !recur__add_size(n_lp, n_alpha, &n_total) ||
        !recur__add_size(n_total, 2 * L + (size_t)C, &n_total) ||
        !recur__mul_size(n_total, sizeof(double), &bytes))
        return recur__error(RECUR_E_NOMEM, "ctc_loss: workspace size overflows (T = %d, S = %d)",
                            max_t, max_s);
    double *work = recur__malloc(bytes);
    if (!work)
        return recur__error(RECUR_E_NOMEM, "ctc_loss: cannot allocate %zu bytes of workspace",
                            bytes);
    double *lp = work;                /* [max_t, C] */
    double *alpha = lp + n_lp;        /* [max_t, L] */
    double *beta = alpha + n_alpha;   /* [2, L] */
    double *class_sum = beta + 2 * L; /* [C] */

    for (int b = 0; b < B; b++) {
        int tb = input_lengths[b], sb = target_lengths[b];
        int Lb = 2 * sb + 1;
        const int32_t *target = sb > 0 ? targets + (size_t)b * (size_t)S : NULL;
        if (tb == 0) { /* then sb == 0: the empty path, p = 1 */
            if (losses)
                losses[b] = 0.0;
            continue;
        }
        status = log_softmax_item(logits, B, C, b, tb, lp);
        if (status != RECUR_OK)
            break;
        double nll = -forward_item(lp, C, target, config->blank, tb, Lb, alpha);
        if (isinf(nll)) { /* no alignment: the gradient stays zero */
            if (losses)
                losses[b] = config->zero_infinity ? 0.0 : INFINITY;
            continue;
        }
        if (losses)
            losses[b] = nll;
        if (dlogits)
            backward_item(lp, B, C, target, config->blank, tb, Lb, alpha, nll, b, beta, class_sum,
                          dlogits);
    }
    recur__free(work);
    return status;
}
