/* test_seq2seq.c - the attention encoder-decoder (recur/seq2seq.h): layout
 * of the parameters; gradient checks by central differences over every
 * parameter for each attention kind, GRU and LSTM, one and two layers,
 * bidirectional or not, with dropout and label smoothing; a padded batch
 * equals its sentences alone; beam width 1 equals a greedy search made
 * independently with the teacher-forced evaluation; a wide beam finds the
 * best hypothesis of an exhaustive search (so never worse than greedy),
 * with the coverage penalty too (scored from recur_seq2seq_attention, which
 * must equal decoding's attention); attention rows; determinism; a copy task learned with Adam; checkpoint
 * round trips and malformed checkpoints; argument errors; every allocation
 * failing in turn. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "recur.h"

#define PAD 0
#define BOS 1
#define EOS 2

static recur_seq2seq_config small_config(recur_cell cell, recur_attention attention, int bi,
                                         int Le, int Ld, int V, int E, int H)
{
    recur_seq2seq_config c = recur_seq2seq_config_default();
    c.cell = cell;
    c.src_vocab_size = V;
    c.tgt_vocab_size = V;
    c.embedding_size = E;
    c.hidden_size = H;
    c.encoder_layers = Le;
    c.decoder_layers = Ld;
    c.bidirectional = bi;
    c.attention = attention;
    c.dropout = 0.0f;
    c.embedding_dropout = 0.0f;
    return c;
}

static recur_seq2seq *make_model(const recur_seq2seq_config *c, uint64_t seed)
{
    recur_seq2seq *m = NULL;
    CHECK_OK(recur_seq2seq_create(c, &m));
    if (!m)
        return NULL;
    recur_rng rng;
    recur_rng_seed(&rng, seed);
    recur_seq2seq_init(m, &rng);
    return m;
}

/* A padded batch that owns its arrays. */
typedef struct batch_data {
    int32_t *src, *src_lengths, *tgt_in, *tgt_out;
    recur_seq2seq_batch batch;
} batch_data;

/* Sentence b has src_len[b] source ids and tgt_len[b] target ids (random
 * ids >= 3); tgt_in = <s> y, tgt_out = y </s>, padded with 0 to T =
 * max tgt_len + 1 (or T_min). Source positions past a length hold an id
 * outside the vocabulary, which must never be read. */
static void make_batch(batch_data *d, int B, const int *src_len, const int *tgt_len, int Vs,
                       int Vt, int T_min, recur_rng *rng)
{
    int S = 1, T = T_min;
    for (int b = 0; b < B; b++) {
        S = src_len[b] > S ? src_len[b] : S;
        T = tgt_len[b] + 1 > T ? tgt_len[b] + 1 : T;
    }
    d->src = malloc((size_t)S * B * sizeof(int32_t));
    d->src_lengths = malloc((size_t)B * sizeof(int32_t));
    d->tgt_in = calloc((size_t)T * B, sizeof(int32_t));
    d->tgt_out = calloc((size_t)T * B, sizeof(int32_t));
    for (int b = 0; b < B; b++) {
        d->src_lengths[b] = src_len[b];
        for (int t = 0; t < S; t++)
            d->src[(size_t)t * B + b] = t < src_len[b] ? 3 + (int32_t)recur_rng_below(rng, Vs - 3)
                                                       : 99999;
        d->tgt_in[b] = BOS;
        for (int t = 0; t < tgt_len[b]; t++) {
            int32_t y = 3 + (int32_t)recur_rng_below(rng, Vt - 3);
            d->tgt_out[(size_t)t * B + b] = y;
            d->tgt_in[(size_t)(t + 1) * B + b] = y;
        }
        d->tgt_out[(size_t)tgt_len[b] * B + b] = EOS;
    }
    d->batch = (recur_seq2seq_batch){B, S, d->src, d->src_lengths, T, d->tgt_in, d->tgt_out};
}

static void batch_free(batch_data *d)
{
    free(d->src);
    free(d->src_lengths);
    free(d->tgt_in);
    free(d->tgt_out);
}

/* A batch of one sentence from explicit ids: target y [n] becomes
 * tgt_in = <s> y, tgt_out = y </s>, or with `last` >= 0, tgt_in = <s> y and
 * tgt_out = y last. */
static void one_sentence(batch_data *d, const int32_t *src, int n, const int32_t *y, int len,
                         int32_t last)
{
    d->src = malloc((size_t)n * sizeof(int32_t));
    memcpy(d->src, src, (size_t)n * sizeof(int32_t));
    d->src_lengths = malloc(sizeof(int32_t));
    d->src_lengths[0] = n;
    d->tgt_in = malloc((size_t)(len + 1) * sizeof(int32_t));
    d->tgt_out = malloc((size_t)(len + 1) * sizeof(int32_t));
    d->tgt_in[0] = BOS;
    for (int t = 0; t < len; t++) {
        d->tgt_in[t + 1] = y[t];
        d->tgt_out[t] = y[t];
    }
    d->tgt_out[len] = last >= 0 ? last : EOS;
    d->batch = (recur_seq2seq_batch){1, n, d->src, d->src_lengths, len + 1, d->tgt_in,
                                     d->tgt_out};
}

/* sum log p of y </s> (or y last) given src, teacher-forced. */
static double sequence_log_prob(recur_seq2seq *m, const int32_t *src, int n, const int32_t *y,
                                int len, int32_t last)
{
    batch_data d;
    one_sentence(&d, src, n, y, len, last);
    double loss = NAN, nll = NAN;
    size_t tokens = 0;
    CHECK_OK(recur_seq2seq_evaluate(m, &d.batch, 0.0f, &loss, &nll, &tokens));
    batch_free(&d);
    return -nll * (double)tokens;
}

/* ---- layout -------------------------------------------------------------------- */

static void test_layout(void)
{
    const recur_attention kinds[] = {RECUR_ATTENTION_GENERAL, RECUR_ATTENTION_DOT,
                                     RECUR_ATTENTION_ADDITIVE};
    for (int k = 0; k < 3; k++) {
        const int bi = kinds[k] != RECUR_ATTENTION_DOT;
        recur_seq2seq_config c = small_config(RECUR_CELL_LSTM, kinds[k], bi, 2, 2, 11, 4, 5);
        c.tgt_vocab_size = 13;
        recur_seq2seq *m = NULL;
        CHECK_OK(recur_seq2seq_create(&c, &m));
        if (!m)
            continue;
        const int D = bi ? 2 : 1;
        const int want = 1 + 4 * 2 * D + 3 + 4 * 2 + (k == 0 ? 1 : k == 1 ? 0 : 3) + 4;
        CHECK(recur_seq2seq_tensor_count(m) == want);
        size_t offset = 0;
        for (int i = 0; i < recur_seq2seq_tensor_count(m); i++) {
            const recur_param_view *v = recur_seq2seq_tensor_at(m, i);
            CHECK_MSG(v->offset == offset, "%s at %zu, expected %zu", v->name, v->offset, offset);
            offset += v->numel;
            CHECK(recur_seq2seq_tensor_find(m, v->name) == v);
        }
        CHECK(offset == recur_seq2seq_size(m));
        CHECK(strcmp(recur_seq2seq_tensor_at(m, 0)->name, "src_embedding.weight") == 0);
        CHECK(strcmp(recur_seq2seq_tensor_at(m, 1)->name, "encoder.weight_ih_l0") == 0);
        CHECK(strcmp(recur_seq2seq_tensor_at(m, want - 1)->name, "head.bias") == 0);
        const recur_param_view *bw = recur_seq2seq_tensor_find(m, "bridge.weight");
        CHECK(bw && bw->shape[0] == 2 * 5 && bw->shape[1] == D * 5);
        CHECK(strcmp(recur_seq2seq_tensor_at(m, 1 + 4 * 2 * D)->name, "bridge.weight") == 0);
        CHECK(strcmp(recur_seq2seq_tensor_at(m, 3 + 4 * 2 * D)->name, "tgt_embedding.weight") == 0);
        CHECK(strcmp(recur_seq2seq_tensor_at(m, 4 + 4 * 2 * D)->name, "decoder.weight_ih_l0") == 0);
        const recur_param_view *cw = recur_seq2seq_tensor_find(m, "combine.weight");
        CHECK(cw && cw->shape[0] == 5 && cw->shape[1] == D * 5 + 5);
        const recur_param_view *hw = recur_seq2seq_tensor_find(m, "head.weight");
        CHECK(hw && hw->shape[0] == 13 && hw->shape[1] == 5);
        CHECK((recur_seq2seq_tensor_find(m, "attention.weight") != NULL) == (k == 0));
        CHECK((recur_seq2seq_tensor_find(m, "attention.v") != NULL) == (k == 2));
        if (k == 2) {
            const recur_param_view *kw = recur_seq2seq_tensor_find(m, "attention.key.weight");
            CHECK(kw && kw->shape[0] == 5 && kw->shape[1] == D * 5);
        }
        CHECK(recur_seq2seq_tensor_find(m, "nope") == NULL);
        CHECK(recur_seq2seq_tensor_find(m, NULL) == NULL);
        CHECK(recur_seq2seq_tensor_at(m, want) == NULL);
        CHECK(recur_seq2seq_get_config(m)->attention == kinds[k]);
        recur_seq2seq_free(m);
        /* the lexical shortcut widens combine.weight by E */
        c.lexical = 1;
        CHECK_OK(recur_seq2seq_create(&c, &m));
        cw = m ? recur_seq2seq_tensor_find(m, "combine.weight") : NULL;
        CHECK(cw && cw->shape[0] == 5 && cw->shape[1] == D * 5 + 5 + 4);
        CHECK(m && recur_seq2seq_tensor_count(m) == want);
        recur_seq2seq_free(m);
    }
    /* layer normalization: two gains after each direction's biases */
    {
        recur_seq2seq_config c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 2, 1,
                                              11, 4, 5);
        c.layer_norm = 1;
        recur_seq2seq *m = NULL;
        CHECK_OK(recur_seq2seq_create(&c, &m));
        CHECK(m && recur_seq2seq_tensor_count(m) == 1 + 6 * 2 * 2 + 3 + 6 + 3 + 4);
        const recur_param_view *g = m ? recur_seq2seq_tensor_at(m, 6) : NULL;
        CHECK(g && strcmp(g->name, "encoder.layer_norm_hh_l0") == 0 && g->shape[0] == 15);
        g = m ? recur_seq2seq_tensor_find(m, "decoder.layer_norm_ih_l0") : NULL;
        CHECK(g && g->ndim == 1 && g->shape[0] == 15);
        recur_seq2seq_free(m);
    }
    recur_attention a;
    CHECK_OK(recur_attention_parse("additive", &a));
    CHECK(a == RECUR_ATTENTION_ADDITIVE);
    CHECK(strcmp(recur_attention_name(RECUR_ATTENTION_DOT), "dot") == 0);
    CHECK_STATUS(recur_attention_parse("bahdanau", &a), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("bahdanau");
    recur_seq2seq_config d = recur_seq2seq_config_default();
    CHECK(d.cell == RECUR_CELL_GRU && d.embedding_size == 256 && d.hidden_size == 256 &&
          d.bidirectional && d.attention == RECUR_ATTENTION_ADDITIVE && d.src_vocab_size == 0);
    recur_seq2seq_decode_config dd = recur_seq2seq_decode_config_default();
    CHECK(dd.beam_width == 5 && dd.max_length == 0 && fabsf(dd.length_penalty - 0.6f) < 1e-7f);
}

/* ---- gradients --------------------------------------------------------------------- */

static double loss_at(recur_seq2seq *m, const recur_seq2seq_batch *b, float eps, uint64_t seed)
{
    recur_rng rng;
    recur_rng_seed(&rng, seed);
    double loss = NAN;
    if (recur_seq2seq_train_step(m, b, eps, &rng, &loss, NULL, NULL) != RECUR_OK)
        return NAN;
    return loss;
}

/* Every parameter against central differences. Errors are measured per
 * tensor against max(its largest gradient, 5% of the largest overall). */
static void gradient_case(const char *what, const recur_seq2seq_config *c, float eps,
                          uint64_t seed)
{
    recur_seq2seq *m = make_model(c, seed);
    if (!m)
        return;
    recur_rng rng;
    recur_rng_seed(&rng, seed + 1);
    const int src_len[3] = {4, 2, 3}, tgt_len[3] = {2, 1, 0};
    batch_data d;
    make_batch(&d, 3, src_len, tgt_len, c->src_vocab_size, c->tgt_vocab_size, 3, &rng);
    const uint64_t dropout_seed = seed + 2;
    recur_seq2seq_zero_grad(m);
    const size_t n = recur_seq2seq_size(m);
    CHECK(isfinite(loss_at(m, &d.batch, eps, dropout_seed)));
    float *analytic = malloc(n * sizeof(float));
    memcpy(analytic, recur_seq2seq_grads(m), n * sizeof(float));
    float *p = recur_seq2seq_params(m);
    double global = 0.0;
    for (size_t i = 0; i < n; i++)
        global = fabs(analytic[i]) > global ? fabs(analytic[i]) : global;
    CHECK_MSG(global > 1e-3, "%s: gradients vanish (%g)", what, global);
    /* normalization is steep where a gate's values nearly agree: a smaller step */
    const float h = c->layer_norm ? 3e-3f : 1e-2f;
    for (int t = 0; t < recur_seq2seq_tensor_count(m); t++) {
        const recur_param_view *v = recur_seq2seq_tensor_at(m, t);
        double scale = 0.01 * global, worst = 0.0, worst_num = 0.0;
        size_t worst_at = 0;
        for (size_t j = 0; j < v->numel; j++)
            scale = fabs(analytic[v->offset + j]) > scale ? fabs(analytic[v->offset + j]) : scale;
        for (size_t j = 0; j < v->numel; j++) {
            float *x = p + v->offset + j, saved = *x;
            *x = saved + h;
            const double lp = loss_at(m, &d.batch, eps, dropout_seed);
            *x = saved - h;
            const double lm = loss_at(m, &d.batch, eps, dropout_seed);
            *x = saved;
            const double numeric = (lp - lm) / (2.0 * h);
            const double err = fabs(numeric - analytic[v->offset + j]);
            if (!(err <= worst)) {
                worst = err;
                worst_at = j;
                worst_num = numeric;
            }
        }
        const double rel = worst / scale;
        CHECK_MSG(rel < 3e-3, "%s: %s[%zu]: analytic %.6g numeric %.6g (rel error %.3g > 3e-3)",
                  what, v->name, worst_at, (double)analytic[v->offset + worst_at], worst_num, rel);
    }
    free(analytic);
    batch_free(&d);
    recur_seq2seq_free(m);
}

