/* classifier.c - a recurrent sequence classifier, forward and backward:
 *   x = E[tokens]  or  (features - mean) / std          [T, B, I]
 *   x = x * m_in / (1 - p_in)                           embedding dropout (training)
 *   y, hn = rnn(x, lengths)                             [T, B, P], P = D*H
 *   p = pool(y, hn):  last: hn of the top layer, both directions   [B, P]
 *                     mean: sum_{t < len} y[t] / len
 *                     max:  max_{t < len} y[t] (elementwise)
 *   p = p * m / (1 - p_drop)                            dropout (training)
 *   z = p W_head^T + b_head                             [B, K]
 *   loss = mean_b -log softmax(z_b)[label_b]
 * Batches are padded time-major with per-sequence lengths (the stack's
 * variable-length support: y is zero and the state frozen past a length),
 * so a padded batch computes exactly what each sequence alone would.
 * All trained parameters live in one flat array (embedding.weight, rnn.*,
 * head.weight, head.bias); the feature scaling is fixed data statistics.
 * Also here: prediction in length-sorted batches, initialisation from a
 * language model (Dai & Le 2015), and checkpoints (docs/classify.md). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"
#include "recur/classify.h"
#include "recur/nn.h"
#include "recur/safetensors.h"

#define CLASSIFIER_FORMAT 1
#define MAX_DIM (1 << 20)
#define MAX_CLASSES 100000

/* Records "<prefix><the current message>" with status (the message is
 * copied first: recur__error writes over it). */
static int with_context(int status, const char *fmt, ...) RECUR_PRINTF(2, 3);
static int with_context(int status, const char *fmt, ...)
{
    char prefix[512], message[768];
    snprintf(message, sizeof message, "%s", recur_last_error());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    return recur__error(status, "%s%s", prefix, message);
}

struct recur_classifier {
    recur_classifier_config config;
    int I, P;                  /* rnn input size, pooled size */
    recur_rnn *rnn;
    float *params, *grads;     /* [size] */
    size_t size;
    size_t off_embed, off_rnn, off_head_w, off_head_b;
    int tensor_count;
    recur_param_view *views;
    char **class_names;        /* [K] */
    float *mean, *std;         /* [C] feature scaling */
    /* workspace, grown on demand: rows = T*B */
    size_t cap_rows, cap_B;
    int32_t *ids;              /* [T, B] */
    float *x;                  /* [T, B, I] */
    float *in_mask;            /* [T, B, I] embedding dropout mask (scaled) */
    float *dx;                 /* [T, B, I] */
    float *y, *dy;             /* [T, B, P] */
    int *lengths;              /* [B] */
    float *hn, *dhn;           /* [L*D, B, H] */
    float *pooled;             /* [B, P] after dropout */
    float *mask;               /* [B, P] dropout mask (scaled) */
    int *argmax;               /* [B, P] max pooling: the winning step */
    float *dpooled;            /* [B, P] */
    float *logits;             /* [B, K], reused for dlogits */
    int32_t *targets;          /* [B] */
};

recur_classifier_config recur_classifier_config_default(void)
{
    recur_classifier_config c;
    memset(&c, 0, sizeof c);
    c.input = RECUR_SEQ_TOKENS;
    c.embedding_size = 64;
    c.cell = RECUR_CELL_LSTM;
    c.hidden_size = 128;
    c.num_layers = 1;
    c.pool = RECUR_POOL_MEAN;
    return c;
}

const char *recur_pool_name(recur_pool pool)
{
    switch (pool) {
    case RECUR_POOL_LAST:
        return "last";
    case RECUR_POOL_MEAN:
        return "mean";
    case RECUR_POOL_MAX:
        return "max";
    }
    return "?";
}

int recur_pool_parse(const char *name, recur_pool *out)
{
    static const recur_pool all[] = {RECUR_POOL_LAST, RECUR_POOL_MEAN, RECUR_POOL_MAX};
    for (int i = 0; name && out && i < 3; i++)
        if (strcmp(name, recur_pool_name(all[i])) == 0) {
            *out = all[i];
            return RECUR_OK;
        }
    return recur__error(RECUR_E_INVALID, "unknown pooling '%s' (known: last, mean, max)",
                        name ? name : "(null)");
}

static int probability_ok(float p) { return p >= 0.0f && p < 1.0f; }

int recur_classifier_config_check(const recur_classifier_config *c)
{
    if (!c)
        return recur__error(RECUR_E_INVALID, "classifier config is NULL");
    if (c->input != RECUR_SEQ_TOKENS && c->input != RECUR_SEQ_FEATURES)
        return recur__error(RECUR_E_INVALID, "classifier config: unknown input kind %d",
                            (int)c->input);
    if (c->input == RECUR_SEQ_TOKENS &&
        (c->vocab_size < 1 || c->vocab_size > (1 << 24) || c->embedding_size < 1 ||
         c->embedding_size > MAX_DIM))
        return recur__error(RECUR_E_INVALID, "classifier config: vocab_size %d and "
                            "embedding_size %d must be positive", c->vocab_size,
                            c->embedding_size);
    if (c->input == RECUR_SEQ_FEATURES && (c->feature_size < 1 || c->feature_size > MAX_DIM))
        return recur__error(RECUR_E_INVALID, "classifier config: feature_size %d must be "
                            "positive", c->feature_size);
    if (c->num_classes < 2 || c->num_classes > MAX_CLASSES)
        return recur__error(RECUR_E_INVALID, "classifier config: num_classes %d outside 2..%d",
                            c->num_classes, MAX_CLASSES);
    if ((unsigned)c->pool > RECUR_POOL_MAX)
        return recur__error(RECUR_E_INVALID, "classifier config: unknown pooling %d",
                            (int)c->pool);
    if (!probability_ok(c->dropout) || !probability_ok(c->rnn_dropout) ||
        !probability_ok(c->embed_dropout))
        return recur__error(RECUR_E_INVALID, "classifier config: dropout probabilities must "
                            "lie in [0, 1)");
    recur_rnn_config rc = recur_rnn_config_default();
    rc.cell = c->cell;
    rc.input_size = c->input == RECUR_SEQ_TOKENS ? c->embedding_size : c->feature_size;
    rc.hidden_size = c->hidden_size;
    rc.num_layers = c->num_layers;
    rc.bidirectional = c->bidirectional;
    rc.dropout = c->rnn_dropout;
    return recur_rnn_config_check(&rc);
}

