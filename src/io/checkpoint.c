/* checkpoint.c - language-model checkpoints: the model tensors under
 * PyTorch's state_dict names plus a "recur" JSON description in the
 * safetensors metadata, and optionally the training state (optimizer
 * moments, carried hidden state, "recur_train" JSON) that lets a run
 * continue exactly. The format is documented in docs/checkpoints.md.
 *
 * Loading trusts nothing: every JSON field is type- and range-checked,
 * every tensor's presence, dtype and shape is checked against the
 * configuration, and weights must be finite. Numbers that must survive a
 * round trip bit for bit (the RNG state, the data fingerprint) are written
 * as decimal strings, because JSON numbers are doubles to most readers. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"
#include "io/json_util.h"
#include "recur/checkpoint.h"
#include "recur/safetensors.h"

/* Upper bounds that keep a hostile header from asking for absurd models. */
#define MAX_DIM (1 << 20)
#define MAX_LAYERS 1024
#define MAX_OPTIONS 4096

/* The loaded form: the public struct first, then what it owns. */
typedef struct owned_train_state {
    recur_train_state pub;
    float *optim_state;
    float *weights;
    float *h;
    float *c;
    char **names;
    char **values;
} owned_train_state;

/* Records "<path>: <message>" with the given status. */
static int fail(const char *path, int status, const char *fmt, ...) RECUR_PRINTF(3, 4);
static int fail(const char *path, int status, const char *fmt, ...)
{
    char message[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return recur__error(status, "%s: %s", path, message);
}

/* Prefixes the current message with the path, keeping the status. */
static int fail_with_last(const char *path, int status, const char *what)
{
    char message[768];
    snprintf(message, sizeof message, "%s", recur_last_error());
    return recur__error(status, "%s: %s%s", path, what, message);
}

/* ---- Optimizer buffer names (the order of recur_optim_state) ---------- */

static int optim_buffer_names(const recur_optim_config *c, const char *names[3])
{
    int k = 0;
    switch (c->kind) {
    case RECUR_OPTIM_SGD:
        if (c->momentum > 0.0f)
            names[k++] = "momentum_buffer";
        break;
    case RECUR_OPTIM_ADAM:
    case RECUR_OPTIM_ADAMW:
        names[k++] = "exp_avg";
        names[k++] = "exp_avg_sq";
        if (c->amsgrad)
            names[k++] = "max_exp_avg_sq";
        break;
    case RECUR_OPTIM_RMSPROP:
        names[k++] = "square_avg";
        if (c->momentum > 0.0f)
            names[k++] = "momentum_buffer";
        if (c->centered)
            names[k++] = "grad_avg";
        break;
    case RECUR_OPTIM_ADAGRAD:
        names[k++] = "sum";
        break;
    }
    return k;
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* ---- JSON building ------------------------------------------------------ */

/* json_object_set_new that reports failure (a NULL value means allocation
 * failed). */
static json_t *u64_string(uint64_t v)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, v);
    return json_string(text);
}

/* The "recur" object describing the model. */
static json_t *model_json(const recur_lm_config *cfg, const recur_vocab *vocab)
{
    char *vocab_text = NULL;
    if (recur_vocab_to_json(vocab, &vocab_text))
        return NULL;
    json_error_t jerr;
    json_t *vocab_array = json_loads(vocab_text, JSON_ALLOW_NUL, &jerr);
    recur_free(vocab_text);
    json_t *obj = json_object();
    if (!vocab_array || !obj || !recur__json_put(obj, "format", json_integer(RECUR_CHECKPOINT_FORMAT)) ||
        !recur__json_put(obj, "cell", json_string(recur_cell_name(cfg->cell))) ||
        !recur__json_put(obj, "vocab_size", json_integer(cfg->vocab_size)) ||
        !recur__json_put(obj, "embedding_size", json_integer(cfg->embedding_size)) ||
        !recur__json_put(obj, "hidden_size", json_integer(cfg->hidden_size)) ||
        !recur__json_put(obj, "num_layers", json_integer(cfg->num_layers)) ||
        !recur__json_put(obj, "bidirectional", json_false()) ||
        !recur__json_put(obj, "dropout", recur__json_float(cfg->dropout)) ||
        !recur__json_put(obj, "embedding_dropout", recur__json_float(cfg->embedding_dropout)) ||
        !recur__json_put(obj, "output_dropout", recur__json_float(cfg->output_dropout)) ||
        !recur__json_put(obj, "weight_dropout", recur__json_float(cfg->weight_dropout)) ||
        !recur__json_put(obj, "vocab_kind", json_string(recur_vocab_kind_name(recur_vocab_get_kind(vocab)))) ||
        !recur__json_put(obj, "vocab", vocab_array)) {
        json_decref(obj);
        recur__error(RECUR_E_NOMEM, "out of memory building the checkpoint metadata");
        return NULL;
    }
    return obj;
}

