/* test_mt_metrics.c - the 13a tokenizer, corpus BLEU and corpus chrF
 * (recur/mt_metrics.h) on cases worked by hand from sacreBLEU 2.x's
 * definitions; each case's comment derives the expected value (tokens,
 * n-gram counts, precisions, brevity penalty). sacreBLEU itself is not
 * needed: the numbers follow from its formulas. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "failing_alloc.h"
#include "recur/mt_metrics.h"

#define TOL 1e-9

static void expect_tokens(const char *text, const char *want)
{
    char *got = NULL;
    CHECK_OK(recur_tokenize_13a(text, &got));
    CHECK_MSG(got && strcmp(got, want) == 0, "13a(\"%s\") = \"%s\", want \"%s\"", text,
              got ? got : "(null)", want);
    recur_free(got);
}

static void test_tokenize_13a(void)
{
    /* Symbols get spaces around them (rule 1: { | } ~ [ \ ] ^ _ ` space ! " # $
     * % & ( ) * + : ; < = > ? @ /); the apostrophe, '-', '.', ',' do not. */
    expect_tokens("Hello, world!", "Hello , world !");
    expect_tokens("(ok)", "( ok )");
    expect_tokens("[x]{y}|z~", "[ x ] { y } | z ~");
    expect_tokens("a/b\\c", "a / b \\ c");
    expect_tokens("don't", "don't");
    expect_tokens("\xf0\x9f\x98\x80!", "\xf0\x9f\x98\x80 !"); /* an emoji, then '!' */
    /* Rule 2 splits '.' and ',' after a non-digit, rule 3 before one:
     * inside numbers they stay. */
    expect_tokens("1,000.5 dollars", "1,000.5 dollars");
    expect_tokens("3.14, x", "3.14 , x");       /* ',' after '4' kept by rule 2, split by rule 3 */
    expect_tokens("It costs 5.", "It costs 5 ."); /* '.' before the padding space: rule 3 */
    expect_tokens("a.b", "a . b");
    expect_tokens("v.2", "v . 2");              /* rule 2 runs first: 'v' is no digit */
    expect_tokens("U.S.A.", "U . S . A .");
    expect_tokens("e.g. 5,5", "e . g . 5,5");
    /* " x.. ": rule 2 matches "x." and resumes after it, so the second '.'
     * (preceded by '.') only splits through rule 3. */
    expect_tokens("x..", "x . .");
    expect_tokens("Gr\xc3\xb6\xc3\x9f" "e: 1.000,50 \xe2\x82\xac.",
                  "Gr\xc3\xb6\xc3\x9f" "e : 1.000,50 \xe2\x82\xac .");
    /* Rule 4: a dash after a digit; other dashes stay in their word. */
    expect_tokens("1990-2000 well-known", "1990 - 2000 well-known");
    expect_tokens("a-b 3-b -4", "a-b 3 - b -4");
    expect_tokens("$5-6", "$ 5 - 6");
    expect_tokens("10,-", "10 , -");
    /* Unescaping (&quot; first, so "&amp;quot;" becomes "&quot;" and stays),
     * <skipped> removed, "-\n" joins, other newlines become spaces. */
    expect_tokens("&quot;Quoted&quot; &amp; &lt;tag&gt;", "\" Quoted \" & < tag >");
    expect_tokens("&amp;quot;", "& quot ;");
    expect_tokens("<skipped>text", "text");
    expect_tokens("hyphen-\nated", "hyphenated");
    expect_tokens("line\nbreak", "line break");
    /* Python's str.split(): any run of Unicode whitespace separates, here
     * tab, no-break space U+00A0, ideographic space U+3000, thin space
     * U+2009; no space at either end. */
    expect_tokens("  lots   of\tspace  ", "lots of space");
    expect_tokens("a\xc2\xa0" "b\xe3\x80\x80" "c x\xe2\x80\x89y", "a b c x y");
    expect_tokens("", "");

    char *out = NULL;
    CHECK_STATUS(recur_tokenize_13a(NULL, &out), RECUR_E_INVALID);
    CHECK_STATUS(recur_tokenize_13a("x", NULL), RECUR_E_INVALID);
}

