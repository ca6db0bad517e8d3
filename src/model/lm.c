/* lm.c - the token language model: embedding -> recurrent stack -> linear
 * head -> softmax cross-entropy, with truncated BPTT over chunks and
 * streaming generation.
 *   e = E[tokens[0..T-1]]       [T*B, E]   (times a dropout mask in training)
 *   y, hn = rnn(e, h)           [T*B, H]   (times a dropout mask in training;
 *                                          W_hh times a DropConnect mask, Wan et al. 2013)
 *   z = y W_head^T + b_head     [T*B, V]
 *   loss = mean_t,b -log softmax(z)[tokens[t+1]]
 * All parameters live in one flat array (state_dict order), so the
 * optimizer, clipping and checkpoints see a single array. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "nn/rnn_internal.h"
#include "recur/lm.h"
#include "recur/nn.h"

struct recur_lm {
    recur_lm_config config;
    recur_rnn *rnn;
    float *params, *grads; /* [size] */
    size_t size;
    int tensor_count;
    recur_param_view *views;
    float *embedding, *head_weight, *head_bias;    /* views into params */
    float *d_embedding, *d_head_weight, *d_head_bias;
    /* workspace for one chunk of rows = T*B */
    size_t capacity_rows;
    float *emb;     /* [rows, E] the stack's input, in its workspace (not owned) */
    float *y;       /* [rows, H] the stack's output, in its workspace (not owned) */
    float *logits;  /* [rows, V], reused as dlogits */
    float *emask;   /* [rows, E] embedding dropout mask, or NULL */
    float *ymask;   /* [rows, H] output dropout mask, or NULL */
    int32_t *targets; /* [rows] */
    /* weight dropout (DropConnect on every layer's W_hh), or NULL */
    size_t hh_count;  /* floats in all W_hh together: L * G*H * H */
    float *hh_mask, *hh_saved, *hh_grad_saved; /* [hh_count] */
    float *hn, *cn; /* [L, B, H] */
    /* gradient-ready notifications (recur_lm_set_grad_hook) */
    recur_lm_grad_hook grad_hook;
    void *grad_hook_user;
    size_t grad_from;   /* grads[grad_from..size) are final in this backward */
    bool hh_dropped;    /* inside a weight-dropout step: W_hh masked */
    int hh_restored_from; /* layers >= this already restored (L: none) */
};

recur_lm_config recur_lm_config_default(void)
{
    return (recur_lm_config){RECUR_CELL_LSTM, 0, 64, 256, 2, 0.0f, 0.0f, 0.0f, 0.0f};
}

static int check_config(const recur_lm_config *c)
{
    if (!c)
        return recur__error(RECUR_E_INVALID, "lm config is NULL");
    if (c->vocab_size < 1 || c->vocab_size > (1 << 24))
        return recur__error(RECUR_E_INVALID, "lm config: vocab_size %d outside 1..%d", c->vocab_size,
                            1 << 24);
    if (c->embedding_size < 1 || c->embedding_size > 65536)
        return recur__error(RECUR_E_INVALID, "lm config: embedding_size %d outside 1..65536",
                            c->embedding_size);
    if (!(c->embedding_dropout >= 0.0f && c->embedding_dropout < 1.0f) ||
        !(c->output_dropout >= 0.0f && c->output_dropout < 1.0f) ||
        !(c->weight_dropout >= 0.0f && c->weight_dropout < 1.0f))
        return recur__error(RECUR_E_INVALID, "lm config: embedding_dropout %g, output_dropout %g "
                            "and weight_dropout %g must lie in [0, 1)",
                            (double)c->embedding_dropout, (double)c->output_dropout,
                            (double)c->weight_dropout);
    return RECUR_OK;
}

static recur_rnn_config rnn_config_of(const recur_lm_config *c)
{
    recur_rnn_config r = recur_rnn_config_default();
    r.cell = c->cell;
    r.input_size = c->embedding_size;
    r.hidden_size = c->hidden_size;
    r.num_layers = c->num_layers;
    r.dropout = c->dropout;
    return r;
}

