/* test_bpe.c - the byte-level BPE (recur/bpe.h): merges learned on small
 * hand-worked texts, tie-breaking, the vocabulary-size limit, the fast
 * incremental learner against a plain recount-everything learner written
 * here, encoding as learning segmented, round trips on random byte strings
 * and random UTF-8, decoding errors and U+FFFD, and the JSON form with its
 * malformed cases; BPE-dropout. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "failing_alloc.h"
#include "recur/bpe.h"
#include "recur/data.h"

#define B(c) (RECUR_BPE_FIRST_BYTE + (unsigned char)(c)) /* id of the byte c */

/* A small German/English text, as a translation corpus would hold it. */
static const char *const corpus[] = {
    "Ich habe am ursprünglichen Entwurf ein paar Änderungen vorgenommen.",
    "I've made one or two modifications to the original design.",
    "Es gibt sie in den unterschiedlichsten Varianten.",
    "They come in all shapes and sizes.",
    "Der Zug fährt um 10:45 Uhr ab, nicht um 11:00 Uhr.",
    "The train leaves at 10:45, not at 11:00.",
    "Wir müssen die Straße überqueren, bevor es dunkel wird.",
    "We have to cross the street before it gets dark.",
    "Das Wetter ist heute schön; morgen soll es regnen.",
    "The weather is nice today; tomorrow it is supposed to rain.",
    "Können Sie mir bitte sagen, wo der Bahnhof ist?",
    "Could you please tell me where the station is?",
    "Die Kinder spielen im Garten und die Eltern trinken Kaffee.",
    "The children play in the garden and the parents drink coffee.",
    "Er hat 1.000,50 Euro für das Fahrrad bezahlt.",
    "He paid 1,000.50 euros for the bicycle.",
    "Größe, Höhe und Gewicht werden in Metern und Kilogramm gemessen.",
    "Size, height and weight are measured in metres and kilograms.",
    "\"Ja\", sagte sie, \"das ist mir recht.\"",
    "\"Yes,\" she said, \"that suits me.\"",
};
enum { CORPUS_N = sizeof corpus / sizeof *corpus };

/* ---- helpers ---------------------------------------------------------------------- */

static recur_bpe *learn_texts(const char *const *texts, size_t n, int vocab)
{
    recur_bpe *bpe = NULL;
    CHECK_OK(recur_bpe_learn(texts, NULL, n, vocab, &bpe));
    return bpe;
}

/* The merges of bpe as pairs: merges[i] = {first, second} from the token
 * bytes; checked through the JSON form, which lists them. */
static int merges_equal(const recur_bpe *bpe, const int32_t (*want)[2], int count)
{
    char *json = NULL;
    if (recur_bpe_to_json(bpe, &json) != RECUR_OK)
        return 0;
    static char expect[1 << 16];
    size_t at = (size_t)snprintf(expect, sizeof expect, "{\"format\":1,\"merges\":[");
    for (int i = 0; i < count; i++)
        at += (size_t)snprintf(expect + at, sizeof expect - at, "%s[%d,%d]", i ? "," : "",
                               (int)want[i][0], (int)want[i][1]);
    snprintf(expect + at, sizeof expect - at, "]}");
    const int same = strcmp(json, expect) == 0 && recur_bpe_size(bpe) == RECUR_BPE_BASE + count;
    if (!same)
        fprintf(stderr, "  merges: got %s\n          want %s\n", json, expect);
    recur_free(json);
    return same;
}

static int encodes_to(const recur_bpe *bpe, const char *text, const int32_t *want, size_t count)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (recur_bpe_encode(bpe, text, strlen(text), &ids, &n) != RECUR_OK)
        return 0;
    int same = n == count && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!same) {
        fprintf(stderr, "  encode(\"%s\") =", text);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %d", (int)ids[i]);
        fprintf(stderr, "\n");
    }
    recur_free(ids);
    return same;
}

/* ---- learning on hand-worked texts -------------------------------------------------- */

