/* speech.c - the CTC acoustic model: frame subsampling -> recurrent stack
 * (optionally bidirectional) -> linear head over the alphabet plus the
 * blank -> CTC loss (Graves et al. 2006); decoding to text; checkpoints.
 *   xs[t', b] = [x[t'k, b], ..., x[t'k+k-1, b]]  (stack; zero past the end)
 *             =  x[t'k, b]                          (skip)     [T', B, I]
 *   y         = rnn(xs, lengths' = ceil(lengths / k))           [T', B, D*H]
 *   z         = y W_head^T + b_head                             [T', B, C]
 *   loss      = 1/B sum_b ctc(z[:, b], 1 + labels[b])   class 0 = blank
 * Backward: dz = (softmax - occupancy) / B from recur_ctc_loss, then the
 * head's and the stack's backward; the input gradient is not needed.
 * Parameters are one flat array: the stack's tensors, head.weight
 * [C, D*H], head.bias [C]. The global normalisation statistics are kept
 * beside it (they are measured, not trained). Feature extraction is made
 * lazily on the first featurize call. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"
#include "io/json_util.h"
#include "recur/ctc.h"
#include "recur/nn.h"
#include "recur/speech.h"

#define MAX_SUBSAMPLE 64

struct recur_speech {
    recur_speech_config config;
    recur_vocab *alphabet;
    int F, I, C, DH; /* features, stack input, classes, stack output */
    recur_rnn *rnn;
    float *params, *grads; /* [size] */
    size_t size;
    float *head_weight, *head_bias, *d_head_weight, *d_head_bias; /* views */
    int tensor_count;
    recur_param_view *views;
    float *norm_mean, *norm_std; /* [F] */
    recur_features *features;    /* made on first use */
    /* workspace for rows = T' * B, grown on demand */
    size_t capacity_rows;
    int capacity_B, capacity_S;
    float *xs;        /* [rows, I] */
    float *y;         /* [rows, DH] */
    float *logits;    /* [rows, C] */
    float *dlogits;   /* [rows, C] */
    float *dy;        /* [rows, DH] */
    int *rnn_lengths; /* [B] */
    int32_t *out_lengths; /* [B] */
    int32_t *targets; /* [B, S] class ids */
    double *losses;   /* [B] */
};

/* ---- names and configuration ---------------------------------------------- */

const char *recur_subsample_name(recur_subsample_mode mode)
{
    switch (mode) {
    case RECUR_SUBSAMPLE_STACK: return "stack";
    case RECUR_SUBSAMPLE_SKIP: return "skip";
    }
    return "unknown";
}

int recur_subsample_parse(const char *name, recur_subsample_mode *out)
{
    if (name && strcmp(name, "stack") == 0)
        *out = RECUR_SUBSAMPLE_STACK;
    else if (name && strcmp(name, "skip") == 0)
        *out = RECUR_SUBSAMPLE_SKIP;
    else
        return recur__error(RECUR_E_INVALID, "unknown subsampling '%s' (stack or skip)",
                            name ? name : "(null)");
    return RECUR_OK;
}

recur_speech_config recur_speech_config_default(void)
{
    recur_speech_config c;
    memset(&c, 0, sizeof c);
    c.features = recur_features_config_default();
    c.norm = RECUR_NORM_UTTERANCE;
    c.cell = RECUR_CELL_LSTM;
    c.hidden_size = 128;
    c.num_layers = 2;
    c.bidirectional = 1;
    c.dropout = 0.0f;
    c.subsample = 2;
    c.subsample_mode = RECUR_SUBSAMPLE_STACK;
    return c;
}

static int input_size_of(const recur_speech_config *c)
{
    const int F = recur_features_dim(&c->features);
    return c->subsample_mode == RECUR_SUBSAMPLE_STACK ? F * c->subsample : F;
}

static recur_rnn_config rnn_config_of(const recur_speech_config *c)
{
    recur_rnn_config r = recur_rnn_config_default();
    r.cell = c->cell;
    r.input_size = input_size_of(c);
    r.hidden_size = c->hidden_size;
    r.num_layers = c->num_layers;
    r.bidirectional = c->bidirectional ? 1 : 0;
    r.dropout = c->dropout;
    return r;
}

int recur_speech_config_check(const recur_speech_config *c)
{
    if (!c)
        return recur__error(RECUR_E_INVALID, "speech config is NULL");
    int status = recur_features_config_check(&c->features);
    if (status)
        return status;
    if (c->norm != RECUR_NORM_NONE && c->norm != RECUR_NORM_UTTERANCE &&
        c->norm != RECUR_NORM_GLOBAL)
        return recur__error(RECUR_E_INVALID, "speech config: unknown norm %d", (int)c->norm);
    if (c->subsample < 1 || c->subsample > MAX_SUBSAMPLE)
        return recur__error(RECUR_E_INVALID, "speech config: subsample %d outside 1..%d",
                            c->subsample, MAX_SUBSAMPLE);
    if (c->subsample_mode != RECUR_SUBSAMPLE_STACK && c->subsample_mode != RECUR_SUBSAMPLE_SKIP)
        return recur__error(RECUR_E_INVALID, "speech config: unknown subsample mode %d",
                            (int)c->subsample_mode);
    recur_rnn_config rc = rnn_config_of(c);
    return recur_rnn_config_check(&rc);
}