int recur_lm_create(const recur_lm_config *config, recur_lm **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_lm_create: out is NULL");
    *out = NULL;
    int status = check_config(config);
    if (status)
        return status;
    recur_rnn_config rc = rnn_config_of(config);
    if ((status = recur_rnn_config_check(&rc)))
        return status;
    const size_t V = (size_t)config->vocab_size, E = (size_t)config->embedding_size;
    const size_t H = (size_t)config->hidden_size, rnn_size = recur_rnn_param_size(&rc);
    recur_lm *lm = recur__calloc(1, sizeof *lm);
    if (!lm)
        return recur__error(RECUR_E_NOMEM, "out of memory creating lm");
    lm->config = *config;
    lm->size = V * E + rnn_size + V * H + V;
    lm->params = recur__calloc(lm->size, sizeof(float));
    lm->grads = recur__calloc(lm->size, sizeof(float));
    if (!lm->params || !lm->grads) {
        recur_lm_free(lm);
        return recur__error(RECUR_E_NOMEM, "out of memory: lm of %zu parameters", lm->size);
    }
    lm->embedding = lm->params;
    lm->d_embedding = lm->grads;
    status = recur_rnn_create(&rc, lm->params + V * E, lm->grads + V * E, &lm->rnn);
    if (status) {
        recur_lm_free(lm);
        return status;
    }
    size_t head = V * E + rnn_size;
    lm->head_weight = lm->params + head;
    lm->d_head_weight = lm->grads + head;
    lm->head_bias = lm->params + head + V * H;
    lm->d_head_bias = lm->grads + head + V * H;

    int nr = recur_rnn_tensor_count(lm->rnn);
    lm->tensor_count = nr + 3;
    lm->views = recur__calloc((size_t)lm->tensor_count, sizeof *lm->views);
    if (!lm->views) {
        recur_lm_free(lm);
        return recur__error(RECUR_E_NOMEM, "out of memory creating lm");
    }
    lm->views[0] = (recur_param_view){"embedding.weight", 2, {(int64_t)V, (int64_t)E}, 0, V * E};
    for (int i = 0; i < nr; i++) {
        recur_param_view v = *recur_rnn_tensor_at(lm->rnn, i);
        snprintf(lm->views[i + 1].name, sizeof v.name, "rnn.%.40s", v.name);
        lm->views[i + 1].ndim = v.ndim;
        lm->views[i + 1].shape[0] = v.shape[0];
        lm->views[i + 1].shape[1] = v.shape[1];
        lm->views[i + 1].offset = v.offset + V * E;
        lm->views[i + 1].numel = v.numel;
    }
    lm->views[nr + 1] = (recur_param_view){"head.weight", 2, {(int64_t)V, (int64_t)H}, head, V * H};
    lm->views[nr + 2] = (recur_param_view){"head.bias", 1, {(int64_t)V, 0}, head + V * H, V};
    if (config->weight_dropout > 0.0f) {
        lm->hh_count = (size_t)config->num_layers * (size_t)recur_cell_gates(config->cell) * H * H;
        lm->hh_mask = recur__calloc(lm->hh_count, sizeof(float));
        lm->hh_saved = recur__calloc(lm->hh_count, sizeof(float));
        lm->hh_grad_saved = recur__calloc(lm->hh_count, sizeof(float));
        if (!lm->hh_mask || !lm->hh_saved || !lm->hh_grad_saved) {
            recur_lm_free(lm);
            return recur__error(RECUR_E_NOMEM, "out of memory: weight dropout masks");
        }
    }
    *out = lm;
    return RECUR_OK;
}

static void free_workspace(recur_lm *lm)
{
    recur__free(lm->logits);
    recur__free(lm->emask);
    recur__free(lm->ymask);
    recur__free(lm->targets);
    recur__free(lm->hn);
    recur__free(lm->cn);
    lm->emb = lm->y = lm->logits = lm->hn = lm->cn = NULL;
    lm->emask = lm->ymask = NULL;
    lm->targets = NULL;
    lm->capacity_rows = 0;
}

