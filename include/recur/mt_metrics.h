/* recur/mt_metrics.h - translation quality, exactly as sacreBLEU 2.x
 * computes it with its defaults: corpus BLEU (Papineni et al. 2002; BLEU():
 * n-grams up to 4, brevity penalty, the "13a" tokenization of
 * mteval-v13a.pl, cased, one reference per sentence, smooth_method "exp")
 * and corpus chrF (Popovic 2015; CHRF(): character n-grams up to 6, word
 * n-grams 0, beta 2, whitespace removed). Scores are in 0..100. Lines are
 * UTF-8; a byte outside well-formed UTF-8 counts as a character of its own.
 * docs/translate-tokens.md gives the formulas. */
#ifndef RECUR_MT_METRICS_H
#define RECUR_MT_METRICS_H

#include "recur/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct recur_bleu {
    double score;         /* bp * exp(mean of log precision[0..3]), in 0..100 */
    double precision[4];  /* 100 * matches[n] / totals[n], smoothed when a match
                             count is 0 (see recur_bleu_corpus); 0 when all are */
    double bp;            /* brevity penalty: 1 when hyp_len >= ref_len, else
                             exp(1 - ref_len / hyp_len), 0 when hyp_len is 0 */
    size_t hyp_len, ref_len;           /* tokens after 13a tokenization */
    size_t matches[4], totals[4];      /* clipped n-gram matches and counts (n = 1..4) */
} recur_bleu;

/* The 13a tokenization of one line (sacreBLEU's Tokenizer13a()(text)):
 * *out (new, NUL-terminated, free with recur_free) holds the tokens
 * separated by single spaces, with no space at either end. */
RECUR_API int recur_tokenize_13a(const char *text, char **out);

/* Corpus BLEU of hyps[i] against refs[i], i < n (UTF-8 lines, each
 * rstrip()ed of whitespace, then 13a-tokenized): clipped n-gram matches and
 * n-gram counts are summed over all sentences, and so are the lengths for
 * the brevity penalty. As sacreBLEU's default "exp" smoothing does, an
 * order whose match count is 0 gets precision 100 / (2^k * totals[n])
 * instead of 0, k counting such orders from 1; the score is 0 when no
 * n-gram of any order matches, or when totals[n] is 0 for some n (all
 * hypotheses shorter than n tokens). An empty reference line counts, with
 * length 0 (as in sacreBLEU 2.0; its most recent versions refuse one).
 * RECUR_E_INVALID for n == 0 or a NULL line. */
RECUR_API int recur_bleu_corpus(const char *const *hyps, const char *const *refs, size_t n,
                                recur_bleu *out);
/* Corpus chrF as sacreBLEU 2.x computes it (CHRF(), char order 6, word
 * order 0, beta 2, eps_smoothing off): the character n-gram statistics
 * [hypothesis n-grams (counted only for sentences whose reference has
 * n-grams of that order), reference n-grams, clipped matches] of all
 * sentences summed per order; precision and recall averaged over the orders
 * where both counts are non-zero; score 100 * 5 P R / (4 P + R).
 * RECUR_E_INVALID for n == 0 or a NULL line. */
RECUR_API int recur_chrf_corpus(const char *const *hyps, const char *const *refs, size_t n,
                                double *score);

/* Sentence BLEU as sacreBLEU's sentence_bleu() computes it: recur_bleu_corpus
 * of the one pair, except that the mean of the log precisions runs over the
 * orders up to the last the hypothesis has n-grams of (effective order), so
 * a sentence of fewer than four tokens can score above 0. In 0..100. */
RECUR_API int recur_sentence_bleu(const char *hyp, const char *ref, double *score);

/* The utility minimum Bayes risk decoding maximises. */
typedef enum recur_mbr_utility {
    RECUR_MBR_BLEU = 0, /* recur_sentence_bleu */
    RECUR_MBR_CHRF = 1  /* recur_chrf_corpus of the one pair */
} recur_mbr_utility;

/* "bleu" or "chrf" -> *out; RECUR_E_INVALID names anything else. */
RECUR_API int recur_mbr_utility_parse(const char *name, recur_mbr_utility *out);

/* Minimum Bayes risk selection (Kumar and Byrne 2004): of the n candidate
 * translations cands[i], with model log-probabilities log_prob[i], *best is
 * the index i that maximises the expected utility
 *     sum_j w_j u(cands[i], cands[j]),  w = softmax(log_prob / temperature),
 * u(h, r) the utility of h against the reference r (u = 100 when the two
 * are the same text). The candidates stand in for the model's distribution:
 * a translation that agrees with the other likely ones wins over a likely
 * outlier. Ties go to the lower index (an n-best list: the better ranked).
 * temperature > 1 flattens the weights. *expected (may be NULL) receives
 * the winner's expected utility. RECUR_E_INVALID for n == 0, a NULL
 * candidate, a NaN or +inf log-probability, all log-probabilities -inf, or
 * a temperature that is not positive and finite. */
RECUR_API int recur_mbr_select(const char *const *cands, const double *log_prob, size_t n,
                               double temperature, recur_mbr_utility utility, size_t *best,
                               double *expected);

#ifdef __cplusplus
}
#endif
#endif