/* ---- creation ------------------------------------------------------------------ */

static void free_workspace(recur_speech *m)
{
    recur__free(m->xs);
    recur__free(m->y);
    recur__free(m->logits);
    recur__free(m->dlogits);
    recur__free(m->dy);
    recur__free(m->rnn_lengths);
    recur__free(m->out_lengths);
    recur__free(m->targets);
    recur__free(m->losses);
    m->xs = m->y = m->logits = m->dlogits = m->dy = NULL;
    m->rnn_lengths = NULL;
    m->out_lengths = m->targets = NULL;
    m->losses = NULL;
    m->capacity_rows = 0;
    m->capacity_B = m->capacity_S = 0;
}

void recur_speech_free(recur_speech *m)
{
    if (!m)
        return;
    free_workspace(m);
    recur_rnn_free(m->rnn);
    recur_features_free(m->features);
    recur_vocab_free(m->alphabet);
    recur__free(m->views);
    recur__free(m->params);
    recur__free(m->grads);
    recur__free(m->norm_mean);
    recur__free(m->norm_std);
    recur__free(m);
}

/* A copy of a character vocabulary (code points in id order). */
static int copy_alphabet(const recur_vocab *v, recur_vocab **out)
{
    const int32_t V = recur_vocab_size(v);
    uint32_t *cps = recur__calloc((size_t)V, sizeof *cps);
    if (!cps)
        return recur__error(RECUR_E_NOMEM, "out of memory copying the alphabet");
    for (int32_t i = 0; i < V; i++)
        cps[i] = recur_vocab_codepoint(v, i);
    int status = recur_vocab_from_codepoints(cps, (size_t)V, out);
    recur__free(cps);
    return status;
}

int recur_speech_create(const recur_speech_config *config, const recur_vocab *alphabet,
                        recur_speech **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_speech_create: out is NULL");
    *out = NULL;
    if (!alphabet)
        return recur__error(RECUR_E_INVALID, "recur_speech_create: alphabet is NULL");
    if (recur_vocab_get_kind(alphabet) != RECUR_VOCAB_CHARS)
        return recur__error(RECUR_E_INVALID, "recur_speech_create: the alphabet must be a "
                            "character vocabulary");
    int status = recur_speech_config_check(config);
    if (status)
        return status;
    const int32_t V = recur_vocab_size(alphabet);
    if (V < 1 || V > 65535)
        return recur__error(RECUR_E_INVALID, "recur_speech_create: alphabet of %d letters "
                            "outside 1..65535", (int)V);
    recur_speech *m = recur__calloc(1, sizeof *m);
    if (!m)
        return recur__error(RECUR_E_NOMEM, "out of memory creating a speech model");
    m->config = *config;
    m->config.bidirectional = config->bidirectional ? 1 : 0;
    m->F = recur_features_dim(&config->features);
    m->I = input_size_of(config);
    m->C = (int)V + 1;
    m->DH = config->hidden_size * (config->bidirectional ? 2 : 1);
    recur_rnn_config rc = rnn_config_of(config);
    const size_t rnn_size = recur_rnn_param_size(&rc);
    const size_t C = (size_t)m->C, DH = (size_t)m->DH;
    m->size = rnn_size + C * DH + C;
    m->params = recur__calloc(m->size, sizeof(float));
    m->grads = recur__calloc(m->size, sizeof(float));
    m->norm_mean = recur__calloc((size_t)m->F, sizeof(float));
    m->norm_std = recur__calloc((size_t)m->F, sizeof(float));
    if (!m->params || !m->grads || !m->norm_mean || !m->norm_std) {
        recur_speech_free(m);
        return recur__error(RECUR_E_NOMEM, "out of memory: speech model of %zu parameters",
                            m->size);
    }
    for (int f = 0; f < m->F; f++)
        m->norm_std[f] = 1.0f;
    if ((status = copy_alphabet(alphabet, &m->alphabet)) ||
        (status = recur_rnn_create(&rc, m->params, m->grads, &m->rnn))) {
        recur_speech_free(m);
        return status;
    }
    m->head_weight = m->params + rnn_size;
    m->d_head_weight = m->grads + rnn_size;
    m->head_bias = m->head_weight + C * DH;
    m->d_head_bias = m->d_head_weight + C * DH;
    const int nr = recur_rnn_tensor_count(m->rnn);
    m->tensor_count = nr + 2;
    m->views = recur__calloc((size_t)m->tensor_count, sizeof *m->views);
    if (!m->views) {
        recur_speech_free(m);
        return recur__error(RECUR_E_NOMEM, "out of memory creating a speech model");
    }
    for (int i = 0; i < nr; i++) {
        const recur_param_view *v = recur_rnn_tensor_at(m->rnn, i);
        m->views[i] = *v;
        snprintf(m->views[i].name, sizeof m->views[i].name, "rnn.%.40s", v->name);
    }
    m->views[nr] = (recur_param_view){"head.weight", 2, {(int64_t)C, (int64_t)DH}, rnn_size,
                                      C * DH};
    m->views[nr + 1] = (recur_param_view){"head.bias", 1, {(int64_t)C, 0}, rnn_size + C * DH, C};
    *out = m;
    return RECUR_OK;
}