void recur_lm_free(recur_lm *lm)
{
    if (!lm)
        return;
    recur_rnn_free(lm->rnn);
    free_workspace(lm);
    recur__free(lm->views);
    recur__free(lm->params);
    recur__free(lm->grads);
    recur__free(lm->hh_mask);
    recur__free(lm->hh_saved);
    recur__free(lm->hh_grad_saved);
    recur__free(lm);
}

const recur_lm_config *recur_lm_get_config(const recur_lm *lm) { return &lm->config; }
float *recur_lm_params(recur_lm *lm) { return lm->params; }
float *recur_lm_grads(recur_lm *lm) { return lm->grads; }
size_t recur_lm_size(const recur_lm *lm) { return lm->size; }
recur_rnn *recur_lm_rnn(recur_lm *lm) { return lm->rnn; }
int recur_lm_tensor_count(const recur_lm *lm) { return lm->tensor_count; }

void recur_lm_zero_grad(recur_lm *lm) { memset(lm->grads, 0, lm->size * sizeof(float)); }

const recur_param_view *recur_lm_tensor_at(const recur_lm *lm, int index)
{
    return index >= 0 && index < lm->tensor_count ? &lm->views[index] : NULL;
}

const recur_param_view *recur_lm_tensor_find(const recur_lm *lm, const char *name)
{
    for (int i = 0; i < lm->tensor_count; i++)
        if (strcmp(lm->views[i].name, name) == 0)
            return &lm->views[i];
    return NULL;
}

size_t recur_lm_state_size(const recur_lm *lm, int B)
{
    return (size_t)lm->config.num_layers * (size_t)B * (size_t)lm->config.hidden_size;
}

void recur_lm_init(recur_lm *lm, recur_rng *rng)
{
    const size_t V = (size_t)lm->config.vocab_size, E = (size_t)lm->config.embedding_size;
    const size_t H = (size_t)lm->config.hidden_size;
    for (size_t i = 0; i < V * E; i++)
        lm->embedding[i] = (float)recur_rng_normal(rng);
    recur_rnn_init(lm->rnn, rng);
    float k = 1.0f / sqrtf((float)H);
    for (size_t i = 0; i < V * H + V; i++)
        lm->head_weight[i] = (2.0f * recur_rng_uniform(rng) - 1.0f) * k;
}

static int reserve(recur_lm *lm, int T, int B)
{
    size_t rows = (size_t)T * (size_t)B;
    if (rows <= lm->capacity_rows && lm->hn)
        return RECUR_OK;
    free_workspace(lm);
    const size_t V = (size_t)lm->config.vocab_size, E = (size_t)lm->config.embedding_size;
    const size_t H = (size_t)lm->config.hidden_size;
    lm->logits = recur__calloc(rows, V * sizeof(float));
    lm->targets = recur__calloc(rows, sizeof(int32_t));
    lm->hn = recur__calloc(recur_lm_state_size(lm, B), sizeof(float));
    lm->cn = recur__calloc(recur_lm_state_size(lm, B), sizeof(float));
    if (lm->config.embedding_dropout > 0.0f)
        lm->emask = recur__calloc(rows, E * sizeof(float));
    if (lm->config.output_dropout > 0.0f)
        lm->ymask = recur__calloc(rows, H * sizeof(float));
    if (!lm->logits || !lm->targets || !lm->hn ||
        !lm->cn || (lm->config.embedding_dropout > 0.0f && !lm->emask) ||
        (lm->config.output_dropout > 0.0f && !lm->ymask)) {
        free_workspace(lm);
        return recur__error(RECUR_E_NOMEM, "out of memory: lm workspace for T=%d B=%d", T, B);
    }
    lm->capacity_rows = rows;
    return recur_rnn_reserve(lm->rnn, T, B);
}

/* Forward through the head; leaves logits in lm->logits and the new state in
 * h/c. Returns the status of the cross-entropy. */
