/* ctc_decode.c - CTC decoding and error rates: greedy (best-path) decoding,
 * prefix beam search (Hannun et al. 2014, "First-Pass Large Vocabulary
 * Continuous Speech Recognition using Bi-Directional Recurrent DNNs",
 * without a language model), Levenshtein distance and corpus-level
 * character / word error rates.
 *
 * Prefix beam search keeps, for every prefix l in the beam, two log
 * probabilities: pb(l) of the paths so far that collapse to l and end in a
 * blank, pnb(l) of those ending in l's last label. For frame t, with y = the
 * frame's log-probabilities and lse = log-sum-exp:
 *   blank:          pb'(l)   += lse(pb(l), pnb(l)) + y[blank]
 *   repeat last:    pnb'(l)  += pnb(l) + y[last(l)]         (collapses into l)
 *   extend by c:    pnb'(l+c) += (c == last(l) ? pb(l) : lse(pb(l), pnb(l))) + y[c]
 * ("+=" is a log-space sum). When l+c is itself in the beam its two sums
 * merge. Then the beam_width prefixes with the largest lse(pb, pnb) are
 * kept. Prefixes are nodes of a trie (parent, label) that is never pruned,
 * and a child is reused whenever it exists, so a prefix has exactly one node
 * and "l+c is in the beam" is a node comparison. The paper's extra term for
 * an l+c that fell out of the beam is left out, as in most implementations:
 * its probabilities are no longer known. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "recur/ctc.h"

static inline double log_add(double a, double b)
{
    if (a == -INFINITY)
        return b;
    if (b == -INFINITY)
        return a;
    return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b));
}

/* Checks what both decoders share. */
static int validate_frames(const char *who, const float *scores, int T, int C, size_t stride,
                           int blank, const int *labels, int max_labels, const int *num_labels)
{
    if (T < 0 || C < 1)
        return recur__error(RECUR_E_INVALID, "%s: sizes T = %d, C = %d (need T >= 0, C >= 1)", who,
                            T, C);
    if (stride < (size_t)C)
        return recur__error(RECUR_E_INVALID, "%s: stride %zu is less than C = %d", who, stride, C);
    if (blank < 0 || blank >= C)
        return recur__error(RECUR_E_INVALID, "%s: blank id %d is outside [0, %d)", who, blank, C);
    if (T > 0 && !scores)
        return recur__error(RECUR_E_INVALID, "%s: scores is NULL", who);
    if (max_labels < 0 || (max_labels > 0 && !labels))
        return recur__error(RECUR_E_INVALID, "%s: labels buffer of %d entries is %s", who,
                            max_labels, labels ? "negative" : "NULL");
    if (!num_labels)
        return recur__error(RECUR_E_INVALID, "%s: num_labels is NULL", who);
    size_t end;
    if (T > 0 &&
        (!recur__mul_size((size_t)(T - 1), stride, &end) || !recur__add_size(end, (size_t)C, &end)))
        return recur__error(RECUR_E_NOMEM, "%s: T * stride overflows", who);
    return RECUR_OK;
}

static int bad_score(const char *who, int t, int c, float v)
{
    return recur__error(RECUR_E_NUMERIC, "%s: score [%d][%d] = %g (NaN or +inf)", who, t, c,
                        (double)v);
}

int recur_ctc_greedy_decode(const float *scores, int T, int C, size_t stride, int blank,
                            int *labels, int max_labels, int *num_labels)
{
    static const char who[] = "ctc_greedy_decode";
    int status = validate_frames(who, scores, T, C, stride, blank, labels, max_labels, num_labels);
    if (status != RECUR_OK)
        return status;
    int count = 0, previous = -1;
    for (int t = 0; t < T; t++) {
        const float *frame = scores + (size_t)t * stride; /* [C] */
        int best = 0;
        for (int c = 0; c < C; c++) {
            if (isnan(frame[c]) || frame[c] == INFINITY)
                return bad_score(who, t, c, frame[c]);
            if (frame[c] > frame[best])
                best = c;
        }
        if (best != blank && best != previous) {
            if (count < max_labels)
                labels[count] = best;
            count++;
        }
        previous = best;
    }
    *num_labels = count;
    if (count > max_labels)
        return recur__error(RECUR_E_SHAPE, "%s: %d labels decoded, buffer holds %d", who, count,
                            max_labels);
    return RECUR_OK;
}