static void test_gradients(void)
{
    recur_seq2seq_config c;
    c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_GENERAL, 1, 1, 1, 11, 4, 5);
    gradient_case("gru general bi 1+1", &c, 0.0f, 11);
    c = small_config(RECUR_CELL_LSTM, RECUR_ATTENTION_GENERAL, 1, 2, 2, 11, 4, 5);
    c.dropout = 0.3f;
    c.embedding_dropout = 0.2f;
    gradient_case("lstm general bi 2+2 dropout smoothing", &c, 0.1f, 12);
    c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_DOT, 0, 2, 1, 11, 4, 5);
    gradient_case("gru dot 2+1 smoothing", &c, 0.2f, 13);
    c = small_config(RECUR_CELL_LSTM, RECUR_ATTENTION_DOT, 0, 1, 2, 11, 4, 5);
    c.dropout = 0.25f;
    gradient_case("lstm dot 1+2 dropout", &c, 0.0f, 14);
    c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 2, 2, 11, 4, 5);
    c.dropout = 0.2f;
    c.embedding_dropout = 0.1f;
    gradient_case("gru additive bi 2+2 dropout smoothing", &c, 0.1f, 15);
    c = small_config(RECUR_CELL_LSTM, RECUR_ATTENTION_ADDITIVE, 0, 1, 1, 11, 4, 5);
    gradient_case("lstm additive 1+1", &c, 0.0f, 16);
    c = small_config(RECUR_CELL_RNN_TANH, RECUR_ATTENTION_GENERAL, 0, 1, 1, 11, 4, 5);
    c.embedding_dropout = 0.3f;
    gradient_case("rnn_tanh general 1+1", &c, 0.05f, 17);
    c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1, 1, 11, 4, 5);
    c.word_dropout = 0.3f;
    gradient_case("gru additive bi 1+1 word dropout", &c, 0.1f, 18);
    c.embedding_dropout = 0.2f;
    gradient_case("gru additive bi 1+1 word and embedding dropout", &c, 0.0f, 19);
    c = small_config(RECUR_CELL_LSTM, RECUR_ATTENTION_GENERAL, 1, 1, 1, 11, 5, 5);
    c.tie_embeddings = 1;
    c.dropout = 0.2f;
    gradient_case("lstm general bi 1+1 tied embeddings", &c, 0.1f, 20);
    c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1, 1, 11, 5, 5);
    c.lexical = 1;
    c.dropout = 0.2f;
    c.embedding_dropout = 0.2f;
    c.word_dropout = 0.2f;
    gradient_case("gru additive bi 1+1 lexical, dropouts", &c, 0.1f, 24);
    c = small_config(RECUR_CELL_LSTM, RECUR_ATTENTION_GENERAL, 0, 2, 1, 11, 4, 5);
    c.lexical = 1;
    c.tie_embeddings = 0;
    gradient_case("lstm general 2+1 lexical", &c, 0.0f, 25);
    c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1, 1, 11, 5, 5);
    c.hidden_dropout = 0.3f;
    c.dropout = 0.2f;
    c.embedding_dropout = 0.1f;
    gradient_case("gru additive bi 1+1 hidden dropout", &c, 0.1f, 26);
    c = small_config(RECUR_CELL_LSTM, RECUR_ATTENTION_DOT, 0, 2, 2, 11, 4, 4);
    c.hidden_dropout = 0.4f;
    c.lexical = 1;
    gradient_case("lstm dot 2+2 hidden dropout, lexical", &c, 0.0f, 27);
    /* input feeding: the gradient also flows back through o_{t-1} into the decoder */
    c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1, 1, 11, 5, 5);
    c.input_feeding = 1;
    c.tie_embeddings = 1;
    c.dropout = 0.3f;
    c.embedding_dropout = 0.1f;
    gradient_case("gru additive bi 1+1 input feeding, tied, dropouts", &c, 0.1f, 28);
    c = small_config(RECUR_CELL_LSTM, RECUR_ATTENTION_GENERAL, 0, 2, 1, 11, 4, 5);
    c.input_feeding = 1;
    c.lexical = 1;
    c.word_dropout = 0.2f;
    gradient_case("lstm general 2+1 input feeding, lexical", &c, 0.0f, 29);
    c = small_config(RECUR_CELL_RNN_TANH, RECUR_ATTENTION_DOT, 0, 1, 1, 11, 4, 4);
    c.input_feeding = 1;
    c.dropout = 0.2f;
    gradient_case("rnn_tanh dot 1+1 input feeding", &c, 0.05f, 30);
    /* layer normalization in every cell (8 units: see test_rnn.c) */
    c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1, 1, 11, 8, 8);
    c.layer_norm = 1;
    c.tie_embeddings = 1;
    c.dropout = 0.2f;
    c.embedding_dropout = 0.1f;
    gradient_case("gru additive bi 1+1 layer norm, tied, dropouts", &c, 0.1f, 31);
    c = small_config(RECUR_CELL_LSTM, RECUR_ATTENTION_GENERAL, 1, 2, 2, 11, 4, 8);
    c.layer_norm = 1;
    c.dropout = 0.3f;
    gradient_case("lstm general bi 2+2 layer norm", &c, 0.0f, 32);
}

/* Tied embeddings: the model equals an untied one whose head.weight is a copy
 * of tgt_embedding.weight (same loss), and the tied embedding's gradient is
 * the sum of the untied embedding's and head's. */
static void test_tied_embeddings(void)
{
    recur_seq2seq_config c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1, 1, 11,
                                          5, 5);
    c.tie_embeddings = 1;
    recur_seq2seq *tied = make_model(&c, 31);
    c.tie_embeddings = 0;
    recur_seq2seq *untied = make_model(&c, 31);
    if (!tied || !untied) {
        recur_seq2seq_free(tied);
        recur_seq2seq_free(untied);
        return;
    }
    CHECK(recur_seq2seq_tensor_find(tied, "head.weight") == NULL);
    CHECK(recur_seq2seq_tensor_count(tied) == recur_seq2seq_tensor_count(untied) - 1);
    CHECK(recur_seq2seq_size(tied) == recur_seq2seq_size(untied) - 11 * 5);
    /* the tied embedding starts small, as a head would: U(-1/sqrt(5), 1/sqrt(5)) */
    const recur_param_view *te = recur_seq2seq_tensor_find(tied, "tgt_embedding.weight");
    float largest = 0.0f;
    for (size_t j = 0; j < te->numel; j++)
        largest = fmaxf(largest, fabsf(recur_seq2seq_params(tied)[te->offset + j]));
    CHECK_MSG(largest > 0.0f && largest <= 1.0f / sqrtf(5.0f), "tied embedding init %g", largest);
    for (int i = 0; i < recur_seq2seq_tensor_count(untied); i++) {
        const recur_param_view *u = recur_seq2seq_tensor_at(untied, i);
        const char *from = strcmp(u->name, "head.weight") == 0 ? "tgt_embedding.weight" : u->name;
        const recur_param_view *t = recur_seq2seq_tensor_find(tied, from);
        CHECK_MSG(t && t->numel == u->numel, "%s", u->name);
        if (t && t->numel == u->numel)
            memcpy(recur_seq2seq_params(untied) + u->offset, recur_seq2seq_params(tied) + t->offset,
                   u->numel * sizeof(float));
    }
    recur_rng rng;
    recur_rng_seed(&rng, 32);
    const int src_len[3] = {4, 6, 2}, tgt_len[3] = {5, 1, 3};
    batch_data d;
    make_batch(&d, 3, src_len, tgt_len, 11, 11, 1, &rng);
    double lt = NAN, lu = NAN;
    recur_seq2seq_zero_grad(tied);
    recur_seq2seq_zero_grad(untied);
    CHECK_OK(recur_seq2seq_train_step(tied, &d.batch, 0.1f, NULL, &lt, NULL, NULL));
    CHECK_OK(recur_seq2seq_train_step(untied, &d.batch, 0.1f, NULL, &lu, NULL, NULL));
    CHECK_NEAR(lt, lu, 1e-6);
    const recur_param_view *ue = recur_seq2seq_tensor_find(untied, "tgt_embedding.weight");
    const recur_param_view *uh = recur_seq2seq_tensor_find(untied, "head.weight");
    double worst = 0.0, largest_grad = 0.0;
    for (size_t j = 0; j < te->numel; j++) {
        const double sum = (double)recur_seq2seq_grads(untied)[ue->offset + j] +
                           recur_seq2seq_grads(untied)[uh->offset + j];
        worst = fmax(worst, fabs(recur_seq2seq_grads(tied)[te->offset + j] - sum));
        largest_grad = fmax(largest_grad, fabs(sum));
    }
    CHECK_MSG(largest_grad > 1e-3 && worst <= 1e-6 * fmax(1.0, largest_grad),
              "tied gradient off by %g (largest %g)", worst, largest_grad);
    batch_free(&d);
    recur_seq2seq_free(tied);
    recur_seq2seq_free(untied);
    /* tying needs E == H */
    c.tie_embeddings = 1;
    c.embedding_size = 4;
    CHECK_STATUS(recur_seq2seq_config_check(&c), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("tie_embeddings");
}

/* How many of the source tokens' embedding rows got no gradient at all after
 * one training step on a single sentence of n distinct source ids. */
static int silent_source_rows(const recur_seq2seq_config *c, int n, uint64_t seed)
{
    recur_seq2seq *m = make_model(c, seed);
    if (!m)
        return -1;
    int32_t src[64], len = n, tgt_in[3] = {BOS, 3, 4}, tgt_out[3] = {3, 4, EOS};
    for (int t = 0; t < n; t++)
        src[t] = 3 + t;
    recur_seq2seq_batch b = {1, n, src, &len, 3, tgt_in, tgt_out};
    recur_rng rng;
    recur_rng_seed(&rng, seed + 1);
    recur_seq2seq_zero_grad(m);
    double loss = NAN;
    CHECK_OK(recur_seq2seq_train_step(m, &b, 0.0f, &rng, &loss, NULL, NULL));
    const recur_param_view *v = recur_seq2seq_tensor_find(m, "src_embedding.weight");
    const float *g = recur_seq2seq_grads(m) + v->offset;
    const int E = c->embedding_size;
    int silent = 0;
    for (int t = 0; t < n; t++) {
        bool zero = true;
        for (int j = 0; j < E; j++)
            zero = zero && g[(size_t)src[t] * E + j] == 0.0f;
        silent += zero;
    }
    recur_seq2seq_free(m);
    return silent;
}

/* Word dropout removes whole tokens: with p = 0.5 about half the source
 * rows get no gradient; element dropout alone (also 0.5, over 16 elements)
 * and no dropout leave none silent. */
static void test_word_dropout(void)
{
    recur_seq2seq_config c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1, 1, 64,
                                          16, 6);
    enum { N = 48 };
    CHECK(silent_source_rows(&c, N, 21) == 0);
    c.embedding_dropout = 0.5f;
    CHECK(silent_source_rows(&c, N, 22) == 0);
    c.embedding_dropout = 0.0f;
    c.word_dropout = 0.5f;
    const int silent = silent_source_rows(&c, N, 23);
    CHECK_MSG(silent >= N / 4 && silent <= 3 * N / 4, "word dropout 0.5 silenced %d of %d "
              "source tokens", silent, N);
    /* the option is checked (test_checkpoint saves and reads it) */
    c.word_dropout = 1.0f;
    CHECK_STATUS(recur_seq2seq_config_check(&c), RECUR_E_INVALID);
    c.word_dropout = -0.1f;
    CHECK_STATUS(recur_seq2seq_config_check(&c), RECUR_E_INVALID);
}

/* ---- padding -------------------------------------------------------------------------- */

/* The batch's mean loss times its tokens is the sum of each sentence's;
 * so are the gradients. */