static json_t *optim_json(const recur_optim_config *c, int64_t step, const char *const *buffers,
                          int nbuffers)
{
    json_t *obj = json_object(), *names = json_array();
    int ok = obj && names;
    for (int i = 0; ok && i < nbuffers; i++)
        ok = json_array_append_new(names, json_string(buffers[i])) == 0;
    ok = ok && recur__json_put(obj, "kind", json_string(recur_optim_name(c->kind))) &&
         recur__json_put(obj, "lr", recur__json_float(c->lr)) && recur__json_put(obj, "momentum", recur__json_float(c->momentum)) &&
         recur__json_put(obj, "dampening", recur__json_float(c->dampening)) &&
         recur__json_put(obj, "nesterov", json_boolean(c->nesterov)) &&
         recur__json_put(obj, "weight_decay", recur__json_float(c->weight_decay)) &&
         recur__json_put(obj, "beta1", recur__json_float(c->beta1)) && recur__json_put(obj, "beta2", recur__json_float(c->beta2)) &&
         recur__json_put(obj, "eps", recur__json_float(c->eps)) && recur__json_put(obj, "amsgrad", json_boolean(c->amsgrad)) &&
         recur__json_put(obj, "alpha", recur__json_float(c->alpha)) &&
         recur__json_put(obj, "centered", json_boolean(c->centered)) &&
         recur__json_put(obj, "lr_decay", recur__json_float(c->lr_decay)) &&
         recur__json_put(obj, "initial_accumulator_value", recur__json_float(c->initial_accumulator_value)) &&
         recur__json_put(obj, "step", json_integer(step));
    if (ok) {
        ok = json_object_set_new(obj, "buffers", names) == 0;
        names = NULL;
    }
    json_decref(names);
    if (!ok) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static json_t *schedule_json(const recur_schedule *s)
{
    json_t *obj = json_object();
    if (!obj || !recur__json_put(obj, "kind", json_string(recur_schedule_name(s->kind))) ||
        !recur__json_put(obj, "warmup_steps", json_integer(s->warmup_steps)) ||
        !recur__json_put(obj, "step_size", json_integer(s->step_size)) ||
        !recur__json_put(obj, "gamma", recur__json_float(s->gamma)) ||
        !recur__json_put(obj, "total_steps", json_integer(s->total_steps)) ||
        !recur__json_put(obj, "min_lr", recur__json_float(s->min_lr))) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* The "recur_train" object: the fields of any trainer, plus the language
 * model's stream (batch, seq_len, position) when `lm` is set. */
static json_t *train_json(const recur_train_state *t, const char *const *buffers, int nbuffers,
                          int lm)
{
    json_t *obj = json_object(), *position = lm ? json_object() : NULL, *rng = json_array();
    json_t *options = json_object();
    json_t *data_position = t->data_position_count > 0 ? json_array() : NULL;
    int ok = obj && (position || !lm) && rng && options &&
             (data_position || t->data_position_count <= 0);
    for (int i = 0; ok && i < 4; i++)
        ok = json_array_append_new(rng, u64_string(t->rng.s[i])) == 0;
    for (int i = 0; ok && i < t->option_count; i++)
        ok = recur__json_put(options, t->option_names[i], json_string(t->option_values[i]));
    for (int i = 0; ok && i < t->data_position_count; i++) {
        char text[24];
        snprintf(text, sizeof text, "%" PRId64, t->data_position[i]);
        ok = json_array_append_new(data_position, json_string(text)) == 0;
    }
    if (lm)
        ok = ok && recur__json_put(position, "epoch", json_integer(t->position.epoch)) &&
             recur__json_put(position, "offset", json_integer(t->position.offset));
    ok = ok && recur__json_put(obj, "format", json_integer(RECUR_CHECKPOINT_FORMAT)) &&
         recur__json_put(obj, "step", json_integer(t->step));
    if (lm)
        ok = ok && recur__json_put(obj, "batch", json_integer(t->batch)) &&
             recur__json_put(obj, "seq_len", json_integer(t->seq_len));
    ok = ok && recur__json_put(obj, "data_tokens", u64_string(t->data_tokens)) &&
         recur__json_put(obj, "data_hash", u64_string(t->data_hash)) &&
         recur__json_put(obj, "optimizer", optim_json(&t->optim, t->optim_step, buffers, nbuffers)) &&
         recur__json_put(obj, "schedule", schedule_json(&t->schedule)) &&
         recur__json_put(obj, "best_val_loss",
             isfinite(t->best_val_loss) ? json_real(t->best_val_loss) : json_null()) &&
         recur__json_put(obj, "best_step", json_integer(t->best_step)) &&
         recur__json_put(obj, "elapsed_s", json_real(t->elapsed_s));
    if (ok && position) {
        ok = json_object_set_new(obj, "position", position) == 0;
        position = NULL;
    }
    if (ok && data_position) {
        ok = json_object_set_new(obj, "data_position", data_position) == 0;
        data_position = NULL;
    }
    if (ok) {
        ok = json_object_set_new(obj, "rng", rng) == 0;
        rng = NULL;
    }
    if (ok) {
        ok = json_object_set_new(obj, "options", options) == 0;
        options = NULL;
    }
    json_decref(position);
    json_decref(data_position);
    json_decref(rng);
    json_decref(options);
    if (!ok) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* Serializes obj and stores it under key; consumes obj. `precision` is the
 * number of significant digits of reals (17 keeps doubles exact). */
static int put_metadata(recur_st_writer *w, const char *key, json_t *obj, int precision)
{
    if (!obj)
        return recur__error(RECUR_E_NOMEM, "out of memory building the '%s' metadata", key);
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                     JSON_REAL_PRECISION(precision));
    json_decref(obj);
    if (!text)
        return recur__error(RECUR_E_NOMEM, "out of memory serializing the '%s' metadata", key);
    int status = recur_st_writer_metadata(w, key, text);
    free(text);
    return status;
}

/* ---- Saving ------------------------------------------------------------- */

/* The checks of the fields any trainer saves; `who` names the caller in
 * messages. Fills the optimizer's buffer names. */
static int check_train_common(const char *who, const recur_train_state *t, size_t n,
                              const char **buffers, int *nbuffers)
{
    if (t->step < 0 || t->optim_step < 0 || t->best_step < 0)
        return recur__error(RECUR_E_INVALID, "%s: negative step count", who);
    if (!isfinite(t->elapsed_s) || isnan(t->best_val_loss) || t->best_val_loss == -INFINITY)
        return recur__error(RECUR_E_INVALID, "%s: elapsed_s must be finite and best_val_loss "
                            "finite or +INFINITY", who);
    if (t->data_position_count < 0 || t->data_position_count > RECUR_TRAIN_POSITION_MAX)
        return recur__error(RECUR_E_INVALID, "%s: data_position_count %d is outside [0, %d]",
                            who, t->data_position_count, RECUR_TRAIN_POSITION_MAX);
    int status = recur_optim_config_check(&t->optim);
    if (status)
        return status;
    status = recur_schedule_check(&t->schedule);
    if (status)
        return status;
    *nbuffers = optim_buffer_names(&t->optim, buffers);
    size_t want;
    if (!recur__mul_size(n, (size_t)*nbuffers, &want) || want != t->optim_state_count)
        return recur__error(RECUR_E_INVALID, "%s: optimizer state has %zu floats, expected %d "
                            "buffers of %zu", who, t->optim_state_count, *nbuffers, n);
    if (want && !t->optim_state)
        return recur__error(RECUR_E_INVALID, "%s: optim_state is NULL", who);
    if ((t->weights_count != 0 && t->weights_count != n) || (t->weights_count && !t->weights))
        return recur__error(RECUR_E_INVALID, "%s: weights has %zu floats, expected 0 or %zu",
                            who, t->weights_count, n);
    if (t->option_count < 0 || t->option_count > MAX_OPTIONS ||
        (t->option_count && (!t->option_names || !t->option_values)))
        return recur__error(RECUR_E_INVALID, "%s: bad option list", who);
    for (int i = 0; i < t->option_count; i++) {
        if (!t->option_names[i] || !t->option_names[i][0] || !t->option_values[i])
            return recur__error(RECUR_E_INVALID, "%s: option %d has no name or value", who, i);
        for (int j = 0; j < i; j++)
            if (strcmp(t->option_names[i], t->option_names[j]) == 0)
                return recur__error(RECUR_E_INVALID, "%s: option '%s' appears twice", who,
                                    t->option_names[i]);
    }
    return RECUR_OK;
}

static int check_train_for_save(const recur_lm *lm, const recur_train_state *t,
                                const char **buffers, int *nbuffers)
{
    const char *who = "recur_checkpoint_save";
    const recur_lm_config *cfg = recur_lm_get_config(lm);
    if (t->batch < 1 || t->seq_len < 1)
        return recur__error(RECUR_E_INVALID, "%s: batch %d and seq_len %d must be >= 1", who,
                            t->batch, t->seq_len);
    if (t->position.epoch < 0 || t->position.offset < 0)
        return recur__error(RECUR_E_INVALID, "%s: negative stream position", who);
    if (!t->h || (cfg->cell == RECUR_CELL_LSTM) != (t->c != NULL))
        return recur__error(RECUR_E_INVALID, "%s: h is required, and c exactly for an LSTM",
                            who);
    return check_train_common(who, t, recur_lm_size(lm), buffers, nbuffers);
}

/* optimizer.<buffer> [n] for each buffer the optimizer keeps. */
static int add_optim_tensors(recur_st_writer *w, const recur_train_state *t, size_t n,
                             const char *const *buffers, int nbuffers)
{
    const int64_t count = (int64_t)n;
    char name[64];
    int status = RECUR_OK;
    for (int k = 0; k < nbuffers && !status; k++) {
        snprintf(name, sizeof name, "optimizer.%s", buffers[k]);
        status = recur_st_writer_add(w, name, RECUR_DTYPE_F32, 1, &count,
                                     t->optim_state + (size_t)k * n);
    }
    if (!status && t->weights_count)
        status = recur_st_writer_add(w, "optimizer.weights", RECUR_DTYPE_F32, 1, &count,
                                     t->weights);
    return status;
}

int recur_train_state_write(recur_st_writer *w, const recur_train_state *train, size_t n)
{
    if (!w || !train)
        return recur__error(RECUR_E_INVALID, "recur_train_state_write: %s is NULL",
                            !w ? "w" : "train");
    const char *buffers[3];
    int nbuffers = 0;
    int status = check_train_common("recur_train_state_write", train, n, buffers, &nbuffers);
    if (!status)
        status = add_optim_tensors(w, train, n, buffers, nbuffers);
    if (!status)
        status = put_metadata(w, "recur_train", train_json(train, buffers, nbuffers, 0), 17);
    return status;
}

int recur_checkpoint_save(const char *path, recur_lm *lm, const recur_vocab *vocab,
                          const recur_train_state *train)
{
    if (!path || !lm || !vocab)
        return recur__error(RECUR_E_INVALID, "recur_checkpoint_save: %s is NULL",
                            !path ? "path" : !lm ? "lm" : "vocab");
    const recur_lm_config *cfg = recur_lm_get_config(lm);
    if (recur_vocab_size(vocab) != cfg->vocab_size)
        return recur__error(RECUR_E_INVALID, "recur_checkpoint_save: the vocabulary has %d "
                            "tokens but the model's vocab_size is %d",
                            (int)recur_vocab_size(vocab), cfg->vocab_size);
    const char *buffers[3];
    int nbuffers = 0;
    int status;
    if (train && (status = check_train_for_save(lm, train, buffers, &nbuffers)))
        return status;

    recur_st_writer *w = NULL;
    if ((status = recur_st_writer_create(&w)))
        return status;
    const float *params = recur_lm_params(lm);
    for (int i = 0; i < recur_lm_tensor_count(lm) && !status; i++) {
        const recur_param_view *v = recur_lm_tensor_at(lm, i);
        status = recur_st_writer_add(w, v->name, RECUR_DTYPE_F32, v->ndim, v->shape,
                                     params + v->offset);
    }
    if (!status) {
        json_t *meta = model_json(cfg, vocab);
        status = meta ? put_metadata(w, "recur", meta, 9) : RECUR_E_NOMEM;
    }
    if (train && !status) {
        status = add_optim_tensors(w, train, recur_lm_size(lm), buffers, nbuffers);
        const int64_t state_shape[3] = {cfg->num_layers, train->batch, cfg->hidden_size};
        if (!status)
            status = recur_st_writer_add(w, "state.h", RECUR_DTYPE_F32, 3, state_shape, train->h);
        if (!status && train->c)
            status = recur_st_writer_add(w, "state.c", RECUR_DTYPE_F32, 3, state_shape, train->c);
        if (!status)
            status = put_metadata(w, "recur_train", train_json(train, buffers, nbuffers, 1), 17);
    }
    if (!status)
        status = recur_st_writer_save(w, path);
    recur_st_writer_free(w);
    return status;
}

/* ---- JSON reading ------------------------------------------------------- */

/* Each getter checks presence and type and reports "<path>: <what>.<key> ...". */
typedef struct reader {
    const char *path;
    const char *what; /* "recur" or "recur_train" or a sub-object name */
} reader;

static int get_int(const reader *r, json_t *obj, const char *key, int required, int64_t dflt,
                   int64_t min, int64_t max, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            return fail(r->path, RECUR_E_FORMAT, "metadata '%s' lacks the field \"%s\"", r->what,
                        key);
        *out = dflt;
        return RECUR_OK;
    }
    if (!json_is_integer(v))
        return fail(r->path, RECUR_E_FORMAT, "metadata '%s': \"%s\" must be an integer",
                    r->what, key);
    json_int_t x = json_integer_value(v);
    if (x < min || x > max)
        return fail(r->path, RECUR_E_FORMAT, "metadata '%s': \"%s\" = %lld is outside [%lld, "
                    "%lld]", r->what, key, (long long)x, (long long)min, (long long)max);
    *out = (int64_t)x;
    return RECUR_OK;
}

static int get_number(const reader *r, json_t *obj, const char *key, int required, double dflt,
                      double *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            return fail(r->path, RECUR_E_FORMAT, "metadata '%s' lacks the field \"%s\"", r->what,
                        key);
        *out = dflt;
        return RECUR_OK;
    }
    if (!json_is_number(v))
        return fail(r->path, RECUR_E_FORMAT, "metadata '%s': \"%s\" must be a number", r->what,
                    key);
    *out = json_number_value(v);
    if (!isfinite(*out))
        return fail(r->path, RECUR_E_FORMAT, "metadata '%s': \"%s\" is not finite", r->what, key);
    return RECUR_OK;
}