static void test_learn_tiny(void)
{
    /* "aaa aa a" -> pieces "aaa", " aa", " a" (a space joins what follows).
     * Pairs (every position counts): a a: 2 in "aaa" + 1 in " aa" = 3;
     * ' ' a: 1 + 1 = 2. Merge 0 = [a, a] -> 259. Then "aaa" = [259, a],
     * " aa" = [' ', 259], " a" = [' ', a]: every pair occurs once, stop. */
    const char *t1[] = {"aaa aa a"};
    recur_bpe *bpe = learn_texts(t1, 1, 1000);
    const int32_t m1[][2] = {{B('a'), B('a')}};
    CHECK(merges_equal(bpe, m1, 1));
    CHECK(encodes_to(bpe, "aaa", (const int32_t[]){259, B('a')}, 2));
    CHECK(encodes_to(bpe, "aaaa", (const int32_t[]){259, 259}, 2));
    recur_bpe_free(bpe);

    /* "aaaa aaaa": pieces "aaaa", " aaaa". a a: 3 + 3 = 6, ' ' a: 1.
     * Merge 0 = [a, a] -> 259: [259, 259] and [' ', 259, 259]; then
     * 259 259 occurs 2 times, ' ' 259 once: merge 1 = [259, 259] -> 260. */
    const char *t2[] = {"aaaa aaaa"};
    bpe = learn_texts(t2, 1, 1000);
    const int32_t m2[][2] = {{B('a'), B('a')}, {259, 259}};
    CHECK(merges_equal(bpe, m2, 2));
    CHECK(encodes_to(bpe, "aaaa", (const int32_t[]){260}, 1));
    CHECK(encodes_to(bpe, "aaaaaaa", (const int32_t[]){260, 259, B('a')}, 3));
    CHECK(encodes_to(bpe, " aaaa", (const int32_t[]){B(' '), 260}, 2));
    recur_bpe_free(bpe);

    /* "hello hello help": pieces "hello", " hello", " help".
     * Counts: h e 3, e l 3, l l 2, l o 2, ' ' h 2, l p 1.
     * Tie at 3: e l (ids 104, 111) before h e (107, 104): smaller first id.
     * Merge 0 = [e, l] -> 259 "el": h 259 l o / ' ' h 259 l o / ' ' h 259 p;
     *   h 259: 3, 259 l: 2, l o: 2, ' ' h: 2, 259 p: 1 (l l is gone).
     * Merge 1 = [h, 259] -> 260 "hel": 260 l o / ' ' 260 l o / ' ' 260 p;
     *   260 l: 2, l o: 2, ' ' 260: 2, 260 p: 1.
     * Tie at 2: ' ' 260 (first id 35) before l o (111) and 260 l (260).
     * Merge 2 = [' ', 260] -> 261 " hel": 260 l o / 261 l o / 261 p;
     *   l o: 2, the rest 1.
     * Merge 3 = [l, o] -> 262 "lo": 260 262 / 261 262 / 261 p: all once, stop. */
    const char *t3[] = {"hello hello help"};
    bpe = learn_texts(t3, 1, 1000);
    const int32_t m3[][2] = {{B('e'), B('l')}, {B('h'), 259}, {B(' '), 260}, {B('l'), B('o')}};
    CHECK(merges_equal(bpe, m3, 4));
    CHECK(encodes_to(bpe, "hello hello help",
                     (const int32_t[]){260, 262, 261, 262, 261, B('p')}, 6));
    /* Merges never cross a piece: "lo" spans two pieces in "l,o" and "l o". */
    CHECK(encodes_to(bpe, "l,o", (const int32_t[]){B('l'), B(','), B('o')}, 3));
    CHECK(encodes_to(bpe, "hel lo", (const int32_t[]){260, B(' '), 262}, 3));
    size_t len = 0;
    const char *tok = recur_bpe_token(bpe, 261, &len);
    CHECK(tok && len == 4 && memcmp(tok, " hel", 4) == 0);
    recur_bpe_free(bpe);

    /* The vocabulary-size limit: 261 tokens keep the first two merges. */
    bpe = learn_texts(t3, 1, 261);
    CHECK(merges_equal(bpe, m3, 2));
    CHECK(recur_bpe_size(bpe) == 261);
    recur_bpe_free(bpe);
    bpe = learn_texts(t3, 1, RECUR_BPE_BASE);
    CHECK(merges_equal(bpe, m3, 0));
    CHECK(encodes_to(bpe, "he", (const int32_t[]){B('h'), B('e')}, 2));
    recur_bpe_free(bpe);
}

static void test_learn_ties(void)
{
    /* "ab" x2 and "ba" x2 (separate texts, so separate pieces): a b and b a
     * both occur twice; a b (100, 101) wins over b a (101, 100) on the first
     * id, whatever the order of the texts. Then b a still occurs twice. */
    const char *t1[] = {"ab", "ba", "ab", "ba"};
    const char *t2[] = {"ba", "ba", "ab", "ab"};
    const int32_t want[][2] = {{B('a'), B('b')}, {B('b'), B('a')}};
    recur_bpe *bpe = learn_texts(t1, 4, 1000);
    CHECK(merges_equal(bpe, want, 2));
    recur_bpe_free(bpe);
    bpe = learn_texts(t2, 4, 1000);
    CHECK(merges_equal(bpe, want, 2));
    recur_bpe_free(bpe);
    /* Same first id: the smaller second id wins, a b before a c. */
    const char *t3[] = {"ac", "ab", "ac", "ab"};
    const int32_t want3[][2] = {{B('a'), B('b')}, {B('a'), B('c')}};
    bpe = learn_texts(t3, 4, 1000);
    CHECK(merges_equal(bpe, want3, 2));
    recur_bpe_free(bpe);
    /* lens given: the NUL inside is a byte like any other (class "other"),
     * so "xy\0xy" is the pieces "xy", "\0", "xy": x y occurs 4 times in the
     * two texts and becomes the one merge; nothing else pairs. */
    const char t4[] = "xy\0xy";
    const char *t4p[] = {t4, t4};
    const size_t lens[] = {5, 5};
    bpe = NULL;
    CHECK_OK(recur_bpe_learn(t4p, lens, 2, 1000, &bpe));
    const int32_t want4[][2] = {{B('x'), B('y')}};
    CHECK(merges_equal(bpe, want4, 1));
    recur_bpe_free(bpe);
}

/* ---- a plain learner to check the incremental one against ------------------------- */

typedef struct naive_word {
    int32_t ids[64];
    int len;
    long count;
} naive_word;

/* The pieces of the header's rule, written independently of bpe.c. */
static int is_word_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

