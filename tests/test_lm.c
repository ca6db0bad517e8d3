/* test_lm.c - the language model's own pieces beyond the PyTorch fixtures
 * (tests/parity/lm.c): the gradient of recur_lm_train_step against central
 * differences with every dropout on (embedding, between layers, output,
 * DropConnect on W_hh), gradients accumulating over steps, the weights
 * unchanged by a step, evaluation ignoring dropout, the carried state, the
 * gradient-ready notifications, config errors, the lent logits of
 * recur_lm_evaluate_logits and the ensemble mixture recur_log_mixture. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "recur.h"

enum { V = 7, T = 4, B = 3 };

/* The mean loss of one chunk with the dropout masks drawn from `seed`;
 * gradients accumulate into the model's (callers zero them). */
static double chunk_loss(recur_lm *lm, const int32_t *tokens, uint64_t seed)
{
    recur_rng rng;
    recur_rng_seed(&rng, seed);
    double loss = NAN;
    if (recur_lm_train_step(lm, tokens, T, B, NULL, NULL, &rng, &loss) != RECUR_OK)
        return NAN;
    return loss;
}

static void gradient_case(recur_cell cell, float p_embed, float p_layers, float p_out,
                          float p_weight)
{
    recur_lm_config cfg = recur_lm_config_default();
    cfg.cell = cell;
    cfg.vocab_size = V;
    cfg.embedding_size = 4;
    cfg.hidden_size = 5;
    cfg.num_layers = 2;
    cfg.dropout = p_layers;
    cfg.embedding_dropout = p_embed;
    cfg.output_dropout = p_out;
    cfg.weight_dropout = p_weight;
    recur_lm *lm = NULL;
    CHECK_OK(recur_lm_create(&cfg, &lm));
    if (!lm)
        return;
    recur_rng rng;
    recur_rng_seed(&rng, 11);
    recur_lm_init(lm, &rng);
    int32_t tokens[(T + 1) * B];
    for (int i = 0; i < (T + 1) * B; i++)
        tokens[i] = (int32_t)(recur_rng_next(&rng) % V);

    const size_t n = recur_lm_size(lm);
    float *params = recur_lm_params(lm);
    float *saved_params = malloc(n * sizeof(float));
    memcpy(saved_params, params, n * sizeof(float));
    recur_lm_zero_grad(lm);
    double base = chunk_loss(lm, tokens, 99);
    CHECK(isfinite(base));
    float *analytic = malloc(n * sizeof(float));
    memcpy(analytic, recur_lm_grads(lm), n * sizeof(float));
    double scale = 0.0, worst = 0.0;
    size_t worst_at = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(analytic[i]));
    const float eps = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        float saved = params[i];
        params[i] = saved + eps;
        double lp = chunk_loss(lm, tokens, 99);
        params[i] = saved - eps;
        double lmi = chunk_loss(lm, tokens, 99);
        params[i] = saved;
        double err = fabs((lp - lmi) / (2.0 * eps) - analytic[i]);
        if (!(err <= worst)) {
            worst = err;
            worst_at = i;
        }
    }
    CHECK_MSG(worst / scale < 3e-3, "%s dropouts %g/%g/%g/%g: gradient error %.3g (scale "
              "%.3g) at parameter %zu", recur_cell_name(cell), (double)p_embed, (double)p_layers,
              (double)p_out, (double)p_weight, worst, scale, worst_at);
    /* the weights are back as they were after every step */
    for (size_t i = 0; i < n; i++)
        if (params[i] != saved_params[i]) {
            CHECK_MSG(0, "parameter %zu changed by a training step", i);
            break;
        }
    free(saved_params);

    /* a step with the same masks onto the gradient of one step doubles it
     * (the finite differences above accumulated into the gradients: reset) */
    memcpy(recur_lm_grads(lm), analytic, n * sizeof(float));
    CHECK(isfinite(chunk_loss(lm, tokens, 99)));
    double accumulated = 0.0;
    for (size_t i = 0; i < n; i++)
        accumulated = fmax(accumulated, fabs(recur_lm_grads(lm)[i] - 2.0f * analytic[i]));
    CHECK_MSG(accumulated <= 1e-5 * scale, "accumulated gradient off by %.3g", accumulated);

    /* the masks really drop something: another seed gives another loss */
    if (p_embed > 0.0f || p_layers > 0.0f || p_out > 0.0f || p_weight > 0.0f)
        CHECK(fabs(chunk_loss(lm, tokens, 100) - base) > 1e-6);

    /* evaluation uses no dropout: it equals training of a dropout-free copy */
    recur_lm_config plain = cfg;
    plain.dropout = plain.embedding_dropout = plain.output_dropout = plain.weight_dropout = 0.0f;
    recur_lm *ref = NULL;
    CHECK_OK(recur_lm_create(&plain, &ref));
    if (ref) {
        memcpy(recur_lm_params(ref), params, n * sizeof(float));
        double eval = NAN, train = NAN;
        CHECK_OK(recur_lm_evaluate(lm, tokens, T, B, NULL, NULL, &eval));
        CHECK_OK(recur_lm_train_step(ref, tokens, T, B, NULL, NULL, NULL, &train));
        CHECK_NEAR(eval, train, 1e-6);
        recur_lm_free(ref);
    }
    free(analytic);
    recur_lm_free(lm);
}