const recur_speech_config *recur_speech_get_config(const recur_speech *m) { return &m->config; }
const recur_vocab *recur_speech_alphabet(const recur_speech *m) { return m->alphabet; }
int recur_speech_num_classes(const recur_speech *m) { return m->C; }
int recur_speech_feature_dim(const recur_speech *m) { return m->F; }
float *recur_speech_params(recur_speech *m) { return m->params; }
float *recur_speech_grads(recur_speech *m) { return m->grads; }
size_t recur_speech_size(const recur_speech *m) { return m->size; }
recur_rnn *recur_speech_rnn(recur_speech *m) { return m->rnn; }
int recur_speech_tensor_count(const recur_speech *m) { return m->tensor_count; }
void recur_speech_zero_grad(recur_speech *m) { memset(m->grads, 0, m->size * sizeof(float)); }

int recur_speech_output_frames(const recur_speech *m, int T)
{
    return T <= 0 ? 0 : (T - 1) / m->config.subsample + 1;
}

const recur_param_view *recur_speech_tensor_at(const recur_speech *m, int index)
{
    return index >= 0 && index < m->tensor_count ? &m->views[index] : NULL;
}

const recur_param_view *recur_speech_tensor_find(const recur_speech *m, const char *name)
{
    for (int i = 0; name && i < m->tensor_count; i++)
        if (strcmp(m->views[i].name, name) == 0)
            return &m->views[i];
    return NULL;
}

void recur_speech_init(recur_speech *m, recur_rng *rng)
{
    recur_rnn_init(m->rnn, rng);
    const float k = 1.0f / sqrtf((float)m->DH);
    const size_t n = (size_t)m->C * (size_t)m->DH + (size_t)m->C;
    for (size_t i = 0; i < n; i++)
        m->head_weight[i] = (2.0f * recur_rng_uniform(rng) - 1.0f) * k;
}

int recur_speech_set_norm(recur_speech *m, const float *mean, const float *std)
{
    if (!m || !mean || !std)
        return recur__error(RECUR_E_INVALID, "recur_speech_set_norm: NULL argument");
    for (int f = 0; f < m->F; f++)
        if (!isfinite(mean[f]) || !isfinite(std[f]) || !(std[f] > 0.0f))
            return recur__error(RECUR_E_INVALID, "recur_speech_set_norm: dimension %d has mean "
                                "%g and std %g (finite, std > 0 needed)", f, (double)mean[f],
                                (double)std[f]);
    memcpy(m->norm_mean, mean, (size_t)m->F * sizeof(float));
    memcpy(m->norm_std, std, (size_t)m->F * sizeof(float));
    return RECUR_OK;
}

void recur_speech_get_norm(const recur_speech *m, float *mean, float *std)
{
    if (mean)
        memcpy(mean, m->norm_mean, (size_t)m->F * sizeof(float));
    if (std)
        memcpy(std, m->norm_std, (size_t)m->F * sizeof(float));
}

/* ---- features ------------------------------------------------------------------- */

int recur_speech_featurize(recur_speech *m, const float *samples, size_t n, float **x, int *T)
{
    if (!x || !T)
        return recur__error(RECUR_E_INVALID, "recur_speech_featurize: NULL output");
    *x = NULL;
    *T = 0;
    if (!m || !samples || n == 0)
        return recur__error(RECUR_E_INVALID, "recur_speech_featurize: no samples");
    int status;
    if (!m->features && (status = recur_features_create(&m->config.features, &m->features)))
        return status;
    const int frames = recur_features_frames(&m->config.features, n);
    if (frames < 1)
        return recur__error(RECUR_E_INVALID, "recur_speech_featurize: %zu samples are too many",
                            n);
    float *out = recur__calloc((size_t)frames, (size_t)m->F * sizeof(float));
    if (!out)
        return recur__error(RECUR_E_NOMEM, "out of memory: %d frames of features", frames);
    if ((status = recur_features_compute(m->features, samples, n, out))) {
        recur__free(out);
        return status;
    }
    if (m->config.norm == RECUR_NORM_UTTERANCE)
        recur_features_normalize(out, frames, m->F);
    else if (m->config.norm == RECUR_NORM_GLOBAL)
        recur_features_standardize(out, frames, m->F, m->norm_mean, m->norm_std);
    *x = out;
    *T = frames;
    return RECUR_OK;
}

/* ---- forward and backward ---------------------------------------------------------- */

