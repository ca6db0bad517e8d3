/* safetensors.c - the safetensors reader and writer declared in
 * include/recur/safetensors.h.
 *
 * File layout: [8-byte little-endian header length N][N bytes of JSON, maybe
 * padded with spaces][data buffer]. The reader treats every byte as hostile:
 * the header is parsed by jansson (duplicate keys rejected) and then every
 * field is checked before any offset is trusted; all size arithmetic is
 * overflow-checked, and the tensors, sorted by their begin offset, must cover
 * the data buffer exactly. Tensor data is left in place inside the file image
 * (so it is not aligned) and is only ever read through memcpy.
 *
 * The writer serializes the header with jansson (JSON_COMPACT, keys in
 * insertion order, "__metadata__" first), pads it with spaces to a multiple of
 * 8 bytes like the reference writer, and saves through a temporary file in the
 * target folder that is fsync'd and then renamed over the target.
 *
 * Conventions and limits: the host must be little-endian (the file's byte
 * order is copied as is; checked at compile time). Memory for the file image,
 * tensor tables and strings goes through the recur allocator hook; jansson's
 * own parse tree uses jansson's allocator and is freed before returning. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "internal.h"
#include "recur/safetensors.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "recur's safetensors reader and writer assume a little-endian host"
#endif

#define ST_LEN_BYTES 8 /* size of the header-length field */

static const struct {
    const char *name;
    size_t size;
} dtype_table[] = {
    [RECUR_DTYPE_F64] = {"F64", 8}, [RECUR_DTYPE_F32] = {"F32", 4},
    [RECUR_DTYPE_F16] = {"F16", 2}, [RECUR_DTYPE_BF16] = {"BF16", 2},
    [RECUR_DTYPE_I64] = {"I64", 8}, [RECUR_DTYPE_I32] = {"I32", 4},
    [RECUR_DTYPE_I16] = {"I16", 2}, [RECUR_DTYPE_I8] = {"I8", 1},
    [RECUR_DTYPE_U8] = {"U8", 1},   [RECUR_DTYPE_BOOL] = {"BOOL", 1},
};
#define DTYPE_COUNT ((int)(sizeof dtype_table / sizeof dtype_table[0]))
#define KNOWN_DTYPES "F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL"

const char *recur_dtype_name(recur_dtype dtype)
{
    if ((int)dtype < 0 || (int)dtype >= DTYPE_COUNT)
        return "unknown";
    return dtype_table[dtype].name;
}

size_t recur_dtype_size(recur_dtype dtype)
{
    if ((int)dtype < 0 || (int)dtype >= DTYPE_COUNT)
        return 0;
    return dtype_table[dtype].size;
}

static bool dtype_from_name(const char *name, recur_dtype *out)
{
    for (int d = 0; d < DTYPE_COUNT; d++) {
        if (strcmp(name, dtype_table[d].name) == 0) {
            *out = (recur_dtype)d;
            return true;
        }
    }
    return false;
}

/* "[2, 3]" into buf (truncated to size). */
static void format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t used = 0;
    int n = snprintf(buf, size, "[");
    used = n > 0 ? (size_t)n : 0;
    for (int d = 0; d < ndim && used < size; d++) {
        n = snprintf(buf + used, size - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
        if (n < 0)
            return;
        used += (size_t)n;
    }
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "real number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "value";
}

/* ------------------------------------------------------------------------ */
/* Reader                                                                   */
/* ------------------------------------------------------------------------ */

struct recur_st {
    unsigned char *image; /* the whole file; tensor data points into it */
    recur_st_tensor *tensors; /* [count], sorted by begin offset */
    int count;
    const recur_st_tensor **by_name; /* [count], sorted by name for lookup */
    const char **meta_keys;          /* [meta_count], in header order */
    const char **meta_values;
    int meta_count;
    char *strings; /* arena holding every name, key and value */
};

/* One validated header entry before the tensor table is built. */
typedef struct st_entry {
    const char *name; /* borrowed from the jansson tree */
    recur_dtype dtype;
    int ndim;
    int64_t shape[RECUR_ST_MAX_DIMS];
    size_t numel, nbytes;
    uint64_t begin, end;
    size_t order; /* position in the header: tie-break for equal offsets */
} st_entry;

void recur_st_free(recur_st *st)
{
    if (!st)
        return;
    recur__free(st->image);
    recur__free(st->tensors);
    recur__free(st->by_name);
    recur__free(st->meta_keys);
    recur__free(st->meta_values);
    recur__free(st->strings);
    recur__free(st);
}

static uint64_t read_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Reads data_offsets[index] or shape[index]: a JSON integer >= 0. */
static int nonnegative_int(const char *name, const char *field, size_t index, const json_t *v,
                           uint64_t *out)
{
    if (!json_is_integer(v))
        return recur__error(RECUR_E_FORMAT, "tensor '%s': %s[%zu] is a JSON %s, expected a non-negative integer",
                            name, field, index, json_kind(v));
    json_int_t x = json_integer_value(v);
    if (x < 0)
        return recur__error(RECUR_E_FORMAT, "tensor '%s': %s[%zu] = %lld is negative", name, field,
                            index, (long long)x);
    *out = (uint64_t)x;
    return RECUR_OK;
}

