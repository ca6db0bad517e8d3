/* seq2seq.c - the attention encoder-decoder of recur/seq2seq.h (Luong et
 * al. 2015, global attention, no input feeding): training (forward, label-
 * smoothed loss, exact backward), beam-search decoding and checkpoints.
 *
 * Training forward over a padded time-major batch, rows = T*B (decoder) and
 * S*B (encoder):
 *   x_src = E_src[src] * m_src                     [S*B, E]   (mask in training)
 *   e, hn = enc(x_src, lengths)                    [S*B, DH]  DH = D*H
 *   s_b   = [hn_fwd(top); hn_rev(top)]             [B, DH]
 *   h0    = tanh(s W_br^T + b_br)                  [B, Ld*H] -> [Ld, B, H]
 *   q     = dec(E_tgt[tgt_in] * m_tgt, h0)         [T*B, H]
 *   keys  = e W_a^T (general), e (dot), e W_k^T (additive, and wq = q W_q^T)
 *   per sentence b (small GEMMs over its T queries and len_b keys):
 *     score_b = Q_b K_b^T,  a_b = softmax_j (score_b), j < len_b  [T, S]
 *     ctx_b   = a_b e_b                                           [T, DH]
 *   o     = tanh([ctx; q] W_c^T + b_c) * m_o       [T*B, H]
 *   z     = o W_o^T + b_o                          [T*B, Vt]
 *   loss  = 1/N sum_{i: y_i != 0} (1-eps)(lse_i - z_iy) + eps (lse_i - mean_v z_iv)
 *   dz_i  = (softmax(z_i) - (1-eps) onehot(y_i) - eps/Vt) / N
 * In training, o, z and the loss cover only the rows with a target (the
 * padding's rows of cq move out first; about half the rows of a batch of
 * short phrase pairs and long sentences are padding).
 * The backward runs the same chain in reverse; the bridge's gradient reaches
 * the encoder as the gradient of its final states (dhn of the top layer),
 * and the decoder's dh0 feeds the bridge. Additive attention recomputes
 * tanh(wq + wk) in the backward instead of keeping [B, T, S, A].
 * Every buffer lives in one workspace sized for a (S, T, B) capacity.
 * Decoding encodes one sentence (B = 1) and runs the decoder through the
 * core's streaming API with one batch row per beam hypothesis.
 *
 * Input feeding (config input_feeding, Luong et al. 2015) makes the
 * decoder's input [x_t; o_{t-1}], o the combine output before dropout
 * (o_{-1} = 0): the dropout stays on the head's input only. Its recurrence
 * then passes through the attention, so
 * feed_forward and feed_backward step the one decoder layer through the
 * target positions themselves, with the core's cell kernels (cell.h):
 *   xg    = x_tgt W_ih[:, :E]^T                   [T*B, G*H]  one product
 *   per step t:
 *     xg_t += o_{t-1} W_ih[:, E:]^T,  q_t = cell(xg_t, q_{t-1} W_hh^T)
 *     a_t, ctx_t as above (one query per sentence), o_t, od_t over [B] rows
 * and the head after the loop over the rows with a target. The backward
 * runs the steps in reverse: at step t the gradient of o_t is the head's
 * (through the dropout mask) plus dxg_{t+1} W_ih[:, E:], and dq_t (combine
 * and attention) joins the carried recurrent gradient before the cell's
 * backward; the weight gradients are products over all steps afterwards. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"
#include "io/json_util.h"
#include "nn/rnn_internal.h"
#include "recur/bpe.h"
#include "recur/lm.h"
#include "recur/nn.h"
#include "recur/seq2seq.h"
#include "tensor/gemm.h"
#include "tensor/vmath.h"

#define MAX_VOCAB (1 << 24)
#define MAX_DIM 65536
#define MAX_STEPS (1 << 20)
#define MAX_MEMBERS RECUR_SEQ2SEQ_MAX_ENSEMBLE
#define MAX_LENGTH_PENALTY 10.0f
#define MAX_COVERAGE_PENALTY 10.0f
#define CHUNKS 16 /* fixed split of the batch for the additive attention's dv */

/* Pointers to each parameter (in params) or its gradient (in grads). */
typedef struct weights {
    float *src_embedding;    /* [Vs, E] */
    float *bridge_weight;    /* [Ld*H, DH] */
    float *bridge_bias;      /* [Ld*H] */
    float *tgt_embedding;    /* [Vt, E] */
    float *attention_weight; /* [H, DH] general */
    float *query_weight;     /* [A, H] additive */
    float *key_weight;       /* [A, DH] additive */
    float *attention_v;      /* [A] additive */
    float *combine_weight;   /* [H, X] */
    float *combine_bias;     /* [H] */
    float *head_weight;      /* [Vt, H] */
    float *head_bias;        /* [Vt] */
} weights;

/* The training workspace, for at most S source steps, T target steps and
 * B sentences. */
typedef struct workspace {
    int S, T, B;             /* capacity */
    float *arena;
    double *row_loss, *row_nll; /* [T*B] */
    int32_t *src_ids;        /* [S*B] source ids, 0 past each length */
    int *head_rows;          /* [T*B] the batch row of each head row */
    size_t nh;               /* head rows: the counted targets (training), else T*B */
    int *lengths;            /* [B] */
    float *x_src, *m_src;    /* [S*B, E] embedded source, its dropout mask */
    float *e;                /* [S*B, DH] encoder output (after hidden dropout) */
    float *m_e;              /* [S*B, DH] its hidden dropout mask */
    float *hn, *cn;          /* [Le*D, B, H] encoder final states */
    float *s;                /* [B, DH] bridge input */
    float *bridge;           /* [B, Ld*H] tanh(s W_br^T + b_br) */
    float *h0;               /* [Ld, B, H] */
    float *x_tgt, *m_tgt;    /* [T*B, E] */
    float *q;                /* [T*B, H] decoder output (after hidden dropout) */
    float *m_q;              /* [T*B, H] its hidden dropout mask */
    float *keys;             /* [S*B, H] (general) or [S*B, A] (additive) */
    float *wq;               /* [T*B, A] (additive) */
    float *att;              /* [B, T, S] attention weights */
    float *cq;               /* [T*B, X] [context; q] or [context; q; lexical], its
                              * first nh rows the head rows' after decode_forward */
    float *o, *m_o, *od;     /* [nh, H] combine output, its mask, masked */
    float *logits;           /* [nh, Vt], dlogits in training */
    float *dod;              /* [T*B, H] */
    float *dcq;              /* [T*B, X] */
    float *dq;               /* [T*B, H] */
    float *datt;             /* [B, T, S] */
    float *dkeys;            /* like keys */
    float *dwq;              /* [T*B, A] */
    float *de;               /* [S*B, DH] */
    float *dx_src;           /* [S*B, E] */
    float *dx_lex;           /* [S*B, E] the lexical shortcut's part of dx_src */
    float *dx_tgt;           /* [T*B, E] */
    float *dh0;              /* [Ld, B, H] */
    float *dbridge;          /* [B, Ld*H] */
    float *ds;               /* [B, DH] */
    float *dhn;              /* [Le*D, B, H] */
    float *dv_part;          /* [CHUNKS, A] */
    /* input feeding only: */
    float *xg;               /* [T*B, G*H] the decoder's input projection */
    float *act;              /* [T*B, G*H] the cell's saved activations */
    float *aux;              /* [T*B, H] GRU: W_hn q_{t-1} + b_hn */
    float *cs;               /* [(T+1)*B, H] LSTM: c_{-1} = 0, c_0, .. */
    float *hg;               /* [B, G*H] q_{t-1} W_hh^T */
    float *dgx, *dgh;        /* [T*B, G*H] the cell's gate gradients (dgh: GRU only) */
    float *hin;              /* [T*B, H] the head's input rows */
    float *dh_run, *dh_tot, *dc_run, *dfeed; /* [B, H] */
} workspace;

struct recur_seq2seq {
    recur_seq2seq_config config;
    int D, H;                /* encoder directions, width of every stack */
    int DH, A, X;            /* encoder output D*H, attention width (additive), combine
                              * input DH + H (+ E with the lexical shortcut) */
    int G;                   /* the cell's gates */
    recur_rnn *encoder, *decoder;
    float *params, *grads;   /* [size] */
    size_t size;
    weights w, dw;
    int tensor_count;
    recur_param_view *views;
    workspace ws;
};

/* ---- names and configuration ---------------------------------------------------- */

const char *recur_attention_name(recur_attention kind)
{
    switch (kind) {
    case RECUR_ATTENTION_GENERAL: return "general";
    case RECUR_ATTENTION_DOT: return "dot";
    case RECUR_ATTENTION_ADDITIVE: return "additive";
    }
    return "unknown";
}

int recur_attention_parse(const char *name, recur_attention *out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_attention_parse: out is NULL");
    static const recur_attention all[] = {RECUR_ATTENTION_GENERAL, RECUR_ATTENTION_DOT,
                                          RECUR_ATTENTION_ADDITIVE};
    for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(name, recur_attention_name(all[i])) == 0) {
            *out = all[i];
            return RECUR_OK;
        }
    return recur__error(RECUR_E_INVALID, "unknown attention '%s' (general, dot or additive)",
                        name ? name : "(null)");
}

recur_seq2seq_config recur_seq2seq_config_default(void)
{
    recur_seq2seq_config c;
    memset(&c, 0, sizeof c);
    c.cell = RECUR_CELL_GRU;
    c.embedding_size = 256;
    c.hidden_size = 256;
    c.encoder_layers = 1;
    c.decoder_layers = 1;
    c.bidirectional = 1;
    c.attention = RECUR_ATTENTION_ADDITIVE;
    c.dropout = 0.2f;
    c.embedding_dropout = 0.1f;
    return c;
}

/* Whether training multiplies the embedded tokens by a mask. */
static bool embedding_masked(const recur_seq2seq_config *c)
{
    return c->embedding_dropout > 0.0f || c->word_dropout > 0.0f;
}

static recur_rnn_config stack_config(const recur_seq2seq_config *c, int encoder)
{
    recur_rnn_config r = recur_rnn_config_default();
    r.cell = c->cell;
    r.input_size = c->embedding_size + (!encoder && c->input_feeding ? c->hidden_size : 0);
    r.hidden_size = c->hidden_size;
    r.num_layers = encoder ? c->encoder_layers : c->decoder_layers;
    r.bidirectional = encoder && c->bidirectional ? 1 : 0;
    r.dropout = c->dropout;
    r.layer_norm = c->layer_norm ? 1 : 0;
    return r;
}

int recur_seq2seq_config_check(const recur_seq2seq_config *c)
{
    if (!c)
        return recur__error(RECUR_E_INVALID, "seq2seq config is NULL");
    if (c->src_vocab_size < 3 || c->src_vocab_size > MAX_VOCAB)
        return recur__error(RECUR_E_INVALID, "seq2seq config: src_vocab_size %d outside 3..%d "
                            "(ids 0, 1, 2 are <pad>, <s>, </s>)", c->src_vocab_size, MAX_VOCAB);
    if (c->tgt_vocab_size < 3 || c->tgt_vocab_size > MAX_VOCAB)
        return recur__error(RECUR_E_INVALID, "seq2seq config: tgt_vocab_size %d outside 3..%d "
                            "(ids 0, 1, 2 are <pad>, <s>, </s>)", c->tgt_vocab_size, MAX_VOCAB);
    if (c->embedding_size < 1 || c->embedding_size > MAX_DIM)
        return recur__error(RECUR_E_INVALID, "seq2seq config: embedding_size %d outside 1..%d",
                            c->embedding_size, MAX_DIM);
    if (c->hidden_size < 1 || c->hidden_size > MAX_DIM)
        return recur__error(RECUR_E_INVALID, "seq2seq config: hidden_size %d outside 1..%d",
                            c->hidden_size, MAX_DIM);
    if (c->encoder_layers < 1 || c->encoder_layers > 64 || c->decoder_layers < 1 ||
        c->decoder_layers > 64)
        return recur__error(RECUR_E_INVALID, "seq2seq config: encoder_layers %d and "
                            "decoder_layers %d must lie in 1..64", c->encoder_layers,
                            c->decoder_layers);
    if (c->attention != RECUR_ATTENTION_GENERAL && c->attention != RECUR_ATTENTION_DOT &&
        c->attention != RECUR_ATTENTION_ADDITIVE)
        return recur__error(RECUR_E_INVALID, "seq2seq config: unknown attention %d",
                            (int)c->attention);
    if (c->attention == RECUR_ATTENTION_DOT && c->bidirectional)
        return recur__error(RECUR_E_INVALID, "seq2seq config: dot attention needs the decoder's "
                            "width H to equal the encoder's output width D*H: use general "
                            "attention or a unidirectional encoder");
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return recur__error(RECUR_E_INVALID, "seq2seq config: dropout %g outside [0, 1)",
                            (double)c->dropout);
    if (!(c->embedding_dropout >= 0.0f && c->embedding_dropout < 1.0f))
        return recur__error(RECUR_E_INVALID, "seq2seq config: embedding_dropout %g outside "
                            "[0, 1)", (double)c->embedding_dropout);
    if (!(c->word_dropout >= 0.0f && c->word_dropout < 1.0f))
        return recur__error(RECUR_E_INVALID, "seq2seq config: word_dropout %g outside [0, 1)",
                            (double)c->word_dropout);
    if (!(c->hidden_dropout >= 0.0f && c->hidden_dropout < 1.0f))
        return recur__error(RECUR_E_INVALID, "seq2seq config: hidden_dropout %g outside [0, 1)",
                            (double)c->hidden_dropout);
    if (c->input_feeding && c->decoder_layers != 1)
        return recur__error(RECUR_E_INVALID, "seq2seq config: input_feeding needs "
                            "decoder_layers 1 (not %d)", c->decoder_layers);
    if (c->input_feeding && c->hidden_dropout > 0.0f)
        return recur__error(RECUR_E_INVALID, "seq2seq config: input_feeding needs "
                            "hidden_dropout 0 (not %g)", (double)c->hidden_dropout);
    if (c->input_feeding && c->layer_norm)
        return recur__error(RECUR_E_INVALID, "seq2seq config: input_feeding and layer_norm "
                            "cannot be combined");
    if (c->input_feeding && c->hidden_size > MAX_DIM - c->embedding_size)
        return recur__error(RECUR_E_INVALID, "seq2seq config: input_feeding needs "
                            "embedding_size + hidden_size <= %d", MAX_DIM);
    if (c->tie_embeddings && c->embedding_size != c->hidden_size)
        return recur__error(RECUR_E_INVALID, "seq2seq config: tie_embeddings needs "
                            "embedding_size (%d) == hidden_size (%d)", c->embedding_size,
                            c->hidden_size);
    for (int encoder = 1; encoder >= 0; encoder--) {
        recur_rnn_config rc = stack_config(c, encoder);
        if (recur_rnn_config_check(&rc) != RECUR_OK) {
            char message[512];
            snprintf(message, sizeof message, "%s", recur_last_error());
            return recur__error(RECUR_E_INVALID, "seq2seq config (%s): %s",
                                encoder ? "encoder" : "decoder", message);
        }
    }
    return RECUR_OK;
}