static int reserve(recur_speech *m, int Tp, int B, int S)
{
    size_t rows;
    if (!recur__mul_size((size_t)Tp, (size_t)B, &rows))
        return recur__error(RECUR_E_NOMEM, "speech: T'=%d x B=%d overflows", Tp, B);
    if (rows <= m->capacity_rows && B <= m->capacity_B && S <= m->capacity_S)
        return RECUR_OK;
    if (rows < m->capacity_rows)
        rows = m->capacity_rows;
    if (B < m->capacity_B)
        B = m->capacity_B;
    if (S < m->capacity_S)
        S = m->capacity_S;
    free_workspace(m);
    const size_t St = S > 0 ? (size_t)S : 1;
    m->xs = recur__calloc(rows, (size_t)m->I * sizeof(float));
    m->y = recur__calloc(rows, (size_t)m->DH * sizeof(float));
    m->logits = recur__calloc(rows, (size_t)m->C * sizeof(float));
    m->dlogits = recur__calloc(rows, (size_t)m->C * sizeof(float));
    m->dy = recur__calloc(rows, (size_t)m->DH * sizeof(float));
    m->rnn_lengths = recur__calloc((size_t)B, sizeof(int));
    m->out_lengths = recur__calloc((size_t)B, sizeof(int32_t));
    m->targets = recur__calloc((size_t)B * St, sizeof(int32_t));
    m->losses = recur__calloc((size_t)B, sizeof(double));
    if (!m->xs || !m->y || !m->logits || !m->dlogits || !m->dy || !m->rnn_lengths ||
        !m->out_lengths || !m->targets || !m->losses) {
        free_workspace(m);
        return recur__error(RECUR_E_NOMEM, "out of memory: speech workspace for %zu rows", rows);
    }
    m->capacity_rows = rows;
    m->capacity_B = B;
    m->capacity_S = S;
    return RECUR_OK;
}

/* Subsamples x [T, B, F] into m->xs [T', B, I] and the lengths into
 * m->rnn_lengths / m->out_lengths, then runs the stack and the head into
 * m->logits [T', B, C]. */
static int forward(recur_speech *m, recur_mode mode, const float *x, int T, int B,
                   const int32_t *lengths, int S, recur_rng *rng)
{
    if (!x)
        return recur__error(RECUR_E_INVALID, "speech: x is NULL");
    if (T < 1 || B < 1)
        return recur__error(RECUR_E_INVALID, "speech: T (%d) and B (%d) must be positive", T, B);
    for (int b = 0; lengths && b < B; b++)
        if (lengths[b] < 1 || lengths[b] > T)
            return recur__error(RECUR_E_INVALID, "speech: lengths[%d] = %d outside 1..%d", b,
                                (int)lengths[b], T);
    const int k = m->config.subsample, Tp = recur_speech_output_frames(m, T);
    int status = reserve(m, Tp, B, S);
    if (status)
        return status;
    const int F = m->F, I = m->I;
    for (int b = 0; b < B; b++) {
        const int len = lengths ? (int)lengths[b] : T;
        m->rnn_lengths[b] = recur_speech_output_frames(m, len);
        m->out_lengths[b] = m->rnn_lengths[b];
    }
    for (int tp = 0; tp < Tp; tp++)
        for (int b = 0; b < B; b++) {
            const int len = lengths ? (int)lengths[b] : T;
            float *dst = m->xs + ((size_t)tp * B + b) * I;
            if (m->config.subsample_mode == RECUR_SUBSAMPLE_STACK) {
                for (int j = 0; j < k; j++) {
                    const int t = tp * k + j;
                    if (t < len)
                        memcpy(dst + (size_t)j * F, x + ((size_t)t * B + b) * F,
                               (size_t)F * sizeof(float));
                    else
                        memset(dst + (size_t)j * F, 0, (size_t)F * sizeof(float));
                }
            } else {
                const int t = tp * k;
                if (t < len)
                    memcpy(dst, x + ((size_t)t * B + b) * F, (size_t)F * sizeof(float));
                else
                    memset(dst, 0, (size_t)F * sizeof(float));
            }
        }
    recur_rnn_input in = {Tp, B, m->xs, 0, m->rnn_lengths, NULL, NULL};
    recur_rnn_output out = {m->y, NULL, NULL};
    if ((status = recur_rnn_forward(m->rnn, mode, &in, &out, rng)))
        return status;
    recur_linear_forward(m->head_weight, m->head_bias, m->C, m->DH, m->y, (size_t)Tp * B,
                         m->logits);
    return RECUR_OK;
}

/* Checks the labels of a batch and writes their class ids (1 + letter) to
 * m->targets; also that every utterance is long enough for CTC. Call after
 * forward (which set m->out_lengths). */