static void free_workspace(recur_classifier *m)
{
    recur__free(m->ids);
    recur__free(m->x);
    recur__free(m->in_mask);
    recur__free(m->dx);
    recur__free(m->y);
    recur__free(m->dy);
    recur__free(m->lengths);
    recur__free(m->hn);
    recur__free(m->dhn);
    recur__free(m->pooled);
    recur__free(m->mask);
    recur__free(m->argmax);
    recur__free(m->dpooled);
    recur__free(m->logits);
    recur__free(m->targets);
    m->ids = NULL;
    m->x = m->in_mask = m->dx = m->y = m->dy = m->hn = m->dhn = NULL;
    m->pooled = m->mask = m->dpooled = m->logits = NULL;
    m->lengths = m->argmax = NULL;
    m->targets = NULL;
    m->cap_rows = m->cap_B = 0;
}

void recur_classifier_free(recur_classifier *m)
{
    if (!m)
        return;
    recur_rnn_free(m->rnn);
    recur__free(m->params);
    recur__free(m->grads);
    recur__free(m->views);
    for (int k = 0; m->class_names && k < m->config.num_classes; k++)
        recur__free(m->class_names[k]);
    recur__free(m->class_names);
    recur__free(m->mean);
    recur__free(m->std);
    free_workspace(m);
    recur__free(m);
}

static void add_view(recur_classifier *m, const char *name, int ndim, int64_t d0, int64_t d1,
                     size_t offset)
{
    recur_param_view *v = &m->views[m->tensor_count++];
    size_t len = strlen(name);
    if (len >= sizeof v->name)
        len = sizeof v->name - 1; /* cannot happen: stack names are short */
    memcpy(v->name, name, len);
    v->name[len] = '\0';
    v->ndim = ndim;
    v->shape[0] = d0;
    v->shape[1] = ndim > 1 ? d1 : 0;
    v->offset = offset;
    v->numel = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1);
}

int recur_classifier_create(const recur_classifier_config *config, recur_classifier **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_classifier_create: out is NULL");
    *out = NULL;
    int status = recur_classifier_config_check(config);
    if (status)
        return status;
    recur_classifier *m = recur__calloc(1, sizeof *m);
    if (!m)
        return recur__error(RECUR_E_NOMEM, "out of memory");
    m->config = *config;
    const recur_classifier_config *c = &m->config;
    const int tokens = c->input == RECUR_SEQ_TOKENS;
    const int D = c->bidirectional ? 2 : 1;
    m->I = tokens ? c->embedding_size : c->feature_size;
    m->P = D * c->hidden_size;
    recur_rnn_config rc = recur_rnn_config_default();
    rc.cell = c->cell;
    rc.input_size = m->I;
    rc.hidden_size = c->hidden_size;
    rc.num_layers = c->num_layers;
    rc.bidirectional = c->bidirectional;
    rc.dropout = c->rnn_dropout;
    const size_t rnn_size = recur_rnn_param_size(&rc);
    const size_t embed = tokens ? (size_t)c->vocab_size * (size_t)c->embedding_size : 0;
    const size_t head = (size_t)c->num_classes * (size_t)m->P;
    m->off_embed = 0;
    m->off_rnn = embed;
    m->off_head_w = embed + rnn_size;
    m->off_head_b = m->off_head_w + head;
    m->size = m->off_head_b + (size_t)c->num_classes;
    m->params = recur__calloc(m->size, sizeof *m->params);
    m->grads = recur__calloc(m->size, sizeof *m->grads);
    m->class_names = recur__calloc((size_t)c->num_classes, sizeof *m->class_names);
    const size_t C = tokens ? 1 : (size_t)c->feature_size;
    m->mean = recur__calloc(C, sizeof *m->mean);
    m->std = recur__malloc(C * sizeof *m->std);
    if (!m->params || !m->grads || !m->class_names || !m->mean || !m->std) {
        recur_classifier_free(m);
        return recur__error(RECUR_E_NOMEM, "out of memory for a classifier of %zu parameters",
                            m->size);
    }
    for (size_t i = 0; i < C; i++)
        m->std[i] = 1.0f;
    for (int k = 0; k < c->num_classes && !status; k++) {
        char name[16];
        snprintf(name, sizeof name, "%d", k);
        m->class_names[k] = recur__strdup(name);
        if (!m->class_names[k])
            status = recur__error(RECUR_E_NOMEM, "out of memory");
    }
    if (!status)
        status = recur_rnn_create(&rc, m->params + m->off_rnn, m->grads + m->off_rnn, &m->rnn);
    if (!status) {
        const int rnn_tensors = recur_rnn_tensor_count(m->rnn);
        m->views = recur__calloc((size_t)rnn_tensors + 3, sizeof *m->views);
        if (!m->views)
            status = recur__error(RECUR_E_NOMEM, "out of memory");
        if (!status && tokens)
            add_view(m, "embedding.weight", 2, c->vocab_size, c->embedding_size, 0);
        for (int i = 0; !status && i < rnn_tensors; i++) {
            const recur_param_view *v = recur_rnn_tensor_at(m->rnn, i);
            char name[64];
            snprintf(name, sizeof name, "rnn.%s", v->name);
            add_view(m, name, v->ndim, v->shape[0], v->shape[1], m->off_rnn + v->offset);
        }
        if (!status) {
            add_view(m, "head.weight", 2, c->num_classes, m->P, m->off_head_w);
            add_view(m, "head.bias", 1, c->num_classes, 0, m->off_head_b);
        }
    }
    if (status) {
        recur_classifier_free(m);
        return status;
    }
    *out = m;
    return RECUR_OK;
}