/* ---- creation -------------------------------------------------------------------- */

/* Reserves a x b floats at *at: their offset to *offset. */
static bool place(size_t *at, size_t a, size_t b, size_t *offset)
{
    size_t n;
    *offset = *at;
    return recur__mul_size(a, b, &n) && recur__add_size(*at, n, at);
}

/* Appends the view of a d0 x d1 tensor (d1 = 0: a vector) at offset. */
static void add_view(recur_seq2seq *m, const char *name, size_t d0, size_t d1, size_t offset)
{
    recur_param_view *v = &m->views[m->tensor_count++];
    snprintf(v->name, sizeof v->name, "%s", name);
    v->ndim = d1 ? 2 : 1;
    v->shape[0] = (int64_t)d0;
    v->shape[1] = (int64_t)d1;
    v->offset = offset;
    v->numel = d0 * (d1 ? d1 : 1);
}

/* Appends the views of a stack's tensors, prefixed, at offset. */
static void add_stack_views(recur_seq2seq *m, const recur_rnn *rnn, const char *prefix,
                            size_t offset)
{
    for (int i = 0; i < recur_rnn_tensor_count(rnn); i++) {
        const recur_param_view *t = recur_rnn_tensor_at(rnn, i);
        recur_param_view *v = &m->views[m->tensor_count++];
        *v = *t;
        snprintf(v->name, sizeof v->name, "%s.%.38s", prefix, t->name);
        v->offset = offset + t->offset;
    }
}

static void free_workspace(workspace *ws)
{
    recur__free(ws->arena);
    recur__free(ws->row_loss);
    recur__free(ws->src_ids);
    recur__free(ws->head_rows);
    recur__free(ws->lengths);
    memset(ws, 0, sizeof *ws);
}

void recur_seq2seq_free(recur_seq2seq *m)
{
    if (!m)
        return;
    free_workspace(&m->ws);
    recur_rnn_free(m->encoder);
    recur_rnn_free(m->decoder);
    recur__free(m->views);
    recur__free(m->params);
    recur__free(m->grads);
    recur__free(m);
}

/* Points w at the parameters of base, following the views. */
static void bind_weights(const recur_seq2seq *m, float *base, weights *w)
{
    memset(w, 0, sizeof *w);
    static const struct {
        const char *name;
        size_t field;
    } names[] = {
        {"src_embedding.weight", offsetof(weights, src_embedding)},
        {"bridge.weight", offsetof(weights, bridge_weight)},
        {"bridge.bias", offsetof(weights, bridge_bias)},
        {"tgt_embedding.weight", offsetof(weights, tgt_embedding)},
        {"attention.weight", offsetof(weights, attention_weight)},
        {"attention.query.weight", offsetof(weights, query_weight)},
        {"attention.key.weight", offsetof(weights, key_weight)},
        {"attention.v", offsetof(weights, attention_v)},
        {"combine.weight", offsetof(weights, combine_weight)},
        {"combine.bias", offsetof(weights, combine_bias)},
        {"head.weight", offsetof(weights, head_weight)},
        {"head.bias", offsetof(weights, head_bias)},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const recur_param_view *v = recur_seq2seq_tensor_find(m, names[i].name);
        if (v)
            *(float **)((char *)w + names[i].field) = base + v->offset;
    }
}

int recur_seq2seq_create(const recur_seq2seq_config *config, recur_seq2seq **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_seq2seq_create: out is NULL");
    *out = NULL;
    int status = recur_seq2seq_config_check(config);
    if (status)
        return status;
    recur_seq2seq *m = recur__calloc(1, sizeof *m);
    if (!m)
        return recur__error(RECUR_E_NOMEM, "out of memory creating a seq2seq model");
    const recur_seq2seq_config *c = config;
    m->config = *c;
    m->config.bidirectional = c->bidirectional ? 1 : 0;
    m->config.tie_embeddings = c->tie_embeddings ? 1 : 0;
    m->config.lexical = c->lexical ? 1 : 0;
    m->config.input_feeding = c->input_feeding ? 1 : 0;
    m->config.layer_norm = c->layer_norm ? 1 : 0;
    m->G = recur_cell_gates(c->cell);
    m->D = c->bidirectional ? 2 : 1;
    m->H = c->hidden_size;
    m->DH = m->D * m->H;
    m->A = c->attention == RECUR_ATTENTION_ADDITIVE ? m->H : 0;
    m->X = m->DH + m->H + (m->config.lexical ? c->embedding_size : 0);
    recur_rnn_config ec = stack_config(c, 1), dc = stack_config(c, 0);
    const size_t enc_size = recur_rnn_param_size(&ec), dec_size = recur_rnn_param_size(&dc);
    const size_t Vs = (size_t)c->src_vocab_size, Vt = (size_t)c->tgt_vocab_size;
    const size_t E = (size_t)c->embedding_size, H = (size_t)m->H, DH = (size_t)m->DH;
    const size_t LdH = (size_t)c->decoder_layers * H, A = (size_t)m->A, X = (size_t)m->X;
    const bool general = c->attention == RECUR_ATTENTION_GENERAL;
    const bool additive = c->attention == RECUR_ATTENTION_ADDITIVE;
    const bool tied = m->config.tie_embeddings;
    /* the offsets, in state_dict order */
    struct {
        size_t src, enc, bw, bb, tgt, dec, att, query, key, v, cw, cb, hw, hb;
    } at = {0};
    size_t size = 0;
    bool ok = place(&size, Vs, E, &at.src) && place(&size, enc_size, 1, &at.enc) &&
              place(&size, LdH, DH, &at.bw) && place(&size, LdH, 1, &at.bb) &&
              place(&size, Vt, E, &at.tgt) && place(&size, dec_size, 1, &at.dec) &&
              place(&size, general ? H : 0, DH, &at.att) && place(&size, A, H, &at.query) &&
              place(&size, A, DH, &at.key) && place(&size, A, 1, &at.v) &&
              place(&size, H, X, &at.cw) && place(&size, H, 1, &at.cb) &&
              place(&size, tied ? 0 : Vt, H, &at.hw) && place(&size, Vt, 1, &at.hb);
    const int per_dir = m->config.layer_norm ? 6 : 4; /* a stack's tensors per direction */
    const int count = 1 + per_dir * c->encoder_layers * m->D + 3 + per_dir * c->decoder_layers +
                      (general ? 1 : additive ? 3 : 0) + (tied ? 3 : 4);
    m->size = size;
    if (ok) {
        m->views = recur__calloc((size_t)count, sizeof *m->views);
        m->params = recur__calloc(m->size, sizeof(float));
        m->grads = recur__calloc(m->size, sizeof(float));
    }
    if (!ok || !m->views || !m->params || !m->grads) {
        recur_seq2seq_free(m);
        return recur__error(RECUR_E_NOMEM, "out of memory: seq2seq model of %zu parameters",
                            size);
    }
    if ((status = recur_rnn_create(&ec, m->params + at.enc, m->grads + at.enc, &m->encoder)) ||
        (status = recur_rnn_create(&dc, m->params + at.dec, m->grads + at.dec, &m->decoder))) {
        recur_seq2seq_free(m);
        return status;
    }
    add_view(m, "src_embedding.weight", Vs, E, at.src);
    add_stack_views(m, m->encoder, "encoder", at.enc);
    add_view(m, "bridge.weight", LdH, DH, at.bw);
    add_view(m, "bridge.bias", LdH, 0, at.bb);
    add_view(m, "tgt_embedding.weight", Vt, E, at.tgt);
    add_stack_views(m, m->decoder, "decoder", at.dec);
    if (general)
        add_view(m, "attention.weight", H, DH, at.att);
    if (additive) {
        add_view(m, "attention.query.weight", A, H, at.query);
        add_view(m, "attention.key.weight", A, DH, at.key);
        add_view(m, "attention.v", A, 0, at.v);
    }
    add_view(m, "combine.weight", H, X, at.cw);
    add_view(m, "combine.bias", H, 0, at.cb);
    if (!tied)
        add_view(m, "head.weight", Vt, H, at.hw);
    add_view(m, "head.bias", Vt, 0, at.hb);
    bind_weights(m, m->params, &m->w);
    bind_weights(m, m->grads, &m->dw);
    if (tied) { /* the head's gradient adds to the embedding's */
        m->w.head_weight = m->w.tgt_embedding;
        m->dw.head_weight = m->dw.tgt_embedding;
    }
    *out = m;
    return RECUR_OK;
}

const recur_seq2seq_config *recur_seq2seq_get_config(const recur_seq2seq *m)
{
    return m ? &m->config : NULL;
}
float *recur_seq2seq_params(recur_seq2seq *m) { return m ? m->params : NULL; }
float *recur_seq2seq_grads(recur_seq2seq *m) { return m ? m->grads : NULL; }
size_t recur_seq2seq_size(const recur_seq2seq *m) { return m ? m->size : 0; }
int recur_seq2seq_tensor_count(const recur_seq2seq *m) { return m ? m->tensor_count : 0; }

static const char *architecture_difference(const recur_seq2seq_config *a,
                                           const recur_seq2seq_config *b)
{
    return a->cell != b->cell                       ? "cell"
           : a->src_vocab_size != b->src_vocab_size ? "source vocabulary size"
           : a->tgt_vocab_size != b->tgt_vocab_size ? "target vocabulary size"
           : a->embedding_size != b->embedding_size ? "embedding size"
           : a->hidden_size != b->hidden_size       ? "hidden size"
           : a->encoder_layers != b->encoder_layers ? "encoder layers"
           : a->decoder_layers != b->decoder_layers ? "decoder layers"
           : !a->bidirectional != !b->bidirectional ? "bidirectional encoder"
           : a->attention != b->attention           ? "attention"
           : !a->tie_embeddings != !b->tie_embeddings ? "tied embeddings"
           : !a->lexical != !b->lexical             ? "lexical shortcut"
           : !a->input_feeding != !b->input_feeding ? "input feeding"
           : !a->layer_norm != !b->layer_norm       ? "layer normalization"
                                                    : NULL;
}

const char *recur_seq2seq_architecture_difference(const recur_seq2seq *a,
                                                 const recur_seq2seq *b)
{
    if (!a || !b)
        return a == b ? NULL : "existence";
    const char *what = architecture_difference(&a->config, &b->config);
    return what ? what : a->size != b->size ? "parameter count" : NULL;
}

int recur_seq2seq_average(recur_seq2seq *into, recur_seq2seq *const *models, int count)
{
    if (!into || !models || count < 1)
        return recur_set_error(RECUR_E_INVALID, "recur_seq2seq_average: %s",
                               count < 1 ? "no models to average" : "NULL argument");
    for (int k = 0; k < count; k++) {
        if (!models[k])
            return recur_set_error(RECUR_E_INVALID, "recur_seq2seq_average: model %d is NULL", k);
        const char *what = recur_seq2seq_architecture_difference(into, models[k]);
        if (what)
            return recur_set_error(RECUR_E_SHAPE, "recur_seq2seq_average: model %d differs in "
                                   "its %s", k, what);
    }
    const size_t n = into->size;
    double *sum = calloc(n ? n : 1, sizeof *sum);
    if (!sum)
        return recur_set_error(RECUR_E_NOMEM, "recur_seq2seq_average: out of memory");
    for (int k = 0; k < count; k++) {
        const float *p = models[k]->params;
        for (size_t i = 0; i < n; i++)
            sum[i] += p[i];
    }
    for (size_t i = 0; i < n; i++)
        into->params[i] = (float)(sum[i] / count);
    free(sum);
    return RECUR_OK;
}

void recur_seq2seq_zero_grad(recur_seq2seq *m)
{
    if (m)
        memset(m->grads, 0, m->size * sizeof(float));
}

const recur_param_view *recur_seq2seq_tensor_at(const recur_seq2seq *m, int index)
{
    return m && index >= 0 && index < m->tensor_count ? &m->views[index] : NULL;
}

const recur_param_view *recur_seq2seq_tensor_find(const recur_seq2seq *m, const char *name)
{
    for (int i = 0; m && name && i < m->tensor_count; i++)
        if (strcmp(m->views[i].name, name) == 0)
            return &m->views[i];
    return NULL;
}

static void uniform(float *v, size_t n, size_t fan_in, recur_rng *rng)
{
    const float k = 1.0f / sqrtf((float)fan_in);
    for (size_t i = 0; i < n; i++)
        v[i] = (2.0f * recur_rng_uniform(rng) - 1.0f) * k;
}

void recur_seq2seq_init(recur_seq2seq *m, recur_rng *rng)
{
    if (!m || !rng)
        return;
    /* In parameter order; each tensor by the rule of its PyTorch module. */
    for (int i = 0; i < m->tensor_count; i++) {
        const recur_param_view *v = &m->views[i];
        float *p = m->params + v->offset;
        if (strcmp(v->name, "encoder.weight_ih_l0") == 0)
            recur_rnn_init(m->encoder, rng);
        else if (strcmp(v->name, "decoder.weight_ih_l0") == 0)
            recur_rnn_init(m->decoder, rng);
        if (strncmp(v->name, "encoder.", 8) == 0 || strncmp(v->name, "decoder.", 8) == 0)
            continue;
        if (m->config.tie_embeddings && strcmp(v->name, "tgt_embedding.weight") == 0) {
            uniform(p, v->numel, (size_t)m->H, rng); /* as the head's weight */
        } else if (strstr(v->name, "embedding")) {
            for (size_t j = 0; j < v->numel; j++)
                p[j] = (float)recur_rng_normal(rng);
        } else if (strcmp(v->name, "attention.v") == 0) {
            uniform(p, v->numel, (size_t)m->A, rng);
        } else if (strcmp(v->name, "head.bias") == 0) {
            uniform(p, v->numel, (size_t)m->H, rng);
        } else {
            /* a weight [O, I] or its bias [O], whose fan-in is the weight's I */
            const recur_param_view *weight = v->ndim == 2 ? v : &m->views[i - 1];
            uniform(p, v->numel, (size_t)weight->shape[1], rng);
        }
    }
}

/* ---- workspace ------------------------------------------------------------------- */

/* Carves consecutive buffers from one arena; with base NULL it only counts. */
typedef struct carver {
    float *base;
    size_t used;
    bool overflow;
} carver;