static void padding_case(const recur_seq2seq_config *c, uint64_t seed)
{
    recur_seq2seq *m = make_model(c, seed);
    if (!m)
        return;
    recur_rng rng;
    recur_rng_seed(&rng, seed + 1);
    enum { B = 4 };
    const int src_len[B] = {3, 7, 1, 5}, tgt_len[B] = {4, 0, 6, 2};
    batch_data d;
    make_batch(&d, B, src_len, tgt_len, c->src_vocab_size, c->tgt_vocab_size, 1, &rng);
    const size_t n = recur_seq2seq_size(m);
    double loss = NAN, nll = NAN;
    size_t tokens = 0;
    recur_seq2seq_zero_grad(m);
    CHECK_OK(recur_seq2seq_train_step(m, &d.batch, 0.1f, NULL, &loss, &nll, &tokens));
    CHECK(tokens == 4 + 0 + 6 + 2 + B);
    double *batch_grad = malloc(n * sizeof(double)), *sum_grad = calloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++)
        batch_grad[i] = (double)recur_seq2seq_grads(m)[i] * (double)tokens;
    double sum_loss = 0.0, sum_nll = 0.0;
    size_t sum_tokens = 0;
    for (int b = 0; b < B; b++) {
        int32_t src[16], y[16];
        for (int t = 0; t < src_len[b]; t++)
            src[t] = d.src[(size_t)t * B + b];
        for (int t = 0; t < tgt_len[b]; t++)
            y[t] = d.tgt_out[(size_t)t * B + b];
        batch_data one;
        one_sentence(&one, src, src_len[b], y, tgt_len[b], -1);
        double l = NAN, l_nll = NAN;
        size_t k = 0;
        recur_seq2seq_zero_grad(m);
        CHECK_OK(recur_seq2seq_train_step(m, &one.batch, 0.1f, NULL, &l, &l_nll, &k));
        CHECK(k == (size_t)tgt_len[b] + 1);
        double e = NAN;
        CHECK_OK(recur_seq2seq_evaluate(m, &one.batch, 0.1f, &e, NULL, NULL));
        CHECK_NEAR(e, l, 1e-6);
        sum_loss += l * (double)k;
        sum_nll += l_nll * (double)k;
        sum_tokens += k;
        for (size_t i = 0; i < n; i++)
            sum_grad[i] += (double)recur_seq2seq_grads(m)[i] * (double)k;
        batch_free(&one);
    }
    CHECK(sum_tokens == tokens);
    CHECK_NEAR(loss * (double)tokens, sum_loss, 1e-4);
    CHECK_NEAR(nll * (double)tokens, sum_nll, 1e-4);
    double scale = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        scale = fabs(sum_grad[i]) > scale ? fabs(sum_grad[i]) : scale;
        worst = fabs(sum_grad[i] - batch_grad[i]) > worst ? fabs(sum_grad[i] - batch_grad[i])
                                                          : worst;
    }
    CHECK_MSG(worst <= 1e-4 * scale, "%s %s: padded batch gradient differs by %g (scale %g)",
              recur_cell_name(c->cell), recur_attention_name(c->attention), worst, scale);
    /* the evaluation gives the training loss when nothing is dropped */
    double e_loss = NAN, e_nll = NAN;
    size_t e_tokens = 0;
    CHECK_OK(recur_seq2seq_evaluate(m, &d.batch, 0.1f, &e_loss, &e_nll, &e_tokens));
    CHECK_NEAR(e_loss, loss, 1e-6);
    CHECK_NEAR(e_nll, nll, 1e-6);
    CHECK(e_tokens == tokens);
    CHECK(e_nll < e_loss + 1.0);
    CHECK_OK(recur_seq2seq_evaluate(m, &d.batch, 0.0f, &e_loss, &e_nll, NULL));
    CHECK_NEAR(e_loss, e_nll, 1e-9);
    free(batch_grad);
    free(sum_grad);
    batch_free(&d);
    recur_seq2seq_free(m);
}

static void test_padding(void)
{
    recur_seq2seq_config c = small_config(RECUR_CELL_LSTM, RECUR_ATTENTION_GENERAL, 1, 2, 2, 13,
                                          6, 7);
    padding_case(&c, 21);
    c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1, 2, 13, 6, 7);
    padding_case(&c, 22);
    c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_DOT, 0, 2, 1, 13, 6, 7);
    padding_case(&c, 23);
    c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1, 1, 13, 6, 7);
    c.lexical = 1;
    padding_case(&c, 26);
    c.lexical = 0;
    c.input_feeding = 1;
    padding_case(&c, 27);
    c = small_config(RECUR_CELL_LSTM, RECUR_ATTENTION_GENERAL, 0, 1, 1, 13, 6, 7);
    c.input_feeding = 1;
    padding_case(&c, 28);
    c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 2, 2, 13, 6, 8);
    c.layer_norm = 1;
    padding_case(&c, 29);
}

/* ---- decoding ---------------------------------------------------------------------------- */

/* Greedy search through the teacher-forced evaluation: at each step the
 * token v >= 2 of the highest log p (ties: lower id), </s> forced after
 * max_len tokens. Returns the length. */
static int greedy_reference(recur_seq2seq *m, const int32_t *src, int n, int max_len,
                            int32_t *out)
{
    const int Vt = recur_seq2seq_get_config(m)->tgt_vocab_size;
    int len = 0;
    while (len < max_len) {
        int32_t best_v = -1;
        double best = -INFINITY;
        for (int32_t v = EOS; v < Vt; v++) {
            const double lp = sequence_log_prob(m, src, n, out, len, v);
            if (lp > best) {
                best = lp;
                best_v = v;
            }
        }
        if (best_v == EOS)
            break;
        out[len++] = best_v;
    }
    return len;
}

