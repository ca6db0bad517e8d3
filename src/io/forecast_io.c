/* forecast_io.c - forecaster checkpoints as safetensors files
 * (docs/forecast.md): the weights as F32 tensors under their names
 * ("rnn.weight_ih_l0", ..., "head.weight", "head.bias"), the conformal
 * margins as the F64 tensor "calibration" [horizon], and the __metadata__
 * key "recur_forecast", a JSON object:
 *   {"format": 1, "cell", "hidden_size", "num_layers", "dropout", "horizon",
 *    "period", "level_input", "loss", "mode", "interval", "interval_adapt",
 *    "calibrated_steps",
 *    "scaling": {"mean", "std", "scale", "covariate_mean": [], "covariate_std": []},
 *    "target", "time" (or null), "covariates": [], "lookback", "train_steps",
 *    "fit_steps"}
 * Doubles are written with 17 significant digits, so they read back
 * exactly. Reading checks every field, shape and value before use; other
 * tensors and metadata keys (e.g. a training state) are left to the caller. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "io/json_util.h"
#include "recur/forecast.h"

#define FORECAST_FORMAT 1
#define META_KEY "recur_forecast"

struct recur_forecast_loaded {
    recur_forecast_info info;
    size_t calibrated_steps;
    char *target, *time;
    char **covariates; /* [count] */
    int count;
};

