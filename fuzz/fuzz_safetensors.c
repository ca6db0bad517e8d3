/* fuzz_safetensors.c - libFuzzer target for the safetensors reader: parses
 * the input with recur_st_parse and, when it is accepted, reads every tensor
 * back as double and float and looks up every metadata key. Crashes, leaks,
 * out-of-bounds reads and undefined behaviour are what the sanitizers report;
 * an accepted file whose tensors fail to read is reported by abort(). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "recur/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    recur_st *st = NULL;
    if (recur_st_parse(data, size, &st) != 0)
        return 0;
    for (int i = 0; i < recur_st_count(st); i++) {
        const recur_st_tensor *t = recur_st_at(st, i);
        size_t n = t->numel ? t->numel : 1;
        double *values = malloc(n * sizeof *values);
        float *floats = malloc(n * sizeof *floats);
        if (values && floats &&
            (recur_st_read_f64(st, t->name, values, t->numel) != 0 ||
             recur_st_read_f32(st, t->name, floats, t->numel) != 0 ||
             recur_st_find(st, t->name) != t))
            abort();
        free(values);
        free(floats);
    }
    for (int i = 0; i < recur_st_metadata_count(st); i++) {
        const char *key, *value;
        if (recur_st_metadata_at(st, i, &key, &value) != 0 || !recur_st_metadata(st, key))
            abort();
    }
    recur_st_free(st);
    return 0;
}