static int prepare_targets(recur_speech *m, const recur_speech_batch *batch)
{
    const int S = batch->S, B = batch->B, V = m->C - 1;
    if (S < 0 || (S > 0 && !batch->labels) || !batch->label_lengths)
        return recur__error(RECUR_E_INVALID, "speech batch: labels (S = %d) or label_lengths "
                            "missing", S);
    for (int b = 0; b < B; b++) {
        const int L = batch->label_lengths[b];
        if (L < 0 || L > S)
            return recur__error(RECUR_E_INVALID, "speech batch: label_lengths[%d] = %d outside "
                                "0..%d", b, L, S);
        int needed = L;
        for (int s = 0; s < L; s++) {
            const int32_t id = batch->labels[(size_t)b * S + s];
            if (id < 0 || id >= V)
                return recur__error(RECUR_E_INVALID, "speech batch: labels[%d][%d] = %d outside "
                                    "the alphabet 0..%d", b, s, (int)id, V - 1);
            m->targets[(size_t)b * S + s] = id + 1;
            if (s > 0 && batch->labels[(size_t)b * S + s - 1] == id)
                needed++;
        }
        if (m->out_lengths[b] < needed)
            return recur__error(RECUR_E_INVALID, "speech batch: utterance %d has %d frames "
                                "after subsampling by %d but its %d labels need %d; use a "
                                "smaller subsample or hop", b, (int)m->out_lengths[b],
                                m->config.subsample, L, needed);
    }
    return RECUR_OK;
}

static int check_batch(const recur_speech *m, const recur_speech_batch *batch, const double *loss)
{
    if (!m || !batch || !loss)
        return recur__error(RECUR_E_INVALID, "speech: NULL argument");
    if (!batch->lengths)
        return recur__error(RECUR_E_INVALID, "speech batch: lengths is NULL");
    return RECUR_OK;
}

/* The CTC losses of the batch in m->losses; mean to *loss; dlogits (scaled
 * by 1/B) when train. */
static int batch_loss(recur_speech *m, const recur_speech_batch *batch, int train, double *loss)
{
    const int B = batch->B, Tp = recur_speech_output_frames(m, batch->T);
    int status = prepare_targets(m, batch);
    if (status)
        return status;
    recur_ctc_config cc = recur_ctc_config_default();
    if ((status = recur_ctc_loss(m->logits, Tp, B, m->C, batch->S > 0 ? m->targets : NULL,
                                 batch->S, m->out_lengths, batch->label_lengths, &cc, m->losses,
                                 train ? m->dlogits : NULL)))
        return status;
    double sum = 0.0;
    for (int b = 0; b < B; b++)
        sum += m->losses[b];
    *loss = sum / B;
    if (!isfinite(*loss))
        return recur__error(RECUR_E_NUMERIC, "speech: the CTC loss is not finite (%g)", *loss);
    return RECUR_OK;
}

int recur_speech_evaluate(recur_speech *m, const recur_speech_batch *batch, double *loss)
{
    int status = check_batch(m, batch, loss);
    if (status)
        return status;
    if ((status = forward(m, RECUR_MODE_INFER, batch->x, batch->T, batch->B, batch->lengths,
                          batch->S, NULL)))
        return status;
    return batch_loss(m, batch, 0, loss);
}

int recur_speech_train_step(recur_speech *m, const recur_speech_batch *batch, recur_rng *rng,
                            double *loss)
{
    int status = check_batch(m, batch, loss);
    if (status)
        return status;
    if ((status = forward(m, RECUR_MODE_TRAIN, batch->x, batch->T, batch->B, batch->lengths,
                          batch->S, rng)))
        return status;
    if ((status = batch_loss(m, batch, 1, loss)))
        return status;
    const int B = batch->B;
    const size_t rows = (size_t)recur_speech_output_frames(m, batch->T) * B;
    const float scale = 1.0f / (float)B;
    for (size_t i = 0; i < rows * (size_t)m->C; i++)
        m->dlogits[i] *= scale;
    recur_linear_backward(m->head_weight, m->C, m->DH, m->y, rows, m->dlogits, m->d_head_weight,
                          m->d_head_bias, m->dy);
    recur_rnn_grad_in gin = {m->dy, NULL, NULL};
    recur_rnn_grad_out gout = {NULL, NULL, NULL};
    return recur_rnn_backward(m->rnn, &gin, &gout);
}

int recur_speech_logits(recur_speech *m, const float *x, int T, int B, const int32_t *lengths,
                        float *logits, int32_t *out_lengths)
{
    if (!m || !logits)
        return recur__error(RECUR_E_INVALID, "recur_speech_logits: NULL argument");
    int status = forward(m, RECUR_MODE_INFER, x, T, B, lengths, 0, NULL);
    if (status)
        return status;
    const size_t rows = (size_t)recur_speech_output_frames(m, T) * B;
    memcpy(logits, m->logits, rows * (size_t)m->C * sizeof(float));
    if (out_lengths)
        memcpy(out_lengths, m->out_lengths, (size_t)B * sizeof(int32_t));
    return RECUR_OK;
}

/* ---- decoding ------------------------------------------------------------------- */