static int get_float(const reader *r, json_t *obj, const char *key, float *out)
{
    double x = 0.0;
    int status = get_number(r, obj, key, 1, 0.0, &x);
    if (status)
        return status;
    if (fabs(x) > 3.0e38)
        return fail(r->path, RECUR_E_FORMAT, "metadata '%s': \"%s\" = %g does not fit a float",
                    r->what, key, x);
    *out = (float)x;
    return RECUR_OK;
}

static int get_bool(const reader *r, json_t *obj, const char *key, int required, int dflt,
                    int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            return fail(r->path, RECUR_E_FORMAT, "metadata '%s' lacks the field \"%s\"", r->what,
                        key);
        *out = dflt;
        return RECUR_OK;
    }
    if (!json_is_boolean(v))
        return fail(r->path, RECUR_E_FORMAT, "metadata '%s': \"%s\" must be true or false",
                    r->what, key);
    *out = json_is_true(v);
    return RECUR_OK;
}

static int get_string(const reader *r, json_t *obj, const char *key, int required,
                      const char *dflt, const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            return fail(r->path, RECUR_E_FORMAT, "metadata '%s' lacks the field \"%s\"", r->what,
                        key);
        *out = dflt;
        return RECUR_OK;
    }
    if (!json_is_string(v))
        return fail(r->path, RECUR_E_FORMAT, "metadata '%s': \"%s\" must be a string", r->what,
                    key);
    *out = json_string_value(v);
    return RECUR_OK;
}

