/* test_train_state.c - the training state of any model's checkpoint
 * (recur_train_state_write / recur_train_state_read): a round trip keeps
 * every field bit for bit, next to the caller's own tensors; a file without
 * the state reads as NULL; inconsistent files and bad arguments are refused
 * with messages that name the problem. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "recur.h"

#define N 7

typedef struct fixture {
    float params[N];
    float moments[2 * N];
    const char *names[2];
    const char *values[2];
    recur_train_state ts;
} fixture;

static void make_fixture(fixture *f)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < N; i++) {
        f->params[i] = 0.25f * (float)i - 1.0f;
        f->moments[i] = 0.01f * (float)(i + 1);
        f->moments[N + i] = 1e-4f * (float)(i + 3);
    }
    f->names[0] = "hidden";
    f->values[0] = "64";
    f->names[1] = "lr";
    f->values[1] = "0.001";
    recur_rng_seed(&f->ts.rng, 42);
    f->ts.step = 123;
    f->ts.data_tokens = 1000;
    f->ts.data_hash = 0xfedcba9876543210ull;
    f->ts.optim = recur_optim_config_default(RECUR_OPTIM_ADAM);
    f->ts.optim.lr = 1e-3f;
    f->ts.optim_step = 120;
    f->ts.optim_state = f->moments;
    f->ts.optim_state_count = 2 * N;
    f->ts.schedule = recur_schedule_default();
    f->ts.best_val_loss = 0.3125;
    f->ts.best_step = 100;
    f->ts.elapsed_s = 12.5;
    f->ts.option_count = 2;
    f->ts.option_names = f->names;
    f->ts.option_values = f->values;
    f->ts.data_position_count = 3;
    f->ts.data_position[0] = 4;
    f->ts.data_position[1] = -7;
    f->ts.data_position[2] = (int64_t)1 << 53 | 1; /* not exact as a double */
}

/* The file image of the fixture's model tensor plus its training state. */
static recur_st *image(const fixture *f, int with_state, const char *extra_tensor)
{
    recur_st_writer *w = NULL;
    recur_st *st = NULL;
    void *bytes = NULL;
    size_t size = 0;
    const int64_t n = N;
    if (recur_st_writer_create(&w))
        return NULL;
    int ok = recur_st_writer_add(w, "model.weight", RECUR_DTYPE_F32, 1, &n, f->params) == 0 &&
             recur_st_writer_metadata(w, "model", "{\"kind\": \"test\"}") == 0;
    if (ok && with_state)
        ok = recur_train_state_write(w, &f->ts, N) == 0;
    if (ok && extra_tensor)
        ok = recur_st_writer_add(w, extra_tensor, RECUR_DTYPE_F32, 1, &n, f->params) == 0;
    if (ok && recur_st_writer_serialize(w, &bytes, &size) == 0)
        recur_st_parse(bytes, size, &st);
    recur_free(bytes);
    recur_st_writer_free(w);
    return st;
}

static void test_round_trip(void)
{
    fixture f;
    make_fixture(&f);
    recur_st *st = image(&f, 1, NULL);
    CHECK(st != NULL);
    if (!st)
        return;
    recur_train_state *t = NULL;
    CHECK_OK(recur_train_state_read(st, "x.safetensors", N, &t));
    CHECK(t != NULL);
    if (t) {
        CHECK(t->step == 123 && t->optim_step == 120 && t->best_step == 100);
        CHECK(t->data_tokens == 1000 && t->data_hash == 0xfedcba9876543210ull);
        CHECK(memcmp(&t->rng, &f.ts.rng, sizeof t->rng) == 0);
        CHECK(t->optim.kind == RECUR_OPTIM_ADAM && t->optim.lr == 1e-3f &&
              t->optim.beta2 == f.ts.optim.beta2);
        CHECK(t->optim_state_count == 2 * N &&
              memcmp(t->optim_state, f.moments, sizeof f.moments) == 0);
        CHECK(t->schedule.kind == f.ts.schedule.kind);
        CHECK(t->best_val_loss == 0.3125 && t->elapsed_s == 12.5);
        CHECK(t->data_position_count == 3 && t->data_position[0] == 4 &&
              t->data_position[1] == -7 && t->data_position[2] == ((int64_t)1 << 53 | 1));
        CHECK(recur_train_state_option(t, "hidden") &&
              strcmp(recur_train_state_option(t, "hidden"), "64") == 0);
        CHECK(t->h == NULL && t->c == NULL && t->batch == 0);
        /* the restored optimizer continues from the saved moments */
        recur_optim *opt = NULL;
        CHECK_OK(recur_train_state_make_optim(t, N, &opt));
        CHECK(opt && recur_optim_get_step(opt) == 120);
        recur_optim_free(opt);
    }
    /* the caller's tensor is untouched and still there */
    float back[N];
    CHECK_OK(recur_st_read_f32(st, "model.weight", back, N));
    CHECK(memcmp(back, f.params, sizeof back) == 0);
    recur_train_state_free(t);

    /* a wrong parameter count is refused */
    t = (recur_train_state *)1;
    CHECK_STATUS(recur_train_state_read(st, "x.safetensors", N + 1, &t), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("optimizer.exp_avg");
    CHECK(t == NULL);
    recur_st_free(st);

    /* no best validation yet: +INFINITY survives */
    f.ts.best_val_loss = INFINITY;
    f.ts.data_position_count = 0;
    st = image(&f, 1, NULL);
    t = NULL;
    CHECK_OK(recur_train_state_read(st, "x.safetensors", N, &t));
    CHECK(t && isinf(t->best_val_loss) && t->data_position_count == 0);
    recur_train_state_free(t);
    recur_st_free(st);
}

static void test_absent_and_broken(void)
{
    fixture f;
    make_fixture(&f);
    /* a model-only file: no state */
    recur_st *st = image(&f, 0, NULL);
    recur_train_state *t = (recur_train_state *)1;
    CHECK_OK(recur_train_state_read(st, "m.safetensors", N, &t));
    CHECK(t == NULL);
    recur_st_free(st);

    /* optimizer tensors without "recur_train" */
    st = image(&f, 0, "optimizer.exp_avg");
    CHECK_STATUS(recur_train_state_read(st, "m.safetensors", N, &t), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("m.safetensors");
    CHECK_ERROR_MENTIONS("recur_train");
    recur_st_free(st);

    /* a buffer the optimizer does not keep */
    st = image(&f, 1, "optimizer.momentum_buffer");
    CHECK_STATUS(recur_train_state_read(st, "m.safetensors", N, &t), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("unexpected tensor 'optimizer.momentum_buffer'");
    recur_st_free(st);

    /* writer-side checks */
    recur_st_writer *w = NULL;
    CHECK_OK(recur_st_writer_create(&w));
    f.ts.data_position_count = RECUR_TRAIN_POSITION_MAX + 1;
    CHECK_STATUS(recur_train_state_write(w, &f.ts, N), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("data_position_count");
    f.ts.data_position_count = 1;
    CHECK_STATUS(recur_train_state_write(w, &f.ts, N + 1), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("optimizer state");
    f.ts.best_val_loss = NAN;
    CHECK_STATUS(recur_train_state_write(w, &f.ts, N), RECUR_E_INVALID);
    f.ts.best_val_loss = 1.0;
    CHECK_STATUS(recur_train_state_write(NULL, &f.ts, N), RECUR_E_INVALID);
    CHECK_STATUS(recur_train_state_read(NULL, "x", N, &t), RECUR_E_INVALID);
    recur_st_writer_free(w);
}

int main(void)
{
    test_round_trip();
    test_absent_and_broken();
    CHECK_DONE();
}