static void test_greedy(void)
{
    const struct {
        recur_cell cell;
        recur_attention attention;
        int bi, Le, Ld, lexical, feeding, layer_norm;
    } cases[] = {
        {RECUR_CELL_GRU, RECUR_ATTENTION_GENERAL, 1, 1, 1, 0, 0, 0},
        {RECUR_CELL_LSTM, RECUR_ATTENTION_GENERAL, 0, 2, 2, 0, 0, 0},
        {RECUR_CELL_LSTM, RECUR_ATTENTION_DOT, 0, 1, 2, 0, 0, 0},
        {RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 2, 1, 0, 0, 0},
        {RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1, 1, 1, 0, 0},
        {RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1, 1, 0, 1, 0},
        {RECUR_CELL_LSTM, RECUR_ATTENTION_GENERAL, 0, 2, 1, 1, 1, 0},
        {RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1, 2, 0, 0, 1},
        {RECUR_CELL_LSTM, RECUR_ATTENTION_GENERAL, 1, 2, 1, 1, 0, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        recur_seq2seq_config c = small_config(cases[k].cell, cases[k].attention, cases[k].bi,
                                              cases[k].Le, cases[k].Ld, 12, 6, 8);
        c.dropout = 0.5f; /* training only: decoding must ignore it */
        c.lexical = cases[k].lexical;
        c.input_feeding = cases[k].feeding;
        c.layer_norm = cases[k].layer_norm;
        recur_seq2seq *m = make_model(&c, 31 + k);
        if (!m)
            continue;
        recur_rng rng;
        recur_rng_seed(&rng, 41 + k);
        for (int s = 0; s < 3; s++) {
            const int n = 2 + (int)recur_rng_below(&rng, 5);
            int32_t src[8], want[16];
            for (int i = 0; i < n; i++)
                src[i] = (int32_t)recur_rng_below(&rng, 12);
            const int max_len = 6;
            const int want_len = greedy_reference(m, src, n, max_len, want);
            recur_seq2seq_decode_config dc = {1, 0.6f, max_len, 0.0f};
            int32_t *out = NULL;
            int out_len = -1;
            CHECK_OK(recur_seq2seq_translate(m, src, n, &dc, &out, &out_len, NULL));
            bool same = out_len == want_len;
            for (int i = 0; same && i < want_len; i++)
                same = out[i] == want[i];
            CHECK_MSG(same, "case %zu sentence %d: beam width 1 gave %d tokens, greedy %d", k, s,
                      out_len, want_len);
            for (int i = 0; i < out_len; i++)
                CHECK(out[i] >= 3 && out[i] < 12);
            recur_free(out);
        }
        recur_seq2seq_free(m);
    }
}

/* log_softmax of z [V] at v */
static double log_softmax_at(const float *z, int V, int v)
{
    double max = z[0], sum = 0.0;
    for (int i = 1; i < V; i++)
        max = z[i] > max ? z[i] : max;
    for (int i = 0; i < V; i++)
        sum += exp((double)z[i] - max);
    return (double)z[v] - max - log(sum);
}

/* Ensembles: the lent logits reproduce the loss; greedy decoding of two
 * different models picks, step by step, the most likely token of the mean
 * of their distributions (computed here from teacher-forced logits); a
 * model joined with itself decodes exactly as alone; bad ensembles are
 * refused. */
static void test_ensemble(void)
{
    const int V = 12;
    recur_seq2seq_config ca = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1, 1, V,
                                           6, 8);
    recur_seq2seq_config cb = small_config(RECUR_CELL_LSTM, RECUR_ATTENTION_GENERAL, 0, 2, 2, V,
                                           5, 7);
    recur_seq2seq *a = make_model(&ca, 61), *b = make_model(&cb, 62);
    if (!a || !b) {
        recur_seq2seq_free(a);
        recur_seq2seq_free(b);
        return;
    }
    recur_seq2seq *const pair[2] = {a, b}, *const twice[2] = {a, a};
    recur_rng rng;
    recur_rng_seed(&rng, 63);
    /* the lent logits give the returned nll */
    {
        const int src_len[3] = {4, 2, 5}, tgt_len[3] = {3, 5, 1};
        batch_data d;
        make_batch(&d, 3, src_len, tgt_len, V, V, 1, &rng);
        double nll = NAN;
        size_t tokens = 0;
        const float *logits = NULL;
        CHECK_OK(recur_seq2seq_evaluate_logits(b, &d.batch, &nll, &tokens, &logits));
        double sum = 0.0;
        size_t count = 0;
        for (int r = 0; logits && r < d.batch.T * d.batch.B; r++)
            if (d.tgt_out[r] != 0) {
                sum -= log_softmax_at(logits + (size_t)r * V, V, d.tgt_out[r]);
                count++;
            }
        CHECK(count == tokens && tokens == 3 + 5 + 1 + 3);
        CHECK_NEAR(sum / (double)count, nll, 1e-6);
        batch_free(&d);
    }
    int differs = 0;
    for (int s = 0; s < 6; s++) {
        const int n = 2 + (int)recur_rng_below(&rng, 5), max_len = 7;
        int32_t src[8];
        for (int i = 0; i < n; i++)
            src[i] = 3 + (int32_t)recur_rng_below(&rng, V - 3);
        recur_seq2seq_decode_config greedy = {1, 0.6f, max_len, 0.0f};
        int32_t *out = NULL, *alone = NULL, *self = NULL;
        int out_len = -1, alone_len = -1, self_len = -1;
        CHECK_OK(recur_seq2seq_translate_ensemble(pair, 2, src, n, &greedy, &out, &out_len,
                                                  NULL));
        /* the reference: at each step the argmax over v >= </s> of
         * log (p_a(v) + p_b(v)) / 2 given the chosen prefix */
        bool same = out_len >= 0;
        for (int t = 0; same && t <= out_len && t < max_len; t++) {
            batch_data d;
            one_sentence(&d, src, n, out, t, EOS);
            const float *za = NULL, *zb = NULL;
            double nll = 0.0;
            size_t tokens = 0;
            CHECK_OK(recur_seq2seq_evaluate_logits(a, &d.batch, &nll, &tokens, &za));
            CHECK_OK(recur_seq2seq_evaluate_logits(b, &d.batch, &nll, &tokens, &zb));
            int32_t best_v = -1;
            double best = -INFINITY;
            for (int v = EOS; za && zb && v < V; v++) {
                const double pa = log_softmax_at(za + (size_t)t * V, V, v);
                const double pb = log_softmax_at(zb + (size_t)t * V, V, v);
                const double mix = log(0.5 * (exp(pa) + exp(pb)));
                if (mix > best) {
                    best = mix;
                    best_v = v;
                }
            }
            same = t < out_len ? best_v == out[t] : best_v == EOS;
            batch_free(&d);
        }
        CHECK_MSG(same, "sentence %d: the ensemble's greedy output (%d tokens) is not the "
                  "step-by-step best of the mean distribution", s, out_len);
        CHECK_OK(recur_seq2seq_translate(a, src, n, &greedy, &alone, &alone_len, NULL));
        differs += alone_len != out_len ||
                   (out_len > 0 && memcmp(alone, out, (size_t)out_len * sizeof *out) != 0);
        /* a model with itself: the same output as alone, with a beam too */
        recur_seq2seq_decode_config beam = {4, 0.6f, max_len, 0.0f};
        recur_free(alone);
        alone = NULL;
        CHECK_OK(recur_seq2seq_translate(a, src, n, &beam, &alone, &alone_len, NULL));
        CHECK_OK(recur_seq2seq_translate_ensemble(twice, 2, src, n, &beam, &self, &self_len,
                                                  NULL));
        CHECK(self_len == alone_len &&
              (alone_len == 0 || memcmp(self, alone, (size_t)alone_len * sizeof *self) == 0));
        recur_free(out);
        recur_free(alone);
        recur_free(self);
    }
    CHECK_MSG(differs > 0, "the ensemble decoded every sentence as model a alone: the test "
              "cannot tell the mixture from one model");
    /* refused: no models, too many, a NULL member, another vocabulary */
    const int32_t src[3] = {3, 4, 5};
    int32_t *out = NULL;
    int out_len = 0;
    recur_seq2seq *many[RECUR_SEQ2SEQ_MAX_ENSEMBLE + 1];
    for (int i = 0; i <= RECUR_SEQ2SEQ_MAX_ENSEMBLE; i++)
        many[i] = a;
    CHECK_STATUS(recur_seq2seq_translate_ensemble(pair, 0, src, 3, NULL, &out, &out_len, NULL),
                 RECUR_E_INVALID);
    CHECK_STATUS(recur_seq2seq_translate_ensemble(many, RECUR_SEQ2SEQ_MAX_ENSEMBLE + 1, src, 3,
                                                  NULL, &out, &out_len, NULL),
                 RECUR_E_INVALID);
    recur_seq2seq *const with_null[2] = {a, NULL};
    CHECK_STATUS(recur_seq2seq_translate_ensemble(with_null, 2, src, 3, NULL, &out, &out_len,
                                                  NULL),
                 RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("model 1");
    recur_seq2seq_config cc = ca;
    cc.tgt_vocab_size = V + 1;
    recur_seq2seq *c = make_model(&cc, 64);
    recur_seq2seq *const mixed[2] = {a, c};
    CHECK_STATUS(recur_seq2seq_translate_ensemble(mixed, 2, src, 3, NULL, &out, &out_len, NULL),
                 RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("model 1's vocabularies");
    CHECK(out == NULL && out_len == 0);
    recur_seq2seq_free(c);
    recur_seq2seq_free(a);
    recur_seq2seq_free(b);
}

/* Every output of at most 3 tokens over the ids 3..5 (40 of them): their
 * tokens and lengths; returns the count. */
static int all_outputs(int32_t all[40][3], int all_len[40])
{
    int count = 0;
    for (int len = 0; len <= 3; len++) {
        int total = 1;
        for (int i = 0; i < len; i++)
            total *= 3;
        for (int code = 0; code < total; code++, count++) {
            all_len[count] = len;
            for (int i = 0, x = code; i < len; i++, x /= 3)
                all[count][i] = 3 + x % 3;
        }
    }
    CHECK(count == 40);
    return count;
}

/* With a beam wide enough to keep every hypothesis, the search is
 * exhaustive: its result is the best sequence by normalised score among
 * all 40 of length <= 3 over 3 tokens, hence never worse than greedy. */
static void beam_case(const recur_seq2seq_config *c, uint64_t first_seed, const char *what)
{
    const int max_len = 3;
    int32_t all[40][3];
    int all_len[40];
    const int count = all_outputs(all, all_len);
    const float alphas[3] = {0.0f, 0.6f, 1.5f};
    int strictly_better = 0;
    for (int seed = 0; seed < 4; seed++) {
        recur_seq2seq *m = make_model(c, first_seed + seed);
        if (!m)
            continue;
        const int32_t src[4] = {3, 5, 4, 3};
        double logp[40];
        for (int i = 0; i < count; i++)
            logp[i] = sequence_log_prob(m, src, 4, all[i], all_len[i], -1);
        for (int a = 0; a < 3; a++) {
            const float alpha = alphas[a];
            double best = -INFINITY;
            for (int i = 0; i < count; i++) {
                const double norm = logp[i] / pow(all_len[i] + 1.0, alpha);
                best = norm > best ? norm : best;
            }
            double got[2];
            for (int wide = 0; wide < 2; wide++) {
                recur_seq2seq_decode_config dc = {wide ? 64 : 1, alpha, max_len, 0.0f};
                int32_t *out = NULL;
                int len = -1;
                CHECK_OK(recur_seq2seq_translate(m, src, 4, &dc, &out, &len, NULL));
                got[wide] = len >= 0 && len <= max_len
                                ? sequence_log_prob(m, src, 4, out, len, -1) / pow(len + 1.0, alpha)
                                : -INFINITY;
                recur_free(out);
            }
            CHECK_MSG(got[1] >= best - 1e-5, "%s seed %d alpha %g: beam found %.6f, best is %.6f",
                      what, seed, (double)alpha, got[1], best);
            CHECK_MSG(got[1] >= got[0] - 1e-5, "%s seed %d alpha %g: beam %.6f worse than greedy "
                      "%.6f", what, seed, (double)alpha, got[1], got[0]);
            strictly_better += got[1] > got[0] + 1e-6;
        }
        recur_seq2seq_free(m);
    }
    CHECK_MSG(strictly_better > 0, "%s: the wide beam never beat greedy: the test is too easy",
              what);
}

static void test_beam(void)
{
    recur_seq2seq_config c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_GENERAL, 1, 1, 1, 6, 4,
                                          6);
    beam_case(&c, 51, "plain");
    /* input feeding: each hypothesis' o_{t-1} must follow it through the reordering */
    c.input_feeding = 1;
    beam_case(&c, 61, "input feeding");
}

/* n-best lists. With a beam wide enough to keep every hypothesis, the list
 * of all 40 outputs comes back in the order of their normalised scores,
 * each with its teacher-forced log p; a shorter list is its head; nbest 1
 * is recur_seq2seq_translate. A narrow beam's list: distinct hypotheses,
 * best first, the first the translation. */
static bool same_tokens(const int32_t *a, int an, const int32_t *b, int bn)
{
    return an == bn && (an == 0 || memcmp(a, b, (size_t)an * sizeof *a) == 0);
}

static void test_nbest(void)
{
    recur_seq2seq_config c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1, 1, 6, 4,
                                          6);
    int32_t all[40][3];
    int all_len[40];
    const int count = all_outputs(all, all_len);
    const int32_t src[4] = {3, 5, 4, 3};
    for (int seed = 0; seed < 3; seed++) {
        recur_seq2seq *m = make_model(&c, 91 + seed);
        if (!m)
            continue;
        double logp[40];
        for (int i = 0; i < count; i++)
            logp[i] = sequence_log_prob(m, src, 4, all[i], all_len[i], -1);
        for (int a = 0; a < 2; a++) {
            const float alpha = a ? 1.0f : 0.0f;
            double norm[40];
            for (int i = 0; i < count; i++)
                norm[i] = logp[i] / pow(all_len[i] + 1.0, alpha);
            /* the 40 normalised scores, best first */
            for (int i = 1; i < count; i++)
                for (int j = i; j > 0 && norm[j] > norm[j - 1]; j--) {
                    const double t = norm[j];
                    norm[j] = norm[j - 1];
                    norm[j - 1] = t;
                }
            const recur_seq2seq_decode_config dc = {64, alpha, 3, 0.0f};
            recur_seq2seq_hypothesis *h = NULL, *head = NULL;
            int found = 0, head_found = 0;
            CHECK_OK(recur_seq2seq_translate_nbest(&m, 1, src, 4, &dc, 40, &h, &found));
            CHECK_MSG(found == count, "seed %d: %d hypotheses, want %d", seed, found, count);
            for (int r = 0; r < found && r < count; r++) {
                const double lp = sequence_log_prob(m, src, 4, h[r].tokens, h[r].length, -1);
                CHECK_NEAR(h[r].log_prob, lp, 1e-4);
                CHECK_NEAR(h[r].score, lp / pow(h[r].length + 1.0, alpha), 1e-4);
                CHECK_NEAR(h[r].score, norm[r], 1e-4);
                for (int q = 0; q < r; q++)
                    CHECK(!same_tokens(h[q].tokens, h[q].length, h[r].tokens, h[r].length));
            }
            CHECK_OK(recur_seq2seq_translate_nbest(&m, 1, src, 4, &dc, 7, &head, &head_found));
            CHECK(head_found == 7);
            for (int r = 0; r < head_found && r < found; r++)
                CHECK(same_tokens(head[r].tokens, head[r].length, h[r].tokens, h[r].length));
            int32_t *out = NULL;
            int len = -1;
            CHECK_OK(recur_seq2seq_translate(m, src, 4, &dc, &out, &len, NULL));
            CHECK(found > 0 && same_tokens(out, len, h[0].tokens, h[0].length));
            recur_free(out);
            recur_seq2seq_hypotheses_free(h, found);
            recur_seq2seq_hypotheses_free(head, head_found);
        }
        recur_seq2seq_free(m);
    }

    /* a narrow beam over a larger vocabulary and the default length limit */
    recur_seq2seq_config w = small_config(RECUR_CELL_LSTM, RECUR_ATTENTION_GENERAL, 1, 2, 1, 9, 5,
                                          12);
    w.tgt_vocab_size = 12;
    const int32_t longer[6] = {3, 8, 4, 4, 7, 5};
    for (int seed = 0; seed < 3; seed++) {
        recur_seq2seq *m = make_model(&w, 101 + seed);
        if (!m)
            continue;
        for (int nb = 1; nb <= 4; nb++) {
            const recur_seq2seq_decode_config dc = {4, 0.6f, 0, 0.0f};
            recur_seq2seq_hypothesis *h = NULL;
            int found = 0, len = -1;
            int32_t *out = NULL;
            CHECK_OK(recur_seq2seq_translate_nbest(&m, 1, longer, 6, &dc, nb, &h, &found));
            CHECK(found >= 1 && found <= nb);
            CHECK_OK(recur_seq2seq_translate(m, longer, 6, &dc, &out, &len, NULL));
            CHECK(found > 0 && same_tokens(out, len, h[0].tokens, h[0].length));
            for (int r = 1; r < found; r++) {
                CHECK(h[r].score <= h[r - 1].score);
                for (int q = 0; q < r; q++)
                    CHECK(!same_tokens(h[q].tokens, h[q].length, h[r].tokens, h[r].length));
            }
            recur_free(out);
            recur_seq2seq_hypotheses_free(h, found);
        }
        /* refused: nbest outside 1..beam, NULL output */
        const recur_seq2seq_decode_config dc = {4, 0.6f, 0, 0.0f};
        recur_seq2seq_hypothesis *h = (recur_seq2seq_hypothesis *)&w;
        int found = -1;
        CHECK_STATUS(recur_seq2seq_translate_nbest(&m, 1, longer, 6, &dc, 0, &h, &found),
                     RECUR_E_INVALID);
        CHECK_ERROR_MENTIONS("nbest 0");
        CHECK(h == NULL && found == 0);
        CHECK_STATUS(recur_seq2seq_translate_nbest(&m, 1, longer, 6, &dc, 5, &h, &found),
                     RECUR_E_INVALID);
        CHECK_STATUS(recur_seq2seq_translate_nbest(&m, 1, longer, 6, &dc, 1, NULL, &found),
                     RECUR_E_INVALID);
        CHECK_STATUS(recur_seq2seq_translate_nbest(&m, 0, longer, 6, &dc, 1, &h, &found),
                     RECUR_E_INVALID);
        recur_seq2seq_hypotheses_free(NULL, 3);
        recur_seq2seq_free(m);
    }
}

/* The coverage penalty, exhaustively as in test_beam: the wide beam's result
 * is the best of all 40 sequences by log p / len^alpha + beta sum_j log
 * min(c_j, 1), c_j the source position j's attention summed over the steps
 * (recur_seq2seq_attention's rows); greedy decoding ignores it; and it does
 * change the choice. Also: recur_seq2seq_attention equals the attention
 * that decoding reports, and refuses bad input. */
