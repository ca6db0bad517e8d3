/* recur/seq2seq.h - an attention encoder-decoder (Luong et al. 2015, global
 * attention) built from the core's recurrent stacks, for translation.
 *
 *   encoder:  e = enc(E_src[src])          [S, B, D*He]  (variable lengths)
 *   bridge:   h0_l = tanh(W_br,l s + b_br,l) for decoder layer l, where s
 *             [D*He] joins the top encoder layer's last state of each
 *             direction (forward at step len-1, backward at step 0);
 *             LSTM decoders start with c0 = 0
 *   decoder:  q = dec(E_tgt[tgt_in], h0)   [T, B, Hd]     (teacher forcing)
 *   attention score(t, j) = q_t . (W_a e_j)          ("general")
 *                         = q_t . e_j                ("dot", needs Hd = D*He)
 *                         = v . tanh(W_q q_t + W_k e_j) ("additive", Bahdanau)
 *             a_t = softmax_j(score(t, j)), positions j >= src length masked
 *   context   c_t = sum_j a_t,j e_j                  [D*He]
 *   combine   o_t = tanh(W_c [c_t; q_t] + b_c)       [Hd], dropout in training
 *   head      z_t = W_o o_t + b_o                    [Vt]  (W_o = E_tgt when tied)
 *   loss      mean over the non-padding target tokens of the cross-entropy
 *             with label smoothing eps: (1-eps) * -log p(y) + eps * mean_v -log p(v)
 *
 * The decoder reads the target sentence shifted right (<s> y1 y2 ...) and
 * predicts (y1 y2 ... </s>); ids come from recur/bpe.h (0 pad, 1 <s>,
 * 2 </s>). Whole target sequences go through the core time loop at once,
 * so training costs two stack passes per batch. With input feeding
 * (Luong et al. 2015, section 3.3) the decoder's input at step t is
 * [E_tgt[y_{t-1}]; o_{t-1}] (o_{-1} = 0; o before its dropout), so
 * the recurrence knows the earlier attention outputs; the decoder then
 * steps one target position at a time (one layer only).
 *
 * Parameters, one flat array in this order (names as in the checkpoint):
 *   src_embedding.weight [Vs, E], encoder.<PyTorch names of nn.GRU/LSTM>,
 *   bridge.weight [Ld*Hd, D*He], bridge.bias [Ld*Hd],
 *   tgt_embedding.weight [Vt, E], decoder.<PyTorch names>,
 *   attention.weight: [Hd, D*He] (general), absent (dot), or for additive
 *   attention.query.weight [A, Hd], attention.key.weight [A, D*He],
 *   attention.v [A] (A = Hd),
 *   combine.weight [Hd, D*He + Hd] ([Hd, D*He + Hd + E] with lexical),
 *   combine.bias [Hd],
 *   head.weight [Vt, Hd] (absent with tie_embeddings: tgt_embedding.weight
 *   serves), head.bias [Vt]. */
#ifndef RECUR_SEQ2SEQ_H
#define RECUR_SEQ2SEQ_H

#include "recur/core.h"
#include "recur/rnn.h"
#include "recur/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum recur_attention {
    RECUR_ATTENTION_GENERAL = 0,
    RECUR_ATTENTION_DOT = 1,
    RECUR_ATTENTION_ADDITIVE = 2
} recur_attention;

RECUR_API const char *recur_attention_name(recur_attention kind); /* "general", "dot", "additive" */
RECUR_API int recur_attention_parse(const char *name, recur_attention *out);

