/* rnn.c - recurrent stacks: the ONE time loop shared by every cell kind,
 * forward and backpropagation through time, stacking, bidirectional layers,
 * dropout between layers, variable-length batches and streaming inference.
 *
 * Per layer and direction the forward pass is
 *   xg = in_l W_ih^T                      one product over all T*B rows
 *   for each step t (reversed for the backward direction):
 *     hg = h W_hh^T                       one product per step
 *     cell->forward(xg[t], hg, biases)    fused pointwise step (cell_*.c)
 * and the backward pass runs the loop the other way, then forms the weight
 * gradients as large products over all steps:
 *   dW_ih += dgx^T in_l   dW_hh += dgh^T hprev   din_l (+)= dgx W_ih
 * With layer normalization, xg (all steps at once) and each step's hg are
 * normalized per gate before the cell, and their gradients go back through
 * the normalization before the products (ln_forward / ln_backward).
 * Variable lengths follow PyTorch's packed sequences: step t of sequence b is
 * active iff t < lengths[b]; inactive steps carry the state, output zero and
 * pass gradients straight through, so both directions start and end at each
 * sequence's own last step without reordering the batch.
 * Not here: cell math (cell_*.c), matrix products (tensor/gemm.c). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "barrier.h"
#include "cell.h"
#include "internal.h"
#include "recur/nn.h"
#include "recur/rnn.h"
#include "rnn_internal.h"
#include "tensor/gemm.h"
#include "tensor/vmath.h"

/* From this batch size on, the forward's recurrent products read a
 * transposed copy of W_hh ([H, G*H], made once per layer and call): the
 * GEMM library runs h W^T from it 1.3-1.7x faster than from W_hh itself
 * (2 cores, H = 1024: 362 against 276 GFLOP/s at B = 64, 248 against 149 at
 * B = 8); at B = 1 the plain layout is faster. */
#define TRANSPOSED_BATCH 8

/* Activations one (layer, direction) keeps between forward and backward. */
typedef struct direction_buffers {
    float *xg;    /* [T, B, G*H] input projection; training: overwritten by the
                     gate activations (act == xg), then by dgx in backward */
    float *act;   /* [T, B, G*H] gate activations */
    float *hprev; /* [T, B, H] state entering step t */
    float *cprev; /* LSTM, training: [T+1, B, H] the cell state in the order of
                     the steps (step s reads slot s, writes s + 1); inference:
                     one [B, H] slot updated in place */
    float *c;     /* LSTM, inference: == cprev; training: NULL */
    float *aux;   /* [T, B, H] GRU: W_hn h + b_hn */
    float *dgh;   /* [T, B, G*H] GRU or layer_norm: recurrent-side gate gradients */
    /* layer_norm, training: the normalized products and 1/std per row and gate */
    float *xhat, *hhat;   /* [T, B, G*H] */
    float *xrstd, *hrstd; /* [T, B, G] */
} direction_buffers;

typedef struct layer_buffers {
    float *in;   /* [T, B, in_l] layer input (after dropout for l > 0) */
    float *y;    /* [T, B, D*H] layer output */
    float *mask; /* [T, B, D*H] dropout scale applied to y to form the next in, or NULL */
    direction_buffers dir[2];
} layer_buffers;

struct recur_rnn {
    recur_rnn_config config;
    const cell_ops *cell;
    int G, D;
    size_t size; /* floats in params/grads */
    float *params, *grads;
    bool owns_arrays;
    int per_dir;      /* tensors per (layer, direction): 4, or 6 with layer_norm */
    int tensor_count; /* per_dir * L * D */
    recur_param_view *views;

    /* workspace sized for capacity_rows = T*B rows and capacity_B batch */
    void *workspace_raw;
    float *workspace; /* workspace_raw aligned to 64 bytes */
    size_t workspace_floats;
    unsigned char *active; /* [T, B] */
    int *lengths;          /* [B] copy of the last forward's lengths */
    size_t active_capacity;
    int lengths_capacity;

    /* the last forward pass */
    layer_buffers *layers;     /* [L] */
    float *hg, *h_run, *c_run; /* [B, G*H], [B, H], [B, H] */
    float *dh_total, *dh_run;  /* [B, H] */
    float *din_buf;            /* [T, B, max(I, D*H)] */
    float *whh_t;              /* [H, G*H] the layer's W_hh transposed (B >= TRANSPOSED_BATCH) */
    int T, B;
    bool batch_first, has_lengths, trained, has_dropout_masks;
    bool keep; /* the last forward kept every step (training) */
    /* the step kernels in use: the cell's vectorized or reference pair */
    void (*step_forward)(const cell_forward_args *a);
    void (*step_backward)(const cell_backward_args *a);
    recur_rnn_grad_hook grad_hook; /* gradient-ready notifications, or NULL */
    void *grad_hook_user;
};

void recur__rnn_use_reference(recur_rnn *rnn, bool reference)
{
    rnn->step_forward = reference ? rnn->cell->forward_ref : rnn->cell->forward;
    rnn->step_backward = reference ? rnn->cell->backward_ref : rnn->cell->backward;
}

static const cell_ops *cell_table(recur_cell cell)
{
    switch (cell) {
    case RECUR_CELL_RNN_TANH:
        return &recur_cell_rnn_tanh;
    case RECUR_CELL_RNN_RELU:
        return &recur_cell_rnn_relu;
    case RECUR_CELL_LSTM:
        return &recur_cell_lstm;
    case RECUR_CELL_GRU:
        return &recur_cell_gru;
    }
    return NULL;
}

const char *recur_cell_name(recur_cell cell)
{
    switch (cell) {
    case RECUR_CELL_RNN_TANH:
        return "rnn_tanh";
    case RECUR_CELL_RNN_RELU:
        return "rnn_relu";
    case RECUR_CELL_LSTM:
        return "lstm";
    case RECUR_CELL_GRU:
        return "gru";
    }
    return "unknown";
}

int recur_cell_parse(const char *name, recur_cell *out)
{
    static const struct {
        const char *name;
        recur_cell cell;
    } names[] = {
        {"rnn_tanh", RECUR_CELL_RNN_TANH}, {"rnn", RECUR_CELL_RNN_TANH},
        {"tanh", RECUR_CELL_RNN_TANH},     {"rnn_relu", RECUR_CELL_RNN_RELU},
        {"relu", RECUR_CELL_RNN_RELU},     {"lstm", RECUR_CELL_LSTM},
        {"gru", RECUR_CELL_GRU},
    };
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].cell;
            return RECUR_OK;
        }
    return recur__error(RECUR_E_INVALID,
                        "unknown cell '%s' (expected rnn_tanh, rnn_relu, lstm or gru)",
                        name ? name : "(null)");
}

