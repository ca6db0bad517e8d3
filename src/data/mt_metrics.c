/* mt_metrics.c - translation metrics exactly as sacreBLEU 2.x computes them
 * with its defaults (docs/translate-tokens.md, "Metrics"):
 *
 *   13a tokenization  Tokenizer13a (mteval-v13a.pl): drop "<skipped>", join
 *                     "-\n", newlines to spaces, unescape &quot; &amp; &lt;
 *                     &gt;, then the four regular expressions of
 *                     TokenizerRegexp applied in order, then split on Python
 *                     whitespace (str.split()) and join with single spaces;
 *   BLEU              BLEU(): cased, 13a on rstrip()ed lines, n-grams 1..4,
 *                     clipped counts summed over the corpus, brevity penalty
 *                     from the summed lengths, smooth_method "exp";
 *   chrF              CHRF(): character n-grams 1..6 of the line with all
 *                     whitespace removed, [hyp, ref, match] counts summed per
 *                     order over the corpus, then the effective-order average
 *                     of precision and recall and F-beta with beta = 2.
 *
 * Python works on code points; here the regular expressions run on bytes,
 * which gives the same result on UTF-8 because every character they test is
 * ASCII and no byte of a multi-byte character is ASCII. Whitespace (for
 * splitting, rstrip and chrF) and chrF's characters are decoded from UTF-8;
 * a byte that is not part of well-formed UTF-8 counts as one character of
 * its own (Python could not have read such a line at all).
 * Sentence BLEU is sacreBLEU's sentence_bleu (effective order). Leaves out:
 * multiple references, lowercasing, other tokenizers, chrF++ (word n-grams).
 * Minimum Bayes risk selection (recur_mbr_select) scores candidates with
 * these. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "recur/mt_metrics.h"

#define BLEU_ORDER 4
#define CHRF_ORDER 6
#define CHRF_BETA 2
#define GRAM_MAX 6 /* the longest n-gram either metric compares */

/* ---- growable byte buffer ------------------------------------------------------------ */

typedef struct sbuf {
    unsigned char *p;
    size_t n, cap;
} sbuf;

static int sbuf_reserve(sbuf *b, size_t extra)
{
    size_t need;
    if (!recur__add_size(b->n, extra, &need))
        return RECUR_E_NOMEM;
    if (need <= b->cap)
        return RECUR_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return RECUR_E_NOMEM;
        cap *= 2;
    }
    unsigned char *p = recur__malloc(cap);
    if (!p)
        return RECUR_E_NOMEM;
    if (b->n)
        memcpy(p, b->p, b->n);
    recur__free(b->p);
    b->p = p;
    b->cap = cap;
    return RECUR_OK;
}

static void sbuf_free(sbuf *b)
{
    recur__free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- UTF-8 and Python's whitespace ---------------------------------------------------- */

/* The character at s[0..n) (n >= 1): its length, and *cp its code point, or
 * 0x110000 + byte for a byte that does not start a well-formed sequence
 * (then the length is 1). */
static size_t next_char(const unsigned char *s, size_t n, uint32_t *cp)
{
    const unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    uint32_t value;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
        value = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        value = c & 0x0fu;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        value = c & 0x07u;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        *cp = 0x110000u + c;
        return 1;
    }
    for (size_t k = 1; k < need; k++) {
        const unsigned char min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xbf;
        if (k >= n || s[k] < min || s[k] > max) {
            *cp = 0x110000u + c;
            return 1;
        }
        value = value << 6 | (s[k] & 0x3fu);
    }
    *cp = value;
    return need;
}

/* Python's str.isspace(): bidirectional class WS, B or S, or category Zs. */
static int is_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 ||
           cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* Length of s[0..n) without its trailing whitespace (Python's rstrip()). */
static size_t rstrip_len(const unsigned char *s, size_t n)
{
    size_t end = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        const size_t k = next_char(s + i, n - i, &cp);
        i += k;
        if (!is_space(cp))
            end = i;
    }
    return end;
}

/* ---- 13a tokenization ----------------------------------------------------------------- */

/* out = in with every non-overlapping `pattern`, left to right, replaced by
 * `with` (Python's str.replace). */
