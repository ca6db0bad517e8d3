/* bench_rnn.c - recur's side of the standard benchmark cases (issue 4), each
 * run in its own child process (bench_common.h):
 *   peak_*            the machine's FMA peak measured here: a loop of
 *                     independent AVX-512 FMAs (AVX2 without AVX-512) on 1
 *                     and on N threads, and of AVX512-BF16 dot products;
 *   charrnn_train     char-rnn training step: 2-layer 512 LSTM, embedding
 *                     512, B = 32, T = 100, V = 65, Adam, clip 5;
 *   charrnn_fwd       the same model's forward pass and loss;
 *   {lstm,gru,rnn}_{train,fwd}_b{64,8,1}
 *                     one layer, I = H = 1024, T = 100; train is a training
 *                     forward plus backpropagation through time (with dx);
 *   stream_lstm       recur_rnn_stream_step, LSTM I = 64, H = 256, B = 1:
 *                     median of single steps with carried state;
 *   peak_fp32_end     the N-thread FMA peak again after the cases: far below
 *                     the first, it shows that other work took the cores.
 * FLOPs count the matrix products: a layer's forward 2*T*B*G*H*(I+H) with
 * G = 4 (LSTM), 3 (GRU), 1 (RNN), the char-rnn head 2*T*B*V*H, a training
 * step 3x the forward. The fraction of peak uses the FMA peak on the same
 * number of threads. Peak memory is the case process's ru_maxrss.
 * Usage: bench_rnn [--threads N] [--seconds S] [--json] [--only TEXT]
 * (the peaks always run). stream_lstm_bf16 is the same streaming step with
 * RECUR_PRECISION_BF16; lstm_{fwd,train}_b64_bf16 the b64 layer with
 * recur_set_matmul_precision(RECUR_PRECISION_BF16) (its products over the
 * whole sequence and, with B = 64, the per-step ones in bf16). */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, clock_gettime under -std=c11 */
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "bench_common.h"
#include "recur.h"

/* The peaks measured by the peak case, shared with the parent process so
 * that later cases can print their fraction of it. GFLOP/s; 0: unknown. */
typedef struct machine_peak {
    double fp32_1, fp32_n, bf16_1, bf16_n;
    char isa[16];
} machine_peak;

static machine_peak *peak; /* MAP_SHARED, written by the peak child */

static void die_recur(const char *what)
{
    fprintf(stderr, "bench_rnn: %s: %s\n", what, recur_last_error());
    exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) {
        fprintf(stderr, "bench_rnn: out of memory\n");
        exit(1);
    }
    return p;
}

/* ---- FMA peak ------------------------------------------------------------
 * Each loop keeps enough independent accumulators in registers to cover the
 * FMA latency on every pipe (Zen 5: 2 pipes x 4 cycles = 8 in flight; 16
 * used). acc = acc * b + c converges, so no value overflows or goes denormal.
 * Each returns the sum of its accumulators so the loop cannot be removed. */
#define ACC16(X)                                                                                   \
    X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define ACC12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