int recur_cell_gates(recur_cell cell)
{
    const cell_ops *ops = cell_table(cell);
    return ops ? ops->gates : 0;
}

recur_rnn_config recur_rnn_config_default(void)
{
    return (recur_rnn_config){RECUR_CELL_LSTM, 0, 0, 1, 0, 0.0f, 0};
}

/* Large enough for any real model, small enough that G*H*(I+H)*L*D and every
 * T*B*G*H product below stays far from size_t and int overflow. */
#define MAX_SIZE 65536
#define MAX_LAYERS 64

int recur_rnn_config_check(const recur_rnn_config *c)
{
    if (!c)
        return recur__error(RECUR_E_INVALID, "rnn config is NULL");
    if (!cell_table(c->cell))
        return recur__error(RECUR_E_INVALID, "rnn config: unknown cell kind %d", (int)c->cell);
    if (c->input_size < 1 || c->input_size > MAX_SIZE)
        return recur__error(RECUR_E_INVALID, "rnn config: input_size %d outside 1..%d",
                            c->input_size, MAX_SIZE);
    if (c->hidden_size < 1 || c->hidden_size > MAX_SIZE)
        return recur__error(RECUR_E_INVALID, "rnn config: hidden_size %d outside 1..%d",
                            c->hidden_size, MAX_SIZE);
    if (c->num_layers < 1 || c->num_layers > MAX_LAYERS)
        return recur__error(RECUR_E_INVALID, "rnn config: num_layers %d outside 1..%d",
                            c->num_layers, MAX_LAYERS);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return recur__error(RECUR_E_INVALID, "rnn config: dropout %g outside [0, 1)",
                            (double)c->dropout);
    return RECUR_OK;
}

static int layer_input_size(const recur_rnn_config *c, int layer)
{
    return layer == 0 ? c->input_size : (c->bidirectional ? 2 : 1) * c->hidden_size;
}

size_t recur_rnn_param_size(const recur_rnn_config *c)
{
    if (recur_rnn_config_check(c) != RECUR_OK)
        return 0;
    size_t G = (size_t)recur_cell_gates(c->cell), H = (size_t)c->hidden_size;
    size_t D = c->bidirectional ? 2 : 1, total = 0;
    for (int l = 0; l < c->num_layers; l++)
        total += D * (G * H * (size_t)layer_input_size(c, l) + G * H * H +
                      (c->layer_norm ? 4 : 2) * G * H);
    return total;
}

/* Views in PyTorch's state_dict order: per layer, per direction,
 * weight_ih, weight_hh, bias_ih, bias_hh (then layer_norm_ih, layer_norm_hh). */
static void build_views(recur_rnn *rnn)
{
    const recur_rnn_config *c = &rnn->config;
    size_t offset = 0;
    int k = 0;
    for (int l = 0; l < c->num_layers; l++) {
        for (int d = 0; d < rnn->D; d++) {
            const char *suffix = d ? "_reverse" : "";
            int64_t GH = (int64_t)rnn->G * c->hidden_size;
            int64_t cols[2] = {layer_input_size(c, l), c->hidden_size};
            static const char *const weight[2] = {"weight_ih", "weight_hh"};
            static const char *const bias[4] = {"bias_ih", "bias_hh", "layer_norm_ih",
                                                "layer_norm_hh"};
            for (int w = 0; w < 2; w++) {
                recur_param_view *v = &rnn->views[k++];
                snprintf(v->name, sizeof v->name, "%s_l%d%s", weight[w], l, suffix);
                v->ndim = 2;
                v->shape[0] = GH;
                v->shape[1] = cols[w];
                v->offset = offset;
                v->numel = (size_t)(GH * cols[w]);
                offset += v->numel;
            }
            for (int w = 0; w < rnn->per_dir - 2; w++) {
                recur_param_view *v = &rnn->views[k++];
                snprintf(v->name, sizeof v->name, "%s_l%d%s", bias[w], l, suffix);
                v->ndim = 1;
                v->shape[0] = GH;
                v->shape[1] = 0;
                v->offset = offset;
                v->numel = (size_t)GH;
                offset += v->numel;
            }
        }
    }
}

int recur_rnn_create(const recur_rnn_config *config, float *params, float *grads, recur_rnn **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_rnn_create: out is NULL");
    *out = NULL;
    int status = recur_rnn_config_check(config);
    if (status)
        return status;
    if ((params == NULL) != (grads == NULL))
        return recur__error(RECUR_E_INVALID,
                            "recur_rnn_create: params and grads must both be given or both NULL");
    recur_rnn *rnn = recur__calloc(1, sizeof *rnn);
    if (!rnn)
        return recur__error(RECUR_E_NOMEM, "out of memory creating rnn");
    rnn->config = *config;
    rnn->cell = cell_table(config->cell);
    rnn->G = rnn->cell->gates;
    recur__rnn_use_reference(rnn, false);
    rnn->D = config->bidirectional ? 2 : 1;
    rnn->config.bidirectional = rnn->D == 2;
    rnn->size = recur_rnn_param_size(config);
    rnn->config.layer_norm = config->layer_norm != 0;
    rnn->per_dir = config->layer_norm ? 6 : 4;
    rnn->tensor_count = rnn->per_dir * config->num_layers * rnn->D;
    rnn->views = recur__calloc((size_t)rnn->tensor_count, sizeof *rnn->views);
    rnn->layers = recur__calloc((size_t)config->num_layers, sizeof *rnn->layers);
    if (params) {
        rnn->params = params;
        rnn->grads = grads;
    } else {
        rnn->owns_arrays = true;
        rnn->params = recur__calloc(rnn->size, sizeof(float));
        rnn->grads = recur__calloc(rnn->size, sizeof(float));
    }
    if (!rnn->views || !rnn->layers || !rnn->params || !rnn->grads) {
        const size_t size = rnn->size;
        recur_rnn_free(rnn);
        return recur__error(RECUR_E_NOMEM, "out of memory creating rnn (%zu parameters)", size);
    }
    build_views(rnn);
    *out = rnn;
    return RECUR_OK;
}