static int get_object(const reader *r, json_t *obj, const char *key, json_t **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return fail(r->path, RECUR_E_FORMAT, "metadata '%s' lacks the field \"%s\"", r->what, key);
    if (!json_is_object(v))
        return fail(r->path, RECUR_E_FORMAT, "metadata '%s': \"%s\" must be an object", r->what,
                    key);
    *out = v;
    return RECUR_OK;
}

static int parse_u64(const reader *r, json_t *v, const char *key, uint64_t *out)
{
    const char *text = json_is_string(v) ? json_string_value(v) : NULL;
    int ok = text && text[0] >= '0' && text[0] <= '9' && strlen(text) <= 20;
    uint64_t x = 0;
    for (const char *p = text; ok && *p; p++) {
        unsigned digit = (unsigned)(*p - '0');
        ok = *p >= '0' && *p <= '9' && x <= (UINT64_MAX - digit) / 10;
        x = x * 10 + digit;
    }
    if (!ok)
        return fail(r->path, RECUR_E_FORMAT, "metadata '%s': \"%s\" must be a decimal string of "
                    "an unsigned 64-bit integer", r->what, key);
    *out = x;
    return RECUR_OK;
}

static json_t *parse_metadata(const char *path, const char *key, const char *text, int *status)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        *status = fail(path, RECUR_E_FORMAT, "metadata '%s' is not valid JSON: %s (line %d, "
                       "column %d)", key, jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        *status = fail(path, RECUR_E_FORMAT, "metadata '%s' must be a JSON object", key);
        return NULL;
    }
    *status = RECUR_OK;
    return root;
}

/* ---- Loading the model -------------------------------------------------- */

static int read_model_config(const char *path, json_t *meta, recur_lm_config *cfg,
                             recur_vocab **vocab)
{
    const reader r = {path, "recur"};
    int64_t format = 1, E = 0, H = 0, L = 0, V = 0;
    double dropout = 0.0, embedding_dropout = 0.0, output_dropout = 0.0, weight_dropout = 0.0;
    int bidirectional = 0;
    const char *cell_name = NULL, *kind_name = NULL;
    int status;
    if ((status = get_int(&r, meta, "format", 0, 1, 1, INT32_MAX, &format)))
        return status;
    if (format > RECUR_CHECKPOINT_FORMAT)
        return fail(path, RECUR_E_UNSUPPORTED, "checkpoint format %lld is newer than this "
                    "recur (%s) reads (format %d): upgrade recur", (long long)format,
                    RECUR_VERSION_STRING, RECUR_CHECKPOINT_FORMAT);
    if ((status = get_string(&r, meta, "cell", 1, NULL, &cell_name)))
        return status;
    if (recur_cell_parse(cell_name, &cfg->cell))
        return fail(path, RECUR_E_FORMAT, "metadata 'recur': unknown cell \"%s\" (known: lstm, "
                    "gru, rnn_tanh, rnn_relu)", cell_name);
    if ((status = get_int(&r, meta, "embedding_size", 1, 0, 1, MAX_DIM, &E)) ||
        (status = get_int(&r, meta, "hidden_size", 1, 0, 1, MAX_DIM, &H)) ||
        (status = get_int(&r, meta, "num_layers", 1, 0, 1, MAX_LAYERS, &L)) ||
        (status = get_bool(&r, meta, "bidirectional", 0, 0, &bidirectional)) ||
        (status = get_number(&r, meta, "dropout", 0, 0.0, &dropout)) ||
        (status = get_number(&r, meta, "embedding_dropout", 0, 0.0, &embedding_dropout)) ||
        (status = get_number(&r, meta, "output_dropout", 0, 0.0, &output_dropout)) ||
        (status = get_number(&r, meta, "weight_dropout", 0, 0.0, &weight_dropout)) ||
        (status = get_string(&r, meta, "vocab_kind", 0, "char", &kind_name)))
        return status;
    if (bidirectional)
        return fail(path, RECUR_E_UNSUPPORTED, "a bidirectional language model cannot predict "
                    "the next character; recur's language models are unidirectional");
    const double rates[4] = {dropout, embedding_dropout, output_dropout, weight_dropout};
    const char *rate_names[4] = {"dropout", "embedding_dropout", "output_dropout",
                                 "weight_dropout"};
    for (int i = 0; i < 4; i++)
        if (!(rates[i] >= 0.0 && rates[i] < 1.0))
            return fail(path, RECUR_E_FORMAT, "metadata 'recur': \"%s\" = %g is outside [0, 1)",
                        rate_names[i], rates[i]);
    recur_vocab_kind kind;
    if (recur_vocab_kind_parse(kind_name, &kind))
        return fail(path, RECUR_E_FORMAT, "metadata 'recur': unknown \"vocab_kind\" \"%s\" "
                    "(known: char, byte)", kind_name);
    json_t *array = json_object_get(meta, "vocab");
    if (!array)
        return fail(path, RECUR_E_FORMAT, "metadata 'recur' lacks the field \"vocab\" (the array "
                    "of token strings in id order)");
    if (!json_is_array(array) || json_array_size(array) == 0)
        return fail(path, RECUR_E_FORMAT, "metadata 'recur': \"vocab\" must be a non-empty "
                    "array of strings");
    char *text = json_dumps(array, JSON_COMPACT);
    if (!text)
        return recur__error(RECUR_E_NOMEM, "out of memory reading the vocabulary");
    status = recur_vocab_from_json(text, strlen(text), kind, vocab);
    free(text);
    if (status)
        return fail_with_last(path, RECUR_E_FORMAT, "metadata 'recur': bad \"vocab\": ");
    V = recur_vocab_size(*vocab);
    int64_t stated_V = 0;
    if ((status = get_int(&r, meta, "vocab_size", 0, V, 1, INT32_MAX, &stated_V)))
        return status;
    if (stated_V != V)
        return fail(path, RECUR_E_FORMAT, "metadata 'recur': \"vocab_size\" is %lld but "
                    "\"vocab\" has %lld entries", (long long)stated_V, (long long)V);
    cfg->vocab_size = (int)V;
    cfg->embedding_size = (int)E;
    cfg->hidden_size = (int)H;
    cfg->num_layers = (int)L;
    cfg->dropout = (float)dropout;
    cfg->embedding_dropout = (float)embedding_dropout;
    cfg->output_dropout = (float)output_dropout;
    cfg->weight_dropout = (float)weight_dropout;
    return RECUR_OK;
}