__attribute__((target("avx512f"))) static float fma_loop_avx512(long iters)
{
    const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
#define DECL(k) __m512 a##k = _mm512_set1_ps((float)(k));
#define STEP(k) a##k = _mm512_fmadd_ps(a##k, b, c);
#define SUM(k) s = _mm512_add_ps(s, a##k);
    ACC16(DECL)
    for (long i = 0; i < iters; i++) {
        ACC16(STEP)
    }
    __m512 s = _mm512_setzero_ps();
    ACC16(SUM)
#undef DECL
#undef STEP
#undef SUM
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_loop_avx2(long iters)
{
    const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
#define DECL(k) __m256 a##k = _mm256_set1_ps((float)(k));
#define STEP(k) a##k = _mm256_fmadd_ps(a##k, b, c);
#define SUM(k) s = _mm256_add_ps(s, a##k);
    ACC12(DECL)
    for (long i = 0; i < iters; i++) {
        ACC12(STEP)
    }
    __m256 s = _mm256_setzero_ps();
    ACC12(SUM)
#undef DECL
#undef STEP
#undef SUM
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

/* vdpbf16ps: 16 lanes x 2 products x 2 FLOPs = 64 FLOPs per instruction. */
__attribute__((target("avx512f,avx512bf16"))) static float bf16_loop_avx512(long iters)
{
    const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
    const __m512bh y = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
#define DECL(k) __m512 a##k = _mm512_set1_ps((float)(k));
#define STEP(k) a##k = _mm512_dpbf16_ps(a##k, x, y);
#define SUM(k) s = _mm512_add_ps(s, a##k);
    ACC16(DECL)
    for (long i = 0; i < iters; i++) {
        ACC16(STEP)
    }
    __m512 s = _mm512_setzero_ps();
    ACC16(SUM)
#undef DECL
#undef STEP
#undef SUM
    return _mm512_reduce_add_ps(s);
}

typedef struct peak_kernel {
    float (*loop)(long iters);
    double flops_per_iter;
} peak_kernel;

static volatile float peak_sink;

/* Best GFLOP/s of three runs of ~0.15 s on `threads` threads together. */
static double measure_peak(peak_kernel k, int threads)
{
    long iters = 100000;
    for (;;) { /* calibrate on one thread */
        double t = bench_now();
        peak_sink = k.loop(iters);
        t = bench_now() - t;
        if (t > 0.02) {
            iters = (long)((double)iters * 0.15 / t) + 1;
            break;
        }
        iters *= 4;
    }
    double best = 0.0;
    for (int rep = 0; rep < 3; rep++) {
        double t = bench_now();
#pragma omp parallel num_threads(threads)
        {
            float v = k.loop(iters);
#pragma omp critical
            peak_sink += v;
        }
        t = bench_now() - t;
        double gflops = (double)threads * (double)iters * k.flops_per_iter / t * 1e-9;
        if (gflops > best)
            best = gflops;
    }
    return best;
}

static void print_peak(const bench_options *o, const char *id, const char *what, int threads,
                       double gflops, const char *isa)
{
    if (o->json)
        printf("{\"impl\":\"recur\",\"case\":\"%s\",\"what\":\"%s\",\"threads\":%d,"
               "\"gflops\":%.6g,\"isa\":\"%s\"}\n",
               id, what, threads, gflops, isa);
    else
        printf("%-20s %-44s %7.1f GFLOP/s (%s)\n", id, what, gflops, isa);
    fflush(stdout);
}

static bool choose_fp32_kernel(peak_kernel *k, char *isa, size_t isa_size)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        *k = (peak_kernel){fma_loop_avx512, 16.0 * 16 * 2};
        snprintf(isa, isa_size, "avx512");
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *k = (peak_kernel){fma_loop_avx2, 12.0 * 8 * 2};
        snprintf(isa, isa_size, "avx2");
    } else {
        fprintf(stderr, "bench_rnn: no AVX2/FMA: FMA peak not measured\n");
        return false;
    }
    return true;
}

static int run_peak(const bench_options *o, const void *arg)
{
    (void)arg;
    peak_kernel fp32;
    if (!choose_fp32_kernel(&fp32, peak->isa, sizeof peak->isa))
        return 1;
    char what[96];
    peak->fp32_1 = measure_peak(fp32, 1);
    print_peak(o, "peak_fp32_1t", "fp32 FMA peak, 1 thread", 1, peak->fp32_1, peak->isa);
    peak->fp32_n = measure_peak(fp32, o->threads);
    snprintf(what, sizeof what, "fp32 FMA peak, %d thread%s", o->threads,
             o->threads == 1 ? "" : "s");
    print_peak(o, "peak_fp32", what, o->threads, peak->fp32_n, peak->isa);
    if (__builtin_cpu_supports("avx512bf16")) {
        peak_kernel bf16 = {bf16_loop_avx512, 16.0 * 64};
        peak->bf16_1 = measure_peak(bf16, 1);
        print_peak(o, "peak_bf16_1t", "bf16 dot-product peak, 1 thread", 1, peak->bf16_1,
                   "avx512bf16");
        peak->bf16_n = measure_peak(bf16, o->threads);
        snprintf(what, sizeof what, "bf16 dot-product peak, %d thread%s", o->threads,
                 o->threads == 1 ? "" : "s");
        print_peak(o, "peak_bf16", what, o->threads, peak->bf16_n, "avx512bf16");
    }
    return 0;
}

/* The fp32 peak on N threads once more after the cases: when it is well
 * below the first, other work took the cores during the run (bench/run.sh
 * warns). It is not used for the fractions. */
