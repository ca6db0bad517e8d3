/* recur/classify.h - classifying whole sequences: labelled text (TSV/CSV)
 * and labelled numeric sequences (the UEA/UCR .ts format), a tokenizer with
 * a stored vocabulary, a recurrent classifier (embedding or per-feature
 * scaling -> recurrent stack -> pooling over time -> dropout -> linear ->
 * softmax) trained on variable-length batches, its checkpoints, evaluation
 * metrics, folds, and two baselines (TF-IDF logistic regression for text,
 * nearest neighbour for numeric sequences). docs/classify.md describes the
 * model, the formats and the benchmarks.
 *
 * Buffers the library returns are freed with recur_free() unless a *_free
 * function is named. Line numbers in messages and in the structs are
 * 1-based lines of the source file. */
#ifndef RECUR_CLASSIFY_H
#define RECUR_CLASSIFY_H

#include "recur/checkpoint.h"
#include "recur/core.h"
#include "recur/lm.h"
#include "recur/rnn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Tables of text ------------------------------------------------------ */

/* Rows of a TSV or CSV file with a header line naming its columns. The
 * delimiter is a tab for *.tsv, a comma for *.csv, and otherwise a tab when
 * the header has one, else a comma. CSV fields may be quoted ("a, ""b""");
 * a quoted field may span lines. Empty lines are skipped. */
typedef struct recur_text_rows {
    size_t count;
    char **text;   /* [count] the text column, UTF-8, NUL-terminated */
    char **label;  /* [count] the label column; NULL when the file has none */
    int64_t *line; /* [count] line of each row in the file */
} recur_text_rows;

/* Reads `path`, taking the columns named text_col and label_col (exact,
 * case-sensitive names from the header). When the header lacks label_col:
 * RECUR_E_FORMAT if need_label, else rows->label is NULL. When the header
 * lacks text_col: RECUR_E_FORMAT naming the columns it has; with
 * allow_plain set, such a file is read instead as plain text, one row per
 * non-empty line (no header, no labels). Errors name the file and line: a
 * row with fewer fields than the header needs, an unterminated quote,
 * invalid UTF-8, an empty text, no rows (RECUR_E_FORMAT); RECUR_E_NOT_FOUND
 * / RECUR_E_IO for the file. */
RECUR_API int recur_text_rows_read(const char *path, const char *label_col, const char *text_col,
                                   int need_label, int allow_plain, recur_text_rows **out);
RECUR_API void recur_text_rows_free(recur_text_rows *rows);

/* ---- Tokenizer ------------------------------------------------------------ */

typedef enum recur_token_level {
    RECUR_TOKENS_WORDS = 0, /* words and punctuation marks */
    RECUR_TOKENS_CHARS = 1  /* Unicode characters */
} recur_token_level;

typedef struct recur_tokenizer_config {
    recur_token_level level;
    int lowercase; /* ASCII A-Z -> a-z before anything else */
    int min_count; /* tokens seen fewer times in the training texts are unknown (>= 1) */
    int max_vocab; /* keep at most this many tokens, most frequent first (0: no limit) */
} recur_tokenizer_config;

/* words: lowercase, min_count 1, no limit; chars: as is, min_count 1. */
RECUR_API recur_tokenizer_config recur_tokenizer_config_default(recur_token_level level);

/* The id of the unknown token, "<unk>", present in every vocabulary. */
#define RECUR_TOKEN_UNKNOWN 0

/* Splits text into tokens. Words: a word is a maximal run of letters,
 * digits, underscores and non-ASCII characters, with apostrophes inside it
 * ("don't"); every other non-space character is a token of its own
 * ("great!" -> "great", "!"); white space separates. Chars: every code point
 * except that runs of white space become one " ". *tokens receives `*count`
 * NUL-terminated strings in one allocation (free the array with recur_free;
 * the strings live inside it). RECUR_E_FORMAT for invalid UTF-8. */
RECUR_API int recur_tokenize(const recur_tokenizer_config *config, const char *text,
                             char ***tokens, size_t *count);

/* A tokenizer: its config and its vocabulary (id 0 "<unk>", then the kept
 * tokens by decreasing count, ties in byte order). */
typedef struct recur_tokenizer recur_tokenizer;

/* Builds the vocabulary from n training texts. */
RECUR_API int recur_tokenizer_build(const recur_tokenizer_config *config,
                                    const char *const *texts, size_t n, recur_tokenizer **out);
/* A tokenizer whose ids 1..n are tokens[0..n) (id 0 is "<unk>"); the
 * strings must be distinct, non-empty and not "<unk>". */