typedef struct recur_seq2seq_config {
    recur_cell cell;         /* encoder and decoder cell */
    int src_vocab_size;      /* Vs (>= 3) */
    int tgt_vocab_size;      /* Vt (>= 3) */
    int embedding_size;      /* E, both sides */
    int hidden_size;         /* He = Hd per direction */
    int encoder_layers;
    int decoder_layers;
    int bidirectional;       /* encoder D = 2 when non-zero */
    recur_attention attention;
    float dropout;           /* between stacked layers and on o_t, training only */
    float embedding_dropout; /* on both embeddings, training only */
    float word_dropout;      /* training only: each embedded source and target input token is
                                zeroed whole with this probability (the others scaled by
                                1/(1-p)), as in Sennrich & Zhang 2019; 0 in checkpoints
                                written before it existed */
    int tie_embeddings;      /* non-zero: the head's weight is the target embedding (Press &
                                Wolf 2017; needs embedding_size == hidden_size): no
                                head.weight tensor, and tgt_embedding.weight starts as the
                                head would, U(-1/sqrt(H), 1/sqrt(H)) */
    int lexical;             /* non-zero: a lexical shortcut (after Nguyen & Chiang 2018): the
                                combine layer also reads l_t = sum_j a_t,j x_j, the attention-
                                weighted source embeddings, so o_t = tanh(W_c [c_t; q_t; l_t]
                                + b_c) and combine.weight is [Hd, D*He + Hd + E] */
    float hidden_dropout;    /* training only: dropout on the top encoder layer's outputs e_j
                                (before the attention's keys and context) and the top decoder
                                layer's outputs q_t (before the attention's query and the
                                combine layer); 0 in checkpoints written before it existed */
    int input_feeding;       /* non-zero: the decoder also reads o_{t-1} (Luong et al. 2015):
                                decoder.weight_ih_l0 is [G*Hd, E + Hd], its columns E.. for
                                o_{t-1}; needs decoder_layers 1 and hidden_dropout 0 */
    int layer_norm;          /* non-zero: layer normalization in every encoder and decoder
                                cell (recur/rnn.h: the two products normalized per gate, Ba
                                et al. 2016); not with input_feeding */
} recur_seq2seq_config;

/* GRU, E = 256, H = 256, 1 + 1 layers, bidirectional, additive attention,
 * dropout 0.2, embedding dropout 0.1, word and hidden dropout 0, untied; vocabulary sizes 0 (must be
 * set). */
RECUR_API recur_seq2seq_config recur_seq2seq_config_default(void);
RECUR_API int recur_seq2seq_config_check(const recur_seq2seq_config *config);

/* A model keeps one workspace (grown to the largest batch seen), so calls
 * on the same model must not run concurrently. */
typedef struct recur_seq2seq recur_seq2seq;

RECUR_API int recur_seq2seq_create(const recur_seq2seq_config *config, recur_seq2seq **out);
RECUR_API void recur_seq2seq_free(recur_seq2seq *model);
RECUR_API const recur_seq2seq_config *recur_seq2seq_get_config(const recur_seq2seq *model);
RECUR_API float *recur_seq2seq_params(recur_seq2seq *model);
RECUR_API float *recur_seq2seq_grads(recur_seq2seq *model);
RECUR_API size_t recur_seq2seq_size(const recur_seq2seq *model);
RECUR_API void recur_seq2seq_zero_grad(recur_seq2seq *model);
/* Checkpoint averaging (Vaswani et al. 2017; Junczys-Dowmunt et al. 2016):
 * sets into's parameters to the element-wise mean of the count models'
 * (summed in double). Meant for checkpoints of one run, e.g. its last few;
 * into may be one of them. All must have into's architecture: cell,
 * vocabulary sizes, embedding and hidden sizes, layers, directions,
 * attention and the options that add tensors (tied embeddings, lexical
 * shortcut, input feeding, layer normalization); dropout rates may differ,
 * into keeps its own. RECUR_E_SHAPE naming the first difference, and
 * into unchanged, when one differs; RECUR_E_INVALID for count < 1 or a
 * NULL model. */
RECUR_API int recur_seq2seq_average(recur_seq2seq *into, recur_seq2seq *const *models, int count);
/* NULL when a and b share the architecture above (so their parameters
 * align one to one), else the first field that differs, e.g. "hidden
 * size" (static text). */
RECUR_API const char *recur_seq2seq_architecture_difference(const recur_seq2seq *a,
                                                            const recur_seq2seq *b);
/* PyTorch's defaults: embeddings ~ N(0, 1) (a tied tgt_embedding: U(-1/sqrt(H),
 * 1/sqrt(H)), as the head it also is); stacks U(-1/sqrt(H), 1/sqrt(H));
 * every other matrix and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
RECUR_API void recur_seq2seq_init(recur_seq2seq *model, recur_rng *rng);
RECUR_API int recur_seq2seq_tensor_count(const recur_seq2seq *model);
RECUR_API const recur_param_view *recur_seq2seq_tensor_at(const recur_seq2seq *model, int index);
RECUR_API const recur_param_view *recur_seq2seq_tensor_find(const recur_seq2seq *model,
                                                            const char *name);

/* A padded batch, time-major. Borrowed for the call. */
typedef struct recur_seq2seq_batch {
    int B;
    int S;                       /* source steps */
    const int32_t *src;          /* [S, B], ids past src_lengths[b] unread */
    const int32_t *src_lengths;  /* [B], 1..S */
    int T;                       /* decoder steps */
    const int32_t *tgt_in;       /* [T, B] <s> y1 .. y_{n}, padded with 0 */
    const int32_t *tgt_out;      /* [T, B] y1 .. y_n </s>, padded with 0 (ignored) */
} recur_seq2seq_batch;

