/* json_util.h - the two Jansson helpers every metadata writer of the
 * library uses (checkpoints, forecasters, speech and translation models). */
#ifndef RECUR_IO_JSON_UTIL_H
#define RECUR_IO_JSON_UTIL_H

#include <jansson.h>

/* Sets obj[key] = value, taking the reference; 0 when value is NULL (out of
 * memory building it) or the set fails, else 1. */
int recur__json_put(json_t *obj, const char *key, json_t *value);

/* A float as the double of its shortest decimal form, so that the JSON
 * reads as the value meant and converts back to the same float. */
json_t *recur__json_float(float f);

#endif