RECUR_API int recur_tokenizer_from_tokens(const recur_tokenizer_config *config,
                                          const char *const *tokens, size_t n,
                                          recur_tokenizer **out);
RECUR_API void recur_tokenizer_free(recur_tokenizer *t);
RECUR_API const recur_tokenizer_config *recur_tokenizer_get_config(const recur_tokenizer *t);
/* V, "<unk>" included. */
RECUR_API int32_t recur_tokenizer_size(const recur_tokenizer *t);
/* Token text of an id (owned by t), NULL outside [0, V). */
RECUR_API const char *recur_tokenizer_token(const recur_tokenizer *t, int32_t id);
/* The id of a token, RECUR_TOKEN_UNKNOWN when absent. */
RECUR_API int32_t recur_tokenizer_lookup(const recur_tokenizer *t, const char *token);
/* Token ids of a text: *ids receives *count ids (free with recur_free;
 * never NULL). *unknown (optional) receives how many were unknown. */
RECUR_API int recur_tokenizer_encode(const recur_tokenizer *t, const char *text, int32_t **ids,
                                     size_t *count, size_t *unknown);
/* {"level": "word", "lowercase": true, "min_count": 1, "max_vocab": 0,
 *  "tokens": ["<unk>", "the", ...]} in a new NUL-terminated buffer. */
RECUR_API int recur_tokenizer_to_json(const recur_tokenizer *t, char **json);
/* Parses that JSON, checking every field (RECUR_E_FORMAT naming it). */
RECUR_API int recur_tokenizer_from_json(const char *json, recur_tokenizer **out);

/* ---- Labelled sequences ------------------------------------------------------ */

typedef enum recur_seq_kind {
    RECUR_SEQ_TOKENS = 0,  /* token ids (text) */
    RECUR_SEQ_FEATURES = 1 /* C floats per step (numeric sequences) */
} recur_seq_kind;

/* A set of labelled sequences, every array owned by the set. Sequence i
 * has steps offsets[i] .. offsets[i+1]-1 of `tokens` ([steps]) or of
 * `features` ([steps, C], row-major). */
typedef struct recur_seqset {
    recur_seq_kind kind;
    size_t count;           /* N sequences */
    int feature_size;       /* C (features), 0 for tokens */
    size_t *offsets;        /* [N + 1] */
    int32_t *tokens;        /* [offsets[N]] or NULL */
    float *features;        /* [offsets[N] * C] or NULL */
    int32_t *labels;        /* [N] class index in 0..K-1, -1 when unlabelled */
    int64_t *lines;         /* [N] line in the source file */
    int32_t *sources;       /* [N] which file (index into source_names) */
    int class_count;        /* K (0 when unlabelled) */
    char **class_names;     /* [K] */
    int source_count;
    char **source_names;    /* [source_count] file paths */
} recur_seqset;

RECUR_API void recur_seqset_free(recur_seqset *set);
/* Length of sequence i. */
RECUR_API size_t recur_seqset_length(const recur_seqset *set, size_t i);

/* Reads a .ts file of the UEA/UCR archive: '#' comments, '@' header lines
 * (@dimensions, @classLabel true L1 L2 ..., @equalLength, ...; @missing
 * true and @timeStamps true are refused as unsupported), then after @data
 * one sequence per line: the channels separated by ':' (each a
 * comma-separated list of numbers, every channel of a line the same
 * length), then the label, one of those of @classLabel. The classes are
 * taken in the order of @classLabel. Errors (RECUR_E_FORMAT) name the file
 * and the line: a number that does not parse, NaN/Inf ("?" missing values),
 * channels of different lengths or a different count than @dimensions, an
 * empty sequence, an unknown label, a missing @data. */
RECUR_API int recur_ts_read(const char *path, recur_seqset **out);

/* Encodes text rows into a token set. class_names: when non-NULL (e.g. the
 * classes of a trained model), every row label must be one of them (else
 * RECUR_E_NOT_FOUND naming the line and the label) and the set takes them
 * in that order; when NULL, the classes are the distinct labels of the rows
 * sorted (numerically when all are integers, else by bytes). Rows without
 * labels give labels -1 and need class_names (which the set copies). A row
 * with no tokens is an empty sequence: RECUR_E_FORMAT naming the line.
 * `source` becomes the set's single source name. */
RECUR_API int recur_seqset_from_rows(const recur_text_rows *rows, const recur_tokenizer *t,
                                     const char *const *class_names, int class_count,
                                     const char *source, recur_seqset **out);

/* The distinct strings of labels[0..n) sorted: numerically when every one
 * is an integer, else by bytes. *names receives *count new strings in one
 * allocation (free the array with recur_free; the strings live in it). */