const recur_classifier_config *recur_classifier_get_config(const recur_classifier *m)
{
    return m ? &m->config : NULL;
}
float *recur_classifier_params(recur_classifier *m) { return m ? m->params : NULL; }
float *recur_classifier_grads(recur_classifier *m) { return m ? m->grads : NULL; }
size_t recur_classifier_size(const recur_classifier *m) { return m ? m->size : 0; }

void recur_classifier_zero_grad(recur_classifier *m)
{
    if (m)
        memset(m->grads, 0, m->size * sizeof *m->grads);
}

int recur_classifier_tensor_count(const recur_classifier *m) { return m ? m->tensor_count : 0; }

const recur_param_view *recur_classifier_tensor_at(const recur_classifier *m, int i)
{
    return m && i >= 0 && i < m->tensor_count ? &m->views[i] : NULL;
}

const recur_param_view *recur_classifier_tensor_find(const recur_classifier *m, const char *name)
{
    for (int i = 0; m && name && i < m->tensor_count; i++)
        if (strcmp(m->views[i].name, name) == 0)
            return &m->views[i];
    return NULL;
}

int recur_classifier_set_classes(recur_classifier *m, const char *const *names)
{
    if (!m || !names)
        return recur__error(RECUR_E_INVALID, "recur_classifier_set_classes: an argument is NULL");
    const int K = m->config.num_classes;
    for (int k = 0; k < K; k++) {
        if (!names[k] || !names[k][0])
            return recur__error(RECUR_E_INVALID, "class %d has no name", k);
        for (int j = 0; j < k; j++)
            if (strcmp(names[j], names[k]) == 0)
                return recur__error(RECUR_E_INVALID, "class name '%s' appears twice", names[k]);
    }
    for (int k = 0; k < K; k++) {
        char *copy = recur__strdup(names[k]);
        if (!copy)
            return recur__error(RECUR_E_NOMEM, "out of memory");
        recur__free(m->class_names[k]);
        m->class_names[k] = copy;
    }
    return RECUR_OK;
}

const char *recur_classifier_class_name(const recur_classifier *m, int k)
{
    return m && k >= 0 && k < m->config.num_classes ? m->class_names[k] : NULL;
}

int recur_classifier_set_scaling(recur_classifier *m, const float *mean, const float *std)
{
    if (!m || !mean || !std || m->config.input != RECUR_SEQ_FEATURES)
        return recur__error(RECUR_E_INVALID, "recur_classifier_set_scaling: a feature model, "
                            "mean and std are needed");
    for (int c = 0; c < m->config.feature_size; c++)
        if (!isfinite(mean[c]) || !(std[c] > 0.0f) || !isfinite(std[c]))
            return recur__error(RECUR_E_INVALID, "feature %d: mean %g, std %g (std must be "
                                "positive and both finite)", c, (double)mean[c], (double)std[c]);
    memcpy(m->mean, mean, (size_t)m->config.feature_size * sizeof *mean);
    memcpy(m->std, std, (size_t)m->config.feature_size * sizeof *std);
    return RECUR_OK;
}

void recur_classifier_get_scaling(const recur_classifier *m, const float **mean,
                                  const float **std)
{
    if (mean)
        *mean = m ? m->mean : NULL;
    if (std)
        *std = m ? m->std : NULL;
}

void recur_classifier_init(recur_classifier *m, recur_rng *rng)
{
    if (!m || !rng)
        return;
    if (m->config.input == RECUR_SEQ_TOKENS) {
        const size_t n = (size_t)m->config.vocab_size * (size_t)m->config.embedding_size;
        for (size_t i = 0; i < n; i++)
            m->params[m->off_embed + i] = (float)recur_rng_normal(rng);
    }
    recur_rnn_init(m->rnn, rng);
    const float k = 1.0f / sqrtf((float)m->P);
    for (size_t i = m->off_head_w; i < m->size; i++)
        m->params[i] = (2.0f * recur_rng_uniform(rng) - 1.0f) * k;
}

int recur_classifier_load_lm(recur_classifier *m, recur_lm *lm, const int32_t *lm_row,
                             int *copied)
{
    if (copied)
        *copied = 0;
    if (!m || !lm)
        return recur__error(RECUR_E_INVALID, "recur_classifier_load_lm: an argument is NULL");
    const recur_classifier_config *c = &m->config;
    const recur_lm_config *lc = recur_lm_get_config(lm);
    if (c->input != RECUR_SEQ_TOKENS)
        return recur__error(RECUR_E_INVALID, "a language model can initialise a text "
                            "classifier only");
    if (lc->cell != c->cell || lc->embedding_size != c->embedding_size ||
        lc->hidden_size != c->hidden_size)
        return recur__error(RECUR_E_SHAPE, "the language model is %s with embedding %d and "
                            "hidden %d; the classifier is %s with embedding %d and hidden %d",
                            recur_cell_name(lc->cell), lc->embedding_size, lc->hidden_size,
                            recur_cell_name(c->cell), c->embedding_size, c->hidden_size);
    const float *lp = recur_lm_params(lm);
    if (lm_row) {
        const recur_param_view *ev = recur_lm_tensor_find(lm, "embedding.weight");
        const size_t E = (size_t)c->embedding_size;
        for (int v = 0; v < c->vocab_size; v++) {
            if (lm_row[v] < 0)
                continue;
            if (lm_row[v] >= lc->vocab_size)
                return recur__error(RECUR_E_INVALID, "token %d maps to row %d of a %d-token "
                                    "language model", v, lm_row[v], lc->vocab_size);
            memcpy(m->params + m->off_embed + (size_t)v * E, lp + ev->offset +
                   (size_t)lm_row[v] * E, E * sizeof(float));
        }
    }
    int count = 0;
    for (int i = 0; i < m->tensor_count; i++) {
        const recur_param_view *v = &m->views[i];
        if (strncmp(v->name, "rnn.", 4) != 0 || strstr(v->name, "_reverse"))
            continue;
        const recur_param_view *from = recur_lm_tensor_find(lm, v->name);
        if (!from)
            continue; /* a layer the language model does not have */
        if (from->ndim != v->ndim || from->shape[0] != v->shape[0] ||
            from->shape[1] != v->shape[1])
            return recur__error(RECUR_E_SHAPE, "tensor '%s' is [%lld, %lld] in the language "
                                "model, [%lld, %lld] in the classifier", v->name,
                                (long long)from->shape[0], (long long)from->shape[1],
                                (long long)v->shape[0], (long long)v->shape[1]);
        memcpy(m->params + v->offset, lp + from->offset, v->numel * sizeof(float));
        count++;
    }
    if (copied)
        *copied = count;
    return RECUR_OK;
}

