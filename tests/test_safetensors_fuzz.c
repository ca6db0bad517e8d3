/* test_safetensors_fuzz.c - a bounded, seeded mutation fuzzer for the
 * safetensors reader, run in the normal suite (and under ASan/UBSan in CI).
 *
 * Seeds: a few committed PyTorch fixtures, writer output (every writable
 * dtype, metadata, scalars, zero-size tensors), an empty file and a
 * hand-made F16/BF16/BOOL file. Each iteration applies 1-4 mutations to one
 * seed (bit flips, random bytes, byte insertion/deletion, truncation, a new
 * 8-byte length, numbers such as 1e30, -1 or 18446744073709551615 spliced
 * into the JSON, swapped dtype names), mostly aimed at the header so that
 * they reach the validation, then parses the result with recur_st_parse.
 * Whatever parses must be self-consistent and every tensor must read with
 * recur_st_read_f64 and recur_st_read_f32. The run must not crash, the seeds
 * must parse, and most mutants must be rejected.
 *
 * Usage: test_safetensors_fuzz [seed [iterations]] (defaults 20240601, 20000). */
#include <float.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "recur/safetensors.h"

#define MAX_SEEDS 8
#define SLACK 64 /* room for insertions and spliced numbers */

typedef struct buffer {
    unsigned char *bytes;
    size_t size;
} buffer;

static buffer seeds[MAX_SEEDS];
static int seed_count;

static void add_seed(const void *bytes, size_t size)
{
    if (seed_count == MAX_SEEDS || !bytes)
        return;
    seeds[seed_count].bytes = malloc(size);
    memcpy(seeds[seed_count].bytes, bytes, size);
    seeds[seed_count].size = size;
    seed_count++;
}

static void add_fixture(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", RECUR_FIXTURES_DIR, name);
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "cannot open fixture %s", path);
    if (!f)
        return;
    unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK_MSG(n > 8 && n < sizeof buf, "fixture %s: %zu bytes", path, n);
    add_seed(buf, n);
}

static void add_writer_seeds(void)
{
    float a[6] = {1, -2, 3.5f, 0, 1e-40f, 6};
    double s = 2.5;
    int64_t ids[3] = {-1, 0, 1};
    int32_t i32[2] = {7, -7};
    unsigned char u8[5] = {1, 2, 3, 4, 5};
    int64_t shape_a[2] = {2, 3}, shape_ids[1] = {3}, shape_i32[2] = {1, 2}, shape_u8[1] = {5};
    int64_t shape_empty[3] = {4, 0, 2};
    recur_st_writer *w = NULL;
    CHECK_OK(recur_st_writer_create(&w));
    CHECK_OK(recur_st_writer_metadata(w, "kind", "fuzz"));
    CHECK_OK(recur_st_writer_metadata(w, "hyper", "{\"lr\": 0.1, \"steps\": [1, 2]}"));
    CHECK_OK(recur_st_writer_add(w, "a", RECUR_DTYPE_F32, 2, shape_a, a));
    CHECK_OK(recur_st_writer_add(w, "scalar", RECUR_DTYPE_F64, 0, NULL, &s));
    CHECK_OK(recur_st_writer_add(w, "empty", RECUR_DTYPE_F32, 3, shape_empty, NULL));
    CHECK_OK(recur_st_writer_add(w, "ids", RECUR_DTYPE_I64, 1, shape_ids, ids));
    CHECK_OK(recur_st_writer_add(w, "i32", RECUR_DTYPE_I32, 2, shape_i32, i32));
    CHECK_OK(recur_st_writer_add(w, "u8", RECUR_DTYPE_U8, 1, shape_u8, u8));
    void *bytes = NULL;
    size_t size = 0;
    CHECK_OK(recur_st_writer_serialize(w, &bytes, &size));
    add_seed(bytes, size);
    recur_free(bytes);
    recur_st_writer_free(w);

    CHECK_OK(recur_st_writer_create(&w));
    CHECK_OK(recur_st_writer_serialize(w, &bytes, &size));
    add_seed(bytes, size);
    recur_free(bytes);
    recur_st_writer_free(w);
}