RECUR_API int recur_labels_sorted(const char *const *labels, size_t n, char ***names,
                                  int *count);

/* Appends b's sequences to a (same kind and feature size, same classes in
 * the same order); b's sources are added after a's. */
RECUR_API int recur_seqset_append(recur_seqset *a, const recur_seqset *b);

/* Stratified folds: fold[i] in 0..k-1 for each sequence, each class dealt
 * round-robin over the folds after a shuffle by rng, so that every fold
 * holds about N/k sequences with the class proportions of the set. */
RECUR_API int recur_seqset_folds(const recur_seqset *set, int k, recur_rng *rng, int *fold);

/* Per-feature mean and standard deviation over every step of the listed
 * sequences (std 1 where a feature is constant). mean, std: [C]. */
RECUR_API int recur_seqset_feature_stats(const recur_seqset *set, const size_t *index, size_t n,
                                         float *mean, float *std);

/* ---- The classifier ----------------------------------------------------------- */

typedef enum recur_pool {
    RECUR_POOL_LAST = 0, /* the top layer's state after each sequence's last step
                            (both directions' final states when bidirectional) */
    RECUR_POOL_MEAN = 1, /* mean of the top layer's outputs over the valid steps */
    RECUR_POOL_MAX = 2   /* elementwise max of those outputs */
} recur_pool;

/* "last", "mean", "max". */
RECUR_API const char *recur_pool_name(recur_pool pool);
RECUR_API int recur_pool_parse(const char *name, recur_pool *out);

typedef struct recur_classifier_config {
    recur_seq_kind input;   /* tokens (embedding) or features (scaling) */
    int vocab_size;         /* V: tokens */
    int embedding_size;     /* E: tokens */
    int feature_size;       /* C: features */
    recur_cell cell;
    int hidden_size;        /* H */
    int num_layers;         /* L */
    int bidirectional;      /* D = 2 when set */
    recur_pool pool;
    float dropout;          /* on the pooled vector before the head (training) */
    float rnn_dropout;      /* between recurrent layers (training) */
    float embed_dropout;    /* on the embedded tokens / scaled features (training) */
    int num_classes;        /* K >= 2 */
} recur_classifier_config;

/* tokens, E 64, lstm, H 128, L 1, unidirectional, pool mean, no dropout;
 * sizes V/C and K must be set. */
RECUR_API recur_classifier_config recur_classifier_config_default(void);
RECUR_API int recur_classifier_config_check(const recur_classifier_config *config);

typedef struct recur_classifier recur_classifier;

/* One flat parameter (and gradient) array holds, in order:
 * embedding.weight [V, E] (tokens only), rnn.<PyTorch names> (the stack),
 * head.weight [K, P], head.bias [K], with P = D*H the pooled size. Feature
 * models also keep scale.mean [C] and scale.std [C] (not trained; set with
 * recur_classifier_set_scaling, identity by default): x' = (x - mean) / std. */
RECUR_API int recur_classifier_create(const recur_classifier_config *config,
                                      recur_classifier **out);
RECUR_API void recur_classifier_free(recur_classifier *m);
RECUR_API const recur_classifier_config *recur_classifier_get_config(const recur_classifier *m);
RECUR_API float *recur_classifier_params(recur_classifier *m);
RECUR_API float *recur_classifier_grads(recur_classifier *m);
RECUR_API size_t recur_classifier_size(const recur_classifier *m);
RECUR_API void recur_classifier_zero_grad(recur_classifier *m);
RECUR_API int recur_classifier_tensor_count(const recur_classifier *m);
RECUR_API const recur_param_view *recur_classifier_tensor_at(const recur_classifier *m, int i);
RECUR_API const recur_param_view *recur_classifier_tensor_find(const recur_classifier *m,
                                                               const char *name);

/* Class names (copied), K of them; default "0", "1", ... */
RECUR_API int recur_classifier_set_classes(recur_classifier *m, const char *const *names);
RECUR_API const char *recur_classifier_class_name(const recur_classifier *m, int k);
/* mean, std [C]; std > 0. */
RECUR_API int recur_classifier_set_scaling(recur_classifier *m, const float *mean,
                                           const float *std);
RECUR_API void recur_classifier_get_scaling(const recur_classifier *m, const float **mean,
                                            const float **std);

/* PyTorch's defaults: embedding N(0, 1), stack and head U(-1/sqrt(fan), ..). */
RECUR_API void recur_classifier_init(recur_classifier *m, recur_rng *rng);