/* ---- batches ------------------------------------------------------------------ */

static int grow_f(float **p, size_t n)
{
    recur__free(*p);
    *p = recur__malloc((n ? n : 1) * sizeof **p);
    return *p ? RECUR_OK : RECUR_E_NOMEM;
}

static int reserve(recur_classifier *m, size_t rows, size_t B)
{
    const size_t I = (size_t)m->I, P = (size_t)m->P, K = (size_t)m->config.num_classes;
    const size_t LDH = (size_t)m->config.num_layers * (m->config.bidirectional ? 2 : 1) *
                       (size_t)m->config.hidden_size;
    size_t check;
    if (!recur__mul_size(rows, I > P ? I : P, &check) || !recur__mul_size(B, LDH, &check))
        return recur__error(RECUR_E_NOMEM, "batch too large");
    if (rows > m->cap_rows) {
        recur__free(m->ids);
        m->ids = recur__malloc(rows * sizeof *m->ids);
        if (!m->ids || grow_f(&m->x, rows * I) || grow_f(&m->in_mask, rows * I) ||
            grow_f(&m->dx, rows * I) || grow_f(&m->y, rows * P) || grow_f(&m->dy, rows * P)) {
            free_workspace(m);
            return recur__error(RECUR_E_NOMEM, "out of memory for a batch of %zu steps", rows);
        }
        m->cap_rows = rows;
    }
    if (B > m->cap_B) {
        recur__free(m->lengths);
        recur__free(m->argmax);
        recur__free(m->targets);
        m->lengths = recur__malloc(B * sizeof *m->lengths);
        m->argmax = recur__malloc(B * P * sizeof *m->argmax);
        m->targets = recur__malloc(B * sizeof *m->targets);
        if (!m->lengths || !m->argmax || !m->targets || grow_f(&m->hn, B * LDH) ||
            grow_f(&m->dhn, B * LDH) || grow_f(&m->pooled, B * P) || grow_f(&m->mask, B * P) ||
            grow_f(&m->dpooled, B * P) || grow_f(&m->logits, B * K)) {
            free_workspace(m);
            return recur__error(RECUR_E_NOMEM, "out of memory for a batch of %zu", B);
        }
        m->cap_B = B;
    }
    return RECUR_OK;
}

static int check_set(const recur_classifier *m, const recur_seqset *set, const size_t *index,
                     size_t n, int need_labels)
{
    if (!set || !index || n == 0)
        return recur__error(RECUR_E_INVALID, "classifier: a set and at least one index are "
                            "needed");
    if (set->kind != m->config.input)
        return recur__error(RECUR_E_INVALID, "classifier: the model takes %s, the set holds %s",
                            m->config.input == RECUR_SEQ_TOKENS ? "tokens" : "features",
                            set->kind == RECUR_SEQ_TOKENS ? "tokens" : "features");
    if (set->kind == RECUR_SEQ_FEATURES && set->feature_size != m->config.feature_size)
        return recur__error(RECUR_E_INVALID, "classifier: the model takes %d features per "
                            "step, the set has %d", m->config.feature_size, set->feature_size);
    for (size_t k = 0; k < n; k++) {
        const size_t i = index[k];
        if (i >= set->count)
            return recur__error(RECUR_E_INVALID, "classifier: index %zu outside the set of %zu",
                                i, set->count);
        if (set->offsets[i + 1] == set->offsets[i])
            return recur__error(RECUR_E_INVALID, "classifier: sequence %zu (line %lld) is "
                                "empty", i, (long long)set->lines[i]);
        if (need_labels && (set->labels[i] < 0 || set->labels[i] >= m->config.num_classes))
            return recur__error(RECUR_E_INVALID, "classifier: sequence %zu (line %lld) has "
                                "label %d outside 0..%d", i, (long long)set->lines[i],
                                set->labels[i], m->config.num_classes - 1);
    }
    return RECUR_OK;
}

/* Forward pass of one batch up to the logits [B, K]. train: keeps what
 * backward needs and draws dropout from rng. */