static void shape_text(const int64_t *shape, int ndim, char *out, size_t size)
{
    size_t used = (size_t)snprintf(out, size, "[");
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(out + used, size - used, "%s%lld", d ? ", " : "",
                                 (long long)shape[d]);
    if (used < size)
        snprintf(out + used, size - used, "]");
}

/* Reads one tensor of exactly `shape` (any float or integer dtype the
 * reader converts) into out, which must then be finite. */
static int read_tensor(const char *path, const recur_st *st, const char *name, int ndim,
                       const int64_t *shape, float *out, const char *hint)
{
    const recur_st_tensor *t = recur_st_find(st, name);
    char want[96], got[96];
    shape_text(shape, ndim, want, sizeof want);
    if (!t)
        return fail(path, RECUR_E_FORMAT, "missing tensor '%s' (expected shape %s%s)", name, want,
                    hint);
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = t->shape[d] == shape[d];
    if (!same) {
        shape_text(t->shape, t->ndim, got, sizeof got);
        return fail(path, RECUR_E_FORMAT, "tensor '%s' has shape %s, expected %s%s", name, got,
                    want, hint);
    }
    if (t->dtype != RECUR_DTYPE_F32 && t->dtype != RECUR_DTYPE_F64 &&
        t->dtype != RECUR_DTYPE_F16 && t->dtype != RECUR_DTYPE_BF16)
        return fail(path, RECUR_E_FORMAT, "tensor '%s' has dtype %s, expected a float type "
                    "(F32)", name, recur_dtype_name(t->dtype));
    size_t numel = t->numel;
    if (recur_st_read_f32(st, name, out, numel))
        return fail_with_last(path, RECUR_E_FORMAT, "");
    if (!all_finite(out, numel))
        return fail(path, RECUR_E_FORMAT, "tensor '%s' holds NaN or Inf values", name);
    return RECUR_OK;
}

static int load_model(const char *path, const recur_st *st, json_t *meta, recur_lm **lm_out,
                      recur_vocab **vocab_out)
{
    recur_lm_config cfg = recur_lm_config_default();
    int status = read_model_config(path, meta, &cfg, vocab_out);
    if (status)
        return status;
    const recur_st_tensor *emb = recur_st_find(st, "embedding.weight");
    if (emb && emb->ndim == 2 && emb->shape[0] != cfg.vocab_size)
        return fail(path, RECUR_E_FORMAT, "the vocabulary has %d tokens but embedding.weight "
                    "has %lld rows: the \"vocab\" metadata does not belong to these weights",
                    cfg.vocab_size, (long long)emb->shape[0]);
    if ((status = recur_lm_create(&cfg, lm_out)))
        return fail_with_last(path, status, "model configuration: ");
    recur_lm *lm = *lm_out;
    float *params = recur_lm_params(lm);
    char hint[128];
    snprintf(hint, sizeof hint, " for %s, V %d, E %d, H %d, L %d", recur_cell_name(cfg.cell),
             cfg.vocab_size, cfg.embedding_size, cfg.hidden_size, cfg.num_layers);
    for (int i = 0; i < recur_lm_tensor_count(lm); i++) {
        const recur_param_view *v = recur_lm_tensor_at(lm, i);
        if ((status = read_tensor(path, st, v->name, v->ndim, v->shape, params + v->offset, hint)))
            return status;
    }
    for (int i = 0; i < recur_st_count(st); i++) {
        const char *name = recur_st_at(st, i)->name;
        if (strncmp(name, "optimizer.", 10) == 0 || strncmp(name, "state.", 6) == 0)
            continue;
        if (!recur_lm_tensor_find(lm, name))
            return fail(path, RECUR_E_FORMAT, "unexpected tensor '%s': not part of a %s language "
                        "model with %d layers", name, recur_cell_name(cfg.cell), cfg.num_layers);
    }
    return RECUR_OK;
}

/* ---- Loading the training state ----------------------------------------- */