static json_t *doubles(const double *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_real(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *metadata_json(const recur_forecaster *fc, const recur_forecast_info *info)
{
    const recur_forecast_config *c = recur_forecaster_get_config(fc);
    const recur_forecast_scaling *s = recur_forecaster_get_scaling(fc);
    json_t *obj = json_object(), *scaling = json_object(), *covs = json_array();
    int ok = obj && scaling && covs;
    ok = ok && recur__json_put(scaling, "mean", json_real(s->mean)) && recur__json_put(scaling, "std", json_real(s->std)) &&
         recur__json_put(scaling, "scale", json_real(s->scale)) &&
         recur__json_put(scaling, "covariate_mean", doubles(s->covariate_mean, s->covariate_count)) &&
         recur__json_put(scaling, "covariate_std", doubles(s->covariate_std, s->covariate_count));
    for (int i = 0; ok && i < c->covariate_count; i++)
        ok = json_array_append_new(covs, json_string(info->covariates[i])) == 0;
    ok = ok && recur__json_put(obj, "format", json_integer(FORECAST_FORMAT)) &&
         recur__json_put(obj, "cell", json_string(recur_cell_name(c->cell))) &&
         recur__json_put(obj, "hidden_size", json_integer(c->hidden_size)) &&
         recur__json_put(obj, "num_layers", json_integer(c->num_layers)) &&
         recur__json_put(obj, "dropout", json_real(c->dropout)) &&
         recur__json_put(obj, "horizon", json_integer(c->horizon)) &&
         recur__json_put(obj, "period", json_integer(c->period)) &&
         recur__json_put(obj, "level_input", json_boolean(c->level_input)) &&
         recur__json_put(obj, "loss", json_string(recur_forecast_loss_name(c->loss))) &&
         recur__json_put(obj, "mode", json_string(recur_forecast_mode_name(c->mode))) &&
         recur__json_put(obj, "interval", json_real(c->interval)) &&
         recur__json_put(obj, "interval_adapt", json_real(c->interval_adapt)) &&
         recur__json_put(obj, "calibrated_steps",
             json_integer((json_int_t)recur_forecaster_calibrated_steps(fc))) &&
         recur__json_put(obj, "target", json_string(info->target)) &&
         recur__json_put(obj, "time", info->time ? json_string(info->time) : json_null()) &&
         recur__json_put(obj, "lookback", json_integer(info->lookback)) &&
         recur__json_put(obj, "train_steps", json_integer((json_int_t)info->train_steps)) &&
         recur__json_put(obj, "fit_steps", json_integer((json_int_t)info->fit_steps));
    if (ok) {
        ok = json_object_set_new(obj, "scaling", scaling) == 0;
        scaling = NULL;
        ok = ok && json_object_set_new(obj, "covariates", covs) == 0;
        covs = NULL;
    }
    json_decref(scaling);
    json_decref(covs);
    if (!ok) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

int recur_forecaster_write(const recur_forecaster *fc, const recur_forecast_info *info,
                           recur_st_writer *w)
{
    if (!fc || !info || !w)
        return recur__error(RECUR_E_INVALID, "recur_forecaster_write: NULL argument");
    const recur_forecast_config *c = recur_forecaster_get_config(fc);
    if (!info->target || (c->covariate_count > 0 && !info->covariates))
        return recur__error(RECUR_E_INVALID, "recur_forecaster_write: the info lacks the target "
                            "or covariate names");
    for (int i = 0; i < c->covariate_count; i++)
        if (!info->covariates[i])
            return recur__error(RECUR_E_INVALID, "recur_forecaster_write: covariate %d has no "
                                "name", i + 1);
    const float *params = recur_forecaster_params((recur_forecaster *)fc);
    int status = RECUR_OK;
    for (int i = 0; i < recur_forecaster_tensor_count(fc) && !status; i++) {
        const recur_param_view *v = recur_forecaster_tensor_at(fc, i);
        status = recur_st_writer_add(w, v->name, RECUR_DTYPE_F32, v->ndim, v->shape,
                                     params + v->offset);
    }
    const int64_t shape[1] = {c->horizon};
    if (!status)
        status = recur_st_writer_add(w, "calibration", RECUR_DTYPE_F64, 1, shape,
                                     recur_forecaster_calibration(fc));
    if (status)
        return status;
    json_t *obj = metadata_json(fc, info);
    char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(obj);
    if (!text)
        return recur__error(RECUR_E_NOMEM, "out of memory writing the forecaster's metadata");
    status = recur_st_writer_metadata(w, META_KEY, text);
    free(text);
    return status;
}

int recur_forecaster_save(const char *path, const recur_forecaster *fc,
                          const recur_forecast_info *info)
{
    if (!path)
        return recur__error(RECUR_E_INVALID, "recur_forecaster_save: path is NULL");
    recur_st_writer *w = NULL;
    int status = recur_st_writer_create(&w);
    if (!status)
        status = recur_forecaster_write(fc, info, w);
    if (!status)
        status = recur_st_writer_save(w, path);
    recur_st_writer_free(w);
    return status;
}

/* ---- reading ------------------------------------------------------------------ */

static int bad(const char *name, const char *what)
{
    return recur__error(RECUR_E_FORMAT, "%s: \"" META_KEY "\" metadata: %s", name, what);
}

static int get_int(json_t *obj, const char *key, const char *name, long long lo, long long hi,
                   long long *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        return recur__error(RECUR_E_FORMAT, "%s: \"" META_KEY "\" metadata: \"%s\" is missing "
                            "or not an integer", name, key);
    *out = json_integer_value(v);
    if (*out < lo || *out > hi)
        return recur__error(RECUR_E_FORMAT, "%s: \"" META_KEY "\" metadata: \"%s\" = %lld "
                            "outside %lld..%lld", name, key, *out, lo, hi);
    return RECUR_OK;
}

static int get_number(json_t *obj, const char *key, const char *name, double *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        return recur__error(RECUR_E_FORMAT, "%s: \"" META_KEY "\" metadata: \"%s\" is missing "
                            "or not a number", name, key);
    *out = json_number_value(v);
    if (!isfinite(*out))
        return recur__error(RECUR_E_FORMAT, "%s: \"" META_KEY "\" metadata: \"%s\" is not "
                            "finite", name, key);
    return RECUR_OK;
}

static const char *get_string(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int get_doubles(json_t *obj, const char *key, const char *name, int n, double *out)
{
    json_t *a = json_object_get(obj, key);
    if (!json_is_array(a) || json_array_size(a) != (size_t)n)
        return recur__error(RECUR_E_FORMAT, "%s: \"" META_KEY "\" metadata: scaling.%s must be "
                            "an array of %d numbers", name, key, n);
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(a, (size_t)i);
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return recur__error(RECUR_E_FORMAT, "%s: \"" META_KEY "\" metadata: scaling.%s[%d] "
                                "is not a finite number", name, key, i);
        out[i] = json_number_value(v);
    }
    return RECUR_OK;
}

void recur_forecast_loaded_free(recur_forecast_loaded *l)
{
    if (!l)
        return;
    recur__free(l->target);
    recur__free(l->time);
    for (int i = 0; i < l->count; i++)
        recur__free(l->covariates[i]);
    recur__free(l->covariates);
    recur__free(l);
}

const recur_forecast_info *recur_forecast_loaded_info(const recur_forecast_loaded *l)
{
    return l ? &l->info : NULL;
}

static int parse_metadata(json_t *root, const char *name, recur_forecast_config *c,
                          recur_forecast_scaling *s, recur_forecast_loaded *l)
{
    long long v;
    int status;
    if (!json_is_object(root))
        return bad(name, "not a JSON object");
    if ((status = get_int(root, "format", name, 1, 1000000, &v)))
        return status;
    if (v > FORECAST_FORMAT)
        return recur__error(RECUR_E_UNSUPPORTED, "%s: forecaster format %lld is newer than this "
                            "build reads (%d)", name, v, FORECAST_FORMAT);
    *c = recur_forecast_config_default();
    const char *text = get_string(root, "cell");
    if (!text || recur_cell_parse(text, &c->cell))
        return bad(name, "\"cell\" is missing or unknown");
    if ((status = get_int(root, "hidden_size", name, 1, 65536, &v)))
        return status;
    c->hidden_size = (int)v;
    if ((status = get_int(root, "num_layers", name, 1, 1024, &v)))
        return status;
    c->num_layers = (int)v;
    double d = 0.0;
    if ((status = get_number(root, "dropout", name, &d)))
        return status;
    c->dropout = (float)d;
    if ((status = get_int(root, "horizon", name, 1, 100000, &v)))
        return status;
    c->horizon = (int)v;
    if ((status = get_int(root, "period", name, 1, 100000, &v)))
        return status;
    c->period = (int)v;
    json_t *level = json_object_get(root, "level_input");
    if (!json_is_boolean(level))
        return bad(name, "\"level_input\" is missing or not a boolean");
    c->level_input = json_is_true(level);
    text = get_string(root, "loss");
    if (!text || recur_forecast_loss_parse(text, &c->loss))
        return bad(name, "\"loss\" is missing or unknown");
    text = get_string(root, "mode");
    if (!text || recur_forecast_mode_parse(text, &c->mode))
        return bad(name, "\"mode\" is missing or unknown");
    if ((status = get_number(root, "interval", name, &c->interval)) ||
        (status = get_number(root, "interval_adapt", name, &c->interval_adapt)))
        return status;
    if ((status = get_int(root, "calibrated_steps", name, 0, (long long)1 << 52, &v)))
        return status;
    l->calibrated_steps = (size_t)v;
    json_t *covs = json_object_get(root, "covariates");
    if (!json_is_array(covs) || json_array_size(covs) > RECUR_FORECAST_MAX_COVARIATES)
        return bad(name, "\"covariates\" is missing or not an array of at most 64 names");
    c->covariate_count = (int)json_array_size(covs);
    if ((status = recur_forecast_config_check(c)))
        return recur__error(RECUR_E_FORMAT, "%s: %s", name, recur_last_error());
    json_t *sc = json_object_get(root, "scaling");
    if (!json_is_object(sc))
        return bad(name, "\"scaling\" is missing or not an object");
    memset(s, 0, sizeof *s);
    s->covariate_count = c->covariate_count;
    if ((status = get_number(sc, "mean", name, &s->mean)) ||
        (status = get_number(sc, "std", name, &s->std)) ||
        (status = get_number(sc, "scale", name, &s->scale)) ||
        (status = get_doubles(sc, "covariate_mean", name, c->covariate_count,
                              s->covariate_mean)) ||
        (status = get_doubles(sc, "covariate_std", name, c->covariate_count, s->covariate_std)))
        return status;
    /* the info */
    text = get_string(root, "target");
    if (!text || !text[0])
        return bad(name, "\"target\" is missing or not a string");
    if (!(l->target = recur__strdup(text)))
        return recur__error(RECUR_E_NOMEM, "out of memory reading %s", name);
    json_t *time = json_object_get(root, "time");
    if (!json_is_null(time) && !json_is_string(time))
        return bad(name, "\"time\" must be a string or null");
    if (json_is_string(time) && !(l->time = recur__strdup(json_string_value(time))))
        return recur__error(RECUR_E_NOMEM, "out of memory reading %s", name);
    if (c->covariate_count) {
        l->covariates = recur__calloc((size_t)c->covariate_count, sizeof *l->covariates);
        if (!l->covariates)
            return recur__error(RECUR_E_NOMEM, "out of memory reading %s", name);
    }
    for (int i = 0; i < c->covariate_count; i++) {
        json_t *e = json_array_get(covs, (size_t)i);
        if (!json_is_string(e))
            return bad(name, "a covariate name is not a string");
        if (!(l->covariates[i] = recur__strdup(json_string_value(e))))
            return recur__error(RECUR_E_NOMEM, "out of memory reading %s", name);
        l->count = i + 1;
    }
    if ((status = get_int(root, "lookback", name, 1, 100000000, &v)))
        return status;
    l->info.lookback = (int)v;
    if ((status = get_int(root, "train_steps", name, 0, (long long)1 << 52, &v)))
        return status;
    l->info.train_steps = (size_t)v;
    if ((status = get_int(root, "fit_steps", name, 0, (long long)1 << 52, &v)))
        return status;
    l->info.fit_steps = (size_t)v;
    l->info.target = l->target;
    l->info.time = l->time;
    l->info.covariates = (const char *const *)l->covariates;
    return RECUR_OK;
}

int recur_forecaster_read(const recur_st *st, const char *name, recur_forecaster **out,
                          recur_forecast_loaded **loaded)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_forecaster_read: out is NULL");
    *out = NULL;
    if (loaded)
        *loaded = NULL;
    if (!st)
        return recur__error(RECUR_E_INVALID, "recur_forecaster_read: file is NULL");
    if (!name)
        name = "(checkpoint)";
    const char *meta = recur_st_metadata(st, META_KEY);
    if (!meta)
        return recur__error(RECUR_E_FORMAT, "%s: no \"" META_KEY "\" metadata: not a forecaster "
                            "checkpoint", name);
    json_error_t jerr;
    json_t *root = json_loads(meta, 0, &jerr);
    if (!root)
        return recur__error(RECUR_E_FORMAT, "%s: \"" META_KEY "\" metadata is not JSON: %s "
                            "(column %d)", name, jerr.text, jerr.column);
    recur_forecast_loaded *l = recur__calloc(1, sizeof *l);
    recur_forecast_config c;
    recur_forecast_scaling s;
    recur_forecaster *fc = NULL;
    int status = l ? parse_metadata(root, name, &c, &s, l)
                   : recur__error(RECUR_E_NOMEM, "out of memory reading %s", name);
    json_decref(root);
    if (!status)
        status = recur_forecaster_create(&c, &fc);
    if (!status && (status = recur_forecaster_set_scaling(fc, &s)))
        status = recur__error(RECUR_E_FORMAT, "%s: %s", name, recur_last_error());
    float *params = fc ? recur_forecaster_params(fc) : NULL;
    for (int i = 0; !status && i < recur_forecaster_tensor_count(fc); i++) {
        const recur_param_view *v = recur_forecaster_tensor_at(fc, i);
        const recur_st_tensor *t = recur_st_find(st, v->name);
        if (!t) {
            status = recur__error(RECUR_E_FORMAT, "%s: tensor %s is missing", name, v->name);
            break;
        }
        if (t->ndim != v->ndim || t->shape[0] != v->shape[0] ||
            (v->ndim == 2 && t->shape[1] != v->shape[1])) {
            status = recur__error(RECUR_E_FORMAT, "%s: tensor %s has shape [%lld%s%lld], the "
                                  "metadata's model needs [%lld%s%lld]", name, v->name,
                                  (long long)t->shape[0], t->ndim > 1 ? ", " : "",
                                  t->ndim > 1 ? (long long)t->shape[1] : 0LL,
                                  (long long)v->shape[0], v->ndim > 1 ? ", " : "",
                                  v->ndim > 1 ? (long long)v->shape[1] : 0LL);
            break;
        }
        if (recur_st_read_f32_shape(st, v->name, v->ndim, v->shape, params + v->offset)) {
            status = recur__error(RECUR_E_FORMAT, "%s: tensor %s: %s", name, v->name,
                                  recur_last_error());
            break;
        }
        for (size_t j = 0; j < v->numel; j++)
            if (!isfinite(params[v->offset + j])) {
                status = recur__error(RECUR_E_FORMAT, "%s: tensor %s has a non-finite value at "
                                      "%zu", name, v->name, j);
                break;
            }
    }
    if (!status) {
        const int h = c.horizon;
        double *margins = recur__calloc((size_t)h, sizeof *margins);
        const recur_st_tensor *t = recur_st_find(st, "calibration");
        if (!margins)
            status = recur__error(RECUR_E_NOMEM, "out of memory reading %s", name);
        else if (!t || t->ndim != 1 || t->shape[0] != h)
            status = recur__error(RECUR_E_FORMAT, "%s: tensor calibration is missing or not "
                                  "of shape [%d]", name, h);
        else if (recur_st_read_f64(st, "calibration", margins, (size_t)h) ||
                 recur_forecaster_set_calibration(fc, margins, l->calibrated_steps))
            status = recur__error(RECUR_E_FORMAT, "%s: calibration: %s", name,
                                  recur_last_error());
        recur__free(margins);
    }
    if (status) {
        recur_forecaster_free(fc);
        recur_forecast_loaded_free(l);
        return status;
    }
    *out = fc;
    if (loaded)
        *loaded = l;
    else
        recur_forecast_loaded_free(l);
    return RECUR_OK;
}

int recur_forecaster_load(const char *path, recur_forecaster **fc,
                          recur_forecast_loaded **loaded)
{
    if (!fc)
        return recur__error(RECUR_E_INVALID, "recur_forecaster_load: out is NULL");
    *fc = NULL;
    if (loaded)
        *loaded = NULL;
    recur_st *st = NULL;
    int status = recur_st_open(path, &st);
    if (status)
        return status;
    status = recur_forecaster_read(st, path, fc, loaded);
    recur_st_free(st);
    return status;
}