/* Checks one tensor entry {"dtype", "shape", "data_offsets"} and fills e. */
static int check_tensor(const char *name, const json_t *value, st_entry *e)
{
    if (!json_is_object(value))
        return recur__error(RECUR_E_FORMAT, "tensor '%s': entry is a JSON %s, expected an object "
                            "with dtype, shape and data_offsets", name, json_kind(value));
    const char *field;
    const json_t *v;
    json_object_foreach((json_t *)value, field, v) {
        if (strcmp(field, "dtype") != 0 && strcmp(field, "shape") != 0 &&
            strcmp(field, "data_offsets") != 0)
            return recur__error(RECUR_E_FORMAT, "tensor '%s': unexpected field '%s' (allowed: "
                                "dtype, shape, data_offsets)", name, field);
    }
    static const char *const required[] = {"dtype", "shape", "data_offsets"};
    for (int i = 0; i < 3; i++)
        if (!json_object_get(value, required[i]))
            return recur__error(RECUR_E_FORMAT, "tensor '%s': missing field '%s'", name,
                                required[i]);

    e->name = name;
    const json_t *dtype = json_object_get(value, "dtype");
    if (!json_is_string(dtype))
        return recur__error(RECUR_E_FORMAT, "tensor '%s': dtype is a JSON %s, expected a string",
                            name, json_kind(dtype));
    if (!dtype_from_name(json_string_value(dtype), &e->dtype))
        return recur__error(RECUR_E_FORMAT, "tensor '%s': unknown dtype '%s' (known: %s)", name,
                            json_string_value(dtype), KNOWN_DTYPES);

    const json_t *shape = json_object_get(value, "shape");
    if (!json_is_array(shape))
        return recur__error(RECUR_E_FORMAT, "tensor '%s': shape is a JSON %s, expected an array",
                            name, json_kind(shape));
    size_t ndim = json_array_size(shape);
    if (ndim > RECUR_ST_MAX_DIMS)
        return recur__error(RECUR_E_FORMAT, "tensor '%s': shape has %zu dimensions, more than "
                            "the limit of %d", name, ndim, RECUR_ST_MAX_DIMS);
    e->ndim = (int)ndim;
    for (size_t d = 0; d < ndim; d++) {
        uint64_t dim;
        int rc = nonnegative_int(name, "shape", d, json_array_get(shape, d), &dim);
        if (rc)
            return rc;
        e->shape[d] = (int64_t)dim; /* json_int_t is signed: dim <= INT64_MAX */
    }
    char shape_text[256];
    format_shape(shape_text, sizeof shape_text, e->ndim, e->shape);
    /* Left-to-right checked product, as the reference computes it. */
    e->numel = 1;
    for (int d = 0; d < e->ndim; d++)
        if ((uint64_t)e->shape[d] > SIZE_MAX ||
            !recur__mul_size(e->numel, (size_t)e->shape[d], &e->numel))
            return recur__error(RECUR_E_FORMAT, "tensor '%s': element count of shape %s overflows",
                                name, shape_text);
    if (!recur__mul_size(e->numel, dtype_table[e->dtype].size, &e->nbytes))
        return recur__error(RECUR_E_FORMAT, "tensor '%s': byte size of shape %s x %s overflows",
                            name, shape_text, dtype_table[e->dtype].name);

    const json_t *offsets = json_object_get(value, "data_offsets");
    if (!json_is_array(offsets))
        return recur__error(RECUR_E_FORMAT, "tensor '%s': data_offsets is a JSON %s, expected "
                            "an array [begin, end]", name, json_kind(offsets));
    if (json_array_size(offsets) != 2)
        return recur__error(RECUR_E_FORMAT, "tensor '%s': data_offsets has %zu entries, expected "
                            "2 [begin, end]", name, json_array_size(offsets));
    int rc = nonnegative_int(name, "data_offsets", 0, json_array_get(offsets, 0), &e->begin);
    if (!rc)
        rc = nonnegative_int(name, "data_offsets", 1, json_array_get(offsets, 1), &e->end);
    if (rc)
        return rc;
    if (e->begin > e->end)
        return recur__error(RECUR_E_FORMAT, "tensor '%s': data_offsets begin %llu > end %llu",
                            name, (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end - e->begin != (uint64_t)e->nbytes)
        return recur__error(RECUR_E_FORMAT, "tensor '%s': data_offsets [%llu, %llu] span %llu "
                            "bytes but shape %s of %s needs %zu bytes", name,
                            (unsigned long long)e->begin, (unsigned long long)e->end,
                            (unsigned long long)(e->end - e->begin), shape_text,
                            dtype_table[e->dtype].name, e->nbytes);
    return RECUR_OK;
}

static int compare_entries(const void *a, const void *b)
{
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int compare_by_name(const void *a, const void *b)
{
    const recur_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Copies s into the arena at *cursor. */
static const char *arena_copy(char **cursor, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = *cursor;
    memcpy(d, s, n);
    *cursor += n;
    return d;
}

/* Validates the JSON tree of the header and builds st's tables. data_size is
 * the number of bytes after the header. */
static int build_tables(recur_st *st, json_t *root, const unsigned char *data, size_t data_size)
{
    const json_t *metadata = json_object_get(root, "__metadata__");
    size_t count = json_object_size(root) - (metadata ? 1 : 0);
    if (count > INT_MAX)
        return recur__error(RECUR_E_FORMAT, "header lists %zu tensors, more than %d", count,
                            INT_MAX);
    size_t arena = 0;
    size_t meta_count = 0;
    if (metadata) {
        if (!json_is_object(metadata))
            return recur__error(RECUR_E_FORMAT, "__metadata__ is a JSON %s, expected an object "
                                "of strings", json_kind(metadata));
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)metadata, key, v) {
            if (!json_is_string(v))
                return recur__error(RECUR_E_FORMAT, "__metadata__ value for key '%s' is a JSON "
                                    "%s, expected a string", key, json_kind(v));
            /* Both lengths are bounded by the header size: no overflow. */
            arena += strlen(key) + 1 + json_string_length(v) + 1;
            meta_count++;
        }
    }

    int rc = RECUR_OK;
    st_entry *entries = recur__calloc(count ? count : 1, sizeof *entries);
    if (!entries)
        return recur__error(RECUR_E_NOMEM, "out of memory for %zu tensor entries", count);
    size_t n = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        rc = check_tensor(key, v, &entries[n]);
        if (rc)
            goto done;
        entries[n].order = n;
        arena += strlen(key) + 1;
        n++;
    }

    /* The reference's coverage rule: sorted by offsets, each tensor starts
     * where the previous one ends, and the last one ends at the file's end. */
    qsort(entries, count, sizeof *entries, compare_entries);
    uint64_t expected = 0;
    for (size_t i = 0; i < count; i++) {
        const st_entry *e = &entries[i];
        if (e->begin != expected) {
            const char *prev = i ? entries[i - 1].name : NULL;
            if (e->begin > expected)
                rc = recur__error(RECUR_E_FORMAT, "gap in the data buffer: tensor '%s' begins at "
                                  "byte %llu but %s%s%s ends at byte %llu", e->name,
                                  (unsigned long long)e->begin, prev ? "tensor '" : "the buffer start",
                                  prev ? prev : "", prev ? "'" : "", (unsigned long long)expected);
            else
                rc = recur__error(RECUR_E_FORMAT, "overlapping tensors: '%s' begins at byte %llu, "
                                  "before '%s' ends at byte %llu", e->name,
                                  (unsigned long long)e->begin, prev, (unsigned long long)expected);
            goto done;
        }
        expected = e->end;
    }
    if (expected > data_size) {
        rc = recur__error(RECUR_E_FORMAT, "file is truncated: the tensors need %llu data bytes but "
                          "only %zu follow the header", (unsigned long long)expected, data_size);
        goto done;
    }
    if (expected < data_size) {
        rc = recur__error(RECUR_E_FORMAT, "%llu trailing bytes after the last tensor: the tensors "
                          "cover %llu of the %zu data bytes", (unsigned long long)(data_size - expected),
                          (unsigned long long)expected, data_size);
        goto done;
    }

    st->tensors = recur__calloc(count ? count : 1, sizeof *st->tensors);
    st->by_name = recur__calloc(count ? count : 1, sizeof *st->by_name);
    st->meta_keys = recur__calloc(meta_count ? meta_count : 1, sizeof *st->meta_keys);
    st->meta_values = recur__calloc(meta_count ? meta_count : 1, sizeof *st->meta_values);
    st->strings = recur__malloc(arena ? arena : 1);
    if (!st->tensors || !st->by_name || !st->meta_keys || !st->meta_values || !st->strings) {
        rc = recur__error(RECUR_E_NOMEM, "out of memory for the tables of %zu tensors", count);
        goto done;
    }
    char *cursor = st->strings;
    for (size_t i = 0; i < count; i++) {
        const st_entry *e = &entries[i];
        recur_st_tensor *t = &st->tensors[i];
        t->name = arena_copy(&cursor, e->name);
        t->dtype = e->dtype;
        t->ndim = e->ndim;
        memcpy(t->shape, e->shape, sizeof t->shape);
        t->numel = e->numel;
        t->nbytes = e->nbytes;
        t->data = data + e->begin; /* e->end <= data_size: inside the image */
        st->by_name[i] = t;
    }
    qsort(st->by_name, count, sizeof *st->by_name, compare_by_name);
    st->count = (int)count;
    if (metadata) {
        const char *mkey;
        const json_t *mv;
        size_t m = 0;
        json_object_foreach((json_t *)metadata, mkey, mv) {
            st->meta_keys[m] = arena_copy(&cursor, mkey);
            st->meta_values[m] = arena_copy(&cursor, json_string_value(mv));
            m++;
        }
        st->meta_count = (int)m;
    }
done:
    recur__free(entries);
    return rc;
}