static int read_optim(const char *path, json_t *obj, recur_optim_config *c, int64_t *step)
{
    const reader r = {path, "recur_train.optimizer"};
    const char *kind = NULL;
    int status = get_string(&r, obj, "kind", 1, NULL, &kind);
    if (status)
        return status;
    recur_optim_kind k;
    if (recur_optim_parse(kind, &k))
        return fail(path, RECUR_E_FORMAT, "metadata 'recur_train': unknown optimizer \"%s\"",
                    kind);
    *c = recur_optim_config_default(k);
    if ((status = get_float(&r, obj, "lr", &c->lr)) ||
        (status = get_float(&r, obj, "momentum", &c->momentum)) ||
        (status = get_float(&r, obj, "dampening", &c->dampening)) ||
        (status = get_bool(&r, obj, "nesterov", 1, 0, &c->nesterov)) ||
        (status = get_float(&r, obj, "weight_decay", &c->weight_decay)) ||
        (status = get_float(&r, obj, "beta1", &c->beta1)) ||
        (status = get_float(&r, obj, "beta2", &c->beta2)) ||
        (status = get_float(&r, obj, "eps", &c->eps)) ||
        (status = get_bool(&r, obj, "amsgrad", 1, 0, &c->amsgrad)) ||
        (status = get_float(&r, obj, "alpha", &c->alpha)) ||
        (status = get_bool(&r, obj, "centered", 1, 0, &c->centered)) ||
        (status = get_float(&r, obj, "lr_decay", &c->lr_decay)) ||
        (status = get_float(&r, obj, "initial_accumulator_value",
                            &c->initial_accumulator_value)) ||
        (status = get_int(&r, obj, "step", 1, 0, 0, INT64_MAX, step)))
        return status;
    if (recur_optim_config_check(c))
        return fail_with_last(path, RECUR_E_FORMAT, "metadata 'recur_train': optimizer: ");
    return RECUR_OK;
}

static int read_schedule(const char *path, json_t *obj, recur_schedule *s)
{
    const reader r = {path, "recur_train.schedule"};
    const char *kind = NULL;
    int status = get_string(&r, obj, "kind", 1, NULL, &kind);
    if (status)
        return status;
    *s = recur_schedule_default();
    if (recur_schedule_parse(kind, &s->kind))
        return fail(path, RECUR_E_FORMAT, "metadata 'recur_train': unknown schedule \"%s\"", kind);
    if ((status = get_int(&r, obj, "warmup_steps", 1, 0, 0, INT64_MAX, &s->warmup_steps)) ||
        (status = get_int(&r, obj, "step_size", 1, 0, 0, INT64_MAX, &s->step_size)) ||
        (status = get_float(&r, obj, "gamma", &s->gamma)) ||
        (status = get_int(&r, obj, "total_steps", 1, 0, 0, INT64_MAX, &s->total_steps)) ||
        (status = get_float(&r, obj, "min_lr", &s->min_lr)))
        return status;
    if (recur_schedule_check(s))
        return fail_with_last(path, RECUR_E_FORMAT, "metadata 'recur_train': schedule: ");
    return RECUR_OK;
}

static int read_options(const char *path, json_t *obj, owned_train_state *o)
{
    size_t count = json_object_size(obj);
    if (count > MAX_OPTIONS)
        return fail(path, RECUR_E_FORMAT, "metadata 'recur_train': more than %d options",
                    MAX_OPTIONS);
    o->names = recur__calloc(count ? count : 1, sizeof *o->names);
    o->values = recur__calloc(count ? count : 1, sizeof *o->values);
    if (!o->names || !o->values)
        return recur__error(RECUR_E_NOMEM, "out of memory reading the options");
    const char *key;
    json_t *value;
    int i = 0;
    json_object_foreach(obj, key, value) {
        if (!json_is_string(value) || !key[0])
            return fail(path, RECUR_E_FORMAT, "metadata 'recur_train': option \"%s\" must be "
                        "a non-empty name with a string value", key);
        o->names[i] = recur__strdup(key);
        o->values[i] = recur__strdup(json_string_value(value));
        if (!o->names[i] || !o->values[i])
            return recur__error(RECUR_E_NOMEM, "out of memory reading the options");
        o->pub.option_count = ++i;
    }
    o->pub.option_names = (const char *const *)o->names;
    o->pub.option_values = (const char *const *)o->values;
    return RECUR_OK;
}

/* The fields of any trainer, and the optimizer.<buffer> tensors of a model
 * of n parameters. */
