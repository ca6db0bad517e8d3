/* recur/ctc.h - connectionist temporal classification: the CTC loss and its
 * gradient, greedy and prefix-beam-search decoding, edit distance and error
 * rates. The math is in docs/ctc.md.
 *
 * Conventions:
 *   - scores are time-major like the recurrent stacks: logits [T, B, C] for
 *     the loss, and one sequence's frames [T, C] (with a frame stride, so a
 *     column of a [T, B, C] batch can be decoded in place) for the decoders;
 *   - C classes include the blank; label ids are 0..C-1 and the blank is one
 *     of them (0 by default, as in PyTorch);
 *   - targets are padded, not concatenated: int32 [B, S], row b holding its
 *     target_lengths[b] labels first; the padding is never read.
 * Nothing here keeps a pointer to its arguments after it returns. */
#ifndef RECUR_CTC_H
#define RECUR_CTC_H

#include <stddef.h>
#include <stdint.h>

#include "recur/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Loss ------------------------------------------------------------ */

typedef struct recur_ctc_config {
    int blank;         /* id of the blank class, in [0, C) */
    int zero_infinity; /* non-zero: an impossible alignment gives loss 0
                          instead of +inf (PyTorch's zero_infinity) */
} recur_ctc_config;

/* blank = 0, zero_infinity = 0. */
RECUR_API recur_ctc_config recur_ctc_config_default(void);

/* CTC negative log-likelihood (Graves et al. 2006) of each target sequence
 * under the per-frame softmax of raw logits, and its gradient.
 *
 *   logits          [T, B, C] raw scores (log_softmax is applied inside);
 *                   frames t >= input_lengths[b] of item b are not read
 *   targets         [B, S] int32 label ids, row b padded past
 *                   target_lengths[b]; may be NULL when S == 0
 *   input_lengths   [B] frames of each item, 0 <= input_lengths[b] <= T
 *   target_lengths  [B] labels of each item, 0 <= target_lengths[b] <= S and
 *                   target_lengths[b] <= input_lengths[b]
 *   config          NULL for recur_ctc_config_default()
 *   losses          [B] out, may be NULL: -log p(targets[b] | logits[:, b]),
 *                   computed in double. An alignment that cannot exist
 *                   (e.g. repeated labels need a blank between them, so
 *                   "a a" needs 3 frames) gives +inf, or 0 with zero_infinity.
 *   dlogits         [T, B, C] out, may be NULL: the gradient of the SUM of the
 *                   losses over the batch with respect to logits (divide by B
 *                   yourself for a mean). It is written, not accumulated;
 *                   zero at frames past each input length and for every
 *                   item whose loss is infinite (with or without
 *                   zero_infinity: the gradient of +inf is undefined and the
 *                   loss already reports it).
 *
 * Validation happens before anything is written: RECUR_E_INVALID, with the
 * batch index and the field in the message, for a label id outside [0, C) or
 * equal to the blank, a length out of range, a target longer than its input
 * or bad sizes; RECUR_E_NUMERIC for a non-finite logit inside an input
 * length (naming t and b; outputs may then be partly written).
 * RECUR_E_NOMEM when the workspace cannot be allocated.
 *
 * Workspace: one allocation per call, made before the time loops, of
 * (T*C + T*(2S+1) + 2*(2S+1) + C) doubles with T and S the batch's largest
 * input and target lengths, reused for every batch item (the items are
 * processed one after the other). */
RECUR_API int recur_ctc_loss(const float *logits, int T, int B, int C, const int32_t *targets,
                             int S, const int32_t *input_lengths, const int32_t *target_lengths,
                             const recur_ctc_config *config, double *losses, float *dlogits);

/* ---- Decoding ---------------------------------------------------------
 * Both decoders read one sequence of T frames of C scores: frame t starts at
 * scores + t * stride (stride >= C floats: C for a contiguous [T, C], B * C
 * for item b of a time-major [T, B, C] batch, passing scores + b * C).
 * The decoded labels (blanks removed, repeats collapsed) are written to
 * labels[0 .. *num_labels); at most T of them, so a buffer of T ints always
 * suffices (labels may be NULL when max_labels is 0). If more than
 * max_labels would be needed, the first max_labels are written, *num_labels
 * receives the full count and RECUR_E_SHAPE is returned. A NaN or +inf score
 * gives RECUR_E_NUMERIC naming the frame (-inf is allowed: probability 0). */