/* Validates image[0, size) and takes ownership of it (freed on failure). */
static int parse_image(unsigned char *image, size_t size, recur_st **out)
{
    *out = NULL;
    if (size < ST_LEN_BYTES) {
        recur__free(image);
        return recur__error(RECUR_E_FORMAT, "file is truncated: %zu bytes, fewer than the 8-byte "
                            "header length field", size);
    }
    uint64_t header_len = read_le64(image);
    if (header_len > RECUR_ST_MAX_HEADER) {
        recur__free(image);
        return recur__error(RECUR_E_FORMAT, "header length %llu exceeds the limit of %u bytes",
                            (unsigned long long)header_len, RECUR_ST_MAX_HEADER);
    }
    if (header_len > size - ST_LEN_BYTES) {
        recur__free(image);
        return recur__error(RECUR_E_FORMAT, "file is truncated: the header length field says "
                            "%llu bytes but only %zu follow it", (unsigned long long)header_len,
                            size - ST_LEN_BYTES);
    }
    const char *header = (const char *)image + ST_LEN_BYTES;
    if (header_len == 0 || header[0] != '{') {
        recur__free(image);
        return recur__error(RECUR_E_FORMAT, "header does not start with '{' (a JSON object)");
    }
    json_error_t jerr;
    json_t *root = json_loadb(header, (size_t)header_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        recur__free(image);
        return recur__error(RECUR_E_FORMAT, "header is not valid JSON: %s (line %d, column %d)",
                            jerr.text, jerr.line, jerr.column);
    }
    int rc;
    recur_st *st = recur__calloc(1, sizeof *st);
    if (!st) {
        rc = recur__error(RECUR_E_NOMEM, "out of memory");
        recur__free(image);
    } else {
        st->image = image;
        if (!json_is_object(root)) /* unreachable after the '{' check; kept as a guard */
            rc = recur__error(RECUR_E_FORMAT, "header is a JSON %s, expected an object",
                              json_kind(root));
        else
            rc = build_tables(st, root, image + ST_LEN_BYTES + header_len,
                              size - ST_LEN_BYTES - (size_t)header_len);
    }
    json_decref(root);
    if (rc) {
        recur_st_free(st);
        return rc;
    }
    *out = st;
    return RECUR_OK;
}