void recur_rnn_free(recur_rnn *rnn)
{
    if (!rnn)
        return;
    if (rnn->owns_arrays) {
        recur__free(rnn->params);
        recur__free(rnn->grads);
    }
    recur__free(rnn->views);
    recur__free(rnn->layers);
    recur__free(rnn->workspace_raw);
    recur__free(rnn->active);
    recur__free(rnn->lengths);
    recur__free(rnn);
}

const recur_rnn_config *recur_rnn_get_config(const recur_rnn *rnn)
{
    return &rnn->config;
}
float *recur_rnn_params(recur_rnn *rnn)
{
    return rnn->params;
}
float *recur_rnn_grads(recur_rnn *rnn)
{
    return rnn->grads;
}
size_t recur_rnn_size(const recur_rnn *rnn)
{
    return rnn->size;
}

void recur_rnn_zero_grad(recur_rnn *rnn)
{
    memset(rnn->grads, 0, rnn->size * sizeof(float));
}

void recur_rnn_init(recur_rnn *rnn, recur_rng *rng)
{
    float k = 1.0f / sqrtf((float)rnn->config.hidden_size);
    for (size_t i = 0; i < rnn->size; i++)
        rnn->params[i] = (2.0f * recur_rng_uniform(rng) - 1.0f) * k;
    for (int i = 0; i < rnn->tensor_count; i++)
        if (strncmp(rnn->views[i].name, "layer_norm", 10) == 0)
            for (size_t j = 0; j < rnn->views[i].numel; j++)
                rnn->params[rnn->views[i].offset + j] = 1.0f;
}

int recur_rnn_tensor_count(const recur_rnn *rnn)
{
    return rnn->tensor_count;
}

const recur_param_view *recur_rnn_tensor_at(const recur_rnn *rnn, int index)
{
    if (index < 0 || index >= rnn->tensor_count)
        return NULL;
    return &rnn->views[index];
}

const recur_param_view *recur_rnn_tensor_find(const recur_rnn *rnn, const char *name)
{
    for (int i = 0; i < rnn->tensor_count; i++)
        if (strcmp(rnn->views[i].name, name) == 0)
            return &rnn->views[i];
    return NULL;
}

/* The tensors of (layer, direction); the layer_norm gains are NULL without it. */
typedef struct direction_params {
    const float *w_ih, *w_hh, *b_ih, *b_hh, *ln_ih, *ln_hh;
    float *dw_ih, *dw_hh, *db_ih, *db_hh, *dln_ih, *dln_hh;
} direction_params;

static direction_params params_of(const recur_rnn *rnn, int layer, int dir)
{
    const recur_param_view *v = &rnn->views[rnn->per_dir * (layer * rnn->D + dir)];
    const bool ln = rnn->per_dir == 6;
    return (direction_params){
        rnn->params + v[0].offset,
        rnn->params + v[1].offset,
        rnn->params + v[2].offset,
        rnn->params + v[3].offset,
        ln ? rnn->params + v[4].offset : NULL,
        ln ? rnn->params + v[5].offset : NULL,
        rnn->grads + v[0].offset,
        rnn->grads + v[1].offset,
        rnn->grads + v[2].offset,
        rnn->grads + v[3].offset,
        ln ? rnn->grads + v[4].offset : NULL,
        ln ? rnn->grads + v[5].offset : NULL,
    };
}

/* ---- layer normalization ---------------------------------------------------
 * One row of G gate blocks of H values: v <- gain * (v - mean) / sqrt(var + eps)
 * per block, keeping the normalized values and 1/std when hat/rstd are given. */
#define LN_EPS 1e-5f

RECUR_VECTOR_CLONES void recur__ln_forward(float *v, const float *gain, int G, int H, float *hat,
                                           float *rstd)
{
    for (int g = 0; g < G; g++) {
        float *u = v + (size_t)g * H;
        const float *gg = gain + (size_t)g * H;
        float sum = 0.0f, sq = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < H; j++)
            sum += u[j];
        const float mean = sum / (float)H;
#pragma omp simd reduction(+ : sq)
        for (int j = 0; j < H; j++)
            sq += (u[j] - mean) * (u[j] - mean);
        const float r = 1.0f / sqrtf(sq / (float)H + LN_EPS);
        if (rstd)
            rstd[g] = r;
        float *xh = hat ? hat + (size_t)g * H : NULL;
#pragma omp simd
        for (int j = 0; j < H; j++) {
            float n = (u[j] - mean) * r;
            if (xh)
                xh[j] = n;
            u[j] = gg[j] * n;
        }
    }
}

/* dv: in dL/d(gain * hat) for one row, out dL/dv; adds dL/dgain to dgain and
 * dL/d(the bias after the normalization) to dbias. */
RECUR_VECTOR_CLONES static void ln_backward(float *dv, const float *hat, const float *rstd,
                                            const float *gain, float *dgain, float *dbias, int G,
                                            int H)
{
    for (int g = 0; g < G; g++) {
        float *u = dv + (size_t)g * H;
        const float *xh = hat + (size_t)g * H, *gg = gain + (size_t)g * H;
        float *dg = dgain + (size_t)g * H, *db = dbias + (size_t)g * H;
        float s1 = 0.0f, s2 = 0.0f;
#pragma omp simd reduction(+ : s1, s2)
        for (int j = 0; j < H; j++) {
            float dn = u[j] * gg[j];
            s1 += dn;
            s2 += dn * xh[j];
            dg[j] += u[j] * xh[j];
            db[j] += u[j];
        }
        const float m1 = s1 / (float)H, m2 = s2 / (float)H, r = rstd[g];
#pragma omp simd
        for (int j = 0; j < H; j++)
            u[j] = r * (u[j] * gg[j] - m1 - xh[j] * m2);
    }
}

/* ---- workspace ------------------------------------------------------------
 * One allocation holds every buffer of a forward/backward pass for (T, B).
 * carve() hands out consecutive pieces; a first pass with base NULL counts. */
typedef struct carver {
    float *base;
    size_t used;
} carver;

static float *carve(carver *cv, size_t floats)
{
    float *p = cv->base ? cv->base + cv->used : NULL;
    /* keep every buffer 64-byte aligned for the vector kernels */
    cv->used += (floats + 15) & ~(size_t)15;
    return p;
}

