/* test_safetensors.c - the safetensors reader and writer: round trips of every
 * writable dtype with metadata, scalars and zero-size tensors; hand-made F16,
 * BF16 and integer files; one hand-made file per rule the reader enforces
 * (status and message); truncation at every length; the Python layout byte
 * for byte; the committed PyTorch fixtures; and the atomic save. */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "recur/safetensors.h"

/* [8-byte little-endian length of json][json][data] in a malloc'd buffer. */
static unsigned char *make_file(const char *json, const void *data, size_t data_len, size_t *size)
{
    size_t n = strlen(json);
    *size = 8 + n + data_len;
    unsigned char *b = malloc(*size ? *size : 1);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, json, n);
    if (data_len)
        memcpy(b + 8 + n, data, data_len);
    return b;
}

static unsigned char zeros[256];

/* Parses a hand-made file that breaks one rule: checks the status, that the
 * message names the problem, and that *out stays NULL. */
#define EXPECT_BAD(json, data_len, needle)                                             \
    do {                                                                               \
        size_t size_;                                                                  \
        unsigned char *b_ = make_file((json), zeros, (data_len), &size_);              \
        recur_st *st_ = (recur_st *)&size_;                                            \
        CHECK_STATUS(recur_st_parse(b_, size_, &st_), RECUR_E_FORMAT);                 \
        CHECK_ERROR_MENTIONS(needle);                                                  \
        CHECK(st_ == NULL);                                                            \
        free(b_);                                                                      \
    } while (0)

#define EXPECT_GOOD(json, data_len)                                                    \
    do {                                                                               \
        size_t size_;                                                                  \
        unsigned char *b_ = make_file((json), zeros, (data_len), &size_);              \
        recur_st *st_ = NULL;                                                          \
        CHECK_OK(recur_st_parse(b_, size_, &st_));                                     \
        CHECK(st_ != NULL);                                                            \
        recur_st_free(st_);                                                            \
        free(b_);                                                                      \
    } while (0)

#define T1 "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"

static void test_rules(void)
{
    size_t size;
    recur_st *st = NULL;

    /* Length field. */
    unsigned char tiny[5] = {2, 0, 0, 0, 0};
    CHECK_STATUS(recur_st_parse(tiny, sizeof tiny, &st), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("truncated: 5 bytes");
    CHECK_STATUS(recur_st_parse(tiny, 0, &st), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("truncated: 0 bytes");

    unsigned char *b = make_file(T1, zeros, 4, &size);
    uint64_t big = RECUR_ST_MAX_HEADER + 1ull;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(big >> (8 * i));
    CHECK_STATUS(recur_st_parse(b, size, &st), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("header length 100000001 exceeds the limit of 100000000 bytes");
    memset(b, 0xff, 8); /* 2^64 - 1 */
    CHECK_STATUS(recur_st_parse(b, size, &st), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("exceeds the limit");
    b[0] = (unsigned char)(size - 8 + 1);
    memset(b + 1, 0, 7);
    CHECK_STATUS(recur_st_parse(b, size, &st), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("truncated: the header length field says");
    b[0] = 0;
    CHECK_STATUS(recur_st_parse(b, size, &st), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("does not start with '{'");
    free(b);

    /* JSON. */
    EXPECT_BAD("[1, 2]", 0, "does not start with '{'");
    EXPECT_BAD(" {}", 0, "does not start with '{'");
    EXPECT_BAD("\"x\"", 0, "does not start with '{'");
    EXPECT_BAD("{\"a\":", 0, "not valid JSON");
    EXPECT_BAD("{} x", 0, "not valid JSON");
    EXPECT_BAD("{\"\xff\":1}", 0, "not valid JSON");
    EXPECT_BAD("{\"a\\u0000b\":{}}", 0, "not valid JSON");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "duplicate");
    EXPECT_BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,18446744073709551615]}}",
               0, "not valid JSON");

    /* Tensor entries. */
    EXPECT_BAD("{\"a\":5}", 0, "tensor 'a': entry is a JSON integer, expected an object");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
               "tensor 'a': unexpected field 'x'");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
               "tensor 'a': missing field 'shape'");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
               "tensor 'a': missing field 'data_offsets'");
    EXPECT_BAD("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "tensor 'a': missing field 'dtype'");
    EXPECT_BAD("{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8,
               "tensor 'a': unknown dtype 'C64'");
    EXPECT_BAD("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "unknown dtype 'f32'");
    EXPECT_BAD("{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "tensor 'a': dtype is a JSON integer, expected a string");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4,
               "tensor 'a': shape is a JSON string, expected an array");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,-2],\"data_offsets\":[0,4]}}", 4,
               "tensor 'a': shape[1] = -2 is negative");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4,
               "tensor 'a': shape[0] is a JSON real number");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
               4, "shape has 9 dimensions, more than the limit of 8");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{}}}", 4,
               "tensor 'a': data_offsets is a JSON object");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
               "tensor 'a': data_offsets has 3 entries, expected 2");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-1,3]}}", 4,
               "tensor 'a': data_offsets[0] = -1 is negative");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,\"4\"]}}", 4,
               "tensor 'a': data_offsets[1] is a JSON string");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
               "tensor 'a': data_offsets begin 8 > end 4");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12,
               "tensor 'a': data_offsets [0, 12] span 12 bytes but shape [2] of F64 needs 16 bytes");
    EXPECT_BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,16],"
               "\"data_offsets\":[0,0]}}", 0, "element count of shape [4294967296, 4294967296, 16] overflows");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}",
               0, "byte size of shape [4611686018427387904] x F64 overflows");

    /* Coverage of the data buffer. */
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
               "gap in the data buffer: tensor 'a' begins at byte 4 but the buffer start");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
               12, "gap in the data buffer: tensor 'b' begins at byte 8 but tensor 'a' ends at byte 4");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "overlapping tensors: 'b' begins at byte 4, before 'a' ends at byte 8");
    EXPECT_BAD(T1, 6, "2 trailing bytes after the last tensor");
    EXPECT_BAD(T1, 3, "truncated: the tensors need 4 data bytes but only 3");
    EXPECT_BAD("{}", 1, "1 trailing bytes");

    /* __metadata__. */
    EXPECT_BAD("{\"__metadata__\":[\"a\"]}", 0, "__metadata__ is a JSON array, expected an object");
    EXPECT_BAD("{\"__metadata__\":{\"k\":\"v\",\"n\":1}}", 0,
               "__metadata__ value for key 'n' is a JSON integer, expected a string");
    EXPECT_BAD("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate");

    /* Accepted edge cases: padding, zero-size tensors sharing an offset,
     * scalars, an empty file, offsets in any header order. */
    EXPECT_GOOD("{}", 0);
    EXPECT_GOOD("{}      ", 0);
    EXPECT_GOOD("{\"__metadata__\":{}}", 0);
    EXPECT_GOOD("{\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
                "\"y\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[0,0]}}", 0);
    EXPECT_GOOD("{\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[4,8]},"
                "\"e\":{\"dtype\":\"I8\",\"shape\":[0],\"data_offsets\":[8,8]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}   ", 8);
}

