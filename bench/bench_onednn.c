/* bench_onednn.c - oneDNN 2.6's own RNN primitive on the standard benchmark
 * cases, beside recur's (bench_rnn.c; same case ids, same output):
 *   {lstm,gru,rnn}_{train,fwd}_b{64,8,1}
 *                   one layer, I = H = 1024, T = 100, fp32; fwd is forward
 *                   inference, train a forward-training pass plus the
 *                   backward pass (with diff_src_layer, as recur's dx);
 *   lstm_fwd_b64_bf16
 *                   the same LSTM forward in bf16 (f32 bias and cell state)
 *                   when the primitive supports it on this CPU;
 *   stream_lstm, stream_lstm_bf16
 *                   LSTM I = 64, H = 256, B = 1, T = 1 with the state carried
 *                   from one step to the next (dst_iter of one call is
 *                   src_iter of the next): median time of a step.
 * The GRU is oneDNN's "linear before reset" GRU (dnnl_lbr_gru), which is
 * PyTorch's (and recur's); the vanilla RNN uses tanh.
 * Weights are kept in the format the forward primitive picks (format "any":
 * blocked or packed); the backward primitive wants another layout (ldgoi),
 * so a training step includes reordering the weights into it, as any
 * training loop must after each update.
 * FLOPs count the matrix products: 2*T*B*G*H*(I+H), a training step 3x.
 * Threads: oneDNN runs on the OpenMP pool, sized with omp_set_num_threads.
 * Usage: bench_onednn [--threads N] [--seconds S] [--json] [--only TEXT]. */
#define _DEFAULT_SOURCE /* fork, clock_gettime and getrusage under -std=c11 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dnnl.h>
#include <dnnl_debug.h>
#include <omp.h>

#include "bench_common.h"

#define DNN(call)                                                                                  \
    do {                                                                                           \
        dnnl_status_t status_ = (call);                                                            \
        if (status_ != dnnl_success) {                                                             \
            fprintf(stderr, "bench_onednn: line %d: %s: %s\n", __LINE__, #call,                    \
                    dnnl_status2str(status_));                                                     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

typedef enum cell_kind { CELL_LSTM, CELL_GRU, CELL_RNN } cell_kind;

static const char *const cell_names[] = {"lstm", "gru", "rnn"};
static const int cell_gates[] = {4, 3, 1};

typedef struct rnn_case {
    cell_kind cell;
    int I, H, B, T;
    bool train;
    bool bf16;
    bool stream; /* T = 1 steps with carried state */
} rnn_case;

static void case_id(const rnn_case *c, char *id, size_t n)
{
    if (c->stream)
        snprintf(id, n, "stream_%s%s", cell_names[c->cell], c->bf16 ? "_bf16" : "");
    else
        snprintf(id, n, "%s_%s_b%d%s", cell_names[c->cell], c->train ? "train" : "fwd", c->B,
                 c->bf16 ? "_bf16" : "");
}

/* ---- memory ---------------------------------------------------------------- */
static dnnl_engine_t engine;
static dnnl_stream_t stream;

#define MAX_MEMS 64
static dnnl_memory_t mems[MAX_MEMS]; /* everything created, destroyed at the end */
static int n_mems;

static dnnl_memory_t new_memory(const dnnl_memory_desc_t *md)
{
    dnnl_memory_t m;
    DNN(dnnl_memory_create(&m, md, engine, DNNL_MEMORY_ALLOCATE));
    if (n_mems == MAX_MEMS) {
        fprintf(stderr, "bench_onednn: too many memories\n");
        exit(1);
    }
    mems[n_mems++] = m;
    return m;
}

static dnnl_memory_desc_t make_md(int ndims, const int64_t *dims, dnnl_data_type_t dt,
                                  dnnl_format_tag_t tag)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {0};
    memcpy(d, dims, (size_t)ndims * sizeof(int64_t));
    DNN(dnnl_memory_desc_init_by_tag(&md, ndims, d, dt, tag));
    return md;
}

static dnnl_format_tag_t plain_tag(int ndims)
{
    static const dnnl_format_tag_t tags[] = {dnnl_a,   dnnl_a,    dnnl_ab,
                                             dnnl_abc, dnnl_abcd, dnnl_abcde};
    return tags[ndims];
}

static void run_reorder(dnnl_memory_t from, dnnl_memory_t to)
{
    const dnnl_memory_desc_t *from_md, *to_md;
    DNN(dnnl_memory_get_memory_desc(from, &from_md));
    DNN(dnnl_memory_get_memory_desc(to, &to_md));
    dnnl_primitive_desc_t pd;
    DNN(dnnl_reorder_primitive_desc_create(&pd, from_md, engine, to_md, engine, NULL));
    dnnl_primitive_t p;
    DNN(dnnl_primitive_create(&p, pd));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    DNN(dnnl_primitive_execute(p, stream, 2, args));
    DNN(dnnl_stream_wait(stream));
    dnnl_primitive_destroy(p);
    dnnl_primitive_desc_destroy(pd);
}

static uint64_t lcg = 88172645463325252ull;

static void fill_random(float *p, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) {
        lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = scale * ((float)(lcg >> 40) / (float)(1 << 24) * 2.0f - 1.0f);
    }
}

