/* json_util.c - Jansson helpers shared by the metadata writers (json_util.h). */
#include <stdio.h>
#include <stdlib.h>

#include "json_util.h"

int recur__json_put(json_t *obj, const char *key, json_t *value)
{
    return value && json_object_set_new(obj, key, value) == 0;
}

json_t *recur__json_float(float f)
{
    char text[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, (double)f);
        if ((float)strtod(text, NULL) == f)
            break;
    }
    return json_real(strtod(text, NULL));
}