int recur_st_parse(const void *bytes, size_t size, recur_st **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_st_parse: out is NULL");
    *out = NULL;
    if (!bytes && size)
        return recur__error(RECUR_E_INVALID, "recur_st_parse: bytes is NULL but size is %zu", size);
    unsigned char *image = recur__malloc(size);
    if (!image)
        return recur__error(RECUR_E_NOMEM, "out of memory for a %zu-byte safetensors image", size);
    if (size)
        memcpy(image, bytes, size);
    return parse_image(image, size, out);
}

static const char *errno_text(int err, char *buf, size_t size)
{
    if (strerror_r(err, buf, size) != 0)
        snprintf(buf, size, "error %d", err);
    return buf;
}

int recur_st_open(const char *path, recur_st **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_st_open: out is NULL");
    *out = NULL;
    if (!path)
        return recur__error(RECUR_E_INVALID, "recur_st_open: path is NULL");
    char why[128];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return recur__error(RECUR_E_IO, "cannot open '%s': %s", path,
                            errno_text(errno, why, sizeof why));
    struct stat info;
    if (fstat(fd, &info) != 0) {
        int err = errno;
        close(fd);
        return recur__error(RECUR_E_IO, "cannot stat '%s': %s", path, errno_text(err, why, sizeof why));
    }
    if (!S_ISREG(info.st_mode)) {
        close(fd);
        return recur__error(RECUR_E_IO, "cannot read '%s': not a regular file", path);
    }
    if ((uintmax_t)info.st_size > SIZE_MAX) {
        close(fd);
        return recur__error(RECUR_E_NOMEM, "'%s' is too large for this machine", path);
    }
    size_t size = (size_t)info.st_size;
    unsigned char *image = recur__malloc(size);
    if (!image) {
        close(fd);
        return recur__error(RECUR_E_NOMEM, "out of memory reading '%s' (%zu bytes)", path, size);
    }
    size_t done = 0;
    while (done < size) {
        ssize_t got = read(fd, image + done, size - done);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            int err = got < 0 ? errno : 0;
            close(fd);
            recur__free(image);
            if (got == 0)
                return recur__error(RECUR_E_IO, "cannot read '%s': it shrank to %zu bytes while "
                                    "being read", path, done);
            return recur__error(RECUR_E_IO, "cannot read '%s': %s", path,
                                errno_text(err, why, sizeof why));
        }
        done += (size_t)got;
    }
    close(fd);
    int rc = parse_image(image, size, out);
    if (rc) {
        char message[1024];
        snprintf(message, sizeof message, "%s", recur_last_error());
        return recur__error(rc, "%s: %s", path, message);
    }
    return RECUR_OK;
}

int recur_st_count(const recur_st *st) { return st ? st->count : 0; }

const recur_st_tensor *recur_st_at(const recur_st *st, int index)
{
    if (!st || index < 0 || index >= st->count)
        return NULL;
    return &st->tensors[index];
}

const recur_st_tensor *recur_st_find(const recur_st *st, const char *name)
{
    if (!st || !name) {
        recur__error(RECUR_E_INVALID, "recur_st_find: %s is NULL", st ? "name" : "st");
        return NULL;
    }
    recur_st_tensor key = {.name = name};
    const recur_st_tensor *key_ptr = &key;
    const recur_st_tensor *const *hit =
        bsearch(&key_ptr, st->by_name, (size_t)st->count, sizeof *st->by_name, compare_by_name);
    if (!hit) {
        recur__error(RECUR_E_NOT_FOUND, "no tensor named '%s' in the file", name);
        return NULL;
    }
    return *hit;
}