/* A memory of md holding values uniform in [-scale, scale]; workspaces are
 * zeroed. Plain f32 memories are filled in place; others (blocked or packed
 * weights, bf16) are reordered in from a temporary plain f32 copy, which is
 * freed at once so that it adds little to the case's peak memory. */
static dnnl_memory_t random_memory(const dnnl_memory_desc_t *md, float scale)
{
    dnnl_memory_t m = new_memory(md);
    void *p;
    DNN(dnnl_memory_get_data_handle(m, &p));
    if (md->data_type == dnnl_u8 || md->ndims == 1) {
        memset(p, 0, dnnl_memory_desc_get_size(md));
        return m;
    }
    dnnl_memory_desc_t plain = make_md(md->ndims, md->dims, dnnl_f32, plain_tag(md->ndims));
    size_t n = dnnl_memory_desc_get_size(&plain) / sizeof(float);
    if (dnnl_memory_desc_equal(md, &plain)) {
        fill_random(p, n, scale);
        return m;
    }
    dnnl_memory_t tmp;
    DNN(dnnl_memory_create(&tmp, &plain, engine, DNNL_MEMORY_ALLOCATE));
    DNN(dnnl_memory_get_data_handle(tmp, &p));
    fill_random(p, n, scale);
    run_reorder(tmp, m);
    dnnl_memory_destroy(tmp);
    return m;
}

/* ---- primitives ------------------------------------------------------------ */
typedef struct bound {
    dnnl_primitive_t prim;
    dnnl_exec_arg_t args[24];
    int nargs;
} bound;

static dnnl_memory_t bound_get(const bound *b, int arg)
{
    for (int i = 0; i < b->nargs; i++)
        if (b->args[i].arg == arg)
            return b->args[i].memory;
    return NULL;
}

static void bound_set(bound *b, int arg, dnnl_memory_t m)
{
    for (int i = 0; i < b->nargs; i++)
        if (b->args[i].arg == arg) {
            b->args[i].memory = m;
            return;
        }
    b->args[b->nargs++] = (dnnl_exec_arg_t){arg, m};
}

static const dnnl_memory_desc_t *arg_md(const_dnnl_primitive_desc_t pd, int arg)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    return md && md->ndims > 0 ? md : NULL;
}

typedef struct descs {
    dnnl_memory_desc_t src_layer, src_iter, src_iter_c, weights_layer, weights_iter, bias,
        dst_layer, dst_iter, dst_iter_c;
    dnnl_memory_desc_t diff_src_layer, diff_weights_layer, diff_weights_iter, diff_bias,
        diff_dst_layer;
} descs;