static float *carve(carver *cv, size_t a, size_t b)
{
    size_t n = 0;
    if (!recur__mul_size(a, b, &n) || !recur__add_size(n, 15, &n) ||
        !recur__add_size(cv->used, n & ~(size_t)15, &cv->used)) {
        cv->overflow = true;
        return NULL;
    }
    return cv->base ? cv->base + cv->used - (n & ~(size_t)15) : NULL;
}

static void layout(const recur_seq2seq *m, workspace *ws, carver *cv)
{
    const recur_seq2seq_config *c = &m->config;
    const size_t S = (size_t)ws->S, T = (size_t)ws->T, B = (size_t)ws->B;
    const size_t rs = S * B, rt = T * B, E = (size_t)c->embedding_size, H = (size_t)m->H;
    const size_t DH = (size_t)m->DH, X = (size_t)m->X, A = (size_t)m->A;
    const size_t Vt = (size_t)c->tgt_vocab_size, LdH = (size_t)c->decoder_layers * H;
    const size_t enc_states = (size_t)c->encoder_layers * m->D * B * H;
    const bool lstm = c->cell == RECUR_CELL_LSTM, edrop = embedding_masked(c);
    const size_t key_width = c->attention == RECUR_ATTENTION_GENERAL ? H : A;
    ws->x_src = carve(cv, rs, E);
    ws->m_src = edrop ? carve(cv, rs, E) : NULL;
    ws->e = carve(cv, rs, DH);
    ws->m_e = c->hidden_dropout > 0.0f ? carve(cv, rs, DH) : NULL;
    ws->hn = carve(cv, enc_states, 1);
    ws->cn = lstm ? carve(cv, enc_states, 1) : NULL;
    ws->s = carve(cv, B, DH);
    ws->bridge = carve(cv, B, LdH);
    ws->h0 = carve(cv, B, LdH);
    ws->x_tgt = carve(cv, rt, E);
    ws->m_tgt = edrop ? carve(cv, rt, E) : NULL;
    ws->q = carve(cv, rt, H);
    ws->m_q = c->hidden_dropout > 0.0f ? carve(cv, rt, H) : NULL;
    ws->keys = key_width ? carve(cv, rs, key_width) : NULL;
    ws->wq = A ? carve(cv, rt, A) : NULL;
    ws->att = carve(cv, rt, S);
    ws->cq = carve(cv, rt, X);
    ws->o = carve(cv, rt, H);
    ws->m_o = c->dropout > 0.0f ? carve(cv, rt, H) : NULL;
    ws->od = c->dropout > 0.0f ? carve(cv, rt, H) : NULL;
    ws->logits = carve(cv, rt, Vt);
    ws->dod = carve(cv, rt, H);
    ws->dcq = carve(cv, rt, X);
    ws->dq = carve(cv, rt, H);
    ws->datt = carve(cv, rt, S);
    ws->dkeys = key_width ? carve(cv, rs, key_width) : NULL;
    ws->dwq = A ? carve(cv, rt, A) : NULL;
    ws->de = carve(cv, rs, DH);
    ws->dx_src = carve(cv, rs, E);
    ws->dx_lex = c->lexical ? carve(cv, rs, E) : NULL;
    ws->dx_tgt = carve(cv, rt, E);
    ws->dh0 = carve(cv, B, LdH);
    ws->dbridge = carve(cv, B, LdH);
    ws->ds = carve(cv, B, DH);
    ws->dhn = carve(cv, enc_states, 1);
    ws->dv_part = A ? carve(cv, CHUNKS, A) : NULL;
    if (c->input_feeding) {
        const size_t GH = (size_t)m->G * H;
        const cell_ops *cell = recur__rnn_cell_ops(m->decoder);
        ws->xg = carve(cv, rt, GH);
        ws->act = carve(cv, rt, GH);
        ws->aux = cell->has_aux ? carve(cv, rt, H) : NULL;
        ws->cs = cell->has_c ? carve(cv, rt + B, H) : NULL;
        ws->hg = carve(cv, B, GH);
        ws->dgx = carve(cv, rt, GH);
        ws->dgh = cell->split_dgh ? carve(cv, rt, GH) : NULL;
        ws->hin = carve(cv, rt, H);
        ws->dh_run = carve(cv, B, H);
        ws->dh_tot = carve(cv, B, H);
        ws->dc_run = cell->has_c ? carve(cv, B, H) : NULL;
        ws->dfeed = carve(cv, B, H);
    }
}

static int reserve(recur_seq2seq *m, int S, int T, int B)
{
    workspace *ws = &m->ws;
    if (ws->arena && S <= ws->S && T <= ws->T && B <= ws->B)
        return RECUR_OK;
    workspace grown;
    memset(&grown, 0, sizeof grown);
    /* rounded up, so a training run's varying batch shapes regrow (and fault
     * in) the arena a few times, not at every new longest sentence */
    S = (S + 7) / 8 * 8;
    T = (T + 7) / 8 * 8;
    grown.S = S > ws->S ? S : ws->S;
    grown.T = T > ws->T ? T : ws->T;
    grown.B = B > ws->B ? B : ws->B;
    free_workspace(ws);
    carver cv = {NULL, 0, false};
    layout(m, &grown, &cv);
    const size_t rt = (size_t)grown.T * grown.B, rs = (size_t)grown.S * grown.B;
    if (!cv.overflow)
        grown.arena = recur__calloc(cv.used, sizeof(float));
    grown.row_loss = recur__calloc(rt, 2 * sizeof(double));
    grown.src_ids = recur__calloc(rs, sizeof(int32_t));
    grown.head_rows = recur__calloc(rt, sizeof(int));
    grown.lengths = recur__calloc((size_t)grown.B, sizeof(int));
    if (!grown.arena || !grown.row_loss || !grown.src_ids || !grown.head_rows || !grown.lengths) {
        free_workspace(&grown);
        return recur__error(RECUR_E_NOMEM, "out of memory: seq2seq workspace for S=%d T=%d "
                            "B=%d", S, T, B);
    }
    grown.row_nll = grown.row_loss + rt;
    cv = (carver){grown.arena, 0, false};
    layout(m, &grown, &cv);
    *ws = grown;
    int status = recur_rnn_reserve(m->encoder, grown.S, grown.B);
    /* the input-feeding decoder keeps its steps in this workspace */
    return status || m->config.input_feeding ? status
                                             : recur_rnn_reserve(m->decoder, grown.T, grown.B);
}

/* ---- batch checks ------------------------------------------------------------------ */

/* Checks shapes, lengths and ids; copies the source ids (0 past each
 * length) and lengths into the workspace; *tokens = the counted targets. */
static int prepare_batch(recur_seq2seq *m, const recur_seq2seq_batch *bt, float label_smoothing,
                         size_t *tokens)
{
    if (!bt)
        return recur__error(RECUR_E_INVALID, "seq2seq: batch is NULL");
    const int B = bt->B, S = bt->S, T = bt->T;
    if (B < 1 || S < 1 || T < 1 || B > MAX_STEPS || S > MAX_STEPS || T > MAX_STEPS)
        return recur__error(RECUR_E_INVALID, "seq2seq batch: B = %d, S = %d, T = %d must lie "
                            "in 1..%d", B, S, T, MAX_STEPS);
    if ((size_t)S * B > INT_MAX / 4 || (size_t)T * B > INT_MAX / 4 ||
        (size_t)B * (size_t)m->X > INT_MAX || (size_t)B * (size_t)S * T > INT_MAX / 4)
        return recur__error(RECUR_E_INVALID, "seq2seq batch: B = %d, S = %d, T = %d is too "
                            "large", B, S, T);
    if (!bt->src || !bt->src_lengths || !bt->tgt_in || !bt->tgt_out)
        return recur__error(RECUR_E_INVALID, "seq2seq batch: src, src_lengths, tgt_in or "
                            "tgt_out is NULL");
    if (!(label_smoothing >= 0.0f && label_smoothing < 1.0f))
        return recur__error(RECUR_E_INVALID, "seq2seq: label_smoothing %g outside [0, 1)",
                            (double)label_smoothing);
    const int Vs = m->config.src_vocab_size, Vt = m->config.tgt_vocab_size;
    for (int b = 0; b < B; b++)
        if (bt->src_lengths[b] < 1 || bt->src_lengths[b] > S)
            return recur__error(RECUR_E_INVALID, "seq2seq batch: src_lengths[%d] = %d outside "
                                "1..%d", b, (int)bt->src_lengths[b], S);
    for (int t = 0; t < S; t++)
        for (int b = 0; b < B; b++) {
            const int32_t id = bt->src[(size_t)t * B + b];
            if (t < bt->src_lengths[b] && (id < 0 || id >= Vs))
                return recur__error(RECUR_E_INVALID, "seq2seq batch: source id %d at step %d of "
                                    "sentence %d outside the source vocabulary 0..%d", (int)id,
                                    t, b, Vs - 1);
        }
    size_t count = 0;
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            const int32_t in = bt->tgt_in[(size_t)t * B + b], out = bt->tgt_out[(size_t)t * B + b];
            if (in < 0 || in >= Vt)
                return recur__error(RECUR_E_INVALID, "seq2seq batch: tgt_in id %d at step %d of "
                                    "sentence %d outside the target vocabulary 0..%d", (int)in,
                                    t, b, Vt - 1);
            if (out < 0 || out >= Vt)
                return recur__error(RECUR_E_INVALID, "seq2seq batch: tgt_out id %d at step %d of "
                                    "sentence %d outside the target vocabulary 0..%d", (int)out,
                                    t, b, Vt - 1);
            count += out != RECUR_BPE_PAD;
        }
    int status = reserve(m, S, T, B);
    if (status)
        return status;
    for (int b = 0; b < B; b++)
        m->ws.lengths[b] = bt->src_lengths[b];
    for (int t = 0; t < S; t++)
        for (int b = 0; b < B; b++)
            m->ws.src_ids[(size_t)t * B + b] = t < bt->src_lengths[b] ? bt->src[(size_t)t * B + b]
                                                                    : RECUR_BPE_PAD;
    *tokens = count;
    return RECUR_OK;
}

/* ---- kernels ------------------------------------------------------------------------ */

RECUR_VECTOR_CLONES static void tanh_inplace(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = recur_vtanh(x[i]);
}

/* d[i] *= 1 - y[i]^2: the backward of y = tanh(.) */
RECUR_VECTOR_CLONES static void tanh_backward(float *d, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] *= 1.0f - y[i] * y[i];
}

static void multiply(float *d, const float *mask, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] *= mask[i];
}

/* v . tanh(wq + wk) over A */
RECUR_VECTOR_CLONES static float additive_score(const float *wq, const float *wk, const float *v,
                                                int A)
{
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int a = 0; a < A; a++)
        sum += v[a] * recur_vtanh(wq[a] + wk[a]);
    return sum;
}

/* With u = tanh(wq + wk) recomputed: dwq += du, dwk += du, dv += g u, where
 * du = g v (1 - u^2). */
RECUR_VECTOR_CLONES static void additive_backward(float g, const float *restrict wq,
                                                  const float *restrict wk,
                                                  const float *restrict v, int A,
                                                  float *restrict dwq, float *restrict dwk,
                                                  float *restrict dv)
{
#pragma omp simd
    for (int a = 0; a < A; a++) {
        const float u = recur_vtanh(wq[a] + wk[a]);
        const float du = g * v[a] * (1.0f - u * u);
        dwq[a] += du;
        dwk[a] += du;
        dv[a] += g * u;
    }
}

/* Softmax of each of M rows over its first len entries (row stride ld);
 * the entries from len to width are set to 0. */
static void softmax_rows(float *x, int M, int len, int width, int ld)
{
    for (int i = 0; i < M; i++) {
        float *row = x + (size_t)i * ld;
        float max = row[0];
        for (int j = 1; j < len; j++)
            max = row[j] > max ? row[j] : max;
        double sum = 0.0;
        for (int j = 0; j < len; j++) {
            row[j] = expf(row[j] - max);
            sum += row[j];
        }
        const float inv = (float)(1.0 / sum);
        for (int j = 0; j < len; j++)
            row[j] *= inv;
        for (int j = len; j < width; j++)
            row[j] = 0.0f;
    }
}

/* Attention weights of M queries against one sentence's len source steps:
 * att[M, len] (row stride ld_att, zero from len to width) = softmax_j of
 *   general/dot: q_i . keys_j      (q [M, H] stride ldq, keys [len, H] stride ldk)
 *   additive:    v . tanh(wq_i + keys_j)  (wq [M, A] stride ldq, keys = W_k e) */
static void attend(const recur_seq2seq *m, int M, int len, const float *q, int ldq,
                   const float *keys, int ldk, float *att, int ld_att, int width)
{
    if (m->config.attention == RECUR_ATTENTION_ADDITIVE) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < len; j++)
                att[(size_t)i * ld_att + j] = additive_score(q + (size_t)i * ldq,
                                                             keys + (size_t)j * ldk,
                                                             m->w.attention_v, m->A);
    } else {
        recur_gemm(false, true, M, len, m->H, 1.0f, q, ldq, keys, ldk, 0.0f, att, ld_att);
    }
    softmax_rows(att, M, len, width, ld_att);
}

/* Label-smoothed cross-entropy of one row of logits z [V] with target y:
 *   nll = lse - z_y,  loss = (1-eps) nll + eps (lse - mean_v z_v)
 * and, when dz is non-NULL (it may alias z), dz = scale (p - (1-eps) onehot(y) - eps/V). */
RECUR_VECTOR_CLONES static void xent_row(const float *z, int V, int32_t y, float eps, float scale,
                                         float *dz, double *loss, double *nll)
{
    float max = z[0];
    for (int v = 1; v < V; v++)
        max = z[v] > max ? z[v] : max;
    double sum = 0.0, zsum = 0.0;
#pragma omp simd reduction(+ : sum, zsum)
    for (int v = 0; v < V; v++) {
        sum += (double)recur_vexp(z[v] - max);
        zsum += (double)z[v];
    }
    const double lse = (double)max + log(sum);
    *nll = lse - (double)z[y];
    *loss = (1.0 - eps) * *nll + eps * (lse - zsum / V);
    if (dz) {
        const float inv = (float)(scale / sum), off = scale * eps / (float)V;
        for (int v = 0; v < V; v++)
            dz[v] = recur_vexp(z[v] - max) * inv - off;
        dz[y] -= scale * (1.0f - eps);
    }
}

/* ---- training forward ---------------------------------------------------------------- */

/* Training noise on rows [rows, E] of embedded tokens, in place: element
 * dropout, then word dropout (whole rows); mask receives the product. The
 * element draws come first so that word_dropout 0 draws as before. */