/* IEEE half -> float, exact: subnormals, infinities and NaN payloads kept. */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exponent = (h >> 10) & 0x1f;
    uint32_t mantissa = h & 0x3ff;
    uint32_t bits;
    if (exponent == 0) {
        /* zero or subnormal: mantissa x 2^-24, exact in float */
        float magnitude = (float)mantissa * 0x1p-24f;
        return sign ? -magnitude : magnitude;
    } else if (exponent == 0x1f) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent - 15 + 127) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* bfloat16 is the top half of a float. */
static float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Converts n elements at src (unaligned) to double. */
/* One case of the converters below: element i of type ctype is memcpy'd
 * from the unaligned source and converted by expr into out[i]. */
#define CONVERT(ctype, expr)                                                       \
    for (size_t i = 0; i < n; i++) {                                               \
        ctype x;                                                                   \
        memcpy(&x, src + i * sizeof x, sizeof x);                                  \
        out[i] = (expr);                                                           \
    }                                                                              \
    break

static void convert_to_f64(recur_dtype dtype, const unsigned char *src, size_t n, double *out)
{
    switch (dtype) {
    case RECUR_DTYPE_F64:
        if (n)
            memcpy(out, src, n * sizeof *out);
        break;
    case RECUR_DTYPE_F32: CONVERT(float, x);
    case RECUR_DTYPE_F16: CONVERT(uint16_t, f16_to_f32(x));
    case RECUR_DTYPE_BF16: CONVERT(uint16_t, bf16_to_f32(x));
    case RECUR_DTYPE_I64: CONVERT(int64_t, x);
    case RECUR_DTYPE_I32: CONVERT(int32_t, x);
    case RECUR_DTYPE_I16: CONVERT(int16_t, x);
    case RECUR_DTYPE_I8: CONVERT(int8_t, x);
    case RECUR_DTYPE_U8: CONVERT(uint8_t, x);
    case RECUR_DTYPE_BOOL: CONVERT(uint8_t, x != 0);
    }
}

/* double -> float with IEEE overflow to +-inf spelled out (a C cast of an
 * out-of-range value is undefined). */
static float narrow(double x)
{
    if (x > FLT_MAX)
        return (float)INFINITY;
    if (x < -FLT_MAX)
        return -(float)INFINITY;
    return (float)x;
}

static void convert_to_f32(recur_dtype dtype, const unsigned char *src, size_t n, float *out)
{
    switch (dtype) {
    case RECUR_DTYPE_F64: CONVERT(double, narrow(x));
    case RECUR_DTYPE_F32:
        if (n)
            memcpy(out, src, n * sizeof *out);
        break;
    case RECUR_DTYPE_F16: CONVERT(uint16_t, f16_to_f32(x));
    case RECUR_DTYPE_BF16: CONVERT(uint16_t, bf16_to_f32(x));
    case RECUR_DTYPE_I64: CONVERT(int64_t, x);
    case RECUR_DTYPE_I32: CONVERT(int32_t, x);
    case RECUR_DTYPE_I16: CONVERT(int16_t, x);
    case RECUR_DTYPE_I8: CONVERT(int8_t, x);
    case RECUR_DTYPE_U8: CONVERT(uint8_t, x);
    case RECUR_DTYPE_BOOL: CONVERT(uint8_t, x != 0);
    }
#undef CONVERT
}

/* The tensor named `name`, checked to hold `count` elements, for a reader
 * writing into `out`. */
static int find_for_read(const recur_st *st, const char *name, const void *out, size_t count,
                         const recur_st_tensor **tensor)
{
    if (!st || !name)
        return recur__error(RECUR_E_INVALID, "reading a tensor: %s is NULL", st ? "name" : "st");
    const recur_st_tensor *t = recur_st_find(st, name);
    if (!t)
        return RECUR_E_NOT_FOUND;
    if (t->numel != count)
        return recur__error(RECUR_E_SHAPE, "tensor '%s' has %zu elements but the caller expects %zu",
                            name, t->numel, count);
    if (!out && count)
        return recur__error(RECUR_E_INVALID, "reading tensor '%s': out is NULL", name);
    *tensor = t;
    return RECUR_OK;
}

int recur_st_read_f32(const recur_st *st, const char *name, float *out, size_t count)
{
    const recur_st_tensor *t = NULL;
    int rc = find_for_read(st, name, out, count, &t);
    if (rc)
        return rc;
    convert_to_f32(t->dtype, t->data, t->numel, out);
    return RECUR_OK;
}

int recur_st_read_f64(const recur_st *st, const char *name, double *out, size_t count)
{
    const recur_st_tensor *t = NULL;
    int rc = find_for_read(st, name, out, count, &t);
    if (rc)
        return rc;
    convert_to_f64(t->dtype, t->data, t->numel, out);
    return RECUR_OK;
}