static descs make_descs(const rnn_case *c)
{
    const int64_t T = c->T, B = c->B, I = c->I, H = c->H, G = cell_gates[c->cell];
    const int64_t Gb = c->cell == CELL_GRU ? G + 1 : G; /* lbr GRU: a 4th bias b_hn */
    const dnnl_data_type_t dt = c->bf16 ? dnnl_bf16 : dnnl_f32;
    descs d;
    d.src_layer = make_md(3, (int64_t[]){T, B, I}, dt, dnnl_tnc);
    d.src_iter = make_md(4, (int64_t[]){1, 1, B, H}, dt, dnnl_ldnc);
    d.src_iter_c = make_md(4, (int64_t[]){1, 1, B, H}, dnnl_f32, dnnl_ldnc);
    d.weights_layer = make_md(5, (int64_t[]){1, 1, I, G, H}, dt, dnnl_format_tag_any);
    d.weights_iter = make_md(5, (int64_t[]){1, 1, H, G, H}, dt, dnnl_format_tag_any);
    d.bias = make_md(4, (int64_t[]){1, 1, Gb, H}, dnnl_f32, dnnl_ldgo);
    d.dst_layer = make_md(3, (int64_t[]){T, B, H}, dt, dnnl_tnc);
    d.dst_iter = d.src_iter;
    d.dst_iter_c = d.src_iter_c;
    d.diff_src_layer = make_md(3, (int64_t[]){T, B, I}, dnnl_f32, dnnl_tnc);
    d.diff_weights_layer = make_md(5, (int64_t[]){1, 1, I, G, H}, dnnl_f32, dnnl_format_tag_any);
    d.diff_weights_iter = make_md(5, (int64_t[]){1, 1, H, G, H}, dnnl_f32, dnnl_format_tag_any);
    d.diff_bias = make_md(4, (int64_t[]){1, 1, Gb, H}, dnnl_f32, dnnl_ldgo);
    d.diff_dst_layer = make_md(3, (int64_t[]){T, B, H}, dnnl_f32, dnnl_tnc);
    return d;
}

/* dnnl_success or the status of the descriptor/primitive-descriptor
 * creation (unsupported configurations are reported, not fatal). */
static dnnl_status_t forward_pd(const rnn_case *c, descs *d, dnnl_primitive_desc_t *pd)
{
    dnnl_rnn_desc_t rd;
    const dnnl_prop_kind_t prop = c->train ? dnnl_forward_training : dnnl_forward_inference;
    const dnnl_rnn_direction_t dir = dnnl_unidirectional_left2right;
    /* NULL state: zero initial state and no final state, as recur's bench
     * (h0 = NULL, hn not asked for); streaming carries it. */
    const dnnl_memory_desc_t *si = c->stream ? &d->src_iter : NULL;
    const dnnl_memory_desc_t *sic = c->stream ? &d->src_iter_c : NULL;
    const dnnl_memory_desc_t *di = c->stream ? &d->dst_iter : NULL;
    const dnnl_memory_desc_t *dic = c->stream ? &d->dst_iter_c : NULL;
    dnnl_status_t st;
    switch (c->cell) {
    case CELL_LSTM:
        st = dnnl_lstm_forward_desc_init(&rd, prop, dir, &d->src_layer, si, sic, &d->weights_layer,
                                         &d->weights_iter, &d->bias, &d->dst_layer, di, dic, 0);
        break;
    case CELL_GRU:
        st = dnnl_lbr_gru_forward_desc_init(&rd, prop, dir, &d->src_layer, si, &d->weights_layer,
                                            &d->weights_iter, &d->bias, &d->dst_layer, di, 0);
        break;
    default:
        st = dnnl_vanilla_rnn_forward_desc_init(&rd, prop, dnnl_eltwise_tanh, dir, &d->src_layer,
                                                si, &d->weights_layer, &d->weights_iter, &d->bias,
                                                &d->dst_layer, di, 0, 0.0f, 0.0f);
        break;
    }
    if (st != dnnl_success)
        return st;
    return dnnl_primitive_desc_create(pd, &rd, NULL, engine, NULL);
}