/* Forward, loss, and the gradient of the mean loss over the batch's
 * non-padding target tokens ADDED to the gradients. *loss receives the
 * mean smoothed cross-entropy, *nll (may be NULL) the plain mean negative
 * log-likelihood, *tokens (may be NULL) how many target tokens counted.
 * label_smoothing is eps in [0, 1). rng draws dropout (may be NULL when
 * all dropouts are 0). Source ids past src_lengths[b] are never read;
 * tgt_in and tgt_out must hold ids of the target vocabulary everywhere
 * (padding 0). A batch with no counted token gives loss 0 and no gradient.
 * RECUR_E_INVALID names a bad id (with its step and sentence), length or
 * shape; RECUR_E_NUMERIC a non-finite loss (no gradient is added). */
RECUR_API int recur_seq2seq_train_step(recur_seq2seq *model, const recur_seq2seq_batch *batch,
                                       float label_smoothing, recur_rng *rng, double *loss,
                                       double *nll, size_t *tokens);
/* The same without gradients or dropout (label smoothing still applies to
 * *loss; *nll is the plain one). */
RECUR_API int recur_seq2seq_evaluate(recur_seq2seq *model, const recur_seq2seq_batch *batch,
                                     float label_smoothing, double *loss, double *nll,
                                     size_t *tokens);

/* Decoding of one source sentence. */
#define RECUR_SEQ2SEQ_MAX_BEAM 256
#define RECUR_SEQ2SEQ_MAX_LENGTH 65536

typedef struct recur_seq2seq_decode_config {
    int beam_width;       /* 1..RECUR_SEQ2SEQ_MAX_BEAM; 1: greedy */
    float length_penalty; /* alpha in [0, 10]: hypotheses ranked by log p / len^alpha, len
                             counting the </s> (0: raw sum) */
    int max_length;       /* most output tokens, 0..RECUR_SEQ2SEQ_MAX_LENGTH; 0: 2 * source length + 10
                             (at most 65536) */
    float coverage_penalty; /* beta in [0, 10] (Wu et al. 2016): a finished hypothesis
                               ranks by log p / len^alpha + beta sum_j log min(c_j, 1), c_j
                               the attention source position j received over all its steps
                               (the </s> step included; in an ensemble the members' mean
                               attention); it penalises source words left untranslated.
                               0: off */
} recur_seq2seq_decode_config;

/* beam 5, alpha 0.6, max_length 0, coverage penalty 0. */
RECUR_API recur_seq2seq_decode_config recur_seq2seq_decode_config_default(void);

/* src [n] (no <s>/</s>) -> *out (new array, free with recur_free; NULL
 * when *out_len is 0), *out_len tokens without </s>. config NULL: the
 * defaults. Beam search with K = beam_width: each live hypothesis (at
 * first <s> alone) is expanded by its K most likely tokens (<pad> and <s>
 * are never emitted); of all these candidates, ranked by sum log p (ties:
 * the lower token id, then the earlier hypothesis), the best K are kept:
 * those ending in </s> are finished, the others are the next live
 * hypotheses. A hypothesis that reaches max_length tokens is ended with
 * </s> (scored by the model). The search stops when no hypothesis is live
 * or when none can still beat the best finished one by normalised score:
 * log p only falls, so a live hypothesis can reach at most its score over
 * (max_length + 1)^alpha (an exact bound, not a heuristic). The best
 * finished hypothesis by normalised score (plus the coverage penalty, at
 * most 0, so the bound holds) wins (ties: the earlier found).
 * Beam width 1 is greedy search exactly: the most likely token at each
 * step until </s>. When attention is non-NULL it receives a new
 * [*out_len + 1, n] array (rows: each emitted token and the </s> step;
 * each row sums to 1). Deterministic: the same input gives the same
 * output. RECUR_E_INVALID names a bad id (with its position), n < 1 or a
 * bad config field. */
RECUR_API int recur_seq2seq_translate(recur_seq2seq *model, const int32_t *src, int n,
                                      const recur_seq2seq_decode_config *config, int32_t **out,
                                      int *out_len, float **attention);

/* Ensembles: the most models one translation may combine. */
#define RECUR_SEQ2SEQ_MAX_ENSEMBLE 16