int recur_st_read_f32_shape(const recur_st *st, const char *name, int ndim, const int64_t *shape,
                            float *out)
{
    if (!st || !name)
        return recur__error(RECUR_E_INVALID, "reading a tensor: %s is NULL", st ? "name" : "st");
    if (ndim < 0 || ndim > RECUR_ST_MAX_DIMS || (ndim && !shape))
        return recur__error(RECUR_E_INVALID, "reading tensor '%s': bad expected shape (ndim %d)",
                            name, ndim);
    const recur_st_tensor *t = recur_st_find(st, name);
    if (!t)
        return RECUR_E_NOT_FOUND;
    bool same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = t->shape[d] == shape[d];
    if (!same) {
        char got[256], want[256];
        format_shape(got, sizeof got, t->ndim, t->shape);
        format_shape(want, sizeof want, ndim, shape);
        return recur__error(RECUR_E_SHAPE, "tensor '%s' has shape %s, expected %s", name, got,
                            want);
    }
    return recur_st_read_f32(st, name, out, t->numel);
}

const char *recur_st_metadata(const recur_st *st, const char *key)
{
    if (!st || !key)
        return NULL;
    for (int i = 0; i < st->meta_count; i++)
        if (strcmp(st->meta_keys[i], key) == 0)
            return st->meta_values[i];
    return NULL;
}

int recur_st_metadata_count(const recur_st *st) { return st ? st->meta_count : 0; }

int recur_st_metadata_at(const recur_st *st, int index, const char **key, const char **value)
{
    if (!st || index < 0 || index >= st->meta_count)
        return recur__error(RECUR_E_INVALID, "metadata index %d out of range [0, %d)", index,
                            st ? st->meta_count : 0);
    if (key)
        *key = st->meta_keys[index];
    if (value)
        *value = st->meta_values[index];
    return RECUR_OK;
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct writer_tensor {
    char *name;
    recur_dtype dtype;
    int ndim;
    int64_t shape[RECUR_ST_MAX_DIMS];
    size_t nbytes;
    const void *data; /* borrowed */
} writer_tensor;

struct recur_st_writer {
    writer_tensor *tensors; /* [capacity], count used, in insertion order */
    int count, capacity;
    struct {
        char *key, *value;
    } *meta; /* [meta_capacity], meta_count used, in insertion order */
    int meta_count, meta_capacity;
};

int recur_st_writer_create(recur_st_writer **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_st_writer_create: out is NULL");
    *out = recur__calloc(1, sizeof **out);
    if (!*out)
        return recur__error(RECUR_E_NOMEM, "out of memory for a safetensors writer");
    return RECUR_OK;
}

void recur_st_writer_free(recur_st_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->count; i++)
        recur__free(w->tensors[i].name);
    for (int i = 0; i < w->meta_count; i++) {
        recur__free(w->meta[i].key);
        recur__free(w->meta[i].value);
    }
    recur__free(w->tensors);
    recur__free(w->meta);
    recur__free(w);
}

/* Makes room for one more element in *array (count used of *capacity). The
 * allocator hook has no realloc: grow by copying. */
static bool grow(void **array, int count, int *capacity, size_t elem)
{
    if (count < *capacity)
        return true;
    if (*capacity > INT_MAX / 2)
        return false;
    int cap = *capacity ? 2 * *capacity : 8;
    void *bigger = recur__calloc((size_t)cap, elem);
    if (!bigger)
        return false;
    if (count)
        memcpy(bigger, *array, (size_t)count * elem);
    recur__free(*array);
    *array = bigger;
    *capacity = cap;
    return true;
}