static dnnl_status_t backward_pd(const rnn_case *c, descs *d, const_dnnl_primitive_desc_t hint,
                                 dnnl_primitive_desc_t *pd)
{
    dnnl_rnn_desc_t rd;
    const dnnl_rnn_direction_t dir = dnnl_unidirectional_left2right;
    dnnl_memory_desc_t wl = d->weights_layer, wi = d->weights_iter;
    dnnl_status_t st;
    switch (c->cell) {
    case CELL_LSTM:
        st = dnnl_lstm_backward_desc_init(
            &rd, dnnl_backward, dir, &d->src_layer, NULL, NULL, &wl, &wi, &d->bias, &d->dst_layer,
            NULL, NULL, &d->diff_src_layer, NULL, NULL, &d->diff_weights_layer,
            &d->diff_weights_iter, &d->diff_bias, &d->diff_dst_layer, NULL, NULL, 0);
        break;
    case CELL_GRU:
        st = dnnl_lbr_gru_backward_desc_init(&rd, dnnl_backward, dir, &d->src_layer, NULL, &wl, &wi,
                                             &d->bias, &d->dst_layer, NULL, &d->diff_src_layer,
                                             NULL, &d->diff_weights_layer, &d->diff_weights_iter,
                                             &d->diff_bias, &d->diff_dst_layer, NULL, 0);
        break;
    default:
        st = dnnl_vanilla_rnn_backward_desc_init(
            &rd, dnnl_backward, dnnl_eltwise_tanh, dir, &d->src_layer, NULL, &wl, &wi, &d->bias,
            &d->dst_layer, NULL, &d->diff_src_layer, NULL, &d->diff_weights_layer,
            &d->diff_weights_iter, &d->diff_bias, &d->diff_dst_layer, NULL, 0, 0.0f, 0.0f);
        break;
    }
    if (st != dnnl_success)
        return st;
    return dnnl_primitive_desc_create(pd, &rd, NULL, engine, hint);
}

/* ---- a timed case ---------------------------------------------------------- */
typedef struct reorder {
    dnnl_primitive_t prim;
    dnnl_memory_t from, to;
} reorder;

typedef struct case_ctx {
    bound fwd, fwd_swapped; /* streaming: the second has src/dst state swapped */
    bound bwd;
    bool train, stream;
    long steps;
    reorder weight_reorders[4]; /* run each training step */
    int n_reorders;
} case_ctx;

static void add_weight_reorder(case_ctx *s, dnnl_memory_t from, dnnl_memory_t to)
{
    const dnnl_memory_desc_t *from_md, *to_md;
    DNN(dnnl_memory_get_memory_desc(from, &from_md));
    DNN(dnnl_memory_get_memory_desc(to, &to_md));
    dnnl_primitive_desc_t pd;
    DNN(dnnl_reorder_primitive_desc_create(&pd, from_md, engine, to_md, engine, NULL));
    reorder *r = &s->weight_reorders[s->n_reorders++];
    DNN(dnnl_primitive_create(&r->prim, pd));
    dnnl_primitive_desc_destroy(pd);
    r->from = from;
    r->to = to;
}

static void case_call(void *p)
{
    case_ctx *s = p;
    for (int i = 0; i < s->n_reorders; i++) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, s->weight_reorders[i].from},
                                   {DNNL_ARG_TO, s->weight_reorders[i].to}};
        DNN(dnnl_primitive_execute(s->weight_reorders[i].prim, stream, 2, args));
    }
    const bound *f = s->stream && (s->steps & 1) ? &s->fwd_swapped : &s->fwd;
    DNN(dnnl_primitive_execute(f->prim, stream, f->nargs, f->args));
    if (s->train)
        DNN(dnnl_primitive_execute(s->bwd.prim, stream, s->bwd.nargs, s->bwd.args));
    DNN(dnnl_stream_wait(stream));
    s->steps++;
}

/* Binds every argument pd asks for. The weights are user[0] (layer) and
 * user[1] (iter), created in the format of the first primitive bound (the
 * forward pass); a primitive that wants another format (the backward pass)
 * gets a copy reordered from them, and in training that reorder runs every
 * step. `shared`, when given, provides the memories of the arguments it
 * already has (the backward pass reads the forward's). */