static int read_train_common(const char *path, const recur_st *st, json_t *meta, size_t n,
                             owned_train_state *o)
{
    const reader r = {path, "recur_train"};
    recur_train_state *t = &o->pub;
    int64_t format = 1;
    json_t *optim = NULL, *schedule = NULL, *options = NULL, *rng, *best, *position;
    int status;
    if ((status = get_int(&r, meta, "format", 0, 1, 1, INT32_MAX, &format)))
        return status;
    if (format > RECUR_CHECKPOINT_FORMAT)
        return fail(path, RECUR_E_UNSUPPORTED, "training state format %lld is newer than this "
                    "recur reads (%d): upgrade recur", (long long)format,
                    RECUR_CHECKPOINT_FORMAT);
    if ((status = get_int(&r, meta, "step", 1, 0, 0, INT64_MAX, &t->step)) ||
        (status = get_int(&r, meta, "best_step", 1, 0, 0, INT64_MAX, &t->best_step)) ||
        (status = get_number(&r, meta, "elapsed_s", 1, 0.0, &t->elapsed_s)) ||
        (status = get_object(&r, meta, "optimizer", &optim)) ||
        (status = get_object(&r, meta, "schedule", &schedule)) ||
        (status = get_object(&r, meta, "options", &options)))
        return status;
    if ((status = parse_u64(&r, json_object_get(meta, "data_tokens"), "data_tokens",
                            &t->data_tokens)) ||
        (status = parse_u64(&r, json_object_get(meta, "data_hash"), "data_hash", &t->data_hash)))
        return status;
    rng = json_object_get(meta, "rng");
    if (!json_is_array(rng) || json_array_size(rng) != 4)
        return fail(path, RECUR_E_FORMAT, "metadata 'recur_train': \"rng\" must be an array of "
                    "4 decimal strings");
    for (size_t i = 0; i < 4; i++)
        if ((status = parse_u64(&r, json_array_get(rng, i), "rng", &t->rng.s[i])))
            return status;
    if (!(t->rng.s[0] | t->rng.s[1] | t->rng.s[2] | t->rng.s[3]))
        return fail(path, RECUR_E_FORMAT, "metadata 'recur_train': the RNG state is all zeros");
    best = json_object_get(meta, "best_val_loss");
    if (!best || json_is_null(best))
        t->best_val_loss = INFINITY;
    else if ((status = get_number(&r, meta, "best_val_loss", 1, 0.0, &t->best_val_loss)))
        return status;
    position = json_object_get(meta, "data_position");
    if (position) {
        if (!json_is_array(position) || json_array_size(position) > RECUR_TRAIN_POSITION_MAX)
            return fail(path, RECUR_E_FORMAT, "metadata 'recur_train': \"data_position\" must be "
                        "an array of at most %d decimal strings", RECUR_TRAIN_POSITION_MAX);
        for (size_t i = 0; i < json_array_size(position); i++) {
            const char *text = json_string_value(json_array_get(position, i));
            char *end = NULL;
            errno = 0;
            long long x = text ? strtoll(text, &end, 10) : 0;
            if (!text || !text[0] || *end || errno == ERANGE)
                return fail(path, RECUR_E_FORMAT, "metadata 'recur_train': \"data_position\" "
                            "entry %zu is not a decimal string of a 64-bit integer", i);
            t->data_position[i] = (int64_t)x;
        }
        t->data_position_count = (int)json_array_size(position);
    }
    if ((status = read_optim(path, optim, &t->optim, &t->optim_step)) ||
        (status = read_schedule(path, schedule, &t->schedule)) ||
        (status = read_options(path, options, o)))
        return status;

    /* optimizer.<buffer> tensors: exactly the buffers the config uses. */
    const char *buffers[3];
    int nbuffers = optim_buffer_names(&t->optim, buffers);
    const int64_t count64 = (int64_t)n;
    size_t count;
    if (!recur__mul_size((size_t)nbuffers, n, &count))
        return recur__error(RECUR_E_NOMEM, "optimizer state of %zu parameters is too large", n);
    if (count) {
        o->optim_state = recur__malloc(count * sizeof(float));
        if (!o->optim_state)
            return recur__error(RECUR_E_NOMEM, "out of memory for %zu floats of optimizer state",
                                count);
    }
    char name[64], hint[96];
    snprintf(hint, sizeof hint, " for %s's state of %lld parameters",
             recur_optim_name(t->optim.kind), (long long)n);
    for (int k = 0; k < nbuffers; k++) {
        snprintf(name, sizeof name, "optimizer.%s", buffers[k]);
        if ((status = read_tensor(path, st, name, 1, &count64, o->optim_state + (size_t)k * n,
                                  hint)))
            return status;
    }
    t->optim_state = o->optim_state;
    t->optim_state_count = count;
    /* optimizer.weights: the iterate, when the model holds an average */
    if (recur_st_find(st, "optimizer.weights")) {
        o->weights = recur__malloc((n ? n : 1) * sizeof(float));
        if (!o->weights)
            return recur__error(RECUR_E_NOMEM, "out of memory for %zu weights", n);
        if ((status = read_tensor(path, st, "optimizer.weights", 1, &count64, o->weights,
                                  " (the weights training continues from)")))
            return status;
        t->weights = o->weights;
        t->weights_count = n;
    }
    for (int i = 0; i < recur_st_count(st); i++) {
        const char *tname = recur_st_at(st, i)->name;
        if (strncmp(tname, "optimizer.", 10) != 0 || strcmp(tname, "optimizer.weights") == 0)
            continue;
        int known = 0;
        for (int k = 0; !known && k < nbuffers; k++)
            known = strcmp(tname + 10, buffers[k]) == 0;
        if (!known)
            return fail(path, RECUR_E_FORMAT, "unexpected tensor '%s' in the training state "
                        "(%s keeps %d buffers)", tname, recur_optim_name(t->optim.kind),
                        nbuffers);
    }
    return RECUR_OK;
}

/* The language model's training state: the common fields plus its stream
 * (batch, seq_len, position) and carried state (state.h, state.c). */
static int load_train(const char *path, const recur_st *st, recur_lm *lm, json_t *meta,
                      owned_train_state *o)
{
    const reader r = {path, "recur_train"};
    recur_train_state *t = &o->pub;
    const recur_lm_config *cfg = recur_lm_get_config(lm);
    int64_t batch = 0, seq_len = 0;
    json_t *position = NULL;
    int status;
    if ((status = read_train_common(path, st, meta, recur_lm_size(lm), o)))
        return status;
    if ((status = get_int(&r, meta, "batch", 1, 0, 1, MAX_DIM, &batch)) ||
        (status = get_int(&r, meta, "seq_len", 1, 0, 1, MAX_DIM, &seq_len)) ||
        (status = get_object(&r, meta, "position", &position)))
        return status;
    t->batch = (int)batch;
    t->seq_len = (int)seq_len;
    const reader rp = {path, "recur_train.position"};
    if ((status = get_int(&rp, position, "epoch", 1, 0, 0, INT64_MAX, &t->position.epoch)) ||
        (status = get_int(&rp, position, "offset", 1, 0, 0, INT64_MAX, &t->position.offset)))
        return status;
    if (t->position.offset % seq_len != 0)
        return fail(path, RECUR_E_FORMAT, "metadata 'recur_train': position offset %lld is not "
                    "a multiple of seq_len %lld", (long long)t->position.offset,
                    (long long)seq_len);

    size_t state_size = recur_lm_state_size(lm, t->batch);
    const int64_t shape[3] = {cfg->num_layers, batch, cfg->hidden_size};
    char hint[96];
    o->h = recur__malloc((state_size ? state_size : 1) * sizeof(float));
    if (!o->h)
        return recur__error(RECUR_E_NOMEM, "out of memory for the carried state");
    snprintf(hint, sizeof hint, " (num_layers, batch, hidden_size)");
    if ((status = read_tensor(path, st, "state.h", 3, shape, o->h, hint)))
        return status;
    t->h = o->h;
    if (cfg->cell == RECUR_CELL_LSTM) {
        o->c = recur__malloc((state_size ? state_size : 1) * sizeof(float));
        if (!o->c)
            return recur__error(RECUR_E_NOMEM, "out of memory for the carried state");
        if ((status = read_tensor(path, st, "state.c", 3, shape, o->c, hint)))
            return status;
        t->c = o->c;
    }
    for (int i = 0; i < recur_st_count(st); i++) {
        const char *tname = recur_st_at(st, i)->name;
        int known = strcmp(tname, "state.h") == 0 ||
                    (cfg->cell == RECUR_CELL_LSTM && strcmp(tname, "state.c") == 0);
        if (!known && strncmp(tname, "state.", 6) == 0)
            return fail(path, RECUR_E_FORMAT, "unexpected tensor '%s' in the training state "
                        "(a %s keeps state.h%s)", tname, recur_cell_name(cfg->cell),
                        cfg->cell == RECUR_CELL_LSTM ? " and state.c" : "");
    }
    return RECUR_OK;
}

