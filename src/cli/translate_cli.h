/* translate_cli.h - what the `recur translate` commands (translate.c:
 * dispatch, sentence pairs, the split, model files, scoring;
 * translate_train.c; translate_run.c: translating stdin and `eval`) share. */
#ifndef RECUR_CLI_TRANSLATE_H
#define RECUR_CLI_TRANSLATE_H

#include <stdint.h>
#include <stdio.h>

#include "cli.h"

int cmd_translate(int argc, char **argv);
int cmd_translate_train(int argc, char **argv);
int cmd_translate_eval(int argc, char **argv);
int cmd_translate_average(int argc, char **argv);
int cmd_translate_run(int argc, char **argv);

/* The fixed split of a pair file: FNV-1a (64-bit) of the source sentence's
 * bytes, modulo 20: 0 -> test (5%), 1 -> validation (5%), else training.
 * Equal source sentences always fall in the same part. */
typedef enum tr_split { TR_TRAIN = 0, TR_VALIDATION = 1, TR_TEST = 2, TR_ALL = 3 } tr_split;
tr_split translate_split_of(const char *source);
const char *translate_split_name(tr_split split);
int translate_split_parse(const char *name, tr_split *out);

/* Sentence pairs of one part of a TSV/CSV file whose header names the
 * source and target columns. Strings are owned by `rows`, or after
 * translate_pairs_augment the sources by `owned`. */
typedef struct tr_pairs {
    size_t count;
    const char **src, **tgt;
    int64_t *line;           /* line of each pair in its file */
    recur_text_rows *rows;
    const char **raw_src;    /* the sources as read (src itself until augmented) */
    char **owned;            /* [count] the augmented sources, or NULL */
} tr_pairs;

/* Reads `path` and keeps the pairs of `split` (TR_ALL: every pair). Errors
 * (CLI_FAILURE, printed): the file, a missing column (naming those there
 * are), an empty field, invalid UTF-8 (with the line). */
int translate_read_pairs(const char *cmd, const char *path, const char *source,
                         const char *target, tr_split split, tr_pairs *out);
void translate_pairs_free(tr_pairs *p);

/* A translation model file: the network, its BPE, the column names and,
 * for neural fuzzy repair (--memory), the translation memory whose fuzzy
 * matches extend each source sentence (recur_memory_augment). */
typedef struct tr_model {
    recur_seq2seq *net;
    recur_bpe *bpe;
    char source[64], target[64];
    recur_memory *memory;    /* NULL: sources are read as they are */
    double memory_threshold;
    int memory_max_chars;
} tr_model;

/* Adds the model to a writer: recur_seq2seq_write, plus the metadata
 * "recur_bpe" (recur_bpe_to_json) and "recur_translate" ({"format": 1,
 * "source": ..., "target": ...}; with a memory format 2, with
 * "memory_threshold" and "memory_max_chars", and the metadata
 * "recur_memory", recur_memory_to_json). A library status. */
int translate_model_write(tr_model *m, recur_st_writer *w);
/* Reads a model from an opened file (name starts messages); a library
 * status with the message in recur_last_error. */
int translate_model_read(const recur_st *st, const char *name, tr_model *m);
/* recur_st_open + translate_model_read; CLI_FAILURE (printed) on error. */
int translate_model_load(const char *cmd, const char *path, tr_model *m);
void translate_model_free(tr_model *m);

/* An ensemble (or the checkpoints to average): `spec` is one path or
 * several joined by commas (at most max, e.g. RECUR_SEQ2SEQ_MAX_ENSEMBLE);
 * all must hold the same BPE, the same memory (or none) and the same
 * columns. *models: a new
 * array of *count loaded models. CLI_FAILURE or CLI_USAGE (printed),
 * naming the file, on error. */
int translate_models_load(const char *cmd, const char *spec, int max, tr_model **models,
                          int *count);
void translate_models_free(tr_model *models, int count);

/* The text the model reads for the source sentence `text`: with a memory,
 * recur_memory_augment with the model's settings, else a copy. *out
 * (free()); a library status. */
int translate_augment(const tr_model *m, const char *text, char **out);
/* Every source of p through translate_augment (p->raw_src keeps the
 * sources as read); nothing without a memory. CLI_FAILURE (printed). */
int translate_pairs_augment(const char *cmd, const tr_model *m, tr_pairs *p);

/* A sentence to the model's ids: *ids (recur_free) and *n; a library status. */
int translate_encode(const tr_model *m, const char *text, int32_t **ids, size_t *n);

/* One sentence translated by the `count` models m[0..count) together
 * (recur_seq2seq_translate_ensemble, or with decode->mbr the minimum Bayes
 * risk choice of recur_seq2seq_translate_nbest's list; model 0's BPE):
 * *text (recur_free).
 * attention and its shape as recur_seq2seq_translate gives them (model
 * 0's; may be NULL). Sentences longer than 100,000 tokens are cut there. */
typedef struct tr_result {
    char *text;
    int32_t *src, *out;
    int src_len, out_len;
    float *attention; /* [out_len + 1, src_len] */
} tr_result;

/* How to decode: the beam search, and optionally minimum Bayes risk
 * selection among its `search.beam_width` best finished hypotheses
 * (recur_mbr_select with the utility and temperature). */
typedef struct tr_decode {
    recur_seq2seq_decode_config search;
    int mbr; /* 0: the beam's best */
    recur_mbr_utility utility;
    double temperature;
    int by_score; /* weights from the beam's normalised scores instead of log p */
} tr_decode;

int translate_sentence(tr_model *m, int count, const char *text, const tr_decode *decode,
                       int want_attention, tr_result *r);
void translate_result_free(tr_result *r);

/* Translates every source sentence of pairs with the `count` models m[]
 * and scores the translations against the targets: corpus BLEU and chrF,
 * and the mean per-token negative log-likelihood of the references
 * (teacher-forced, batches of `batch`; of the models' mean distribution). hyps (may be NULL) receives each translation, one a line.
 * `limit` > 0 scores only the first `limit` pairs. A library status. */
typedef struct tr_scores {
    size_t sentences, tokens;
    recur_bleu bleu;
    double chrf, nll;
    char **hyps; /* [sentences] the translations (owned; freed by translate_scores_free) */
} tr_scores;

int translate_score(tr_model *m, int count, const tr_pairs *pairs, size_t limit,
                    const tr_decode *decode, int batch, tr_scores *s);
void translate_scores_free(tr_scores *s);

/* Mean per-token NLL (and the token count) of the references given the
 * sources, teacher-forced in batches of `batch`, under the mean of the
 * `count` models' distributions; a library status. */
int translate_nll(tr_model *m, int count, const tr_pairs *pairs, size_t limit, int batch, double *nll,
                  size_t *tokens);

/* A padded batch of encoded pairs. Buffers are owned and reused. */
typedef struct tr_batch_buf {
    int32_t *src, *src_lengths, *tgt_in, *tgt_out;
    size_t src_cap, tgt_cap, b_cap;
    recur_seq2seq_batch batch;
} tr_batch_buf;

/* Fills buf from B sequences: src[i] (src_len[i] ids, 1..) and tgt[i]
 * (tgt_len[i] ids, 0..): tgt_in = <s> tgt, tgt_out = tgt </s>. */
int translate_batch_fill(tr_batch_buf *buf, int B, int32_t *const *src, const int *src_len,
                         int32_t *const *tgt, const int *tgt_len);
void translate_batch_free(tr_batch_buf *buf);

#endif