static void test_f16_bf16(void)
{
    /* F16: 1, -2, smallest subnormal 2^-24, largest subnormal 1023 * 2^-24,
     * largest normal 65504, +inf, -inf, NaN, -0. */
    const uint16_t f16[9] = {0x3c00, 0xc000, 0x0001, 0x03ff, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x8000};
    /* BF16: 1, -3, 3.140625, the smallest subnormal 2^-133, +inf, NaN. */
    const uint16_t bf16[6] = {0x3f80, 0xc040, 0x4049, 0x0001, 0x7f80, 0x7fc0};
    unsigned char data[30];
    memcpy(data, f16, 18);
    memcpy(data + 18, bf16, 12);
    size_t size;
    unsigned char *b = make_file("{\"h\":{\"dtype\":\"F16\",\"shape\":[3,3],\"data_offsets\":[0,18]},"
                                 "\"bf\":{\"dtype\":\"BF16\",\"shape\":[6],\"data_offsets\":[18,30]}}",
                                 data, sizeof data, &size);
    recur_st *st = NULL;
    CHECK_OK(recur_st_parse(b, size, &st));
    free(b);
    if (!st)
        return;
    double h[9], bfv[6];
    float hf[9], bff[6];
    CHECK_OK(recur_st_read_f64(st, "h", h, 9));
    int64_t shape[2] = {3, 3};
    CHECK_OK(recur_st_read_f32_shape(st, "h", 2, shape, hf));
    const double want_h[5] = {1.0, -2.0, 0x1p-24, 1023 * 0x1p-24, 65504.0};
    for (int i = 0; i < 5; i++) {
        CHECK_NEAR(h[i], want_h[i], 0.0);
        CHECK_NEAR(hf[i], want_h[i], 0.0);
    }
    CHECK(isinf(h[5]) && h[5] > 0 && isinf(hf[5]) && hf[5] > 0);
    CHECK(isinf(h[6]) && h[6] < 0 && isinf(hf[6]) && hf[6] < 0);
    CHECK(isnan(h[7]) && isnan(hf[7]));
    CHECK(h[8] == 0.0 && signbit(h[8]) && signbit(hf[8]));

    CHECK_OK(recur_st_read_f64(st, "bf", bfv, 6));
    CHECK_OK(recur_st_read_f32(st, "bf", bff, 6));
    const double want_bf[4] = {1.0, -3.0, 3.140625, 0x1p-133};
    for (int i = 0; i < 4; i++) {
        CHECK_NEAR(bfv[i], want_bf[i], 0.0);
        CHECK_NEAR(bff[i], want_bf[i], 0.0);
    }
    CHECK(isinf(bfv[4]) && bfv[4] > 0 && isinf(bff[4]));
    CHECK(isnan(bfv[5]) && isnan(bff[5]));

    const recur_st_tensor *t = recur_st_find(st, "bf");
    CHECK(t && t->dtype == RECUR_DTYPE_BF16 && t->ndim == 1 && t->shape[0] == 6 && t->numel == 6 &&
          t->nbytes == 12);
    CHECK(strcmp(recur_dtype_name(RECUR_DTYPE_BF16), "BF16") == 0);
    CHECK(recur_dtype_size(RECUR_DTYPE_F16) == 2);
    recur_st_free(st);
}

