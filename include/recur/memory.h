/* recur/memory.h - a translation memory for neural fuzzy repair (Bulte and
 * Tezcan 2019): the sentence pairs a translation model was trained on, and
 * for a new source sentence the pair whose source is most like it (a fuzzy
 * match). The model then reads the source followed by the match's target,
 *     source + RECUR_MEMORY_SEPARATOR + target of the match,
 * and learns to copy from the match what fits.
 *
 * Words: a sentence is lower-cased (ASCII, Latin-1, Greek and Cyrillic
 * capitals) and cut into tokens, each a run of word characters or one other
 * character, whitespace between (as Python's re.findall(r"\w+|[^\w\s]",
 * s.lower()) does on Latin text). Word characters are ASCII letters, digits
 * and '_', and every code point from U+00C0 up except the multiplication
 * and division signs and the punctuation and symbol blocks (U+2000-U+2BFF,
 * U+2E00-U+2E7F, U+3000-U+303F, U+FE30-U+FE4F, U+FF00-U+FF20 and
 * U+1F000-U+1FAFF); U+0080-U+00BF are other characters. A byte outside
 * well-formed UTF-8 is a token of its own.
 *
 * Similarity of two sentences: 1 - d / max(m, n), d the edit distance
 * (insertions, deletions, substitutions of one token each) between their m
 * and n tokens; 1 for two sentences without tokens.
 *
 * The match: candidates are the memory's pairs that share a word with the
 * sentence, ranked by the sum over the shared distinct words w of
 * 1 / log(1 + df(w)), df(w) the number of the memory's sources holding w;
 * words in more than RECUR_MEMORY_COMMON sources are left out of the
 * ranking. Of the RECUR_MEMORY_CANDIDATES best ranked (ties to the lower
 * index) the most similar wins (ties to the better ranked). A pair whose
 * source is byte for byte the sentence itself is never a match, so the
 * pairs a memory was built from can be matched against it in training.
 *
 * A recur_memory is read-only once made and may be shared between threads. */
#ifndef RECUR_MEMORY_H
#define RECUR_MEMORY_H

#include "recur/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RECUR_MEMORY_SEPARATOR " @@@ "
#define RECUR_MEMORY_COMMON 2000
#define RECUR_MEMORY_CANDIDATES 30

typedef struct recur_memory recur_memory;

/* A memory of the n pairs (source[i], target[i]), copied (n may be 0).
 * RECUR_E_INVALID for a NULL string or sources of more than INT32_MAX
 * tokens in all, RECUR_E_NOMEM. */
RECUR_API int recur_memory_new(const char *const *source, const char *const *target, size_t n,
                               recur_memory **out);
RECUR_API void recur_memory_free(recur_memory *m);

RECUR_API size_t recur_memory_size(const recur_memory *m);
RECUR_API const char *recur_memory_source(const recur_memory *m, size_t i);
RECUR_API const char *recur_memory_target(const recur_memory *m, size_t i);

/* The similarity of two sentences, as above, into *out. */
RECUR_API int recur_memory_similarity(const char *a, const char *b, double *out);

/* The fuzzy match of `source`: *index and *similarity; *index is
 * RECUR_MEMORY_NONE (and *similarity 0) when no candidate shares a word. */
#define RECUR_MEMORY_NONE ((size_t)-1)
RECUR_API int recur_memory_match(const recur_memory *m, const char *source, size_t *index,
                                 double *similarity);

/* The text a model reads for `source`: source + RECUR_MEMORY_SEPARATOR + the
 * match's target when the match's similarity is at least `threshold` and
 * the two hold at most max_chars code points together (0: no limit), else
 * a copy of source. *out: new (recur_free); *similarity (may be NULL): the
 * match's, 0 when the source was left alone. */
RECUR_API int recur_memory_augment(const recur_memory *m, const char *source, double threshold,
                                   size_t max_chars, char **out, double *similarity);

/* JSON form for checkpoints: {"sources": [...], "targets": [...]};
 * *json new (recur_free); RECUR_E_INVALID names a pair that is not valid
 * UTF-8. _from_json: RECUR_E_FORMAT naming what is wrong. */
RECUR_API int recur_memory_to_json(const recur_memory *m, char **json);
RECUR_API int recur_memory_from_json(const char *json, size_t len, recur_memory **out);

#ifdef __cplusplus
}
#endif

#endif
