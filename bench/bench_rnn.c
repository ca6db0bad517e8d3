/* bench_rnn.c - time per step, tokens/s and GFLOP/s of recur's recurrent
 * stacks: LSTM/GRU/RNN with I = H = 1024, batch 64, T = 100 (forward and a
 * training step), and the char-rnn training step (2-layer 512 LSTM,
 * embedding 512, batch 32, T = 100, vocabulary 65).
 * FLOPs count the matrix products: forward 2*T*B*G*H*(I+H) per layer, a
 * training step 3x the forward. Usage: bench_rnn [threads] [seconds]. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "recur.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double budget = 2.0;

static void stack_case(recur_cell cell, int I, int H, int B, int T, bool train)
{
    recur_rnn_config cfg = recur_rnn_config_default();
    cfg.cell = cell;
    cfg.input_size = I;
    cfg.hidden_size = H;
    recur_rnn *rnn;
    if (recur_rnn_create(&cfg, NULL, NULL, &rnn)) {
        fprintf(stderr, "%s\n", recur_last_error());
        exit(1);
    }
    recur_rng rng;
    recur_rng_seed(&rng, 1);
    recur_rnn_init(rnn, &rng);
    float *x = calloc((size_t)T * B * I, sizeof(float)), *y = calloc((size_t)T * B * H, sizeof(float));
    float *dx = calloc((size_t)T * B * I, sizeof(float));
    for (size_t i = 0; i < (size_t)T * B * I; i++)
        x[i] = recur_rng_uniform(&rng) - 0.5f;
    recur_rnn_input in = {T, B, x, 0, NULL, NULL, NULL};
    recur_rnn_output out = {y, NULL, NULL};
    recur_rnn_grad_in gin = {y, NULL, NULL};
    recur_rnn_grad_out gout = {dx, NULL, NULL};
    int reps = 0;
    double t0 = 0;
    for (int warm = 1; warm >= 0; warm--) {
        t0 = now();
        reps = 0;
        do {
            recur_rnn_forward(rnn, train ? RECUR_MODE_TRAIN : RECUR_MODE_INFER, &in, &out, NULL);
            if (train)
                recur_rnn_backward(rnn, &gin, &gout);
            reps++;
        } while (now() - t0 < (warm ? 0.2 : budget));
    }
    double dt = (now() - t0) / reps;
    double flops = 2.0 * T * B * recur_cell_gates(cell) * H * (double)(I + H) * (train ? 3 : 1);
    printf("%-8s %-8s I=%-4d H=%-4d B=%-3d T=%-3d %9.2f ms %10.0f tok/s %7.1f GFLOP/s\n",
           recur_cell_name(cell), train ? "train" : "forward", I, H, B, T, dt * 1e3, T * B / dt,
           flops / dt * 1e-9);
    free(x), free(y), free(dx);
    recur_rnn_free(rnn);
}

static void charrnn_case(void)
{
    const int V = 65, T = 100, B = 32;
    recur_lm_config cfg = recur_lm_config_default();
    cfg.vocab_size = V;
    cfg.embedding_size = 512;
    cfg.hidden_size = 512;
    cfg.num_layers = 2;
    recur_lm *lm;
    if (recur_lm_create(&cfg, &lm)) {
        fprintf(stderr, "%s\n", recur_last_error());
        exit(1);
    }
    recur_rng rng;
    recur_rng_seed(&rng, 1);
    recur_lm_init(lm, &rng);
    int32_t *tokens = malloc((size_t)(T + 1) * B * sizeof(int32_t));
    for (int i = 0; i < (T + 1) * B; i++)
        tokens[i] = (int32_t)recur_rng_below(&rng, V);
    float *h = calloc(recur_lm_state_size(lm, B), sizeof(float));
    float *c = calloc(recur_lm_state_size(lm, B), sizeof(float));
    recur_optim_config oc = recur_optim_config_default(RECUR_OPTIM_ADAM);
    recur_optim *opt;
    recur_optim_create(&oc, recur_lm_size(lm), &opt);
    double loss, t0 = 0;
    int reps = 0;
    for (int warm = 1; warm >= 0; warm--) {
        t0 = now();
        reps = 0;
        do {
            recur_lm_zero_grad(lm);
            recur_lm_train_step(lm, tokens, T, B, h, c, &rng, &loss);
            double norm;
            recur_clip_grad_norm(recur_lm_grads(lm), recur_lm_size(lm), 5.0, &norm);
            recur_optim_step(opt, recur_lm_params(lm), recur_lm_grads(lm), 2e-3f);
            reps++;
        } while (now() - t0 < (warm ? 0.2 : budget));
    }
    double dt = (now() - t0) / reps;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("char-rnn train 2x512 LSTM E=512 B=32 T=100 V=65   %9.2f ms %10.0f tok/s  peak RSS %ld MB\n",
           dt * 1e3, T * B / dt, ru.ru_maxrss / 1024);
    recur_optim_free(opt);
    free(tokens), free(h), free(c);
    recur_lm_free(lm);
}

int main(int argc, char **argv)
{
    recur_set_threads(argc > 1 ? atoi(argv[1]) : 0);
    if (argc > 2)
        budget = atof(argv[2]);
    printf("recur %s, backend %s, %d threads\n", recur_version(), recur_blas_backend(),
           recur_get_threads());
    charrnn_case();
    const recur_cell cells[] = {RECUR_CELL_LSTM, RECUR_CELL_GRU, RECUR_CELL_RNN_TANH};
    for (int k = 0; k < 3; k++) {
        stack_case(cells[k], 1024, 1024, 64, 100, false);
        stack_case(cells[k], 1024, 1024, 64, 100, true);
    }
    return 0;
}