/* A 1-layer model (E = 3, H = 4) initialised from seed, and n random tokens
 * drawn after the weights; NULL when it cannot be created (a check failed). */
static recur_lm *small_lm(recur_cell cell, uint64_t seed, int32_t *tokens, int n)
{
    recur_lm_config cfg = recur_lm_config_default();
    cfg.cell = cell;
    cfg.vocab_size = V;
    cfg.embedding_size = 3;
    cfg.hidden_size = 4;
    recur_lm *lm = NULL;
    CHECK_OK(recur_lm_create(&cfg, &lm));
    if (!lm)
        return NULL;
    recur_rng rng;
    recur_rng_seed(&rng, seed);
    recur_lm_init(lm, &rng);
    for (int i = 0; i < n; i++)
        tokens[i] = (int32_t)(recur_rng_next(&rng) % V);
    return lm;
}

/* Two chunks with the state carried equal one chunk twice as long. */
static void carried_state(void)
{
    int32_t tokens[(2 * T + 1) * B];
    recur_lm *lm = small_lm(RECUR_CELL_LSTM, 5, tokens, (2 * T + 1) * B);
    if (!lm)
        return;
    const size_t S = recur_lm_state_size(lm, B);
    float *h = calloc(S, sizeof(float)), *c = calloc(S, sizeof(float));
    double whole = NAN, first = NAN, second = NAN;
    CHECK_OK(recur_lm_evaluate(lm, tokens, 2 * T, B, NULL, NULL, &whole));
    CHECK_OK(recur_lm_evaluate(lm, tokens, T, B, h, c, &first));
    CHECK_OK(recur_lm_evaluate(lm, tokens + T * B, T, B, h, c, &second));
    CHECK_NEAR((first + second) / 2.0, whole, 1e-5);
    free(h), free(c);
    recur_lm_free(lm);
}

/* recur_lm_evaluate_logits lends the logits behind recur_lm_evaluate's loss:
 * their cross-entropy against the next tokens is that loss. */
static void evaluate_logits(void)
{
    int32_t tokens[(T + 1) * B];
    recur_lm *lm = small_lm(RECUR_CELL_GRU, 8, tokens, (T + 1) * B);
    if (!lm)
        return;
    double plain = NAN, lent = NAN, xent = 0.0;
    const float *logits = NULL;
    CHECK_OK(recur_lm_evaluate(lm, tokens, T, B, NULL, NULL, &plain));
    CHECK_OK(recur_lm_evaluate_logits(lm, tokens, T, B, NULL, NULL, &lent, &logits));
    CHECK(logits != NULL && lent == plain);
    for (int r = 0; logits && r < T * B; r++) {
        double z = 0.0;
        for (int v = 0; v < V; v++)
            z += exp((double)logits[r * V + v]);
        xent += log(z) - (double)logits[r * V + tokens[B + r]];
    }
    CHECK_NEAR(xent / (T * B), plain, 1e-5);
    CHECK_STATUS(recur_lm_evaluate_logits(lm, tokens, T, B, NULL, NULL, &lent, NULL),
                 RECUR_E_INVALID);
    recur_lm_free(lm);
}

