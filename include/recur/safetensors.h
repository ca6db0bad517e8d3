/* recur/safetensors.h - reading and writing safetensors files.
 *
 * Format: an 8-byte little-endian header length N, N bytes of JSON (an object
 * mapping tensor names to {"dtype", "shape", "data_offsets": [begin, end]},
 * plus an optional "__metadata__" map of strings), then the data buffer.
 * Every byte read is treated as hostile: the reader enforces the rules of the
 * reference implementation plus a 100 MB header cap, known dtypes,
 * overflow-checked sizes, byte spans equal to shape x dtype size, a data
 * buffer covered exactly (contiguous from 0, no gap, overlap or trailing
 * bytes), string-valued metadata and unique names. Each violation returns
 * RECUR_E_FORMAT with a message naming the problem (docs/safetensors.md
 * lists the rules). Data is copied byte for byte: little-endian hosts only. */
#ifndef RECUR_SAFETENSORS_H
#define RECUR_SAFETENSORS_H

#include "recur/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RECUR_ST_MAX_HEADER (100u * 1000u * 1000u)
#define RECUR_ST_MAX_DIMS 8

typedef enum recur_dtype {
    RECUR_DTYPE_F64,
    RECUR_DTYPE_F32,
    RECUR_DTYPE_F16,
    RECUR_DTYPE_BF16,
    RECUR_DTYPE_I64,
    RECUR_DTYPE_I32,
    RECUR_DTYPE_I16,
    RECUR_DTYPE_I8,
    RECUR_DTYPE_U8,
    RECUR_DTYPE_BOOL
} recur_dtype;

/* "F32", "BF16", ... */
RECUR_API const char *recur_dtype_name(recur_dtype dtype);
RECUR_API size_t recur_dtype_size(recur_dtype dtype);

/* One tensor of an open file. `name` and `data` are owned by the recur_st and
 * stay valid until recur_st_free; `data` points into the file's buffer and is
 * not aligned (read it with memcpy or the recur_st_read_* functions). */
typedef struct recur_st_tensor {
    const char *name;
    recur_dtype dtype;
    int ndim;
    int64_t shape[RECUR_ST_MAX_DIMS];
    size_t numel;
    const void *data;
    size_t nbytes;
} recur_st_tensor;

typedef struct recur_st recur_st;

/* Reads and validates a whole file. On failure *out is NULL and the status is
 * RECUR_E_IO (cannot open or read; the message names the path and the system
 * error) or RECUR_E_FORMAT (a rule broken; the message starts with the path). */
RECUR_API int recur_st_open(const char *path, recur_st **out);
/* Validates a file image in memory; the bytes are copied. */
RECUR_API int recur_st_parse(const void *bytes, size_t size, recur_st **out);
RECUR_API void recur_st_free(recur_st *st);

/* Tensors in file order of their data offsets; recur_st_at gives NULL for an
 * index outside [0, count). */
RECUR_API int recur_st_count(const recur_st *st);
RECUR_API const recur_st_tensor *recur_st_at(const recur_st *st, int index);
/* NULL (and a message for recur_last_error) when absent. */
RECUR_API const recur_st_tensor *recur_st_find(const recur_st *st, const char *name);

/* Copies a tensor converted to float (from F64/F32/F16/BF16/integers).
 * `count` must equal the tensor's element count: RECUR_E_SHAPE otherwise,
 * RECUR_E_NOT_FOUND if absent. */
RECUR_API int recur_st_read_f32(const recur_st *st, const char *name, float *out, size_t count);
RECUR_API int recur_st_read_f64(const recur_st *st, const char *name, double *out, size_t count);
/* Like read_f32 but also checks the shape exactly (ndim and every dim). */
RECUR_API int recur_st_read_f32_shape(const recur_st *st, const char *name, int ndim,
                                      const int64_t *shape, float *out);

/* __metadata__ value for key, or NULL when absent. Owned by st. */
RECUR_API const char *recur_st_metadata(const recur_st *st, const char *key);
RECUR_API int recur_st_metadata_count(const recur_st *st);
RECUR_API int recur_st_metadata_at(const recur_st *st, int index, const char **key,
                                   const char **value);

/* Writer: collects borrowed tensors (the data pointers must stay valid until
 * recur_st_writer_save returns) and string metadata, then writes the file
 * atomically: to "<path>.tmp.<pid>", fsync, rename over path, fsync of the
 * folder. A failed save leaves any existing file at path untouched. */
typedef struct recur_st_writer recur_st_writer;

RECUR_API int recur_st_writer_create(recur_st_writer **out);
RECUR_API void recur_st_writer_free(recur_st_writer *w);
/* dtype must be F32, F64, I64, I32 or U8; data holds numel(shape) elements
 * (it may be NULL when that is 0). The name is copied; it must be valid UTF-8,
 * unique and not "__metadata__" (RECUR_E_INVALID otherwise). */
RECUR_API int recur_st_writer_add(recur_st_writer *w, const char *name, recur_dtype dtype,
                                  int ndim, const int64_t *shape, const void *data);
/* Key and value are copied. Setting a key twice replaces the value. */
RECUR_API int recur_st_writer_metadata(recur_st_writer *w, const char *key, const char *value);
/* RECUR_E_IO on failure, with a message naming the path, the failed step and
 * the system error; RECUR_E_INVALID, writing nothing, when the header (the
 * tensor entries and the metadata) would exceed RECUR_ST_MAX_HEADER bytes,
 * which no reader accepts. A file replaced at path keeps its permission bits. */
RECUR_API int recur_st_writer_save(recur_st_writer *w, const char *path);
/* The serialized file in a new buffer the caller frees with recur_free(). */
RECUR_API int recur_st_writer_serialize(recur_st_writer *w, void **bytes, size_t *size);

#ifdef __cplusplus
}
#endif
#endif