static int forward(recur_classifier *m, const recur_seqset *set, const size_t *index, size_t n,
                   int train, recur_rng *rng)
{
    const recur_classifier_config *c = &m->config;
    const int B = (int)n;
    int T = 0;
    for (size_t k = 0; k < n; k++) {
        size_t len = recur_seqset_length(set, index[k]);
        if (len > (size_t)MAX_DIM)
            return recur__error(RECUR_E_INVALID, "classifier: sequence %zu has %zu steps (at "
                                "most %d)", index[k], len, MAX_DIM);
        if ((int)len > T)
            T = (int)len;
    }
    const size_t rows = (size_t)T * (size_t)B, I = (size_t)m->I, P = (size_t)m->P;
    int status = reserve(m, rows, n);
    if (status)
        return status;
    /* inputs [T, B, I], zero past each length */
    memset(m->x, 0, rows * I * sizeof *m->x);
    for (int b = 0; b < B; b++) {
        const size_t i = index[b], start = set->offsets[i];
        const int len = (int)(set->offsets[i + 1] - start);
        m->lengths[b] = len;
        if (set->labels)
            m->targets[b] = set->labels[i];
        for (int t = 0; t < T; t++) {
            const size_t row = (size_t)t * (size_t)B + (size_t)b;
            float *x = m->x + row * I;
            if (t >= len) {
                m->ids[row] = 0;
                continue;
            }
            if (c->input == RECUR_SEQ_TOKENS) {
                const int32_t id = set->tokens[start + (size_t)t];
                if (id < 0 || id >= c->vocab_size)
                    return recur__error(RECUR_E_INVALID, "classifier: sequence %zu (line %lld) "
                                        "step %d has token id %d outside 0..%d", i,
                                        (long long)set->lines[i], t, id, c->vocab_size - 1);
                m->ids[row] = id;
                memcpy(x, m->params + m->off_embed + (size_t)id * I, I * sizeof *x);
            } else {
                const float *f = set->features + (start + (size_t)t) * I;
                for (size_t j = 0; j < I; j++)
                    x[j] = (f[j] - m->mean[j]) / m->std[j];
            }
        }
    }
    if (train && c->embed_dropout > 0.0f)
        recur_dropout_forward(m->x, rows * I, c->embed_dropout, rng, m->in_mask, m->x);
    recur_rnn_input in = {T, B, m->x, 0, m->lengths, NULL, NULL};
    recur_rnn_output out = {m->y, m->hn, NULL};
    status = recur_rnn_forward(m->rnn, train ? RECUR_MODE_TRAIN : RECUR_MODE_INFER, &in, &out,
                               rng);
    if (status)
        return status;
    /* pooling [B, P] */
    const int D = c->bidirectional ? 2 : 1, H = c->hidden_size, L = c->num_layers;
    for (int b = 0; b < B; b++) {
        float *p = m->pooled + (size_t)b * P;
        const int len = m->lengths[b];
        if (c->pool == RECUR_POOL_LAST) {
            for (int d = 0; d < D; d++)
                memcpy(p + (size_t)d * (size_t)H,
                       m->hn + ((size_t)((L - 1) * D + d) * (size_t)B + (size_t)b) * (size_t)H,
                       (size_t)H * sizeof *p);
        } else if (c->pool == RECUR_POOL_MEAN) {
            memset(p, 0, P * sizeof *p);
            for (int t = 0; t < len; t++) {
                const float *y = m->y + ((size_t)t * (size_t)B + (size_t)b) * P;
                for (size_t j = 0; j < P; j++)
                    p[j] += y[j];
            }
            for (size_t j = 0; j < P; j++)
                p[j] /= (float)len;
        } else {
            int *arg = m->argmax + (size_t)b * P;
            const float *y0 = m->y + (size_t)b * P;
            for (size_t j = 0; j < P; j++) {
                p[j] = y0[j];
                arg[j] = 0;
            }
            for (int t = 1; t < len; t++) {
                const float *y = m->y + ((size_t)t * (size_t)B + (size_t)b) * P;
                for (size_t j = 0; j < P; j++)
                    if (y[j] > p[j]) {
                        p[j] = y[j];
                        arg[j] = t;
                    }
            }
        }
    }
    if (train && c->dropout > 0.0f)
        recur_dropout_forward(m->pooled, n * P, c->dropout, rng, m->mask, m->pooled);
    recur_linear_forward(m->params + m->off_head_w, m->params + m->off_head_b, c->num_classes,
                         m->P, m->pooled, n, m->logits);
    return RECUR_OK;
}

int recur_classifier_train_step(recur_classifier *m, const recur_seqset *set,
                                const size_t *index, size_t n, recur_rng *rng, double *loss)
{
    if (!m || !loss)
        return recur__error(RECUR_E_INVALID, "recur_classifier_train_step: an argument is NULL");
    *loss = NAN;
    const recur_classifier_config *c = &m->config;
    if ((c->dropout > 0.0f || c->rnn_dropout > 0.0f || c->embed_dropout > 0.0f) && !rng)
        return recur__error(RECUR_E_INVALID, "recur_classifier_train_step: dropout needs an "
                            "RNG");
    int status = check_set(m, set, index, n, 1);
    if (status || (status = forward(m, set, index, n, 1, rng)))
        return status;
    const int K = c->num_classes, B = (int)n;
    const size_t P = (size_t)m->P, I = (size_t)m->I;
    status = recur_softmax_xent(m->logits, n, K, m->targets, 1.0f, m->logits, loss, NULL);
    if (status)
        return status;
    /* head: dW += dz^T p, db += sum dz, dp = dz W */
    recur_linear_backward(m->params + m->off_head_w, K, m->P, m->pooled, n, m->logits,
                          m->grads + m->off_head_w, m->grads + m->off_head_b, m->dpooled);
    if (c->dropout > 0.0f)
        for (size_t j = 0; j < n * P; j++)
            m->dpooled[j] *= m->mask[j];
    int T = 0;
    for (int b = 0; b < B; b++)
        if (m->lengths[b] > T)
            T = m->lengths[b];
    const size_t rows = (size_t)T * (size_t)B;
    const int D = c->bidirectional ? 2 : 1, H = c->hidden_size, L = c->num_layers;
    recur_rnn_grad_in gin = {NULL, NULL, NULL};
    if (c->pool == RECUR_POOL_LAST) {
        memset(m->dhn, 0, (size_t)L * (size_t)D * (size_t)B * (size_t)H * sizeof *m->dhn);
        for (int b = 0; b < B; b++)
            for (int d = 0; d < D; d++)
                memcpy(m->dhn + ((size_t)((L - 1) * D + d) * (size_t)B + (size_t)b) * (size_t)H,
                       m->dpooled + (size_t)b * P + (size_t)d * (size_t)H,
                       (size_t)H * sizeof(float));
        gin.dhn = m->dhn;
    } else {
        memset(m->dy, 0, rows * P * sizeof *m->dy);
        for (int b = 0; b < B; b++) {
            const float *dp = m->dpooled + (size_t)b * P;
            const int len = m->lengths[b];
            if (c->pool == RECUR_POOL_MEAN) {
                for (int t = 0; t < len; t++) {
                    float *dy = m->dy + ((size_t)t * (size_t)B + (size_t)b) * P;
                    for (size_t j = 0; j < P; j++)
                        dy[j] = dp[j] / (float)len;
                }
            } else {
                const int *arg = m->argmax + (size_t)b * P;
                for (size_t j = 0; j < P; j++)
                    m->dy[((size_t)arg[j] * (size_t)B + (size_t)b) * P + j] += dp[j];
            }
        }
        gin.dy = m->dy;
    }
    const int tokens = c->input == RECUR_SEQ_TOKENS;
    recur_rnn_grad_out gout = {tokens ? m->dx : NULL, NULL, NULL};
    if ((status = recur_rnn_backward(m->rnn, &gin, &gout)))
        return status;
    if (tokens) {
        /* padded steps carry no gradient; the dropout mask scales the rest */
        for (int t = 0; t < T; t++)
            for (int b = 0; b < B; b++) {
                float *dx = m->dx + ((size_t)t * (size_t)B + (size_t)b) * I;
                if (t >= m->lengths[b])
                    memset(dx, 0, I * sizeof *dx);
                else if (c->embed_dropout > 0.0f) {
                    const float *mk = m->in_mask + ((size_t)t * (size_t)B + (size_t)b) * I;
                    for (size_t j = 0; j < I; j++)
                        dx[j] *= mk[j];
                }
            }
        recur_embedding_backward(m->grads + m->off_embed, (int)I, m->ids, rows, m->dx);
    }
    if (!isfinite(*loss))
        return recur__error(RECUR_E_NUMERIC, "classifier: the loss is not finite");
    return RECUR_OK;
}

