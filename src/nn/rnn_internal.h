/* rnn_internal.h - hooks into recur_rnn for the tests only. */
#ifndef RECUR_RNN_INTERNAL_H
#define RECUR_RNN_INTERNAL_H

#include <stdbool.h>

#include "recur/rnn.h"

/* true: the cells use their plain libm reference kernels instead of the
 * vectorized ones (streams created afterwards follow the stack). */
void recur__rnn_use_reference(recur_rnn *rnn, bool reference);

#endif