static void embedding_noise_forward(const recur_seq2seq_config *c, float *x, size_t rows,
                              recur_rng *rng, float *mask)
{
    const size_t E = (size_t)c->embedding_size;
    if (c->embedding_dropout > 0.0f)
        recur_dropout_forward(x, rows * E, c->embedding_dropout, rng, mask, x);
    else
        for (size_t i = 0; i < rows * E; i++)
            mask[i] = 1.0f;
    if (c->word_dropout <= 0.0f)
        return;
    const float keep = 1.0f / (1.0f - c->word_dropout);
    for (size_t r = 0; r < rows; r++) {
        const float f = recur_rng_uniform(rng) < c->word_dropout ? 0.0f : keep;
        for (size_t j = r * E; j < (r + 1) * E; j++) {
            mask[j] *= f;
            x[j] *= f;
        }
    }
}

/* Source embedding, encoder, bridge: fills e, keys and h0. */
static int encode(recur_seq2seq *m, recur_mode mode, int S, int B, recur_rng *rng)
{
    workspace *ws = &m->ws;
    const recur_seq2seq_config *c = &m->config;
    const int E = c->embedding_size, H = m->H, DH = m->DH, D = m->D;
    const int Le = c->encoder_layers, Ld = c->decoder_layers;
    const size_t rs = (size_t)S * B;
    const bool train = mode == RECUR_MODE_TRAIN;
    int status = recur_embedding_forward(m->w.src_embedding, c->src_vocab_size, E, ws->src_ids, rs,
                                         ws->x_src);
    if (status)
        return status;
    if (train && embedding_masked(c))
        embedding_noise_forward(c, ws->x_src, rs, rng, ws->m_src);
    recur_rnn_input in = {S, B, ws->x_src, 0, ws->lengths, NULL, NULL};
    recur_rnn_output out = {ws->e, ws->hn, ws->cn};
    if ((status = recur_rnn_forward(m->encoder, mode, &in, &out, rng)))
        return status;
    if (train && c->hidden_dropout > 0.0f) /* the bridge below reads hn, not e */
        recur_dropout_forward(ws->e, rs * DH, c->hidden_dropout, rng, ws->m_e, ws->e);
    /* s_b = the top layer's final state of each direction */
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++)
            memcpy(ws->s + (size_t)b * DH + (size_t)d * H,
                   ws->hn + (((size_t)(Le - 1) * D + d) * B + b) * H, (size_t)H * sizeof(float));
    recur_linear_forward(m->w.bridge_weight, m->w.bridge_bias, Ld * H, DH, ws->s, (size_t)B,
                         ws->bridge);
    tanh_inplace(ws->bridge, (size_t)B * Ld * H);
    for (int l = 0; l < Ld; l++)
        for (int b = 0; b < B; b++)
            memcpy(ws->h0 + ((size_t)l * B + b) * H, ws->bridge + ((size_t)b * Ld + l) * H,
                   (size_t)H * sizeof(float));
    if (c->attention == RECUR_ATTENTION_GENERAL)
        recur_gemm(false, true, (int)rs, H, DH, 1.0f, ws->e, DH, m->w.attention_weight, DH, 0.0f,
                   ws->keys, H);
    else if (c->attention == RECUR_ATTENTION_ADDITIVE)
        recur_gemm(false, true, (int)rs, m->A, DH, 1.0f, ws->e, DH, m->w.key_weight, DH, 0.0f,
                   ws->keys, m->A);
    return RECUR_OK;
}

/* The keys of sentence b: a pointer and its row stride. */
static const float *keys_of(const recur_seq2seq *m, const float *keys, const float *e, int B, int b,
                            int *ld)
{
    switch (m->config.attention) {
    case RECUR_ATTENTION_DOT:
        *ld = B * m->DH;
        return e + (size_t)b * m->DH;
    case RECUR_ATTENTION_ADDITIVE:
        *ld = B * m->A;
        return keys + (size_t)b * m->A;
    default:
        *ld = B * m->H;
        return keys + (size_t)b * m->H;
    }
}

/* The one decoder layer's tensors and their gradients (input feeding). */
typedef struct decoder_params {
    const float *w_ih, *w_hh, *b_ih, *b_hh; /* [G*H, E + H], [G*H, H], [G*H], [G*H] */
    float *dw_ih, *dw_hh, *db_ih, *db_hh;
} decoder_params;

static decoder_params decoder_params_of(const recur_seq2seq *m)
{
    size_t at[4];
    static const char *const names[4] = {"decoder.weight_ih_l0", "decoder.weight_hh_l0",
                                         "decoder.bias_ih_l0", "decoder.bias_hh_l0"};
    for (int i = 0; i < 4; i++)
        at[i] = recur_seq2seq_tensor_find(m, names[i])->offset;
    return (decoder_params){m->params + at[0], m->params + at[1], m->params + at[2],
                            m->params + at[3], m->grads + at[0],  m->grads + at[1],
                            m->grads + at[2],  m->grads + at[3]};
}

/* decode_forward with input feeding, after the target embedding: the
 * decoder, attention and combine layer one target position at a time (see
 * the top of the file), then the head over the head rows. */
static int feed_forward(recur_seq2seq *m, recur_mode mode, const recur_seq2seq_batch *bt,
                        recur_rng *rng)
{
    workspace *ws = &m->ws;
    const recur_seq2seq_config *c = &m->config;
    const int S = bt->S, T = bt->T, B = bt->B, E = c->embedding_size, H = m->H, DH = m->DH;
    const int X = m->X, A = m->A, GH = m->G * H, I = E + H;
    const size_t rt = (size_t)T * B, BH = (size_t)B * H, BGH = (size_t)B * GH;
    const bool train = mode == RECUR_MODE_TRAIN, dropout = train && c->dropout > 0.0f;
    const bool additive = c->attention == RECUR_ATTENTION_ADDITIVE;
    const bool has_c = recur__rnn_cell_ops(m->decoder)->has_c;
    void (*step)(const cell_forward_args *) = recur__rnn_step_forward(m->decoder);
    const decoder_params p = decoder_params_of(m);
    const float *od = dropout ? ws->od : ws->o; /* what the head reads */
    recur_gemm(false, true, (int)rt, GH, E, 1.0f, ws->x_tgt, E, p.w_ih, I, 0.0f, ws->xg, GH);
    if (has_c)
        memset(ws->cs, 0, BH * sizeof(float));
    for (int t = 0; t < T; t++) {
        float *xg = ws->xg + (size_t)t * BGH, *q = ws->q + (size_t)t * BH;
        const float *q_prev = t ? q - BH : ws->h0;
        if (t)
            recur_gemm(false, true, B, GH, H, 1.0f, ws->o + (size_t)(t - 1) * BH, H, p.w_ih + E,
                       I, 1.0f, xg, GH);
        recur_gemm(false, true, B, GH, H, 1.0f, q_prev, H, p.w_hh, H, 0.0f, ws->hg, GH);
        const cell_forward_args a = {
            .B = B,
            .H = H,
            .j0 = 0,
            .j1 = H,
            .xg = xg,
            .hg = ws->hg,
            .b_ih = p.b_ih,
            .b_hh = p.b_hh,
            .h_prev = q_prev,
            .c_prev = has_c ? ws->cs + (size_t)t * BH : NULL,
            .h = q,
            .c = has_c ? ws->cs + (size_t)(t + 1) * BH : NULL,
            .act = ws->act + (size_t)t * BGH,
            .aux = ws->aux ? ws->aux + (size_t)t * BH : NULL,
            .active = NULL,
        };
        step(&a);
        if (additive)
            recur_gemm(false, true, B, A, H, 1.0f, q, H, m->w.query_weight, H, 0.0f,
                       ws->wq + (size_t)t * B * A, A);
        for (int b = 0; b < B; b++) {
            int ldk;
            const float *k = keys_of(m, ws->keys, ws->e, B, b, &ldk);
            const size_t r = (size_t)t * B + b;
            float *att = ws->att + ((size_t)b * T + t) * S, *cq = ws->cq + r * X;
            const int len = ws->lengths[b];
            if (additive)
                attend(m, 1, len, ws->wq + r * A, A, k, ldk, att, S, S);
            else
                attend(m, 1, len, q + (size_t)b * H, H, k, ldk, att, S, S);
            recur_gemm(false, false, 1, DH, len, 1.0f, att, S, ws->e + (size_t)b * DH, B * DH,
                       0.0f, cq, X);
            memcpy(cq + DH, q + (size_t)b * H, (size_t)H * sizeof(float));
            if (c->lexical)
                recur_gemm(false, false, 1, E, len, 1.0f, att, S, ws->x_src + (size_t)b * E,
                           B * E, 0.0f, cq + DH + H, X);
        }
        float *o = ws->o + (size_t)t * BH;
        recur_linear_forward(m->w.combine_weight, m->w.combine_bias, H, X,
                             ws->cq + (size_t)t * B * X, (size_t)B, o);
        tanh_inplace(o, BH);
        if (dropout)
            recur_dropout_forward(o, BH, c->dropout, rng, ws->m_o + (size_t)t * BH,
                                  ws->od + (size_t)t * BH);
    }
    /* the head reads the rows with a target (training) or every row */
    size_t nh = 0;
    for (size_t r = 0; r < rt; r++) {
        if (train && bt->tgt_out[r] == RECUR_BPE_PAD)
            continue;
        ws->head_rows[nh] = (int)r;
        memcpy(ws->hin + nh * H, od + r * H, (size_t)H * sizeof(float));
        nh++;
    }
    ws->nh = nh;
    if (nh)
        recur_linear_forward(m->w.head_weight, m->w.head_bias, c->tgt_vocab_size, H, ws->hin, nh,
                             ws->logits);
    return RECUR_OK;
}

/* Everything from the target embedding to the logits. */
static int decode_forward(recur_seq2seq *m, recur_mode mode, const recur_seq2seq_batch *bt,
                          recur_rng *rng)
{
    workspace *ws = &m->ws;
    const recur_seq2seq_config *c = &m->config;
    const int S = bt->S, T = bt->T, B = bt->B, E = c->embedding_size, H = m->H, DH = m->DH;
    const int X = m->X, A = m->A;
    const size_t rt = (size_t)T * B;
    const bool train = mode == RECUR_MODE_TRAIN;
    int status = recur_embedding_forward(m->w.tgt_embedding, c->tgt_vocab_size, E, bt->tgt_in, rt,
                                         ws->x_tgt);
    if (status)
        return status;
    if (train && embedding_masked(c))
        embedding_noise_forward(c, ws->x_tgt, rt, rng, ws->m_tgt);
    if (c->input_feeding)
        return feed_forward(m, mode, bt, rng);
    recur_rnn_input in = {T, B, ws->x_tgt, 0, NULL, ws->h0, NULL};
    recur_rnn_output out = {ws->q, NULL, NULL};
    if ((status = recur_rnn_forward(m->decoder, mode, &in, &out, rng)))
        return status;
    if (train && c->hidden_dropout > 0.0f)
        recur_dropout_forward(ws->q, rt * H, c->hidden_dropout, rng, ws->m_q, ws->q);
    const bool additive = c->attention == RECUR_ATTENTION_ADDITIVE;
    if (additive)
        recur_gemm(false, true, (int)rt, A, H, 1.0f, ws->q, H, m->w.query_weight, H, 0.0f, ws->wq,
                   A);
    /* per sentence: a_b [T, S] and ctx_b = a_b e_b into cq[:, 0:DH] */
#pragma omp parallel for schedule(static) if (B > 1)
    for (int b = 0; b < B; b++) {
        int ldk;
        const float *k = keys_of(m, ws->keys, ws->e, B, b, &ldk);
        float *att = ws->att + (size_t)b * T * S;
        const int len = ws->lengths[b];
        if (additive)
            attend(m, T, len, ws->wq + (size_t)b * A, B * A, k, ldk, att, S, S);
        else
            attend(m, T, len, ws->q + (size_t)b * H, B * H, k, ldk, att, S, S);
        recur_gemm(false, false, T, DH, len, 1.0f, att, S, ws->e + (size_t)b * DH, B * DH, 0.0f,
                   ws->cq + (size_t)b * X, B * X);
        if (c->lexical) /* l = a x_b into cq[:, DH + H:] */
            recur_gemm(false, false, T, E, len, 1.0f, att, S, ws->x_src + (size_t)b * E, B * E,
                       0.0f, ws->cq + (size_t)b * X + DH + H, B * X);
    }
    /* cq row n = [ctx; q] of batch row head_rows[n] >= n: every row, or in
     * training only the rows with a target, so that the combine layer, the
     * head and the loss skip the padding. */
    size_t nh = 0;
    for (size_t r = 0; r < rt; r++) {
        if (train && bt->tgt_out[r] == RECUR_BPE_PAD)
            continue;
        ws->head_rows[nh] = (int)r;
        if (r != nh) {
            memcpy(ws->cq + nh * X, ws->cq + r * X, (size_t)DH * sizeof(float));
            if (c->lexical)
                memcpy(ws->cq + nh * X + DH + H, ws->cq + r * X + DH + H,
                       (size_t)E * sizeof(float));
        }
        memcpy(ws->cq + nh * X + DH, ws->q + r * H, (size_t)H * sizeof(float));
        nh++;
    }
    ws->nh = nh;
    if (!nh)
        return RECUR_OK;
    recur_linear_forward(m->w.combine_weight, m->w.combine_bias, H, X, ws->cq, nh, ws->o);
    tanh_inplace(ws->o, nh * H);
    const float *head_in = ws->o;
    if (train && c->dropout > 0.0f) {
        recur_dropout_forward(ws->o, nh * H, c->dropout, rng, ws->m_o, ws->od);
        head_in = ws->od;
    }
    recur_linear_forward(m->w.head_weight, m->w.head_bias, c->tgt_vocab_size, H, head_in, nh,
                         ws->logits);
    return RECUR_OK;
}

/* The mean losses over the N counted targets, from the nh head rows;
 * dlogits in place when train. */
static int batch_loss(recur_seq2seq *m, const recur_seq2seq_batch *bt, float eps, size_t N,
                      bool train, double *loss, double *nll)
{
    workspace *ws = &m->ws;
    const int V = m->config.tgt_vocab_size;
    const long nh = (long)ws->nh;
    const float scale = N ? 1.0f / (float)N : 0.0f;
#pragma omp parallel for schedule(static) if (nh * V > 65536)
    for (long r = 0; r < nh; r++) {
        float *z = ws->logits + (size_t)r * V;
        const int32_t y = bt->tgt_out[ws->head_rows[r]];
        if (y == RECUR_BPE_PAD) { /* only outside training */
            ws->row_loss[r] = ws->row_nll[r] = 0.0;
            continue;
        }
        xent_row(z, V, y, eps, scale, train ? z : NULL, &ws->row_loss[r], &ws->row_nll[r]);
    }
    double total = 0.0, total_nll = 0.0;
    for (long r = 0; r < nh; r++) {
        total += ws->row_loss[r];
        total_nll += ws->row_nll[r];
    }
    *loss = N ? total / (double)N : 0.0;
    *nll = N ? total_nll / (double)N : 0.0;
    if (!isfinite(*loss) || !isfinite(*nll))
        return recur__error(RECUR_E_NUMERIC, "seq2seq: the loss is not finite (%g)", *loss);
    return RECUR_OK;
}