static int naive_words(const char *const *texts, size_t n, naive_word *words, int cap)
{
    int count = 0;
    for (size_t t = 0; t < n; t++) {
        const unsigned char *s = (const unsigned char *)texts[t];
        const size_t len = strlen(texts[t]);
        size_t i = 0;
        while (i < len) {
            size_t start = i, j;
            if (s[i] == ' ' && (i + 1 == len || s[i + 1] == ' ')) {
                /* spaces: all to the end of the text, else all but the last */
                j = i;
                while (j < len && s[j] == ' ')
                    j++;
                if (j < len)
                    j--;
            } else {
                if (s[i] == ' ')
                    i++;
                const int word = is_word_byte(s[i]);
                j = i + 1;
                while (j < len && s[j] != ' ' && is_word_byte(s[j]) == word)
                    j++;
            }
            naive_word w = {{0}, 0, 1};
            for (size_t k = start; k < j && w.len < 64; k++)
                w.ids[w.len++] = B(s[k]);
            int found = 0;
            for (int k = 0; k < count && !found; k++)
                if (words[k].len == w.len && memcmp(words[k].ids, w.ids, sizeof w.ids) == 0) {
                    words[k].count++;
                    found = 1;
                }
            if (!found && count < cap)
                words[count++] = w;
            i = j;
        }
    }
    return count;
}

typedef struct naive_pair {
    int32_t first, second;
    long count;
} naive_pair;

static int by_pair(const void *x, const void *y)
{
    const naive_pair *a = x, *b = y;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    return (a->second > b->second) - (a->second < b->second);
}

/* Recounts every pair at every step (all occurrences listed, sorted, summed
 * per pair; the first pair of the highest count wins, which is the smallest
 * (first, second) among the tied); returns the number of merges. */
static int naive_learn(naive_word *words, int nw, int max_merges, int32_t (*merges)[2])
{
    static naive_pair occ[1 << 16];
    int m = 0;
    for (; m < max_merges; m++) {
        int n = 0;
        for (int w = 0; w < nw; w++)
            for (int k = 0; k + 1 < words[w].len && n < (1 << 16); k++)
                occ[n++] = (naive_pair){words[w].ids[k], words[w].ids[k + 1], words[w].count};
        qsort(occ, (size_t)n, sizeof *occ, by_pair);
        naive_pair best = {0, 0, 0};
        for (int i = 0; i < n;) {
            naive_pair sum = occ[i];
            sum.count = 0;
            int j = i;
            for (; j < n && by_pair(&occ[j], &occ[i]) == 0; j++)
                sum.count += occ[j].count;
            if (sum.count > best.count)
                best = sum;
            i = j;
        }
        if (best.count < 2)
            break;
        merges[m][0] = best.first;
        merges[m][1] = best.second;
        const int32_t c = RECUR_BPE_BASE + m;
        for (int w = 0; w < nw; w++) {
            int out = 0;
            for (int k = 0; k < words[w].len;) {
                if (k + 1 < words[w].len && words[w].ids[k] == best.first &&
                    words[w].ids[k + 1] == best.second) {
                    words[w].ids[out++] = c;
                    k += 2;
                } else
                    words[w].ids[out++] = words[w].ids[k++];
            }
            words[w].len = out;
        }
    }
    return m;
}

static void compare_with_naive(const char *const *texts, size_t n, int vocab, const char *what)
{
    static naive_word words[4096];
    static int32_t merges[4096][2];
    const int nw = naive_words(texts, n, words, 4096);
    const int m = naive_learn(words, nw, vocab - RECUR_BPE_BASE, merges);
    recur_bpe *bpe = learn_texts(texts, n, vocab);
    if (!bpe)
        return;
    CHECK_MSG(merges_equal(bpe, (const int32_t(*)[2])merges, m), "%s: %d merges", what, m);
    /* Encoding a training piece gives learning's final segmentation. */
    int bad = 0;
    for (int w = 0; w < nw; w++) {
        char text[64];
        for (int k = 0; k < 64; k++)
            text[k] = 0;
        size_t len = 0;
        int32_t *ids = NULL;
        size_t count = 0;
        /* the piece's bytes, rebuilt from the naive word's tokens */
        for (int k = 0; k < words[w].len; k++) {
            size_t tl;
            const char *tok = recur_bpe_token(bpe, words[w].ids[k], &tl);
            if (tok && len + tl < sizeof text) {
                memcpy(text + len, tok, tl);
                len += tl;
            }
        }
        if (recur_bpe_encode(bpe, text, len, &ids, &count) != RECUR_OK ||
            count != (size_t)words[w].len ||
            memcmp(ids, words[w].ids, count * sizeof *ids) != 0)
            bad++;
        recur_free(ids);
    }
    CHECK_MSG(bad == 0, "%s: %d of %d training pieces encode differently", what, bad, nw);
    recur_bpe_free(bpe);
}

static void test_learn_against_naive(void)
{
    compare_with_naive(corpus, CORPUS_N, 2000, "German/English corpus");
    /* Random texts over a tiny alphabet: long runs ("aaaa"), many ties. */
    recur_rng rng;
    recur_rng_seed(&rng, 7);
    static char buffers[40][48];
    const char *texts[40];
    for (int round = 0; round < 20; round++) {
        const char alphabet[] = "aab  .";
        for (int t = 0; t < 40; t++) {
            const int len = (int)recur_rng_below(&rng, 47);
            for (int k = 0; k < len; k++)
                buffers[t][k] = alphabet[recur_rng_below(&rng, sizeof alphabet - 1)];
            buffers[t][len] = '\0';
            texts[t] = buffers[t];
        }
        char what[32];
        snprintf(what, sizeof what, "random round %d", round);
        compare_with_naive(texts, 40, 259 + 1 + (int)recur_rng_below(&rng, 60), what);
    }
}

/* ---- round trips ------------------------------------------------------------------ */