/* recur_seq2seq_translate with `count` models (1..16) decoding together:
 * each step's token distribution is the mean of the models' distributions
 * (recur_log_mixture: log (1/count) sum_i softmax(logits_i)), and beam
 * search runs on it exactly as above. The models may differ in cell, sizes
 * and attention but must share both vocabularies (the same BPE); each
 * keeps its own decoder state. attention: model 0's weights along the
 * chosen output. count = 1 is recur_seq2seq_translate. RECUR_E_INVALID
 * also for a NULL model, a count outside 1..16 or vocabularies that differ
 * (naming the model). */
RECUR_API int recur_seq2seq_translate_ensemble(recur_seq2seq *const *models, int count,
                                               const int32_t *src, int n,
                                               const recur_seq2seq_decode_config *config,
                                               int32_t **out, int *out_len, float **attention);

/* One translation of an n-best list. */
typedef struct recur_seq2seq_hypothesis {
    int32_t *tokens; /* [length] target ids without </s> (NULL when length is 0) */
    int length;
    double log_prob; /* sum of log p of its tokens and the </s> (an ensemble: of the
                        mean distribution) */
    double score;    /* what beam search ranks by: log_prob / (length + 1)^alpha, plus
                        the coverage penalty */
} recur_seq2seq_hypothesis;

/* recur_seq2seq_translate_ensemble returning the `nbest` (1..beam_width)
 * best finished hypotheses of the beam search instead of the best alone:
 * *out (a new array, free with recur_seq2seq_hypotheses_free) holds
 * *out_count of them (at least 1, at most nbest), best first by score
 * (ties: the earlier found), all different. The search keeps each
 * finished hypothesis that ranks among the best nbest so far, and stops
 * when no hypothesis is live or none can still beat the nbest-th by
 * normalised score (the bound above), so nbest 1 gives exactly
 * recur_seq2seq_translate_ensemble's output; a larger nbest may search
 * longer. For minimum Bayes risk decoding (recur_mbr_select) and reranking.
 * RECUR_E_INVALID as recur_seq2seq_translate_ensemble, and for nbest
 * outside 1..beam_width. */
RECUR_API int recur_seq2seq_translate_nbest(recur_seq2seq *const *models, int count,
                                            const int32_t *src, int n,
                                            const recur_seq2seq_decode_config *config, int nbest,
                                            recur_seq2seq_hypothesis **out, int *out_count);
/* Frees the array and the count hypotheses' tokens; NULL is fine. */
RECUR_API void recur_seq2seq_hypotheses_free(recur_seq2seq_hypothesis *hyps, int count);

/* The attention of a given translation (teacher forcing, as decoding
 * computes it): src [n] and tgt [len] (no <s>/</s>, len >= 0) -> *attention,
 * a new [len + 1, n] array (free with recur_free): row i is the attention
 * while predicting tgt[i] (row len: </s>), each row summing to 1. For
 * inspecting alignments of reference translations. RECUR_E_INVALID names
 * a bad id (with its position; target ids are subwords, not <pad>, <s> or
 * </s>) or length. */
RECUR_API int recur_seq2seq_attention(recur_seq2seq *model, const int32_t *src, int n,
                                      const int32_t *tgt, int len, float **attention);

/* recur_seq2seq_evaluate without label smoothing that also lends the
 * logits: *logits points to [T*B, tgt_vocab_size] floats (row t*B + b
 * scores tgt_out[t*B + b]), owned by the model and valid until its next
 * call; for scoring ensembles (recur_log_mixture). */
RECUR_API int recur_seq2seq_evaluate_logits(recur_seq2seq *model, const recur_seq2seq_batch *batch,
                                            double *nll, size_t *tokens, const float **logits);

/* ---- Checkpoints --------------------------------------------------------- */

/* the newest format written: 5 with layer normalization, 4 with input feeding, 3 with the
 * lexical shortcut, 2 for tied embeddings, 1 otherwise */
#define RECUR_SEQ2SEQ_FORMAT 5

/* The tensors (F32, names above) and the "recur_seq2seq" metadata (a JSON
 * object with "format" and every config field). Tensors are borrowed until
 * the writer saves. */
RECUR_API int recur_seq2seq_write(recur_seq2seq *model, recur_st_writer *writer);
/* RECUR_E_FORMAT (prefixed by `name`) for missing or malformed metadata,
 * tensors or shapes, or non-finite weights; RECUR_E_UNSUPPORTED for a newer
 * format. */
RECUR_API int recur_seq2seq_read(const recur_st *st, const char *name, recur_seq2seq **out);

#ifdef __cplusplus
}
#endif
#endif