/* Best-path decoding: the argmax class of each frame (the lowest id among
 * equal scores), then repeats collapsed and blanks dropped. Logits and
 * log-probabilities give the same result. */
RECUR_API int recur_ctc_greedy_decode(const float *scores, int T, int C, size_t stride, int blank,
                                      int *labels, int max_labels, int *num_labels);

typedef enum recur_ctc_scores {
    RECUR_CTC_SCORES_LOGITS,   /* raw logits: log_softmax is applied per frame */
    RECUR_CTC_SCORES_LOG_PROBS /* log-probabilities, used as they are */
} recur_ctc_scores;

typedef struct recur_ctc_beam_config {
    int beam_width;          /* prefixes kept after each frame, >= 1 */
    int blank;               /* id of the blank class */
    recur_ctc_scores scores; /* what the score array holds */
} recur_ctc_beam_config;

/* beam_width = 16, blank = 0, scores = RECUR_CTC_SCORES_LOGITS. */
RECUR_API recur_ctc_beam_config recur_ctc_beam_config_default(void);

/* Prefix beam search (Hannun et al. 2014, without a language model), in log
 * space: each prefix carries the probability of the paths ending in a blank
 * and of those ending in its last label; after every frame the beam_width
 * most probable prefixes are kept. Ties are broken deterministically by
 * candidate order (prefixes kept from the previous frame first, in rank
 * order, then their one-label extensions by beam rank and increasing label
 * id). With a beam wide enough never to prune, the result is the most
 * probable labelling; with width 1 it is greedy-like.
 * log_prob (may be NULL) receives the log-probability the search assigns to
 * the returned labelling (exact when nothing was pruned).
 * config: NULL for recur_ctc_beam_config_default(). Workspace: one
 * allocation per call of O(T * beam_width + beam_width * C) entries.
 * RECUR_E_INVALID for bad sizes or options, RECUR_E_NOMEM. */
RECUR_API int recur_ctc_beam_decode(const float *scores, int T, int C, size_t stride,
                                    const recur_ctc_beam_config *config, int *labels,
                                    int max_labels, int *num_labels, double *log_prob);

/* ---- Edit distance and error rates ----------------------------------- */

/* Levenshtein distance between int sequences a[0..na) and b[0..nb)
 * (insertions, deletions and substitutions each cost 1). Returns the
 * distance (>= 0), or RECUR_E_INVALID for a negative length or a NULL
 * pointer with a positive length, RECUR_E_NOMEM when the O(min(na, nb))
 * row cannot be allocated. */
RECUR_API int recur_edit_distance(const int *a, int na, const int *b, int nb);

/* A corpus-level error rate: the total number of edits over every pair
 * added, divided by the total reference length (not the mean of per-pair
 * rates, so long references weigh more). Start from {0, 0}. */
typedef struct recur_error_rate {
    int64_t edits;            /* sum of edit distances */
    int64_t reference_length; /* sum of reference lengths */
} recur_error_rate;

/* Adds one (reference, hypothesis) pair of int sequences. */
RECUR_API int recur_error_rate_add(recur_error_rate *rate, const int *reference,
                                   int reference_length, const int *hypothesis,
                                   int hypothesis_length);
/* Character error rate: adds one pair of NUL-terminated UTF-8 strings
 * compared code point by code point (a byte that is not valid UTF-8 counts
 * as one character of its own). */
RECUR_API int recur_error_rate_add_chars(recur_error_rate *rate, const char *reference,
                                         const char *hypothesis);
/* Word error rate: adds one pair of NUL-terminated strings split into words
 * at ASCII whitespace (space, tab, newline, CR, VT, FF); words compare
 * byte for byte. */
RECUR_API int recur_error_rate_add_words(recur_error_rate *rate, const char *reference,
                                         const char *hypothesis);
/* edits / reference_length; 0 when both are 0 and +inf when edits > 0 but
 * every reference was empty. */
RECUR_API double recur_error_rate_value(const recur_error_rate *rate);

#ifdef __cplusplus
}
#endif
#endif