recur_ctc_beam_config recur_ctc_beam_config_default(void)
{
    recur_ctc_beam_config config;
    config.beam_width = 16;
    config.blank = 0;
    config.scores = RECUR_CTC_SCORES_LOGITS;
    return config;
}

/* One prefix: a trie node. The root (node 0) is the empty prefix. */
typedef struct prefix_node {
    int parent;      /* -1 for the root */
    int label;       /* last label, -1 for the root */
    int length;      /* number of labels */
    int first_child; /* -1 when none */
    int next_sibling;
} prefix_node;

/* One entry of the beam. */
typedef struct beam_entry {
    int node;
    double blank_lp;    /* pb: paths ending in a blank */
    double nonblank_lp; /* pnb: paths ending in the last label */
} beam_entry;

/* A candidate for the next beam: prefix `beam`'s own node (label == -1) or
 * its extension by `label`. `rank` (the candidate's index) breaks ties. */
typedef struct candidate {
    double blank_lp, nonblank_lp, total;
    int beam, label, rank;
} candidate;

static int compare_candidates(const void *pa, const void *pb)
{
    const candidate *a = pa, *b = pb;
    if (a->total != b->total)
        return a->total > b->total ? -1 : 1;
    return (a->rank > b->rank) - (a->rank < b->rank);
}

/* The child of `parent` with `label`, created when absent. The pool has room
 * by construction (at most beam_width new nodes per frame). */
static int child_node(prefix_node *nodes, int *count, int parent, int label)
{
    for (int n = nodes[parent].first_child; n >= 0; n = nodes[n].next_sibling)
        if (nodes[n].label == label)
            return n;
    int n = (*count)++;
    nodes[n].parent = parent;
    nodes[n].label = label;
    nodes[n].length = nodes[parent].length + 1;
    nodes[n].first_child = -1;
    nodes[n].next_sibling = nodes[parent].first_child;
    nodes[parent].first_child = n;
    return n;
}

/* y[c] = log-probability of class c at a frame, from logits or log-probs. */
static int frame_log_probs(const char *who, const float *frame, int C, recur_ctc_scores kind, int t,
                           double *y)
{
    double max = -INFINITY;
    for (int c = 0; c < C; c++) {
        if (isnan(frame[c]) || frame[c] == INFINITY)
            return bad_score(who, t, c, frame[c]);
        y[c] = frame[c];
        if (y[c] > max)
            max = y[c];
    }
    if (kind == RECUR_CTC_SCORES_LOG_PROBS)
        return RECUR_OK;
    if (max == -INFINITY)
        return recur__error(RECUR_E_NUMERIC, "%s: every logit of frame %d is -inf", who, t);
    double sum = 0.0;
    for (int c = 0; c < C; c++)
        sum += exp(y[c] - max);
    double lse = max + log(sum);
    for (int c = 0; c < C; c++)
        y[c] -= lse;
    return RECUR_OK;
}