static void bind_all(bound *b, const_dnnl_primitive_desc_t pd, const rnn_case *c,
                     const bound *shared, dnnl_memory_t user[2], case_ctx *s)
{
    static const int args[] = {
        DNNL_ARG_SRC_LAYER,         DNNL_ARG_SRC_ITER,       DNNL_ARG_SRC_ITER_C,
        DNNL_ARG_WEIGHTS_LAYER,     DNNL_ARG_WEIGHTS_ITER,   DNNL_ARG_BIAS,
        DNNL_ARG_DST_LAYER,         DNNL_ARG_DST_ITER,       DNNL_ARG_DST_ITER_C,
        DNNL_ARG_WORKSPACE,         DNNL_ARG_DIFF_SRC_LAYER, DNNL_ARG_DIFF_WEIGHTS_LAYER,
        DNNL_ARG_DIFF_WEIGHTS_ITER, DNNL_ARG_DIFF_BIAS,      DNNL_ARG_DIFF_DST_LAYER,
    };
    const float wscale = 1.0f / sqrtf((float)c->H);
    for (size_t k = 0; k < sizeof args / sizeof args[0]; k++) {
        const int arg = args[k];
        const dnnl_memory_desc_t *md = arg_md(pd, arg);
        if (!md)
            continue;
        dnnl_memory_t have = shared ? bound_get(shared, arg) : NULL;
        const dnnl_memory_desc_t *have_md = NULL;
        if (have)
            DNN(dnnl_memory_get_memory_desc(have, &have_md));
        if (have && dnnl_memory_desc_equal(md, have_md)) {
            bound_set(b, arg, have);
        } else if (arg == DNNL_ARG_WEIGHTS_LAYER || arg == DNNL_ARG_WEIGHTS_ITER) {
            int w = arg == DNNL_ARG_WEIGHTS_ITER;
            if (!user[w]) {
                /* the weights live in the forward pass's format */
                user[w] = random_memory(md, wscale);
                bound_set(b, arg, user[w]);
                continue;
            }
            dnnl_memory_t m = new_memory(md);
            run_reorder(user[w], m);
            if (c->train)
                add_weight_reorder(s, user[w], m);
            bound_set(b, arg, m);
        } else {
            float scale = arg == DNNL_ARG_SRC_LAYER        ? 0.5f
                          : arg == DNNL_ARG_DIFF_DST_LAYER ? 0.01f
                          : arg == DNNL_ARG_BIAS           ? wscale
                                                           : 0.1f;
            bound_set(b, arg, random_memory(md, scale));
        }
    }
    DNN(dnnl_primitive_create(&b->prim, pd));
}