static void add_half_seed(void)
{
    const char header[] = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                          "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[8,14]},"
                          "\"m\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[14,16]},"
                          "\"k\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[16,18]},"
                          "\"j\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[18,20]}}";
    const unsigned char data[20] = {0x00, 0x3c, 0x01, 0x00, 0x00, 0x7c, 0x00, 0x7e, 0x80, 0x3f,
                                    0x01, 0x00, 0xc0, 0x7f, 1,    0,    0x00, 0x80, 0xff, 0x7f};
    size_t n = sizeof header - 1;
    unsigned char file[8 + sizeof header + sizeof data];
    for (int i = 0; i < 8; i++)
        file[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(file + 8, header, n);
    memcpy(file + 8 + n, data, sizeof data);
    add_seed(file, 8 + n + sizeof data);
}

static uint64_t header_length(const unsigned char *b, size_t size)
{
    uint64_t n = 0;
    for (int i = 7; i >= 0 && size >= 8; i--)
        n = (n << 8) | b[i];
    return n;
}

static void set_header_length(unsigned char *b, size_t size, uint64_t n)
{
    for (int i = 0; i < 8 && (size_t)i < size; i++)
        b[i] = (unsigned char)(n >> (8 * i));
}

/* A position to mutate: in the header 7 times out of 8 when there is one. */
static size_t pick_position(recur_rng *rng, const unsigned char *b, size_t size)
{
    uint64_t n = header_length(b, size);
    if (size > 8 && n > 0 && n <= size - 8 && recur_rng_below(rng, 8) != 0)
        return 8 + (size_t)recur_rng_below(rng, n);
    return (size_t)recur_rng_below(rng, size);
}

/* Replaces b[at, at + old_len) by text when it fits in capacity. */
static void splice(unsigned char *b, size_t *size, size_t capacity, size_t at, size_t old_len,
                   const char *text)
{
    size_t new_len = strlen(text);
    if (*size - old_len + new_len > capacity)
        return;
    memmove(b + at + new_len, b + at + old_len, *size - at - old_len);
    memcpy(b + at, text, new_len);
    *size = *size - old_len + new_len;
}

static const char *const numbers[] = {
    "1e30", "-1", "18446744073709551615", "9223372036854775807", "9223372036854775808",
    "0", "1", "4294967296", "4294967297", "1.5", "-0", "99999999999999999999999",
    "4611686018427387904", "2305843009213693952", "null", "\"7\"", "[]", "{}", "1e-400",
    "-9223372036854775808", "100000000", "65536"};
static const char *const words[] = {
    "\"F64\"", "\"F32\"", "\"F16\"", "\"BF16\"", "\"I64\"", "\"BOOL\"", "\"U8\"", "\"C64\"",
    "\"__metadata__\"", "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"a\"", "\"\"",
    "\"\\u0000\"", "\"\\ud800\"", "\"\xc3\x28\""};

/* One mutation of b[0, *size), which has room for capacity bytes. */
static void mutate(recur_rng *rng, unsigned char *b, size_t *size, size_t capacity)
{
    if (*size == 0) {
        b[0] = (unsigned char)recur_rng_next(rng);
        *size = 1;
        return;
    }
    size_t at = pick_position(rng, b, *size);
    uint64_t n = header_length(b, *size);
    switch (recur_rng_below(rng, 9)) {
    case 0: /* bit flip */
        b[at] ^= (unsigned char)(1u << recur_rng_below(rng, 8));
        break;
    case 1: /* random byte */
        b[at] = (unsigned char)recur_rng_next(rng);
        break;
    case 2: /* insert a byte */
        if (*size < capacity) {
            memmove(b + at + 1, b + at, *size - at);
            b[at] = (unsigned char)recur_rng_next(rng);
            (*size)++;
        }
        break;
    case 3: /* delete a byte */
        memmove(b + at, b + at + 1, *size - at - 1);
        (*size)--;
        break;
    case 4: /* truncate */
        *size = (size_t)recur_rng_below(rng, *size);
        break;
    case 5: { /* rewrite the length field */
        const uint64_t choices[] = {n - 1, n + 1, 0, 1, UINT64_MAX, RECUR_ST_MAX_HEADER,
                                    RECUR_ST_MAX_HEADER + 1ull, (uint64_t)*size - 8, n + 8,
                                    recur_rng_next(rng)};
        set_header_length(b, *size, choices[recur_rng_below(rng, 10)]);
        break;
    }
    case 6:
    case 7: { /* splice a number over a run of digits, or a word over a string */
        bool number = recur_rng_below(rng, 2) == 0;
        if (*size < 8 || n > *size - 8)
            break;
        size_t end = 8 + (size_t)n;
        size_t i = at;
        while (i < end && (number ? !(b[i] >= '0' && b[i] <= '9') : b[i] != '"'))
            i++;
        if (i >= end)
            break;
        size_t j = i + 1;
        while (j < end && (number ? (b[j] >= '0' && b[j] <= '9') : b[j] != '"'))
            j++;
        if (!number && j < end)
            j++; /* include the closing quote */
        const char *text =
            number ? numbers[recur_rng_below(rng, sizeof numbers / sizeof numbers[0])]
                   : words[recur_rng_below(rng, sizeof words / sizeof words[0])];
        size_t before = *size;
        splice(b, size, capacity, i, j - i, text);
        /* Keep the length field consistent most of the time so that the
         * mutant reaches the semantic checks instead of the JSON parser. */
        if (recur_rng_below(rng, 4) != 0)
            set_header_length(b, *size, n + *size - before);
        break;
    }
    case 8: /* duplicate a header byte range elsewhere in the header */
        if (*size >= 8 && n > 0 && n <= *size - 8) {
            size_t len = 1 + (size_t)recur_rng_below(rng, 16);
            size_t from = 8 + (size_t)recur_rng_below(rng, n);
            if (from + len <= *size && *size + len <= capacity) {
                memmove(b + at + len, b + at, *size - at);
                memmove(b + at, b + from + (from >= at ? len : 0), len);
                *size += len;
            }
        }
        break;
    }
}

/* Checks an accepted file: the tensors cover the data exactly, and every
 * tensor converts. Returns false (after reporting) on any inconsistency. */
static bool check_accepted(const recur_st *st, size_t size, const unsigned char *b)
{
    uint64_t n = header_length(b, size);
    size_t covered = 0;
    for (int i = 0; i < recur_st_count(st); i++) {
        const recur_st_tensor *t = recur_st_at(st, i);
        if (!t || t->numel * recur_dtype_size(t->dtype) != t->nbytes || t->ndim < 0 ||
            t->ndim > RECUR_ST_MAX_DIMS)
            return false;
        covered += t->nbytes;
        double *v = malloc((t->numel ? t->numel : 1) * sizeof *v);
        float *f = malloc((t->numel ? t->numel : 1) * sizeof *f);
        int rc64 = recur_st_read_f64(st, t->name, v, t->numel);
        int rc32 = recur_st_read_f32(st, t->name, f, t->numel);
        bool same = true;
        for (size_t k = 0; rc64 == 0 && rc32 == 0 && k < t->numel; k++)
            same &= isnan(v[k]) ? isnan(f[k])
                     : fabs(v[k]) > FLT_MAX ? isinf(f[k]) && (v[k] > 0) == (f[k] > 0)
                     /* I64 -> double -> float may round twice: one float ulp */
                     : fabs((double)f[k] - v[k]) <= fabs(v[k]) * 0x1p-23 + 0x1p-149;
        free(v);
        free(f);
        if (rc64 || rc32 || !same || recur_st_find(st, t->name) != t)
            return false;
    }
    for (int i = 0; i < recur_st_metadata_count(st); i++) {
        const char *key, *value;
        if (recur_st_metadata_at(st, i, &key, &value) || recur_st_metadata(st, key) == NULL)
            return false;
    }
    return 8 + n + covered == size;
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 20240601;
    long iterations = argc > 2 ? strtol(argv[2], NULL, 0) : 20000;
    clock_t start = clock();

    add_fixture("clip_norm.safetensors");
    add_fixture("optim_2_Adam.safetensors");
    add_fixture("gru_I5_H7_L1_T6_B3.safetensors");
    add_writer_seeds();
    add_half_seed();
    CHECK(seed_count == 6);
    for (int s = 0; s < seed_count; s++) {
        recur_st *st = NULL;
        CHECK_OK(recur_st_parse(seeds[s].bytes, seeds[s].size, &st));
        CHECK_MSG(st && check_accepted(st, seeds[s].size, seeds[s].bytes), "seed %d", s);
        recur_st_free(st);
    }

    recur_rng rng;
    recur_rng_seed(&rng, seed);
    size_t biggest = 0;
    for (int s = 0; s < seed_count; s++)
        biggest = seeds[s].size > biggest ? seeds[s].size : biggest;
    size_t capacity = biggest + 4 * SLACK;
    unsigned char *b = malloc(capacity);
    long accepted = 0, rejected = 0, inconsistent = 0, wrong_status = 0;
    for (long it = 0; it < iterations && seed_count; it++) {
        const buffer *from = &seeds[recur_rng_below(&rng, (uint64_t)seed_count)];
        size_t size = from->size;
        memcpy(b, from->bytes, size);
        int mutations = 1 + (int)recur_rng_below(&rng, 4);
        for (int m = 0; m < mutations; m++)
            mutate(&rng, b, &size, capacity);
        /* An exact-size heap copy so that ASan sees any read past the end. */
        unsigned char *exact = malloc(size ? size : 1);
        memcpy(exact, b, size);
        recur_st *st = (recur_st *)&size;
        int rc = recur_st_parse(exact, size, &st);
        if (rc == 0) {
            accepted++;
            if (!check_accepted(st, size, exact)) {
                inconsistent++;
                fprintf(stderr, "iteration %ld: accepted file is inconsistent\n", it);
            }
            recur_st_free(st);
        } else {
            rejected++;
            if (rc != RECUR_E_FORMAT || st != NULL || recur_last_error()[0] == '\0') {
                wrong_status++;
                fprintf(stderr, "iteration %ld: status %d, message \"%s\"\n", it, rc,
                        recur_last_error());
            }
        }
        free(exact);
    }
    free(b);
    for (int s = 0; s < seed_count; s++)
        free(seeds[s].bytes);

    double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
    printf("seed %llu: %ld mutants, %ld accepted, %ld rejected, %.2f s CPU\n",
           (unsigned long long)seed, iterations, accepted, rejected, seconds);
    CHECK(inconsistent == 0);
    CHECK(wrong_status == 0);
    CHECK(accepted + rejected == iterations);
    CHECK_MSG(rejected > 0.6 * (double)iterations, "only %ld of %ld mutants rejected", rejected,
              iterations);
    CHECK_MSG(accepted > 0, "no mutant was accepted: the mutations never reach the data");
    CHECK_MSG(seconds < 60.0, "took %.1f s CPU", seconds);
    CHECK_DONE();
}