static int forward_loss(recur_seq2seq *m, recur_mode mode, const recur_seq2seq_batch *bt,
                        float eps, recur_rng *rng, double *loss, double *nll, size_t *tokens)
{
    if (!m || !loss)
        return recur__error(RECUR_E_INVALID, "seq2seq: NULL model or loss");
    size_t N = 0;
    int status = prepare_batch(m, bt, eps, &N);
    if (status)
        return status;
    const recur_seq2seq_config *c = &m->config;
    if (mode == RECUR_MODE_TRAIN && !rng &&
        (c->dropout > 0.0f || c->hidden_dropout > 0.0f || embedding_masked(c)))
        return recur__error(RECUR_E_INVALID, "seq2seq: dropout in training needs an rng");
    double plain = 0.0;
    if ((status = encode(m, mode, bt->S, bt->B, rng)) ||
        (status = decode_forward(m, mode, bt, rng)) ||
        (status = batch_loss(m, bt, eps, N, mode == RECUR_MODE_TRAIN, loss, &plain)))
        return status;
    if (nll)
        *nll = plain;
    if (tokens)
        *tokens = N;
    return RECUR_OK;
}

int recur_seq2seq_evaluate(recur_seq2seq *m, const recur_seq2seq_batch *batch,
                           float label_smoothing, double *loss, double *nll, size_t *tokens)
{
    return forward_loss(m, RECUR_MODE_INFER, batch, label_smoothing, NULL, loss, nll, tokens);
}

int recur_seq2seq_evaluate_logits(recur_seq2seq *m, const recur_seq2seq_batch *batch,
                                  double *nll, size_t *tokens, const float **logits)
{
    if (logits)
        *logits = NULL;
    double loss = 0.0;
    int status = forward_loss(m, RECUR_MODE_INFER, batch, 0.0f, NULL, &loss, nll, tokens);
    if (status == RECUR_OK && logits)
        *logits = m->ws.logits;
    return status;
}

/* ---- training backward ------------------------------------------------------------------ */

/* The attention's backward, from dcq to dq and de, in three parts:
 * attention_backward_begin zeroes what the steps accumulate into;
 * attention_backward_steps takes the target steps [t0, t1) (dq of their
 * rows complete afterwards); attention_backward_end adds the gradients
 * that sum over every step (de complete afterwards). The plain decoder
 * takes all T steps at once, the input-feeding one a step at a time. */
static void attention_backward_begin(recur_seq2seq *m, const recur_seq2seq_batch *bt)
{
    workspace *ws = &m->ws;
    const recur_seq2seq_config *c = &m->config;
    const size_t rt = (size_t)bt->T * bt->B, rs = (size_t)bt->S * bt->B;
    const size_t H = (size_t)m->H, DH = (size_t)m->DH, A = (size_t)m->A;
    memset(ws->de, 0, rs * DH * sizeof(float));
    if (c->lexical)
        memset(ws->dx_lex, 0, rs * (size_t)c->embedding_size * sizeof(float));
    if (c->attention == RECUR_ATTENTION_GENERAL)
        memset(ws->dkeys, 0, rs * H * sizeof(float));
    if (c->attention == RECUR_ATTENTION_ADDITIVE) {
        memset(ws->dkeys, 0, rs * A * sizeof(float));
        memset(ws->dwq, 0, rt * A * sizeof(float));
        memset(ws->dv_part, 0, (size_t)CHUNKS * A * sizeof(float));
    }
}

static void attention_backward_steps(recur_seq2seq *m, const recur_seq2seq_batch *bt, int t0,
                                     int t1)
{
    workspace *ws = &m->ws;
    const recur_seq2seq_config *c = &m->config;
    const int S = bt->S, T = bt->T, B = bt->B, H = m->H, DH = m->DH, X = m->X, A = m->A;
    const int E = c->embedding_size, nt = t1 - t0;
    const recur_attention kind = c->attention;
    for (size_t r = (size_t)t0 * B; r < (size_t)t1 * B; r++)
        memcpy(ws->dq + r * H, ws->dcq + r * X + DH, (size_t)H * sizeof(float));
    const int chunks = B < CHUNKS ? B : CHUNKS;
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (int ch = 0; ch < chunks; ch++) {
        for (int b = ch * B / chunks; b < (ch + 1) * B / chunks; b++) {
            const int len = ws->lengths[b];
            const size_t row = (size_t)t0 * B + b; /* batch row of (t0, b) */
            const float *e_b = ws->e + (size_t)b * DH, *q_b = ws->q + row * H;
            const float *dc_b = ws->dcq + row * X, *a = ws->att + ((size_t)b * T + t0) * S;
            float *de_b = ws->de + (size_t)b * DH, *dq_b = ws->dq + row * H;
            float *ds = ws->datt + ((size_t)b * T + t0) * S;
            /* ctx = a e:  da = dctx e^T,  de += a^T dctx */
            recur_gemm(false, true, nt, len, DH, 1.0f, dc_b, B * X, e_b, B * DH, 0.0f, ds, S);
            recur_gemm(true, false, len, DH, nt, 1.0f, a, S, dc_b, B * X, 1.0f, de_b, B * DH);
            if (c->lexical) { /* l = a x:  da += dl x^T,  dx += a^T dl */
                const float *dl_b = dc_b + DH + H, *x_b = ws->x_src + (size_t)b * E;
                recur_gemm(false, true, nt, len, E, 1.0f, dl_b, B * X, x_b, B * E, 1.0f, ds, S);
                recur_gemm(true, false, len, E, nt, 1.0f, a, S, dl_b, B * X, 1.0f,
                           ws->dx_lex + (size_t)b * E, B * E);
            }
            /* softmax: dscore = a (da - sum_j a da) */
            for (int t = 0; t < nt; t++) {
                const float *at = a + (size_t)t * S;
                float *dt = ds + (size_t)t * S;
                double dot = 0.0;
                for (int j = 0; j < len; j++)
                    dot += (double)at[j] * dt[j];
                for (int j = 0; j < len; j++)
                    dt[j] = at[j] * (dt[j] - (float)dot);
            }
            if (kind == RECUR_ATTENTION_GENERAL) {
                /* score = q k^T:  dq += dscore k,  dk += dscore^T q */
                const float *k_b = ws->keys + (size_t)b * H;
                recur_gemm(false, false, nt, H, len, 1.0f, ds, S, k_b, B * H, 1.0f, dq_b, B * H);
                recur_gemm(true, false, len, H, nt, 1.0f, ds, S, q_b, B * H, 1.0f,
                           ws->dkeys + (size_t)b * H, B * H);
            } else if (kind == RECUR_ATTENTION_DOT) {
                recur_gemm(false, false, nt, H, len, 1.0f, ds, S, e_b, B * DH, 1.0f, dq_b, B * H);
                recur_gemm(true, false, len, DH, nt, 1.0f, ds, S, q_b, B * H, 1.0f, de_b, B * DH);
            } else {
                float *dv = ws->dv_part + (size_t)ch * A;
                for (int t = 0; t < nt; t++)
                    for (int j = 0; j < len; j++)
                        additive_backward(ds[(size_t)t * S + j], ws->wq + (row + (size_t)t * B) * A,
                                          ws->keys + ((size_t)j * B + b) * A, m->w.attention_v, A,
                                          ws->dwq + (row + (size_t)t * B) * A,
                                          ws->dkeys + ((size_t)j * B + b) * A, dv);
            }
        }
    }
    if (kind == RECUR_ATTENTION_ADDITIVE) /* wq = q W_q^T:  dq += dwq W_q */
        recur_gemm(false, false, nt * B, H, A, 1.0f, ws->dwq + (size_t)t0 * B * A, A,
                   m->w.query_weight, H, 1.0f, ws->dq + (size_t)t0 * B * H, H);
}

static void attention_backward_end(recur_seq2seq *m, const recur_seq2seq_batch *bt)
{
    workspace *ws = &m->ws;
    const int B = bt->B, H = m->H, DH = m->DH, A = m->A;
    const int rt = bt->T * B, rs = bt->S * B, chunks = B < CHUNKS ? B : CHUNKS;
    const recur_attention kind = m->config.attention;
    if (kind == RECUR_ATTENTION_GENERAL) {
        /* keys = e W_a^T:  dW_a += dkeys^T e,  de += dkeys W_a */
        recur_gemm(true, false, H, DH, rs, 1.0f, ws->dkeys, H, ws->e, DH, 1.0f,
                   m->dw.attention_weight, DH);
        recur_gemm(false, false, rs, DH, H, 1.0f, ws->dkeys, H, m->w.attention_weight, DH, 1.0f,
                   ws->de, DH);
    } else if (kind == RECUR_ATTENTION_ADDITIVE) {
        recur_gemm(true, false, A, H, rt, 1.0f, ws->dwq, A, ws->q, H, 1.0f, m->dw.query_weight,
                   H);
        recur_gemm(true, false, A, DH, rs, 1.0f, ws->dkeys, A, ws->e, DH, 1.0f,
                   m->dw.key_weight, DH);
        recur_gemm(false, false, rs, DH, A, 1.0f, ws->dkeys, A, m->w.key_weight, DH, 1.0f,
                   ws->de, DH);
        for (int ch = 0; ch < chunks; ch++)
            for (int a = 0; a < A; a++)
                m->dw.attention_v[a] += ws->dv_part[(size_t)ch * A + a];
    }
}

/* Rows [nh, width] of x, row i belonging at head_rows[i] >= i, spread to
 * their places in [rt, width], the rows between them zero. */
static void scatter_rows(float *x, size_t width, const int *head_rows, size_t nh, size_t rt)
{
    size_t next = rt;
    for (size_t i = nh; i-- > 0;) {
        const size_t r = (size_t)head_rows[i];
        memset(x + (r + 1) * width, 0, (next - r - 1) * width * sizeof(float));
        if (r != i)
            memcpy(x + r * width, x + i * width, width * sizeof(float));
        next = r;
    }
    memset(x, 0, next * width * sizeof(float));
}

/* backward's part for the plain decoder: head, combine, attention and the
 * decoder stack, to dx_tgt, dh0 and the attention's de. */
static int plain_backward(recur_seq2seq *m, const recur_seq2seq_batch *bt)
{
    workspace *ws = &m->ws;
    const recur_seq2seq_config *c = &m->config;
    const int T = bt->T, B = bt->B, H = m->H, X = m->X;
    const size_t rt = (size_t)T * B;
    const bool dropout = c->dropout > 0.0f;
    /* head and combine over the nh head rows; ws->logits holds dz */
    const size_t nh = ws->nh;
    recur_linear_backward(m->w.head_weight, c->tgt_vocab_size, H, dropout ? ws->od : ws->o, nh,
                          ws->logits, m->dw.head_weight, m->dw.head_bias, ws->dod);
    if (dropout)
        multiply(ws->dod, ws->m_o, nh * H);
    tanh_backward(ws->dod, ws->o, nh * H);
    recur_linear_backward(m->w.combine_weight, H, X, ws->cq, nh, ws->dod, m->dw.combine_weight,
                          m->dw.combine_bias, ws->dcq);
    /* back to all T*B rows, the padding's zero */
    scatter_rows(ws->dcq, (size_t)X, ws->head_rows, nh, rt);
    attention_backward_begin(m, bt);
    attention_backward_steps(m, bt, 0, T);
    attention_backward_end(m, bt);
    if (c->hidden_dropout > 0.0f)
        multiply(ws->dq, ws->m_q, rt * H);
    recur_rnn_grad_in gin = {ws->dq, NULL, NULL};
    recur_rnn_grad_out gout = {ws->dx_tgt, ws->dh0, NULL};
    return recur_rnn_backward(m->decoder, &gin, &gout);
}

/* backward's part for the input-feeding decoder (feed_forward's reverse). */
static int feed_backward(recur_seq2seq *m, const recur_seq2seq_batch *bt)
{
    workspace *ws = &m->ws;
    const recur_seq2seq_config *c = &m->config;
    const int T = bt->T, B = bt->B, E = c->embedding_size, H = m->H, X = m->X;
    const int GH = m->G * H, I = E + H;
    const size_t rt = (size_t)T * B, BH = (size_t)B * H, BGH = (size_t)B * GH;
    const bool dropout = c->dropout > 0.0f;
    const cell_ops *cell = recur__rnn_cell_ops(m->decoder);
    void (*step)(const cell_backward_args *) = recur__rnn_step_backward(m->decoder);
    const decoder_params p = decoder_params_of(m);
    float *dgh = ws->dgh ? ws->dgh : ws->dgx;
    /* the head over the nh head rows (ws->logits holds dz), then dod to all rows */
    const size_t nh = ws->nh;
    recur_linear_backward(m->w.head_weight, c->tgt_vocab_size, H, ws->hin, nh, ws->logits,
                          m->dw.head_weight, m->dw.head_bias, ws->dod);
    scatter_rows(ws->dod, (size_t)H, ws->head_rows, nh, rt);
    attention_backward_begin(m, bt);
    memset(ws->dh_run, 0, BH * sizeof(float));
    if (cell->has_c)
        memset(ws->dc_run, 0, BH * sizeof(float));
    for (int t = T - 1; t >= 0; t--) {
        /* g = dL/do_t (the head's through the dropout mask, and the next
         * step's), then through tanh: the combine layer's pre-activation
         * gradient */
        float *g = ws->dod + (size_t)t * BH;
        if (dropout)
            multiply(g, ws->m_o + (size_t)t * BH, BH);
        if (t < T - 1)
            for (size_t i = 0; i < BH; i++)
                g[i] += ws->dfeed[i];
        tanh_backward(g, ws->o + (size_t)t * BH, BH);
        recur_gemm(false, false, B, X, H, 1.0f, g, H, m->w.combine_weight, X, 0.0f,
                   ws->dcq + (size_t)t * B * X, X);
        attention_backward_steps(m, bt, t, t + 1);
        const float *dq = ws->dq + (size_t)t * BH;
        for (size_t i = 0; i < BH; i++)
            ws->dh_tot[i] = dq[i] + ws->dh_run[i];
        const cell_backward_args a = {
            .B = B,
            .H = H,
            .j0 = 0,
            .j1 = H,
            .act = ws->act + (size_t)t * BGH,
            .aux = ws->aux ? ws->aux + (size_t)t * BH : NULL,
            .h_prev = t ? ws->q + (size_t)(t - 1) * BH : ws->h0,
            .c_prev = cell->has_c ? ws->cs + (size_t)t * BH : NULL,
            .c = cell->has_c ? ws->cs + (size_t)(t + 1) * BH : NULL,
            .dh = ws->dh_tot,
            .dc = ws->dc_run,
            .dgx = ws->dgx + (size_t)t * BGH,
            .dgh = dgh + (size_t)t * BGH,
            .dh_prev = ws->dh_run,
            .active = NULL,
        };
        step(&a);
        /* dq_{t-1} += dgh_t W_hh;  dod_{t-1} += dxg_t W_ih[:, E:] */
        recur_gemm(false, false, B, H, GH, 1.0f, dgh + (size_t)t * BGH, GH, p.w_hh, H, 1.0f,
                   ws->dh_run, H);
        if (t)
            recur_gemm(false, false, B, H, GH, 1.0f, ws->dgx + (size_t)t * BGH, GH, p.w_ih + E,
                       I, 0.0f, ws->dfeed, H);
    }
    memcpy(ws->dh0, ws->dh_run, BH * sizeof(float));
    attention_backward_end(m, bt);
    /* the products over all steps: combine, W_ih (x part, o part), W_hh, biases, dx */
    recur_linear_backward(m->w.combine_weight, H, X, ws->cq, rt, ws->dod, m->dw.combine_weight,
                          m->dw.combine_bias, NULL);
    recur_gemm(true, false, GH, E, (int)rt, 1.0f, ws->dgx, GH, ws->x_tgt, E, 1.0f, p.dw_ih, I);
    recur_gemm(true, false, GH, H, B, 1.0f, dgh, GH, ws->h0, H, 1.0f, p.dw_hh, H);
    if (T > 1) {
        const int rows = (T - 1) * B;
        recur_gemm(true, false, GH, H, rows, 1.0f, ws->dgx + BGH, GH, ws->o, H, 1.0f,
                   p.dw_ih + E, I);
        recur_gemm(true, false, GH, H, rows, 1.0f, dgh + BGH, GH, ws->q, H, 1.0f, p.dw_hh, H);
    }
    for (size_t r = 0; r < rt; r++) {
        const float *gx = ws->dgx + r * GH, *gh = dgh + r * GH;
        for (int j = 0; j < GH; j++) {
            p.db_ih[j] += gx[j];
            p.db_hh[j] += gh[j];
        }
    }
    recur_gemm(false, false, (int)rt, E, GH, 1.0f, ws->dgx, GH, p.w_ih, I, 0.0f, ws->dx_tgt, E);
    return RECUR_OK;
}

