/* test_memory.c - the translation memory (recur/memory.h): token similarity
 * on cases worked by hand, the match against a brute-force search over
 * random memories, augmentation, the JSON round trip and its errors, and
 * allocation failures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "failing_alloc.h"
#include "recur/memory.h"

#define TOL 1e-12

static void expect_similarity(const char *a, const char *b, double want)
{
    double s = -1;
    CHECK_OK(recur_memory_similarity(a, b, &s));
    CHECK_MSG(fabs(s - want) < TOL, "similarity(\"%s\", \"%s\") = %.15g, want %.15g", a, b, s,
              want);
    CHECK_OK(recur_memory_similarity(b, a, &s));
    CHECK_MSG(fabs(s - want) < TOL, "similarity(\"%s\", \"%s\") = %.15g, want %.15g", b, a, s,
              want);
}

static void test_similarity(void)
{
    /* [ich trinke keinen alkohol .] vs [ich trinke keinen wein .]: one substitution of 5 */
    expect_similarity("Ich trinke keinen Alkohol.", "Ich trinke keinen Wein.", 0.8);
    /* case folds, ASCII, Latin-1, Greek, Cyrillic; spacing does not count */
    expect_similarity("ÄPFEL und Birnen", "äpfel   UND\tbirnen", 1.0);
    expect_similarity("ΣΟΦΙΑ Москва ЁЖ", "σοφια москва ёж", 1.0);
    /* the accented Greek capitals Ά Έ Ή Ί Ό Ύ Ώ; Ϊ is U+03AA, in the plain block */
    expect_similarity("Άλφα Έλα Ήλιος Ίδιο Όχι Ύλη Ώρα Ϊ", "άλφα έλα ήλιος ίδιο όχι ύλη ώρα ϊ",
                      1.0);
    expect_similarity("Έλα", "ελα", 0.0);
    /* "a,b" is [a , b]; "a b" is [a b]: one deletion of max(3, 2) */
    expect_similarity("a,b", "a b", 1.0 - 1.0 / 3.0);
    /* punctuation is one token a character: "..." is 3, "!?" 2; 's is [' s] */
    expect_similarity("so...", "so.", 0.5);
    expect_similarity("it's", "it s", 1.0 - 1.0 / 3.0);
    /* a word runs through umlauts and ß; ’ and „ “ are punctuation */
    expect_similarity("„Straße“", "Straße", 1.0 / 3.0);
    expect_similarity("I’ve", "I ve", 1.0 - 1.0 / 3.0);
    /* × splits a word; the invalid byte is a token of its own */
    expect_similarity("2×3", "2 3", 1.0 - 1.0 / 3.0);
    expect_similarity("ab\xff" "cd", "ab cd", 1.0 - 1.0 / 3.0);
    /* nothing against nothing is equal; nothing against one token is 0 */
    expect_similarity("", "  ", 1.0);
    expect_similarity("", "x", 0.0);
    /* transposition is two edits: [a b c d] vs [b a c d] */
    expect_similarity("a b c d", "b a c d", 0.5);
    CHECK_STATUS(recur_memory_similarity(NULL, "a", &(double){0}), RECUR_E_INVALID);
}