/* jansson refuses strings that are not UTF-8; the header must be UTF-8. */
static bool valid_utf8(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

int recur_st_writer_add(recur_st_writer *w, const char *name, recur_dtype dtype, int ndim,
                        const int64_t *shape, const void *data)
{
    if (!w || !name)
        return recur__error(RECUR_E_INVALID, "recur_st_writer_add: %s is NULL", w ? "name" : "writer");
    if (dtype != RECUR_DTYPE_F32 && dtype != RECUR_DTYPE_F64 && dtype != RECUR_DTYPE_I64 &&
        dtype != RECUR_DTYPE_I32 && dtype != RECUR_DTYPE_U8)
        return recur__error(RECUR_E_INVALID, "tensor '%s': the writer takes F32, F64, I64, I32 or "
                            "U8, not %s", name, recur_dtype_name(dtype));
    if (ndim < 0 || ndim > RECUR_ST_MAX_DIMS || (ndim && !shape))
        return recur__error(RECUR_E_INVALID, "tensor '%s': ndim %d is outside [0, %d]%s", name,
                            ndim, RECUR_ST_MAX_DIMS, ndim && !shape ? " or shape is NULL" : "");
    if (strcmp(name, "__metadata__") == 0)
        return recur__error(RECUR_E_INVALID, "'__metadata__' is reserved and cannot name a tensor");
    if (!valid_utf8(name))
        return recur__error(RECUR_E_INVALID, "tensor name '%s' is not valid UTF-8", name);
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return recur__error(RECUR_E_INVALID, "tensor '%s': shape[%d] = %lld is negative", name,
                                d, (long long)shape[d]);
        if ((uint64_t)shape[d] > SIZE_MAX || !recur__mul_size(numel, (size_t)shape[d], &numel))
            return recur__error(RECUR_E_NOMEM, "tensor '%s': element count overflows", name);
    }
    size_t nbytes;
    if (!recur__mul_size(numel, dtype_table[dtype].size, &nbytes) || nbytes > (size_t)INT64_MAX)
        return recur__error(RECUR_E_NOMEM, "tensor '%s': byte size overflows", name);
    if (nbytes && !data)
        return recur__error(RECUR_E_INVALID, "tensor '%s': data is NULL for %zu bytes", name, nbytes);
    for (int i = 0; i < w->count; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return recur__error(RECUR_E_INVALID, "tensor '%s' was already added", name);
    if (!grow((void **)&w->tensors, w->count, &w->capacity, sizeof *w->tensors))
        return recur__error(RECUR_E_NOMEM, "out of memory adding tensor '%s'", name);
    writer_tensor *t = &w->tensors[w->count];
    memset(t, 0, sizeof *t);
    t->name = recur__strdup(name);
    if (!t->name)
        return recur__error(RECUR_E_NOMEM, "out of memory adding tensor '%s'", name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    t->nbytes = nbytes;
    t->data = data;
    w->count++;
    return RECUR_OK;
}

int recur_st_writer_metadata(recur_st_writer *w, const char *key, const char *value)
{
    if (!w || !key || !value)
        return recur__error(RECUR_E_INVALID, "recur_st_writer_metadata: %s is NULL",
                            !w ? "writer" : !key ? "key" : "value");
    if (!valid_utf8(key) || !valid_utf8(value))
        return recur__error(RECUR_E_INVALID, "metadata '%s': key or value is not valid UTF-8", key);
    char *value_copy = recur__strdup(value);
    if (!value_copy)
        return recur__error(RECUR_E_NOMEM, "out of memory for metadata '%s'", key);
    for (int i = 0; i < w->meta_count; i++) {
        if (strcmp(w->meta[i].key, key) == 0) {
            recur__free(w->meta[i].value);
            w->meta[i].value = value_copy;
            return RECUR_OK;
        }
    }
    char *key_copy = recur__strdup(key);
    if (!key_copy || !grow((void **)&w->meta, w->meta_count, &w->meta_capacity, sizeof *w->meta)) {
        recur__free(key_copy);
        recur__free(value_copy);
        return recur__error(RECUR_E_NOMEM, "out of memory for metadata '%s'", key);
    }
    w->meta[w->meta_count].key = key_copy;
    w->meta[w->meta_count].value = value_copy;
    w->meta_count++;
    return RECUR_OK;
}

/* Builds "[8-byte length][JSON padded with spaces to a multiple of 8]" in a
 * new buffer; *data_size gets the byte count of the data that follows. */
static int build_header(const recur_st_writer *w, unsigned char **out, size_t *out_size,
                        size_t *data_size)
{
    *out = NULL;
    json_t *root = json_object();
    int rc = RECUR_OK;
    if (!root)
        return recur__error(RECUR_E_NOMEM, "out of memory building the safetensors header");
    bool failed = false;
    if (w->meta_count) {
        json_t *meta = json_object();
        failed |= json_object_set_new(root, "__metadata__", meta) != 0;
        for (int i = 0; !failed && i < w->meta_count; i++)
            failed |= json_object_set_new(meta, w->meta[i].key, json_string(w->meta[i].value)) != 0;
    }
    size_t offset = 0;
    for (int i = 0; !failed && i < w->count; i++) {
        const writer_tensor *t = &w->tensors[i];
        size_t end;
        if (!recur__add_size(offset, t->nbytes, &end) || end > (size_t)INT64_MAX) {
            json_decref(root);
            return recur__error(RECUR_E_NOMEM, "total tensor data size overflows at tensor '%s'",
                                t->name);
        }
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++)
            failed |= json_array_append_new(shape, json_integer(t->shape[d])) != 0;
        json_t *offsets = json_array();
        failed |= json_array_append_new(offsets, json_integer((json_int_t)offset)) != 0;
        failed |= json_array_append_new(offsets, json_integer((json_int_t)end)) != 0;
        json_t *entry = json_object();
        failed |= json_object_set_new(entry, "dtype", json_string(recur_dtype_name(t->dtype))) != 0;
        failed |= json_object_set_new(entry, "shape", shape) != 0;
        failed |= json_object_set_new(entry, "data_offsets", offsets) != 0;
        failed |= json_object_set_new(root, t->name, entry) != 0;
        offset = end;
    }
    size_t json_len = failed ? 0 : json_dumpb(root, NULL, 0, JSON_COMPACT);
    if (failed || json_len == 0) {
        json_decref(root);
        return recur__error(RECUR_E_NOMEM, "out of memory building the safetensors header");
    }
    size_t header_len = json_len + (8 - json_len % 8) % 8;
    if (header_len > RECUR_ST_MAX_HEADER) {
        json_decref(root);
        return recur__error(RECUR_E_INVALID, "the safetensors header would take %zu bytes, more "
                            "than the %u a reader accepts (the metadata is too large)",
                            header_len, RECUR_ST_MAX_HEADER);
    }
    size_t total;
    unsigned char *buf = NULL;
    if (recur__add_size(header_len, ST_LEN_BYTES, &total))
        buf = recur__malloc(total);
    if (!buf) {
        json_decref(root);
        return recur__error(RECUR_E_NOMEM, "out of memory for a %zu-byte header", header_len);
    }
    if (json_dumpb(root, (char *)buf + ST_LEN_BYTES, json_len, JSON_COMPACT) != json_len) {
        rc = recur__error(RECUR_E_NOMEM, "serializing the safetensors header failed");
        recur__free(buf);
        buf = NULL;
    } else {
        memset(buf + ST_LEN_BYTES + json_len, ' ', header_len - json_len);
        for (int i = 0; i < 8; i++)
            buf[i] = (unsigned char)((uint64_t)header_len >> (8 * i));
    }
    json_decref(root);
    *out = buf;
    *out_size = total;
    *data_size = offset;
    return rc;
}

int recur_st_writer_serialize(recur_st_writer *w, void **bytes, size_t *size)
{
    if (!w || !bytes || !size)
        return recur__error(RECUR_E_INVALID, "recur_st_writer_serialize: %s is NULL",
                            !w ? "writer" : !bytes ? "bytes" : "size");
    *bytes = NULL;
    *size = 0;
    unsigned char *header;
    size_t header_size, data_size, total;
    int rc = build_header(w, &header, &header_size, &data_size);
    if (rc)
        return rc;
    unsigned char *buf = NULL;
    if (recur__add_size(header_size, data_size, &total))
        buf = recur__malloc(total);
    if (!buf) {
        recur__free(header);
        return recur__error(RECUR_E_NOMEM, "out of memory for a %zu + %zu byte safetensors file",
                            header_size, data_size);
    }
    memcpy(buf, header, header_size);
    recur__free(header);
    size_t at = header_size;
    for (int i = 0; i < w->count; i++) {
        if (w->tensors[i].nbytes)
            memcpy(buf + at, w->tensors[i].data, w->tensors[i].nbytes);
        at += w->tensors[i].nbytes;
    }
    *bytes = buf;
    *size = total;
    return RECUR_OK;
}

static int write_all(int fd, const void *data, size_t size)
{
    const unsigned char *p = data;
    while (size) {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

int recur_st_writer_save(recur_st_writer *w, const char *path)
{
    if (!w || !path || !*path)
        return recur__error(RECUR_E_INVALID, "recur_st_writer_save: %s",
                            !w ? "writer is NULL" : "path is NULL or empty");
    char why[128];
    unsigned char *header;
    size_t header_size, data_size;
    int rc = build_header(w, &header, &header_size, &data_size);
    if (rc)
        return rc;

    /* "<path>.tmp.<pid>" next to the target so that rename() stays within
     * one file system. */
    size_t path_len = strlen(path), tmp_size;
    char *tmp = NULL;
    if (recur__add_size(path_len, 32, &tmp_size))
        tmp = recur__malloc(tmp_size);
    if (!tmp) {
        recur__free(header);
        return recur__error(RECUR_E_NOMEM, "out of memory saving '%s'", path);
    }
    snprintf(tmp, tmp_size, "%s.tmp.%ld", path, (long)getpid());

    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        int err = errno;
        rc = recur__error(RECUR_E_IO, "cannot save '%s': cannot create temporary file '%s': %s%s",
                          path, tmp, errno_text(err, why, sizeof why),
                          err == EEXIST ? " (another save in progress, or left by a crash: "
                                          "remove it)" : "");
        recur__free(tmp);
        recur__free(header);
        return rc;
    }
    /* A replaced file keeps its permission bits. */
    struct stat previous;
    if (stat(path, &previous) == 0 && S_ISREG(previous.st_mode))
        (void)fchmod(fd, previous.st_mode & 07777);
    int err = write_all(fd, header, header_size);
    recur__free(header);
    for (int i = 0; !err && i < w->count; i++)
        err = write_all(fd, w->tensors[i].data, w->tensors[i].nbytes);
    const char *step = "write";
    if (!err && fsync(fd) != 0) {
        err = errno;
        step = "fsync";
    }
    if (close(fd) != 0 && !err) {
        err = errno;
        step = "close";
    }
    if (!err && rename(tmp, path) != 0) {
        err = errno;
        step = "rename";
    }
    if (err) {
        unlink(tmp);
        rc = recur__error(RECUR_E_IO, "cannot save '%s': %s of temporary file '%s' failed: %s "
                          "(any previous '%s' is unchanged)", path, step, tmp,
                          errno_text(err, why, sizeof why), path);
        recur__free(tmp);
        return rc;
    }
    recur__free(tmp);

    /* Make the rename itself durable: fsync the folder holding path. */
    char *folder = recur__strdup(path);
    if (!folder)
        return recur__error(RECUR_E_NOMEM, "saved '%s' but ran out of memory syncing its folder",
                            path);
    char *slash = strrchr(folder, '/');
    if (!slash)
        strcpy(folder, ".");
    else if (slash == folder)
        folder[1] = '\0';
    else
        *slash = '\0';
    int dir = open(folder, O_RDONLY | O_CLOEXEC);
    if (dir < 0 || (fsync(dir) != 0 && errno != EINVAL)) {
        err = errno;
        rc = recur__error(RECUR_E_IO, "saved '%s' but could not sync its folder '%s': %s", path,
                          folder, errno_text(err, why, sizeof why));
    }
    if (dir >= 0)
        close(dir);
    recur__free(folder);
    return rc;
}