int recur_ctc_beam_decode(const float *scores, int T, int C, size_t stride,
                          const recur_ctc_beam_config *config, int *labels, int max_labels,
                          int *num_labels, double *log_prob)
{
    static const char who[] = "ctc_beam_decode";
    recur_ctc_beam_config defaults = recur_ctc_beam_config_default();
    if (!config)
        config = &defaults;
    int status =
        validate_frames(who, scores, T, C, stride, config->blank, labels, max_labels, num_labels);
    if (status != RECUR_OK)
        return status;
    if (config->beam_width < 1)
        return recur__error(RECUR_E_INVALID, "%s: beam_width = %d (need >= 1)", who,
                            config->beam_width);
    if (config->scores != RECUR_CTC_SCORES_LOGITS && config->scores != RECUR_CTC_SCORES_LOG_PROBS)
        return recur__error(RECUR_E_INVALID, "%s: unknown scores kind %d", who,
                            (int)config->scores);
    const int W = config->beam_width, blank = config->blank;

    /* Sizes: nodes 1 + T*W, beams 2*W, candidates W*(C+1), y [C]. */
    size_t n_nodes, n_cand, b_nodes, b_beams, b_cand, b_y, bytes;
    if (!recur__mul_size((size_t)T, (size_t)W, &n_nodes) ||
        !recur__add_size(n_nodes, 1, &n_nodes) || n_nodes > (size_t)INT_MAX ||
        !recur__mul_size((size_t)W, (size_t)C + 1, &n_cand) || n_cand > (size_t)INT_MAX ||
        !recur__mul_size(n_nodes, sizeof(prefix_node), &b_nodes) ||
        !recur__mul_size(2 * (size_t)W, sizeof(beam_entry), &b_beams) ||
        !recur__mul_size(n_cand, sizeof(candidate), &b_cand) ||
        !recur__mul_size((size_t)C, sizeof(double), &b_y) ||
        !recur__add_size(b_nodes, b_beams, &bytes) || !recur__add_size(bytes, b_cand, &bytes) ||
        !recur__add_size(bytes, b_y, &bytes))
        return recur__error(RECUR_E_NOMEM, "%s: workspace for T = %d, C = %d, beam %d overflows",
                            who, T, C, W);
    /* One allocation; the doubles go first so that every part is aligned. */
    char *work = recur__malloc(bytes);
    if (!work)
        return recur__error(RECUR_E_NOMEM, "%s: cannot allocate %zu bytes of workspace", who,
                            bytes);
    double *y = (double *)work;                                          /* [C] */
    candidate *cand = (candidate *)(work + b_y);                         /* [W * (C+1)] */
    beam_entry *beams = (beam_entry *)(work + b_y + b_cand);             /* [W] */
    beam_entry *next_beams = beams + W;                                  /* [W] */
    prefix_node *nodes = (prefix_node *)(work + b_y + b_cand + b_beams); /* [1 + T*W] */

    int node_count = 1;
    nodes[0] = (prefix_node){-1, -1, 0, -1, -1};
    int n_beams = 1;
    beams[0] = (beam_entry){0, 0.0, -INFINITY};

    for (int t = 0; t < T && status == RECUR_OK; t++) {
        status = frame_log_probs(who, scores + (size_t)t * stride, C, config->scores, t, y);
        if (status != RECUR_OK)
            break;
        /* Candidates: [0, n_beams) the beams themselves, then n_beams + i*C + c
         * the extension of beam i by c (c == blank stays empty). */
        int n_total = n_beams * (C + 1);
        for (int k = 0; k < n_total; k++) {
            cand[k].blank_lp = cand[k].nonblank_lp = -INFINITY;
            cand[k].rank = k;
            cand[k].beam = k < n_beams ? k : (k - n_beams) / C;
            cand[k].label = k < n_beams ? -1 : (k - n_beams) % C;
        }
        for (int i = 0; i < n_beams; i++) {
            const beam_entry *e = &beams[i];
            double total = log_add(e->blank_lp, e->nonblank_lp);
            int last = nodes[e->node].label;
            cand[i].blank_lp = total + y[blank];
            if (last >= 0)
                cand[i].nonblank_lp = e->nonblank_lp + y[last];
            candidate *ext = cand + n_beams + (size_t)i * (size_t)C; /* [C] */
            for (int c = 0; c < C; c++) {
                if (c == blank)
                    continue;
                ext[c].nonblank_lp = (c == last ? e->blank_lp : total) + y[c];
            }
        }
        /* Merge an extension l+c into the beam entry that already holds l+c. */
        for (int j = 0; j < n_beams; j++) {
            const prefix_node *nj = &nodes[beams[j].node];
            if (nj->parent < 0)
                continue;
            for (int i = 0; i < n_beams; i++) {
                if (beams[i].node != nj->parent)
                    continue;
                candidate *ext = &cand[n_beams + i * C + nj->label];
                cand[j].nonblank_lp = log_add(cand[j].nonblank_lp, ext->nonblank_lp);
                ext->nonblank_lp = -INFINITY;
                break;
            }
        }
        int n_live = 0;
        for (int k = 0; k < n_total; k++) {
            cand[k].total = log_add(cand[k].blank_lp, cand[k].nonblank_lp);
            if (cand[k].total > -INFINITY)
                cand[n_live++] = cand[k];
        }
        if (n_live == 0) {
            status = recur__error(RECUR_E_NUMERIC, "%s: frame %d gives every prefix probability 0",
                                  who, t);
            break;
        }
        qsort(cand, (size_t)n_live, sizeof *cand, compare_candidates);
        int kept = n_live < W ? n_live : W;
        for (int k = 0; k < kept; k++) {
            const candidate *cd = &cand[k];
            int parent = beams[cd->beam].node;
            next_beams[k].node =
                cd->label < 0 ? parent : child_node(nodes, &node_count, parent, cd->label);
            next_beams[k].blank_lp = cd->blank_lp;
            next_beams[k].nonblank_lp = cd->nonblank_lp;
        }
        beam_entry *swap = beams;
        beams = next_beams;
        next_beams = swap;
        n_beams = kept;
    }

    if (status == RECUR_OK) {
        int node = beams[0].node;
        int count = nodes[node].length;
        for (; node > 0; node = nodes[node].parent)
            if (nodes[node].length <= max_labels)
                labels[nodes[node].length - 1] = nodes[node].label;
        *num_labels = count;
        if (log_prob)
            *log_prob = T > 0 ? log_add(beams[0].blank_lp, beams[0].nonblank_lp) : 0.0;
        if (count > max_labels)
            status = recur__error(RECUR_E_SHAPE, "%s: %d labels decoded, buffer holds %d", who,
                                  count, max_labels);
    }
    recur__free(work);
    return status;
}

