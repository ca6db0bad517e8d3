/* optim.c - parity for `kind: optim` fixtures: PyTorch's optimizer
 * (`optimizer`, hyper-parameters as JSON in `hyper`) applied to `param0`
 * with gradients g0..g{steps-1}; after step k the parameters must match
 * p{k}. Hyper-parameters are PyTorch's keyword names; unknown ones (or
 * `maximize`) make the case a skip, not a silent mismatch. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parity.h"

/* Keyword arguments that do not change the result. */
static int ignored_key(const char *key)
{
    static const char *const keys[] = {"foreach", "differentiable", "capturable", "fused"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(key, keys[i]) == 0)
            return 1;
    return 0;
}

/* Fills c from the `hyper` object. Returns PARITY_PASS when every key was
 * understood, else SKIP or ERROR with r->message set. */
static int apply_hyper(json_t *hyper, recur_optim_config *c, parity_result *r)
{
    const char *key;
    json_t *value;
    json_object_foreach(hyper, key, value) {
        float *number = NULL;
        int *flag = NULL;
        if (strcmp(key, "lr") == 0)
            number = &c->lr;
        else if (strcmp(key, "momentum") == 0)
            number = &c->momentum;
        else if (strcmp(key, "dampening") == 0)
            number = &c->dampening;
        else if (strcmp(key, "weight_decay") == 0)
            number = &c->weight_decay;
        else if (strcmp(key, "eps") == 0)
            number = &c->eps;
        else if (strcmp(key, "alpha") == 0)
            number = &c->alpha;
        else if (strcmp(key, "lr_decay") == 0)
            number = &c->lr_decay;
        else if (strcmp(key, "initial_accumulator_value") == 0)
            number = &c->initial_accumulator_value;
        else if (strcmp(key, "nesterov") == 0)
            flag = &c->nesterov;
        else if (strcmp(key, "amsgrad") == 0)
            flag = &c->amsgrad;
        else if (strcmp(key, "centered") == 0)
            flag = &c->centered;

        if (number) {
            if (!json_is_number(value)) {
                snprintf(r->message, sizeof r->message, "hyper '%s' is not a number", key);
                return PARITY_ERROR;
            }
            *number = (float)json_number_value(value);
        } else if (flag) {
            if (!json_is_boolean(value)) {
                snprintf(r->message, sizeof r->message, "hyper '%s' is not a boolean", key);
                return PARITY_ERROR;
            }
            *flag = json_is_true(value);
        } else if (strcmp(key, "betas") == 0) {
            if (!json_is_array(value) || json_array_size(value) != 2 ||
                !json_is_number(json_array_get(value, 0)) ||
                !json_is_number(json_array_get(value, 1))) {
                snprintf(r->message, sizeof r->message, "hyper 'betas' is not [beta1, beta2]");
                return PARITY_ERROR;
            }
            c->beta1 = (float)json_number_value(json_array_get(value, 0));
            c->beta2 = (float)json_number_value(json_array_get(value, 1));
        } else if (strcmp(key, "maximize") == 0) {
            if (json_is_true(value)) {
                snprintf(r->message, sizeof r->message, "maximize=True is not supported");
                return PARITY_SKIP;
            }
        } else if (!ignored_key(key)) {
            snprintf(r->message, sizeof r->message, "unknown hyper-parameter '%s'", key);
            return PARITY_SKIP;
        }
    }
    return PARITY_PASS;
}

int parity_optim(const recur_st *st, parity_result *r)
{
    const char *name = recur_st_metadata(st, "optimizer");
    const char *hyper_text = recur_st_metadata(st, "hyper");
    if (!name || !hyper_text) {
        snprintf(r->message, sizeof r->message, "metadata 'optimizer' or 'hyper' missing");
        return PARITY_ERROR;
    }
    recur_optim_kind kind;
    if (recur_optim_parse(name, &kind) != RECUR_OK) {
        snprintf(r->message, sizeof r->message, "optimizer '%s' not supported", name);
        return PARITY_SKIP;
    }
    json_error_t jerr;
    json_t *hyper = json_loads(hyper_text, 0, &jerr);
    if (!hyper || !json_is_object(hyper)) {
        snprintf(r->message, sizeof r->message, "metadata 'hyper' is not a JSON object: %s",
                 hyper ? "wrong type" : jerr.text);
        json_decref(hyper);
        return PARITY_ERROR;
    }
    recur_optim_config config = recur_optim_config_default(kind);
    int outcome = apply_hyper(hyper, &config, r);
    json_decref(hyper);
    if (outcome != PARITY_PASS)
        return outcome;

    long steps = parity_meta_long(st, "steps", -1);
    size_t n = 0;
    float *params = parity_read_f32(st, "param0", &n);
    recur_optim *opt = NULL;
    if (!params || steps < 1) {
        snprintf(r->message, sizeof r->message, "tensor 'param0' or metadata 'steps' missing");
        free(params);
        return PARITY_ERROR;
    }
    if (recur_optim_create(&config, n, &opt) != RECUR_OK) {
        snprintf(r->message, sizeof r->message, "recur_optim_create: %s", recur_last_error());
        free(params);
        return PARITY_ERROR;
    }
    outcome = PARITY_PASS;
    for (long k = 0; k < steps && outcome == PARITY_PASS; k++) {
        char gname[32], pname[32];
        snprintf(gname, sizeof gname, "g%ld", k);
        snprintf(pname, sizeof pname, "p%ld", k + 1);
        size_t ng = 0, np = 0;
        float *grads = parity_read_f32(st, gname, &ng);
        double *want = parity_read(st, pname, &np);
        if (!grads || !want || ng != n || np != n) {
            snprintf(r->message, sizeof r->message, "tensor %s or %s missing or not of %zu values",
                     gname, pname, n);
            outcome = PARITY_ERROR;
        } else if (recur_optim_step(opt, params, grads, config.lr) != RECUR_OK) {
            snprintf(r->message, sizeof r->message, "step %ld: %s", k + 1, recur_last_error());
            outcome = PARITY_ERROR;
        } else {
            parity_compare(r, pname, params, want, n);
        }
        free(grads);
        free(want);
    }
    recur_optim_free(opt);
    free(params);
    if (outcome != PARITY_PASS)
        return outcome;
    return r->failed ? PARITY_FAIL : PARITY_PASS;
}