/* Copies a language model's embedding rows and recurrent weights (Dai &
 * Le 2015): row v of embedding.weight <- the LM's row lm_row[v] (rows with
 * lm_row[v] < 0 keep their values), and every forward-direction tensor of
 * the stack from the LM's (same cell, E, H; layers 0 .. min(L, L_lm)-1).
 * A shape that differs is RECUR_E_SHAPE naming the tensor. *copied
 * (optional) receives the number of stack tensors copied. */
RECUR_API int recur_classifier_load_lm(recur_classifier *m, recur_lm *lm, const int32_t *lm_row,
                                       int *copied);

/* The training gradient of the mean cross-entropy of the batch made of the
 * sequences index[0..n) of `set` (a padded, time-major batch with lengths;
 * sequences of any lengths, n >= 1): ADDS it to the gradient array (zero it
 * first), draws dropout from rng, and writes the mean loss. Labels must be
 * in 0..K-1. RECUR_E_NUMERIC when the loss is not finite. */
RECUR_API int recur_classifier_train_step(recur_classifier *m, const recur_seqset *set,
                                          const size_t *index, size_t n, recur_rng *rng,
                                          double *loss);

/* Class probabilities probs [n, K] of the listed sequences, in batches of
 * at most `batch` sequences sorted by length (no dropout). *loss (optional)
 * receives the mean cross-entropy over the labelled ones (NAN when none). */
RECUR_API int recur_classifier_predict(recur_classifier *m, const recur_seqset *set,
                                       const size_t *index, size_t n, int batch, float *probs,
                                       double *loss);

/* Checkpoint: the tensors above under their names, scale.* for feature
 * models, and the "recur_classifier" metadata (the config, the class names
 * and the tokenizer's JSON for text models; docs/classify.md); with `train`,
 * the training state (recur_train_state_write). Written atomically. */
RECUR_API int recur_classifier_save(const char *path, const recur_classifier *m,
                                    const recur_tokenizer *tokenizer,
                                    const recur_train_state *train);
/* Reads and checks one: *m, *tokenizer (NULL for feature models) and, when
 * train is not NULL, *train (NULL when the file has none). Errors name the
 * file: RECUR_E_FORMAT (not a classifier checkpoint, a bad field or
 * tensor), RECUR_E_UNSUPPORTED (newer format), RECUR_E_IO/NOT_FOUND. */
RECUR_API int recur_classifier_load(const char *path, recur_classifier **m,
                                    recur_tokenizer **tokenizer, recur_train_state **train);

/* ---- Metrics ------------------------------------------------------------------------ */

/* Accuracy, macro-F1 and per-class precision / recall / F1 from a
 * confusion matrix [K, K] (row: true class, column: predicted). A class
 * that is never predicted has precision 0, one never true has recall 0 (as
 * scikit-learn with zero_division=0); macro-F1 is the mean F1 over the K
 * classes. */
typedef struct recur_class_metrics {
    int K;
    int64_t *confusion; /* [K, K] */
    int64_t total;
    double accuracy, macro_f1;
    double *precision, *recall, *f1; /* [K] */
    int64_t *support;                /* [K] true count per class */
} recur_class_metrics;

/* truth, predicted [n] in 0..K-1 (RECUR_E_INVALID naming the entry
 * otherwise). *out is freed with recur_class_metrics_free. */
RECUR_API int recur_class_metrics_compute(const int32_t *truth, const int32_t *predicted,
                                          size_t n, int K, recur_class_metrics **out);
RECUR_API void recur_class_metrics_free(recur_class_metrics *m);

/* ---- Baselines ------------------------------------------------------------------------ */

/* Bag of words: unigrams and bigrams of the token ids of the training
 * sequences (id 0, unknown, included), TF-IDF weighted (idf = ln((1 + N) /
 * (1 + df)) + 1, rows L2-normalised, as scikit-learn's TfidfVectorizer),
 * then multinomial logistic regression with an L2 penalty of 1/(2C) ||W||^2
 * (C = 1, the scikit-learn default) fitted by full-batch gradient descent
 * to convergence. Predicts the test sequences' classes into predicted[n_test]. */
RECUR_API int recur_baseline_tfidf(const recur_seqset *set, const size_t *train, size_t n_train,
                                   const size_t *test, size_t n_test, int32_t *predicted);

/* 1-nearest neighbour on feature sequences: with use_dtw, dynamic time
 * warping (squared Euclidean step cost, no window) on the raw sequences;
 * otherwise the Euclidean distance between the sequences resampled
 * (linear interpolation) to the longest training length. */
RECUR_API int recur_baseline_nearest(const recur_seqset *set, const size_t *train,
                                     size_t n_train, const size_t *test, size_t n_test,
                                     int use_dtw, int32_t *predicted);

#ifdef __cplusplus
}
#endif
#endif