typedef struct by_length_ctx {
    size_t index;
    size_t length;
    size_t position;
} by_length_ctx;

static int longer_first(const void *a, const void *b)
{
    const by_length_ctx *x = a, *y = b;
    if (x->length != y->length)
        return x->length > y->length ? -1 : 1;
    return x->position < y->position ? -1 : x->position > y->position;
}

int recur_classifier_predict(recur_classifier *m, const recur_seqset *set, const size_t *index,
                             size_t n, int batch, float *probs, double *loss)
{
    if (loss)
        *loss = NAN;
    if (!m || !probs || batch < 1)
        return recur__error(RECUR_E_INVALID, "recur_classifier_predict: a model, probs and "
                            "batch >= 1 are needed");
    int status = check_set(m, set, index, n, 0);
    if (status)
        return status;
    by_length_ctx *order = recur__malloc(n * sizeof *order);
    size_t *chunk = recur__malloc((size_t)batch * sizeof *chunk);
    if (!order || !chunk) {
        recur__free(order);
        recur__free(chunk);
        return recur__error(RECUR_E_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < n; k++)
        order[k] = (by_length_ctx){index[k], recur_seqset_length(set, index[k]), k};
    qsort(order, n, sizeof *order, longer_first);
    const int K = m->config.num_classes;
    double total = 0.0;
    size_t labelled = 0;
    for (size_t start = 0; start < n && !status; start += (size_t)batch) {
        const size_t count = n - start < (size_t)batch ? n - start : (size_t)batch;
        for (size_t k = 0; k < count; k++)
            chunk[k] = order[start + k].index;
        if ((status = forward(m, set, chunk, count, 0, NULL)))
            break;
        for (size_t k = 0; k < count; k++) {
            const float *z = m->logits + k * (size_t)K;
            float *p = probs + order[start + k].position * (size_t)K;
            float zmax = z[0];
            for (int j = 1; j < K; j++)
                zmax = z[j] > zmax ? z[j] : zmax;
            double sum = 0.0;
            for (int j = 0; j < K; j++)
                sum += exp((double)(z[j] - zmax));
            for (int j = 0; j < K; j++)
                p[j] = (float)(exp((double)(z[j] - zmax)) / sum);
            const int32_t label = set->labels ? set->labels[chunk[k]] : -1;
            if (label >= 0 && label < K) {
                total += -((double)(z[label] - zmax) - log(sum));
                labelled++;
            }
        }
    }
    recur__free(order);
    recur__free(chunk);
    if (status)
        return status;
    if (loss)
        *loss = labelled ? total / (double)labelled : NAN;
    return RECUR_OK;
}

/* ---- checkpoints ------------------------------------------------------------- */

static json_t *config_json(const recur_classifier *m, const recur_tokenizer *tokenizer)
{
    const recur_classifier_config *c = &m->config;
    json_t *obj = json_object(), *classes = json_array(), *tok = NULL;
    int ok = obj && classes;
    for (int k = 0; ok && k < c->num_classes; k++)
        ok = json_array_append_new(classes, json_string(m->class_names[k])) == 0;
    if (ok && tokenizer) {
        char *text = NULL;
        if (recur_tokenizer_to_json(tokenizer, &text))
            ok = 0;
        else {
            json_error_t jerr;
            tok = json_loads(text, 0, &jerr);
            recur_free(text);
            ok = tok != NULL;
        }
    }
#define PUT(key, value) (ok = ok && json_object_set_new(obj, key, value) == 0)
    PUT("format", json_integer(CLASSIFIER_FORMAT));
    PUT("input", json_string(c->input == RECUR_SEQ_TOKENS ? "tokens" : "features"));
    PUT("cell", json_string(recur_cell_name(c->cell)));
    if (c->input == RECUR_SEQ_TOKENS) {
        PUT("vocab_size", json_integer(c->vocab_size));
        PUT("embedding_size", json_integer(c->embedding_size));
    } else {
        PUT("feature_size", json_integer(c->feature_size));
    }
    PUT("hidden_size", json_integer(c->hidden_size));
    PUT("num_layers", json_integer(c->num_layers));
    PUT("bidirectional", json_boolean(c->bidirectional));
    PUT("pool", json_string(recur_pool_name(c->pool)));
    PUT("dropout", json_real(c->dropout));
    PUT("rnn_dropout", json_real(c->rnn_dropout));
    PUT("embed_dropout", json_real(c->embed_dropout));
    PUT("num_classes", json_integer(c->num_classes));
#undef PUT
    if (ok) {
        ok = json_object_set_new(obj, "classes", classes) == 0;
        classes = NULL;
    }
    if (ok && tok) {
        ok = json_object_set_new(obj, "tokenizer", tok) == 0;
        tok = NULL;
    }
    json_decref(classes);
    json_decref(tok);
    if (!ok) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

int recur_classifier_save(const char *path, const recur_classifier *m,
                          const recur_tokenizer *tokenizer, const recur_train_state *train)
{
    if (!path || !m)
        return recur__error(RECUR_E_INVALID, "recur_classifier_save: %s is NULL",
                            path ? "the model" : "path");
    const int tokens = m->config.input == RECUR_SEQ_TOKENS;
    if (tokens != (tokenizer != NULL))
        return recur__error(RECUR_E_INVALID, "recur_classifier_save: a text model needs its "
                            "tokenizer, a feature model none");
    if (tokenizer && recur_tokenizer_size(tokenizer) != m->config.vocab_size)
        return recur__error(RECUR_E_INVALID, "recur_classifier_save: the tokenizer has %d "
                            "tokens, the model's vocab_size is %d",
                            (int)recur_tokenizer_size(tokenizer), m->config.vocab_size);
    recur_st_writer *w = NULL;
    int status = recur_st_writer_create(&w);
    if (status)
        return status;
    for (int i = 0; i < m->tensor_count && !status; i++) {
        const recur_param_view *v = &m->views[i];
        status = recur_st_writer_add(w, v->name, RECUR_DTYPE_F32, v->ndim, v->shape,
                                     m->params + v->offset);
    }
    if (!status && !tokens) {
        const int64_t C = m->config.feature_size;
        status = recur_st_writer_add(w, "scale.mean", RECUR_DTYPE_F32, 1, &C, m->mean);
        if (!status)
            status = recur_st_writer_add(w, "scale.std", RECUR_DTYPE_F32, 1, &C, m->std);
    }
    if (!status) {
        json_t *meta = config_json(m, tokenizer);
        char *text = meta ? json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                                 JSON_REAL_PRECISION(9))
                          : NULL;
        json_decref(meta);
        status = text ? recur_st_writer_metadata(w, "recur_classifier", text)
                      : recur__error(RECUR_E_NOMEM, "out of memory writing the metadata");
        free(text);
    }
    if (!status && train)
        status = recur_train_state_write(w, train, m->size);
    if (!status)
        status = recur_st_writer_save(w, path);
    recur_st_writer_free(w);
    return status;
}

static int get_int(const char *path, json_t *obj, const char *key, int min, int max, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return recur__error(RECUR_E_FORMAT, "%s: metadata 'recur_classifier': \"%s\" must be an "
                            "integer in [%d, %d]", path, key, min, max);
    *out = (int)json_integer_value(v);
    return RECUR_OK;
}

static int get_prob(const char *path, json_t *obj, const char *key, float *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *out = 0.0f;
        return RECUR_OK;
    }
    if (!json_is_number(v) || !(json_number_value(v) >= 0.0) || !(json_number_value(v) < 1.0))
        return recur__error(RECUR_E_FORMAT, "%s: metadata 'recur_classifier': \"%s\" must be a "
                            "number in [0, 1)", path, key);
    *out = (float)json_number_value(v);
    return RECUR_OK;
}