static void test_coverage_penalty(void)
{
    recur_seq2seq_config c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1, 1, 6, 4,
                                          6);
    const int max_len = 3, n = 4;
    int32_t all[40][3];
    int all_len[40];
    const int count = all_outputs(all, all_len);
    const float alphas[2] = {0.0f, 1.0f}, betas[2] = {0.4f, 2.0f};
    int changed = 0;
    for (int seed = 0; seed < 4; seed++) {
        recur_seq2seq *m = make_model(&c, 81 + seed);
        if (!m)
            continue;
        const int32_t src[4] = {3, 5, 4, 3};
        double logp[40], pen[40]; /* pen: sum_j log min(c_j, 1) */
        for (int i = 0; i < count; i++) {
            logp[i] = sequence_log_prob(m, src, n, all[i], all_len[i], -1);
            float *att = NULL;
            CHECK_OK(recur_seq2seq_attention(m, src, n, all[i], all_len[i], &att));
            pen[i] = 0.0;
            for (int j = 0; att && j < n; j++) {
                double cj = 0.0;
                for (int r = 0; r <= all_len[i]; r++)
                    cj += att[r * n + j];
                pen[i] += cj < 1.0 ? log(cj) : 0.0;
            }
            recur_free(att);
        }
        for (int a = 0; a < 2; a++) {
            int plain_best = 0;
            for (int i = 0; i < count; i++)
                if (logp[i] / pow(all_len[i] + 1.0, alphas[a]) >
                    logp[plain_best] / pow(all_len[plain_best] + 1.0, alphas[a]))
                    plain_best = i;
            for (int b = 0; b < 2; b++) {
                double best = -INFINITY;
                int best_i = 0;
                for (int i = 0; i < count; i++) {
                    const double v = logp[i] / pow(all_len[i] + 1.0, alphas[a]) + betas[b] * pen[i];
                    if (v > best) {
                        best = v;
                        best_i = i;
                    }
                }
                changed += best_i != plain_best;
                int32_t *out[2] = {NULL, NULL};
                int len[2] = {-1, -1};
                for (int wide = 0; wide < 2; wide++) {
                    recur_seq2seq_decode_config dc = {wide ? 64 : 1, alphas[a], max_len,
                                                      betas[b]};
                    CHECK_OK(recur_seq2seq_translate(m, src, n, &dc, &out[wide], &len[wide],
                                                     NULL));
                }
                double got = -INFINITY;
                for (int i = 0; i < count; i++)
                    if (all_len[i] == len[1] &&
                        (len[1] == 0 || memcmp(all[i], out[1], (size_t)len[1] * sizeof(int32_t)) == 0))
                        got = logp[i] / pow(all_len[i] + 1.0, alphas[a]) + betas[b] * pen[i];
                CHECK_MSG(got >= best - 1e-5, "seed %d alpha %g beta %g: beam found %.6f, best "
                          "is %.6f", seed, (double)alphas[a], (double)betas[b], got, best);
                /* greedy: the same as without the penalty */
                recur_seq2seq_decode_config plain = {1, alphas[a], max_len, 0.0f};
                int32_t *ref = NULL;
                int ref_len = -1;
                CHECK_OK(recur_seq2seq_translate(m, src, n, &plain, &ref, &ref_len, NULL));
                CHECK(ref_len == len[0] &&
                      (ref_len <= 0 || memcmp(ref, out[0], (size_t)ref_len * sizeof(int32_t)) == 0));
                recur_free(ref);
                recur_free(out[0]);
                recur_free(out[1]);
            }
        }
        /* an ensemble of the model with itself: the same mean attention, the same choice */
        for (int b = 0; b < 2; b++) {
            recur_seq2seq_decode_config dc = {4, 1.0f, max_len, betas[b]};
            recur_seq2seq *pair[2] = {m, m};
            int32_t *out[2] = {NULL, NULL};
            int len[2] = {-1, -2};
            CHECK_OK(recur_seq2seq_translate(m, src, n, &dc, &out[0], &len[0], NULL));
            CHECK_OK(recur_seq2seq_translate_ensemble(pair, 2, src, n, &dc, &out[1], &len[1],
                                                      NULL));
            CHECK(len[0] == len[1] &&
                  (len[0] <= 0 || memcmp(out[0], out[1], (size_t)len[0] * sizeof(int32_t)) == 0));
            recur_free(out[0]);
            recur_free(out[1]);
        }
        /* the attention of a given translation is what decoding reports for it */
        recur_seq2seq_decode_config dc = {4, 0.6f, 6, 0.0f};
        int32_t *out = NULL;
        int len = -1;
        float *att = NULL, *forced = NULL;
        CHECK_OK(recur_seq2seq_translate(m, src, n, &dc, &out, &len, &att));
        CHECK_OK(recur_seq2seq_attention(m, src, n, out, len, &forced));
        CHECK(att && forced && memcmp(att, forced, (size_t)(len + 1) * n * sizeof(float)) == 0);
        recur_free(out);
        recur_free(att);
        recur_free(forced);
        recur_seq2seq_free(m);
    }
    CHECK_MSG(changed > 0, "the coverage penalty never changed the best sequence: the test is "
              "too easy");
    /* bad input */
    recur_seq2seq *m = make_model(&c, 81);
    if (!m)
        return;
    const int32_t src[4] = {3, 5, 4, 3}, bad[2] = {3, 6}, special[2] = {3, 2};
    float *att = (float *)&att;
    CHECK_STATUS(recur_seq2seq_attention(m, src, n, bad, 2, &att), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("target id 6 at position 1");
    CHECK(att == NULL);
    CHECK_STATUS(recur_seq2seq_attention(m, src, n, special, 2, &att), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("target id 2 at position 1");
    CHECK_STATUS(recur_seq2seq_attention(m, src, n, bad, -1, &att), RECUR_E_INVALID);
    CHECK_STATUS(recur_seq2seq_attention(m, src, 0, bad, 1, &att), RECUR_E_INVALID);
    CHECK_STATUS(recur_seq2seq_attention(m, bad, 2, src, 1, &att), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("source id 6 at position 1");
    CHECK_OK(recur_seq2seq_attention(m, src, n, NULL, 0, &att)); /* </s> alone */
    double sum = 0.0;
    for (int j = 0; att && j < n; j++)
        sum += att[j];
    CHECK_NEAR(sum, 1.0, 1e-5);
    recur_free(att);
    recur_seq2seq_free(m);
}

static void test_attention_and_determinism(void)
{
    recur_seq2seq_config c = small_config(RECUR_CELL_LSTM, RECUR_ATTENTION_ADDITIVE, 1, 2, 2, 15,
                                          8, 8);
    recur_seq2seq *m = make_model(&c, 61);
    if (!m)
        return;
    const int32_t src[6] = {4, 9, 3, 14, 7, 5};
    for (int beam = 1; beam <= 4; beam += 3) {
        recur_seq2seq_decode_config dc = {beam, 0.6f, 9, 0.0f};
        int32_t *out[2] = {NULL, NULL};
        float *att[2] = {NULL, NULL};
        int len[2] = {-1, -1};
        for (int r = 0; r < 2; r++)
            CHECK_OK(recur_seq2seq_translate(m, src, 6, &dc, &out[r], &len[r], &att[r]));
        CHECK(len[0] == len[1] && len[0] >= 0 && len[0] <= 9);
        if (len[0] == len[1] && len[0] >= 0) {
            CHECK(len[0] == 0 || memcmp(out[0], out[1], (size_t)len[0] * sizeof(int32_t)) == 0);
            CHECK(memcmp(att[0], att[1], (size_t)(len[0] + 1) * 6 * sizeof(float)) == 0);
            for (int i = 0; i <= len[0]; i++) {
                double sum = 0.0;
                bool in_range = true;
                for (int j = 0; j < 6; j++) {
                    sum += att[0][i * 6 + j];
                    in_range = in_range && att[0][i * 6 + j] >= 0.0f && att[0][i * 6 + j] <= 1.0f;
                }
                CHECK_NEAR(sum, 1.0, 1e-5);
                CHECK(in_range);
            }
        }
        for (int r = 0; r < 2; r++) {
            recur_free(out[r]);
            recur_free(att[r]);
        }
    }
    /* the defaults (config NULL) work too */
    int32_t *out = NULL;
    int len = -1;
    CHECK_OK(recur_seq2seq_translate(m, src, 6, NULL, &out, &len, NULL));
    CHECK(len >= 0 && len <= 2 * 6 + 10);
    recur_free(out);
    recur_seq2seq_free(m);
}

/* ---- learning ------------------------------------------------------------------------- */

/* Reversing 3..5 symbols of 7 (V = 10) must be learned exactly (800 Adam
 * steps: the same setting learned it for each of 10 seeds tried). */
static void test_copy_task(void)
{
    recur_seq2seq_config c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_GENERAL, 1, 1, 1, 10,
                                          16, 32);
    recur_seq2seq *m = make_model(&c, 71);
    if (!m)
        return;
    recur_optim_config oc = recur_optim_config_default(RECUR_OPTIM_ADAM);
    oc.lr = 5e-3f;
    recur_optim *opt = NULL;
    CHECK_OK(recur_optim_create(&oc, recur_seq2seq_size(m), &opt));
    recur_rng rng;
    recur_rng_seed(&rng, 72);
    enum { B = 32, MAXN = 5 };
    int32_t src[MAXN * B], lengths[B], tgt_in[(MAXN + 1) * B], tgt_out[(MAXN + 1) * B];
    double first = 0.0, loss = 0.0;
    for (int step = 0; step < 800; step++) {
        memset(tgt_in, 0, sizeof tgt_in);
        memset(tgt_out, 0, sizeof tgt_out);
        int S = 0;
        for (int b = 0; b < B; b++) {
            const int n = 3 + (int)recur_rng_below(&rng, 3);
            lengths[b] = n;
            S = n > S ? n : S;
            tgt_in[b] = BOS;
            for (int t = 0; t < MAXN; t++)
                src[t * B + b] = 3 + (int32_t)recur_rng_below(&rng, 7);
            for (int t = 0; t < n; t++) {
                tgt_out[t * B + b] = src[(n - 1 - t) * B + b];
                tgt_in[(t + 1) * B + b] = tgt_out[t * B + b];
            }
            tgt_out[n * B + b] = EOS;
        }
        recur_seq2seq_batch bt = {B, MAXN, src, lengths, MAXN + 1, tgt_in, tgt_out};
        recur_seq2seq_zero_grad(m);
        CHECK_OK(recur_seq2seq_train_step(m, &bt, 0.0f, NULL, &loss, NULL, NULL));
        CHECK_OK(recur_optim_step(opt, recur_seq2seq_params(m), recur_seq2seq_grads(m), oc.lr));
        if (step == 0)
            first = loss;
    }
    CHECK_MSG(loss < 0.05 * first, "loss %g from %g", loss, first);
    int exact = 0, exact_beam = 0;
    const int tests = 50;
    for (int i = 0; i < tests; i++) {
        const int n = 3 + (int)recur_rng_below(&rng, 3);
        int32_t s[MAXN];
        for (int t = 0; t < n; t++)
            s[t] = 3 + (int32_t)recur_rng_below(&rng, 7);
        for (int beam = 1; beam <= 4; beam += 3) {
            recur_seq2seq_decode_config dc = {beam, 0.6f, 0, 0.0f};
            int32_t *out = NULL;
            int len = -1;
            CHECK_OK(recur_seq2seq_translate(m, s, n, &dc, &out, &len, NULL));
            bool ok = len == n;
            for (int t = 0; ok && t < n; t++)
                ok = out[t] == s[n - 1 - t];
            if (beam == 1)
                exact += ok;
            else
                exact_beam += ok;
            recur_free(out);
        }
    }
    CHECK_MSG(exact == tests, "greedy reversed %d of %d exactly", exact, tests);
    CHECK_MSG(exact_beam == tests, "beam 4 reversed %d of %d exactly", exact_beam, tests);
    recur_optim_free(opt);
    recur_seq2seq_free(m);
}

/* ---- checkpoints ------------------------------------------------------------------------- */

static recur_st *roundtrip(recur_st_writer *w)
{
    void *bytes = NULL;
    size_t size = 0;
    recur_st *st = NULL;
    CHECK_OK(recur_st_writer_serialize(w, &bytes, &size));
    CHECK_OK(recur_st_parse(bytes, size, &st));
    recur_free(bytes);
    return st;
}

/* m saved to safetensors bytes and parsed back. */
static recur_st *written(recur_seq2seq *m)
{
    recur_st_writer *w = NULL;
    CHECK_OK(recur_st_writer_create(&w));
    CHECK_OK(recur_seq2seq_write(m, w));
    recur_st *st = roundtrip(w);
    recur_st_writer_free(w);
    return st;
}

/* The model's metadata with one field replaced (value is JSON text) or
 * dropped (value NULL); key NULL: unchanged. */
static void meta_text(char *out, size_t size, const recur_seq2seq_config *c, const char *key,
                      const char *value)
{
    char fields[16][2][64];
    int nf = 0;
#define FIELD(k, ...)                                                                  \
    do {                                                                               \
        snprintf(fields[nf][0], 64, "%s", k);                                          \
        snprintf(fields[nf][1], 64, __VA_ARGS__);                                      \
        nf++;                                                                          \
    } while (0)
    FIELD("format", "%d",
          c->layer_norm ? 5 : c->input_feeding ? 4 : c->lexical ? 3 : c->tie_embeddings ? 2 : 1);
    FIELD("cell", "\"%s\"", recur_cell_name(c->cell));
    FIELD("src_vocab_size", "%d", c->src_vocab_size);
    FIELD("tgt_vocab_size", "%d", c->tgt_vocab_size);
    FIELD("embedding_size", "%d", c->embedding_size);
    FIELD("hidden_size", "%d", c->hidden_size);
    FIELD("encoder_layers", "%d", c->encoder_layers);
    FIELD("decoder_layers", "%d", c->decoder_layers);
    FIELD("bidirectional", "%s", c->bidirectional ? "true" : "false");
    FIELD("attention", "\"%s\"", recur_attention_name(c->attention));
    FIELD("dropout", "%g", (double)c->dropout);
    FIELD("embedding_dropout", "%g", (double)c->embedding_dropout);
    FIELD("word_dropout", "%g", (double)c->word_dropout);
    FIELD("tie_embeddings", "%s", c->tie_embeddings ? "true" : "false");
    if (c->lexical)
        FIELD("lexical", "%s", "true");
    if (c->input_feeding)
        FIELD("input_feeding", "%s", "true");
    if (c->hidden_dropout > 0.0f)
        FIELD("hidden_dropout", "%g", (double)c->hidden_dropout);
    if (c->layer_norm)
        FIELD("layer_norm", "%s", "true");
#undef FIELD
    size_t at = (size_t)snprintf(out, size, "{");
    bool first = true;
    for (int i = 0; i < nf; i++) {
        const bool replaced = key && strcmp(key, fields[i][0]) == 0;
        if (replaced && !value)
            continue;
        at += (size_t)snprintf(out + at, size - at, "%s\"%s\":%s", first ? "" : ",", fields[i][0],
                               replaced ? value : fields[i][1]);
        first = false;
    }
    snprintf(out + at, size - at, "}");
}

typedef struct damage {
    const char *meta;       /* metadata text, or NULL: none at all */
    const char *drop;       /* tensor left out */
    const char *reshape;    /* tensor written flat */
    const char *poison;     /* tensor with a NaN */
    const char *extra;      /* an additional tensor */
} damage;

static int read_damaged(recur_seq2seq *m, const damage *dmg, recur_seq2seq **out)
{
    recur_st_writer *w = NULL;
    CHECK_OK(recur_st_writer_create(&w));
    if (dmg->meta)
        CHECK_OK(recur_st_writer_metadata(w, "recur_seq2seq", dmg->meta));
    const float *p = recur_seq2seq_params(m);
    float *poisoned = NULL;
    for (int i = 0; i < recur_seq2seq_tensor_count(m); i++) {
        const recur_param_view *v = recur_seq2seq_tensor_at(m, i);
        if (dmg->drop && strcmp(v->name, dmg->drop) == 0)
            continue;
        const float *data = p + v->offset;
        if (dmg->poison && strcmp(v->name, dmg->poison) == 0) {
            poisoned = malloc(v->numel * sizeof(float));
            memcpy(poisoned, data, v->numel * sizeof(float));
            poisoned[v->numel / 2] = NAN;
            data = poisoned;
        }
        if (dmg->reshape && strcmp(v->name, dmg->reshape) == 0) {
            const int64_t flat[1] = {(int64_t)v->numel};
            CHECK_OK(recur_st_writer_add(w, v->name, RECUR_DTYPE_F32, 1, flat, data));
        } else {
            CHECK_OK(recur_st_writer_add(w, v->name, RECUR_DTYPE_F32, v->ndim, v->shape, data));
        }
    }
    const float extra_data[2] = {1.0f, 2.0f};
    const int64_t extra_shape[1] = {2};
    if (dmg->extra)
        CHECK_OK(recur_st_writer_add(w, dmg->extra, RECUR_DTYPE_F32, 1, extra_shape, extra_data));
    recur_st *st = roundtrip(w);
    int status = st ? recur_seq2seq_read(st, "damaged.safetensors", out) : RECUR_E_FORMAT;
    recur_st_free(st);
    recur_st_writer_free(w);
    free(poisoned);
    return status;
}

static void expect_damage(recur_seq2seq *m, const damage *dmg, int want, const char *mention)
{
    recur_seq2seq *got = NULL;
    CHECK_STATUS(read_damaged(m, dmg, &got), want);
    CHECK(got == NULL);
    recur_seq2seq_free(got);
    CHECK_ERROR_MENTIONS(mention);
    CHECK_ERROR_MENTIONS(want == RECUR_E_FORMAT ? "damaged.safetensors" : "");
}

static void test_checkpoint(void)
{
    recur_seq2seq_config c = small_config(RECUR_CELL_LSTM, RECUR_ATTENTION_GENERAL, 1, 2, 1, 14,
                                          6, 7);
    c.dropout = 0.125f;
    c.embedding_dropout = 0.1f;
    c.word_dropout = 0.25f;
    c.hidden_dropout = 0.375f;
    recur_seq2seq *m = make_model(&c, 81);
    if (!m)
        return;
    recur_st *st = written(m);
    recur_seq2seq *back = NULL;
    CHECK_OK(recur_seq2seq_read(st, "model.safetensors", &back));
    recur_st_free(st);
    if (back) {
        const recur_seq2seq_config *b = recur_seq2seq_get_config(back);
        CHECK(memcmp(b, recur_seq2seq_get_config(m), sizeof *b) == 0);
        CHECK(recur_seq2seq_size(back) == recur_seq2seq_size(m));
        CHECK(memcmp(recur_seq2seq_params(back), recur_seq2seq_params(m),
                     recur_seq2seq_size(m) * sizeof(float)) == 0);
        const int32_t src[5] = {3, 13, 7, 7, 4};
        recur_seq2seq_decode_config dc = {3, 0.6f, 8, 0.0f};
        int32_t *o1 = NULL, *o2 = NULL;
        float *a1 = NULL, *a2 = NULL;
        int n1 = -1, n2 = -2;
        CHECK_OK(recur_seq2seq_translate(m, src, 5, &dc, &o1, &n1, &a1));
        CHECK_OK(recur_seq2seq_translate(back, src, 5, &dc, &o2, &n2, &a2));
        CHECK(n1 == n2);
        if (n1 == n2 && n1 >= 0) {
            CHECK(n1 == 0 || memcmp(o1, o2, (size_t)n1 * sizeof(int32_t)) == 0);
            CHECK(memcmp(a1, a2, (size_t)(n1 + 1) * 5 * sizeof(float)) == 0);
        }
        recur_free(o1), recur_free(o2), recur_free(a1), recur_free(a2);
        recur_rng rng;
        recur_rng_seed(&rng, 82);
        const int src_len[2] = {5, 2}, tgt_len[2] = {3, 4};
        batch_data d;
        make_batch(&d, 2, src_len, tgt_len, 14, 14, 1, &rng);
        double l1 = NAN, l2 = NAN;
        CHECK_OK(recur_seq2seq_evaluate(m, &d.batch, 0.1f, &l1, NULL, NULL));
        CHECK_OK(recur_seq2seq_evaluate(back, &d.batch, 0.1f, &l2, NULL, NULL));
        CHECK(l1 == l2);
        batch_free(&d);
        recur_seq2seq_free(back);
    }
    /* a layer-normalized model round-trips (format 5) and translates the same */
    {
        recur_seq2seq_config cl = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1,
                                               1, 14, 6, 8);
        cl.layer_norm = 1;
        recur_seq2seq *lm = make_model(&cl, 84), *lback = NULL;
        recur_st *lst = written(lm);
        const char *meta = lst ? recur_st_metadata(lst, "recur_seq2seq") : NULL;
        CHECK(meta && strstr(meta, "\"format\":5") && strstr(meta, "\"layer_norm\":true"));
        CHECK(lst && recur_st_find(lst, "decoder.layer_norm_hh_l0") != NULL);
        CHECK_OK(recur_seq2seq_read(lst, "ln.safetensors", &lback));
        CHECK(lback && recur_seq2seq_get_config(lback)->layer_norm == 1);
        CHECK(lback && memcmp(recur_seq2seq_params(lback), recur_seq2seq_params(lm),
                              recur_seq2seq_size(lm) * sizeof(float)) == 0);
        const int32_t src[4] = {5, 9, 3, 11};
        recur_seq2seq_decode_config dc = {3, 0.6f, 8, 0.0f};
        int32_t *o1 = NULL, *o2 = NULL;
        int n1 = -1, n2 = -2;
        CHECK_OK(recur_seq2seq_translate(lm, src, 4, &dc, &o1, &n1, NULL));
        if (lback)
            CHECK_OK(recur_seq2seq_translate(lback, src, 4, &dc, &o2, &n2, NULL));
        CHECK(n1 == n2 && (n1 <= 0 || memcmp(o1, o2, (size_t)n1 * sizeof(int32_t)) == 0));
        recur_free(o1), recur_free(o2);
        recur_seq2seq_free(lback);
        recur_st_free(lst);
        /* described without layer_norm, its gains are tensors too many */
        char lmeta[1024];
        cl.layer_norm = 0;
        meta_text(lmeta, sizeof lmeta, &cl, NULL, NULL);
        expect_damage(lm, &(damage){lmeta, NULL, NULL, NULL, NULL}, RECUR_E_FORMAT, "layer_norm");
        recur_seq2seq_free(lm);
    }
    /* a tied model round-trips; its file has no head.weight */
    {
        recur_seq2seq_config ct = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1,
                                               1, 14, 6, 6);
        ct.tie_embeddings = 1;
        recur_seq2seq *tm = make_model(&ct, 83), *tback = NULL;
        recur_st *tst = written(tm);
        CHECK(tst && recur_st_find(tst, "head.weight") == NULL);
        CHECK_OK(recur_seq2seq_read(tst, "tied.safetensors", &tback));
        CHECK(tback && recur_seq2seq_get_config(tback)->tie_embeddings == 1);
        CHECK(tback && memcmp(recur_seq2seq_params(tback), recur_seq2seq_params(tm),
                              recur_seq2seq_size(tm) * sizeof(float)) == 0);
        recur_seq2seq_free(tback);
        recur_st_free(tst);
        /* described as untied, the tied tensors lack head.weight */
        char tmeta[1024];
        ct.tie_embeddings = 0;
        meta_text(tmeta, sizeof tmeta, &ct, NULL, NULL);
        recur_seq2seq *bad_read = NULL;
        CHECK_STATUS(read_damaged(tm, &(damage){tmeta, NULL, NULL, NULL, NULL}, &bad_read),
                     RECUR_E_FORMAT);
        CHECK_ERROR_MENTIONS("missing tensor \"head.weight\"");
        recur_seq2seq_free(bad_read);
        /* described as tied, an untied model's tensors hold a head.weight too many */
        recur_seq2seq *um = make_model(&ct, 84);
        ct.tie_embeddings = 1;
        meta_text(tmeta, sizeof tmeta, &ct, NULL, NULL);
        bad_read = NULL;
        CHECK_STATUS(read_damaged(um, &(damage){tmeta, NULL, NULL, NULL, NULL}, &bad_read),
                     RECUR_E_FORMAT);
        CHECK_ERROR_MENTIONS("unexpected tensor \"head.weight\"");
        recur_seq2seq_free(bad_read);
        recur_seq2seq_free(um);
        recur_seq2seq_free(tm);
    }
    /* a model with the lexical shortcut round-trips (format 3); described without it, its
     * combine.weight is too wide */
    {
        recur_seq2seq_config cl = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1,
                                               1, 14, 6, 6);
        cl.lexical = 1;
        cl.tie_embeddings = 1;
        recur_seq2seq *lm = make_model(&cl, 85), *lback = NULL;
        recur_st *lst = written(lm);
        const char *text = lst ? recur_st_metadata(lst, "recur_seq2seq") : NULL;
        CHECK(text && strstr(text, "\"format\":3") && strstr(text, "\"lexical\":true"));
        CHECK_OK(recur_seq2seq_read(lst, "lexical.safetensors", &lback));
        CHECK(lback && memcmp(recur_seq2seq_get_config(lback), recur_seq2seq_get_config(lm),
                              sizeof cl) == 0);
        CHECK(lback && memcmp(recur_seq2seq_params(lback), recur_seq2seq_params(lm),
                              recur_seq2seq_size(lm) * sizeof(float)) == 0);
        recur_seq2seq_free(lback);
        recur_st_free(lst);
        char lmeta[1024];
        meta_text(lmeta, sizeof lmeta, &cl, NULL, NULL);
        recur_seq2seq *lok = NULL;
        CHECK_OK(read_damaged(lm, &(damage){lmeta, NULL, NULL, NULL, NULL}, &lok));
        recur_seq2seq_free(lok);
        meta_text(lmeta, sizeof lmeta, &cl, "lexical", "false");
        recur_seq2seq *bad_read = NULL;
        CHECK_STATUS(read_damaged(lm, &(damage){lmeta, NULL, NULL, NULL, NULL}, &bad_read),
                     RECUR_E_FORMAT);
        CHECK_ERROR_MENTIONS("tensor \"combine.weight\"");
        recur_seq2seq_free(bad_read);
        meta_text(lmeta, sizeof lmeta, &cl, "lexical", "1");
        bad_read = NULL;
        CHECK_STATUS(read_damaged(lm, &(damage){lmeta, NULL, NULL, NULL, NULL}, &bad_read),
                     RECUR_E_FORMAT);
        CHECK_ERROR_MENTIONS("lexical");
        recur_seq2seq_free(bad_read);
        recur_seq2seq_free(lm);
    }
    /* input feeding round-trips (format 4); described without it, decoder.weight_ih_l0 is
     * too wide */
    {
        recur_seq2seq_config cf = small_config(RECUR_CELL_LSTM, RECUR_ATTENTION_ADDITIVE, 1, 1,
                                               1, 14, 6, 5);
        cf.input_feeding = 1;
        recur_seq2seq *fm = make_model(&cf, 86), *fback = NULL;
        recur_st *fst = written(fm);
        const char *text = fst ? recur_st_metadata(fst, "recur_seq2seq") : NULL;
        CHECK(text && strstr(text, "\"format\":4") && strstr(text, "\"input_feeding\":true"));
        const recur_param_view *wih = recur_seq2seq_tensor_find(fm, "decoder.weight_ih_l0");
        CHECK(wih && wih->shape[0] == 4 * 5 && wih->shape[1] == 6 + 5);
        CHECK_OK(recur_seq2seq_read(fst, "feeding.safetensors", &fback));
        CHECK(fback && memcmp(recur_seq2seq_get_config(fback), recur_seq2seq_get_config(fm),
                              sizeof cf) == 0);
        CHECK(fback && memcmp(recur_seq2seq_params(fback), recur_seq2seq_params(fm),
                              recur_seq2seq_size(fm) * sizeof(float)) == 0);
        recur_seq2seq_free(fback);
        recur_st_free(fst);
        char fmeta[1024];
        meta_text(fmeta, sizeof fmeta, &cf, "input_feeding", "false");
        recur_seq2seq *bad_read = NULL;
        CHECK_STATUS(read_damaged(fm, &(damage){fmeta, NULL, NULL, NULL, NULL}, &bad_read),
                     RECUR_E_FORMAT);
        CHECK_ERROR_MENTIONS("tensor \"decoder.weight_ih_l0\"");
        recur_seq2seq_free(bad_read);
        meta_text(fmeta, sizeof fmeta, &cf, "input_feeding", "\"yes\"");
        bad_read = NULL;
        CHECK_STATUS(read_damaged(fm, &(damage){fmeta, NULL, NULL, NULL, NULL}, &bad_read),
                     RECUR_E_FORMAT);
        CHECK_ERROR_MENTIONS("input_feeding");
        recur_seq2seq_free(bad_read);
        recur_seq2seq_free(fm);
    }
    /* optimizer and trainer state beside the model are allowed */
    char meta[1024];
    meta_text(meta, sizeof meta, &c, NULL, NULL);
    recur_seq2seq *ok = NULL;
    CHECK_OK(read_damaged(m, &(damage){meta, NULL, NULL, NULL, "optimizer.exp_avg"}, &ok));
    recur_seq2seq_free(ok);
    /* checkpoints from before word dropout and tying existed read as word_dropout 0, untied */
    meta_text(meta, sizeof meta, &c, "word_dropout", NULL);
    /* (and hidden dropout) */
    static const char *const newer[] = {",\"tie_embeddings\":false", ",\"hidden_dropout\":0.375"};
    for (int i = 0; i < 2; i++) {
        char *at = strstr(meta, newer[i]);
        CHECK(at != NULL);
        if (at)
            memmove(at, at + strlen(newer[i]), strlen(at + strlen(newer[i])) + 1);
    }
    CHECK(strstr(meta, "tie_embeddings") == NULL && strstr(meta, "word_dropout") == NULL &&
          strstr(meta, "hidden_dropout") == NULL);
    ok = NULL;
    CHECK_OK(read_damaged(m, &(damage){meta, NULL, NULL, NULL, NULL}, &ok));
    CHECK(ok && recur_seq2seq_get_config(ok)->word_dropout == 0.0f &&
          recur_seq2seq_get_config(ok)->hidden_dropout == 0.0f &&
          recur_seq2seq_get_config(ok)->embedding_dropout == 0.1f);
    recur_seq2seq_free(ok);

    expect_damage(m, &(damage){NULL, NULL, NULL, NULL, NULL}, RECUR_E_FORMAT, "recur_seq2seq");
    expect_damage(m, &(damage){"{\"format\":1,", NULL, NULL, NULL, NULL}, RECUR_E_FORMAT,
                  "not JSON");
    expect_damage(m, &(damage){"[1, 2]", NULL, NULL, NULL, NULL}, RECUR_E_FORMAT,
                  "not a JSON object");
    const struct {
        const char *key, *value;
        int status;
        const char *mention;
    } fields[] = {
        {"format", NULL, RECUR_E_FORMAT, "format"},
        {"format", "\"1\"", RECUR_E_FORMAT, "format"},
        {"format", "0", RECUR_E_FORMAT, "format"},
        {"format", "6", RECUR_E_UNSUPPORTED, "newer"},
        {"cell", "\"transformer\"", RECUR_E_FORMAT, "cell"},
        {"cell", "3", RECUR_E_FORMAT, "cell"},
        {"attention", "\"location\"", RECUR_E_FORMAT, "attention"},
        {"attention", NULL, RECUR_E_FORMAT, "attention"},
        {"src_vocab_size", "2", RECUR_E_FORMAT, "src_vocab_size"},
        {"tgt_vocab_size", NULL, RECUR_E_FORMAT, "tgt_vocab_size"},
        {"embedding_size", "\"6\"", RECUR_E_FORMAT, "embedding_size"},
        {"hidden_size", "5.0", RECUR_E_FORMAT, "hidden_size"},
        {"hidden_size", "-7", RECUR_E_FORMAT, "hidden_size"},
        {"encoder_layers", "65", RECUR_E_FORMAT, "encoder_layers"},
        {"decoder_layers", "1.5", RECUR_E_FORMAT, "decoder_layers"},
        {"bidirectional", "1", RECUR_E_FORMAT, "bidirectional"},
        {"dropout", "1.5", RECUR_E_FORMAT, "dropout"},
        {"embedding_dropout", "\"x\"", RECUR_E_FORMAT, "embedding_dropout"},
        {"word_dropout", "1", RECUR_E_FORMAT, "word_dropout"},
        {"hidden_dropout", "-0.5", RECUR_E_FORMAT, "hidden_dropout"},
        {"hidden_dropout", "\"x\"", RECUR_E_FORMAT, "hidden_dropout"},
        {"tie_embeddings", "1", RECUR_E_FORMAT, "tie_embeddings"},
        {"tie_embeddings", "true", RECUR_E_FORMAT, "tie_embeddings needs"}, /* E 6, H 7 */
        {"attention", "\"dot\"", RECUR_E_FORMAT, "dot attention"},
        /* a valid config that does not match the tensors */
        {"hidden_size", "8", RECUR_E_FORMAT, "tensor \"encoder.weight_ih_l0\""},
        {"decoder_layers", "2", RECUR_E_FORMAT, "tensor \"bridge.weight\""},
        {"tgt_vocab_size", "15", RECUR_E_FORMAT, "tgt_embedding.weight"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        meta_text(meta, sizeof meta, &c, fields[i].key, fields[i].value);
        expect_damage(m, &(damage){meta, NULL, NULL, NULL, NULL}, fields[i].status,
                      fields[i].mention);
    }
    meta_text(meta, sizeof meta, &c, NULL, NULL);
    expect_damage(m, &(damage){meta, "head.bias", NULL, NULL, NULL}, RECUR_E_FORMAT,
                  "missing tensor \"head.bias\"");
    expect_damage(m, &(damage){meta, NULL, "combine.weight", NULL, NULL}, RECUR_E_FORMAT,
                  "tensor \"combine.weight\"");
    expect_damage(m, &(damage){meta, NULL, NULL, "decoder.weight_hh_l0", NULL}, RECUR_E_FORMAT,
                  "non-finite");
    expect_damage(m, &(damage){meta, NULL, NULL, "decoder.weight_hh_l0", NULL}, RECUR_E_FORMAT,
                  "decoder.weight_hh_l0");
    expect_damage(m, &(damage){meta, NULL, NULL, NULL, "attention.bias"}, RECUR_E_FORMAT,
                  "unexpected tensor \"attention.bias\"");
    int dummy = 0;
    recur_seq2seq *none = (recur_seq2seq *)&dummy; /* must come back NULL */
    CHECK_STATUS(recur_seq2seq_read(NULL, "x", &none), RECUR_E_INVALID);
    CHECK(none == NULL);
    CHECK_STATUS(recur_seq2seq_write(NULL, NULL), RECUR_E_INVALID);
    recur_seq2seq_free(m);
}