static int backward(recur_seq2seq *m, const recur_seq2seq_batch *bt)
{
    workspace *ws = &m->ws;
    const recur_seq2seq_config *c = &m->config;
    const int S = bt->S, T = bt->T, B = bt->B, E = c->embedding_size, H = m->H, DH = m->DH;
    const int D = m->D, Le = c->encoder_layers, Ld = c->decoder_layers;
    const size_t rt = (size_t)T * B, rs = (size_t)S * B;
    int status = c->input_feeding ? feed_backward(m, bt) : plain_backward(m, bt);
    if (status)
        return status;
    if (embedding_masked(c))
        multiply(ws->dx_tgt, ws->m_tgt, rt * E);
    recur_embedding_backward(m->dw.tgt_embedding, E, bt->tgt_in, rt, ws->dx_tgt);
    /* bridge: h0 = tanh(s W_br^T + b_br) */
    for (int l = 0; l < Ld; l++)
        for (int b = 0; b < B; b++)
            memcpy(ws->dbridge + ((size_t)b * Ld + l) * H, ws->dh0 + ((size_t)l * B + b) * H,
                   (size_t)H * sizeof(float));
    tanh_backward(ws->dbridge, ws->bridge, (size_t)B * Ld * H);
    recur_linear_backward(m->w.bridge_weight, Ld * H, DH, ws->s, (size_t)B, ws->dbridge,
                          m->dw.bridge_weight, m->dw.bridge_bias, ws->ds);
    /* the encoder's final states: only the top layer's feed the bridge */
    memset(ws->dhn, 0, (size_t)Le * D * B * H * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++)
            memcpy(ws->dhn + (((size_t)(Le - 1) * D + d) * B + b) * H,
                   ws->ds + (size_t)b * DH + (size_t)d * H, (size_t)H * sizeof(float));
    if (c->hidden_dropout > 0.0f)
        multiply(ws->de, ws->m_e, rs * DH);
    recur_rnn_grad_in ein = {ws->de, ws->dhn, NULL};
    recur_rnn_grad_out eout = {ws->dx_src, NULL, NULL};
    if ((status = recur_rnn_backward(m->encoder, &ein, &eout)))
        return status;
    if (c->lexical)
        for (size_t i = 0; i < rs * E; i++)
            ws->dx_src[i] += ws->dx_lex[i];
    if (embedding_masked(c))
        multiply(ws->dx_src, ws->m_src, rs * E);
    recur_embedding_backward(m->dw.src_embedding, E, ws->src_ids, rs, ws->dx_src);
    return RECUR_OK;
}

int recur_seq2seq_train_step(recur_seq2seq *m, const recur_seq2seq_batch *batch,
                             float label_smoothing, recur_rng *rng, double *loss, double *nll,
                             size_t *tokens)
{
    size_t N = 0;
    int status = forward_loss(m, RECUR_MODE_TRAIN, batch, label_smoothing, rng, loss, nll, &N);
    if (status)
        return status;
    if (tokens)
        *tokens = N;
    return N ? backward(m, batch) : RECUR_OK;
}

/* ---- decoding ----------------------------------------------------------------------------- */

recur_seq2seq_decode_config recur_seq2seq_decode_config_default(void)
{
    return (recur_seq2seq_decode_config){5, 0.6f, 0, 0.0f};
}

/* One sentence's encoding and the decoder's per-step buffers for K rows. */
typedef struct decoding {
    int n, K, max_len;
    recur_rnn_stream *stream;
    float *arena;
    float *x;        /* [n, E] embedded source, then [K, I] the decoder's input rows:
                      * the embedded tokens (I = E), with input feeding [token; feed] */
    float *emb;      /* [K, E] input feeding: the embedded tokens */
    float *feed, *feed2; /* [K, H] input feeding: each row's o_{t-1}, reordered */
    float *xs;       /* [n, E] the embedded source, kept (lexical shortcut) */
    float *e;        /* [n, DH] */
    float *hn;       /* [Le*D, 1, H] */
    float *h0;       /* [Ld, K, H] the bridge's state in every row */
    float *keys;     /* [n, H] (general) or [n, A] (additive) */
    float *q;        /* [K, H] */
    float *wq;       /* [K, A] */
    float *att;      /* [K, n] */
    float *cq;       /* [K, X] */
    float *o;        /* [K, H] */
    float *logits;   /* [K, Vt] */
    float *h, *c, *h2, *c2; /* [Ld, K, H] states read, reordered */
} decoding;

static void decoding_free(decoding *d)
{
    recur_rnn_stream_free(d->stream);
    recur__free(d->arena);
    memset(d, 0, sizeof *d);
}

/* Allocates, encodes src [n] and sets the stream's state to the bridge's. */
static int decoding_init(recur_seq2seq *m, const int32_t *src, int n, int K, decoding *d)
{
    const recur_seq2seq_config *c = &m->config;
    const size_t E = (size_t)c->embedding_size, H = (size_t)m->H, DH = (size_t)m->DH;
    const size_t A = (size_t)m->A, Vt = (size_t)c->tgt_vocab_size, X = (size_t)m->X;
    const size_t LdH = (size_t)c->decoder_layers * H, N = (size_t)n, Kz = (size_t)K;
    const size_t states = (size_t)c->encoder_layers * m->D * H;
    const bool lstm = c->cell == RECUR_CELL_LSTM;
    const bool feeding = c->input_feeding;
    const size_t I = E + (feeding ? H : 0);
    d->n = n;
    d->K = K;
    for (int pass = 0; pass < 2; pass++) {
        carver cv = {d->arena, 0, false};
        d->x = carve(&cv, N * E > Kz * I ? N : Kz, N * E > Kz * I ? E : I);
        d->emb = feeding ? carve(&cv, Kz, E) : NULL;
        d->feed = feeding ? carve(&cv, Kz, H) : NULL;
        d->feed2 = feeding ? carve(&cv, Kz, H) : NULL;
        d->xs = c->lexical ? carve(&cv, N, E) : NULL;
        d->e = carve(&cv, N, DH);
        d->hn = carve(&cv, states, 1);
        d->h0 = carve(&cv, Kz, LdH);
        d->keys = carve(&cv, N, H > A ? H : A);
        d->q = carve(&cv, Kz, H);
        d->wq = carve(&cv, Kz, A ? A : 1);
        d->att = carve(&cv, Kz, N);
        d->cq = carve(&cv, Kz, X);
        d->o = carve(&cv, Kz, H);
        d->logits = carve(&cv, Kz, Vt);
        d->h = carve(&cv, Kz, LdH);
        d->h2 = carve(&cv, Kz, LdH);
        d->c = lstm ? carve(&cv, Kz, LdH) : NULL;
        d->c2 = lstm ? carve(&cv, Kz, LdH) : NULL;
        if (pass == 0 && (cv.overflow || !(d->arena = recur__calloc(cv.used, sizeof(float)))))
            return recur__error(RECUR_E_NOMEM, "out of memory decoding a sentence of %d tokens "
                                "with a beam of %d", n, K);
    }
    int status = recur_embedding_forward(m->w.src_embedding, c->src_vocab_size, (int)E, src, N,
                                         d->x);
    if (status)
        return status;
    if (d->xs)
        memcpy(d->xs, d->x, N * E * sizeof(float));
    recur_rnn_input in = {n, 1, d->x, 0, NULL, NULL, NULL};
    recur_rnn_output out = {d->e, d->hn, NULL};
    if ((status = recur_rnn_forward(m->encoder, RECUR_MODE_INFER, &in, &out, NULL)))
        return status;
    /* s = top layer's final states (layout [Le*D, 1, H]: already contiguous) */
    const float *s = d->hn + (size_t)(c->encoder_layers - 1) * m->D * H;
    float *bridge = d->h2; /* scratch [Ld*H] */
    recur_linear_forward(m->w.bridge_weight, m->w.bridge_bias, (int)LdH, (int)DH, s, 1, bridge);
    tanh_inplace(bridge, LdH);
    for (int l = 0; l < c->decoder_layers; l++)
        for (int k = 0; k < K; k++)
            memcpy(d->h0 + ((size_t)l * K + k) * H, bridge + (size_t)l * H, H * sizeof(float));
    if (c->attention == RECUR_ATTENTION_GENERAL)
        recur_gemm(false, true, n, (int)H, (int)DH, 1.0f, d->e, (int)DH, m->w.attention_weight,
                   (int)DH, 0.0f, d->keys, (int)H);
    else if (c->attention == RECUR_ATTENTION_ADDITIVE)
        recur_gemm(false, true, n, (int)A, (int)DH, 1.0f, d->e, (int)DH, m->w.key_weight, (int)DH,
                   0.0f, d->keys, (int)A);
    if ((status = recur_rnn_stream_create(m->decoder, K, &d->stream)))
        return status;
    return recur_rnn_stream_reset(d->stream, d->h0, NULL);
}

/* One decoder step: tokens [K] in, logits [rows, Vt] and attention [rows, n]
 * of the first `rows` rows out (the stream advances all K rows). */
static int decoding_step(recur_seq2seq *m, decoding *d, const int32_t *tokens, int rows)
{
    const recur_seq2seq_config *c = &m->config;
    const int E = c->embedding_size, H = m->H, DH = m->DH, X = m->X, A = m->A, n = d->n;
    int status = recur_embedding_forward(m->w.tgt_embedding, c->tgt_vocab_size, E, tokens,
                                         (size_t)d->K, d->feed ? d->emb : d->x);
    if (status)
        return status;
    if (d->feed) /* x_k = [token; o_{t-1}] */
        for (int k = 0; k < d->K; k++) {
            float *x = d->x + (size_t)k * (E + H);
            memcpy(x, d->emb + (size_t)k * E, (size_t)E * sizeof(float));
            memcpy(x + E, d->feed + (size_t)k * H, (size_t)H * sizeof(float));
        }
    if ((status = recur_rnn_stream_step(d->stream, d->x, d->q)))
        return status;
    const float *keys = c->attention == RECUR_ATTENTION_DOT ? d->e : d->keys;
    if (c->attention == RECUR_ATTENTION_ADDITIVE) {
        recur_gemm(false, true, rows, A, H, 1.0f, d->q, H, m->w.query_weight, H, 0.0f, d->wq, A);
        attend(m, rows, n, d->wq, A, keys, A, d->att, n, n);
    } else {
        attend(m, rows, n, d->q, H, keys, c->attention == RECUR_ATTENTION_DOT ? DH : H, d->att, n,
               n);
    }
    recur_gemm(false, false, rows, DH, n, 1.0f, d->att, n, d->e, DH, 0.0f, d->cq, X);
    if (d->xs)
        recur_gemm(false, false, rows, E, n, 1.0f, d->att, n, d->xs, E, 0.0f, d->cq + DH + H, X);
    for (int r = 0; r < rows; r++)
        memcpy(d->cq + (size_t)r * X + DH, d->q + (size_t)r * H, (size_t)H * sizeof(float));
    recur_linear_forward(m->w.combine_weight, m->w.combine_bias, H, X, d->cq, (size_t)rows, d->o);
    tanh_inplace(d->o, (size_t)rows * H);
    if (d->feed) /* the rows past `rows` are never continued */
        memcpy(d->feed, d->o, (size_t)rows * H * sizeof(float));
    recur_linear_forward(m->w.head_weight, m->w.head_bias, c->tgt_vocab_size, H, d->o,
                         (size_t)rows, d->logits);
    return RECUR_OK;
}

/* log sum_v exp z_v (the sum in double) */
RECUR_VECTOR_CLONES static double log_sum_exp(const float *z, int V)
{
    float max = z[0];
    for (int v = 1; v < V; v++)
        max = z[v] > max ? z[v] : max;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int v = 0; v < V; v++)
        sum += (double)recur_vexp(z[v] - max);
    return (double)max + log(sum);
}

typedef struct candidate {
    double score; /* sum log p */
    int32_t token;
    int hyp;      /* live slot it extends */
} candidate;

static int by_rank(const void *pa, const void *pb)
{
    const candidate *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    if (a->token != b->token)
        return a->token < b->token ? -1 : 1;
    return (a->hyp > b->hyp) - (a->hyp < b->hyp);
}

static double normalised(double score, int len, float alpha)
{
    return alpha == 0.0f ? score : score / pow((double)len, (double)alpha);
}

/* beta sum_j log min(c_j, 1) over the n source positions' coverage c (at
 * most 0; a position never attended counts as 1e-10) */