static int read_config(const char *path, json_t *meta, recur_classifier_config *c,
                       recur_tokenizer **tokenizer)
{
    *c = recur_classifier_config_default();
    int format = 0, status;
    json_t *input = json_object_get(meta, "input"), *cell = json_object_get(meta, "cell");
    json_t *pool = json_object_get(meta, "pool"), *bi = json_object_get(meta, "bidirectional");
    if ((status = get_int(path, meta, "format", 1, 1 << 30, &format)))
        return status;
    if (format > CLASSIFIER_FORMAT)
        return recur__error(RECUR_E_UNSUPPORTED, "%s: classifier format %d is newer than this "
                            "recur reads (%d): upgrade recur", path, format, CLASSIFIER_FORMAT);
    if (!json_is_string(input) || (strcmp(json_string_value(input), "tokens") != 0 &&
                                   strcmp(json_string_value(input), "features") != 0))
        return recur__error(RECUR_E_FORMAT, "%s: metadata 'recur_classifier': \"input\" must be "
                            "\"tokens\" or \"features\"", path);
    c->input = strcmp(json_string_value(input), "tokens") == 0 ? RECUR_SEQ_TOKENS
                                                               : RECUR_SEQ_FEATURES;
    if (!json_is_string(cell) || recur_cell_parse(json_string_value(cell), &c->cell))
        return recur__error(RECUR_E_FORMAT, "%s: metadata 'recur_classifier': unknown cell", path);
    if (!json_is_string(pool) || recur_pool_parse(json_string_value(pool), &c->pool))
        return recur__error(RECUR_E_FORMAT, "%s: metadata 'recur_classifier': unknown pool", path);
    if (!json_is_boolean(bi))
        return recur__error(RECUR_E_FORMAT, "%s: metadata 'recur_classifier': \"bidirectional\" "
                            "must be true or false", path);
    c->bidirectional = json_is_true(bi);
    if ((status = get_int(path, meta, "hidden_size", 1, MAX_DIM, &c->hidden_size)) ||
        (status = get_int(path, meta, "num_layers", 1, 1024, &c->num_layers)) ||
        (status = get_int(path, meta, "num_classes", 2, MAX_CLASSES, &c->num_classes)) ||
        (status = get_prob(path, meta, "dropout", &c->dropout)) ||
        (status = get_prob(path, meta, "rnn_dropout", &c->rnn_dropout)) ||
        (status = get_prob(path, meta, "embed_dropout", &c->embed_dropout)))
        return status;
    if (c->input == RECUR_SEQ_TOKENS) {
        if ((status = get_int(path, meta, "vocab_size", 1, 1 << 24, &c->vocab_size)) ||
            (status = get_int(path, meta, "embedding_size", 1, MAX_DIM, &c->embedding_size)))
            return status;
        json_t *tok = json_object_get(meta, "tokenizer");
        char *text = tok ? json_dumps(tok, JSON_COMPACT) : NULL;
        if (!text)
            return recur__error(RECUR_E_FORMAT, "%s: metadata 'recur_classifier' has no "
                                "\"tokenizer\"", path);
        status = recur_tokenizer_from_json(text, tokenizer);
        free(text);
        if (status)
            return with_context(RECUR_E_FORMAT, "%s: ", path);
        if (recur_tokenizer_size(*tokenizer) != c->vocab_size)
            return recur__error(RECUR_E_FORMAT, "%s: the tokenizer has %d tokens, vocab_size "
                                "is %d", path, (int)recur_tokenizer_size(*tokenizer),
                                c->vocab_size);
    } else if ((status = get_int(path, meta, "feature_size", 1, MAX_DIM, &c->feature_size))) {
        return status;
    }
    if (recur_classifier_config_check(c))
        return with_context(RECUR_E_FORMAT, "%s: ", path);
    return RECUR_OK;
}