/* recur_log_mixture against probabilities worked out by hand. */
static void log_mixture(void)
{
    /* K = 2, V = 2: softmax(0, 0) = (1/2, 1/2), softmax(log 3, 0) = (3/4, 1/4);
     * their average (5/8, 3/8) */
    float a[2] = {0.0f, 0.0f}, b[2] = {(float)log(3.0), 0.0f}, out[2];
    const float *two[2] = {a, b};
    CHECK_OK(recur_log_mixture(two, 2, 1, 2, out));
    CHECK_NEAR(out[0], log(5.0 / 8.0), 1e-6);
    CHECK_NEAR(out[1], log(3.0 / 8.0), 1e-6);
    /* K = 1 is log_softmax: (2, 1, -1) shifted by log(e^2 + e + e^-1); two rows */
    float one[6] = {2.0f, 1.0f, -1.0f, 0.5f, 0.5f, 0.5f}, lsm[6];
    const float *just[1] = {one};
    CHECK_OK(recur_log_mixture(just, 1, 2, 3, lsm));
    const double z = log(exp(2.0) + exp(1.0) + exp(-1.0));
    CHECK_NEAR(lsm[0], 2.0 - z, 1e-6);
    CHECK_NEAR(lsm[2], -1.0 - z, 1e-6);
    CHECK_NEAR(lsm[4], -log(3.0), 1e-6);
    /* logits far apart neither overflow nor lose the small member: (1, 0) and (0, 1) in
     * effect, so each token gets 1/2 */
    float far1[2] = {1000.0f, -1000.0f}, far2[2] = {-500.0f, 500.0f};
    const float *far[2] = {far1, far2};
    CHECK_OK(recur_log_mixture(far, 2, 1, 2, far1)); /* in place over the first member */
    CHECK_NEAR(far1[0], log(0.5), 1e-6);
    CHECK_NEAR(far1[1], log(0.5), 1e-6);
    /* identical members mix to themselves */
    float same[3] = {0.3f, -2.0f, 1.7f}, mixed[3], single[3];
    const float *three[3] = {same, same, same};
    CHECK_OK(recur_log_mixture(three, 3, 1, 3, mixed));
    CHECK_OK(recur_log_mixture(three, 1, 1, 3, single));
    for (int v = 0; v < 3; v++)
        CHECK_NEAR(mixed[v], single[v], 1e-6);
    float bad[4] = {0.0f, 1.0f, NAN, 2.0f};
    const float *with_nan[2] = {a, bad + 2};
    CHECK_STATUS(recur_log_mixture(with_nan, 2, 1, 2, out), RECUR_E_NUMERIC);
    CHECK_ERROR_MENTIONS("model 1 in row 0");
    const float *late[1] = {bad};
    CHECK_STATUS(recur_log_mixture(late, 1, 2, 2, out), RECUR_E_NUMERIC);
    CHECK_ERROR_MENTIONS("row 1");
    CHECK_STATUS(recur_log_mixture(two, 0, 1, 2, out), RECUR_E_INVALID);
    const float *holes[2] = {a, NULL};
    CHECK_STATUS(recur_log_mixture(holes, 2, 1, 2, out), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("logits[1]");
}

/* What the gradient hook saw: every call's `from`, and for each new
 * `from` a copy of grads[from..n) at that moment. */
enum { HOOK_MAX = 64, T_LONG = 20 };
typedef struct hook_log {
    recur_lm *lm;
    int calls, reports;
    size_t from[HOOK_MAX];
    float *copy[HOOK_MAX];
} hook_log;

static void record(void *user, size_t from)
{
    hook_log *log = user;
    if (log->calls >= HOOK_MAX)
        return;
    log->from[log->calls] = from;
    log->copy[log->calls] = NULL;
    if (log->calls == 0 || from != log->from[log->calls - 1]) {
        const size_t n = recur_lm_size(log->lm) - from;
        log->copy[log->calls] = malloc((n ? n : 1) * sizeof(float));
        memcpy(log->copy[log->calls], recur_lm_grads(log->lm) + from, n * sizeof(float));
        log->reports++;
    }
    log->calls++;
}

/* recur_lm_set_grad_hook: the head, each layer from the top and the
 * embedding are reported in that order, a reported range never changes
 * afterwards (bit for bit), progress calls come during the time loops, and
 * the gradient is the same with and without the hook (weight dropout, whose
 * W_hh gradient the hook completes layer by layer, included). */
static void grad_hook_case(float p_weight)
{
    recur_lm_config cfg = recur_lm_config_default();
    cfg.vocab_size = V;
    cfg.embedding_size = 3;
    cfg.hidden_size = 6;
    cfg.num_layers = 3;
    cfg.dropout = 0.2f;
    cfg.weight_dropout = p_weight;
    recur_lm *lm = NULL;
    CHECK_OK(recur_lm_create(&cfg, &lm));
    if (!lm)
        return;
    recur_rng rng;
    recur_rng_seed(&rng, 8);
    recur_lm_init(lm, &rng);
    int32_t tokens[(T_LONG + 1) * B];
    for (int i = 0; i < (T_LONG + 1) * B; i++)
        tokens[i] = (int32_t)(recur_rng_next(&rng) % V);
    const size_t n = recur_lm_size(lm);
    float *plain = malloc(n * sizeof(float)), *params = malloc(n * sizeof(float));
    memcpy(params, recur_lm_params(lm), n * sizeof(float));

    recur_lm_zero_grad(lm);
    double loss_plain = NAN, loss_hooked = NAN;
    recur_rng_seed(&rng, 3);
    CHECK_OK(recur_lm_train_step(lm, tokens, T_LONG, B, NULL, NULL, &rng, &loss_plain));
    memcpy(plain, recur_lm_grads(lm), n * sizeof(float));

    hook_log log = {.lm = lm};
    recur_lm_set_grad_hook(lm, record, &log);
    recur_lm_zero_grad(lm);
    recur_rng_seed(&rng, 3);
    CHECK_OK(recur_lm_train_step(lm, tokens, T_LONG, B, NULL, NULL, &rng, &loss_hooked));
    CHECK(loss_hooked == loss_plain);
    CHECK(memcmp(plain, recur_lm_grads(lm), n * sizeof(float)) == 0);
    CHECK(memcmp(params, recur_lm_params(lm), n * sizeof(float)) == 0);

    /* the reported offsets: head, layers 2, 1, 0, embedding */
    const char *names[] = {"head.weight", "rnn.weight_ih_l2", "rnn.weight_ih_l1",
                           "rnn.weight_ih_l0"};
    size_t want[5];
    for (int k = 0; k < 4; k++)
        want[k] = recur_lm_tensor_find(lm, names[k])->offset;
    want[4] = 0;
    CHECK_MSG(log.reports == 5, "%d reports", log.reports);
    int r = 0, progress = 0;
    for (int k = 0; k < log.calls; k++) {
        if (!log.copy[k]) {
            progress++;
            continue;
        }
        if (r < 5)
            CHECK_MSG(log.from[k] == want[r], "report %d: from %zu, want %zu", r, log.from[k],
                      want[r]);
        /* final when reported: equal to the end result bit for bit */
        CHECK_MSG(memcmp(log.copy[k], recur_lm_grads(lm) + log.from[k],
                         (n - log.from[k]) * sizeof(float)) == 0,
                  "grads[%zu..) changed after they were reported", log.from[k]);
        r++;
    }
    /* 3 layers x steps s = 16, 8, 0 of each time loop */
    CHECK_MSG(progress == 9, "%d progress calls", progress);
    for (int k = 0; k < log.calls; k++)
        free(log.copy[k]);

    /* removed: no more calls */
    const int calls = log.calls;
    recur_lm_set_grad_hook(lm, NULL, NULL);
    CHECK_OK(recur_lm_train_step(lm, tokens, T_LONG, B, NULL, NULL, &rng, &loss_hooked));
    CHECK(log.calls == calls);
    free(plain), free(params);
    recur_lm_free(lm);
}

static void config_errors(void)
{
    recur_lm_config cfg = recur_lm_config_default();
    cfg.vocab_size = V;
    recur_lm *lm = NULL;
    cfg.output_dropout = 1.0f;
    CHECK_STATUS(recur_lm_create(&cfg, &lm), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("output_dropout");
    cfg.output_dropout = 0.0f;
    cfg.embedding_dropout = -0.1f;
    CHECK_STATUS(recur_lm_create(&cfg, &lm), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("embedding_dropout");
    CHECK(lm == NULL);
    /* dropout in training without an rng */
    cfg.embedding_dropout = 0.2f;
    CHECK_OK(recur_lm_create(&cfg, &lm));
    int32_t tokens[(T + 1) * B] = {0};
    double loss;
    CHECK_STATUS(recur_lm_train_step(lm, tokens, T, B, NULL, NULL, NULL, &loss), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("rng");
    tokens[5] = V;
    CHECK_STATUS(recur_lm_evaluate(lm, tokens, T, B, NULL, NULL, &loss), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("outside the vocabulary");
    recur_lm_free(lm);
}

int main(void)
{
    const recur_cell cells[] = {RECUR_CELL_LSTM, RECUR_CELL_GRU, RECUR_CELL_RNN_TANH};
    for (int k = 0; k < 3; k++) {
        gradient_case(cells[k], 0.0f, 0.0f, 0.0f, 0.0f);
        gradient_case(cells[k], 0.3f, 0.4f, 0.5f, 0.0f);
        gradient_case(cells[k], 0.0f, 0.0f, 0.0f, 0.5f);
        gradient_case(cells[k], 0.2f, 0.3f, 0.3f, 0.4f);
    }
    carried_state();
    evaluate_logits();
    log_mixture();
    grad_hook_case(0.0f);
    grad_hook_case(0.5f);
    config_errors();
    CHECK_DONE();
}