static void layout_workspace(recur_rnn *rnn, carver *cv, int T, int B, bool keep)
{
    const recur_rnn_config *c = &rnn->config;
    size_t rows = (size_t)T * B, H = (size_t)c->hidden_size, GH = (size_t)rnn->G * H;
    size_t DH = (size_t)rnn->D * H;
    size_t max_in = (size_t)c->input_size > DH ? (size_t)c->input_size : DH;
    if (!keep) {
        /* Inference keeps nothing for backward: the layers take turns with
         * two output buffers, and every direction reuses one input
         * projection and one step's worth of activations and state (the
         * state ping-pongs between two [B, H] slots). */
        float *y[2] = {carve(cv, rows * DH), c->num_layers > 1 ? carve(cv, rows * DH) : NULL};
        float *xg = carve(cv, rows * GH), *act = carve(cv, (size_t)B * GH);
        float *hprev = carve(cv, 2 * (size_t)B * H);
        float *cell = rnn->cell->has_c ? carve(cv, (size_t)B * H) : NULL;
        float *aux = rnn->cell->has_aux ? carve(cv, (size_t)B * H) : NULL;
        float *x = carve(cv, rows * (size_t)c->input_size);
        for (int l = 0; l < c->num_layers; l++) {
            layer_buffers *lb = &rnn->layers[l];
            lb->y = y[l % 2];
            lb->in = l == 0 ? x : y[(l - 1) % 2];
            lb->mask = NULL;
            for (int d = 0; d < rnn->D; d++)
                lb->dir[d] = (direction_buffers){xg,   act,  hprev, cell, cell,
                                                 aux,  NULL, NULL,  NULL, NULL, NULL};
        }
        rnn->hg = carve(cv, (size_t)B * GH);
        rnn->h_run = carve(cv, (size_t)B * H);
        rnn->c_run = carve(cv, (size_t)B * H);
        rnn->whh_t = B >= TRANSPOSED_BATCH ? carve(cv, GH * H) : NULL;
        return;
    }
    for (int l = 0; l < c->num_layers; l++) {
        layer_buffers *lb = &rnn->layers[l];
        bool dropped = l > 0 && c->dropout > 0.0f;
        lb->in = (l == 0 || dropped) ? carve(cv, rows * (size_t)layer_input_size(c, l)) : NULL;
        lb->y = carve(cv, rows * DH);
        lb->mask = (l + 1 < c->num_layers && c->dropout > 0.0f) ? carve(cv, rows * DH) : NULL;
        for (int d = 0; d < rnn->D; d++) {
            direction_buffers *db = &lb->dir[d];
            /* The cells read step t's input projection and write its
             * activations at the same places (each unit reads its gates'
             * inputs before writing their activations), so act overwrites xg;
             * backward in turn overwrites act with dgx. The cell state has
             * T + 1 slots in the order of the steps: step s reads slot s and
             * writes slot s + 1. */
            db->xg = carve(cv, rows * GH);
            db->act = db->xg;
            db->hprev = carve(cv, rows * H);
            db->cprev = rnn->cell->has_c ? carve(cv, rows * H + (size_t)B * H) : NULL;
            db->c = NULL;
            db->aux = rnn->cell->has_aux ? carve(cv, rows * H) : NULL;
            const bool ln = c->layer_norm;
            db->dgh = rnn->cell->split_dgh || ln ? carve(cv, rows * GH) : NULL;
            db->xhat = ln ? carve(cv, rows * GH) : NULL;
            db->hhat = ln ? carve(cv, rows * GH) : NULL;
            db->xrstd = ln ? carve(cv, rows * rnn->G) : NULL;
            db->hrstd = ln ? carve(cv, rows * rnn->G) : NULL;
        }
    }
    /* A layer without dropout reads the previous layer's output directly. */
    for (int l = 1; l < c->num_layers; l++)
        if (!rnn->layers[l].in)
            rnn->layers[l].in = rnn->layers[l - 1].y;
    rnn->hg = carve(cv, (size_t)B * GH);
    rnn->h_run = carve(cv, (size_t)B * H);
    rnn->c_run = carve(cv, (size_t)B * H);
    rnn->dh_total = carve(cv, (size_t)B * H);
    rnn->dh_run = carve(cv, (size_t)B * H);
    rnn->din_buf = carve(cv, rows * max_in);
    /* W_hh^T serves the forward only, din_buf the backward only: share */
    rnn->whh_t = B < TRANSPOSED_BATCH ? NULL
                 : rows * max_in >= GH * H ? rnn->din_buf
                                           : carve(cv, GH * H);
}

/* Grows the workspace to the layout of (T, B) for training (keep) or
 * inference. */