/* ---- errors ------------------------------------------------------------------------------- */

static void test_errors(void)
{
    recur_seq2seq_config c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_GENERAL, 1, 1, 1, 9, 4,
                                          5);
    CHECK_OK(recur_seq2seq_config_check(&c));
    CHECK_STATUS(recur_seq2seq_config_check(NULL), RECUR_E_INVALID);
    const struct {
        recur_seq2seq_config c;
        const char *mention;
    } bad[] = {
        {{RECUR_CELL_GRU, 2, 9, 4, 5, 1, 1, 1, RECUR_ATTENTION_GENERAL, 0, 0, 0, 0, 0, 0, 0, 0}, "src_vocab_size"},
        {{RECUR_CELL_GRU, 9, 0, 4, 5, 1, 1, 1, RECUR_ATTENTION_GENERAL, 0, 0, 0, 0, 0, 0, 0, 0}, "tgt_vocab_size"},
        {{RECUR_CELL_GRU, 9, 9, 0, 5, 1, 1, 1, RECUR_ATTENTION_GENERAL, 0, 0, 0, 0, 0, 0, 0, 0}, "embedding_size"},
        {{RECUR_CELL_GRU, 9, 9, 4, 70000, 1, 1, 1, RECUR_ATTENTION_GENERAL, 0, 0, 0, 0, 0, 0, 0, 0}, "hidden_size"},
        {{RECUR_CELL_GRU, 9, 9, 4, 5, 0, 1, 1, RECUR_ATTENTION_GENERAL, 0, 0, 0, 0, 0, 0, 0, 0}, "encoder_layers"},
        {{RECUR_CELL_GRU, 9, 9, 4, 5, 1, 99, 1, RECUR_ATTENTION_GENERAL, 0, 0, 0, 0, 0, 0, 0, 0}, "decoder_layers"},
        {{RECUR_CELL_GRU, 9, 9, 4, 5, 1, 1, 1, (recur_attention)7, 0, 0, 0, 0, 0, 0, 0, 0}, "attention"},
        {{RECUR_CELL_GRU, 9, 9, 4, 5, 1, 1, 1, RECUR_ATTENTION_DOT, 0, 0, 0, 0, 0, 0, 0, 0}, "dot attention"},
        {{RECUR_CELL_GRU, 9, 9, 4, 5, 1, 1, 0, RECUR_ATTENTION_DOT, 1.0f, 0, 0, 0, 0, 0, 0, 0}, "dropout"},
        {{RECUR_CELL_GRU, 9, 9, 4, 5, 1, 1, 0, RECUR_ATTENTION_DOT, 0, NAN, 0, 0, 0, 0, 0, 0}, "embedding_dropout"},
        {{RECUR_CELL_GRU, 9, 9, 4, 5, 1, 1, 0, RECUR_ATTENTION_DOT, 0, 0, 1.0f, 0, 0, 0, 0, 0}, "word_dropout"},
        {{RECUR_CELL_GRU, 9, 9, 4, 5, 1, 1, 0, RECUR_ATTENTION_DOT, 0, 0, 0, 0, 0, 1.5f, 0, 0}, "hidden_dropout"},
        {{RECUR_CELL_GRU, 9, 9, 4, 5, 1, 1, 0, RECUR_ATTENTION_DOT, 0, 0, 0, 1, 0, 0, 0, 0}, "tie_embeddings"},
        {{(recur_cell)42, 9, 9, 4, 5, 1, 1, 0, RECUR_ATTENTION_DOT, 0, 0, 0, 0, 0, 0, 0, 0}, "cell"},
        {{RECUR_CELL_GRU, 9, 9, 4, 5, 1, 2, 1, RECUR_ATTENTION_GENERAL, 0, 0, 0, 0, 0, 0, 1, 0}, "input_feeding"},
        {{RECUR_CELL_GRU, 9, 9, 4, 5, 1, 1, 1, RECUR_ATTENTION_GENERAL, 0, 0, 0, 0, 0, .2f, 1, 0}, "hidden_dropout 0"},
        {{RECUR_CELL_GRU, 9, 9, 4, 5, 1, 1, 1, RECUR_ATTENTION_GENERAL, 0, 0, 0, 0, 0, 0, 1, 1}, "layer_norm"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int dummy = 0;
        recur_seq2seq *m = (recur_seq2seq *)&dummy; /* must come back NULL */
        CHECK_STATUS(recur_seq2seq_create(&bad[i].c, &m), RECUR_E_INVALID);
        CHECK(m == NULL);
        CHECK_ERROR_MENTIONS(bad[i].mention);
    }
    CHECK_STATUS(recur_seq2seq_create(&c, NULL), RECUR_E_INVALID);
    recur_seq2seq_free(NULL);
    CHECK(recur_seq2seq_size(NULL) == 0);

    c.dropout = 0.5f;
    recur_seq2seq *m = make_model(&c, 91);
    if (!m)
        return;
    recur_rng rng;
    recur_rng_seed(&rng, 92);
    const int src_len[3] = {3, 1, 2}, tgt_len[3] = {1, 2, 2};
    batch_data d;
    make_batch(&d, 3, src_len, tgt_len, 9, 9, 1, &rng);
    double loss = NAN;
    recur_seq2seq_batch b = d.batch;
    CHECK_STATUS(recur_seq2seq_train_step(m, &b, 0.0f, NULL, &loss, NULL, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("rng");
    CHECK_STATUS(recur_seq2seq_train_step(m, NULL, 0.0f, &rng, &loss, NULL, NULL),
                 RECUR_E_INVALID);
    CHECK_STATUS(recur_seq2seq_train_step(m, &b, 0.0f, &rng, NULL, NULL, NULL), RECUR_E_INVALID);
    CHECK_STATUS(recur_seq2seq_train_step(NULL, &b, 0.0f, &rng, &loss, NULL, NULL),
                 RECUR_E_INVALID);
    CHECK_STATUS(recur_seq2seq_evaluate(m, &b, 1.0f, &loss, NULL, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("label_smoothing");
    CHECK_STATUS(recur_seq2seq_evaluate(m, &b, NAN, &loss, NULL, NULL), RECUR_E_INVALID);
    b.B = 0;
    CHECK_STATUS(recur_seq2seq_evaluate(m, &b, 0.0f, &loss, NULL, NULL), RECUR_E_INVALID);
    b = d.batch;
    b.tgt_out = NULL;
    CHECK_STATUS(recur_seq2seq_evaluate(m, &b, 0.0f, &loss, NULL, NULL), RECUR_E_INVALID);
    b = d.batch;
    d.src_lengths[1] = 4;
    CHECK_STATUS(recur_seq2seq_evaluate(m, &b, 0.0f, &loss, NULL, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("src_lengths[1] = 4");
    d.src_lengths[1] = 0;
    CHECK_STATUS(recur_seq2seq_evaluate(m, &b, 0.0f, &loss, NULL, NULL), RECUR_E_INVALID);
    d.src_lengths[1] = 1;
    d.src[1 * 3 + 2] = 9;
    CHECK_STATUS(recur_seq2seq_evaluate(m, &b, 0.0f, &loss, NULL, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("source id 9 at step 1 of sentence 2");
    d.src[1 * 3 + 2] = 4;
    d.tgt_out[2 * 3 + 1] = -3;
    CHECK_STATUS(recur_seq2seq_evaluate(m, &b, 0.0f, &loss, NULL, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("tgt_out id -3 at step 2 of sentence 1");
    d.tgt_out[2 * 3 + 1] = EOS;
    d.tgt_in[0] = 100;
    CHECK_STATUS(recur_seq2seq_evaluate(m, &b, 0.0f, &loss, NULL, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("tgt_in id 100 at step 0 of sentence 0");
    d.tgt_in[0] = BOS;
    /* a good batch works after the errors; nothing counted gives no gradient */
    size_t tokens = 0;
    CHECK_OK(recur_seq2seq_train_step(m, &b, 0.1f, &rng, &loss, NULL, &tokens));
    CHECK(tokens == 1 + 2 + 2 + 3 && isfinite(loss));
    int32_t zeros[9] = {0};
    b.tgt_out = zeros;
    recur_seq2seq_zero_grad(m);
    CHECK_OK(recur_seq2seq_train_step(m, &b, 0.1f, &rng, &loss, NULL, &tokens));
    CHECK(tokens == 0 && loss == 0.0);
    bool zero = true;
    for (size_t i = 0; i < recur_seq2seq_size(m); i++)
        zero = zero && recur_seq2seq_grads(m)[i] == 0.0f;
    CHECK(zero);

    const int32_t src[4] = {3, 4, 5, 6};
    int32_t *out = (int32_t *)src;
    int len = -1;
    recur_seq2seq_decode_config dc = recur_seq2seq_decode_config_default();
    CHECK_STATUS(recur_seq2seq_translate(m, src, 0, &dc, &out, &len, NULL), RECUR_E_INVALID);
    CHECK(out == NULL && len == 0);
    CHECK_STATUS(recur_seq2seq_translate(m, NULL, 4, &dc, &out, &len, NULL), RECUR_E_INVALID);
    CHECK_STATUS(recur_seq2seq_translate(m, src, 4, &dc, NULL, &len, NULL), RECUR_E_INVALID);
    const int32_t bad_src[4] = {3, 4, 5, 9};
    CHECK_STATUS(recur_seq2seq_translate(m, bad_src, 4, &dc, &out, &len, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("source id 9 at position 3");
    dc.beam_width = 0;
    CHECK_STATUS(recur_seq2seq_translate(m, src, 4, &dc, &out, &len, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("beam_width");
    dc = recur_seq2seq_decode_config_default();
    dc.length_penalty = -0.5f;
    CHECK_STATUS(recur_seq2seq_translate(m, src, 4, &dc, &out, &len, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("length_penalty");
    dc.length_penalty = NAN;
    CHECK_STATUS(recur_seq2seq_translate(m, src, 4, &dc, &out, &len, NULL), RECUR_E_INVALID);
    dc = recur_seq2seq_decode_config_default();
    dc.coverage_penalty = -0.1f;
    CHECK_STATUS(recur_seq2seq_translate(m, src, 4, &dc, &out, &len, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("coverage_penalty");
    dc.coverage_penalty = NAN;
    CHECK_STATUS(recur_seq2seq_translate(m, src, 4, &dc, &out, &len, NULL), RECUR_E_INVALID);
    dc = recur_seq2seq_decode_config_default();
    dc.max_length = -1;
    CHECK_STATUS(recur_seq2seq_translate(m, src, 4, &dc, &out, &len, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("max_length");
    /* max_length 0 means 2n + 10; a model that cannot emit anything but </s>
     * (Vt = 3) always gives the empty translation */
    dc = recur_seq2seq_decode_config_default();
    CHECK_OK(recur_seq2seq_translate(m, src, 4, &dc, &out, &len, NULL));
    CHECK(len >= 0 && len <= 18);
    recur_free(out);
    recur_seq2seq_free(m);
    recur_seq2seq_config tiny = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_DOT, 0, 1, 1, 3, 2, 3);
    m = make_model(&tiny, 93);
    if (m) {
        float *attention = NULL;
        const int32_t three[2] = {2, 1};
        CHECK_OK(recur_seq2seq_translate(m, three, 2, &dc, &out, &len, &attention));
        CHECK(len == 0 && out == NULL && attention != NULL);
        if (attention)
            CHECK_NEAR(attention[0] + attention[1], 1.0, 1e-6);
        recur_free(attention);
        recur_seq2seq_free(m);
    }
    batch_free(&d);
}

/* ---- out of memory ------------------------------------------------------------------- */

/* recur_seq2seq_average: the element-wise mean, into may be a member, the
 * dropouts may differ, and each architecture difference is refused naming
 * it, leaving into as it was. */
static void test_average(void)
{
    recur_seq2seq_config c = small_config(RECUR_CELL_GRU, RECUR_ATTENTION_ADDITIVE, 1, 1, 1, 9, 6,
                                          5);
    c.layer_norm = 1;
    recur_seq2seq *m[3] = {make_model(&c, 11), make_model(&c, 12), NULL};
    c.dropout = 0.5f; /* training only: not part of the architecture */
    m[2] = make_model(&c, 13);
    recur_seq2seq *into = make_model(&c, 14);
    if (!m[0] || !m[1] || !m[2] || !into)
        return;
    const size_t n = recur_seq2seq_size(into);
    CHECK_OK(recur_seq2seq_average(into, m, 3));
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double want = ((double)recur_seq2seq_params(m[0])[i] + recur_seq2seq_params(m[1])[i] +
                             recur_seq2seq_params(m[2])[i]) / 3;
        worst = fmax(worst, fabs(recur_seq2seq_params(into)[i] - want));
    }
    CHECK_MSG(worst < 1e-6, "average: worst error %g", worst);
    /* into among the models: the mean of the values before the call */
    float *before = malloc(n * sizeof *before);
    memcpy(before, recur_seq2seq_params(m[1]), n * sizeof *before);
    recur_seq2seq *pair[2] = {m[0], m[1]};
    CHECK_OK(recur_seq2seq_average(m[1], pair, 2));
    worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(recur_seq2seq_params(m[1])[i] -
                                 ((double)recur_seq2seq_params(m[0])[i] + before[i]) / 2));
    CHECK_MSG(worst < 1e-6, "average into a member: worst error %g", worst);
    CHECK(recur_seq2seq_architecture_difference(m[0], m[2]) == NULL); /* dropout differs */
    /* one model: itself, exactly */
    CHECK_OK(recur_seq2seq_average(into, m, 1));
    CHECK(memcmp(recur_seq2seq_params(into), recur_seq2seq_params(m[0]), n * sizeof(float)) == 0);
    /* each architecture difference, named; into untouched */
    static const struct {
        const char *name;
        int field;
    } diffs[] = {{"hidden size", 0}, {"layer normalization", 1}, {"attention", 2},
                 {"target vocabulary size", 3}, {"tied embeddings", 4}, {"encoder layers", 5}};
    for (size_t d = 0; d < sizeof diffs / sizeof diffs[0]; d++) {
        recur_seq2seq_config b = c, o = c;
        switch (diffs[d].field) {
        case 0: o.hidden_size = 6; break;
        case 1: o.layer_norm = 0; break;
        case 2: o.attention = RECUR_ATTENTION_GENERAL; break;
        case 3: o.tgt_vocab_size = 10; break;
        case 4: /* tying needs E == H: both 6, only one tied */
            b.hidden_size = o.hidden_size = c.embedding_size;
            o.tie_embeddings = 1;
            break;
        default: o.encoder_layers = 2; break;
        }
        recur_seq2seq *base = diffs[d].field == 4 ? make_model(&b, 30) : into;
        recur_seq2seq *other = make_model(&o, 20 + d);
        if (!other || !base)
            return;
        const size_t nb = recur_seq2seq_size(base);
        float *kept = malloc(nb * sizeof *kept);
        memcpy(kept, recur_seq2seq_params(base), nb * sizeof *kept);
        recur_seq2seq *two[2] = {base, other};
        const char *what = recur_seq2seq_architecture_difference(base, other);
        CHECK_MSG(what && strcmp(what, diffs[d].name) == 0, "difference '%s', not '%s'",
                  what ? what : "(none)", diffs[d].name);
        CHECK_STATUS(recur_seq2seq_average(base, two, 2), RECUR_E_SHAPE);
        CHECK_ERROR_MENTIONS(diffs[d].name);
        CHECK_MSG(memcmp(recur_seq2seq_params(base), kept, nb * sizeof *kept) == 0,
                  "%s: the refused average changed into", diffs[d].name);
        free(kept);
        if (base != into)
            recur_seq2seq_free(base);
        recur_seq2seq_free(other);
    }
    CHECK_STATUS(recur_seq2seq_average(into, m, 0), RECUR_E_INVALID);
    CHECK_STATUS(recur_seq2seq_average(NULL, m, 3), RECUR_E_INVALID);
    recur_seq2seq *with_null[2] = {m[0], NULL};
    CHECK_STATUS(recur_seq2seq_average(into, with_null, 2), RECUR_E_INVALID);
    free(before);
    for (int k = 0; k < 3; k++)
        recur_seq2seq_free(m[k]);
    recur_seq2seq_free(into);
}

static int alloc_budget = -1; /* allocations left before failing; -1: no limit */

static void *counting_malloc(size_t size, void *user)
{
    (void)user;
    if (alloc_budget == 0)
        return NULL;
    if (alloc_budget > 0)
        alloc_budget--;
    return malloc(size);
}

static void counting_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

/* Create, train a step, translate with attention, write and read back;
 * the first failing status. Frees everything it made. */
static int oom_sequence(void)
{
    recur_seq2seq_config c = small_config(RECUR_CELL_LSTM, RECUR_ATTENTION_ADDITIVE, 1, 2, 1, 9,
                                          4, 5);
    c.dropout = 0.1f;
    c.embedding_dropout = 0.1f;
    recur_seq2seq *m = NULL, *back = NULL;
    recur_st_writer *w = NULL;
    recur_st *st = NULL;
    int32_t *out = NULL;
    float *att = NULL;
    void *bytes = NULL;
    size_t size = 0;
    int len = 0;
    int32_t src[6] = {3, 4, 5, 6, 7, 8}, lengths[2] = {3, 2};
    int32_t tgt_in[6] = {BOS, BOS, 4, 5, 6, 0}, tgt_out[6] = {4, 5, 6, EOS, EOS, 0};
    const recur_seq2seq_batch b = {2, 3, src, lengths, 3, tgt_in, tgt_out};
    recur_rng rng;
    recur_rng_seed(&rng, 5);
    double loss = 0.0;
    recur_seq2seq_decode_config dc = {2, 0.6f, 4, 0.0f};
    int status = recur_seq2seq_create(&c, &m);
    if (status == RECUR_OK) {
        recur_seq2seq_init(m, &rng);
        status = recur_seq2seq_train_step(m, &b, 0.1f, &rng, &loss, NULL, NULL);
    }
    if (status == RECUR_OK)
        status = recur_seq2seq_translate(m, src, 3, &dc, &out, &len, &att);
    if (status == RECUR_OK)
        status = recur_st_writer_create(&w);
    if (status == RECUR_OK)
        status = recur_seq2seq_write(m, w);
    if (status == RECUR_OK)
        status = recur_st_writer_serialize(w, &bytes, &size);
    if (status == RECUR_OK)
        status = recur_st_parse(bytes, size, &st);
    if (status == RECUR_OK)
        status = recur_seq2seq_read(st, "oom", &back);
    recur_seq2seq_free(back);
    recur_st_free(st);
    recur_free(bytes);
    recur_st_writer_free(w);
    recur_free(out);
    recur_free(att);
    recur_seq2seq_free(m);
    return status;
}

/* Every allocation in turn fails: each time a clean RECUR_E_NOMEM (and,
 * under the sanitizers, no leak). */
static void test_out_of_memory(void)
{
    const recur_allocator counting = {counting_malloc, counting_free, NULL};
    int budget = 0, status = RECUR_E_NOMEM;
    for (; budget < 2000 && status != RECUR_OK; budget++) {
        recur_set_allocator(&counting);
        alloc_budget = budget;
        status = oom_sequence();
        alloc_budget = -1;
        recur_set_allocator(NULL);
        CHECK_MSG(status == RECUR_OK || status == RECUR_E_NOMEM,
                  "allocation %d failing gave status %d (%s)", budget, status, recur_last_error());
    }
    CHECK_MSG(status == RECUR_OK, "still failing with %d allocations", budget);
}

int main(void)
{
    /* one thread keeps the thousands of tiny steps fast (and under
     * sanitizers); the padded batch runs again on two threads to cover the
     * per-sentence parallel loops */
    recur_set_threads(1);
    test_layout();
    test_gradients();
    test_word_dropout();
    test_tied_embeddings();
    test_padding();
    recur_set_threads(2);
    test_padding();
    recur_set_threads(1);
    test_greedy();
    test_beam();
    test_nbest();
    test_coverage_penalty();
    test_ensemble();
    test_attention_and_determinism();
    test_copy_task();
    test_checkpoint();
    test_average();
    test_errors();
    test_out_of_memory();
    CHECK_DONE();
}