static int lm_forward(recur_lm *lm, recur_mode mode, const int32_t *tokens, int T, int B, float *h,
                      float *c, recur_rng *rng, double *loss)
{
    if (!lm || !tokens || !loss)
        return recur__error(RECUR_E_INVALID, "lm: NULL argument");
    if (T < 1 || B < 1)
        return recur__error(RECUR_E_INVALID, "lm: T (%d) and B (%d) must be positive", T, B);
    int status = reserve(lm, T, B);
    if (status)
        return status;
    const int V = lm->config.vocab_size, E = lm->config.embedding_size;
    const int H = lm->config.hidden_size;
    const size_t rows = (size_t)T * B, state = recur_lm_state_size(lm, B);
    for (size_t i = 0; i < rows + (size_t)B; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return recur__error(RECUR_E_INVALID,
                                "token id %d at step %zu of sequence %zu outside the vocabulary (0..%d)",
                                (int)tokens[i], i / B, i % B, V - 1);
    /* the embedded tokens go straight where the stack reads its input */
    if ((status = recur__rnn_input(lm->rnn, mode, T, B, &lm->emb)))
        return status;
    recur_embedding_forward(lm->embedding, V, E, tokens, rows, lm->emb);
    const bool train = mode == RECUR_MODE_TRAIN;
    const recur_lm_config *cfg = &lm->config;
    if (train && (cfg->embedding_dropout > 0.0f || cfg->output_dropout > 0.0f) && !rng)
        return recur__error(RECUR_E_INVALID, "lm: dropout in training needs an rng");
    if (train && cfg->embedding_dropout > 0.0f)
        recur_dropout_forward(lm->emb, rows * E, cfg->embedding_dropout, rng, lm->emask, lm->emb);
    bool lstm = lm->config.cell == RECUR_CELL_LSTM;
    recur_rnn_input in = {T, B, lm->emb, 0, NULL, h, lstm ? c : NULL};
    /* the output stays in the stack's workspace (no copy of the sequence) */
    recur_rnn_output out = {NULL, lm->hn, lstm ? lm->cn : NULL};
    if ((status = recur_rnn_forward(lm->rnn, mode, &in, &out, rng)))
        return status;
    lm->y = recur__rnn_output(lm->rnn);
    if (h)
        memcpy(h, lm->hn, state * sizeof(float));
    if (c && lstm)
        memcpy(c, lm->cn, state * sizeof(float));
    if (train && cfg->output_dropout > 0.0f)
        recur_dropout_forward(lm->y, rows * H, cfg->output_dropout, rng, lm->ymask, lm->y);
    recur_linear_forward(lm->head_weight, lm->head_bias, V, H, lm->y, rows, lm->logits);
    memcpy(lm->targets, tokens + B, rows * sizeof(int32_t));
    return recur_softmax_xent(lm->logits, rows, V, lm->targets, 1.0f,
                              train ? lm->logits : NULL, loss, NULL);
}

int recur_lm_evaluate(recur_lm *lm, const int32_t *tokens, int T, int B, float *h, float *c,
                      double *loss)
{
    return lm_forward(lm, RECUR_MODE_INFER, tokens, T, B, h, c, NULL, loss);
}

int recur_lm_evaluate_logits(recur_lm *lm, const int32_t *tokens, int T, int B, float *h,
                             float *c, double *loss, const float **logits)
{
    if (!logits)
        return recur__error(RECUR_E_INVALID, "recur_lm_evaluate_logits: NULL argument");
    *logits = NULL;
    int status = lm_forward(lm, RECUR_MODE_INFER, tokens, T, B, h, c, NULL, loss);
    if (!status)
        *logits = lm->logits;
    return status;
}

int recur_log_mixture(const float *const *logits, int K, size_t rows, int V, float *out)
{
    if (!logits || !out || K < 1 || V < 1)
        return recur__error(RECUR_E_INVALID, "recur_log_mixture: NULL argument or K (%d), V "
                            "(%d) below 1", K, V);
    for (int k = 0; k < K; k++)
        if (!logits[k])
            return recur__error(RECUR_E_INVALID, "recur_log_mixture: logits[%d] is NULL", k);
    /* log p(v) = log sum_k exp(l_k(v) - lse_k) - log K, with lse_k = log sum_v exp(l_k(v));
     * each term is shifted by the row's largest l_k(v) - lse_k so that nothing overflows */
    double lse_stack[16], *lse = K <= 16 ? lse_stack : recur__malloc((size_t)K * sizeof *lse);
    if (!lse)
        return recur__error(RECUR_E_NOMEM, "recur_log_mixture: out of memory");
    const double log_k = log((double)K);
    for (size_t r = 0; r < rows; r++) {
        for (int k = 0; k < K; k++) {
            const float *l = logits[k] + r * (size_t)V;
            double m = l[0], z = 0.0;
            for (int v = 1; v < V; v++)
                m = l[v] > m ? l[v] : m;
            for (int v = 0; v < V; v++)
                z += exp((double)l[v] - m);
            lse[k] = m + log(z);
            if (!isfinite(lse[k])) {
                if (lse != lse_stack)
                    recur__free(lse);
                return recur__error(RECUR_E_NUMERIC, "recur_log_mixture: the scores of model "
                                    "%d in row %zu are not finite", k, r);
            }
        }
        for (int v = 0; v < V; v++) {
            double m = -INFINITY, z = 0.0;
            for (int k = 0; k < K; k++) {
                const double a = (double)logits[k][r * (size_t)V + (size_t)v] - lse[k];
                m = a > m ? a : m;
            }
            for (int k = 0; k < K; k++)
                z += exp((double)logits[k][r * (size_t)V + (size_t)v] - lse[k] - m);
            out[r * (size_t)V + (size_t)v] = (float)(m + log(z) - log_k);
        }
    }
    if (lse != lse_stack)
        recur__free(lse);
    return RECUR_OK;
}

/* The W_hh of layer l inside the flat parameter (or gradient) array. */
static float *hh_weights(recur_lm *lm, float *base, int l)
{
    char name[32];
    snprintf(name, sizeof name, "rnn.weight_hh_l%d", l);
    return base + recur_lm_tensor_find(lm, name)->offset;
}

/* Weight dropout, before the forward: draws the masks (one per element of
 * every W_hh, shared by all steps and sequences of the chunk: Wan et al.
 * 2013, as AWD-LSTM applies it), keeps the weights and their gradient so
 * far, multiplies the weights by the masks and zeroes their gradient. */
static void hh_drop(recur_lm *lm, recur_rng *rng)
{
    const size_t per_layer = lm->hh_count / (size_t)lm->config.num_layers;
    for (int l = 0; l < lm->config.num_layers; l++) {
        float *w = hh_weights(lm, lm->params, l), *g = hh_weights(lm, lm->grads, l);
        const size_t at = (size_t)l * per_layer;
        memcpy(lm->hh_saved + at, w, per_layer * sizeof(float));
        memcpy(lm->hh_grad_saved + at, g, per_layer * sizeof(float));
        memset(g, 0, per_layer * sizeof(float));
        recur_dropout_forward(w, per_layer, lm->config.weight_dropout, rng, lm->hh_mask + at, w);
    }
}

/* After layer l's backward (or a failure): its weights back, and their
 * gradient = the gradient so far + (gradient of the masked weights) * mask
 * when `add` (else the gradient so far alone). */
static void hh_restore_layer(recur_lm *lm, int l, bool add)
{
    const size_t per_layer = lm->hh_count / (size_t)lm->config.num_layers;
    float *w = hh_weights(lm, lm->params, l), *g = hh_weights(lm, lm->grads, l);
    const size_t at = (size_t)l * per_layer;
    memcpy(w, lm->hh_saved + at, per_layer * sizeof(float));
    for (size_t i = 0; i < per_layer; i++)
        g[i] = lm->hh_grad_saved[at + i] + (add ? g[i] * lm->hh_mask[at + i] : 0.0f);
}

/* Tells the hook that grads[from..size) are final (from == grad_from:
 * nothing new, a progress call). */
static void report(recur_lm *lm, size_t from)
{
    lm->grad_from = from;
    if (lm->grad_hook)
        lm->grad_hook(lm->grad_hook_user, from);
}

/* The recurrent stack's notifications: layer l done (its W_hh gradient
 * is completed first under weight dropout), or -1 for progress. */
static void on_rnn_grads(void *user, int layer)
{
    recur_lm *lm = user;
    if (layer < 0) {
        report(lm, lm->grad_from);
        return;
    }
    if (lm->hh_dropped) {
        hh_restore_layer(lm, layer, true);
        lm->hh_restored_from = layer;
    }
    char name[32];
    snprintf(name, sizeof name, "rnn.weight_ih_l%d", layer);
    report(lm, recur_lm_tensor_find(lm, name)->offset);
}

void recur_lm_set_grad_hook(recur_lm *lm, recur_lm_grad_hook hook, void *user)
{
    if (!lm)
        return;
    lm->grad_hook = hook;
    lm->grad_hook_user = hook ? user : NULL;
    recur_rnn_set_grad_hook(lm->rnn, hook ? on_rnn_grads : NULL, lm);
}

static int train_step(recur_lm *lm, const int32_t *tokens, int T, int B, float *h, float *c,
                      recur_rng *rng, double *loss);

int recur_lm_train_step(recur_lm *lm, const int32_t *tokens, int T, int B, float *h, float *c,
                        recur_rng *rng, double *loss)
{
    if (!lm || lm->config.weight_dropout <= 0.0f)
        return train_step(lm, tokens, T, B, h, c, rng, loss);
    if (!rng)
        return recur__error(RECUR_E_INVALID, "lm: dropout in training needs an rng");
    hh_drop(lm, rng);
    lm->hh_dropped = true;
    lm->hh_restored_from = lm->config.num_layers;
    int status = train_step(lm, tokens, T, B, h, c, rng, loss);
    /* the layers the hook has not completed yet */
    for (int l = 0; l < lm->hh_restored_from; l++)
        hh_restore_layer(lm, l, status == RECUR_OK);
    lm->hh_dropped = false;
    return status;
}

/* One chunk's forward and backward with the weights as they are. */
static int train_step(recur_lm *lm, const int32_t *tokens, int T, int B, float *h, float *c,
                      recur_rng *rng, double *loss)
{
    lm->grad_from = lm->size;
    int status = lm_forward(lm, RECUR_MODE_TRAIN, tokens, T, B, h, c, rng, loss);
    if (status)
        return status;
    const int V = lm->config.vocab_size, E = lm->config.embedding_size;
    const int H = lm->config.hidden_size;
    const size_t rows = (size_t)T * B;
    /* lm->logits now holds dloss/dlogits */
    /* dL/dy overwrites y (the stack's output buffer) once dW is formed; the
     * stack then finds its output gradient in place */
    float *dy = lm->y;
    recur_linear_backward(lm->head_weight, V, H, lm->y, rows, lm->logits, lm->d_head_weight,
                          lm->d_head_bias, dy);
    report(lm, (size_t)(lm->head_weight - lm->params));
    if (lm->config.output_dropout > 0.0f)
        for (size_t i = 0; i < rows * H; i++)
            dy[i] *= lm->ymask[i];
    recur_rnn_grad_in gin = {dy, NULL, NULL}; /* the carried state is detached */
    recur_rnn_grad_out gout = {NULL, NULL, NULL}; /* dL/demb stays in the stack */
    if ((status = recur_rnn_backward(lm->rnn, &gin, &gout)))
        return status;
    float *demb = recur__rnn_input_grad(lm->rnn);
    if (lm->config.embedding_dropout > 0.0f)
        for (size_t i = 0; i < rows * E; i++)
            demb[i] *= lm->emask[i];
    recur_embedding_backward(lm->d_embedding, E, tokens, rows, demb);
    report(lm, 0);
    return RECUR_OK;
}

/* ---- generation ---------------------------------------------------------- */
struct recur_lm_sampler {
    recur_lm *lm;
    int B;
    recur_rnn_stream *stream;
    float *emb; /* [B, E] */
    float *y;   /* [B, H] */
};

int recur_lm_sampler_create(recur_lm *lm, int B, recur_lm_sampler **out)
{
    return recur_lm_sampler_create_with(lm, B, RECUR_PRECISION_F32, out);
}

int recur_lm_sampler_create_with(recur_lm *lm, int B, recur_precision precision,
                                 recur_lm_sampler **out)
{
    if (!out || !lm)
        return recur__error(RECUR_E_INVALID, "recur_lm_sampler_create: NULL argument");
    *out = NULL;
    recur_lm_sampler *s = recur__calloc(1, sizeof *s);
    if (!s)
        return recur__error(RECUR_E_NOMEM, "out of memory creating sampler");
    s->lm = lm;
    s->B = B;
    int status = recur_rnn_stream_create_with(lm->rnn, B, precision, &s->stream);
    if (status) {
        recur__free(s);
        return status;
    }
    s->emb = recur__calloc((size_t)B * lm->config.embedding_size, sizeof(float));
    s->y = recur__calloc((size_t)B * lm->config.hidden_size, sizeof(float));
    if (!s->emb || !s->y) {
        recur_lm_sampler_free(s);
        return recur__error(RECUR_E_NOMEM, "out of memory creating sampler");
    }
    *out = s;
    return RECUR_OK;
}

void recur_lm_sampler_free(recur_lm_sampler *s)
{
    if (!s)
        return;
    recur_rnn_stream_free(s->stream);
    recur__free(s->emb);
    recur__free(s->y);
    recur__free(s);
}

int recur_lm_sampler_reset(recur_lm_sampler *s)
{
    return recur_rnn_stream_reset(s->stream, NULL, NULL);
}

int recur_lm_sampler_step(recur_lm_sampler *s, const int32_t *tokens, float *logits)
{
    recur_lm *lm = s->lm;
    int status = recur_embedding_forward(lm->embedding, lm->config.vocab_size,
                                         lm->config.embedding_size, tokens, (size_t)s->B, s->emb);
    if (status)
        return status;
    if ((status = recur_rnn_stream_step(s->stream, s->emb, s->y)))
        return status;
    if (logits)
        recur_linear_forward(lm->head_weight, lm->head_bias, lm->config.vocab_size,
                             lm->config.hidden_size, s->y, (size_t)s->B, logits);
    return RECUR_OK;
}

typedef struct ranked {
    double p;
    int id;
} ranked;

static int by_probability(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? 1 : -1;
    return x->id - y->id; /* ties broken by id: deterministic */
}

int recur_sample_logits(const float *logits, int V, float temperature, int top_k, float top_p,
                        recur_rng *rng, int32_t *token)
{
    if (!logits || !rng || !token || V < 1)
        return recur__error(RECUR_E_INVALID, "recur_sample_logits: bad argument");
    if (!(temperature > 0.0f))
        return recur__error(RECUR_E_INVALID, "temperature %g must be > 0", (double)temperature);
    if (top_k < 0)
        return recur__error(RECUR_E_INVALID, "top-k %d must be >= 0", top_k);
    if (!(top_p > 0.0f && top_p <= 1.0f))
        return recur__error(RECUR_E_INVALID, "top-p %g must be in (0, 1]", (double)top_p);
    ranked *r = recur__malloc((size_t)V * sizeof *r);
    if (!r)
        return recur__error(RECUR_E_NOMEM, "out of memory sampling");
    double max = logits[0];
    for (int v = 1; v < V; v++)
        max = logits[v] > max ? logits[v] : max;
    if (!isfinite(max)) {
        recur__free(r);
        return recur__error(RECUR_E_NUMERIC, "logits are not finite");
    }
    for (int v = 0; v < V; v++)
        r[v] = (ranked){exp(((double)logits[v] - max) / temperature), v};
    qsort(r, (size_t)V, sizeof *r, by_probability);
    int keep = top_k > 0 && top_k < V ? top_k : V;
    double total = 0.0;
    for (int v = 0; v < keep; v++)
        total += r[v].p;
    if (top_p < 1.0f) {
        double cumulative = 0.0;
        for (int v = 0; v < keep; v++) {
            cumulative += r[v].p / total;
            if (cumulative >= top_p) {
                keep = v + 1;
                break;
            }
        }
        total = 0.0;
        for (int v = 0; v < keep; v++)
            total += r[v].p;
    }
    double u = recur_rng_uniform_double(rng) * total;
    int chosen = r[keep - 1].id;
    for (int v = 0; v < keep; v++) {
        u -= r[v].p;
        if (u < 0.0) {
            chosen = r[v].id;
            break;
        }
    }
    recur__free(r);
    *token = chosen;
    return RECUR_OK;
}