static int replace_all(const sbuf *in, const char *pattern, const char *with, sbuf *out)
{
    const size_t plen = strlen(pattern), wlen = strlen(with);
    out->n = 0;
    if (sbuf_reserve(out, in->n))
        return RECUR_E_NOMEM; /* with is never longer than pattern here */
    for (size_t i = 0; i < in->n;) {
        if (in->n - i >= plen && memcmp(in->p + i, pattern, plen) == 0) {
            memcpy(out->p + out->n, with, wlen);
            out->n += wlen;
            i += plen;
        } else
            out->p[out->n++] = in->p[i++];
    }
    return RECUR_OK;
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* [\{-\~\[-\` -\&\(-\+\:-\@\/]: { | } ~, [ \ ] ^ _ `, space ! " # $ % &,
 * ( ) * +, : ; < = > ? @, and /. */
static int is_13a_symbol(unsigned char c)
{
    return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
           (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
}

/* The four substitutions of TokenizerRegexp, each a left-to-right scan for
 * non-overlapping matches of a two-character pattern (or one character for
 * the first), as re.sub does:
 *   1  ([\{-\~\[-\` -\&\(-\+\:-\@\/])  -> " \1 "
 *   2  ([^0-9])([\.,])                -> "\1 \2 "
 *   3  ([\.,])([^0-9])                -> " \1 \2"
 *   4  ([0-9])(-)                     -> "\1 \2 " */
static int regex_pass(int rule, const sbuf *in, sbuf *out)
{
    out->n = 0;
    /* Rule 1 turns a byte into 3, rules 2 to 4 two bytes into 4. */
    size_t worst;
    if (!recur__mul_size(in->n, 3, &worst) || sbuf_reserve(out, worst))
        return RECUR_E_NOMEM;
    const unsigned char *s = in->p;
    const size_t n = in->n;
    unsigned char *o = out->p;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        const int pair = i + 1 < n;
        if (rule == 1 && is_13a_symbol(s[i])) {
            o[k++] = ' ';
            o[k++] = s[i++];
            o[k++] = ' ';
        } else if (rule == 2 && pair && !is_digit(s[i]) && (s[i + 1] == '.' || s[i + 1] == ',')) {
            o[k++] = s[i];
            o[k++] = ' ';
            o[k++] = s[i + 1];
            o[k++] = ' ';
            i += 2;
        } else if (rule == 3 && pair && (s[i] == '.' || s[i] == ',') && !is_digit(s[i + 1])) {
            o[k++] = ' ';
            o[k++] = s[i];
            o[k++] = ' ';
            o[k++] = s[i + 1];
            i += 2;
        } else if (rule == 4 && pair && is_digit(s[i]) && s[i + 1] == '-') {
            o[k++] = s[i];
            o[k++] = ' ';
            o[k++] = '-';
            o[k++] = ' ';
            i += 2;
        } else
            o[k++] = s[i++];
    }
    out->n = k;
    return RECUR_OK;
}

/* Tokenizer13a()(s[0..n)) into out (tokens joined by single spaces, no
 * NUL). a and b are scratch buffers. */
static int tokenize_13a(const unsigned char *s, size_t n, sbuf *out, sbuf *a, sbuf *b)
{
    static const char *const replacements[][2] = {
        {"<skipped>", ""}, {"-\n", ""},    {"\n", " "},   {"&quot;", "\""},
        {"&amp;", "&"},    {"&lt;", "<"},  {"&gt;", ">"},
    };
    a->n = 0;
    if (sbuf_reserve(a, n + 2))
        return RECUR_E_NOMEM;
    if (n)
        memcpy(a->p, s, n);
    a->n = n;
    sbuf *cur = a, *other = b;
    for (size_t r = 0; r < sizeof replacements / sizeof *replacements; r++) {
        if (replace_all(cur, replacements[r][0], replacements[r][1], other))
            return RECUR_E_NOMEM;
        sbuf *t = cur;
        cur = other;
        other = t;
    }
    /* " {line} " */
    other->n = 0;
    if (sbuf_reserve(other, cur->n + 2))
        return RECUR_E_NOMEM;
    other->p[0] = ' ';
    if (cur->n)
        memcpy(other->p + 1, cur->p, cur->n);
    other->p[cur->n + 1] = ' ';
    other->n = cur->n + 2;
    {
        sbuf *t = cur;
        cur = other;
        other = t;
    }
    for (int rule = 1; rule <= 4; rule++) {
        if (regex_pass(rule, cur, other))
            return RECUR_E_NOMEM;
        sbuf *t = cur;
        cur = other;
        other = t;
    }
    /* ' '.join(line.split()) */
    out->n = 0;
    if (sbuf_reserve(out, cur->n))
        return RECUR_E_NOMEM;
    int in_token = 0;
    for (size_t i = 0; i < cur->n;) {
        uint32_t cp;
        const size_t k = next_char(cur->p + i, cur->n - i, &cp);
        if (is_space(cp))
            in_token = 0;
        else {
            if (!in_token && out->n)
                out->p[out->n++] = ' ';
            in_token = 1;
            memcpy(out->p + out->n, cur->p + i, k);
            out->n += k;
        }
        i += k;
    }
    return RECUR_OK;
}

int recur_tokenize_13a(const char *text, char **out)
{
    if (!text || !out)
        return recur__error(RECUR_E_INVALID, "recur_tokenize_13a: NULL argument");
    *out = NULL;
    sbuf result = {0}, a = {0}, b = {0};
    int rc = tokenize_13a((const unsigned char *)text, strlen(text), &result, &a, &b);
    if (rc == RECUR_OK)
        rc = sbuf_reserve(&result, 1);
    sbuf_free(&a);
    sbuf_free(&b);
    if (rc) {
        sbuf_free(&result);
        return recur__error(RECUR_E_NOMEM, "recur_tokenize_13a: out of memory on a line of %zu "
                            "bytes", strlen(text));
    }
    result.p[result.n] = '\0';
    *out = (char *)result.p;
    return RECUR_OK;
}

/* ---- n-gram matching ----------------------------------------------------------------- */

/* An n-gram of token ids (BLEU) or code points (chrF); positions past n are
 * zero, so that grams of one order compare as arrays. */
typedef struct gram {
    uint32_t v[GRAM_MAX];
} gram;

static int compare_grams(const void *x, const void *y)
{
    const gram *a = x, *b = y;
    for (int k = 0; k < GRAM_MAX; k++)
        if (a->v[k] != b->v[k])
            return a->v[k] < b->v[k] ? -1 : 1;
    return 0;
}

/* Per-call scratch space: sequences, their n-grams, and token interning. */
typedef struct work {
    sbuf hyp_text, ref_text, a, b;
    uint32_t *hyp, *ref; /* [hyp_n], [ref_n] token ids or code points */
    size_t hyp_n, ref_n, hyp_cap, ref_cap;
    gram *hyp_grams, *ref_grams;
    size_t hyp_grams_cap, ref_grams_cap;
    struct token {
        const unsigned char *p;
        size_t len;
        size_t slot; /* position: hyp tokens first, then ref tokens */
    } *tokens;
    size_t tokens_cap;
} work;

static void work_free(work *w)
{
    sbuf_free(&w->hyp_text);
    sbuf_free(&w->ref_text);
    sbuf_free(&w->a);
    sbuf_free(&w->b);
    recur__free(w->hyp);
    recur__free(w->ref);
    recur__free(w->hyp_grams);
    recur__free(w->ref_grams);
    recur__free(w->tokens);
}

/* A buffer of at least `need` (>= 1) elements of `size` bytes: buf itself
 * when it is large enough, else a new zeroed one (buf freed, contents
 * dropped). NULL when out of memory (buf untouched). */
static void *fresh_array(void *buf, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return buf;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need) {
        if (cap2 > SIZE_MAX / 2)
            return NULL;
        cap2 *= 2;
    }
    void *p = recur__calloc(cap2, size);
    if (!p)
        return NULL;
    recur__free(buf);
    *cap = cap2;
    return p;
}

#define DEFINE_RESERVE(name, type)                                                      \
    static int name(type **buf, size_t *cap, size_t need)                               \
    {                                                                                   \
        void *p = fresh_array(*buf, cap, need, sizeof **buf);                           \
        if (!p)                                                                         \
            return RECUR_E_NOMEM;                                                       \
        *buf = p;                                                                       \
        return RECUR_OK;                                                                \
    }
DEFINE_RESERVE(reserve_u32, uint32_t)
DEFINE_RESERVE(reserve_grams, gram)
DEFINE_RESERVE(reserve_tokens, struct token)

/* Clipped matches of the order-n grams of x[0..xn) against y[0..yn):
 * sum over distinct grams g of min(count in x, count in y). */
static int clipped_matches(work *w, const uint32_t *x, size_t xn, const uint32_t *y, size_t yn,
                           int n, size_t *matches)
{
    *matches = 0;
    if (xn < (size_t)n || yn < (size_t)n)
        return RECUR_OK;
    const size_t gx = xn - (size_t)n + 1, gy = yn - (size_t)n + 1;
    if (reserve_grams(&w->hyp_grams, &w->hyp_grams_cap, gx) ||
        reserve_grams(&w->ref_grams, &w->ref_grams_cap, gy))
        return RECUR_E_NOMEM;
    for (size_t i = 0; i < gx; i++) {
        memset(&w->hyp_grams[i], 0, sizeof(gram));
        memcpy(w->hyp_grams[i].v, x + i, (size_t)n * sizeof *x);
    }
    for (size_t i = 0; i < gy; i++) {
        memset(&w->ref_grams[i], 0, sizeof(gram));
        memcpy(w->ref_grams[i].v, y + i, (size_t)n * sizeof *y);
    }
    qsort(w->hyp_grams, gx, sizeof(gram), compare_grams);
    qsort(w->ref_grams, gy, sizeof(gram), compare_grams);
    size_t i = 0, j = 0, total = 0;
    while (i < gx && j < gy) {
        const int c = compare_grams(&w->hyp_grams[i], &w->ref_grams[j]);
        if (c < 0)
            i++;
        else if (c > 0)
            j++;
        else {
            size_t ci = 0, cj = 0;
            const gram g = w->hyp_grams[i];
            while (i < gx && compare_grams(&w->hyp_grams[i], &g) == 0)
                i++, ci++;
            while (j < gy && compare_grams(&w->ref_grams[j], &g) == 0)
                j++, cj++;
            total += ci < cj ? ci : cj;
        }
    }
    *matches = total;
    return RECUR_OK;
}

/* ---- BLEU --------------------------------------------------------------------------- */

static int compare_tokens(const void *x, const void *y)
{
    const struct token *a = x, *b = y;
    const size_t n = a->len < b->len ? a->len : b->len;
    const int c = memcmp(a->p, b->p, n);
    if (c)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

/* Splits a 13a output (tokens separated by single spaces) into w->tokens
 * from index `first`; returns the token count. */
static size_t split_tokens(work *w, const sbuf *text, size_t first)
{
    size_t count = 0;
    for (size_t i = 0; i < text->n;) {
        size_t j = i;
        while (j < text->n && text->p[j] != ' ')
            j++;
        w->tokens[first + count] = (struct token){text->p + i, j - i, first + count};
        count++;
        i = j + 1;
    }
    return count;
}

static size_t count_spaces(const sbuf *text)
{
    size_t spaces = 0;
    for (size_t i = 0; i < text->n; i++)
        spaces += text->p[i] == ' ';
    return spaces;
}

/* One sentence pair's BLEU statistics added to len[2], correct[], total[]. */
static int bleu_sentence(work *w, const char *hyp, const char *ref, size_t len[2],
                         size_t correct[BLEU_ORDER], size_t total[BLEU_ORDER])
{
    const unsigned char *h = (const unsigned char *)hyp, *r = (const unsigned char *)ref;
    if (tokenize_13a(h, rstrip_len(h, strlen(hyp)), &w->hyp_text, &w->a, &w->b) ||
        tokenize_13a(r, rstrip_len(r, strlen(ref)), &w->ref_text, &w->a, &w->b))
        return RECUR_E_NOMEM;
    const size_t max_h = w->hyp_text.n ? count_spaces(&w->hyp_text) + 1 : 0;
    const size_t max_r = w->ref_text.n ? count_spaces(&w->ref_text) + 1 : 0;
    if (reserve_tokens(&w->tokens, &w->tokens_cap, max_h + max_r + 1) ||
        reserve_u32(&w->hyp, &w->hyp_cap, max_h + 1) || reserve_u32(&w->ref, &w->ref_cap, max_r + 1))
        return RECUR_E_NOMEM;
    const size_t H = split_tokens(w, &w->hyp_text, 0);
    const size_t R = split_tokens(w, &w->ref_text, H);
    /* Equal strings get equal ids: sort, then number the distinct ones. */
    qsort(w->tokens, H + R, sizeof *w->tokens, compare_tokens);
    uint32_t id = 0;
    for (size_t i = 0; i < H + R; i++) {
        if (i && compare_tokens(&w->tokens[i - 1], &w->tokens[i]) != 0)
            id++;
        const size_t slot = w->tokens[i].slot;
        if (slot < H)
            w->hyp[slot] = id + 1;
        else
            w->ref[slot - H] = id + 1;
    }
    len[0] += H;
    len[1] += R;
    for (int n = 1; n <= BLEU_ORDER; n++) {
        size_t matches;
        if (clipped_matches(w, w->hyp, H, w->ref, R, n, &matches))
            return RECUR_E_NOMEM;
        correct[n - 1] += matches;
        total[n - 1] += H >= (size_t)n ? H - (size_t)n + 1 : 0;
    }
    return RECUR_OK;
}

/* sacreBLEU's my_log: log, with log(0) taken as -9999999999. */
static double bleu_log(double x)
{
    return x == 0.0 ? -9999999999.0 : log(x);
}

static int check_lines(const char *who, const char *const *hyps, const char *const *refs,
                       size_t n)
{
    if (!hyps || !refs)
        return recur__error(RECUR_E_INVALID, "%s: NULL %s", who, hyps ? "refs" : "hyps");
    if (n == 0)
        return recur__error(RECUR_E_INVALID, "%s: no sentences (n == 0)", who);
    for (size_t i = 0; i < n; i++) {
        if (!hyps[i])
            return recur__error(RECUR_E_INVALID, "%s: hyps[%zu] is NULL", who, i);
        if (!refs[i])
            return recur__error(RECUR_E_INVALID, "%s: refs[%zu] is NULL", who, i);
    }
    return RECUR_OK;
}

/* BLEU.compute_bleu with smooth_method "exp" from the summed statistics;
 * `effective` is sacreBLEU's effective_order: the mean runs over the orders
 * up to the last with n-grams in the hypothesis instead of all four. */
static void bleu_score(const size_t len[2], const size_t *correct, const size_t *total,
                       bool effective, recur_bleu *out)
{
    const size_t sys_len = len[0], ref_len = len[1];
    double bp = 1.0;
    if (sys_len < ref_len)
        bp = sys_len > 0 ? exp(1.0 - (double)ref_len / (double)sys_len) : 0.0;
    out->bp = bp;
    out->hyp_len = sys_len;
    out->ref_len = ref_len;
    int any = 0;
    for (int k = 0; k < BLEU_ORDER; k++) {
        out->matches[k] = correct[k];
        out->totals[k] = total[k];
        any |= correct[k] != 0;
    }
    if (!any)
        return; /* score and precisions 0 */
    double smooth = 1.0;
    int order = BLEU_ORDER;
    for (int k = 0; k < BLEU_ORDER; k++) {
        if (total[k] == 0)
            break;
        if (effective)
            order = k + 1;
        if (correct[k] == 0) {
            smooth *= 2.0;
            out->precision[k] = 100.0 / (smooth * (double)total[k]);
        } else
            out->precision[k] = 100.0 * (double)correct[k] / (double)total[k];
    }
    double sum = 0.0;
    for (int k = 0; k < order; k++)
        sum += bleu_log(out->precision[k]);
    out->score = bp * exp(sum / order);
}

int recur_bleu_corpus(const char *const *hyps, const char *const *refs, size_t n,
                      recur_bleu *out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_bleu_corpus: NULL output");
    memset(out, 0, sizeof *out);
    int rc = check_lines("recur_bleu_corpus", hyps, refs, n);
    if (rc)
        return rc;
    work w;
    memset(&w, 0, sizeof w);
    size_t len[2] = {0, 0}, correct[BLEU_ORDER] = {0}, total[BLEU_ORDER] = {0};
    for (size_t i = 0; i < n && rc == RECUR_OK; i++)
        rc = bleu_sentence(&w, hyps[i], refs[i], len, correct, total);
    work_free(&w);
    if (rc)
        return recur__error(RECUR_E_NOMEM, "recur_bleu_corpus: out of memory");
    bleu_score(len, correct, total, false, out);
    return RECUR_OK;
}

int recur_sentence_bleu(const char *hyp, const char *ref, double *score)
{
    if (!score)
        return recur__error(RECUR_E_INVALID, "recur_sentence_bleu: NULL output");
    *score = 0.0;
    int rc = check_lines("recur_sentence_bleu", &hyp, &ref, 1);
    if (rc)
        return rc;
    work w;
    memset(&w, 0, sizeof w);
    size_t len[2] = {0, 0}, correct[BLEU_ORDER] = {0}, total[BLEU_ORDER] = {0};
    rc = bleu_sentence(&w, hyp, ref, len, correct, total);
    work_free(&w);
    if (rc)
        return recur__error(RECUR_E_NOMEM, "recur_sentence_bleu: out of memory");
    recur_bleu b;
    memset(&b, 0, sizeof b);
    bleu_score(len, correct, total, true, &b);
    *score = b.score;
    return RECUR_OK;
}

/* ---- chrF --------------------------------------------------------------------------- */

/* The characters of s without whitespace (''.join(s.split())) into *chars. */
static int strip_chars(const char *text, uint32_t **chars, size_t *cap, size_t *count)
{
    const unsigned char *s = (const unsigned char *)text;
    const size_t n = strlen(text);
    if (reserve_u32(chars, cap, n + 1))
        return RECUR_E_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += next_char(s + i, n - i, &cp);
        if (!is_space(cp))
            (*chars)[k++] = cp;
    }
    *count = k;
    return RECUR_OK;
}

int recur_chrf_corpus(const char *const *hyps, const char *const *refs, size_t n, double *score)
{
    if (!score)
        return recur__error(RECUR_E_INVALID, "recur_chrf_corpus: NULL output");
    *score = 0.0;
    int rc = check_lines("recur_chrf_corpus", hyps, refs, n);
    if (rc)
        return rc;
    work w;
    memset(&w, 0, sizeof w);
    /* stats[order][0..2]: hypothesis n-grams, reference n-grams, matches. */
    size_t stats[CHRF_ORDER][3];
    memset(stats, 0, sizeof stats);
    for (size_t i = 0; i < n && rc == RECUR_OK; i++) {
        size_t H, R;
        rc = strip_chars(hyps[i], &w.hyp, &w.hyp_cap, &H);
        if (rc == RECUR_OK)
            rc = strip_chars(refs[i], &w.ref, &w.ref_cap, &R);
        for (int order = 1; order <= CHRF_ORDER && rc == RECUR_OK; order++) {
            const size_t gh = H >= (size_t)order ? H - (size_t)order + 1 : 0;
            const size_t gr = R >= (size_t)order ? R - (size_t)order + 1 : 0;
            size_t matches;
            rc = clipped_matches(&w, w.hyp, H, w.ref, R, order, &matches);
            /* CHRF._get_match_statistics: hypothesis n-grams count only
             * when the reference has n-grams of this order. */
            stats[order - 1][0] += gr ? gh : 0;
            stats[order - 1][1] += gr;
            stats[order - 1][2] += matches;
        }
    }
    work_free(&w);
    if (rc)
        return recur__error(RECUR_E_NOMEM, "recur_chrf_corpus: out of memory");
    /* CHRF._compute_f_score with eps_smoothing off. */
    const double factor = CHRF_BETA * CHRF_BETA;
    double avg_prec = 0.0, avg_rec = 0.0;
    int effective_order = 0;
    for (int k = 0; k < CHRF_ORDER; k++) {
        const size_t n_hyp = stats[k][0], n_ref = stats[k][1], n_match = stats[k][2];
        if (n_hyp > 0 && n_ref > 0) {
            avg_prec += (double)n_match / (double)n_hyp;
            avg_rec += (double)n_match / (double)n_ref;
            effective_order++;
        }
    }
    if (effective_order == 0)
        avg_prec = avg_rec = 0.0;
    else {
        avg_prec /= effective_order;
        avg_rec /= effective_order;
    }
    if (avg_prec + avg_rec != 0.0) {
        double f = (1.0 + factor) * avg_prec * avg_rec;
        f /= factor * avg_prec + avg_rec;
        *score = 100.0 * f;
    }
    return RECUR_OK;
}

/* ---- minimum Bayes risk ------------------------------------------------------------- */

int recur_mbr_utility_parse(const char *name, recur_mbr_utility *out)
{
    if (name && out && strcmp(name, "bleu") == 0)
        *out = RECUR_MBR_BLEU;
    else if (name && out && strcmp(name, "chrf") == 0)
        *out = RECUR_MBR_CHRF;
    else
        return recur__error(RECUR_E_INVALID, "MBR utility \"%s\": not bleu or chrf",
                            name ? name : "(null)");
    return RECUR_OK;
}

int recur_mbr_select(const char *const *cands, const double *log_prob, size_t n,
                     double temperature, recur_mbr_utility utility, size_t *best,
                     double *expected)
{
    if (best)
        *best = 0;
    if (expected)
        *expected = 0.0;
    if (!cands || !log_prob || !best)
        return recur__error(RECUR_E_INVALID, "recur_mbr_select: NULL argument");
    if (n == 0)
        return recur__error(RECUR_E_INVALID, "recur_mbr_select: no candidates (n == 0)");
    if (!(temperature > 0.0) || isinf(temperature))
        return recur__error(RECUR_E_INVALID, "recur_mbr_select: temperature %g is not a "
                            "positive finite number", temperature);
    if (utility != RECUR_MBR_BLEU && utility != RECUR_MBR_CHRF)
        return recur__error(RECUR_E_INVALID, "recur_mbr_select: unknown utility %d",
                            (int)utility);
    double top = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!cands[i])
            return recur__error(RECUR_E_INVALID, "recur_mbr_select: cands[%zu] is NULL", i);
        if (isnan(log_prob[i]) || log_prob[i] == INFINITY)
            return recur__error(RECUR_E_INVALID, "recur_mbr_select: log_prob[%zu] is %g", i,
                                log_prob[i]);
        if (log_prob[i] > top)
            top = log_prob[i];
    }
    if (top == -INFINITY)
        return recur__error(RECUR_E_INVALID, "recur_mbr_select: every log_prob is -inf");
    /* w_j = softmax(log_prob / temperature), then sum_j w_j u(c_i, c_j) */
    double *w = recur__malloc(n * sizeof *w), sum = 0.0;
    if (!w)
        return recur__error(RECUR_E_NOMEM, "recur_mbr_select: out of memory");
    for (size_t j = 0; j < n; j++)
        sum += w[j] = exp((log_prob[j] - top) / temperature);
    int rc = RECUR_OK;
    double best_gain = -1.0;
    for (size_t i = 0; i < n && rc == RECUR_OK; i++) {
        double gain = 0.0;
        for (size_t j = 0; j < n && rc == RECUR_OK; j++) {
            double u = 100.0;
            if (j != i && strcmp(cands[i], cands[j]) != 0)
                rc = utility == RECUR_MBR_BLEU ? recur_sentence_bleu(cands[i], cands[j], &u)
                                               : recur_chrf_corpus(&cands[i], &cands[j], 1, &u);
            gain += w[j] / sum * u;
        }
        if (rc == RECUR_OK && gain > best_gain) {
            best_gain = gain;
            *best = i;
        }
    }
    recur__free(w);
    if (rc)
        return rc;
    if (expected)
        *expected = best_gain;
    return RECUR_OK;
}