static double coverage_penalty(const double *c, int n, float beta)
{
    double sum = 0.0;
    for (int j = 0; j < n; j++)
        sum += c[j] >= 1.0 ? 0.0 : log(c[j] > 1e-10 ? c[j] : 1e-10);
    return (double)beta * sum;
}

/* Reorders the decoder state of d's rows: row k continues row from[k]. */
static int reorder_rows(const recur_seq2seq *m, decoding *d, const int *from)
{
    const int K = d->K, Ld = m->config.decoder_layers, H = m->H;
    const bool lstm = m->config.cell == RECUR_CELL_LSTM;
    int status = recur_rnn_stream_state(d->stream, d->h, d->c);
    if (status)
        return status;
    for (int l = 0; l < Ld; l++)
        for (int k = 0; k < K; k++) {
            const size_t dst = ((size_t)l * K + k) * H, src = ((size_t)l * K + from[k]) * H;
            memcpy(d->h2 + dst, d->h + src, (size_t)H * sizeof(float));
            if (lstm)
                memcpy(d->c2 + dst, d->c + src, (size_t)H * sizeof(float));
        }
    if (d->feed) {
        for (int k = 0; k < K; k++)
            memcpy(d->feed2 + (size_t)k * H, d->feed + (size_t)from[k] * H,
                   (size_t)H * sizeof(float));
        float *swap = d->feed;
        d->feed = d->feed2;
        d->feed2 = swap;
    }
    return recur_rnn_stream_reset(d->stream, d->h2, lstm ? d->c2 : NULL);
}

/* A finished hypothesis while the search runs: its ranking score, log p,
 * tokens before </s>, and the row it extends (after step len - 1). */
typedef struct finished {
    double norm, logp;
    int len, row;
} finished;

/* Beam search over the `count` models m[i] with their decodings d[i] (see
 * recur_seq2seq_translate_ensemble); the best `nbest` finished hypotheses,
 * best first, to hyps[0..*found_count) (their tokens new arrays). Hypotheses live in the K rows of each stream; row k after
 * step t holds tokens tok[0..t][.] traced back through parent[t][k]. One
 * model scores by its own logits; several by the log of their mean
 * distribution (recur_log_mixture, into mix). With a coverage penalty
 * (beta > 0), cov[k] holds the attention row k's hypothesis gave each
 * source position before this step, now[k] with this step's added. */
static int beam_search(recur_seq2seq *const *m, decoding *d, int count, float alpha, float beta,
                       int nbest, recur_seq2seq_hypothesis *hyps, int *found_count)
{
    const int K = d[0].K, Vt = m[0]->config.tgt_vocab_size, L = d[0].max_len, n = d[0].n;
    const int expand = K < Vt - 2 ? K : Vt - 2; /* tokens 2..Vt-1 may be emitted */
    const float *member[MAX_MEMBERS];
    float *mix = count > 1 ? recur__malloc((size_t)K * Vt * sizeof *mix) : NULL;
    int *from = recur__calloc((size_t)K, sizeof *from);
    const size_t table = ((size_t)L + 1) * K;
    int32_t *tok = recur__calloc(table, sizeof *tok);
    int32_t *tokens = recur__calloc((size_t)K, sizeof *tokens);
    int *parent = recur__calloc(table, sizeof *parent);
    double *score = recur__calloc(2 * (size_t)K, sizeof *score), *next_score = score + K;
    candidate *cand = recur__calloc((size_t)K * expand, sizeof *cand);
    candidate *top = recur__calloc((size_t)expand, sizeof *top);
    double *cov = beta > 0.0f ? recur__calloc(2 * (size_t)K * n, sizeof *cov) : NULL;
    double *now = cov ? cov + (size_t)K * n : NULL;
    int status = RECUR_OK, live = 1;
    /* the best `nbest` finished hypotheses so far, best first (ties: the earlier found) */
    finished *best = recur__calloc((size_t)nbest, sizeof *best);
    int found = 0;
    if (!best || !tok || !tokens || !parent || !score || !cand || !top || !from ||
        (count > 1 && !mix) ||
        (beta > 0.0f && !cov)) {
        status = recur__error(RECUR_E_NOMEM, "out of memory in beam search");
        goto done;
    }
    for (int k = 0; k < K; k++)
        tokens[k] = RECUR_BPE_BOS;
    for (int t = 0;; t++) {
        for (int i = 0; i < count; i++) {
            if ((status = decoding_step(m[i], &d[i], tokens, live)))
                goto done;
            member[i] = d[i].logits;
        }
        if (count > 1 && (status = recur_log_mixture(member, count, (size_t)live, Vt, mix)))
            goto done;
        const float *scores = count > 1 ? mix : d[0].logits;
        if (cov)
            for (size_t r = 0; r < (size_t)live * n; r++) {
                double a = 0.0;
                for (int i = 0; i < count; i++)
                    a += (double)d[i].att[r];
                now[r] = cov[r] + a / count;
            }
        int nc = 0;
        for (int i = 0; i < live; i++) {
            const float *z = scores + (size_t)i * Vt;
            const double lse = log_sum_exp(z, Vt);
            if (!isfinite(lse)) {
                status = recur__error(RECUR_E_NUMERIC, "seq2seq: decoding met non-finite "
                                      "logits at step %d (are the weights finite?)", t);
                goto done;
            }
            if (t == L) { /* max_length reached: end with </s> */
                cand[nc++] = (candidate){score[i] + (double)z[RECUR_BPE_EOS] - lse,
                                         RECUR_BPE_EOS, i};
                continue;
            }
            /* the `expand` most likely tokens, ties to the lower id */
            int nt = 0;
            for (int32_t v = RECUR_BPE_EOS; v < Vt; v++) {
                if (nt == expand && !(z[v] > top[nt - 1].score))
                    continue;
                int at = nt < expand ? nt++ : nt - 1;
                while (at > 0 && z[v] > top[at - 1].score) {
                    top[at] = top[at - 1];
                    at--;
                }
                top[at] = (candidate){z[v], v, i};
            }
            for (int j = 0; j < nt; j++)
                cand[nc++] = (candidate){score[i] + (top[j].score - lse), top[j].token, i};
        }
        qsort(cand, (size_t)nc, sizeof *cand, by_rank);
        /* the best K candidates: </s> finishes, the others live on */
        int next = 0;
        for (int j = 0; j < nc && j < K; j++) {
            if (cand[j].token == RECUR_BPE_EOS) {
                double norm = normalised(cand[j].score, t + 1, alpha);
                if (cov)
                    norm += coverage_penalty(now + (size_t)cand[j].hyp * n, n, beta);
                int at = found < nbest ? found++ : nbest;
                while (at > 0 && norm > best[at - 1].norm) {
                    if (at < nbest)
                        best[at] = best[at - 1];
                    at--;
                }
                if (at < nbest)
                    best[at] = (finished){norm, cand[j].score, t, cand[j].hyp};
            } else {
                tok[(size_t)t * K + next] = cand[j].token;
                parent[(size_t)t * K + next] = cand[j].hyp;
                next_score[next++] = cand[j].score;
            }
        }
        /* log p only falls and a completion has at most L + 1 tokens, so a
         * live hypothesis can reach at most its score over (L + 1)^alpha */
        if (next == 0 ||
            (found == nbest && best[nbest - 1].norm >= normalised(next_score[0], L + 1, alpha)))
            break;
        /* reorder the states: row k continues row parent[t][k] */
        for (int k = 0; k < K; k++)
            from[k] = parent[(size_t)t * K + (k < next ? k : 0)];
        for (int i = 0; i < count; i++)
            if ((status = reorder_rows(m[i], &d[i], from)))
                goto done;
        for (int k = 0; k < K; k++) {
            tokens[k] = tok[(size_t)t * K + (k < next ? k : 0)];
            score[k] = next_score[k < next ? k : 0];
            if (cov)
                memcpy(cov + (size_t)k * n, now + (size_t)from[k] * n, (size_t)n * sizeof *cov);
        }
        live = next;
    }
    for (int h = 0; h < found; h++) {
        const finished *f = &best[h];
        int32_t *seq = NULL;
        if (f->len > 0 && !(seq = recur__malloc((size_t)f->len * sizeof *seq))) {
            status = recur__error(RECUR_E_NOMEM, "out of memory in beam search");
            goto done;
        }
        for (int j = f->len - 1, row = f->row; j >= 0; j--) {
            seq[j] = tok[(size_t)j * K + row];
            row = parent[(size_t)j * K + row];
        }
        hyps[h] = (recur_seq2seq_hypothesis){seq, f->len, f->logp, f->norm};
        *found_count = h + 1;
    }
done:
    recur__free(best);
    recur__free(tok);
    recur__free(tokens);
    recur__free(parent);
    recur__free(score);
    recur__free(cand);
    recur__free(top);
    recur__free(from);
    recur__free(mix);
    recur__free(cov);
    return status;
}

/* The attention rows of the chosen tokens: the decoder run again over
 * <s> out[0..len) from the bridge's state, row 0 of the stream. */
static int attention_rows(recur_seq2seq *m, decoding *d, const int32_t *seq, int len, float **out)
{
    const size_t n = (size_t)d->n;
    float *rows = recur__calloc(((size_t)len + 1) * n, sizeof(float));
    int32_t *tokens = recur__calloc((size_t)d->K, sizeof *tokens);
    int status = rows && tokens ? recur_rnn_stream_reset(d->stream, d->h0, NULL)
                                : recur__error(RECUR_E_NOMEM, "out of memory: attention of %d "
                                               "steps", len + 1);
    if (d->feed)
        memset(d->feed, 0, (size_t)d->K * m->H * sizeof(float));
    for (int j = 0; status == RECUR_OK && j <= len; j++) {
        for (int k = 0; k < d->K; k++)
            tokens[k] = j == 0 ? RECUR_BPE_BOS : seq[j - 1];
        if ((status = decoding_step(m, d, tokens, 1)) == RECUR_OK)
            memcpy(rows + (size_t)j * n, d->att, n * sizeof(float));
    }
    recur__free(tokens);
    if (status) {
        recur__free(rows);
        return status;
    }
    *out = rows;
    return RECUR_OK;
}

/* A source sentence of n ids for model m; fn names the function in errors. */
static int check_source(const recur_seq2seq *m, const int32_t *src, int n, const char *fn)
{
    if (n < 1 || n > MAX_STEPS)
        return recur__error(RECUR_E_INVALID, "%s: source length %d outside 1..%d", fn, n,
                            MAX_STEPS);
    for (int i = 0; i < n; i++)
        if (src[i] < 0 || src[i] >= m->config.src_vocab_size)
            return recur__error(RECUR_E_INVALID, "%s: source id %d at position %d outside the "
                                "source vocabulary 0..%d", fn, (int)src[i], i,
                                m->config.src_vocab_size - 1);
    return RECUR_OK;
}

void recur_seq2seq_hypotheses_free(recur_seq2seq_hypothesis *hyps, int count)
{
    for (int h = 0; hyps && h < count; h++)
        recur__free(hyps[h].tokens);
    recur__free(hyps);
}

/* The checks and the search of recur_seq2seq_translate_nbest; fn names the
 * caller in errors. *hyps is a new array of nbest entries, *found of them set. */
static int translate_search(recur_seq2seq *const *models, int count, const int32_t *src, int n,
                            const recur_seq2seq_decode_config *config, int nbest,
                            const char *fn, recur_seq2seq_hypothesis **hyps, int *found,
                            float **attention)
{
    if (count < 1 || count > MAX_MEMBERS)
        return recur__error(RECUR_E_INVALID, "%s: %d models (1..%d)", fn, count, MAX_MEMBERS);
    for (int i = 0; i < count; i++) {
        if (!models[i])
            return recur__error(RECUR_E_INVALID, "%s: model %d is NULL", fn, i);
        const recur_seq2seq_config *a = &models[0]->config, *b = &models[i]->config;
        if (a->src_vocab_size != b->src_vocab_size || a->tgt_vocab_size != b->tgt_vocab_size)
            return recur__error(RECUR_E_INVALID, "%s: model %d's vocabularies (%d, %d) differ "
                                "from model 0's (%d, %d)", fn, i, b->src_vocab_size,
                                b->tgt_vocab_size, a->src_vocab_size, a->tgt_vocab_size);
    }
    recur_seq2seq *m = models[0];
    const recur_seq2seq_decode_config dc = config ? *config
                                                  : recur_seq2seq_decode_config_default();
    int status = check_source(m, src, n, fn);
    if (status)
        return status;
    if (dc.beam_width < 1 || dc.beam_width > RECUR_SEQ2SEQ_MAX_BEAM)
        return recur__error(RECUR_E_INVALID, "decode config: beam_width %d outside 1..%d",
                            dc.beam_width, RECUR_SEQ2SEQ_MAX_BEAM);
    if (!(dc.length_penalty >= 0.0f && dc.length_penalty <= MAX_LENGTH_PENALTY))
        return recur__error(RECUR_E_INVALID, "decode config: length_penalty %g outside [0, %g]",
                            (double)dc.length_penalty, (double)MAX_LENGTH_PENALTY);
    if (!(dc.coverage_penalty >= 0.0f && dc.coverage_penalty <= MAX_COVERAGE_PENALTY))
        return recur__error(RECUR_E_INVALID, "decode config: coverage_penalty %g outside [0, %g]",
                            (double)dc.coverage_penalty, (double)MAX_COVERAGE_PENALTY);
    if (dc.max_length < 0 || dc.max_length > RECUR_SEQ2SEQ_MAX_LENGTH)
        return recur__error(RECUR_E_INVALID, "decode config: max_length %d outside 0..%d",
                            dc.max_length, RECUR_SEQ2SEQ_MAX_LENGTH);
    if (nbest < 1 || nbest > dc.beam_width)
        return recur__error(RECUR_E_INVALID, "%s: nbest %d outside 1..%d (the beam width)", fn,
                            nbest, dc.beam_width);
    if (!(*hyps = recur__calloc((size_t)nbest, sizeof **hyps)))
        return recur__error(RECUR_E_NOMEM, "out of memory in beam search");
    decoding d[MAX_MEMBERS];
    memset(d, 0, sizeof d);
    const long fallback = 2L * n + 10;
    const int max_len = dc.max_length > 0 ? dc.max_length
                                          : (int)(fallback < RECUR_SEQ2SEQ_MAX_LENGTH ? fallback
                                                                              : RECUR_SEQ2SEQ_MAX_LENGTH);
    for (int i = 0; status == RECUR_OK && i < count; i++) {
        d[i].max_len = max_len;
        status = decoding_init(models[i], src, n, dc.beam_width, &d[i]);
    }
    if (status == RECUR_OK)
        status = beam_search(models, d, count, dc.length_penalty, dc.coverage_penalty, nbest,
                             *hyps, found);
    if (status == RECUR_OK && attention)
        status = attention_rows(m, &d[0], (*hyps)[0].tokens, (*hyps)[0].length, attention);
    for (int i = 0; i < count; i++)
        decoding_free(&d[i]);
    return status;
}

