/* test_data.c - strict UTF-8, vocabularies and their JSON form, reading text
 * files, the train/validation split, char-rnn stream batching with carried
 * state and epoch wrap, the evaluation walk, and the tiny Shakespeare corpus
 * (data/tinyshakespeare.txt) round trip. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "recur/data.h"

/* Decodes `len` bytes that must fail with RECUR_E_FORMAT and a message
 * holding `needle`. */
static void expect_bad_utf8(const char *bytes, size_t len, const char *needle)
{
    uint32_t *cps = NULL;
    size_t count = 0;
    CHECK_STATUS(recur_utf8_decode(bytes, len, &cps, &count), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS(needle);
    CHECK(cps == NULL);
}

static void test_utf8_valid(void)
{
    /* A (1 byte), e-acute (2), euro (3), grinning face (4), NUL. */
    const char text[] = "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                        "\0z";
    uint32_t *cps = NULL;
    size_t count = 0;
    CHECK_OK(recur_utf8_decode(text, sizeof text - 1, &cps, &count));
    CHECK(count == 6);
    if (count == 6) {
        CHECK(cps[0] == 0x41);
        CHECK(cps[1] == 0xe9);
        CHECK(cps[2] == 0x20ac);
        CHECK(cps[3] == 0x1f600);
        CHECK(cps[4] == 0);
        CHECK(cps[5] == 'z');
    }
    recur_free(cps);

    size_t only = 0;
    CHECK_OK(recur_utf8_decode(text, sizeof text - 1, NULL, &only));
    CHECK(only == 6);
    cps = NULL;
    CHECK_OK(recur_utf8_decode("", 0, &cps, &count));
    CHECK(count == 0 && cps != NULL);
    recur_free(cps);

    /* Encoder/decoder agree at every length boundary. */
    static const uint32_t edges[] = {0x0,    0x7f,   0x80,   0x7ff,   0x800,   0xd7ff,
                                     0xe000, 0xfffd, 0xffff, 0x10000, 0x10ffff};
    static const int lengths[] = {1, 1, 2, 2, 3, 3, 3, 3, 3, 4, 4};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        char buf[RECUR_UTF8_MAX];
        int n = recur_utf8_encode(edges[i], buf);
        CHECK_MSG(n == lengths[i], "U+%04X encodes to %d bytes, expected %d", (unsigned)edges[i], n,
                  lengths[i]);
        size_t pos = 0;
        uint32_t back = 0xffffffffu;
        CHECK_OK(recur_utf8_next(buf, (size_t)(n > 0 ? n : 0), &pos, &back));
        CHECK_MSG(back == edges[i] && pos == (size_t)n, "U+%04X decodes to U+%04X, %zu bytes",
                  (unsigned)edges[i], (unsigned)back, pos);
    }
    char buf[RECUR_UTF8_MAX];
    CHECK_STATUS(recur_utf8_encode(0xd800, buf), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("surrogate");
    CHECK_STATUS(recur_utf8_encode(0x110000, buf), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("U+10FFFF");
}

static void test_utf8_invalid(void)
{
    /* Each bad sequence comes after "abc", so it starts at byte 3. */
    expect_bad_utf8("abc\x9f", 4, "invalid UTF-8 at byte 3: unexpected continuation byte 0x9f");
    expect_bad_utf8("abc\xff", 4, "invalid UTF-8 at byte 3: byte 0xff never occurs");
    expect_bad_utf8("abc\xc0\xaf", 5,
                    "invalid UTF-8 at byte 3: overlong 2-byte encoding of U+002F");
    expect_bad_utf8("abc\xc1\xbf", 5, "invalid UTF-8 at byte 3: overlong 2-byte");
    expect_bad_utf8("abc\xe0\x80\xaf", 6,
                    "invalid UTF-8 at byte 3: overlong 3-byte encoding of U+002F");
    expect_bad_utf8("abc\xf0\x80\x80\xaf", 7,
                    "invalid UTF-8 at byte 3: overlong 4-byte encoding of U+002F");
    expect_bad_utf8("abc\xf0\x8f\xbf\xbf", 7,
                    "invalid UTF-8 at byte 3: overlong 4-byte encoding of U+FFFF");
    expect_bad_utf8("abc\xed\xa0\x80", 6, "invalid UTF-8 at byte 3: encoded surrogate U+D800");
    expect_bad_utf8("abc\xed\xbf\xbf", 6, "invalid UTF-8 at byte 3: encoded surrogate U+DFFF");
    expect_bad_utf8("abc\xf4\x90\x80\x80", 7,
                    "invalid UTF-8 at byte 3: code point U+110000 is above U+10FFFF");
    expect_bad_utf8("abc\xf5\x80\x80\x80", 7,
                    "invalid UTF-8 at byte 3: code point U+140000 is above");
    expect_bad_utf8("abc\xe2\x82", 5, "invalid UTF-8 at byte 3: truncated 3-byte sequence");
    CHECK_ERROR_MENTIONS("input ends after 2 bytes");
    expect_bad_utf8("abc\xf0", 4, "invalid UTF-8 at byte 3: truncated 4-byte sequence");
    expect_bad_utf8("abc\xe2\x41\x41", 6, "invalid UTF-8 at byte 3: truncated 3-byte sequence");
    CHECK_ERROR_MENTIONS("0x41 at byte 4 is not a continuation byte");
    /* A second lead byte where a continuation byte belongs. */
    expect_bad_utf8("\xc3\xc3\xa9", 3, "invalid UTF-8 at byte 0: truncated 2-byte sequence");

    /* The offset counts from the start of the buffer, past valid multi-byte text. */
    char big[1240];
    memset(big, 'a', sizeof big);
    memcpy(big + 1000, "\xe2\x82\xac", 3); /* bytes 1000..1002 */
    big[1234] = (char)0x9f;
    expect_bad_utf8(big, sizeof big,
                    "invalid UTF-8 at byte 1234: unexpected continuation byte 0x9f");

    /* recur_utf8_next leaves the position at the bad sequence. */
    size_t pos = 3;
    uint32_t cp = 7;
    CHECK_STATUS(recur_utf8_next("abc\xed\xa0\x80", 6, &pos, &cp), RECUR_E_FORMAT);
    CHECK(pos == 3 && cp == 7);
}

static void test_vocab_chars(void)
{
    /* Mixed text: ASCII, 2-, 3- and 4-byte characters, a newline. */
    const char *text = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac\xf0\x9f\x98\x80\nhello";
    size_t len = strlen(text);
    recur_vocab *v = NULL;
    CHECK_OK(recur_vocab_build(text, len, RECUR_VOCAB_CHARS, &v));
    if (!v)
        return;
    /* Distinct: \n space d e h l o r w U+E9 U+F6 U+20AC U+1F600 = 13, sorted. */
    static const uint32_t want[] = {'\n', ' ', 'd',  'e',  'h',    'l',    'o',
                                    'r',  'w', 0xe9, 0xf6, 0x20ac, 0x1f600};
    CHECK(recur_vocab_size(v) == 13);
    CHECK(recur_vocab_get_kind(v) == RECUR_VOCAB_CHARS);
    for (int32_t i = 0; i < 13 && i < recur_vocab_size(v); i++) {
        CHECK_MSG(recur_vocab_codepoint(v, i) == want[i], "id %d is U+%04X, expected U+%04X",
                  (int)i, (unsigned)recur_vocab_codepoint(v, i), (unsigned)want[i]);
        CHECK(recur_vocab_lookup(v, want[i]) == i);
    }
    size_t tlen = 0;
    CHECK(strcmp(recur_vocab_token(v, 11, &tlen), "\xe2\x82\xac") == 0 && tlen == 3);
    CHECK(strcmp(recur_vocab_token(v, 12, &tlen), "\xf0\x9f\x98\x80") == 0 && tlen == 4);
    CHECK(strcmp(recur_vocab_token(v, 0, NULL), "\n") == 0);
    CHECK(recur_vocab_token(v, 13, NULL) == NULL);
    CHECK(recur_vocab_token(v, -1, NULL) == NULL);
    CHECK(recur_vocab_codepoint(v, 13) == UINT32_MAX);
    CHECK(recur_vocab_lookup(v, 'x') == -1);
    CHECK(recur_vocab_lookup(v, 0x20ad) == -1);
    CHECK(recur_vocab_lookup(v, 0x10ffff) == -1);

    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(recur_vocab_encode(v, text, len, &ids, &n));
    CHECK(n == 20);
    if (n == 20) {
        CHECK(ids[0] == 4);   /* h */
        CHECK(ids[1] == 9);   /* e-acute */
        CHECK(ids[12] == 11); /* euro */
        CHECK(ids[13] == 12); /* grinning face */
        CHECK(ids[14] == 0);  /* newline */
        CHECK(ids[19] == 6);  /* o */
    }
    char *back = NULL;
    size_t back_len = 0;
    CHECK_OK(recur_vocab_decode(v, ids, n, &back, &back_len));
    CHECK(back_len == len && back && memcmp(back, text, len) == 0 && back[len] == '\0');
    recur_free(back);

    int32_t bad[] = {0, 13};
    CHECK_STATUS(recur_vocab_decode(v, bad, 2, &back, &back_len), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("token id 13 at position 1");
    recur_free(ids);

    /* Invalid UTF-8 in text to encode names its byte. */
    CHECK_STATUS(recur_vocab_encode(v, "he\xc3", 3, &ids, &n), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("invalid UTF-8 at byte 2");
    CHECK_STATUS(recur_vocab_build("ok\x80", 3, RECUR_VOCAB_CHARS, &(recur_vocab *){NULL}),
                 RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("at byte 2");
    CHECK_STATUS(recur_vocab_build("", 0, RECUR_VOCAB_CHARS, &(recur_vocab *){NULL}),
                 RECUR_E_INVALID);
    recur_vocab_free(v);
    recur_vocab_free(NULL);
}

static void test_vocab_out_of_vocabulary(void)
{
    recur_vocab *v = NULL;
    CHECK_OK(recur_vocab_build("ab\xc3\xa9", 4, RECUR_VOCAB_CHARS, &v));
    if (!v)
        return;
    int32_t *ids = NULL;
    size_t n = 0;
    /* Z is the 4th character (index 3) and starts at byte 5. */
    CHECK_STATUS(recur_vocab_encode(v,
                                    "\xc3\xa9\xc3\xa9"
                                    "aZb",
                                    7, &ids, &n),
                 RECUR_E_NOT_FOUND);
    CHECK_ERROR_MENTIONS(
        "character 'Z' (U+005A) at character 3 (byte 5) is not in the vocabulary of 3 characters");
    CHECK(ids == NULL);
    /* A multi-byte character is printed as itself. */
    CHECK_STATUS(recur_vocab_encode(v, "a\xe2\x82\xac", 4, &ids, &n), RECUR_E_NOT_FOUND);
    CHECK_ERROR_MENTIONS("character '\xe2\x82\xac' (U+20AC) at character 1 (byte 1)");
    /* A control character is named by its code point only. */
    CHECK_STATUS(recur_vocab_encode(v, "ab\t", 3, &ids, &n), RECUR_E_NOT_FOUND);
    CHECK_ERROR_MENTIONS("character U+0009 at character 2 (byte 2)");
    CHECK(strchr(recur_last_error(), '\t') == NULL);
    recur_vocab_free(v);
}

static void test_vocab_bytes(void)
{
    /* Not UTF-8 at all, with a NUL inside. */
    const char text[] = "\xff\x00"
                        "ab\x80\xe9";
    size_t len = sizeof text - 1;
    recur_vocab *v = NULL;
    CHECK_OK(recur_vocab_build(text, len, RECUR_VOCAB_BYTES, &v));
    if (!v)
        return;
    CHECK(recur_vocab_size(v) == 256);
    CHECK(recur_vocab_get_kind(v) == RECUR_VOCAB_BYTES);
    size_t tlen = 0;
    const char *tok = recur_vocab_token(v, 0xe9, &tlen);
    CHECK(tok && tlen == 1 && (unsigned char)tok[0] == 0xe9 && tok[1] == '\0');
    tok = recur_vocab_token(v, 0, &tlen);
    CHECK(tok && tlen == 1 && tok[0] == '\0');
    CHECK(recur_vocab_lookup(v, 'A') == 'A');
    CHECK(recur_vocab_lookup(v, 0xff) == 0xff);
    CHECK(recur_vocab_lookup(v, 0x100) == -1);
    CHECK(recur_vocab_codepoint(v, 200) == 200);

    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(recur_vocab_encode(v, text, len, &ids, &n));
    CHECK(n == len);
    for (size_t i = 0; i < n && i < len; i++)
        CHECK(ids[i] == (unsigned char)text[i]);
    char *back = NULL;
    size_t back_len = 0;
    CHECK_OK(recur_vocab_decode(v, ids, n, &back, &back_len));
    CHECK(back_len == len && back && memcmp(back, text, len) == 0);
    recur_free(back);
    recur_free(ids);
    recur_vocab_free(v);

    /* Built from no text at all. */
    v = NULL;
    CHECK_OK(recur_vocab_build(NULL, 0, RECUR_VOCAB_BYTES, &v));
    CHECK(v && recur_vocab_size(v) == 256);
    recur_vocab_free(v);
}

static void test_vocab_from_codepoints(void)
{
    /* The given order is kept (ids are not re-sorted); lookups above U+00FF
     * go through the binary search. */
    const uint32_t cps[] = {'z', 0x1f600, 'a', 0x10ffff, 0x20ac, 0x100};
    recur_vocab *v = NULL;
    CHECK_OK(recur_vocab_from_codepoints(cps, 6, &v));
    if (!v)
        return;
    CHECK(recur_vocab_size(v) == 6);
    for (int32_t i = 0; i < 6; i++)
        CHECK_MSG(recur_vocab_lookup(v, cps[i]) == i, "lookup U+%04X = %d, expected %d",
                  (unsigned)cps[i], (int)recur_vocab_lookup(v, cps[i]), (int)i);
    CHECK(recur_vocab_lookup(v, 0x1f601) == -1);
    CHECK(recur_vocab_lookup(v, 0xff) == -1);
    CHECK(recur_vocab_lookup(v, 0x101) == -1);
    recur_vocab_free(v);

    const uint32_t dup[] = {'a', 'b', 'a'};
    CHECK_STATUS(recur_vocab_from_codepoints(dup, 3, &v), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("code point 2 duplicates code point 0 ('a' (U+0061))");
    const uint32_t surrogate[] = {'a', 0xdc00};
    CHECK_STATUS(recur_vocab_from_codepoints(surrogate, 2, &v), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("code point 1: U+DC00");
    const uint32_t too_big[] = {0x110000};
    CHECK_STATUS(recur_vocab_from_codepoints(too_big, 1, &v), RECUR_E_INVALID);
    CHECK_STATUS(recur_vocab_from_codepoints(cps, 0, &v), RECUR_E_INVALID);
}

/* recur_vocab_equal: same tokens in the same order, and the same kind. */
static void test_vocab_equal(void)
{
    const uint32_t ab[] = {'a', 'b'}, ba[] = {'b', 'a'}, abc[] = {'a', 'b', 'c'};
    recur_vocab *v1 = NULL, *v2 = NULL, *v3 = NULL, *v4 = NULL, *v5 = NULL, *bytes = NULL;
    CHECK_OK(recur_vocab_from_codepoints(ab, 2, &v1));
    CHECK_OK(recur_vocab_build("abba", 4, RECUR_VOCAB_CHARS, &v2)); /* sorted: a, b */
    CHECK_OK(recur_vocab_from_codepoints(ba, 2, &v3));
    CHECK_OK(recur_vocab_from_codepoints(abc, 3, &v4));
    CHECK_OK(recur_vocab_build("ab", 2, RECUR_VOCAB_BYTES, &bytes));
    CHECK_OK(recur_vocab_build("\xe2\x82\xac", 3, RECUR_VOCAB_CHARS, &v5));
    CHECK(recur_vocab_equal(v1, v1) && recur_vocab_equal(v1, v2) && recur_vocab_equal(v2, v1));
    CHECK(!recur_vocab_equal(v1, v3));    /* order */
    CHECK(!recur_vocab_equal(v1, v4));    /* size */
    CHECK(!recur_vocab_equal(v1, bytes)); /* kind */
    CHECK(!recur_vocab_equal(v5, v1));
    CHECK(!recur_vocab_equal(v1, NULL) && !recur_vocab_equal(NULL, NULL));
    recur_vocab_free(v1), recur_vocab_free(v2), recur_vocab_free(v3), recur_vocab_free(v4);
    recur_vocab_free(v5), recur_vocab_free(bytes);
}

static void expect_bad_json(const char *json, recur_vocab_kind kind, const char *needle)
{
    recur_vocab *v = NULL;
    CHECK_STATUS(recur_vocab_from_json(json, json ? strlen(json) : 0, kind, &v), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS(needle);
    CHECK(v == NULL);
    recur_vocab_free(v);
}

static void test_vocab_json(void)
{
    recur_vocab *v = NULL, *w = NULL;
    char *json = NULL;

    /* The exact checkpoint form: sorted tokens, JSON escapes, compact. */
    CHECK_OK(recur_vocab_build("ba\n\"", 4, RECUR_VOCAB_CHARS, &v));
    CHECK_OK(recur_vocab_to_json(v, &json));
    CHECK_MSG(json && strcmp(json, "[\"\\n\",\"\\\"\",\"a\",\"b\"]") == 0, "got %s",
              json ? json : "(null)");
    CHECK_OK(recur_vocab_from_json(json, json ? strlen(json) : 0, RECUR_VOCAB_CHARS, &w));
    CHECK(w && recur_vocab_size(w) == 4);
    for (int32_t i = 0; w && i < 4; i++)
        CHECK(recur_vocab_codepoint(w, i) == recur_vocab_codepoint(v, i));
    recur_free(json);
    json = NULL;
    recur_vocab_free(v);
    recur_vocab_free(w);

    /* Multi-byte characters, NUL, and an order that is not sorted survive. */
    const uint32_t cps[] = {0x1f600, 0, 'q', 0xe9, 0x20ac, 0x10ffff, '\\'};
    CHECK_OK(recur_vocab_from_codepoints(cps, 7, &v));
    CHECK_OK(recur_vocab_to_json(v, &json));
    CHECK(json && strstr(json, "\"\\u0000\"") != NULL);
    CHECK(json && strstr(json, "\"\xc3\xa9\"") != NULL); /* raw UTF-8, not \u00e9 */
    w = NULL;
    CHECK_OK(recur_vocab_from_json(json, json ? strlen(json) : 0, RECUR_VOCAB_CHARS, &w));
    CHECK(w && recur_vocab_size(w) == 7);
    for (int32_t i = 0; w && i < 7; i++)
        CHECK_MSG(recur_vocab_codepoint(w, i) == cps[i], "entry %d: U+%04X vs U+%04X", (int)i,
                  (unsigned)recur_vocab_codepoint(w, i), (unsigned)cps[i]);
    recur_free(json);
    json = NULL;
    recur_vocab_free(v);
    recur_vocab_free(w);

    /* Byte vocabulary: 256 Latin-1 characters; the kind travels beside it. */
    CHECK_OK(recur_vocab_build(NULL, 0, RECUR_VOCAB_BYTES, &v));
    CHECK_OK(recur_vocab_to_json(v, &json));
    const char *head = "[\"\\u0000\",\"\\u0001\",";
    CHECK(json && strncmp(json, head, strlen(head)) == 0);
    CHECK(json && strstr(json, ",\"A\",") != NULL);
    CHECK(json && strstr(json, ",\"\xc3\xbf\"]") != NULL); /* byte 0xff as U+00FF */
    w = NULL;
    CHECK_OK(recur_vocab_from_json(json, json ? strlen(json) : 0, RECUR_VOCAB_BYTES, &w));
    CHECK(w && recur_vocab_size(w) == 256 && recur_vocab_get_kind(w) == RECUR_VOCAB_BYTES);
    size_t tlen = 0;
    CHECK(w && (unsigned char)recur_vocab_token(w, 0xe9, &tlen)[0] == 0xe9 && tlen == 1);
    recur_vocab_free(w);
    /* Entries 0x41 and 0x42 swapped: a byte vocabulary must be in byte order. */
    char *swapped = json ? strstr(json, "\"A\",\"B\"") : NULL;
    if (swapped) {
        swapped[1] = 'B';
        swapped[5] = 'A';
        expect_bad_json(json, RECUR_VOCAB_BYTES,
                        "byte vocab entry 65 is 'B' (U+0042), expected U+0041");
    }
    recur_free(json);
    recur_vocab_free(v);

    recur_vocab_kind kind = RECUR_VOCAB_CHARS;
    CHECK(strcmp(recur_vocab_kind_name(RECUR_VOCAB_CHARS), "char") == 0);
    CHECK(strcmp(recur_vocab_kind_name(RECUR_VOCAB_BYTES), "byte") == 0);
    CHECK_OK(recur_vocab_kind_parse("byte", &kind));
    CHECK(kind == RECUR_VOCAB_BYTES);
    CHECK_OK(recur_vocab_kind_parse("char", &kind));
    CHECK(kind == RECUR_VOCAB_CHARS);
    CHECK_STATUS(recur_vocab_kind_parse("word", &kind), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("\"word\"");

    expect_bad_json("{\"a\": 1}", RECUR_VOCAB_CHARS, "vocab JSON is an object, not an array");
    expect_bad_json("\"abc\"", RECUR_VOCAB_CHARS, "vocab JSON is a string, not an array");
    expect_bad_json("[\"a\", ", RECUR_VOCAB_CHARS, "vocab JSON: ");
    expect_bad_json("[]", RECUR_VOCAB_CHARS, "empty array");
    expect_bad_json("[\"a\", 3]", RECUR_VOCAB_CHARS, "vocab entry 1 is an integer, not a string");
    expect_bad_json("[\"a\", null]", RECUR_VOCAB_CHARS, "vocab entry 1 is null, not a string");
    expect_bad_json("[\"a\", \"bc\"]", RECUR_VOCAB_CHARS,
                    "vocab entry 1 \"bc\" is 2 characters, not one");
    expect_bad_json("[\"\"]", RECUR_VOCAB_CHARS, "vocab entry 0 is an empty string");
    expect_bad_json("[\"x\", \"a\", \"b\", \"a\"]", RECUR_VOCAB_CHARS,
                    "vocab entry 3 duplicates vocab entry 1 ('a' (U+0061))");
    expect_bad_json("[\"\\u00e9\", \"\xc3\xa9\"]", RECUR_VOCAB_CHARS,
                    "vocab entry 1 duplicates vocab entry 0");
    expect_bad_json("[\"a\", \"b\"]", RECUR_VOCAB_BYTES,
                    "byte vocab JSON has 2 entries, expected 256");
}

static void test_read_file(void)
{
    char *data = NULL;
    size_t len = 0;
    const char *missing = RECUR_BINARY_DIR "/test_data_no_such_file.txt";
    CHECK_STATUS(recur_text_read_file(missing, &data, &len), RECUR_E_NOT_FOUND);
    CHECK_ERROR_MENTIONS(missing);
    CHECK_STATUS(recur_text_read_file(RECUR_SOURCE_DIR "/data", &data, &len), RECUR_E_IO);
    CHECK_ERROR_MENTIONS(RECUR_SOURCE_DIR "/data");

    const char *empty = RECUR_BINARY_DIR "/test_data_empty.txt";
    FILE *f = fopen(empty, "wb");
    CHECK(f != NULL);
    if (f)
        fclose(f);
    CHECK_STATUS(recur_text_read_file(empty, &data, &len), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("test_data_empty.txt is empty");
    remove(empty);

    /* A file larger than the first read buffer, with a NUL inside. */
    const char *path = RECUR_BINARY_DIR "/test_data_small.txt";
    size_t size = 200003;
    char *want = malloc(size);
    for (size_t i = 0; want && i < size; i++)
        want[i] = (char)('a' + i % 26);
    if (want)
        want[777] = '\0';
    f = fopen(path, "wb");
    if (f && want) {
        fwrite(want, 1, size, f);
        fclose(f);
    }
    CHECK_OK(recur_text_read_file(path, &data, &len));
    CHECK(len == size && data && want && memcmp(data, want, size) == 0 && data[size] == '\0');
    recur_free(data);
    free(want);
    remove(path);
}

static void test_split(void)
{
    size_t train = 0, val = 0;
    CHECK_OK(recur_text_split(1000, 0.10, 10, &train, &val));
    CHECK(train == 900 && val == 100);
    CHECK_OK(recur_text_split(1115394, RECUR_VAL_FRACTION_DEFAULT, 50, &train, &val));
    CHECK(val == 111539 && train == 1115394 - 111539);
    CHECK_OK(recur_text_split(1000, 0.0, 10, &train, &val));
    CHECK(train == 1000 && val == 0);
    /* Just large enough: 11 + 11 tokens for T = 10. */
    CHECK_OK(recur_text_split(22, 0.5, 10, &train, &val));
    CHECK(train == 11 && val == 11);

    CHECK_STATUS(recur_text_split(1000, 1.0, 10, &train, &val), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("val_fraction 1 is outside [0, 1)");
    CHECK_STATUS(recur_text_split(1000, -0.1, 10, &train, &val), RECUR_E_INVALID);
    CHECK_STATUS(recur_text_split(1000, nan(""), 10, &train, &val), RECUR_E_INVALID);
    CHECK_STATUS(recur_text_split(100, 0.05, 10, &train, &val), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("the validation part has 5 tokens");
    CHECK_STATUS(recur_text_split(20, 0.5, 10, &train, &val), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("the training part has 10 tokens");
    CHECK_STATUS(recur_text_split(10, 0.0, 10, &train, &val), RECUR_E_INVALID);
    CHECK_STATUS(recur_text_split(1000, 0.1, 0, &train, &val), RECUR_E_INVALID);

    /* On a real sequence the validation part is exactly the tail: the parts
     * meet without overlap or gap. */
    int32_t seq[1000];
    for (int i = 0; i < 1000; i++)
        seq[i] = i;
    CHECK_OK(recur_text_split(1000, 0.10, 10, &train, &val));
    const int32_t *val_part = seq + train;
    CHECK(seq[train - 1] == 899 && val_part[0] == 900 && val_part[val - 1] == 999);
}

/* Chunk k of stream b of a training walk over 0, 1, 2, ...: B = 3, T = 4,
 * n = 41 -> L = 13, 3 chunks per epoch (offsets 0, 4, 8; the last chunk
 * ends on token 12 of its stream); tokens 39, 40 are never used. */
enum { SB = 3, ST = 4, SN = 41, SL = 13 };

static void test_textstream(void)
{
    int32_t seq[SN];
    for (int i = 0; i < SN; i++)
        seq[i] = 100 + i;
    recur_textstream *s = NULL;
    CHECK_OK(recur_textstream_create(seq, SN, SB, ST, &s));
    if (!s)
        return;
    CHECK(recur_textstream_chunks_per_epoch(s) == 3);
    recur_textstream_pos pos = recur_textstream_get_pos(s);
    CHECK(pos.epoch == 0 && pos.offset == 0);

    int32_t chunk[(ST + 1) * SB], prev[(ST + 1) * SB] = {0};
    int steps = -1, wrapped = -1;
    for (int call = 0; call < 8; call++) {
        int k = call % 3;
        CHECK_OK(recur_textstream_next(s, chunk, &steps, &wrapped));
        CHECK(steps == ST);
        CHECK_MSG(wrapped == (call == 3 || call == 6), "call %d: wrapped %d", call, wrapped);
        pos = recur_textstream_get_pos(s);
        CHECK_MSG(pos.epoch == call / 3 && pos.offset == (k + 1) * ST,
                  "call %d: epoch %lld offset %lld", call, (long long)pos.epoch,
                  (long long)pos.offset);
        for (int t = 0; t <= ST; t++)
            for (int b = 0; b < SB; b++) {
                int32_t want = 100 + b * SL + k * ST + t;
                CHECK_MSG(chunk[t * SB + b] == want, "call %d t %d b %d: %d, expected %d", call, t,
                          b, (int)chunk[t * SB + b], (int)want);
            }
        /* Carry-over: within an epoch, each stream's chunk starts on the
         * token the previous chunk ended with. */
        if (k > 0)
            for (int b = 0; b < SB; b++)
                CHECK(chunk[0 * SB + b] == prev[ST * SB + b]);
        memcpy(prev, chunk, sizeof chunk);
    }
    /* Stream b never reads past its own end: the last row of the last
     * chunk of an epoch is the final token of each stream. */
    recur_textstream_free(s);

    /* Saving and restoring the position continues identically, across an
     * epoch wrap. */
    recur_textstream *a = NULL, *r = NULL;
    CHECK_OK(recur_textstream_create(seq, SN, SB, ST, &a));
    CHECK_OK(recur_textstream_create(seq, SN, SB, ST, &r));
    if (a && r) {
        for (int i = 0; i < 5; i++)
            recur_textstream_next(a, chunk, NULL, NULL);
        recur_textstream_pos saved = recur_textstream_get_pos(a);
        CHECK(saved.epoch == 1 && saved.offset == 8);
        CHECK_OK(recur_textstream_set_pos(r, &saved));
        for (int i = 0; i < 7; i++) {
            int32_t other[(ST + 1) * SB];
            int wa = -1, wr = -1;
            CHECK_OK(recur_textstream_next(a, chunk, NULL, &wa));
            CHECK_OK(recur_textstream_next(r, other, NULL, &wr));
            CHECK(wa == wr && memcmp(chunk, other, sizeof chunk) == 0);
        }
        recur_textstream_pos pa = recur_textstream_get_pos(a), pr = recur_textstream_get_pos(r);
        CHECK(pa.epoch == pr.epoch && pa.offset == pr.offset && pa.epoch == 3);

        recur_textstream_pos bad = {0, 3};
        CHECK_STATUS(recur_textstream_set_pos(r, &bad), RECUR_E_INVALID);
        CHECK_ERROR_MENTIONS("offset 3 is not a multiple of seq_len 4");
        bad = (recur_textstream_pos){0, 16};
        CHECK_STATUS(recur_textstream_set_pos(r, &bad), RECUR_E_INVALID);
        bad = (recur_textstream_pos){-1, 0};
        CHECK_STATUS(recur_textstream_set_pos(r, &bad), RECUR_E_INVALID);
        /* A failed restore leaves the position as it was. */
        pr = recur_textstream_get_pos(r);
        CHECK(pr.epoch == pa.epoch && pr.offset == pa.offset);
    }
    recur_textstream_free(a);
    recur_textstream_free(r);
    recur_textstream_free(NULL);

    /* Too short: 3 streams of 4 tokens cannot hold a chunk of T + 1 = 5. */
    CHECK_STATUS(recur_textstream_create(seq, 14, 3, 4, &s), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("too short for 3 streams");
    CHECK_STATUS(recur_textstream_create(seq, SN, 0, 4, &s), RECUR_E_INVALID);
    CHECK_STATUS(recur_textstream_create(seq, SN, 3, 0, &s), RECUR_E_INVALID);
    /* Exactly one chunk per stream: every call wraps after the first. */
    CHECK_OK(recur_textstream_create(seq, 15, 3, 4, &s));
    if (s) {
        CHECK(recur_textstream_chunks_per_epoch(s) == 1);
        CHECK_OK(recur_textstream_next(s, chunk, &steps, &wrapped));
        CHECK(wrapped == 0 && chunk[ST * SB + 2] == 114);
        CHECK_OK(recur_textstream_next(s, chunk, &steps, &wrapped));
        CHECK(wrapped == 1 && chunk[0] == 100 && recur_textstream_get_pos(s).epoch == 1);
    }
    recur_textstream_free(s);
}

/* Walks an evaluation stream over n tokens 0..n-1 and checks that every
 * token after the first is a target exactly once, in order. */
static void check_eval_walk(size_t n, int T)
{
    int32_t *seq = malloc(n * sizeof *seq);
    int *hits = calloc(n, sizeof *hits);
    int32_t *chunk = malloc(((size_t)T + 1) * sizeof *chunk);
    if (!seq || !hits || !chunk) {
        CHECK(!"allocation");
        free(seq);
        free(hits);
        free(chunk);
        return;
    }
    for (size_t i = 0; i < n; i++)
        seq[i] = (int32_t)i;
    recur_textstream *s = NULL;
    CHECK_OK(recur_textstream_create_eval(seq, n, T, &s));
    int64_t chunks = 0, partial = 0;
    int32_t expect_first = 0;
    int steps = -1, wrapped = -1;
    while (s) {
        for (int t = 0; t <= T; t++)
            chunk[t] = -7;
        CHECK_OK(recur_textstream_next(s, chunk, &steps, &wrapped));
        CHECK(wrapped == 0);
        if (steps <= 0)
            break;
        chunks++;
        CHECK(steps <= T);
        if (steps < T)
            partial++;
        CHECK_MSG(chunk[0] == expect_first, "n %zu T %d: chunk starts at %d, expected %d", n, T,
                  (int)chunk[0], (int)expect_first);
        for (int t = 1; t <= steps; t++)
            if (chunk[t] >= 0 && (size_t)chunk[t] < n)
                hits[chunk[t]]++;
        for (int t = steps + 1; t <= T; t++)
            CHECK(chunk[t] == -7);
        expect_first = chunk[steps];
    }
    CHECK(steps == 0);
    size_t once = 0;
    for (size_t i = 1; i < n; i++)
        once += hits[i] == 1;
    CHECK_MSG(hits[0] == 0 && once == n - 1, "n %zu T %d: %zu of %zu targets seen once", n, T, once,
              n - 1);
    int64_t want_chunks = (int64_t)((n - 1 + (size_t)T - 1) / (size_t)T);
    CHECK_MSG(chunks == want_chunks, "n %zu T %d: %lld chunks, expected %lld", n, T,
              (long long)chunks, (long long)want_chunks);
    CHECK(s && recur_textstream_chunks_per_epoch(s) == want_chunks);
    CHECK(partial == ((n - 1) % (size_t)T != 0));
    /* Past the end it stays done. */
    CHECK_OK(recur_textstream_next(s, chunk, &steps, NULL));
    CHECK(steps == 0);
    recur_textstream_free(s);
    free(seq);
    free(hits);
    free(chunk);
}

static void test_eval_walk(void)
{
    /* n = 11, T = 4: chunks [0..4], [4..8], [8..10] (2 steps). */
    int32_t seq[11];
    for (int i = 0; i < 11; i++)
        seq[i] = i;
    recur_textstream *s = NULL;
    CHECK_OK(recur_textstream_create_eval(seq, 11, 4, &s));
    if (s) {
        int32_t chunk[5];
        int steps = -1;
        static const int want_steps[] = {4, 4, 2, 0};
        for (int k = 0; k < 4; k++) {
            CHECK_OK(recur_textstream_next(s, chunk, &steps, NULL));
            CHECK_MSG(steps == want_steps[k], "chunk %d: %d steps, expected %d", k, steps,
                      want_steps[k]);
            for (int t = 0; steps > 0 && t <= steps; t++)
                CHECK(chunk[t] == 4 * k + t);
        }
        /* The walk's position restores too (epoch must stay 0). */
        recur_textstream_pos p = {0, 4};
        CHECK_OK(recur_textstream_set_pos(s, &p));
        CHECK_OK(recur_textstream_next(s, chunk, &steps, NULL));
        CHECK(steps == 4 && chunk[0] == 4);
        p.epoch = 1;
        CHECK_STATUS(recur_textstream_set_pos(s, &p), RECUR_E_INVALID);
    }
    recur_textstream_free(s);
    CHECK_STATUS(recur_textstream_create_eval(seq, 1, 4, &s), RECUR_E_INVALID);

    check_eval_walk(2, 1);
    check_eval_walk(2, 5);
    check_eval_walk(9, 4);
    check_eval_walk(11, 4);
    check_eval_walk(1000, 7);
    check_eval_walk(1001, 50);
}

/* Failing allocator: the k-th allocation fails; counts live blocks. */
static int alloc_budget, alloc_live;
static void *failing_malloc(size_t size, void *user)
{
    (void)user;
    if (alloc_budget-- <= 0)
        return NULL;
    alloc_live++;
    return malloc(size);
}
static void failing_free(void *ptr, void *user)
{
    (void)user;
    alloc_live--;
    free(ptr);
}

static void test_out_of_memory(void)
{
    const char *text = "h\xc3\xa9llo \xe2\x82\xac";
    int succeeded = 0;
    for (int budget = 0; budget < 40 && !succeeded; budget++) {
        recur_allocator failing = {failing_malloc, failing_free, NULL};
        alloc_budget = budget;
        alloc_live = 0;
        recur_set_allocator(&failing);
        recur_vocab *v = NULL, *w = NULL;
        int32_t *ids = NULL;
        size_t n = 0;
        char *json = NULL;
        int rc = recur_vocab_build(text, strlen(text), RECUR_VOCAB_CHARS, &v);
        if (rc == 0)
            rc = recur_vocab_encode(v, text, strlen(text), &ids, &n);
        if (rc == 0)
            rc = recur_vocab_to_json(v, &json);
        if (rc == 0)
            rc = recur_vocab_from_json(json, json ? strlen(json) : 0, RECUR_VOCAB_CHARS, &w);
        CHECK_MSG(rc == 0 || rc == RECUR_E_NOMEM, "budget %d: status %d (%s)", budget, rc,
                  recur_last_error());
        succeeded = rc == 0;
        recur_vocab_free(w);
        recur_free(json);
        recur_free(ids);
        recur_vocab_free(v);
        CHECK_MSG(alloc_live == 0, "budget %d: %d blocks leaked", budget, alloc_live);
        recur_set_allocator(NULL);
    }
    CHECK(succeeded);
}

static void test_tinyshakespeare(void)
{
    const char *path = RECUR_SOURCE_DIR "/data/tinyshakespeare.txt";
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(recur_text_read_file(path, &text, &len));
    if (!text)
        return;
    CHECK(len == 1115394);
    recur_vocab *v = NULL;
    CHECK_OK(recur_vocab_build(text, len, RECUR_VOCAB_CHARS, &v));
    if (!v) {
        recur_free(text);
        return;
    }
    CHECK_MSG(recur_vocab_size(v) == 65, "vocabulary of %d characters, expected 65",
              (int)recur_vocab_size(v));
    CHECK(strcmp(recur_vocab_token(v, 0, NULL), "\n") == 0);
    CHECK(strcmp(recur_vocab_token(v, 1, NULL), " ") == 0);
    CHECK(strcmp(recur_vocab_token(v, 64, NULL), "z") == 0);

    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(recur_vocab_encode(v, text, len, &ids, &n));
    CHECK(n == len);
    char *back = NULL;
    size_t back_len = 0;
    CHECK_OK(recur_vocab_decode(v, ids, n, &back, &back_len));
    CHECK(back_len == len && back && memcmp(back, text, len) == 0);
    recur_free(back);

    char *json = NULL;
    recur_vocab *w = NULL;
    CHECK_OK(recur_vocab_to_json(v, &json));
    CHECK_OK(recur_vocab_from_json(json, json ? strlen(json) : 0, RECUR_VOCAB_CHARS, &w));
    CHECK(w && recur_vocab_size(w) == 65);
    for (int32_t i = 0; w && i < 65; i++)
        CHECK(recur_vocab_codepoint(w, i) == recur_vocab_codepoint(v, i));
    recur_free(json);
    recur_vocab_free(w);

    /* char-rnn's setting: 10% validation, 50 streams of 50 steps. */
    size_t train = 0, val = 0;
    CHECK_OK(recur_text_split(n, RECUR_VAL_FRACTION_DEFAULT, 50, &train, &val));
    CHECK(train == 1003855 && val == 111539);
    recur_textstream *s = NULL;
    CHECK_OK(recur_textstream_create(ids, train, 50, 50, &s));
    CHECK(s && recur_textstream_chunks_per_epoch(s) == (int64_t)((train / 50 - 1) / 50));
    recur_textstream_free(s);
    recur_free(ids);
    recur_vocab_free(v);
    recur_free(text);
}

int main(void)
{
    test_utf8_valid();
    test_utf8_invalid();
    test_vocab_chars();
    test_vocab_out_of_vocabulary();
    test_vocab_bytes();
    test_vocab_from_codepoints();
    test_vocab_equal();
    test_vocab_json();
    test_read_file();
    test_split();
    test_textstream();
    test_eval_walk();
    test_out_of_memory();
    test_tinyshakespeare();
    CHECK_DONE();
}