static int run_case(const bench_options *o, const void *arg)
{
    const rnn_case *c = arg;
    omp_set_num_threads(o->threads);
    DNN(dnnl_engine_create(&engine, dnnl_cpu, 0));
    DNN(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    bench_result r = {.threads = o->threads, .tokens = (double)c->T * c->B, .streaming = c->stream};
    case_id(c, r.id, sizeof r.id);
    if (c->stream)
        snprintf(r.what, sizeof r.what, "streaming %s step%s I=%d H=%d B=%d", cell_names[c->cell],
                 c->bf16 ? " bf16" : "", c->I, c->H, c->B);
    else
        snprintf(r.what, sizeof r.what, "%s %s%s I=%d H=%d B=%d T=%d", cell_names[c->cell],
                 c->train ? "train" : "forward", c->bf16 ? " bf16" : "", c->I, c->H, c->B, c->T);
    r.flops =
        2.0 * c->T * c->B * cell_gates[c->cell] * c->H * (double)(c->I + c->H) * (c->train ? 3 : 1);

    descs d = make_descs(c);
    dnnl_primitive_desc_t fpd = NULL, bpd = NULL;
    dnnl_status_t st = forward_pd(c, &d, &fpd);
    if (st == dnnl_success && c->train)
        st = backward_pd(c, &d, fpd, &bpd);
    if (st != dnnl_success) {
        /* e.g. bf16 on a CPU without it: say so and report nothing */
        fprintf(stderr, "bench_onednn: %s: not supported by this oneDNN on this CPU (%s)\n", r.id,
                dnnl_status2str(st));
        if (o->json)
            printf("{\"impl\":\"onednn\",\"case\":\"%s\",\"what\":\"%s\",\"unsupported\":true}\n",
                   r.id, r.what);
        return 0;
    }
    case_ctx s = {.train = c->train, .stream = c->stream};
    dnnl_memory_t user[2] = {NULL, NULL};
    bind_all(&s.fwd, fpd, c, NULL, user, &s);
    if (c->train)
        bind_all(&s.bwd, bpd, c, &s.fwd, user, &s);
    if (c->stream) {
        /* step k reads the state that step k-1 wrote: the odd steps run
         * with source and destination state memories swapped */
        s.fwd_swapped = s.fwd;
        static const int states[][2] = {{DNNL_ARG_SRC_ITER, DNNL_ARG_DST_ITER},
                                        {DNNL_ARG_SRC_ITER_C, DNNL_ARG_DST_ITER_C}};
        for (int k = 0; k < 2; k++) {
            dnnl_memory_t src = bound_get(&s.fwd, states[k][0]);
            dnnl_memory_t dst = bound_get(&s.fwd, states[k][1]);
            if (src && dst) {
                bound_set(&s.fwd_swapped, states[k][0], dst);
                bound_set(&s.fwd_swapped, states[k][1], src);
            }
        }
    }
    r.seconds = bench_time(case_call, &s, o->seconds, &r.reps);
    bench_print(o, "onednn", &r);

    for (int i = 0; i < s.n_reorders; i++)
        dnnl_primitive_destroy(s.weight_reorders[i].prim);
    dnnl_primitive_destroy(s.fwd.prim);
    if (c->train)
        dnnl_primitive_destroy(s.bwd.prim);
    dnnl_primitive_desc_destroy(fpd);
    if (bpd)
        dnnl_primitive_desc_destroy(bpd);
    for (int i = 0; i < n_mems; i++)
        dnnl_memory_destroy(mems[i]);
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(engine);
    return 0;
}

int main(int argc, char **argv)
{
    bench_options o;
    if (bench_parse(argc, argv, "oneDNN's RNN primitive on the standard RNN benchmark cases", &o))
        return 2;
    const dnnl_version_t *v = dnnl_version();
    if (o.json)
        printf("{\"impl\":\"onednn\",\"case\":\"info\",\"version\":\"%d.%d.%d\",\"threads\":%d}\n",
               v->major, v->minor, v->patch, o.threads);
    else
        printf("oneDNN %d.%d.%d RNN primitive, %d threads, %.2g s a case\n", v->major, v->minor,
               v->patch, o.threads, o.seconds);
    int failures = 0;
    rnn_case cases[32];
    int n = 0;
    static const int batches[] = {64, 8, 1};
    for (int b = 0; b < 3; b++)
        for (int k = 0; k < 3; k++)
            for (int mode = 1; mode >= 0; mode--)
                cases[n++] =
                    (rnn_case){(cell_kind)k, 1024, 1024, batches[b], 100, mode == 1, false, false};
    cases[n++] = (rnn_case){CELL_LSTM, 64, 256, 1, 1, false, false, true};
    cases[n++] = (rnn_case){CELL_LSTM, 1024, 1024, 64, 100, false, true, false};
    cases[n++] = (rnn_case){CELL_LSTM, 64, 256, 1, 1, false, true, true};
    for (int i = 0; i < n; i++) {
        char id[48];
        case_id(&cases[i], id, sizeof id);
        if (bench_selected(&o, id))
            failures += bench_in_child(&o, run_case, &cases[i]) != 0;
    }
    if (failures)
        fprintf(stderr, "bench_onednn: %d case(s) failed\n", failures);
    return failures ? 1 : 0;
}