static int run_peak_again(const bench_options *o, const void *arg)
{
    (void)arg;
    peak_kernel fp32;
    char isa[16], what[96];
    if (!choose_fp32_kernel(&fp32, isa, sizeof isa))
        return 1;
    snprintf(what, sizeof what, "fp32 FMA peak, %d thread%s, after the cases", o->threads,
             o->threads == 1 ? "" : "s");
    print_peak(o, "peak_fp32_end", what, o->threads, measure_peak(fp32, o->threads), isa);
    return 0;
}

/* ---- one recurrent layer: I = H = 1024, T = 100 ------------------------- */
typedef struct stack_case {
    recur_cell cell;
    int I, H, B, T;
    bool train;
    bool bf16; /* recur_set_matmul_precision(RECUR_PRECISION_BF16) */
} stack_case;

typedef struct stack_ctx {
    recur_rnn *rnn;
    recur_rnn_input in;
    recur_rnn_output out;
    recur_rnn_grad_in gin;
    recur_rnn_grad_out gout;
    bool train;
} stack_ctx;

static void stack_call(void *p)
{
    stack_ctx *s = p;
    if (recur_rnn_forward(s->rnn, s->train ? RECUR_MODE_TRAIN : RECUR_MODE_INFER, &s->in, &s->out,
                          NULL))
        die_recur("forward");
    if (s->train && recur_rnn_backward(s->rnn, &s->gin, &s->gout))
        die_recur("backward");
}

static const char *short_cell(recur_cell cell)
{
    return cell == RECUR_CELL_LSTM ? "lstm" : cell == RECUR_CELL_GRU ? "gru" : "rnn";
}

static void stack_id(const stack_case *c, char *id, size_t n)
{
    snprintf(id, n, "%s_%s_b%d%s", short_cell(c->cell), c->train ? "train" : "fwd", c->B,
             c->bf16 ? "_bf16" : "");
}

static int run_stack(const bench_options *o, const void *arg)
{
    const stack_case *c = arg;
    recur_set_threads(o->threads);
    if (c->bf16 && recur_set_matmul_precision(RECUR_PRECISION_BF16))
        die_recur("bf16 products");
    recur_rnn_config cfg = recur_rnn_config_default();
    cfg.cell = c->cell;
    cfg.input_size = c->I;
    cfg.hidden_size = c->H;
    stack_ctx s = {.train = c->train};
    if (recur_rnn_create(&cfg, NULL, NULL, &s.rnn))
        die_recur("create");
    recur_rng rng;
    recur_rng_seed(&rng, 1);
    recur_rnn_init(s.rnn, &rng);
    if (recur_rnn_reserve(s.rnn, c->T, c->B))
        die_recur("reserve");
    size_t nx = (size_t)c->T * c->B * c->I, ny = (size_t)c->T * c->B * c->H;
    float *x = xcalloc(nx, sizeof(float)), *y = xcalloc(ny, sizeof(float));
    float *dy = xcalloc(ny, sizeof(float)), *dx = xcalloc(nx, sizeof(float));
    for (size_t i = 0; i < nx; i++)
        x[i] = recur_rng_uniform(&rng) - 0.5f;
    for (size_t i = 0; i < ny; i++)
        dy[i] = (recur_rng_uniform(&rng) - 0.5f) * 1e-2f;
    s.in = (recur_rnn_input){c->T, c->B, x, 0, NULL, NULL, NULL};
    s.out = (recur_rnn_output){y, NULL, NULL};
    s.gin = (recur_rnn_grad_in){dy, NULL, NULL};
    s.gout = (recur_rnn_grad_out){dx, NULL, NULL};

    bench_result r = {
        .threads = o->threads, .tokens = (double)c->T * c->B,
        .peak_gflops = c->bf16 ? peak->bf16_n : peak->fp32_n};
    stack_id(c, r.id, sizeof r.id);
    snprintf(r.what, sizeof r.what, "%s %s%s I=%d H=%d B=%d T=%d", short_cell(c->cell),
             c->train ? "train" : "forward", c->bf16 ? " bf16" : "", c->I, c->H, c->B, c->T);
    r.flops = 2.0 * c->T * c->B * recur_cell_gates(c->cell) * c->H * (double)(c->I + c->H) *
              (c->train ? 3 : 1);
    r.seconds = bench_time(stack_call, &s, o->seconds, &r.reps);
    bench_print(o, "recur", &r);
    free(x), free(y), free(dy), free(dx);
    recur_rnn_free(s.rnn);
    return 0;
}