static void test_match(void)
{
    const char *src[] = {"Ich trinke keinen Alkohol.", "Ich trinke gern Wein.",
                         "Er trinkt keinen Kaffee.", "Das Wetter ist schön.",
                         "ich trinke keinen Alkohol ."};
    const char *tgt[] = {"I don't drink alcohol.", "I like wine.", "He drinks no coffee.",
                         "The weather is nice.", "I never drink alcohol."};
    /* pair 4 has pair 0's words, spelt differently */
    recur_memory *m = NULL;
    CHECK_OK(recur_memory_new(src, tgt, 5, &m));
    CHECK(recur_memory_size(m) == 5);
    CHECK(strcmp(recur_memory_source(m, 2), src[2]) == 0);
    CHECK(strcmp(recur_memory_target(m, 4), tgt[4]) == 0);
    CHECK(recur_memory_source(m, 5) == NULL);
    size_t i = 99;
    double s = -1;
    /* [ich trinke keinen wein .] is one substitution from pairs 0, 1 and 4 (0.8).
     * Ranks: pair 0 (and 4) share ich trinke keinen . (df 3, 3, 3, 5), pair 1 ich
     * trinke wein . (3, 3, 1, 5): 1/log 2 for wein beats 1/log 4 for keinen, so pair 1
     * ranks first and wins the tie in similarity. */
    CHECK_OK(recur_memory_match(m, "Ich trinke keinen Wein.", &i, &s));
    CHECK(i == 1);
    CHECK(fabs(s - 0.8) < TOL);
    /* the sentence itself is never its match: its duplicate (pair 4) is */
    CHECK_OK(recur_memory_match(m, "Ich trinke keinen Alkohol.", &i, &s));
    CHECK(i == 4 && fabs(s - 1.0) < TOL);
    /* a different spelling of the same words is a match of similarity 1 */
    CHECK_OK(recur_memory_match(m, "das wetter IST schön .", &i, &s));
    CHECK(i == 3 && fabs(s - 1.0) < TOL);
    /* no shared word: none */
    CHECK_OK(recur_memory_match(m, "Guten Morgen!", &i, &s));
    CHECK(i == RECUR_MEMORY_NONE && s == 0.0);
    CHECK_OK(recur_memory_match(m, "", &i, &s));
    CHECK(i == RECUR_MEMORY_NONE);

    char *out = NULL;
    CHECK_OK(recur_memory_augment(m, "Er trinkt keinen Tee.", 0.5, 0, &out, &s));
    CHECK(out && strcmp(out, "Er trinkt keinen Tee. @@@ He drinks no coffee.") == 0);
    CHECK(fabs(s - 0.8) < TOL);
    recur_free(out);
    /* below the threshold: the source alone */
    CHECK_OK(recur_memory_augment(m, "Er trinkt keinen Tee.", 0.81, 0, &out, &s));
    CHECK(out && strcmp(out, "Er trinkt keinen Tee.") == 0 && s == 0.0);
    recur_free(out);
    /* 21 + 20 code points: a limit of 41 keeps the match, 40 does not */
    CHECK_OK(recur_memory_augment(m, "Er trinkt keinen Tee.", 0.5, 41, &out, NULL));
    CHECK(out && strstr(out, RECUR_MEMORY_SEPARATOR) != NULL);
    recur_free(out);
    CHECK_OK(recur_memory_augment(m, "Er trinkt keinen Tee.", 0.5, 40, &out, NULL));
    CHECK(out && strcmp(out, "Er trinkt keinen Tee.") == 0);
    recur_free(out);
    CHECK_STATUS(recur_memory_augment(m, "x", NAN, 0, &out, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("NaN");
    CHECK_STATUS(recur_memory_match(m, NULL, &i, &s), RECUR_E_INVALID);
    recur_memory_free(m);

    /* the empty memory matches nothing */
    CHECK_OK(recur_memory_new(NULL, NULL, 0, &m));
    CHECK_OK(recur_memory_match(m, "Ich trinke.", &i, &s));
    CHECK(i == RECUR_MEMORY_NONE);
    recur_memory_free(m);
    const char *bad[] = {"a", NULL};
    CHECK_STATUS(recur_memory_new(bad, bad, 2, &m), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("pair 1");
}

/* Words in more than RECUR_MEMORY_COMMON sources do not rank candidates: a
 * memory where every source holds "the" and one also holds "cat". */
static void test_common_words(void)
{
    enum { N = RECUR_MEMORY_COMMON + 1 };
    const char **src = malloc(N * sizeof *src), **tgt = malloc(N * sizeof *tgt);
    for (int i = 0; i < N; i++) {
        src[i] = i == 7 ? "the cat" : "the the the dog";
        tgt[i] = i == 7 ? "cat" : "dog";
    }
    recur_memory *m = NULL;
    CHECK_OK(recur_memory_new(src, tgt, N, &m));
    size_t i;
    double s;
    /* "the" alone is in N > COMMON sources: no candidate at all */
    CHECK_OK(recur_memory_match(m, "the", &i, &s));
    CHECK(i == RECUR_MEMORY_NONE);
    /* "the cat" is pair 7 itself */
    CHECK_OK(recur_memory_match(m, "the cat", &i, &s));
    CHECK(i == RECUR_MEMORY_NONE);
    CHECK_OK(recur_memory_match(m, "a cat", &i, &s));
    CHECK(i == 7 && fabs(s - 0.5) < TOL);
    recur_memory_free(m);
    free(src);
    free(tgt);
}

/* Only the RECUR_MEMORY_CANDIDATES best ranked are compared, ties in rank to
 * the lower index: 40 sources share only "x" with the query (equal rank);
 * sources 35..39 are more similar, but only 0..29 are compared. */
static void test_candidates(void)
{
    const char *src[40], *tgt[40];
    for (int i = 0; i < 40; i++) {
        src[i] = i < 35 ? "x q q q q" : "x c d";
        tgt[i] = i < 35 ? "far" : "near";
    }
    recur_memory *m = NULL;
    CHECK_OK(recur_memory_new(src, tgt, 40, &m));
    size_t i;
    double s;
    /* [x a b] vs [x q q q q]: 2 substitutions + 2 insertions of 5 */
    CHECK_OK(recur_memory_match(m, "x a b", &i, &s));
    CHECK(i == 0 && fabs(s - 0.2) < TOL);
    /* "c" ranks sources 35..39 first; the lower index wins the tie */
    CHECK_OK(recur_memory_match(m, "x c b", &i, &s));
    CHECK(i == 35 && fabs(s - 2.0 / 3.0) < TOL);
    recur_memory_free(m);
}

/* Random memories over a 6-word vocabulary, at most 30 pairs (so every
 * candidate is compared): the match's similarity is the best similarity of
 * any other source that shares a word, and the index holds it. */
static void test_brute_force(void)
{
    static const char *words[] = {"a", "b", "c", "d", "e", ","};
    unsigned seed = 12345;
    int bad = 0;
    for (int trial = 0; trial < 300; trial++) {
        char text[31][64];
        const char *src[30], *tgt[30];
        seed = seed * 1103515245u + 12345u;
        const int n = 1 + (int)((seed >> 16) % 30);
        for (int k = 0; k <= n; k++) {
            seed = seed * 1103515245u + 12345u;
            const int len = (int)((seed >> 16) % 6);
            text[k][0] = '\0';
            for (int w = 0; w < len; w++) {
                seed = seed * 1103515245u + 12345u;
                strcat(text[k], words[(seed >> 16) % 6]);
                strcat(text[k], w % 2 ? " " : "  ");
            }
            if (k < n) {
                src[k] = text[k];
                tgt[k] = "t";
            }
        }
        const char *query = text[n];
        recur_memory *m = NULL;
        CHECK_OK(recur_memory_new(src, tgt, (size_t)n, &m));
        size_t i;
        double s;
        CHECK_OK(recur_memory_match(m, query, &i, &s));
        double best = -1;
        for (int k = 0; k < n; k++) {
            if (strcmp(src[k], query) == 0)
                continue;
            int shares = 0;
            for (int w = 0; w < 6 && !shares; w++) {
                char qs[80], ks[80];
                snprintf(qs, sizeof qs, " %s ", query);
                snprintf(ks, sizeof ks, " %s ", src[k]);
                char pat[8];
                snprintf(pat, sizeof pat, " %s ", words[w]);
                shares = strstr(qs, pat) && strstr(ks, pat);
            }
            double sk;
            recur_memory_similarity(query, src[k], &sk);
            if (shares && sk > best)
                best = sk;
        }
        double si = -2;
        if (i != RECUR_MEMORY_NONE)
            recur_memory_similarity(query, src[i], &si);
        if (best < 0 ? i != RECUR_MEMORY_NONE : (fabs(s - best) > TOL || fabs(si - s) > TOL))
            bad++;
        recur_memory_free(m);
    }
    CHECK_MSG(bad == 0, "%d of 300 random memories matched other than the brute force", bad);
}

static void test_json(void)
{
    const char *src[] = {"Tschüss \"du\"\n", "\\x"}, *tgt[] = {"Bye ‘you’", ""};
    recur_memory *m = NULL, *back = NULL;
    char *json = NULL;
    CHECK_OK(recur_memory_new(src, tgt, 2, &m));
    CHECK_OK(recur_memory_to_json(m, &json));
    CHECK_OK(recur_memory_from_json(json, strlen(json), &back));
    CHECK(recur_memory_size(back) == 2);
    for (size_t i = 0; back && i < 2; i++)
        CHECK(strcmp(recur_memory_source(back, i), src[i]) == 0 &&
              strcmp(recur_memory_target(back, i), tgt[i]) == 0);
    recur_free(json);
    recur_memory_free(back);
    recur_memory_free(m);

    const struct {
        const char *json, *mentions;
    } cases[] = {
        {"{\"sources\": [\"a\"]", "line 1"},
        {"[]", "not an object"},
        {"{\"sources\": [\"a\"], \"targets\": [\"b\"], \"x\": 1}", "unexpected key \"x\""},
        {"{\"sources\": [\"a\"]}", "\"targets\" is missing"},
        {"{\"sources\": 1, \"targets\": []}", "\"sources\" is not an array"},
        {"{\"sources\": [\"a\"], \"targets\": []}", "1 sources but 0 targets"},
        {"{\"sources\": [\"a\", 2], \"targets\": [\"b\", \"c\"]}", "source 1 is not a string"},
        {"{\"sources\": [\"a\"], \"targets\": [null]}", "target 0 is not a string"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        back = (recur_memory *)1;
        CHECK_STATUS(recur_memory_from_json(cases[k].json, strlen(cases[k].json), &back),
                     RECUR_E_FORMAT);
        CHECK(back == NULL);
        CHECK_ERROR_MENTIONS(cases[k].mentions);
    }

    /* a memory may hold any bytes, JSON only UTF-8: the pair is named */
    const char *bad_src[] = {"gut", "Tschüss"}, *bad_tgt[] = {"good", "bye \xff"};
    CHECK_OK(recur_memory_new(bad_src, bad_tgt, 2, &m));
    json = (char *)1;
    CHECK_STATUS(recur_memory_to_json(m, &json), RECUR_E_INVALID);
    CHECK(json == NULL);
    CHECK_ERROR_MENTIONS("the target of pair 1 is not valid UTF-8");
    recur_memory_free(m);
}

/* Each call with the k-th allocation failing, for every k until it
 * succeeds: RECUR_E_NOMEM or the right answer, no leak (sanitizer build). */
static void test_out_of_memory(void)
{
    const char *src[] = {"Ich trinke keinen Alkohol.", "Er trinkt Tee."};
    const char *tgt[] = {"I don't drink alcohol.", "He drinks tea."};
    int other = 0, ok[3] = {0, 0, 0};
    for (long k = 0; k < 1000 && !(ok[0] && ok[1] && ok[2]); k++) {
        recur_memory *m = NULL, *back = NULL;
        char *out = NULL, *json = NULL;
        alloc_budget = k;
        recur_set_allocator(&failing_allocator);
        int rc[3] = {recur_memory_new(src, tgt, 2, &m), RECUR_E_NOMEM, RECUR_E_NOMEM};
        if (rc[0] == RECUR_OK) {
            rc[1] = recur_memory_augment(m, "Ich trinke keinen Tee.", 0.5, 0, &out, NULL);
            rc[2] = recur_memory_to_json(m, &json);
            if (rc[2] == RECUR_OK)
                rc[2] = recur_memory_from_json(json, strlen(json), &back);
        }
        recur_set_allocator(NULL);
        if (rc[1] == RECUR_OK)
            CHECK(strcmp(out, "Ich trinke keinen Tee. @@@ I don't drink alcohol.") == 0);
        for (int i = 0; i < 3; i++) {
            other += rc[i] != RECUR_OK && rc[i] != RECUR_E_NOMEM;
            ok[i] |= rc[i] == RECUR_OK;
        }
        recur_free(out);
        recur_free(json);
        recur_memory_free(back);
        recur_memory_free(m);
    }
    CHECK(ok[0] && ok[1] && ok[2]);
    CHECK(other == 0);
}

int main(void)
{
    test_similarity();
    test_match();
    test_common_words();
    test_candidates();
    test_brute_force();
    test_json();
    test_out_of_memory();
    CHECK_DONE();
}