/* Appends the UTF-8 encoding of cp to s at *n. */
static void put_utf8(char *s, size_t *n, uint32_t cp)
{
    if (cp < 0x80)
        s[(*n)++] = (char)cp;
    else if (cp < 0x800) {
        s[(*n)++] = (char)(0xc0 | cp >> 6);
        s[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        s[(*n)++] = (char)(0xe0 | cp >> 12);
        s[(*n)++] = (char)(0x80 | (cp >> 6 & 0x3f));
        s[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        s[(*n)++] = (char)(0xf0 | cp >> 18);
        s[(*n)++] = (char)(0x80 | (cp >> 12 & 0x3f));
        s[(*n)++] = (char)(0x80 | (cp >> 6 & 0x3f));
        s[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

static int holds_replacement(const char *s, size_t n)
{
    for (size_t i = 0; i + 3 <= n; i++)
        if (memcmp(s + i, "\xef\xbf\xbd", 3) == 0)
            return 1;
    return 0;
}

static int is_valid_utf8(const char *s, size_t n)
{
    uint32_t *cps = NULL;
    size_t count = 0;
    const int ok = recur_utf8_decode(s, n, &cps, &count) == RECUR_OK;
    recur_free(cps);
    recur_clear_error();
    return ok;
}

/* Encodes s and checks: no specials, ids in range, the tokens' bytes
 * joined are s, and decode gives s (UTF-8) or valid UTF-8 with U+FFFD. */
static int round_trip(const recur_bpe *bpe, const char *s, size_t n)
{
    int32_t *ids = NULL;
    size_t count = 0;
    char *back = NULL;
    size_t back_len = 0;
    int ok = recur_bpe_encode(bpe, s, n, &ids, &count) == RECUR_OK;
    char joined[1024];
    size_t joined_n = 0;
    for (size_t i = 0; ok && i < count; i++) {
        size_t tl = 0;
        const char *tok = recur_bpe_token(bpe, ids[i], &tl);
        ok = ids[i] >= RECUR_BPE_FIRST_BYTE && ids[i] < recur_bpe_size(bpe) && tok &&
             joined_n + tl <= sizeof joined;
        if (ok) {
            memcpy(joined + joined_n, tok, tl);
            joined_n += tl;
        }
    }
    ok = ok && joined_n == n && memcmp(joined, s, n) == 0;
    ok = ok && recur_bpe_decode(bpe, ids, count, &back, &back_len) == RECUR_OK;
    if (ok) {
        if (is_valid_utf8(s, n))
            ok = back_len == n && memcmp(back, s, n) == 0 && back[n] == '\0';
        else
            ok = is_valid_utf8(back, back_len) && holds_replacement(back, back_len);
    }
    recur_free(ids);
    recur_free(back);
    return ok;
}

static void test_round_trips(void)
{
    recur_bpe *bpe = learn_texts(corpus, CORPUS_N, 600);
    if (!bpe)
        return;
    /* The corpus runs out of pairs that occur twice before 600 tokens. */
    CHECK_MSG(recur_bpe_size(bpe) > RECUR_BPE_BASE + 100 && recur_bpe_size(bpe) < 600,
              "%d tokens", recur_bpe_size(bpe));
    recur_rng rng;
    recur_rng_seed(&rng, 2024);
    char s[256];
    int failed_bytes = 0, failed_utf8 = 0;
    /* Random byte strings, biased toward letters, spaces and high bytes. */
    for (int round = 0; round < 3000; round++) {
        const size_t n = (size_t)recur_rng_below(&rng, 80);
        for (size_t k = 0; k < n; k++) {
            const uint64_t kind = recur_rng_below(&rng, 4);
            s[k] = kind == 0   ? (char)recur_rng_below(&rng, 256)
                   : kind == 1 ? ' '
                   : kind == 2 ? (char)('a' + recur_rng_below(&rng, 26))
                               : (char)(0x80 + recur_rng_below(&rng, 128));
        }
        if (!round_trip(bpe, s, n))
            failed_bytes++;
    }
    /* Random valid UTF-8: ASCII, runs of spaces, tabs, CR/LF, NUL, Latin-1,
     * combining marks, CJK, emoji, the last code point, corpus words. */
    static const uint32_t ranges[][2] = {
        {0x20, 0x7e},     {' ', ' '},       {'\t', '\t'},     {'\n', '\r'},  {0, 0},
        {0xa0, 0xff},     {0x300, 0x36f},   {0x4e00, 0x9fff}, {0x1f600, 0x1f64f},
        {0x10fffd, 0x10ffff}, {0xfffd, 0xfffd}, {0x80, 0x7ff},
    };
    const size_t nranges = sizeof ranges / sizeof *ranges;
    for (int round = 0; round < 3000; round++) {
        size_t n = 0;
        const int chars = (int)recur_rng_below(&rng, 40);
        for (int k = 0; k < chars && n + 4 < 200; k++) {
            if (recur_rng_below(&rng, 6) == 0) {
                const char *w = corpus[recur_rng_below(&rng, CORPUS_N)];
                const size_t wl = strlen(w) < 30 ? strlen(w) : 30;
                size_t cut = wl;
                while (cut > 0 && ((unsigned char)w[cut] & 0xc0) == 0x80)
                    cut--; /* keep whole characters */
                if (n + cut < 200) {
                    memcpy(s + n, w, cut);
                    n += cut;
                }
                continue;
            }
            const uint32_t *r = ranges[recur_rng_below(&rng, nranges)];
            put_utf8(s, &n, r[0] + (uint32_t)recur_rng_below(&rng, r[1] - r[0] + 1));
        }
        if (!is_valid_utf8(s, n) || !round_trip(bpe, s, n))
            failed_utf8++;
    }
    CHECK_MSG(failed_bytes == 0, "%d of 3000 random byte strings", failed_bytes);
    CHECK_MSG(failed_utf8 == 0, "%d of 3000 random UTF-8 strings", failed_utf8);
    /* Every corpus line: exact, and under 2/3 as many tokens as bytes. */
    for (int i = 0; i < CORPUS_N; i++) {
        CHECK(round_trip(bpe, corpus[i], strlen(corpus[i])));
        int32_t *ids = NULL;
        size_t count = 0;
        CHECK_OK(recur_bpe_encode(bpe, corpus[i], strlen(corpus[i]), &ids, &count));
        CHECK_MSG(3 * count < 2 * strlen(corpus[i]), "line %d: %zu tokens for %zu bytes", i,
                  count, strlen(corpus[i]));
        recur_free(ids);
    }
    /* Embedded NUL bytes come back with the right length. */
    const char nul[] = "a\0b\0\0 c";
    int32_t *ids = NULL;
    size_t count = 0;
    char *back = NULL;
    size_t back_len = 0;
    CHECK_OK(recur_bpe_encode(bpe, nul, sizeof nul - 1, &ids, &count));
    CHECK_OK(recur_bpe_decode(bpe, ids, count, &back, &back_len));
    CHECK(back_len == sizeof nul - 1 && back && memcmp(back, nul, back_len) == 0);
    recur_free(ids);
    recur_free(back);
    /* The empty text: no ids, and decoding none gives "". */
    ids = (int32_t *)&count;
    CHECK_OK(recur_bpe_encode(bpe, "", 0, &ids, &count));
    CHECK(ids == NULL && count == 0);
    CHECK_OK(recur_bpe_decode(bpe, NULL, 0, &back, &back_len));
    CHECK(back && back[0] == '\0' && back_len == 0);
    recur_free(back);
    recur_bpe_free(bpe);
}

/* ---- decoding ----------------------------------------------------------------------- */

static int decodes_to(const recur_bpe *bpe, const int32_t *ids, size_t n, const char *want,
                      size_t want_len)
{
    char *text = NULL;
    size_t len = 0;
    if (recur_bpe_decode(bpe, ids, n, &text, &len) != RECUR_OK)
        return 0;
    const int same = len == want_len && memcmp(text, want, len) == 0 && text[len] == '\0';
    recur_free(text);
    return same;
}

static void test_decode(void)
{
    const char *t[] = {"hello hello help"};
    recur_bpe *bpe = learn_texts(t, 1, 1000);
    if (!bpe)
        return;
    /* Specials are skipped. */
    const int32_t s1[] = {RECUR_BPE_BOS, 260, 262, RECUR_BPE_EOS, RECUR_BPE_PAD};
    CHECK(decodes_to(bpe, s1, 5, "hello", 5));
    /* A lone lead byte: one U+FFFD. */
    const int32_t s2[] = {B(0xc3)};
    CHECK(decodes_to(bpe, s2, 1, "\xef\xbf\xbd", 3));
    /* A lone continuation byte between letters. */
    const int32_t s3[] = {B('a'), B(0xa9), B('b')};
    CHECK(decodes_to(bpe, s3, 3, "a\xef\xbf\xbd" "b", 5));
    /* A truncated 3-byte sequence is one maximal subpart: one U+FFFD. */
    const int32_t s4[] = {B(0xe2), B(0x82), B('x')};
    CHECK(decodes_to(bpe, s4, 3, "\xef\xbf\xbdx", 4));
    /* A truncated emoji (3 of 4 bytes): one U+FFFD, same length as the input. */
    const int32_t s5[] = {B(0xf0), B(0x9f), B(0x98)};
    CHECK(decodes_to(bpe, s5, 3, "\xef\xbf\xbd", 3));
    /* An encoded surrogate: ED is followed by A0, outside 80..9F, so each of
     * the three bytes is its own subpart. */
    const int32_t s6[] = {B(0xed), B(0xa0), B(0x80)};
    CHECK(decodes_to(bpe, s6, 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9));
    /* C0 never starts a sequence (overlong): two U+FFFD for C0 80. */
    const int32_t s7[] = {B(0xc0), B(0x80)};
    CHECK(decodes_to(bpe, s7, 2, "\xef\xbf\xbd\xef\xbf\xbd", 6));
    /* A complete character split over byte tokens is fine. */
    const int32_t s8[] = {B(0xc3), B(0xa9)};
    CHECK(decodes_to(bpe, s8, 2, "\xc3\xa9", 2));

    /* Ids outside the vocabulary name the id and its position. */
    char *text = (char *)"x";
    const int32_t bad1[] = {B('a'), 260, 263};
    CHECK_STATUS(recur_bpe_decode(bpe, bad1, 3, &text, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("id 263 at position 2");
    CHECK(text == NULL);
    const int32_t bad2[] = {-1};
    CHECK_STATUS(recur_bpe_decode(bpe, bad2, 1, &text, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("id -1 at position 0");

    /* Token bytes and names. */
    size_t len = 99;
    CHECK(strcmp(recur_bpe_token(bpe, RECUR_BPE_PAD, &len), "<pad>") == 0 && len == 5);
    CHECK(strcmp(recur_bpe_token(bpe, RECUR_BPE_BOS, &len), "<s>") == 0 && len == 3);
    CHECK(strcmp(recur_bpe_token(bpe, RECUR_BPE_EOS, &len), "</s>") == 0 && len == 4);
    const char *zero = recur_bpe_token(bpe, B(0), &len);
    CHECK(zero && len == 1 && zero[0] == '\0');
    CHECK(strcmp(recur_bpe_token(bpe, 262, NULL), "lo") == 0);
    CHECK(recur_bpe_token(bpe, 263, &len) == NULL && len == 0);
    CHECK(recur_bpe_token(bpe, -5, &len) == NULL);
    recur_bpe_free(bpe);
}

/* ---- JSON --------------------------------------------------------------------------- */

static void test_json_round_trip(void)
{
    recur_bpe *bpe = learn_texts(corpus, CORPUS_N, 700);
    if (!bpe)
        return;
    char *json = NULL;
    CHECK_OK(recur_bpe_to_json(bpe, &json));
    recur_bpe *back = NULL;
    CHECK_OK(recur_bpe_from_json(json, json ? strlen(json) : 0, &back));
    if (back) {
        CHECK(recur_bpe_size(back) == recur_bpe_size(bpe));
        int same = 1;
        for (int32_t id = 0; id < recur_bpe_size(bpe); id++) {
            size_t la, lb;
            const char *a = recur_bpe_token(bpe, id, &la), *b = recur_bpe_token(back, id, &lb);
            same = same && la == lb && memcmp(a, b, la) == 0;
        }
        CHECK(same);
        recur_rng rng;
        recur_rng_seed(&rng, 5);
        for (int i = 0; i < CORPUS_N + 200; i++) {
            char s[64];
            const char *text = s;
            size_t n;
            if (i < CORPUS_N) {
                text = corpus[i];
                n = strlen(text);
            } else {
                n = (size_t)recur_rng_below(&rng, 64);
                for (size_t k = 0; k < n; k++)
                    s[k] = (char)recur_rng_below(&rng, 256);
            }
            int32_t *x = NULL, *y = NULL;
            size_t nx = 0, ny = 0;
            CHECK_OK(recur_bpe_encode(bpe, text, n, &x, &nx));
            CHECK_OK(recur_bpe_encode(back, text, n, &y, &ny));
            CHECK(nx == ny && (nx == 0 || memcmp(x, y, nx * sizeof *x) == 0));
            recur_free(x);
            recur_free(y);
        }
        char *again = NULL;
        CHECK_OK(recur_bpe_to_json(back, &again));
        CHECK(again && json && strcmp(again, json) == 0);
        recur_free(again);
    }
    recur_bpe_free(back);
    recur_free(json);
    recur_bpe_free(bpe);

    /* The smallest vocabulary, and whitespace and key order are free. */
    back = NULL;
    const char *plain = " { \"merges\" : [ ] ,\n \"format\" : 1 } ";
    CHECK_OK(recur_bpe_from_json(plain, strlen(plain), &back));
    CHECK(recur_bpe_size(back) == RECUR_BPE_BASE);
    recur_bpe_free(back);
    const char *two = "{\"format\":1,\"merges\":[[3,4],[259,259]]}";
    CHECK_OK(recur_bpe_from_json(two, strlen(two), &back));
    size_t len = 0;
    const char *tok = back ? recur_bpe_token(back, 260, &len) : NULL;
    CHECK(tok && len == 4 && memcmp(tok, "\0\1\0\1", 4) == 0);
    recur_bpe_free(back);
}

static void expect_bad_json(const char *json, size_t len, const char *needle)
{
    recur_bpe *bpe = (recur_bpe *)&len;
    CHECK_STATUS(recur_bpe_from_json(json, len, &bpe), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS(needle);
    CHECK(bpe == NULL);
}

static void test_json_malformed(void)
{
#define BAD(text, needle) expect_bad_json(text, strlen(text), needle)
    BAD("", "BPE JSON");
    BAD("not json", "BPE JSON");
    BAD("{\"format\":1,\"merges\":[[3,4]", "BPE JSON");
    BAD("[1,2]", "is an array, not an object");
    BAD("{\"merges\":[]}", "\"format\" is missing");
    BAD("{\"format\":\"1\",\"merges\":[]}", "\"format\" is a string");
    BAD("{\"format\":1.0,\"merges\":[]}", "\"format\" is a real number");
    BAD("{\"format\":2,\"merges\":[]}", "\"format\" 2 is not supported");
    BAD("{\"format\":1}", "\"merges\" is missing");
    BAD("{\"format\":1,\"merges\":{}}", "\"merges\" is an object, not an array");
    BAD("{\"format\":1,\"merges\":[],\"vocab\":3}", "unknown key \"vocab\"");
    BAD("{\"format\":1,\"format\":1,\"merges\":[]}", "duplicate");
    BAD("{\"format\":1,\"merges\":[[3]]}", "merge 0 has 1 elements");
    BAD("{\"format\":1,\"merges\":[[3,4],5]}", "merge 1 is an integer, not an array");
    BAD("{\"format\":1,\"merges\":[[3,\"a\"]]}", "merge 0: element 1 is a string");
    BAD("{\"format\":1,\"merges\":[[3.0,4]]}", "merge 0: element 0 is a real number");
    BAD("{\"format\":1,\"merges\":[[3,null]]}", "element 1 is null");
    BAD("{\"format\":1,\"merges\":[[-1,4]]}", "merge 0 joins id -1, outside");
    BAD("{\"format\":1,\"merges\":[[99999999999,4]]}", "id 99999999999, outside");
    BAD("{\"format\":1,\"merges\":[[3,259]]}", "merge 0 joins id 259, not yet defined");
    BAD("{\"format\":1,\"merges\":[[3,4],[260,5]]}", "merge 1 joins id 260, not yet defined");
    BAD("{\"format\":1,\"merges\":[[0,5]]}", "merge 0 joins id 0, which is a special token");
    BAD("{\"format\":1,\"merges\":[[5,2]]}", "id 2, which is a special token");
    BAD("{\"format\":1,\"merges\":[[3,4],[5,6],[3,4]]}", "merge 2 [3, 4] repeats merge 0");
    /* A NUL inside the text is not JSON. */
    static const char with_nul[] = "{\"format\":1,\0\"merges\":[]}";
    expect_bad_json(with_nul, sizeof with_nul - 1, "BPE JSON");
    /* A chain of merges doubling a token's length: 2^31 bytes is refused. */
    char chain[1024];
    size_t at = (size_t)snprintf(chain, sizeof chain, "{\"format\":1,\"merges\":[[3,3]");
    for (int i = 1; i <= 31; i++)
        at += (size_t)snprintf(chain + at, sizeof chain - at, ",[%d,%d]", 258 + i, 258 + i);
    snprintf(chain + at, sizeof chain - at, "]}");
    BAD(chain, "the tokens would take more than");
#undef BAD
}

static void test_errors(void)
{
    recur_bpe *bpe = NULL;
    const char *t[] = {"abc", NULL};
    CHECK_STATUS(recur_bpe_learn(t, NULL, 1, RECUR_BPE_BASE - 1, &bpe), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("vocab_size 258");
    CHECK_STATUS(recur_bpe_learn(t, NULL, 1, (1 << 20) + 1, &bpe), RECUR_E_INVALID);
    CHECK_STATUS(recur_bpe_learn(t, NULL, 2, 300, &bpe), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("texts[1] is NULL");
    CHECK_STATUS(recur_bpe_learn(NULL, NULL, 1, 300, &bpe), RECUR_E_INVALID);
    CHECK_STATUS(recur_bpe_learn(t, NULL, 1, 300, NULL), RECUR_E_INVALID);
    CHECK(bpe == NULL);
    /* No texts at all: the smallest vocabulary. */
    CHECK_OK(recur_bpe_learn(NULL, NULL, 0, 300, &bpe));
    CHECK(recur_bpe_size(bpe) == RECUR_BPE_BASE);
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_STATUS(recur_bpe_encode(bpe, NULL, 3, &ids, &n), RECUR_E_INVALID);
    CHECK_STATUS(recur_bpe_encode(NULL, "a", 1, &ids, &n), RECUR_E_INVALID);
    char *text = NULL;
    CHECK_STATUS(recur_bpe_decode(bpe, NULL, 2, &text, NULL), RECUR_E_INVALID);
    CHECK_STATUS(recur_bpe_to_json(NULL, &text), RECUR_E_INVALID);
    CHECK_STATUS(recur_bpe_from_json(NULL, 0, &bpe), RECUR_E_INVALID);
    CHECK(recur_bpe_size(NULL) == 0);
    recur_bpe_free(bpe);
    recur_bpe_free(NULL);
}

/* ---- BPE-dropout ------------------------------------------------------------------- */

/* recur_bpe_encode_dropout(s) gives valid tokens that join to s; *count back. */
static int dropout_joins(const recur_bpe *bpe, const char *s, size_t n, float p, recur_rng *rng,
                         int32_t **ids, size_t *count)
{
    if (recur_bpe_encode_dropout(bpe, s, n, p, rng, ids, count) != RECUR_OK)
        return 0;
    size_t at = 0;
    for (size_t i = 0; i < *count; i++) {
        size_t tl = 0;
        const char *tok = recur_bpe_token(bpe, (*ids)[i], &tl);
        if ((*ids)[i] < RECUR_BPE_FIRST_BYTE || !tok || at + tl > n || memcmp(tok, s + at, tl))
            return 0;
        at += tl;
    }
    return at == n;
}

static void test_dropout(void)
{
    recur_bpe *bpe = learn_texts(corpus, CORPUS_N, 600);
    if (!bpe)
        return;
    recur_rng rng, before;
    recur_rng_seed(&rng, 77);
    /* Dropout 0 is recur_bpe_encode and draws nothing; dropout 1 leaves the single bytes;
     * in between, more tokens the higher the rate, and the same draws give the same tokens. */
    size_t total[4] = {0, 0, 0, 0}, bytes = 0;
    const float rates[4] = {0.0f, 0.1f, 0.5f, 1.0f};
    int bad = 0;
    for (int round = 0; round < 20; round++)
        for (size_t i = 0; i < CORPUS_N; i++) {
            const char *s = corpus[i];
            const size_t n = strlen(s);
            int32_t *plain = NULL;
            size_t plain_n = 0;
            CHECK_OK(recur_bpe_encode(bpe, s, n, &plain, &plain_n));
            bytes += n;
            for (int r = 0; r < 4; r++) {
                int32_t *ids = NULL, *again = NULL;
                size_t count = 0, again_n = 0;
                before = rng;
                bad += !dropout_joins(bpe, s, n, rates[r], &rng, &ids, &count);
                total[r] += count;
                if (r == 0)
                    bad += memcmp(&rng, &before, sizeof rng) != 0 || count != plain_n ||
                           memcmp(ids, plain, count * sizeof *ids) != 0;
                if (r == 3)
                    for (size_t k = 0; k < count; k++)
                        bad += ids[k] != B(s[k]);
                recur_rng replay = before;
                bad += !dropout_joins(bpe, s, n, rates[r], &replay, &again, &again_n) ||
                       again_n != count || memcmp(again, ids, count * sizeof *ids) != 0 ||
                       memcmp(&replay, &rng, sizeof rng) != 0;
                recur_free(ids);
                recur_free(again);
            }
            recur_free(plain);
        }
    CHECK_MSG(bad == 0, "%d failures", bad);
    CHECK_MSG(total[0] < total[1] && total[1] < total[2] && total[2] < total[3] &&
              total[3] == bytes, "tokens at dropout 0/.1/.5/1: %zu %zu %zu %zu (%zu bytes)",
              total[0], total[1], total[2], total[3], bytes);
    /* Random UTF-8 round trips at dropout 0.3 (arbitrary bytes included). */
    char s[200];
    for (int round = 0; round < 2000 && !bad; round++) {
        const size_t n = (size_t)recur_rng_below(&rng, sizeof s);
        for (size_t k = 0; k < n; k++)
            s[k] = recur_rng_below(&rng, 3) ? corpus[round % CORPUS_N][k % 20]
                                            : (char)recur_rng_below(&rng, 256);
        int32_t *ids = NULL;
        size_t count = 0;
        bad += !dropout_joins(bpe, s, n, 0.3f, &rng, &ids, &count);
        recur_free(ids);
    }
    CHECK_MSG(bad == 0, "%d random strings did not join back", bad);
    recur_bpe_free(bpe);

    /* One merge (a b): "ab" stays two tokens with probability p. */
    const char *t[] = {"ab ab"};
    bpe = learn_texts(t, 1, RECUR_BPE_BASE + 1);
    if (!bpe)
        return;
    int split = 0;
    const int draws = 20000;
    for (int i = 0; i < draws; i++) {
        int32_t *ids = NULL;
        size_t count = 0;
        CHECK_OK(recur_bpe_encode_dropout(bpe, "ab", 2, 0.3f, &rng, &ids, &count));
        split += count == 2;
        recur_free(ids);
    }
    CHECK_MSG(fabs((double)split / draws - 0.3) < 0.02, "split %d of %d at dropout 0.3", split,
              draws);
    int32_t *ids = NULL;
    size_t count = 0;
    CHECK_STATUS(recur_bpe_encode_dropout(bpe, "ab", 2, 0.1f, NULL, &ids, &count),
                 RECUR_E_INVALID);
    CHECK_STATUS(recur_bpe_encode_dropout(bpe, "ab", 2, 1.5f, &rng, &ids, &count),
                 RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("dropout 1.5 outside [0, 1]");
    CHECK_STATUS(recur_bpe_encode_dropout(bpe, "ab", 2, NAN, &rng, &ids, &count),
                 RECUR_E_INVALID);
    CHECK_OK(recur_bpe_encode_dropout(bpe, "ab", 2, 0.0f, NULL, &ids, &count));
    CHECK(count == 1 && ids[0] == RECUR_BPE_BASE);
    recur_free(ids);
    recur_bpe_free(bpe);
}

/* ---- out of memory ---------------------------------------------------------------- */

/* Learning, encoding, decoding and JSON with the k-th allocation failing,
 * for every k until everything succeeds: each call returns RECUR_E_NOMEM
 * or succeeds, and nothing leaks (the sanitizer build checks that). */
static void test_out_of_memory(void)
{
    const char *texts[] = {"hello hello help", "aaaa aaaa", "Gr\xc3\xbc\xc3\x9f" "e Gr\xc3\xbc\xc3\x9f" "e"};
    const char *line = "hello Gr\xc3\xbc\xc3\x9f" "e";
    int other = 0, done = 0;
    long k = 0;
    for (; k < 10000 && !done; k++) {
        alloc_budget = k;
        recur_set_allocator(&failing_allocator);
        recur_bpe *bpe = NULL, *back = NULL;
        int32_t *ids = NULL;
        size_t n = 0;
        char *text = NULL, *json = NULL;
        int rc = recur_bpe_learn(texts, NULL, 3, 300, &bpe);
        if (rc == RECUR_OK)
            rc = recur_bpe_encode(bpe, line, strlen(line), &ids, &n);
        if (rc == RECUR_OK)
            rc = recur_bpe_decode(bpe, ids, n, &text, NULL);
        if (rc == RECUR_OK)
            rc = recur_bpe_to_json(bpe, &json);
        if (rc == RECUR_OK)
            rc = recur_bpe_from_json(json, strlen(json), &back);
        other += rc != RECUR_OK && rc != RECUR_E_NOMEM;
        done = rc == RECUR_OK && text && strcmp(text, line) == 0;
        recur_free(ids);
        recur_free(text);
        recur_free(json);
        recur_bpe_free(bpe);
        recur_bpe_free(back);
        recur_set_allocator(NULL);
    }
    CHECK_MSG(done, "no success within %ld allocations", k);
    CHECK_MSG(k > 20, "only %ld allocations tried", k); /* the failures were exercised */
    CHECK_MSG(other == 0, "%d runs failed with another status than RECUR_E_NOMEM", other);
}

int main(void)
{
    test_learn_tiny();
    test_learn_ties();
    test_learn_against_naive();
    test_round_trips();
    test_decode();
    test_json_round_trip();
    test_json_malformed();
    test_errors();
    test_dropout();
    test_out_of_memory();
    CHECK_DONE();
}