/* ---- char-rnn ------------------------------------------------------------ */
enum { CHAR_V = 65, CHAR_T = 100, CHAR_B = 32, CHAR_E = 512, CHAR_H = 512, CHAR_L = 2 };

typedef struct charrnn_ctx {
    recur_lm *lm;
    recur_optim *opt;
    int32_t *tokens; /* [T+1, B] */
    float *h, *c;    /* [L, B, H] carried between steps */
    recur_rng rng;
} charrnn_ctx;

static void charrnn_train_call(void *p)
{
    charrnn_ctx *s = p;
    double loss, norm;
    recur_lm_zero_grad(s->lm);
    if (recur_lm_train_step(s->lm, s->tokens, CHAR_T, CHAR_B, s->h, s->c, &s->rng, &loss))
        die_recur("lm train step");
    if (recur_clip_grad_norm(recur_lm_grads(s->lm), recur_lm_size(s->lm), 5.0, &norm))
        die_recur("clip");
    if (recur_optim_step(s->opt, recur_lm_params(s->lm), recur_lm_grads(s->lm), 2e-3f))
        die_recur("optimizer step");
}

static void charrnn_fwd_call(void *p)
{
    charrnn_ctx *s = p;
    double loss;
    if (recur_lm_evaluate(s->lm, s->tokens, CHAR_T, CHAR_B, s->h, s->c, &loss))
        die_recur("lm evaluate");
}

static int run_charrnn(const bench_options *o, const void *arg)
{
    const bool train = *(const bool *)arg;
    recur_set_threads(o->threads);
    recur_lm_config cfg = recur_lm_config_default();
    cfg.vocab_size = CHAR_V;
    cfg.embedding_size = CHAR_E;
    cfg.hidden_size = CHAR_H;
    cfg.num_layers = CHAR_L;
    charrnn_ctx s = {0};
    if (recur_lm_create(&cfg, &s.lm))
        die_recur("lm create");
    recur_rng_seed(&s.rng, 1);
    recur_lm_init(s.lm, &s.rng);
    s.tokens = xcalloc((size_t)(CHAR_T + 1) * CHAR_B, sizeof(int32_t));
    for (int i = 0; i < (CHAR_T + 1) * CHAR_B; i++)
        s.tokens[i] = (int32_t)recur_rng_below(&s.rng, CHAR_V);
    s.h = xcalloc(recur_lm_state_size(s.lm, CHAR_B), sizeof(float));
    s.c = xcalloc(recur_lm_state_size(s.lm, CHAR_B), sizeof(float));
    if (train) {
        recur_optim_config oc = recur_optim_config_default(RECUR_OPTIM_ADAM);
        if (recur_optim_create(&oc, recur_lm_size(s.lm), &s.opt))
            die_recur("optimizer create");
    }
    bench_result r = {
        .threads = o->threads, .tokens = (double)CHAR_T * CHAR_B, .peak_gflops = peak->fp32_n};
    snprintf(r.id, sizeof r.id, "charrnn_%s", train ? "train" : "fwd");
    snprintf(r.what, sizeof r.what, "char-rnn %s 2x512 LSTM E=512 B=32 T=100 V=65",
             train ? "train" : "forward");
    /* per token: layer 0 2*4H*(E+H), layer 1 2*4H*2H, head 2*V*H */
    double per_token = 2.0 * 4 * CHAR_H * (CHAR_E + CHAR_H) + 2.0 * 4 * CHAR_H * (2 * CHAR_H) +
                       2.0 * CHAR_V * CHAR_H;
    r.flops = per_token * r.tokens * (train ? 3 : 1);
    r.seconds = bench_time(train ? charrnn_train_call : charrnn_fwd_call, &s, o->seconds, &r.reps);
    bench_print(o, "recur", &r);
    recur_optim_free(s.opt);
    free(s.tokens), free(s.h), free(s.c);
    recur_lm_free(s.lm);
    return 0;
}

/* ---- streaming ----------------------------------------------------------- */
enum { STREAM_I = 64, STREAM_H = 256 };

typedef struct stream_ctx {
    recur_rnn_stream *stream;
    const float *x;
    float *y;
} stream_ctx;

static void stream_call(void *p)
{
    stream_ctx *s = p;
    if (recur_rnn_stream_step(s->stream, s->x, s->y))
        die_recur("stream step");
}