/* ---- Edit distance and error rates ----------------------------------- */

int recur_edit_distance(const int *a, int na, const int *b, int nb)
{
    if (na < 0 || nb < 0)
        return recur__error(RECUR_E_INVALID, "edit_distance: negative length (%d, %d)", na, nb);
    if ((na > 0 && !a) || (nb > 0 && !b))
        return recur__error(RECUR_E_INVALID, "edit_distance: sequence %c is NULL",
                            (na > 0 && !a) ? 'a' : 'b');
    if (nb > na) { /* keep the row over the shorter sequence */
        const int *ts = a;
        a = b;
        b = ts;
        int tn = na;
        na = nb;
        nb = tn;
    }
    if (nb == 0)
        return na;
    /* row[j] = distance between a[0..i) and b[0..j), one row at a time. */
    int small[256];
    int *row = small;
    if ((size_t)nb + 1 > sizeof small / sizeof small[0]) {
        row = recur__calloc((size_t)nb + 1, sizeof *row);
        if (!row)
            return recur__error(RECUR_E_NOMEM, "edit_distance: cannot allocate a row of %d", nb);
    }
    for (int j = 0; j <= nb; j++)
        row[j] = j;
    for (int i = 1; i <= na; i++) {
        int diagonal = row[0]; /* d(i-1, j-1) */
        row[0] = i;
        for (int j = 1; j <= nb; j++) {
            int up = row[j]; /* d(i-1, j) */
            int best = diagonal + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diagonal = up;
        }
    }
    int distance = row[nb];
    if (row != small)
        recur__free(row);
    return distance;
}

int recur_error_rate_add(recur_error_rate *rate, const int *reference, int reference_length,
                         const int *hypothesis, int hypothesis_length)
{
    if (!rate)
        return recur__error(RECUR_E_INVALID, "error_rate_add: rate is NULL");
    int d = recur_edit_distance(reference, reference_length, hypothesis, hypothesis_length);
    if (d < 0)
        return d;
    rate->edits += d;
    rate->reference_length += reference_length;
    return RECUR_OK;
}

double recur_error_rate_value(const recur_error_rate *rate)
{
    if (!rate || rate->edits == 0)
        return 0.0;
    if (rate->reference_length == 0)
        return INFINITY;
    return (double)rate->edits / (double)rate->reference_length;
}

/* Decodes one UTF-8 character at s (s[0] != 0); returns its byte length and
 * writes a code point, or 0x110000 + byte for an invalid sequence (one byte
 * long), so that invalid bytes never equal a real character. */
static int utf8_next(const unsigned char *s, int *out)
{
    unsigned c = s[0];
    int len;
    unsigned cp, min;
    if (c < 0x80) {
        *out = (int)c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        *out = 0x110000 + (int)c;
        return 1;
    }
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) { /* also stops at the terminating NUL */
            *out = 0x110000 + (int)c;
            return 1;
        }
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        *out = 0x110000 + (int)c;
        return 1;
    }
    *out = (int)cp;
    return len;
}

static int utf8_decode(const char *text, int *out)
{
    const unsigned char *s = (const unsigned char *)text;
    int n = 0;
    while (*s) {
        int len = utf8_next(s, &out[n++]);
        s += len;
    }
    return n;
}