static void test_integer_dtypes(void)
{
    /* A U8 tensor first makes every later tensor's data unaligned. */
    unsigned char data[1 + 8 + 8 + 4 + 4 + 2 + 2 + 2];
    size_t at = 0;
    data[at++] = 250;
    int64_t i64 = -9007199254740993LL; /* -(2^53 + 1): not exact in double */
    memcpy(data + at, &i64, 8), at += 8;
    double f64 = 1e300; /* overflows float: inf */
    memcpy(data + at, &f64, 8), at += 8;
    int32_t i32 = -123456;
    memcpy(data + at, &i32, 4), at += 4;
    float f32 = -0.5f;
    memcpy(data + at, &f32, 4), at += 4;
    int16_t i16 = -32768;
    memcpy(data + at, &i16, 2), at += 2;
    data[at++] = (unsigned char)(int8_t)-7; /* I8 */
    data[at++] = 2;                        /* BOOL, nonzero */
    data[at++] = 0;                        /* BOOL */
    data[at++] = 1;
    size_t size;
    unsigned char *b = make_file(
        "{\"u8\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
        "\"i64\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[1,9]},"
        "\"f64\":{\"dtype\":\"F64\",\"shape\":[1,1],\"data_offsets\":[9,17]},"
        "\"i32\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[17,21]},"
        "\"f32\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[21,25]},"
        "\"i16\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[25,27]},"
        "\"i8\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[27,28]},"
        "\"bool\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[28,31]}}",
        data, at, &size);
    recur_st *st = NULL;
    CHECK_OK(recur_st_parse(b, size, &st));
    free(b);
    if (!st)
        return;
    double v[3];
    float f[3];
    CHECK_OK(recur_st_read_f64(st, "u8", v, 1));
    CHECK_NEAR(v[0], 250.0, 0.0);
    CHECK_OK(recur_st_read_f64(st, "i64", v, 1));
    CHECK_NEAR(v[0], -9007199254740992.0, 0.0);
    CHECK_OK(recur_st_read_f32(st, "f64", f, 1));
    CHECK(isinf(f[0]) && f[0] > 0);
    CHECK_OK(recur_st_read_f64(st, "i32", v, 1));
    CHECK_NEAR(v[0], -123456.0, 0.0);
    CHECK_OK(recur_st_read_f64(st, "f32", v, 1));
    CHECK_NEAR(v[0], -0.5, 0.0);
    CHECK_OK(recur_st_read_f32(st, "i16", f, 1));
    CHECK_NEAR(f[0], -32768.0, 0.0);
    CHECK_OK(recur_st_read_f64(st, "i8", v, 1));
    CHECK_NEAR(v[0], -7.0, 0.0);
    CHECK_OK(recur_st_read_f32(st, "bool", f, 3));
    CHECK(f[0] == 1.0f && f[1] == 0.0f && f[2] == 1.0f);
    /* File order follows the data offsets. */
    CHECK(recur_st_count(st) == 8);
    CHECK(strcmp(recur_st_at(st, 0)->name, "u8") == 0);
    CHECK(strcmp(recur_st_at(st, 7)->name, "bool") == 0);
    CHECK(recur_st_at(st, 8) == NULL && recur_st_at(st, -1) == NULL);
    recur_st_free(st);
}