int recur_seq2seq_translate_nbest(recur_seq2seq *const *models, int count, const int32_t *src,
                                  int n, const recur_seq2seq_decode_config *config, int nbest,
                                  recur_seq2seq_hypothesis **out, int *out_count)
{
    if (out)
        *out = NULL;
    if (out_count)
        *out_count = 0;
    if (!models || !src || !out || !out_count)
        return recur__error(RECUR_E_INVALID, "recur_seq2seq_translate_nbest: NULL argument");
    recur_seq2seq_hypothesis *hyps = NULL;
    int found = 0;
    int status = translate_search(models, count, src, n, config, nbest,
                                  "recur_seq2seq_translate_nbest", &hyps, &found, NULL);
    if (status) {
        recur_seq2seq_hypotheses_free(hyps, found);
        return status;
    }
    *out = hyps;
    *out_count = found;
    return RECUR_OK;
}

int recur_seq2seq_translate_ensemble(recur_seq2seq *const *models, int count,
                                     const int32_t *src, int n,
                                     const recur_seq2seq_decode_config *config, int32_t **out,
                                     int *out_len, float **attention)
{
    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    if (attention)
        *attention = NULL;
    if (!models || !src || !out || !out_len)
        return recur__error(RECUR_E_INVALID, "recur_seq2seq_translate: NULL argument");
    recur_seq2seq_hypothesis *hyps = NULL;
    int found = 0;
    int status = translate_search(models, count, src, n, config, 1,
                                  count == 1 ? "recur_seq2seq_translate"
                                             : "recur_seq2seq_translate_ensemble",
                                  &hyps, &found, attention);
    if (status == RECUR_OK) {
        *out = hyps[0].tokens;
        *out_len = hyps[0].length;
        hyps[0].tokens = NULL;
    }
    recur_seq2seq_hypotheses_free(hyps, found);
    return status;
}

int recur_seq2seq_translate(recur_seq2seq *m, const int32_t *src, int n,
                            const recur_seq2seq_decode_config *config, int32_t **out,
                            int *out_len, float **attention)
{
    return recur_seq2seq_translate_ensemble(&m, 1, src, n, config, out, out_len, attention);
}

int recur_seq2seq_attention(recur_seq2seq *m, const int32_t *src, int n, const int32_t *tgt,
                            int len, float **attention)
{
    if (attention)
        *attention = NULL;
    if (!m || !src || (!tgt && len > 0) || !attention)
        return recur__error(RECUR_E_INVALID, "recur_seq2seq_attention: NULL argument");
    int status = check_source(m, src, n, "recur_seq2seq_attention");
    if (status)
        return status;
    if (len < 0 || len > RECUR_SEQ2SEQ_MAX_LENGTH)
        return recur__error(RECUR_E_INVALID, "recur_seq2seq_attention: target length %d outside "
                            "0..%d", len, RECUR_SEQ2SEQ_MAX_LENGTH);
    for (int i = 0; i < len; i++)
        if (tgt[i] < RECUR_BPE_FIRST_BYTE || tgt[i] >= m->config.tgt_vocab_size)
            return recur__error(RECUR_E_INVALID, "recur_seq2seq_attention: target id %d at "
                                "position %d outside %d..%d (no <pad>, <s> or </s>)",
                                (int)tgt[i], i, RECUR_BPE_FIRST_BYTE,
                                m->config.tgt_vocab_size - 1);
    decoding d;
    memset(&d, 0, sizeof d);
    status = decoding_init(m, src, n, 1, &d);
    if (status == RECUR_OK)
        status = attention_rows(m, &d, tgt, len, attention);
    decoding_free(&d);
    return status;
}

/* ---- checkpoints ------------------------------------------------------------------------ */

int recur_seq2seq_write(recur_seq2seq *m, recur_st_writer *w)
{
    if (!m || !w)
        return recur__error(RECUR_E_INVALID, "recur_seq2seq_write: NULL argument");
    const recur_seq2seq_config *c = &m->config;
    json_t *obj = json_object();
    /* untied models stay format 1, readable by older builds (which ignore word_dropout);
     * a tied one has no head.weight: format 2 tells an older build to update; the lexical
     * shortcut widens combine.weight: format 3; input feeding widens decoder.weight_ih_l0:
     * format 4; layer normalization adds the stacks' gains: format 5 */
    const int format = c->layer_norm      ? 5
                       : c->input_feeding ? 4
                       : c->lexical       ? 3
                       : c->tie_embeddings ? 2
                                           : 1;
    int ok = obj && recur__json_put(obj, "format", json_integer(format)) &&
             recur__json_put(obj, "cell", json_string(recur_cell_name(c->cell))) &&
             recur__json_put(obj, "src_vocab_size", json_integer(c->src_vocab_size)) &&
             recur__json_put(obj, "tgt_vocab_size", json_integer(c->tgt_vocab_size)) &&
             recur__json_put(obj, "embedding_size", json_integer(c->embedding_size)) &&
             recur__json_put(obj, "hidden_size", json_integer(c->hidden_size)) &&
             recur__json_put(obj, "encoder_layers", json_integer(c->encoder_layers)) &&
             recur__json_put(obj, "decoder_layers", json_integer(c->decoder_layers)) &&
             recur__json_put(obj, "bidirectional", json_boolean(c->bidirectional)) &&
             recur__json_put(obj, "attention", json_string(recur_attention_name(c->attention))) &&
             recur__json_put(obj, "dropout", recur__json_float(c->dropout)) &&
             recur__json_put(obj, "embedding_dropout", recur__json_float(c->embedding_dropout)) &&
             recur__json_put(obj, "word_dropout", recur__json_float(c->word_dropout)) &&
             recur__json_put(obj, "tie_embeddings", json_boolean(c->tie_embeddings)) &&
             (!c->lexical || recur__json_put(obj, "lexical", json_true())) &&
             (!c->input_feeding || recur__json_put(obj, "input_feeding", json_true())) &&
             (!c->layer_norm || recur__json_put(obj, "layer_norm", json_true())) &&
             (c->hidden_dropout <= 0.0f ||
              recur__json_put(obj, "hidden_dropout", recur__json_float(c->hidden_dropout)));
    char *text = ok ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text)
        return recur__error(RECUR_E_NOMEM, "out of memory writing the seq2seq description");
    int status = recur_st_writer_metadata(w, "recur_seq2seq", text);
    free(text);
    for (int i = 0; status == RECUR_OK && i < m->tensor_count; i++) {
        const recur_param_view *v = &m->views[i];
        status = recur_st_writer_add(w, v->name, RECUR_DTYPE_F32, v->ndim, v->shape,
                                     m->params + v->offset);
    }
    return status;
}

typedef struct reader {
    const char *name;
} reader;

static int bad(const reader *r, const char *fmt, ...) RECUR_PRINTF(2, 3);
static int bad(const reader *r, const char *fmt, ...)
{
    char message[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return recur__error(RECUR_E_FORMAT, "%s: %s", r->name, message);
}

static int get_int(const reader *r, json_t *obj, const char *key, int lo, int hi, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return bad(r, "\"recur_seq2seq\": missing field \"%s\"", key);
    if (!json_is_integer(v))
        return bad(r, "\"recur_seq2seq\": field \"%s\" is not an integer", key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return bad(r, "\"recur_seq2seq\": field \"%s\" = %lld outside %d..%d", key, (long long)x,
                   lo, hi);
    *out = (int)x;
    return RECUR_OK;
}

static int get_rate(const reader *r, json_t *obj, const char *key, float *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return bad(r, "\"recur_seq2seq\": missing field \"%s\"", key);
    if (!json_is_number(v))
        return bad(r, "\"recur_seq2seq\": field \"%s\" is not a number", key);
    const double x = json_number_value(v);
    if (!(x >= 0.0 && x < 1.0))
        return bad(r, "\"recur_seq2seq\": field \"%s\" = %g outside [0, 1)", key, x);
    *out = (float)x;
    return RECUR_OK;
}

static int get_string(const reader *r, json_t *obj, const char *key, const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return bad(r, "\"recur_seq2seq\": missing field \"%s\"", key);
    if (!json_is_string(v))
        return bad(r, "\"recur_seq2seq\": field \"%s\" is not a string", key);
    *out = json_string_value(v);
    return RECUR_OK;
}

static int read_config(const reader *r, json_t *meta, recur_seq2seq_config *c)
{
    const char *cell = NULL, *attention = NULL;
    int status;
    *c = recur_seq2seq_config_default();
    if ((status = get_string(r, meta, "cell", &cell)))
        return status;
    if (recur_cell_parse(cell, &c->cell) != RECUR_OK)
        return bad(r, "\"recur_seq2seq\": field \"cell\": unknown value '%s'", cell);
    if ((status = get_string(r, meta, "attention", &attention)))
        return status;
    if (recur_attention_parse(attention, &c->attention) != RECUR_OK)
        return bad(r, "\"recur_seq2seq\": field \"attention\": unknown value '%s'", attention);
    if ((status = get_int(r, meta, "src_vocab_size", 3, MAX_VOCAB, &c->src_vocab_size)) ||
        (status = get_int(r, meta, "tgt_vocab_size", 3, MAX_VOCAB, &c->tgt_vocab_size)) ||
        (status = get_int(r, meta, "embedding_size", 1, MAX_DIM, &c->embedding_size)) ||
        (status = get_int(r, meta, "hidden_size", 1, MAX_DIM, &c->hidden_size)) ||
        (status = get_int(r, meta, "encoder_layers", 1, 64, &c->encoder_layers)) ||
        (status = get_int(r, meta, "decoder_layers", 1, 64, &c->decoder_layers)) ||
        (status = get_rate(r, meta, "dropout", &c->dropout)) ||
        (status = get_rate(r, meta, "embedding_dropout", &c->embedding_dropout)) ||
        (json_object_get(meta, "word_dropout") &&
         (status = get_rate(r, meta, "word_dropout", &c->word_dropout))) ||
        (json_object_get(meta, "hidden_dropout") &&
         (status = get_rate(r, meta, "hidden_dropout", &c->hidden_dropout))))
        return status;
    json_t *bi = json_object_get(meta, "bidirectional");
    if (!bi || !json_is_boolean(bi))
        return bad(r, "\"recur_seq2seq\": field \"bidirectional\" missing or not true/false");
    c->bidirectional = json_is_true(bi);
    json_t *tie = json_object_get(meta, "tie_embeddings");
    if (tie && !json_is_boolean(tie))
        return bad(r, "\"recur_seq2seq\": field \"tie_embeddings\" is not true/false");
    c->tie_embeddings = tie && json_is_true(tie);
    json_t *lexical = json_object_get(meta, "lexical");
    if (lexical && !json_is_boolean(lexical))
        return bad(r, "\"recur_seq2seq\": field \"lexical\" is not true/false");
    c->lexical = lexical && json_is_true(lexical);
    json_t *feeding = json_object_get(meta, "input_feeding");
    if (feeding && !json_is_boolean(feeding))
        return bad(r, "\"recur_seq2seq\": field \"input_feeding\" is not true/false");
    c->input_feeding = feeding && json_is_true(feeding);
    json_t *layer_norm = json_object_get(meta, "layer_norm");
    if (layer_norm && !json_is_boolean(layer_norm))
        return bad(r, "\"recur_seq2seq\": field \"layer_norm\" is not true/false");
    c->layer_norm = layer_norm && json_is_true(layer_norm);
    if (recur_seq2seq_config_check(c) != RECUR_OK) {
        char message[600];
        snprintf(message, sizeof message, "%s", recur_last_error());
        return bad(r, "\"recur_seq2seq\": %s", message);
    }
    return RECUR_OK;
}

int recur_seq2seq_read(const recur_st *st, const char *name, recur_seq2seq **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_seq2seq_read: out is NULL");
    *out = NULL;
    if (!st)
        return recur__error(RECUR_E_INVALID, "recur_seq2seq_read: st is NULL");
    reader r = {name ? name : "seq2seq checkpoint"};
    const char *text = recur_st_metadata(st, "recur_seq2seq");
    if (!text)
        return bad(&r, "no \"recur_seq2seq\" metadata: not a seq2seq model");
    json_error_t jerr;
    json_t *meta = json_loads(text, 0, &jerr);
    if (!meta || !json_is_object(meta)) {
        json_decref(meta);
        return meta ? bad(&r, "\"recur_seq2seq\" is not a JSON object")
                    : bad(&r, "\"recur_seq2seq\" is not JSON (%s)", jerr.text);
    }
    int status = RECUR_OK;
    recur_seq2seq_config c;
    recur_seq2seq *m = NULL;
    json_t *fmt = json_object_get(meta, "format");
    if (!fmt || !json_is_integer(fmt) || json_integer_value(fmt) < 1) {
        status = bad(&r, "\"recur_seq2seq\": \"format\" missing or not a positive integer");
        goto done;
    }
    if (json_integer_value(fmt) > RECUR_SEQ2SEQ_FORMAT) {
        status = recur__error(RECUR_E_UNSUPPORTED, "%s: seq2seq model format %lld is newer than "
                              "this build reads (%d); update recur", r.name,
                              (long long)json_integer_value(fmt), RECUR_SEQ2SEQ_FORMAT);
        goto done;
    }
    if ((status = read_config(&r, meta, &c)) || (status = recur_seq2seq_create(&c, &m)))
        goto done;
    for (int i = 0; i < recur_st_count(st); i++) {
        const char *tname = recur_st_at(st, i)->name;
        if (strncmp(tname, "optimizer.", 10) == 0 || strncmp(tname, "state.", 6) == 0 ||
            recur_seq2seq_tensor_find(m, tname))
            continue;
        status = bad(&r, "unexpected tensor \"%s\": not part of this %s seq2seq model", tname,
                     recur_cell_name(c.cell));
        goto done;
    }
    for (int i = 0; i < m->tensor_count; i++) {
        const recur_param_view *v = &m->views[i];
        if (!recur_st_find(st, v->name)) {
            status = bad(&r, "missing tensor \"%s\"", v->name);
            goto done;
        }
        if (recur_st_read_f32_shape(st, v->name, v->ndim, v->shape, m->params + v->offset)) {
            char message[600];
            snprintf(message, sizeof message, "%s", recur_last_error());
            status = bad(&r, "tensor \"%s\": %s", v->name, message);
            goto done;
        }
        for (size_t j = 0; j < v->numel; j++)
            if (!isfinite(m->params[v->offset + j])) {
                status = bad(&r, "tensor \"%s\" holds a non-finite value at %zu", v->name, j);
                goto done;
            }
    }
done:
    json_decref(meta);
    if (status) {
        recur_seq2seq_free(m);
        return status;
    }
    *out = m;
    return RECUR_OK;
}