static int read_tensor(const char *path, const recur_st *st, const char *name, int ndim,
                       const int64_t *shape, float *out)
{
    const recur_st_tensor *t = recur_st_find(st, name);
    if (!t)
        return recur__error(RECUR_E_FORMAT, "%s: missing tensor '%s'", path, name);
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = t->shape[d] == shape[d];
    if (!same)
        return recur__error(RECUR_E_FORMAT, "%s: tensor '%s' has the wrong shape (expected "
                            "[%lld%s%lld])", path, name, (long long)shape[0], ndim > 1 ? ", " : "",
                            ndim > 1 ? (long long)shape[1] : 0LL);
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= (size_t)shape[d];
    if (recur_st_read_f32(st, name, out, n))
        return with_context(RECUR_E_FORMAT, "%s: tensor '%s': ", path, name);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(out[i]))
            return recur__error(RECUR_E_FORMAT, "%s: tensor '%s' holds NaN or Inf values", path,
                                name);
    return RECUR_OK;
}

int recur_classifier_load(const char *path, recur_classifier **out, recur_tokenizer **tokenizer,
                          recur_train_state **train)
{
    if (out)
        *out = NULL;
    if (tokenizer)
        *tokenizer = NULL;
    if (train)
        *train = NULL;
    if (!path || !out || !tokenizer)
        return recur__error(RECUR_E_INVALID, "recur_classifier_load: an argument is NULL");
    recur_st *st = NULL;
    int status = recur_st_open(path, &st);
    if (status)
        return status;
    json_t *meta = NULL;
    recur_classifier *m = NULL;
    recur_tokenizer *tok = NULL;
    const char *text = recur_st_metadata(st, "recur_classifier");
    if (!text) {
        status = recur__error(RECUR_E_FORMAT, "%s: no \"recur_classifier\" entry in the "
                              "metadata: not a recur classifier checkpoint%s", path,
                              recur_st_metadata(st, "recur") ? " (it is a language model)" : "");
        goto done;
    }
    json_error_t jerr;
    meta = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!meta || !json_is_object(meta)) {
        status = recur__error(RECUR_E_FORMAT, "%s: metadata 'recur_classifier' is not a valid "
                              "JSON object", path);
        goto done;
    }
    recur_classifier_config c;
    if ((status = read_config(path, meta, &c, &tok)) || (status = recur_classifier_create(&c, &m)))
        goto done;
    json_t *classes = json_object_get(meta, "classes");
    if (!json_is_array(classes) || json_array_size(classes) != (size_t)c.num_classes) {
        status = recur__error(RECUR_E_FORMAT, "%s: \"classes\" must list %d names", path,
                              c.num_classes);
        goto done;
    }
    {
        const char **names = recur__calloc((size_t)c.num_classes, sizeof *names);
        if (!names) {
            status = recur__error(RECUR_E_NOMEM, "out of memory");
            goto done;
        }
        for (int k = 0; k < c.num_classes; k++)
            names[k] = json_string_value(json_array_get(classes, (size_t)k));
        status = recur_classifier_set_classes(m, names);
        recur__free(names);
        if (status) {
            status = with_context(RECUR_E_FORMAT, "%s: classes: ", path);
            goto done;
        }
    }
    for (int i = 0; i < m->tensor_count && !status; i++) {
        const recur_param_view *v = &m->views[i];
        status = read_tensor(path, st, v->name, v->ndim, v->shape, m->params + v->offset);
    }
    if (!status && c.input == RECUR_SEQ_FEATURES) {
        const int64_t C = c.feature_size;
        status = read_tensor(path, st, "scale.mean", 1, &C, m->mean);
        if (!status)
            status = read_tensor(path, st, "scale.std", 1, &C, m->std);
        for (int j = 0; !status && j < c.feature_size; j++)
            if (!(m->std[j] > 0.0f))
                status = recur__error(RECUR_E_FORMAT, "%s: scale.std[%d] is not positive", path,
                                      j);
    }
    for (int i = 0; !status && i < recur_st_count(st); i++) {
        const char *name = recur_st_at(st, i)->name;
        if (strncmp(name, "optimizer.", 10) == 0 || recur_classifier_tensor_find(m, name) ||
            (c.input == RECUR_SEQ_FEATURES &&
             (strcmp(name, "scale.mean") == 0 || strcmp(name, "scale.std") == 0)))
            continue;
        status = recur__error(RECUR_E_FORMAT, "%s: unexpected tensor '%s'", path, name);
    }
    if (!status && train)
        status = recur_train_state_read(st, path, m->size, train);
done:
    json_decref(meta);
    recur_st_free(st);
    if (status) {
        recur_classifier_free(m);
        recur_tokenizer_free(tok);
        return status;
    }
    *out = m;
    *tokenizer = tok;
    return RECUR_OK;
}