/* BLEU of one corpus with every field checked. */
static void expect_bleu(const char *const *hyps, const char *const *refs, size_t n, double score,
                        double bp, size_t hyp_len, size_t ref_len, const size_t matches[4],
                        const size_t totals[4], const double precision[4])
{
    recur_bleu b;
    CHECK_OK(recur_bleu_corpus(hyps, refs, n, &b));
    CHECK_NEAR(b.score, score, TOL);
    CHECK_NEAR(b.bp, bp, TOL);
    CHECK(b.hyp_len == hyp_len && b.ref_len == ref_len);
    for (int k = 0; k < 4; k++) {
        CHECK_MSG(b.matches[k] == matches[k] && b.totals[k] == totals[k],
                  "order %d: %zu/%zu, want %zu/%zu", k + 1, b.matches[k], b.totals[k], matches[k],
                  totals[k]);
        CHECK_NEAR(b.precision[k], precision[k], TOL);
    }
}

static void test_bleu(void)
{
    /* Identical 6-token sentences: 6/6, 5/5, 4/4, 3/3 n-grams match, every
     * precision 100, bp 1: BLEU = exp(mean log 100) = 100. */
    const char *h1[] = {"the cat sat on the mat"};
    expect_bleu(h1, h1, 1, 100.0, 1.0, 6, 6, (const size_t[]){6, 5, 4, 3},
                (const size_t[]){6, 5, 4, 3}, (const double[]){100, 100, 100, 100});

    /* Brevity penalty: hyp "the cat sat on" (4 tokens) of the 6-token ref;
     * every n-gram of the hyp matches (4/4, 3/3, 2/2, 1/1), so BLEU = bp =
     * 100 * exp(1 - 6/4) = 100 * exp(-0.5) = 60.653065971263345. */
    const char *h2[] = {"the cat sat on"}, *r2[] = {"the cat sat on the mat"};
    expect_bleu(h2, r2, 1, 100.0 * exp(-0.5), exp(-0.5), 4, 6, (const size_t[]){4, 3, 2, 1},
                (const size_t[]){4, 3, 2, 1}, (const double[]){100, 100, 100, 100});

    /* A zero precision, smoothed as sacreBLEU's default "exp" does:
     *   hyp: the cat on the mat is      ref: the cat is on the mat
     *   1-grams: all 6 match (the x2, cat, on, mat, is):          6/6 = 100
     *   2-grams: the cat, on the, the mat (not cat on, mat is):   3/5 = 60
     *   3-grams: on the mat (not the cat on, cat on the, the mat is): 1/4 = 25
     *   4-grams: none of the 3 match: the first zero order gets
     *            100 / (2^1 * 3) = 16.666666666666668
     *   bp = 1 (equal lengths); BLEU = (100 * 60 * 25 * 100/6)^(1/4)
     *   = 2500000^(1/4) = 39.76353643835253. */
    const char *h3[] = {"the cat on the mat is"}, *r3[] = {"the cat is on the mat"};
    expect_bleu(h3, r3, 1, pow(2500000.0, 0.25), 1.0, 6, 6, (const size_t[]){6, 3, 1, 0},
                (const size_t[]){6, 5, 4, 3}, (const double[]){100, 60, 25, 100.0 / 6.0});

    /* Clipping and successive zero orders:
     *   hyp: the the the the            ref: the cat
     *   1-grams: "the" x4, the ref holds it once: clipped 1/4 = 25
     *   2-grams "the the" x3: 0/3 -> 100 / (2 * 3) = 16.666666666666668
     *   3-grams 0/2 -> 100 / (4 * 2) = 12.5; 4-grams 0/1 -> 100 / (8 * 1) = 12.5
     *   bp = 1 (4 >= 2); BLEU = (25 * 100/6 * 12.5 * 12.5)^(1/4) = 15.97357760615681. */
    const char *h4[] = {"the the the the"}, *r4[] = {"the cat"};
    expect_bleu(h4, r4, 1, pow(25.0 * (100.0 / 6.0) * 12.5 * 12.5, 0.25), 1.0, 4, 2,
                (const size_t[]){1, 0, 0, 0}, (const size_t[]){4, 3, 2, 1},
                (const double[]){25, 100.0 / 6.0, 12.5, 12.5});

    /* 13a tokenization decides the counts:
     *   hyp "Hello , world !" (4 tokens), ref "Hello world !" (3)
     *   1-grams: Hello, world, ! match, "," does not:         3/4 = 75
     *   2-grams: "world !" of (Hello ,)(, world)(world !):    1/3 = 33.33
     *   3-grams 0/2 -> 100 / (2 * 2) = 25; 4-grams 0/1 -> 100 / (4 * 1) = 25
     *   bp = 1; BLEU = (75 * 100/3 * 25 * 25)^(1/4) = 1562500^(1/4)
     *   = 35.35533905932737. */
    const char *h5[] = {"Hello, world!"}, *r5[] = {"Hello world!"};
    expect_bleu(h5, r5, 1, pow(1562500.0, 0.25), 1.0, 4, 3, (const size_t[]){3, 1, 0, 0},
                (const size_t[]){4, 3, 2, 1}, (const double[]){75, 100.0 / 3.0, 25, 25});

    /* Numbers and dashes:
     *   hyp "It is 1,000.5 km - or 2-3 days."
     *       -> It is 1,000.5 km - or 2 - 3 days .           (11 tokens)
     *   ref "It is 1,000.5 km, or 2-3 days."
     *       -> It is 1,000.5 km , or 2 - 3 days .           (11 tokens)
     *   1-grams: all but the second "-" (the ref has one):   10/11
     *   2-grams: all but "km -" and "- or":                  8/10
     *   3-grams: all but "1,000.5 km -", "km - or", "- or 2": 6/9
     *   4-grams: It is 1,000.5 km / or 2 - 3 / 2 - 3 days / - 3 days . : 4/8
     *   bp = 1; BLEU = (100*10/11 * 80 * 200/3 * 50)^(1/4) = 70.16879391277372. */
    const char *h6[] = {"It is 1,000.5 km - or 2-3 days."};
    const char *r6[] = {"It is 1,000.5 km, or 2-3 days."};
    expect_bleu(h6, r6, 1, pow(1000.0 / 11.0 * 80.0 * 200.0 / 3.0 * 50.0, 0.25), 1.0, 11, 11,
                (const size_t[]){10, 8, 6, 4}, (const size_t[]){11, 10, 9, 8},
                (const double[]){1000.0 / 11.0, 80, 200.0 / 3.0, 50});

    /* A corpus is not the mean of its sentences:
     *   sentence 1: identical 6 tokens: 6/6 5/5 4/4 3/3, alone BLEU 100
     *   sentence 2: hyp "a dog", ref "a dog barked loudly at night" (6):
     *     1-grams 2/2, 2-grams 1/1, no 3-grams: alone BLEU 0
     *   mean of the two: 50. Corpus: counts summed 8/8 6/6 4/4 3/3 (all 100),
     *   lengths 8 vs 12: bp = exp(1 - 12/8) = exp(-0.5); BLEU = 60.653065971263345. */
    const char *h7[] = {"the cat sat on the mat", "a dog"};
    const char *r7[] = {"the cat sat on the mat", "a dog barked loudly at night"};
    expect_bleu(h7, r7, 2, 100.0 * exp(-0.5), exp(-0.5), 8, 12, (const size_t[]){8, 6, 4, 3},
                (const size_t[]){8, 6, 4, 3}, (const double[]){100, 100, 100, 100});
    recur_bleu s1, s2;
    CHECK_OK(recur_bleu_corpus(h7, r7, 1, &s1));
    CHECK_OK(recur_bleu_corpus(h7 + 1, r7 + 1, 1, &s2));
    CHECK_NEAR(s1.score, 100.0, TOL);
    CHECK_NEAR(s2.score, 0.0, 0.0);
    CHECK_NEAR(0.5 * (s1.score + s2.score), 50.0, TOL);

    /* No n-grams of some order at all (hyp of 2 tokens): precision 0 for
     * orders 3 and 4, log 0 taken as -9999999999, BLEU 0; the brevity penalty
     * is still reported: exp(1 - 3/2). */
    const char *h8[] = {"the cat"}, *r8[] = {"the cat sat"};
    expect_bleu(h8, r8, 1, 0.0, exp(-0.5), 2, 3, (const size_t[]){2, 1, 0, 0},
                (const size_t[]){2, 1, 0, 0}, (const double[]){100, 100, 0, 0});

    /* No match of any order: BLEU 0 and all precisions 0 (no smoothing). */
    const char *h9[] = {"foo"}, *r9[] = {"bar"};
    expect_bleu(h9, r9, 1, 0.0, 1.0, 1, 1, (const size_t[]){0, 0, 0, 0},
                (const size_t[]){1, 0, 0, 0}, (const double[]){0, 0, 0, 0});

    /* Lines are rstrip()ed before 13a: "word-\n" becomes "word-", which
     * matches the ref (1/1); without the rstrip "-\n" would be removed,
     * giving "word". No 2-grams: BLEU 0. */
    const char *h10[] = {"word-\n"}, *r10[] = {"word-"};
    expect_bleu(h10, r10, 1, 0.0, 1.0, 1, 1, (const size_t[]){1, 0, 0, 0},
                (const size_t[]){1, 0, 0, 0}, (const double[]){100, 0, 0, 0});
    /* An empty hypothesis: hyp_len 0 < ref_len 1 gives bp 0. With one more
     * sentence of 1 token vs 1: bp = exp(1 - 2/1) = exp(-1). */
    const char *h11[] = {"", "x"}, *r11[] = {"more", "x"};
    expect_bleu(h11, r11, 1, 0.0, 0.0, 0, 1, (const size_t[]){0, 0, 0, 0},
                (const size_t[]){0, 0, 0, 0}, (const double[]){0, 0, 0, 0});
    expect_bleu(h11, r11, 2, 0.0, exp(-1.0), 1, 2, (const size_t[]){1, 0, 0, 0},
                (const size_t[]){1, 0, 0, 0}, (const double[]){100, 0, 0, 0});

    /* Errors. */
    recur_bleu b;
    const char *with_null[] = {"a", NULL};
    CHECK_STATUS(recur_bleu_corpus(h1, h1, 0, &b), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("n == 0");
    CHECK_STATUS(recur_bleu_corpus(with_null, r7, 2, &b), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("hyps[1] is NULL");
    CHECK_STATUS(recur_bleu_corpus(h7, with_null, 2, &b), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("refs[1] is NULL");
    CHECK_STATUS(recur_bleu_corpus(NULL, h1, 1, &b), RECUR_E_INVALID);
    CHECK_STATUS(recur_bleu_corpus(h1, h1, 1, NULL), RECUR_E_INVALID);
}

static void expect_chrf(const char *const *hyps, const char *const *refs, size_t n, double want)
{
    double score = -1;
    CHECK_OK(recur_chrf_corpus(hyps, refs, n, &score));
    CHECK_NEAR(score, want, TOL);
}

static void test_chrf(void)
{
    /* chrF = 100 * (1 + b^2) P R / (b^2 P + R), b = 2, with P and R the
     * means over the orders n = 1..6 where both the hypothesis and the
     * reference have n-grams. */

    /* Identical "abc": orders 1-3 match fully (P = R = 1), orders 4-6 have
     * no n-grams and are left out: 100 * 5 / 5 = 100. */
    const char *a[] = {"abc"}, *x[] = {"xyz"};
    expect_chrf(a, a, 1, 100.0);
    /* Disjoint: orders 1-3 have n-grams but no match, P = R = 0: 0. */
    expect_chrf(a, x, 1, 0.0);

    /* hyp "abcd", ref "abc":
     *   n=1: hyp a b c d (4), ref a b c (3), 3 match: P 3/4, R 1
     *   n=2: ab bc cd (3) vs ab bc (2), 2 match:        P 2/3, R 1
     *   n=3: abc bcd (2) vs abc (1), 1 match:           P 1/2, R 1
     *   n=4: the ref has none: the hyp's "abcd" is not counted either
     *   P = (3/4 + 2/3 + 1/2) / 3 = 23/36, R = 1
     *   chrF = 100 * 5 (23/36) / (4 (23/36) + 1) = 100 * 115/128 = 89.84375. */
    const char *h1[] = {"abcd"};
    expect_chrf(h1, a, 1, 89.84375);

    /* Whitespace is removed before counting: "ab c" is "abc"; vs "abd":
     *   n=1: 2 of 3 match (P = R = 2/3); n=2: ab of (ab bc)/(ab bd): 1/2;
     *   n=3: abc vs abd: 0. P = R = (2/3 + 1/2 + 0)/3 = 7/18; chrF = 100 P
     *   = 38.888888888888886. Any Unicode whitespace goes (U+3000, U+00A0). */
    const char *h2[] = {"ab c"}, *r2[] = {"abd"};
    expect_chrf(h2, r2, 1, 700.0 / 18.0);
    const char *h3[] = {"a b", "a\xe3\x80\x80" "b\xc2\xa0" "c"}, *r3[] = {"ab", "abc"};
    expect_chrf(h3, r3, 2, 100.0);

    /* Characters are code points, not bytes: "éa" vs "ea": n=1 one of two
     * match (P = R = 1/2), n=2 "éa" vs "ea" none: P = R = 1/4, chrF 25. */
    const char *h4[] = {"\xc3\xa9" "a"}, *r4[] = {"ea"};
    expect_chrf(h4, r4, 1, 25.0);

    /* Corpus statistics are summed per order before P and R:
     *   sentence 1 hyp "abcd" ref "abc": [hyp, ref, match] per order
     *     n=1 [4,3,3] n=2 [3,2,2] n=3 [2,1,1] n=4 [0 (no ref 4-gram),0,0]
     *   sentence 2 hyp "xy" ref "xyzw":
     *     n=1 [2,4,2] n=2 [1,3,1] n=3 [0,2,0] n=4 [0,1,0]
     *   sums: n=1 [6,7,5] n=2 [4,5,3] n=3 [2,3,1] n=4 [0,1,0] (left out)
     *   P = (5/6 + 3/4 + 1/2)/3 = 25/36, R = (5/7 + 3/5 + 1/3)/3 = 173/315
     *   chrF = 100 * 5 P R / (4 P + R) = 57.3181721798134. */
    const char *h5[] = {"abcd", "xy"}, *r5[] = {"abc", "xyzw"};
    const double P = 25.0 / 36.0, R = 173.0 / 315.0;
    expect_chrf(h5, r5, 2, 100.0 * 5.0 * P * R / (4.0 * P + R));

    /* A hypothesis's n-grams count only where its reference has n-grams of
     * that order: hyp "abc" ref "a", and "xy" vs "xy":
     *   n=1 [3,1,1] + [2,2,2] = [5,3,3]; n=2 [0 (not 2),0,0] + [1,1,1] = [1,1,1]
     *   P = (3/5 + 1)/2 = 0.8, R = (1 + 1)/2 = 1
     *   chrF = 100 * 5 * 0.8 / (3.2 + 1) = 95.23809523809524
     *   (counting the 2 bigrams of "abc" would give P2 = 1/3 and 81.4). */
    const char *h6[] = {"abc", "xy"}, *r6[] = {"a", "xy"};
    expect_chrf(h6, r6, 2, 100.0 * 4.0 / 4.2);

    /* Empty lines: nothing to compare, 0. */
    const char *empty[] = {""};
    expect_chrf(empty, a, 1, 0.0);
    expect_chrf(a, empty, 1, 0.0);

    /* Errors. */
    double score;
    const char *with_null[] = {"a", NULL};
    CHECK_STATUS(recur_chrf_corpus(a, a, 0, &score), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("n == 0");
    CHECK_STATUS(recur_chrf_corpus(with_null, h5, 2, &score), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("hyps[1] is NULL");
    CHECK_STATUS(recur_chrf_corpus(h5, with_null, 2, &score), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("refs[1] is NULL");
    CHECK_STATUS(recur_chrf_corpus(a, a, 1, NULL), RECUR_E_INVALID);
}

/* Sentence BLEU (sacreBLEU's sentence_bleu: effective order), by hand. */
static void test_sentence_bleu(void)
{
    double s = -1.0;
    /* 5/6, 3/5, 1/4, 0/3 -> exp smoothing 100 / (2 * 3): (5/6 3/5 1/4 1/6)^(1/4) */
    CHECK_OK(recur_sentence_bleu("the cat sat on the mat", "the cat is on the mat", &s));
    CHECK_NEAR(s, 100.0 * pow(5.0 / 6 * 3.0 / 5 * 1.0 / 4 * 1.0 / 6, 0.25), TOL);
    /* three tokens: 2/3, 1/2, 0/1 -> 1/2; no 4-grams, so the mean runs over three
     * orders (corpus BLEU of the pair is 0) */
    CHECK_OK(recur_sentence_bleu("a b c", "a b d", &s));
    CHECK_NEAR(s, 100.0 * pow(2.0 / 3 * 1.0 / 2 * 1.0 / 2, 1.0 / 3), TOL);
    const char *h[] = {"a b c"}, *r[] = {"a b d"};
    recur_bleu b;
    CHECK_OK(recur_bleu_corpus(h, r, 1, &b));
    CHECK_NEAR(b.score, 0.0, TOL);
    /* two matching tokens of a six-token reference: precisions 100, bp e^(1 - 6/2) */
    CHECK_OK(recur_sentence_bleu("the cat", "the cat sat on the mat", &s));
    CHECK_NEAR(s, 100.0 * exp(1.0 - 3.0), TOL);
    CHECK_OK(recur_sentence_bleu("Hello there", "Hello there", &s));
    CHECK_NEAR(s, 100.0, TOL);
    CHECK_OK(recur_sentence_bleu("x y", "a b", &s)); /* nothing matches */
    CHECK_NEAR(s, 0.0, TOL);
    CHECK_OK(recur_sentence_bleu("", "a b", &s));
    CHECK_NEAR(s, 0.0, TOL);
    CHECK_STATUS(recur_sentence_bleu(NULL, "a", &s), RECUR_E_INVALID);
    CHECK_STATUS(recur_sentence_bleu("a", "a", NULL), RECUR_E_INVALID);
}

/* Minimum Bayes risk selection: hand-computed expected utilities. */
static void test_mbr(void)
{
    /* the likeliest candidate (0) shares nothing with the other two, which
     * agree: u(1, 2) = u(2, 1) = (3/4 2/3 1/2 1/2)^(1/4) */
    const char *c[] = {"x y z w", "a b c d", "a b c e"};
    const double lp[] = {-1.0, -1.2, -1.2};
    const double u12 = 100.0 * pow(3.0 / 4 * 2.0 / 3 * 1.0 / 2 * 1.0 / 2, 0.25);
    const double z = exp(-1.0) + 2 * exp(-1.2);
    size_t best = 9;
    double gain = -1.0, u = -1.0;
    CHECK_OK(recur_sentence_bleu(c[1], c[2], &u));
    CHECK_NEAR(u, u12, TOL);
    CHECK_OK(recur_mbr_select(c, lp, 3, 1.0, RECUR_MBR_BLEU, &best, &gain));
    CHECK(best == 1); /* 1 and 2 tie: the lower index */
    CHECK_NEAR(gain, (100.0 * exp(-1.2) + u12 * exp(-1.2)) / z, 1e-9);
    /* a low temperature concentrates the weight on the likeliest */
    CHECK_OK(recur_mbr_select(c, lp, 3, 0.05, RECUR_MBR_BLEU, &best, &gain));
    CHECK(best == 0);
    /* one candidate: itself, utility 100 */
    CHECK_OK(recur_mbr_select(c, lp, 1, 1.0, RECUR_MBR_BLEU, &best, &gain));
    CHECK(best == 0);
    CHECK_NEAR(gain, 100.0, 1e-9);
    /* chrF: the same choice, the gain from recur_chrf_corpus */
    double f12 = 0.0;
    CHECK_OK(recur_chrf_corpus(&c[1], &c[2], 1, &f12));
    CHECK_OK(recur_mbr_select(c, lp, 3, 1.0, RECUR_MBR_CHRF, &best, &gain));
    CHECK(best == 1);
    CHECK_NEAR(gain, (100.0 * exp(-1.2) + f12 * exp(-1.2)) / z, 1e-9);
    /* the same text twice adds up: 0 and 2 (weight 2 e^-1.5) beat 1 (e^-1) */
    const char *d[] = {"a b c d", "x y z w", "a b c d"};
    const double dl[] = {-1.5, -1.0, -1.5};
    CHECK_OK(recur_mbr_select(d, dl, 3, 1.0, RECUR_MBR_BLEU, &best, &gain));
    CHECK(best == 0);
    CHECK_NEAR(gain, 200.0 * exp(-1.5) / (2 * exp(-1.5) + exp(-1.0)), 1e-9);
    /* -inf is a candidate of weight 0 */
    const double inf_lp[] = {-INFINITY, -1.0, -1.0};
    CHECK_OK(recur_mbr_select(c, inf_lp, 3, 1.0, RECUR_MBR_BLEU, &best, &gain));
    CHECK(best == 1);
    /* refused */
    const char *with_null[] = {"a", NULL};
    const double nan_lp[] = {-1.0, NAN}, all_inf[] = {-INFINITY, -INFINITY};
    CHECK_STATUS(recur_mbr_select(c, lp, 0, 1.0, RECUR_MBR_BLEU, &best, NULL), RECUR_E_INVALID);
    CHECK_STATUS(recur_mbr_select(with_null, lp, 2, 1.0, RECUR_MBR_BLEU, &best, NULL),
                 RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("cands[1]");
    CHECK_STATUS(recur_mbr_select(c, nan_lp, 2, 1.0, RECUR_MBR_BLEU, &best, NULL),
                 RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("log_prob[1]");
    CHECK_STATUS(recur_mbr_select(c, all_inf, 2, 1.0, RECUR_MBR_BLEU, &best, NULL),
                 RECUR_E_INVALID);
    CHECK_STATUS(recur_mbr_select(c, lp, 3, 0.0, RECUR_MBR_BLEU, &best, NULL), RECUR_E_INVALID);
    CHECK_STATUS(recur_mbr_select(c, lp, 3, INFINITY, RECUR_MBR_BLEU, &best, NULL),
                 RECUR_E_INVALID);
    CHECK_STATUS(recur_mbr_select(c, lp, 3, 1.0, (recur_mbr_utility)7, &best, NULL),
                 RECUR_E_INVALID);
    CHECK_STATUS(recur_mbr_select(c, lp, 3, 1.0, RECUR_MBR_BLEU, NULL, NULL), RECUR_E_INVALID);
    recur_mbr_utility ut = RECUR_MBR_BLEU;
    CHECK_OK(recur_mbr_utility_parse("chrf", &ut));
    CHECK(ut == RECUR_MBR_CHRF);
    CHECK_OK(recur_mbr_utility_parse("bleu", &ut));
    CHECK(ut == RECUR_MBR_BLEU);
    CHECK_STATUS(recur_mbr_utility_parse("ter", &ut), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("ter");
}

/* Each call with the k-th allocation failing, for every k until it
 * succeeds: RECUR_E_NOMEM or the right answer, no leak (sanitizer build). */
static void test_out_of_memory(void)
{
    const char *h[] = {"It is 1,000.5 km - or 2-3 days.", "the cat"};
    const char *r[] = {"It is 1,000.5 km, or 2-3 days.", "the cat sat"};
    const double lp[2] = {-1.0, -2.0};
    int other = 0, ok[4] = {0, 0, 0, 0};
    for (long k = 0; k < 1000 && !(ok[0] && ok[1] && ok[2] && ok[3]); k++) {
        recur_bleu b;
        double chrf = 0;
        char *t = NULL;
        size_t best = 0;
        alloc_budget = k;
        recur_set_allocator(&failing_allocator);
        int rc[4] = {recur_bleu_corpus(h, r, 2, &b), recur_chrf_corpus(h, r, 2, &chrf),
                     recur_tokenize_13a(h[0], &t),
                     recur_mbr_select(h, lp, 2, 1.0, RECUR_MBR_BLEU, &best, NULL)};
        recur_free(t);
        recur_set_allocator(NULL);
        for (int i = 0; i < 4; i++) {
            other += rc[i] != RECUR_OK && rc[i] != RECUR_E_NOMEM;
            ok[i] |= rc[i] == RECUR_OK;
        }
    }
    CHECK(ok[0] && ok[1] && ok[2] && ok[3]);
    CHECK(other == 0);
}

int main(void)
{
    test_tokenize_13a();
    test_bleu();
    test_chrf();
    test_sentence_bleu();
    test_mbr();
    test_out_of_memory();
    CHECK_DONE();
}