int recur_speech_decode(const recur_speech *m, const float *logits, int T, size_t stride,
                        int beam_width, char **text)
{
    if (!text)
        return recur__error(RECUR_E_INVALID, "recur_speech_decode: text is NULL");
    *text = NULL;
    if (!m || !logits || T < 1)
        return recur__error(RECUR_E_INVALID, "recur_speech_decode: needs a model and T >= 1 "
                            "frames (T = %d)", T);
    int *labels = recur__calloc((size_t)T, sizeof *labels);
    int32_t *ids = recur__calloc((size_t)T, sizeof *ids);
    if (!labels || !ids) {
        recur__free(labels);
        recur__free(ids);
        return recur__error(RECUR_E_NOMEM, "out of memory decoding %d frames", T);
    }
    int count = 0, status;
    if (beam_width <= 1) {
        status = recur_ctc_greedy_decode(logits, T, m->C, stride, 0, labels, T, &count);
    } else {
        recur_ctc_beam_config bc = recur_ctc_beam_config_default();
        bc.beam_width = beam_width;
        bc.blank = 0;
        bc.scores = RECUR_CTC_SCORES_LOGITS;
        status = recur_ctc_beam_decode(logits, T, m->C, stride, &bc, labels, T, &count, NULL);
    }
    if (status == RECUR_OK) {
        for (int i = 0; i < count; i++)
            ids[i] = labels[i] - 1;
        size_t len = 0;
        status = recur_vocab_decode(m->alphabet, ids, (size_t)count, text, &len);
    }
    recur__free(labels);
    recur__free(ids);
    return status;
}

int recur_speech_transcribe(recur_speech *m, const float *samples, size_t n, int beam_width,
                            char **text)
{
    if (!text)
        return recur__error(RECUR_E_INVALID, "recur_speech_transcribe: text is NULL");
    *text = NULL;
    float *x = NULL;
    int T = 0;
    int status = recur_speech_featurize(m, samples, n, &x, &T);
    if (status)
        return status;
    const int Tp = recur_speech_output_frames(m, T);
    float *logits = recur__calloc((size_t)Tp, (size_t)m->C * sizeof(float));
    if (!logits)
        status = recur__error(RECUR_E_NOMEM, "out of memory: %d frames of logits", Tp);
    else if (!(status = recur_speech_logits(m, x, T, 1, NULL, logits, NULL)))
        status = recur_speech_decode(m, logits, Tp, (size_t)m->C, beam_width, text);
    recur__free(logits);
    recur__free(x);
    return status;
}

/* ---- checkpoints ------------------------------------------------------------------ */

static json_t *model_json(const recur_speech *m)
{
    const recur_speech_config *c = &m->config;
    const recur_features_config *fc = &c->features;
    char *alphabet_text = NULL;
    if (recur_vocab_to_json(m->alphabet, &alphabet_text))
        return NULL;
    json_error_t jerr;
    json_t *alphabet = json_loads(alphabet_text, 0, &jerr);
    recur_free(alphabet_text);
    json_t *obj = json_object(), *feat = json_object();
    int ok = alphabet && obj && feat && recur__json_put(feat, "kind", json_string(recur_features_kind_name(fc->kind))) &&
             recur__json_put(feat, "sample_rate", json_integer(fc->sample_rate)) &&
             recur__json_put(feat, "window_ms", json_real(fc->window_ms)) &&
             recur__json_put(feat, "hop_ms", json_real(fc->hop_ms)) &&
             recur__json_put(feat, "fft_size", json_integer(fc->fft_size)) &&
             recur__json_put(feat, "num_mels", json_integer(fc->num_mels)) &&
             recur__json_put(feat, "num_ceps", json_integer(fc->num_ceps)) &&
             recur__json_put(feat, "low_hz", json_real(fc->low_hz)) &&
             recur__json_put(feat, "high_hz", json_real(fc->high_hz)) &&
             recur__json_put(feat, "preemphasis", json_real(fc->preemphasis)) &&
             recur__json_put(feat, "energy_floor", json_real(fc->energy_floor)) &&
             recur__json_put(feat, "window", json_string(recur_window_name(fc->window)));
    ok = ok && recur__json_put(obj, "format", json_integer(RECUR_SPEECH_FORMAT)) &&
         json_object_set(obj, "features", feat) == 0 &&
         recur__json_put(obj, "norm", json_string(recur_norm_name(c->norm))) &&
         recur__json_put(obj, "cell", json_string(recur_cell_name(c->cell))) &&
         recur__json_put(obj, "hidden_size", json_integer(c->hidden_size)) &&
         recur__json_put(obj, "num_layers", json_integer(c->num_layers)) &&
         recur__json_put(obj, "bidirectional", json_boolean(c->bidirectional)) &&
         recur__json_put(obj, "dropout", recur__json_float(c->dropout)) &&
         recur__json_put(obj, "subsample", json_integer(c->subsample)) &&
         recur__json_put(obj, "subsample_mode", json_string(recur_subsample_name(c->subsample_mode))) &&
         recur__json_put(obj, "blank", json_integer(0)) && json_object_set(obj, "alphabet", alphabet) == 0;
    json_decref(feat);
    json_decref(alphabet);
    if (!ok) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

int recur_speech_write(recur_speech *m, recur_st_writer *w)
{
    if (!m || !w)
        return recur__error(RECUR_E_INVALID, "recur_speech_write: NULL argument");
    json_t *obj = model_json(m);
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text)
        return recur__error(RECUR_E_NOMEM, "out of memory writing the speech model description");
    int status = recur_st_writer_metadata(w, "recur_speech", text);
    free(text);
    for (int i = 0; status == RECUR_OK && i < m->tensor_count; i++) {
        const recur_param_view *v = &m->views[i];
        status = recur_st_writer_add(w, v->name, RECUR_DTYPE_F32, v->ndim, v->shape,
                                     m->params + v->offset);
    }
    const int64_t shape[1] = {m->F};
    if (status == RECUR_OK)
        status = recur_st_writer_add(w, "norm.mean", RECUR_DTYPE_F32, 1, shape, m->norm_mean);
    if (status == RECUR_OK)
        status = recur_st_writer_add(w, "norm.std", RECUR_DTYPE_F32, 1, shape, m->norm_std);
    return status;
}