static int reserve_layout(recur_rnn *rnn, int T, int B, bool keep)
{
    if (T < 1 || B < 1)
        return recur__error(RECUR_E_INVALID, "rnn: T (%d) and B (%d) must be positive", T, B);
    /* rows * G * H * (I or D*H) must stay addressable; checked in size_t. */
    size_t rows;
    if (!recur__mul_size((size_t)T, (size_t)B, &rows) || rows > ((size_t)1 << 31))
        return recur__error(RECUR_E_INVALID, "rnn: T*B = %d*%d is too large", T, B);
    carver count = {NULL, 0};
    layout_workspace(rnn, &count, T, B, keep);
    size_t cells = rows;
    if (count.used > rnn->workspace_floats) {
        size_t bytes;
        if (!recur__mul_size(count.used, sizeof(float), &bytes))
            return recur__error(RECUR_E_NOMEM, "rnn workspace size overflows");
        void *raw = recur__malloc(bytes + 64);
        if (!raw)
            return recur__error(RECUR_E_NOMEM,
                                "out of memory: rnn workspace of %zu MB for T=%d B=%d", bytes >> 20,
                                T, B);
        recur__free(rnn->workspace_raw);
        rnn->workspace_raw = raw;
        /* 64-byte aligned, like every carved piece */
        rnn->workspace = (float *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
        rnn->workspace_floats = count.used;
    }
    if (cells > rnn->active_capacity) {
        unsigned char *a = recur__malloc(cells);
        if (!a)
            return recur__error(RECUR_E_NOMEM, "out of memory: rnn mask");
        recur__free(rnn->active);
        rnn->active = a;
        rnn->active_capacity = cells;
    }
    if (B > rnn->lengths_capacity) {
        int *len = recur__calloc((size_t)B, sizeof(int));
        if (!len)
            return recur__error(RECUR_E_NOMEM, "out of memory: rnn lengths");
        recur__free(rnn->lengths);
        rnn->lengths = len;
        rnn->lengths_capacity = B;
    }
    return RECUR_OK;
}

int recur_rnn_reserve(recur_rnn *rnn, int T, int B)
{
    return reserve_layout(rnn, T, B, true);
}

/* dst [Q, P, n] = src [P, Q, n] with the two outer axes swapped when swap,
 * else a straight copy: converts between batch-first [B, T, n] and the
 * time-major [T, B, n] used inside. */
static void copy_swapped(float *dst, const float *src, int P, int Q, size_t n, bool swap)
{
    if (!swap) {
        if (dst != src) /* src may already be the place (recur__rnn_input) */
            memcpy(dst, src, (size_t)P * Q * n * sizeof(float));
        return;
    }
    for (int p = 0; p < P; p++)
        for (int q = 0; q < Q; q++)
            memcpy(dst + ((size_t)q * P + p) * n, src + ((size_t)p * Q + q) * n, n * sizeof(float));
}

static void add_bias_free(float *dst, const float *src, size_t n)
{
    if (src)
        memcpy(dst, src, n * sizeof(float));
    else
        memset(dst, 0, n * sizeof(float));
}

/* Threads for the time loop: each owns a block of hidden units (a multiple
 * of 16, the AVX-512 width) and, through them, the matching rows of W_hh,
 * which stay in that core's cache for the whole sequence. */
static int loop_threads(int H)
{
    int P = recur_get_threads();
    int most = H / 32; /* at least 32 units each, or the barrier costs more than it saves */
    P = P < most ? P : most;
    return P < 1 ? 1 : P;
}

static void unit_range(int H, int P, int k, int *j0, int *j1)
{
    int chunk = ((H + P - 1) / P + 15) / 16 * 16;
    *j0 = k * chunk < H ? k * chunk : H;
    *j1 = (k + 1) * chunk < H ? (k + 1) * chunk : H;
}

/* What one step of the forward time loop reads and writes. */
typedef struct fwd_loop {
    recur_rnn *rnn;
    layer_buffers *lb;
    direction_buffers *db;
    direction_params p;
    int T, B, H, G, d;
    bool keep, has_c;
} fwd_loop;

/* h_{t-1} of step s (its slot in the order of the steps). */
static float *fwd_hprev(const fwd_loop *f, int s)
{
    const int t = f->d ? f->T - 1 - s : s;
    const size_t BH = (size_t)f->B * f->H;
    return f->db->hprev + (f->keep ? (size_t)t : (size_t)(s & 1)) * BH;
}

/* Step s on units [j0, j1), after hg holds h_{t-1} W_hh^T for them: the
 * cell, then y and the carried state. */
static void fwd_cells(const fwd_loop *f, int s, int j0, int j1)
{
    recur_rnn *rnn = f->rnn;
    direction_buffers *db = f->db;
    const int B = f->B, H = f->H, GH = f->G * H, DH = rnn->D * H, T = f->T, d = f->d;
    const size_t BH = (size_t)B * H, BGH = (size_t)B * GH;
    const int nj = j1 - j0;
    const bool keep = f->keep, has_c = f->has_c;
    const int t = d ? T - 1 - s : s;
    const bool last = s + 1 == T;
    const int t_next = d ? t - 1 : t + 1;
    /* the new state goes straight into the next step's input slot */
    float *h_new = last   ? rnn->h_run
                   : keep ? db->hprev + (size_t)t_next * BH
                          : db->hprev + (size_t)((s + 1) & 1) * BH;
    float *c_new = !has_c ? NULL : keep ? db->cprev + (size_t)(s + 1) * BH : db->c;
    const size_t at = keep ? (size_t)t : 0; /* activation slot */
    const unsigned char *active = rnn->has_lengths ? rnn->active + (size_t)t * B : NULL;
    cell_forward_args a = {
        .B = B,
        .H = H,
        .j0 = j0,
        .j1 = j1,
        .xg = db->xg + t * BGH,
        .hg = rnn->hg,
        .b_ih = f->p.b_ih,
        .b_hh = f->p.b_hh,
        .h_prev = fwd_hprev(f, s),
        .c_prev = has_c ? db->cprev + (keep ? (size_t)s : 0) * BH : NULL,
        .h = h_new,
        .c = c_new,
        .act = db->act + at * BGH,
        .aux = db->aux ? db->aux + at * BH : NULL,
        .active = active,
    };
    rnn->step_forward(&a);
    /* y[t, b, d*H + j] = h_t, zero past the sequence's end; the last c_t is
     * also kept for cn */
    float *y = f->lb->y + (size_t)t * B * DH + (size_t)d * H;
    float *c_next = has_c && last ? rnn->c_run : NULL; /* else in place or in its slot */
    for (int b = 0; b < B; b++) {
        float *yb = y + (size_t)b * DH;
        const float *hb = h_new + (size_t)b * H;
        if (active && !active[b])
            memset(yb + j0, 0, nj * sizeof(float));
        else
            memcpy(yb + j0, hb + j0, nj * sizeof(float));
        if (c_next)
            memcpy(c_next + (size_t)b * H + j0, c_new + (size_t)b * H + j0, nj * sizeof(float));
    }
}

/* Forward of one (layer, direction) over all steps: the one time loop.
 * After the input projection (one product, threaded by the BLAS), P threads
 * run the steps together: thread k computes hg[:, gate g, units j0..j1) =
 * h_{t-1} W_hh[g*H + j0 .. g*H + j1)^T for each gate, then the cell on those
 * units, and writes its units of h_t into the next step's hprev slot; one
 * barrier per step publishes h_t. */
static void direction_forward(recur_rnn *rnn, int l, int d, int T, int B, const float *h0,
                              const float *c0, float *hn, float *cn)
{
    const recur_rnn_config *c = &rnn->config;
    const int H = c->hidden_size, G = rnn->G, GH = G * H;
    const int in_size = layer_input_size(c, l);
    layer_buffers *lb = &rnn->layers[l];
    direction_buffers *db = &lb->dir[d];
    const direction_params p = params_of(rnn, l, d);
    const size_t BH = (size_t)B * H;
    const bool has_c = rnn->cell->has_c;

    /* xg = in W_ih^T for every step at once: [T*B, in] x [in, G*H] */
    recur_gemm(false, true, T * B, GH, in_size, 1.0f, lb->in, in_size, p.w_ih, in_size, 0.0f,
               db->xg, GH);
    const bool keep = rnn->keep;
    if (p.ln_ih)
        for (size_t r = 0; r < (size_t)T * B; r++)
            recur__ln_forward(db->xg + r * GH, p.ln_ih, G, H, keep ? db->xhat + r * GH : NULL,
                              keep ? db->xrstd + r * G : NULL);
    /* Where step t's state and activations live: every step its own slot
     * when training (backward reads them all); in inference one slot for
     * the activations and the cell state (updated in place: each unit reads
     * its own old value only) and two slots the hidden state alternates
     * between (all threads read h_{t-1} while writing h_t). */
    const int first = d ? T - 1 : 0;
    add_bias_free(db->hprev + (keep ? (size_t)first * BH : 0), h0, BH);
    if (has_c)
        add_bias_free(db->cprev, c0, BH); /* slot 0 in either layout */
    const fwd_loop f = {rnn, lb, db, p, T, B, H, G, d, keep, has_c};

    const int P = loop_threads(H);
    float *wt = rnn->whh_t; /* [H, G*H] = W_hh^T, or NULL: small batch */
    recur__barrier barrier;
    recur__barrier_init(&barrier, P);
#pragma omp parallel num_threads(P) if (P > 1)
    {
        if (wt) { /* in 32 x 32 tiles, the threads splitting the rows of W^T */
#pragma omp for schedule(static)
            for (int i0 = 0; i0 < H; i0 += 32)
                for (int r0 = 0; r0 < GH; r0 += 32)
                    for (int r = r0; r < r0 + 32 && r < GH; r++)
                        for (int i = i0; i < i0 + 32 && i < H; i++)
                            wt[(size_t)i * GH + r] = p.w_hh[(size_t)r * H + i];
        }
        int j0, j1;
        unit_range(H, P, recur__thread_index(), &j0, &j1);
        const int nj = j1 - j0;
        for (int s = 0; s < T; s++) {
            if (nj > 0) {
                /* hg[:, g*H + j0..j1) = h_{t-1} W_hh[g*H + j0..j1)^T: [B, H] x [H, nj] */
                for (int g = 0; g < G; g++) {
                    if (wt)
                        recur_gemm(false, false, B, nj, H, 1.0f, fwd_hprev(&f, s), H,
                                   wt + (size_t)g * H + j0, GH, 0.0f, rnn->hg + g * H + j0, GH);
                    else
                        recur_gemm(false, true, B, nj, H, 1.0f, fwd_hprev(&f, s), H,
                                   p.w_hh + ((size_t)g * H + j0) * H, H, 0.0f,
                                   rnn->hg + g * H + j0, GH);
                }
            }
            if (p.ln_hh) { /* normalizing needs whole rows: one thread, between barriers */
                recur__barrier_wait(&barrier);
                if (recur__thread_index() == 0) {
                    const size_t row = (size_t)(d ? T - 1 - s : s) * B;
                    for (int b = 0; b < B; b++)
                        recur__ln_forward(rnn->hg + (size_t)b * GH, p.ln_hh, G, H,
                                          keep ? db->hhat + (row + b) * GH : NULL,
                                          keep ? db->hrstd + (row + b) * G : NULL);
                }
                recur__barrier_wait(&barrier);
            }
            if (nj > 0)
                fwd_cells(&f, s, j0, j1);
            recur__barrier_wait(&barrier);
        }
    }
    if (hn)
        memcpy(hn, rnn->h_run, BH * sizeof(float));
    if (cn && has_c)
        memcpy(cn, rnn->c_run, BH * sizeof(float));
}

int recur_rnn_forward(recur_rnn *rnn, recur_mode mode, const recur_rnn_input *in,
                      const recur_rnn_output *out, recur_rng *rng)
{
    if (!rnn || !in || !out)
        return recur__error(RECUR_E_INVALID, "recur_rnn_forward: NULL argument");
    rnn->trained = false;
    const recur_rnn_config *c = &rnn->config;
    const int T = in->T, B = in->B, L = c->num_layers, D = rnn->D, H = c->hidden_size;
    if (!in->x)
        return recur__error(RECUR_E_INVALID, "recur_rnn_forward: x is NULL");
    const bool keep = mode == RECUR_MODE_TRAIN;
    int status = reserve_layout(rnn, T, B, keep);
    if (status)
        return status;
    if (in->lengths) {
        for (int b = 0; b < B; b++)
            if (in->lengths[b] < 1 || in->lengths[b] > T)
                return recur__error(RECUR_E_INVALID, "rnn: lengths[%d] = %d outside 1..T (T = %d)",
                                    b, in->lengths[b], T);
    }
    bool dropout = mode == RECUR_MODE_TRAIN && c->dropout > 0.0f && L > 1;
    if (dropout && !rng)
        return recur__error(RECUR_E_INVALID, "rnn: dropout %g in training needs an rng",
                            (double)c->dropout);

    carver cv = {rnn->workspace, 0};
    layout_workspace(rnn, &cv, T, B, keep);
    rnn->keep = keep;
    rnn->T = T;
    rnn->B = B;
    rnn->batch_first = in->batch_first != 0;
    rnn->has_lengths = in->lengths != NULL;
    if (in->lengths) {
        memcpy(rnn->lengths, in->lengths, (size_t)B * sizeof(int));
        for (int t = 0; t < T; t++)
            for (int b = 0; b < B; b++)
                rnn->active[(size_t)t * B + b] = t < in->lengths[b];
    }

    copy_swapped(rnn->layers[0].in, in->x, B, T, (size_t)c->input_size, rnn->batch_first);
    const size_t BH = (size_t)B * H, rows = (size_t)T * B, DH = (size_t)D * H;
    for (int l = 0; l < L; l++) {
        layer_buffers *lb = &rnn->layers[l];
        for (int d = 0; d < D; d++) {
            size_t k = (size_t)l * D + d;
            direction_forward(rnn, l, d, T, B, in->h0 ? in->h0 + k * BH : NULL,
                              in->c0 ? in->c0 + k * BH : NULL, out->hn ? out->hn + k * BH : NULL,
                              out->cn ? out->cn + k * BH : NULL);
        }
        if (l + 1 < L && c->dropout > 0.0f) {
            /* in_{l+1} = y_l * mask, mask = 0 with probability p, else 1/(1-p);
             * in inference the next layer reads y_l unchanged. */
            float *next = rnn->layers[l + 1].in;
            if (dropout)
                recur_dropout_forward(lb->y, rows * DH, c->dropout, rng, lb->mask, next);
            else if (next != lb->y)
                memcpy(next, lb->y, rows * DH * sizeof(float));
        }
    }
    if (out->y)
        copy_swapped(out->y, rnn->layers[L - 1].y, T, B, DH, rnn->batch_first);
    rnn->trained = mode == RECUR_MODE_TRAIN;
    rnn->has_dropout_masks = dropout;
    return RECUR_OK;
}

/* Step s of the backward time loop on units [j0, j1): dh_total = dL/dh_t
 * (the carried gradient plus this step's output gradient), then the cell
 * backward, which writes dgx_t, dgh_t and its part of dh_{t-1}. */
typedef struct bwd_loop {
    recur_rnn *rnn;
    direction_buffers *db;
    const float *dy;
    float *dgx, *dgh;
    int T, B, H, G, d;
    bool has_c;
} bwd_loop;

static void bwd_cells(const bwd_loop *k, int s, int j0, int j1)
{
    recur_rnn *rnn = k->rnn;
    direction_buffers *db = k->db;
    const int B = k->B, H = k->H, GH = k->G * H, DH = rnn->D * H, d = k->d;
    const size_t BH = (size_t)B * H, BGH = (size_t)B * GH;
    const int nj = j1 - j0;
    const int t = d ? k->T - 1 - s : s;
    const unsigned char *active = rnn->has_lengths ? rnn->active + (size_t)t * B : NULL;
    /* outputs past a sequence's end are constant zeros: no gradient there */
    const float *dyt = k->dy + (size_t)t * B * DH + (size_t)d * H;
    for (int b = 0; b < B; b++) {
        float *dst = rnn->dh_total + (size_t)b * H;
        const float *carried = rnn->dh_run + (size_t)b * H, *g = dyt + (size_t)b * DH;
        if (active && !active[b])
            memcpy(dst + j0, carried + j0, nj * sizeof(float));
        else
            for (int j = j0; j < j1; j++)
                dst[j] = carried[j] + g[j];
    }
    cell_backward_args a = {
        .B = B,
        .H = H,
        .j0 = j0,
        .j1 = j1,
        .act = db->act + t * BGH,
        .aux = db->aux ? db->aux + t * BH : NULL,
        .h_prev = db->hprev + t * BH,
        .c_prev = k->has_c ? db->cprev + (size_t)s * BH : NULL,
        .c = k->has_c ? db->cprev + (size_t)(s + 1) * BH : NULL,
        .dh = rnn->dh_total,
        .dc = k->has_c ? rnn->c_run : NULL,
        .dgx = k->dgx + t * BGH,
        .dgh = k->dgh + t * BGH,
        .dh_prev = rnn->dh_run,
        .active = active,
    };
    rnn->step_backward(&a);
}

/* Backward of one (layer, direction): the time loop run the other way, then
 * the weight gradients as products over all steps. dy is [T, B, D*H] (this
 * direction's columns at d*H), din [T, B, in] receives (d == 0) or gains
 * (d == 1) the gradient of the layer input. Threads own the same unit blocks
 * as in forward: thread k runs the cell backward on its units, a barrier
 * publishes dgh_t, then it forms its units of dh_{t-1} = dgh_t W_hh[:, j0..j1). */
static void direction_backward(recur_rnn *rnn, int l, int d, int T, int B, const float *dy,
                               const float *dhn, const float *dcn, float *din, float *dh0,
                               float *dc0)
{
    const recur_rnn_config *c = &rnn->config;
    const int H = c->hidden_size, G = rnn->G, GH = G * H;
    const int in_size = layer_input_size(c, l);
    layer_buffers *lb = &rnn->layers[l];
    direction_buffers *db = &lb->dir[d];
    const direction_params p = params_of(rnn, l, d);
    const size_t BH = (size_t)B * H, BGH = (size_t)B * GH;
    float *dgx = db->xg; /* the activations are dead once read: dgx overwrites them */
    float *dgh = db->dgh ? db->dgh : dgx;
    const bool has_c = rnn->cell->has_c;
    const bwd_loop k = {rnn, db, dy, dgx, dgh, T, B, H, rnn->G, d, has_c};

    add_bias_free(rnn->dh_run, dhn, BH);
    if (has_c)
        add_bias_free(rnn->c_run, dcn, BH); /* c_run holds dL/dc during backward */

    const int P = loop_threads(H);
    recur__barrier barrier;
    recur__barrier_init(&barrier, P);
#pragma omp parallel num_threads(P) if (P > 1)
    {
        int j0, j1;
        unit_range(H, P, recur__thread_index(), &j0, &j1);
        const int nj = j1 - j0;
        for (int s = T - 1; s >= 0; s--) {
            const int t = d ? T - 1 - s : s;
            if (nj > 0)
                bwd_cells(&k, s, j0, j1);
            recur__barrier_wait(&barrier);
            if (p.ln_hh) { /* dgh_t back through the normalization: whole rows */
                if (recur__thread_index() == 0)
                    for (int b = 0; b < B; b++) {
                        const size_t row = (size_t)t * B + b;
                        float *gh = dgh + row * GH;
                        if (!rnn->cell->split_dgh) /* the cell wrote dgx only */
                            memcpy(gh, dgx + row * GH, (size_t)GH * sizeof(float));
                        ln_backward(gh, db->hhat + row * GH, db->hrstd + row * G, p.ln_hh,
                                    p.dln_hh, p.db_hh, G, H);
                    }
                recur__barrier_wait(&barrier);
            }
            /* dh_{t-1}[:, j0..j1) += dgh_t W_hh[:, j0..j1): [B, G*H] x [G*H, nj] */
            if (nj > 0)
                recur_gemm(false, false, B, nj, GH, 1.0f, dgh + t * BGH, GH, p.w_hh + j0, H,
                           1.0f, rnn->dh_run + j0, H);
            /* every 8 steps, on the calling thread: progress communication */
            if (rnn->grad_hook && (s & 7) == 0 && recur__thread_index() == 0)
                rnn->grad_hook(rnn->grad_hook_user, -1);
        }
    }
    if (dh0)
        memcpy(dh0, rnn->dh_run, BH * sizeof(float));
    if (dc0 && has_c)
        memcpy(dc0, rnn->c_run, BH * sizeof(float));

    const int rows = T * B;
    if (p.ln_ih) /* dgx back through the normalization (the biases' gradients on the way) */
        for (size_t r = 0; r < (size_t)rows; r++)
            ln_backward(dgx + r * GH, db->xhat + r * GH, db->xrstd + r * G, p.ln_ih, p.dln_ih,
                        p.db_ih, G, H);
    /* dW_ih += dgx^T in: [G*H, T*B] x [T*B, in];  dW_hh += dgh^T hprev */
    recur_gemm(true, false, GH, in_size, rows, 1.0f, dgx, GH, lb->in, in_size, 1.0f, p.dw_ih,
               in_size);
    recur_gemm(true, false, GH, H, rows, 1.0f, dgh, GH, db->hprev, H, 1.0f, p.dw_hh, H);
    for (int r = 0; r < rows && !p.ln_ih; r++) {
        const float *gx = dgx + (size_t)r * GH, *gh = dgh + (size_t)r * GH;
        for (int j = 0; j < GH; j++) {
            p.db_ih[j] += gx[j];
            p.db_hh[j] += gh[j];
        }
    }
    /* din (+)= dgx W_ih: [T*B, G*H] x [G*H, in] */
    recur_gemm(false, false, rows, in_size, GH, 1.0f, dgx, GH, p.w_ih, in_size, d ? 1.0f : 0.0f,
               din, in_size);
}

int recur_rnn_backward(recur_rnn *rnn, const recur_rnn_grad_in *grad_in,
                       const recur_rnn_grad_out *grad_out)
{
    if (!rnn || !grad_in || !grad_out)
        return recur__error(RECUR_E_INVALID, "recur_rnn_backward: NULL argument");
    if (!rnn->trained)
        return recur__error(
            RECUR_E_STATE, "recur_rnn_backward: no RECUR_MODE_TRAIN forward pass to differentiate");
    const recur_rnn_config *c = &rnn->config;
    const int T = rnn->T, B = rnn->B, L = c->num_layers, D = rnn->D, H = c->hidden_size;
    const size_t rows = (size_t)T * B, DH = (size_t)D * H, BH = (size_t)B * H;

    /* dL/dy of each layer goes where its output was: backward needs no
     * layer's own output (the layer above read it as its input, and is
     * done with it before the gradient arrives). Time-major. */
    float *dy_top = rnn->layers[L - 1].y;
    if (!grad_in->dy)
        memset(dy_top, 0, rows * DH * sizeof(float));
    else if (grad_in->dy != dy_top)
        copy_swapped(dy_top, grad_in->dy, B, T, DH, rnn->batch_first);

    for (int l = L - 1; l >= 0; l--) {
        for (int d = 0; d < D; d++) {
            size_t k = (size_t)l * D + d;
            direction_backward(rnn, l, d, T, B, rnn->layers[l].y,
                               grad_in->dhn ? grad_in->dhn + k * BH : NULL,
                               grad_in->dcn ? grad_in->dcn + k * BH : NULL, rnn->din_buf,
                               grad_out->dh0 ? grad_out->dh0 + k * BH : NULL,
                               grad_out->dc0 ? grad_out->dc0 + k * BH : NULL);
        }
        if (rnn->grad_hook)
            rnn->grad_hook(rnn->grad_hook_user, l); /* layer l's gradients are final */
        if (l > 0) {
            /* the layer below's output gradient, through the dropout mask */
            const float *mask = rnn->has_dropout_masks ? rnn->layers[l - 1].mask : NULL;
            float *dy = rnn->layers[l - 1].y;
            for (size_t i = 0; i < rows * DH; i++)
                dy[i] = mask ? rnn->din_buf[i] * mask[i] : rnn->din_buf[i];
        }
    }
    if (grad_out->dx)
        copy_swapped(grad_out->dx, rnn->din_buf, T, B, (size_t)c->input_size, rnn->batch_first);
    return RECUR_OK;
}

void recur_rnn_set_grad_hook(recur_rnn *rnn, recur_rnn_grad_hook hook, void *user)
{
    if (!rnn)
        return;
    rnn->grad_hook = hook;
    rnn->grad_hook_user = hook ? user : NULL;
}

/* ---- internal accessors for stream.c and lm.c ---------------------------- */
float *recur__rnn_output(recur_rnn *rnn)
{
    return rnn->layers[rnn->config.num_layers - 1].y;
}

int recur__rnn_input(recur_rnn *rnn, recur_mode mode, int T, int B, float **x)
{
    const bool keep = mode == RECUR_MODE_TRAIN;
    int status = reserve_layout(rnn, T, B, keep);
    if (status)
        return status;
    carver cv = {rnn->workspace, 0};
    layout_workspace(rnn, &cv, T, B, keep);
    *x = rnn->layers[0].in;
    return RECUR_OK;
}

float *recur__rnn_input_grad(recur_rnn *rnn)
{
    return rnn->din_buf;
}

const cell_ops *recur__rnn_cell_ops(const recur_rnn *rnn)
{
    return rnn->cell;
}

void recur__rnn_layer_weights(const recur_rnn *rnn, int layer, const float **w_ih,
                              const float **w_hh, const float **b_ih, const float **b_hh)
{
    direction_params p = params_of(rnn, layer, 0);
    *w_ih = p.w_ih;
    *w_hh = p.w_hh;
    *b_ih = p.b_ih;
    *b_hh = p.b_hh;
}

void recur__rnn_layer_norm(const recur_rnn *rnn, int layer, const float **ln_ih,
                           const float **ln_hh)
{
    direction_params p = params_of(rnn, layer, 0);
    *ln_ih = p.ln_ih;
    *ln_hh = p.ln_hh;
}

void (*recur__rnn_step_forward(const recur_rnn *rnn))(const cell_forward_args *)
{
    return rnn->step_forward;
}

void (*recur__rnn_step_backward(const recur_rnn *rnn))(const cell_backward_args *)
{
    return rnn->step_backward;
}