/* The writer output for a mix of dtypes and shapes, read back exactly. */
static void test_round_trip(const char *dir)
{
    float a[6] = {1.5f, -2.25f, 3e-38f, 1e38f, -0.0f, 7.0f}; /* [2, 3] */
    double s = -3.141592653589793;                          /* scalar */
    int64_t ids[4] = {INT64_MIN, -1, 0, INT64_MAX};          /* [4] */
    double d[2][2][2] = {{{1e-300, 2}, {3, 4}}, {{5, 6}, {7, 1e300}}};
    int32_t i32[3] = {-5, 0, 2147483647};
    unsigned char u8[3] = {0, 128, 255};
    int64_t shape_a[2] = {2, 3}, shape_ids[1] = {4}, shape_d[3] = {2, 2, 2};
    int64_t shape_empty[2] = {0, 5}, shape_3[1] = {3};

    recur_st_writer *w = NULL;
    CHECK_OK(recur_st_writer_create(&w));
    CHECK_OK(recur_st_writer_add(w, "layer.weight", RECUR_DTYPE_F32, 2, shape_a, a));
    CHECK_OK(recur_st_writer_add(w, "empty", RECUR_DTYPE_F32, 2, shape_empty, NULL));
    CHECK_OK(recur_st_writer_add(w, "scalar", RECUR_DTYPE_F64, 0, NULL, &s));
    CHECK_OK(recur_st_writer_add(w, "ids", RECUR_DTYPE_I64, 1, shape_ids, ids));
    CHECK_OK(recur_st_writer_add(w, "cube", RECUR_DTYPE_F64, 3, shape_d, d));
    CHECK_OK(recur_st_writer_add(w, "i32", RECUR_DTYPE_I32, 1, shape_3, i32));
    CHECK_OK(recur_st_writer_add(w, "bytes", RECUR_DTYPE_U8, 1, shape_3, u8));
    CHECK_OK(recur_st_writer_metadata(w, "kind", "test"));
    CHECK_OK(recur_st_writer_metadata(w, "note", "first"));
    CHECK_OK(recur_st_writer_metadata(w, "note", "a \"quoted\" value, \xc3\xbc and \\ too"));
    CHECK_OK(recur_st_writer_metadata(w, "json", "{\"hidden\": [1, 2]}"));

    /* Writer input checks. */
    CHECK_STATUS(recur_st_writer_add(w, "ids", RECUR_DTYPE_I64, 1, shape_ids, ids), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("tensor 'ids' was already added");
    CHECK_STATUS(recur_st_writer_add(w, "h", RECUR_DTYPE_F16, 1, shape_ids, ids), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("not F16");
    CHECK_STATUS(recur_st_writer_add(w, "__metadata__", RECUR_DTYPE_F32, 1, shape_ids, a),
                 RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("reserved");
    CHECK_STATUS(recur_st_writer_add(w, "bad\xff", RECUR_DTYPE_F32, 1, shape_ids, a), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("not valid UTF-8");
    int64_t negative[1] = {-1}, nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK_STATUS(recur_st_writer_add(w, "n", RECUR_DTYPE_F32, 1, negative, a), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("shape[0] = -1 is negative");
    CHECK_STATUS(recur_st_writer_add(w, "n", RECUR_DTYPE_F32, 9, nine, a), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("ndim 9");
    CHECK_STATUS(recur_st_writer_add(w, "n", RECUR_DTYPE_F32, 1, shape_ids, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("data is NULL");

    void *bytes = NULL;
    size_t size = 0;
    CHECK_OK(recur_st_writer_serialize(w, &bytes, &size));
    CHECK(bytes != NULL);
    if (!bytes) {
        recur_st_writer_free(w);
        return;
    }
    const unsigned char *p = bytes;
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = (header_len << 8) | p[i];
    CHECK(header_len % 8 == 0);
    const char *want_start = "{\"__metadata__\":{\"kind\":\"test\",\"note\":";
    CHECK(memcmp(p + 8, want_start, strlen(want_start)) == 0);
    size_t data_len = 24 + 8 + 32 + 64 + 12 + 3;
    CHECK_MSG(size == 8 + header_len + data_len, "size %zu, header %llu, data %zu", size,
              (unsigned long long)header_len, data_len);

    /* Truncation at every length is an error, never a success. */
    int truncated_ok = 0;
    for (size_t n = 0; n < size; n++) {
        recur_st *st = NULL;
        int rc = recur_st_parse(bytes, n, &st);
        if (rc != RECUR_E_FORMAT || st != NULL) {
            truncated_ok++;
            fprintf(stderr, "truncated to %zu of %zu bytes: status %d\n", n, size, rc);
        }
        recur_st_free(st);
    }
    CHECK(truncated_ok == 0);

    char path[1024];
    snprintf(path, sizeof path, "%s/round_trip.safetensors", dir);
    CHECK_OK(recur_st_writer_save(w, path));
    recur_st_writer_free(w);

    /* save and serialize write the same bytes. */
    FILE *f = fopen(path, "rb");
    unsigned char *disk = malloc(size + 1);
    size_t got = f ? fread(disk, 1, size + 1, f) : 0;
    if (f)
        fclose(f);
    CHECK(got == size && memcmp(disk, bytes, size) == 0);
    free(disk);
    recur_free(bytes);

    recur_st *st = NULL;
    CHECK_OK(recur_st_open(path, &st));
    if (!st)
        return;
    CHECK(recur_st_count(st) == 7);
    const char *order[7] = {"layer.weight", "empty", "scalar", "ids", "cube", "i32", "bytes"};
    for (int i = 0; i < 7 && i < recur_st_count(st); i++)
        CHECK_MSG(strcmp(recur_st_at(st, i)->name, order[i]) == 0, "tensor %d is '%s', expected '%s'",
                  i, recur_st_at(st, i)->name, order[i]);

    float a2[6];
    CHECK_OK(recur_st_read_f32_shape(st, "layer.weight", 2, shape_a, a2));
    CHECK(memcmp(a, a2, sizeof a) == 0);
    double s2 = 0;
    CHECK_OK(recur_st_read_f64(st, "scalar", &s2, 1));
    CHECK_NEAR(s2, s, 0.0);
    const recur_st_tensor *t = recur_st_find(st, "scalar");
    CHECK(t && t->ndim == 0 && t->numel == 1 && t->nbytes == 8 && t->dtype == RECUR_DTYPE_F64);
    t = recur_st_find(st, "empty");
    CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 5 && t->numel == 0 && t->nbytes == 0);
    CHECK_OK(recur_st_read_f32(st, "empty", NULL, 0));
    t = recur_st_find(st, "ids");
    int64_t ids2[4];
    CHECK(t && t->dtype == RECUR_DTYPE_I64 && t->nbytes == sizeof ids2);
    if (t) {
        memcpy(ids2, t->data, sizeof ids2);
        CHECK(memcmp(ids, ids2, sizeof ids) == 0);
    }
    double d2[8];
    CHECK_OK(recur_st_read_f64(st, "cube", d2, 8));
    CHECK(memcmp(d, d2, sizeof d) == 0);
    double v[3];
    CHECK_OK(recur_st_read_f64(st, "i32", v, 3));
    CHECK(v[0] == -5 && v[1] == 0 && v[2] == 2147483647.0);
    CHECK_OK(recur_st_read_f64(st, "bytes", v, 3));
    CHECK(v[0] == 0 && v[1] == 128 && v[2] == 255);

    /* Metadata, in insertion order, with the replaced value. */
    CHECK(recur_st_metadata_count(st) == 3);
    CHECK(recur_st_metadata(st, "kind") && strcmp(recur_st_metadata(st, "kind"), "test") == 0);
    const char *note = recur_st_metadata(st, "note");
    CHECK(note && strcmp(note, "a \"quoted\" value, \xc3\xbc and \\ too") == 0);
    CHECK(recur_st_metadata(st, "absent") == NULL);
    const char *key = NULL, *value = NULL;
    CHECK_OK(recur_st_metadata_at(st, 2, &key, &value));
    CHECK(key && value && strcmp(key, "json") == 0 && strcmp(value, "{\"hidden\": [1, 2]}") == 0);
    CHECK_STATUS(recur_st_metadata_at(st, 3, &key, &value), RECUR_E_INVALID);

    /* Read errors. */
    CHECK(recur_st_find(st, "nope") == NULL);
    CHECK_ERROR_MENTIONS("no tensor named 'nope'");
    CHECK_STATUS(recur_st_read_f64(st, "nope", v, 3), RECUR_E_NOT_FOUND);
    CHECK_STATUS(recur_st_read_f64(st, "i32", v, 2), RECUR_E_SHAPE);
    CHECK_ERROR_MENTIONS("tensor 'i32' has 3 elements but the caller expects 2");
    int64_t wrong[2] = {3, 2};
    CHECK_STATUS(recur_st_read_f32_shape(st, "layer.weight", 2, wrong, a2), RECUR_E_SHAPE);
    CHECK_ERROR_MENTIONS("has shape [2, 3], expected [3, 2]");
    recur_st_free(st);
    recur_st_free(NULL);
    recur_st_writer_free(NULL);
}

/* The reference (Python) writer's layout: compact JSON, __metadata__ first,
 * fields dtype/shape/data_offsets, spaces up to a multiple of 8. */
static void test_python_layout(void)
{
    const char header[] = "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\","
                          "\"shape\":[2],\"data_offsets\":[0,8]}}   ";
    float a[2] = {1.0f, 2.0f};
    size_t want_size;
    unsigned char *want = make_file(header, a, sizeof a, &want_size);
    CHECK(want[0] == 88);

    recur_st_writer *w = NULL;
    int64_t shape[1] = {2};
    CHECK_OK(recur_st_writer_create(&w));
    CHECK_OK(recur_st_writer_add(w, "a", RECUR_DTYPE_F32, 1, shape, a));
    CHECK_OK(recur_st_writer_metadata(w, "format", "pt"));
    void *bytes = NULL;
    size_t size = 0;
    CHECK_OK(recur_st_writer_serialize(w, &bytes, &size));
    CHECK_MSG(size == want_size && bytes && memcmp(bytes, want, size) == 0,
              "writer output (%zu bytes) differs from the Python layout (%zu bytes): %.*s", size,
              want_size, bytes ? (int)(size > 8 ? size - 8 : 0) : 0,
              bytes ? (const char *)bytes + 8 : "");
    recur_st *st = NULL;
    CHECK_OK(recur_st_parse(want, want_size, &st));
    CHECK(recur_st_metadata(st, "format") && strcmp(recur_st_metadata(st, "format"), "pt") == 0);
    recur_st_free(st);
    recur_free(bytes);
    recur_st_writer_free(w);
    free(want);

    /* An empty writer gives "{}" padded to 8 bytes. */
    CHECK_OK(recur_st_writer_create(&w));
    CHECK_OK(recur_st_writer_serialize(w, &bytes, &size));
    CHECK(size == 16 && bytes && memcmp((char *)bytes + 8, "{}      ", 8) == 0);
    CHECK_OK(recur_st_parse(bytes, size, &st));
    CHECK(recur_st_count(st) == 0 && recur_st_metadata_count(st) == 0);
    recur_st_free(st);
    recur_free(bytes);
    recur_st_writer_free(w);
}

/* Every committed fixture (written by PyTorch's safetensors) opens. */
static void test_fixtures(void)
{
    DIR *dir = opendir(RECUR_FIXTURES_DIR);
    CHECK_MSG(dir != NULL, "cannot open %s", RECUR_FIXTURES_DIR);
    if (!dir)
        return;
    int files = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        size_t n = strlen(entry->d_name);
        if (n < 12 || strcmp(entry->d_name + n - 12, ".safetensors") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", RECUR_FIXTURES_DIR, entry->d_name);
        recur_st *st = NULL;
        CHECK_OK(recur_st_open(path, &st));
        if (!st)
            continue;
        files++;
        CHECK_MSG(recur_st_count(st) > 0, "%s has no tensors", path);
        CHECK_MSG(recur_st_metadata(st, "kind") != NULL, "%s has no 'kind' metadata", path);
        for (int i = 0; i < recur_st_count(st); i++) {
            const recur_st_tensor *t = recur_st_at(st, i);
            double *v = malloc((t->numel ? t->numel : 1) * sizeof *v);
            CHECK_OK(recur_st_read_f64(st, t->name, v, t->numel));
            free(v);
        }
        recur_st_free(st);
    }
    closedir(dir);
    CHECK_MSG(files >= 20, "only %d fixtures found in %s", files, RECUR_FIXTURES_DIR);

    recur_st *st = NULL;
    CHECK_OK(recur_st_open(RECUR_FIXTURES_DIR "/clip_norm.safetensors", &st));
    const recur_st_tensor *g0 = recur_st_find(st, "g0");
    CHECK(g0 && g0->dtype == RECUR_DTYPE_F64 && g0->ndim == 2 && g0->shape[0] == 3 &&
          g0->shape[1] == 4);
    CHECK(recur_st_metadata(st, "kind") && strcmp(recur_st_metadata(st, "kind"), "clip") == 0);
    recur_st_free(st);

    /* A PyTorch-written file truncated anywhere is rejected too. */
    FILE *f = fopen(RECUR_FIXTURES_DIR "/clip_norm.safetensors", "rb");
    unsigned char buf[4096];
    size_t size = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    CHECK(size > 8 && size < sizeof buf);
    int accepted = 0;
    for (size_t n = 0; n < size; n++) {
        st = NULL;
        accepted += recur_st_parse(buf, n, &st) != RECUR_E_FORMAT || st != NULL;
        recur_st_free(st);
    }
    CHECK_MSG(accepted == 0, "%d truncations of clip_norm.safetensors were not rejected", accepted);

    CHECK_STATUS(recur_st_open(RECUR_FIXTURES_DIR "/no_such.safetensors", &st), RECUR_E_IO);
    CHECK_ERROR_MENTIONS("no_such.safetensors");
    CHECK_ERROR_MENTIONS(strerror(ENOENT));
    CHECK_STATUS(recur_st_open(RECUR_FIXTURES_DIR, &st), RECUR_E_IO);
    CHECK_ERROR_MENTIONS("not a regular file");
}

static bool exists(const char *path)
{
    struct stat info;
    return stat(path, &info) == 0;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* 1 when path holds exactly text. */
static bool file_is(const char *path, const char *text)
{
    char buf[256];
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return n == strlen(text) && memcmp(buf, text, n) == 0;
}

/* Number of entries in dir other than . and .. */
static int count_entries(const char *path)
{
    DIR *dir = opendir(path);
    int n = 0;
    struct dirent *entry;
    while (dir && (entry = readdir(dir)) != NULL)
        n += strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0;
    if (dir)
        closedir(dir);
    return n;
}

static void test_atomic_save(const char *dir)
{
    float v[2] = {1, 2};
    int64_t shape[1] = {2};
    recur_st_writer *w = NULL;
    CHECK_OK(recur_st_writer_create(&w));
    CHECK_OK(recur_st_writer_add(w, "v", RECUR_DTYPE_F32, 1, shape, v));
    char path[1024], tmp[1100];

    /* A missing folder: fails, creates nothing. */
    snprintf(path, sizeof path, "%s/missing/out.safetensors", dir);
    CHECK_STATUS(recur_st_writer_save(w, path), RECUR_E_IO);
    CHECK_ERROR_MENTIONS("missing/out.safetensors");
    CHECK_ERROR_MENTIONS(strerror(ENOENT));
    CHECK(!exists(path));
    snprintf(path, sizeof path, "%s/missing", dir);
    CHECK(!exists(path));

    /* Saving over an existing file replaces it and leaves no temp file. */
    snprintf(path, sizeof path, "%s/atomic", dir);
    mkdir(path, 0777);
    CHECK(count_entries(path) == 0);
    snprintf(path, sizeof path, "%s/atomic/model.safetensors", dir);
    write_text(path, "old contents");
    recur_st *st = NULL;
    CHECK_STATUS(recur_st_open(path, &st), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("model.safetensors: header length");
    CHECK(chmod(path, 0640) == 0);
    CHECK_OK(recur_st_writer_save(w, path));
    struct stat info;
    CHECK(stat(path, &info) == 0 && (info.st_mode & 0777) == 0640);
    CHECK_OK(recur_st_open(path, &st));
    float back[2] = {0, 0};
    CHECK_OK(recur_st_read_f32(st, "v", back, 2));
    CHECK(back[0] == 1 && back[1] == 2);
    recur_st_free(st);
    snprintf(tmp, sizeof tmp, "%s/atomic", dir);
    CHECK(count_entries(tmp) == 1);

    /* A failed save (the temporary file cannot be created) leaves the
     * previous file intact. */
    write_text(path, "previous");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(mkdir(tmp, 0777) == 0);
    CHECK_STATUS(recur_st_writer_save(w, path), RECUR_E_IO);
    CHECK_ERROR_MENTIONS("model.safetensors.tmp.");
    CHECK(file_is(path, "previous"));
    rmdir(tmp);

    /* A header no reader would accept is refused before anything is
     * written, and the previous file stays. */
    char *huge = malloc(RECUR_ST_MAX_HEADER + 1);
    CHECK(huge != NULL);
    if (huge) {
        memset(huge, 'x', RECUR_ST_MAX_HEADER);
        huge[RECUR_ST_MAX_HEADER] = '\0';
        CHECK_OK(recur_st_writer_metadata(w, "big", huge));
        free(huge);
        CHECK_STATUS(recur_st_writer_save(w, path), RECUR_E_INVALID);
        CHECK_ERROR_MENTIONS("more than the 100000000 a reader accepts");
        CHECK(file_is(path, "previous"));
        void *bytes = NULL;
        size_t size = 0;
        CHECK_STATUS(recur_st_writer_serialize(w, &bytes, &size), RECUR_E_INVALID);
        CHECK(bytes == NULL);
        CHECK_OK(recur_st_writer_metadata(w, "big", ""));
    }

    /* A failed rename (the target is a directory) removes the temp file. */
    snprintf(path, sizeof path, "%s/atomic/adir", dir);
    CHECK(mkdir(path, 0777) == 0);
    char inner[1200];
    snprintf(inner, sizeof inner, "%s/keep", path);
    write_text(inner, "kept");
    CHECK_STATUS(recur_st_writer_save(w, path), RECUR_E_IO);
    CHECK_ERROR_MENTIONS("rename");
    CHECK_ERROR_MENTIONS("adir");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(!exists(tmp));
    CHECK(file_is(inner, "kept"));
    snprintf(tmp, sizeof tmp, "%s/atomic", dir);
    CHECK(count_entries(tmp) == 2); /* model.safetensors and adir */
    unlink(inner);
    rmdir(path);
    snprintf(path, sizeof path, "%s/atomic/model.safetensors", dir);
    unlink(path);
    rmdir(tmp);

    CHECK_STATUS(recur_st_writer_save(w, ""), RECUR_E_INVALID);
    recur_st_writer_free(w);
}

/* An allocator that fails once its budget of successful calls is spent. */
static int alloc_budget;
static void *budget_malloc(size_t size, void *user)
{
    (void)user;
    return alloc_budget-- > 0 ? malloc(size) : NULL;
}
static void budget_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

/* Every allocation failure in parse and in the writer is a clean
 * RECUR_E_NOMEM (ASan reports any leak on those paths). */
static void test_out_of_memory(void)
{
    const recur_allocator failing = {budget_malloc, budget_free, NULL};
    size_t size;
    unsigned char *b = make_file("{\"__metadata__\":{\"k\":\"v\"},"
                                 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                                 zeros, 4, &size);
    int failures = 0, budget;
    for (budget = 0; budget < 100; budget++) {
        alloc_budget = budget;
        recur_set_allocator(&failing);
        recur_st *st = (recur_st *)&size;
        int rc = recur_st_parse(b, size, &st);
        recur_st_free(rc == 0 ? st : NULL);
        recur_set_allocator(NULL);
        if (rc == 0)
            break;
        failures++;
        CHECK_MSG(rc == RECUR_E_NOMEM && st == NULL, "parse with %d allocations: status %d (%s)",
                  budget, rc, recur_last_error());
    }
    CHECK_MSG(failures >= 5 && budget < 100, "parse: %d failing budgets", failures);
    free(b);

    float v[2] = {1, 2};
    int64_t shape[1] = {2};
    failures = 0;
    for (budget = 0; budget < 100; budget++) {
        alloc_budget = budget;
        recur_set_allocator(&failing);
        recur_st_writer *w = NULL;
        void *bytes = NULL;
        int rc = recur_st_writer_create(&w);
        for (int i = 0; rc == 0 && i < 12; i++) { /* past the first growth of the table */
            char name[16];
            snprintf(name, sizeof name, "t%d", i);
            rc = recur_st_writer_add(w, name, RECUR_DTYPE_F32, 1, shape, v);
        }
        if (rc == 0)
            rc = recur_st_writer_metadata(w, "key", "value");
        if (rc == 0)
            rc = recur_st_writer_metadata(w, "key", "replaced");
        if (rc == 0)
            rc = recur_st_writer_serialize(w, &bytes, &size);
        recur_free(bytes);
        recur_st_writer_free(w);
        recur_set_allocator(NULL);
        if (rc == 0)
            break;
        failures++;
        CHECK_MSG(rc == RECUR_E_NOMEM, "writer with %d allocations: status %d (%s)", budget, rc,
                  recur_last_error());
    }
    CHECK_MSG(failures >= 10 && budget < 100, "writer: %d failing budgets", failures);

    recur_st *st = NULL;
    CHECK_STATUS(recur_st_parse(NULL, 4, &st), RECUR_E_INVALID);
    CHECK_STATUS(recur_st_parse(zeros, 4, NULL), RECUR_E_INVALID);
    CHECK_STATUS(recur_st_open(NULL, &st), RECUR_E_INVALID);
}

int main(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/test_safetensors_%ld", RECUR_BINARY_DIR, (long)getpid());
    if (mkdir(dir, 0777) != 0) {
        fprintf(stderr, "cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    test_rules();
    test_f16_bf16();
    test_integer_dtypes();
    test_round_trip(dir);
    test_python_layout();
    test_fixtures();
    test_atomic_save(dir);
    test_out_of_memory();

    char path[1024];
    snprintf(path, sizeof path, "%s/round_trip.safetensors", dir);
    unlink(path);
    CHECK_MSG(rmdir(dir) == 0, "%s is not empty: %s", dir, strerror(errno));
    CHECK_DONE();
}