int recur_train_state_read(const recur_st *st, const char *path, size_t n,
                           recur_train_state **train)
{
    if (train)
        *train = NULL;
    if (!st || !train)
        return recur__error(RECUR_E_INVALID, "recur_train_state_read: %s is NULL",
                            !st ? "st" : "train");
    if (!path)
        path = "checkpoint";
    const char *text = recur_st_metadata(st, "recur_train");
    if (!text) {
        for (int i = 0; i < recur_st_count(st); i++) {
            const char *name = recur_st_at(st, i)->name;
            if (strncmp(name, "optimizer.", 10) == 0)
                return fail(path, RECUR_E_FORMAT, "tensor '%s' is training state, but the "
                            "\"recur_train\" metadata is missing", name);
        }
        return RECUR_OK;
    }
    int status;
    json_t *meta = parse_metadata(path, "recur_train", text, &status);
    if (!meta)
        return status;
    owned_train_state *o = recur__calloc(1, sizeof *o);
    if (!o) {
        json_decref(meta);
        return recur__error(RECUR_E_NOMEM, "out of memory for the training state");
    }
    status = read_train_common(path, st, meta, n, o);
    json_decref(meta);
    if (status) {
        recur_train_state_free(&o->pub);
        return status;
    }
    *train = &o->pub;
    return RECUR_OK;
}

void recur_train_state_free(recur_train_state *train)
{
    if (!train)
        return;
    owned_train_state *o = (owned_train_state *)train;
    for (int i = 0; i < o->pub.option_count; i++) {
        recur__free(o->names[i]);
        recur__free(o->values[i]);
    }
    recur__free(o->names);
    recur__free(o->values);
    recur__free(o->optim_state);
    recur__free(o->weights);
    recur__free(o->h);
    recur__free(o->c);
    recur__free(o);
}

int recur_checkpoint_load(const char *path, recur_lm **lm, recur_vocab **vocab,
                          recur_train_state **train)
{
    if (lm)
        *lm = NULL;
    if (vocab)
        *vocab = NULL;
    if (train)
        *train = NULL;
    if (!path || !lm || !vocab)
        return recur__error(RECUR_E_INVALID, "recur_checkpoint_load: %s is NULL",
                            !path ? "path" : !lm ? "lm" : "vocab");
    recur_st *st = NULL;
    int status = recur_st_open(path, &st);
    if (status)
        return status;
    json_t *meta = NULL, *train_meta = NULL;
    owned_train_state *o = NULL;
    const char *text = recur_st_metadata(st, "recur");
    if (!text) {
        status = fail(path, RECUR_E_FORMAT, "no \"recur\" entry in the safetensors metadata: "
                      "not a recur language-model checkpoint (docs/checkpoints.md describes "
                      "the format)");
        goto done;
    }
    if (!(meta = parse_metadata(path, "recur", text, &status)))
        goto done;
    if ((status = load_model(path, st, meta, lm, vocab)))
        goto done;
    if (!train)
        goto done;
    text = recur_st_metadata(st, "recur_train");
    if (!text) {
        for (int i = 0; i < recur_st_count(st); i++) {
            const char *name = recur_st_at(st, i)->name;
            if (strncmp(name, "optimizer.", 10) == 0 || strncmp(name, "state.", 6) == 0) {
                status = fail(path, RECUR_E_FORMAT, "tensor '%s' is training state, but the "
                              "\"recur_train\" metadata is missing", name);
                goto done;
            }
        }
        goto done;
    }
    if (!(train_meta = parse_metadata(path, "recur_train", text, &status)))
        goto done;
    o = recur__calloc(1, sizeof *o);
    if (!o) {
        status = recur__error(RECUR_E_NOMEM, "out of memory for the training state");
        goto done;
    }
    if ((status = load_train(path, st, *lm, train_meta, o)))
        goto done;
    *train = &o->pub;
    o = NULL;
done:
    if (status) {
        recur_lm_free(*lm);
        recur_vocab_free(*vocab);
        *lm = NULL;
        *vocab = NULL;
    }
    if (o)
        recur_train_state_free(&o->pub);
    json_decref(meta);
    json_decref(train_meta);
    recur_st_free(st);
    return status;
}

const char *recur_train_state_option(const recur_train_state *train, const char *name)
{
    if (!train || !name)
        return NULL;
    for (int i = 0; i < train->option_count; i++)
        if (strcmp(train->option_names[i], name) == 0)
            return train->option_values[i];
    return NULL;
}

int recur_train_state_make_optim(const recur_train_state *train, size_t n, recur_optim **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_train_state_make_optim: out is NULL");
    *out = NULL;
    if (!train)
        return recur__error(RECUR_E_INVALID, "recur_train_state_make_optim: train is NULL");
    recur_optim *opt = NULL;
    int status = recur_optim_create(&train->optim, n, &opt);
    if (status)
        return status;
    float *state = NULL;
    size_t count = 0;
    recur_optim_state(opt, &state, &count);
    if (count != train->optim_state_count) {
        recur_optim_free(opt);
        return recur__error(RECUR_E_INVALID, "recur_train_state_make_optim: the saved optimizer "
                            "state has %zu floats, an optimizer of %zu parameters keeps %zu",
                            train->optim_state_count, n, count);
    }
    if (count)
        memcpy(state, train->optim_state, count * sizeof(float));
    if ((status = recur_optim_set_step(opt, train->optim_step))) {
        recur_optim_free(opt);
        return status;
    }
    *out = opt;
    return RECUR_OK;
}

uint64_t recur_checkpoint_data_hash(const int32_t *tokens, size_t n)
{
    uint64_t hash = 14695981039346656037ull; /* FNV-1a 64 offset basis */
    for (size_t i = 0; tokens && i < n; i++) {
        uint32_t v = (uint32_t)tokens[i];
        for (int b = 0; b < 4; b++) {
            hash ^= (v >> (8 * b)) & 0xffu;
            hash *= 1099511628211ull; /* FNV prime */
        }
    }
    return hash;
}