static int run_stream(const bench_options *o, const void *arg)
{
    const recur_precision precision = arg ? *(const recur_precision *)arg : RECUR_PRECISION_F32;
    const bool bf16 = precision == RECUR_PRECISION_BF16;
    recur_set_threads(o->threads);
    recur_rnn_config cfg = recur_rnn_config_default();
    cfg.cell = RECUR_CELL_LSTM;
    cfg.input_size = STREAM_I;
    cfg.hidden_size = STREAM_H;
    recur_rnn *rnn;
    if (recur_rnn_create(&cfg, NULL, NULL, &rnn))
        die_recur("create");
    recur_rng rng;
    recur_rng_seed(&rng, 1);
    recur_rnn_init(rnn, &rng);
    stream_ctx s;
    if (recur_rnn_stream_create_with(rnn, 1, precision, &s.stream))
        die_recur("stream create");
    float x[STREAM_I], y[STREAM_H];
    for (int i = 0; i < STREAM_I; i++)
        x[i] = recur_rng_uniform(&rng) - 0.5f;
    s.x = x;
    s.y = y;
    bench_result r = {
        .threads = o->threads, .tokens = 1, .streaming = true,
        .peak_gflops = bf16 ? peak->bf16_n : peak->fp32_n};
    snprintf(r.id, sizeof r.id, bf16 ? "stream_lstm_bf16" : "stream_lstm");
    snprintf(r.what, sizeof r.what, "streaming lstm step%s I=%d H=%d B=1", bf16 ? " bf16" : "",
             STREAM_I, STREAM_H);
    r.flops = 2.0 * 4 * STREAM_H * (STREAM_I + STREAM_H);
    r.seconds = bench_time(stream_call, &s, o->seconds, &r.reps);
    bench_print(o, "recur", &r);
    recur_rnn_stream_free(s.stream);
    recur_rnn_free(rnn);
    return 0;
}

int main(int argc, char **argv)
{
    bench_options o;
    if (bench_parse(argc, argv, "recur's side of the standard RNN benchmark cases", &o))
        return 2;
    peak = mmap(NULL, sizeof *peak, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (peak == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    memset(peak, 0, sizeof *peak);
    if (o.json)
        printf("{\"impl\":\"recur\",\"case\":\"info\",\"version\":\"%s\",\"backend\":\"%s\","
               "\"threads\":%d}\n",
               recur_version(), recur_blas_backend(), o.threads);
    else
        printf("recur %s, backend %s, %d threads, %.2g s a case\n", recur_version(),
               recur_blas_backend(), o.threads, o.seconds);
    int failures = 0;
    /* The peak always runs: the other cases print their fraction of it. */
    failures += bench_in_child(&o, run_peak, NULL) != 0;

    static const bool train = true, forward = false;
    if (bench_selected(&o, "charrnn_train"))
        failures += bench_in_child(&o, run_charrnn, &train) != 0;
    if (bench_selected(&o, "charrnn_fwd"))
        failures += bench_in_child(&o, run_charrnn, &forward) != 0;

    static const recur_cell cells[] = {RECUR_CELL_LSTM, RECUR_CELL_GRU, RECUR_CELL_RNN_TANH};
    static const int batches[] = {64, 8, 1};
    for (int b = 0; b < 3; b++)
        for (int k = 0; k < 3; k++)
            for (int mode = 1; mode >= 0; mode--) {
                stack_case c = {cells[k], 1024, 1024, batches[b], 100, mode == 1, false};
                char id[48];
                stack_id(&c, id, sizeof id);
                if (bench_selected(&o, id))
                    failures += bench_in_child(&o, run_stack, &c) != 0;
            }
    for (int mode = 1; mode >= 0; mode--) {
        stack_case c = {RECUR_CELL_LSTM, 1024, 1024, 64, 100, mode == 1, true};
        char id[48];
        stack_id(&c, id, sizeof id);
        if (bench_selected(&o, id))
            failures += bench_in_child(&o, run_stack, &c) != 0;
    }
    static const recur_precision f32 = RECUR_PRECISION_F32, bf16 = RECUR_PRECISION_BF16;
    if (bench_selected(&o, "stream_lstm"))
        failures += bench_in_child(&o, run_stream, &f32) != 0;
    if (bench_selected(&o, "stream_lstm_bf16"))
        failures += bench_in_child(&o, run_stream, &bf16) != 0;
    failures += bench_in_child(&o, run_peak_again, NULL) != 0;
    if (failures)
        fprintf(stderr, "bench_rnn: %d case(s) failed\n", failures);
    return failures ? 1 : 0;
}