int recur_error_rate_add_chars(recur_error_rate *rate, const char *reference,
                               const char *hypothesis)
{
    if (!rate || !reference || !hypothesis)
        return recur__error(RECUR_E_INVALID, "error_rate_add_chars: %s is NULL",
                            !rate        ? "rate"
                            : !reference ? "reference"
                                         : "hypothesis");
    size_t nr = strlen(reference), nh = strlen(hypothesis), n;
    if (nr > INT_MAX || nh > INT_MAX)
        return recur__error(RECUR_E_INVALID, "error_rate_add_chars: text longer than %d bytes",
                            INT_MAX);
    if (!recur__add_size(nr, nh, &n))
        return recur__error(RECUR_E_NOMEM, "error_rate_add_chars: size overflows");
    int *codes = recur__calloc(n ? n : 1, sizeof *codes); /* reference, then hypothesis */
    if (!codes)
        return recur__error(RECUR_E_NOMEM, "error_rate_add_chars: cannot allocate %zu chars", n);
    int ref_len = utf8_decode(reference, codes);
    int hyp_len = utf8_decode(hypothesis, codes + ref_len);
    int status = recur_error_rate_add(rate, codes, ref_len, codes + ref_len, hyp_len);
    recur__free(codes);
    return status;
}

typedef struct word_span {
    const char *start;
    size_t length;
    int index; /* position among all words, reference first */
} word_span;

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Appends the words of text to spans; returns how many. */
static int split_words(const char *text, word_span *spans, int first_index)
{
    int n = 0;
    while (*text) {
        while (*text && is_space(*text))
            text++;
        if (!*text)
            break;
        const char *start = text;
        while (*text && !is_space(*text))
            text++;
        spans[n].start = start;
        spans[n].length = (size_t)(text - start);
        spans[n].index = first_index + n;
        n++;
    }
    return n;
}

static int compare_words(const void *pa, const void *pb)
{
    const word_span *a = pa, *b = pb;
    size_t n = a->length < b->length ? a->length : b->length;
    int c = memcmp(a->start, b->start, n);
    if (c != 0)
        return c;
    return (a->length > b->length) - (a->length < b->length);
}

int recur_error_rate_add_words(recur_error_rate *rate, const char *reference,
                               const char *hypothesis)
{
    if (!rate || !reference || !hypothesis)
        return recur__error(RECUR_E_INVALID, "error_rate_add_words: %s is NULL",
                            !rate        ? "rate"
                            : !reference ? "reference"
                                         : "hypothesis");
    size_t nr = strlen(reference), nh = strlen(hypothesis);
    if (nr > INT_MAX / 2 || nh > INT_MAX / 2)
        return recur__error(RECUR_E_INVALID, "error_rate_add_words: text longer than %d bytes",
                            INT_MAX / 2);
    /* A text of n bytes has at most n/2 + 1 words. */
    size_t max_words = nr / 2 + 1 + nh / 2 + 1, bytes_spans, bytes_ids, bytes;
    if (!recur__mul_size(max_words, sizeof(word_span), &bytes_spans) ||
        !recur__mul_size(max_words, sizeof(int), &bytes_ids) ||
        !recur__add_size(bytes_spans, bytes_ids, &bytes))
        return recur__error(RECUR_E_NOMEM, "error_rate_add_words: size overflows");
    char *work = recur__malloc(bytes);
    if (!work)
        return recur__error(RECUR_E_NOMEM, "error_rate_add_words: cannot allocate %zu bytes",
                            bytes);
    word_span *spans = (word_span *)work;   /* [max_words] */
    int *ids = (int *)(work + bytes_spans); /* [max_words], reference then hypothesis */
    int ref_len = split_words(reference, spans, 0);
    int hyp_len = split_words(hypothesis, spans + ref_len, ref_len);
    int n = ref_len + hyp_len;
    /* Equal words get equal ids: sort the spans, number the distinct ones. */
    qsort(spans, (size_t)n, sizeof *spans, compare_words);
    int id = -1;
    for (int k = 0; k < n; k++) {
        if (k == 0 || compare_words(&spans[k - 1], &spans[k]) != 0)
            id++;
        ids[spans[k].index] = id;
    }
    int status = recur_error_rate_add(rate, ids, ref_len, ids + ref_len, hyp_len);
    recur__free(work);
    return status;
}