int recur_speech_save(recur_speech *m, const char *path)
{
    recur_st_writer *w = NULL;
    int status = recur_st_writer_create(&w);
    if (status == RECUR_OK && (status = recur_speech_write(m, w)) == RECUR_OK)
        status = recur_st_writer_save(w, path);
    recur_st_writer_free(w);
    return status;
}

/* ---- reading ------------------------------------------------------------------- */

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

static int get_int(const reader *r, json_t *obj, const char *where, const char *key, int lo,
                   int hi, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return bad(r, "%s: missing field \"%s\"", where, key);
    if (!json_is_integer(v))
        return bad(r, "%s: field \"%s\" is not an integer", where, key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return bad(r, "%s: field \"%s\" = %lld outside %d..%d", where, key, (long long)x, lo, hi);
    *out = (int)x;
    return RECUR_OK;
}

static int get_double(const reader *r, json_t *obj, const char *where, const char *key,
                      double *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return bad(r, "%s: missing field \"%s\"", where, key);
    if (!json_is_number(v))
        return bad(r, "%s: field \"%s\" is not a number", where, key);
    *out = json_number_value(v);
    return RECUR_OK;
}

static int get_string(const reader *r, json_t *obj, const char *where, const char *key,
                      const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return bad(r, "%s: missing field \"%s\"", where, key);
    if (!json_is_string(v))
        return bad(r, "%s: field \"%s\" is not a string", where, key);
    *out = json_string_value(v);
    return RECUR_OK;
}

/* Runs a name parser; its error becomes a format error naming the field. */
#define PARSE_FIELD(r, where, key, parse, text, out)                                        \
    do {                                                                                     \
        if (parse(text, out) != RECUR_OK)                                                    \
            return bad(r, "%s: field \"%s\": unknown value '%s'", where, key, text);        \
    } while (0)

static int read_config(const reader *r, json_t *meta, recur_speech_config *c)
{
    const char *s = NULL;
    int status, v = 0;
    double d = 0.0;
    *c = recur_speech_config_default();
    json_t *feat = json_object_get(meta, "features");
    if (!feat || !json_is_object(feat))
        return bad(r, "\"recur_speech\": missing object \"features\"");
    recur_features_config *fc = &c->features;
    const char *w = "\"features\"";
    if ((status = get_string(r, feat, w, "kind", &s)))
        return status;
    PARSE_FIELD(r, w, "kind", recur_features_kind_parse, s, &fc->kind);
    if ((status = get_string(r, feat, w, "window", &s)))
        return status;
    PARSE_FIELD(r, w, "window", recur_window_parse, s, &fc->window);
    if ((status = get_int(r, feat, w, "sample_rate", 1, 768000, &fc->sample_rate)) ||
        (status = get_int(r, feat, w, "fft_size", 0, 1 << 22, &fc->fft_size)) ||
        (status = get_int(r, feat, w, "num_mels", 1, 1024, &fc->num_mels)) ||
        (status = get_int(r, feat, w, "num_ceps", 0, 1024, &fc->num_ceps)) ||
        (status = get_double(r, feat, w, "window_ms", &fc->window_ms)) ||
        (status = get_double(r, feat, w, "hop_ms", &fc->hop_ms)) ||
        (status = get_double(r, feat, w, "low_hz", &fc->low_hz)) ||
        (status = get_double(r, feat, w, "high_hz", &fc->high_hz)) ||
        (status = get_double(r, feat, w, "preemphasis", &fc->preemphasis)) ||
        (status = get_double(r, feat, w, "energy_floor", &fc->energy_floor)))
        return status;
    w = "\"recur_speech\"";
    if ((status = get_string(r, meta, w, "norm", &s)))
        return status;
    PARSE_FIELD(r, w, "norm", recur_norm_parse, s, &c->norm);
    if ((status = get_string(r, meta, w, "cell", &s)))
        return status;
    PARSE_FIELD(r, w, "cell", recur_cell_parse, s, &c->cell);
    if ((status = get_string(r, meta, w, "subsample_mode", &s)))
        return status;
    PARSE_FIELD(r, w, "subsample_mode", recur_subsample_parse, s, &c->subsample_mode);
    if ((status = get_int(r, meta, w, "hidden_size", 1, 1 << 20, &c->hidden_size)) ||
        (status = get_int(r, meta, w, "num_layers", 1, 1024, &c->num_layers)) ||
        (status = get_int(r, meta, w, "subsample", 1, MAX_SUBSAMPLE, &c->subsample)) ||
        (status = get_int(r, meta, w, "blank", 0, 0, &v)) ||
        (status = get_double(r, meta, w, "dropout", &d)))
        return status;
    c->dropout = (float)d;
    json_t *bi = json_object_get(meta, "bidirectional");
    if (!bi || !json_is_boolean(bi))
        return bad(r, "%s: field \"bidirectional\" missing or not true/false", w);
    c->bidirectional = json_is_true(bi);
    if (recur_speech_config_check(c) != RECUR_OK) {
        char message[600];
        snprintf(message, sizeof message, "%s", recur_last_error());
        return bad(r, "%s", message);
    }
    return RECUR_OK;
}

int recur_speech_read(const recur_st *st, const char *name, recur_speech **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_speech_read: out is NULL");
    *out = NULL;
    if (!st)
        return recur__error(RECUR_E_INVALID, "recur_speech_read: st is NULL");
    reader r = {name ? name : "speech checkpoint"};
    const char *text = recur_st_metadata(st, "recur_speech");
    if (!text)
        return bad(&r, "no \"recur_speech\" metadata: not a speech model (a language-model "
                       "checkpoint?)");
    json_error_t jerr;
    json_t *meta = json_loads(text, 0, &jerr);
    if (!meta || !json_is_object(meta)) {
        json_decref(meta);
        return bad(&r, "\"recur_speech\" is not a JSON object (%s)", jerr.text);
    }
    int status = RECUR_OK;
    recur_speech_config c;
    recur_vocab *alphabet = NULL;
    recur_speech *m = NULL;
    json_t *fmt = json_object_get(meta, "format");
    if (!fmt || !json_is_integer(fmt) || json_integer_value(fmt) < 1) {
        status = bad(&r, "\"recur_speech\": \"format\" missing or not a positive integer");
        goto done;
    }
    if (json_integer_value(fmt) > RECUR_SPEECH_FORMAT) {
        status = recur__error(RECUR_E_UNSUPPORTED, "%s: speech model format %lld is newer than "
                              "this build reads (%d); update recur", r.name,
                              (long long)json_integer_value(fmt), RECUR_SPEECH_FORMAT);
        goto done;
    }
    if ((status = read_config(&r, meta, &c)))
        goto done;
    json_t *letters = json_object_get(meta, "alphabet");
    char *letters_text = letters && json_is_array(letters) ? json_dumps(letters, JSON_COMPACT)
                                                           : NULL;
    if (!letters_text) {
        status = bad(&r, "\"recur_speech\": \"alphabet\" missing or not an array");
        goto done;
    }
    status = recur_vocab_from_json(letters_text, strlen(letters_text), RECUR_VOCAB_CHARS,
                                   &alphabet);
    free(letters_text);
    if (status) {
        char message[600];
        snprintf(message, sizeof message, "%s", recur_last_error());
        status = bad(&r, "\"alphabet\": %s", message);
        goto done;
    }
    if ((status = recur_speech_create(&c, alphabet, &m)))
        goto done;
    for (int i = 0; i < recur_st_count(st); i++) {
        const recur_st_tensor *t = recur_st_at(st, i);
        if (strncmp(t->name, "optimizer.", 10) == 0 || strcmp(t->name, "norm.mean") == 0 ||
            strcmp(t->name, "norm.std") == 0 || recur_speech_tensor_find(m, t->name))
            continue;
        status = bad(&r, "unexpected tensor \"%s\"", t->name);
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
    const int64_t shape[1] = {m->F};
    float *mean = recur__calloc((size_t)m->F, sizeof(float));
    float *std = recur__calloc((size_t)m->F, sizeof(float));
    if (!mean || !std) {
        status = recur__error(RECUR_E_NOMEM, "out of memory reading %s", r.name);
    } else if (recur_st_read_f32_shape(st, "norm.mean", 1, shape, mean) ||
               recur_st_read_f32_shape(st, "norm.std", 1, shape, std)) {
        char message[600];
        snprintf(message, sizeof message, "%s", recur_last_error());
        status = bad(&r, "normalisation tensors: %s", message);
    } else if (recur_speech_set_norm(m, mean, std)) {
        char message[600];
        snprintf(message, sizeof message, "%s", recur_last_error());
        status = bad(&r, "%s", message);
    }
    recur__free(mean);
    recur__free(std);
done:
    json_decref(meta);
    recur_vocab_free(alphabet);
    if (status) {
        recur_speech_free(m);
        return status;
    }
    *out = m;
    return RECUR_OK;
}

int recur_speech_load(const char *path, recur_speech **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_speech_load: out is NULL");
    *out = NULL;
    recur_st *st = NULL;
    int status = recur_st_open(path, &st);
    if (status)
        return status;
    status = recur_speech_read(st, path, out);
    recur_st_free(st);
    return status;
}
