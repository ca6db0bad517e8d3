/* stream.c - streaming inference: one time step through every layer of a
 * unidirectional stack with carried state, allocation-free per step.
 *
 * At batch 1 the products are matrix-vector products, bound by reading the
 * weights, so the stream packs each weight matrix [N, K] once into blocks of
 * 16 output rows, k-major inside a block:
 *   f32:  packed[nb][k][16]        = W[16*nb + r][k]
 *   bf16: packed[nb][k/2][16][2]   = bf16(W[16*nb + r][k + {0,1}])
 * so that y[16 nb .. 16 nb + 16) is a sum over k of one contiguous vector
 * times a broadcast x[k] (one FMA, or one vdpbf16ps per pair of k). Rows past
 * N and the odd k of bf16 are zero padding. The cells are the same kernels as
 * the full forward (cell_*.c), so an f32 stream equals the full forward up
 * to summation order. Not here: bidirectional stacks (they need the future). */
#include <string.h>

#include "internal.h"
#include "recur/rnn.h"
#include "rnn_internal.h"
#include "core/team.h"
#include "tensor/vmath.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define HAVE_BF16_KERNEL 1
#endif

typedef float v16f __attribute__((vector_size(64), aligned(4)));

/* One packed matrix. */
typedef struct packed {
    int N, K, NB;   /* rows, columns, blocks of 16 rows */
    int K2;         /* bf16: pairs of columns */
    float *f32;     /* [NB][K][16], 64-byte aligned (whole cache lines per load) */
    uint16_t *bf16; /* [NB][K2][16][2], 64-byte aligned */
    void *raw;      /* the allocation they point into */
} packed;

/* n zeroed bytes at a 64-byte boundary inside a new allocation *raw. */
static void *calloc_aligned(size_t n, void **raw)
{
    *raw = recur__calloc(1, n + 64);
    if (!*raw)
        return NULL;
    return (char *)*raw + (64 - (uintptr_t)*raw % 64) % 64;
}

struct recur_rnn_stream {
    const recur_rnn *rnn;
    int B, L, H, G;
    recur_precision precision;
    bool bf16_native;     /* the CPU has AVX512-BF16 */
    packed *w_ih, *w_hh;  /* [L] */
    float *h, *c;         /* [L, B, H] */
    float *hin;           /* [B, H] the state of the layer being stepped, as read */
    float *xg, *hg;       /* [B, NB*16] (G*H rounded up) */
    float *act;           /* [B, G*H] */
    float *aux;           /* [B, H] */
    uint32_t *pairs_x;    /* [B, K2] bf16 pairs of the layer input */
    uint32_t *pairs_h;    /* [B, H2] bf16 pairs of the state */
    int pair_stride;      /* K2 of the widest input */
    int threads;          /* P: threads splitting the hidden units */
    recur_team *team;     /* its P - 1 helper threads (NULL when P = 1) */
    void *work;           /* the one allocation the arrays above are carved from */
};

/* Carves n floats (or uint32) from *at, 64-byte aligned and rounded up to
 * whole cache lines, so that threads writing their own units of an array
 * (multiples of 16) never share a line. */
static void *carve(char **at, size_t n)
{
    void *p = *at;
    *at += (n * 4 + 63) / 64 * 64;
    return p;
}

static uint16_t to_bf16(float f)
{
    /* round to nearest even; NaN stays NaN */
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float from_bf16(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int pack(packed *p, const float *W, int N, int K, recur_precision precision)
{
    p->N = N;
    p->K = K;
    p->NB = (N + 15) / 16;
    p->K2 = (K + 1) / 2;
    if (precision == RECUR_PRECISION_F32) {
        p->f32 = calloc_aligned((size_t)p->NB * K * 16 * sizeof(float), &p->raw);
        if (!p->f32)
            return recur__error(RECUR_E_NOMEM, "out of memory packing stream weights");
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++)
                p->f32[((size_t)(n / 16) * K + k) * 16 + n % 16] = W[(size_t)n * K + k];
    } else {
        p->bf16 = calloc_aligned((size_t)p->NB * p->K2 * 32 * sizeof(uint16_t), &p->raw);
        if (!p->bf16)
            return recur__error(RECUR_E_NOMEM, "out of memory packing stream weights");
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++)
                p->bf16[(((size_t)(n / 16) * p->K2 + k / 2) * 16 + n % 16) * 2 + k % 2] =
                    to_bf16(W[(size_t)n * K + k]);
    }
    return RECUR_OK;
}

/* y[16 nb0 .. 16 nb1) = rows of W x, f32. Four blocks at a time keep four
 * independent accumulator chains in flight. */
RECUR_VECTOR_CLONES static void gemv_f32(const packed *p, const float *x, float *y, int nb0,
                                         int nb1)
{
    const int K = p->K;
    int nb = nb0;
    for (; nb + 4 <= nb1; nb += 4) {
        const float *w = p->f32 + (size_t)nb * K * 16;
        v16f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int k = 0; k < K; k++) {
            v16f xv = (v16f){0} + x[k];
            a0 += *(const v16f *)(w + (size_t)k * 16) * xv;
            a1 += *(const v16f *)(w + ((size_t)K + k) * 16) * xv;
            a2 += *(const v16f *)(w + (2 * (size_t)K + k) * 16) * xv;
            a3 += *(const v16f *)(w + (3 * (size_t)K + k) * 16) * xv;
        }
        memcpy(y + (size_t)nb * 16, &a0, 64);
        memcpy(y + (size_t)(nb + 1) * 16, &a1, 64);
        memcpy(y + (size_t)(nb + 2) * 16, &a2, 64);
        memcpy(y + (size_t)(nb + 3) * 16, &a3, 64);
    }
    for (; nb < nb1; nb++) {
        const float *w = p->f32 + (size_t)nb * K * 16;
        v16f a = {0};
        for (int k = 0; k < K; k++)
            a += *(const v16f *)(w + (size_t)k * 16) * ((v16f){0} + x[k]);
        memcpy(y + (size_t)nb * 16, &a, 64);
    }
}

/* bf16 pairs of x: pairs[i] = bf16(x[2i]) | bf16(x[2i+1]) << 16. */
static void make_pairs(const float *x, int K, uint32_t *pairs)
{
    for (int i = 0; i < K / 2; i++)
        pairs[i] = to_bf16(x[2 * i]) | (uint32_t)to_bf16(x[2 * i + 1]) << 16;
    if (K % 2)
        pairs[K / 2] = to_bf16(x[K - 1]);
}

/* The same products without AVX512-BF16: bf16 values widened to float. */
static void gemv_bf16_emulated(const packed *p, const uint32_t *pairs, float *y, int nb0,
                               int nb1)
{
    for (int nb = nb0; nb < nb1; nb++) {
        float acc[16] = {0};
        const uint16_t *w = p->bf16 + (size_t)nb * p->K2 * 32;
        for (int i = 0; i < p->K2; i++) {
            float x0 = from_bf16((uint16_t)(pairs[i] & 0xffff));
            float x1 = from_bf16((uint16_t)(pairs[i] >> 16));
            for (int r = 0; r < 16; r++)
                acc[r] += from_bf16(w[(i * 16 + r) * 2]) * x0 + from_bf16(w[(i * 16 + r) * 2 + 1]) * x1;
        }
        memcpy(y + (size_t)nb * 16, acc, sizeof acc);
    }
}

#ifdef HAVE_BF16_KERNEL
__attribute__((target("avx512f,avx512bf16"))) static void gemv_bf16(const packed *p,
                                                                     const uint32_t *pairs, float *y,
                                                                     int nb0, int nb1)
{
    int nb = nb0;
    const size_t block = (size_t)p->K2 * 32;
    for (; nb + 4 <= nb1; nb += 4) {
        /* two accumulators a block (even and odd pairs): eight independent
         * chains hide the latency of vdpbf16ps, so the loop runs at the
         * speed of the L2 */
        const uint16_t *w = p->bf16 + (size_t)nb * block;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        __m512 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        int i = 0;
        for (; i + 2 <= p->K2; i += 2) {
            __m512bh xv = (__m512bh)_mm512_set1_epi32((int)pairs[i]);
            __m512bh yv = (__m512bh)_mm512_set1_epi32((int)pairs[i + 1]);
            const uint16_t *v = w + (size_t)i * 32;
            a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(v), xv);
            a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(v + block), xv);
            a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_loadu_si512(v + 2 * block), xv);
            a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_loadu_si512(v + 3 * block), xv);
            b0 = _mm512_dpbf16_ps(b0, (__m512bh)_mm512_loadu_si512(v + 32), yv);
            b1 = _mm512_dpbf16_ps(b1, (__m512bh)_mm512_loadu_si512(v + block + 32), yv);
            b2 = _mm512_dpbf16_ps(b2, (__m512bh)_mm512_loadu_si512(v + 2 * block + 32), yv);
            b3 = _mm512_dpbf16_ps(b3, (__m512bh)_mm512_loadu_si512(v + 3 * block + 32), yv);
        }
        if (i < p->K2) {
            __m512bh xv = (__m512bh)_mm512_set1_epi32((int)pairs[i]);
            const uint16_t *v = w + (size_t)i * 32;
            a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(v), xv);
            a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(v + block), xv);
            a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_loadu_si512(v + 2 * block), xv);
            a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_loadu_si512(v + 3 * block), xv);
        }
        _mm512_storeu_ps(y + (size_t)nb * 16, _mm512_add_ps(a0, b0));
        _mm512_storeu_ps(y + (size_t)(nb + 1) * 16, _mm512_add_ps(a1, b1));
        _mm512_storeu_ps(y + (size_t)(nb + 2) * 16, _mm512_add_ps(a2, b2));
        _mm512_storeu_ps(y + (size_t)(nb + 3) * 16, _mm512_add_ps(a3, b3));
    }
    for (; nb < nb1; nb++) {
        const uint16_t *w = p->bf16 + (size_t)nb * block;
        __m512 a = _mm512_setzero_ps();
        for (int i = 0; i < p->K2; i++)
            a = _mm512_dpbf16_ps(a, (__m512bh)_mm512_loadu_si512(w + (size_t)i * 32),
                                 (__m512bh)_mm512_set1_epi32((int)pairs[i]));
        _mm512_storeu_ps(y + (size_t)nb * 16, a);
    }
}
#endif

/* Blocks [nb0, nb1) of y = W x for one row of the batch; `pairs` holds x
 * as bf16 pairs (made by make_pairs) for the bf16 precision. */
static void gemv(const recur_rnn_stream *s, const packed *p, const float *x,
                 const uint32_t *pairs, float *y, int nb0, int nb1)
{
    if (s->precision == RECUR_PRECISION_F32) {
        gemv_f32(p, x, y, nb0, nb1);
        return;
    }
#ifdef HAVE_BF16_KERNEL
    if (s->bf16_native) {
        gemv_bf16(p, pairs, y, nb0, nb1);
        return;
    }
#endif
    gemv_bf16_emulated(p, pairs, y, nb0, nb1);
}

static void free_packed(packed *p, int L)
{
    for (int l = 0; p && l < L; l++) {
        recur__free(p[l].raw);
    }
    recur__free(p);
}

void recur_rnn_stream_free(recur_rnn_stream *s)
{
    if (!s)
        return;
    free_packed(s->w_ih, s->L);
    free_packed(s->w_hh, s->L);
    recur__team_free(s->team);
    recur__free(s->work);
    recur__free(s);
}

int recur_rnn_stream_create_with(const recur_rnn *rnn, int B, recur_precision precision,
                                 recur_rnn_stream **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_rnn_stream_create: out is NULL");
    *out = NULL;
    if (!rnn)
        return recur__error(RECUR_E_INVALID, "recur_rnn_stream_create: rnn is NULL");
    const recur_rnn_config *c = recur_rnn_get_config(rnn);
    if (c->bidirectional)
        return recur__error(RECUR_E_UNSUPPORTED,
                            "streaming needs a unidirectional stack (the reverse direction "
                            "would need the whole future)");
    if (B < 1 || B > 65536)
        return recur__error(RECUR_E_INVALID, "streaming batch %d outside 1..65536", B);
    if (precision != RECUR_PRECISION_F32 && precision != RECUR_PRECISION_BF16)
        return recur__error(RECUR_E_INVALID, "unknown stream precision %d", (int)precision);
    recur_rnn_stream *s = recur__calloc(1, sizeof *s);
    if (!s)
        return recur__error(RECUR_E_NOMEM, "out of memory creating stream");
    s->rnn = rnn;
    s->B = B;
    s->L = c->num_layers;
    s->H = c->hidden_size;
    s->G = recur_cell_gates(c->cell);
    s->precision = precision;
#ifdef HAVE_BF16_KERNEL
    __builtin_cpu_init();
    s->bf16_native = __builtin_cpu_supports("avx512bf16");
#endif
    const size_t L = (size_t)s->L, H = (size_t)s->H, GH = (size_t)s->G * H;
    const size_t GH16 = (GH + 15) / 16 * 16;
    size_t max_k = H > (size_t)c->input_size ? H : (size_t)c->input_size;
    s->w_ih = recur__calloc(L, sizeof *s->w_ih);
    s->w_hh = recur__calloc(L, sizeof *s->w_hh);
    s->pair_stride = (int)(max_k / 2 + 1);
    const size_t counts[] = {L * B * H, L * B * H, (size_t)B * H, (size_t)B * GH16,
                             (size_t)B * GH16, (size_t)B * GH, (size_t)B * H,
                             (size_t)B * s->pair_stride, (size_t)B * s->pair_stride};
    size_t bytes = 64;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        bytes += (counts[i] * 4 + 63) / 64 * 64;
    s->work = recur__calloc(1, bytes);
    if (s->work) {
        char *at = (char *)s->work + (64 - (uintptr_t)s->work % 64) % 64;
        s->h = carve(&at, counts[0]);
        s->c = carve(&at, counts[1]);
        s->hin = carve(&at, counts[2]);
        s->xg = carve(&at, counts[3]);
        s->hg = carve(&at, counts[4]);
        s->act = carve(&at, counts[5]);
        s->aux = carve(&at, counts[6]);
        s->pairs_x = carve(&at, counts[7]);
        s->pairs_h = carve(&at, counts[8]);
    }
    /* Split the hidden units (and so the weight rows) over the cores, each
     * keeping its share in its own L2, when the blocks of 16 divide evenly
     * and each thread gets at least 64 units. */
    s->threads = recur_get_threads();
    if (recur_rnn_get_config(rnn)->layer_norm)
        s->threads = 1; /* the normalization reads whole rows of the products */
    while (s->threads > 1 && (s->H % (16 * s->threads) != 0 || s->H / s->threads < 64))
        s->threads--;
    if (s->threads > 1 && recur__team_create(s->threads, &s->team) != RECUR_OK)
        s->threads = 1; /* no helper threads: one thread does it all */
    if (!s->w_ih || !s->w_hh || !s->work) {
        recur_rnn_stream_free(s);
        return recur__error(RECUR_E_NOMEM, "out of memory creating stream");
    }
    for (int l = 0; l < s->L; l++) {
        const float *w_ih, *w_hh, *b_ih, *b_hh;
        recur__rnn_layer_weights(rnn, l, &w_ih, &w_hh, &b_ih, &b_hh);
        int in = l == 0 ? c->input_size : s->H;
        int status = pack(&s->w_ih[l], w_ih, (int)GH, in, precision);
        if (!status)
            status = pack(&s->w_hh[l], w_hh, (int)GH, s->H, precision);
        if (status) {
            recur_rnn_stream_free(s);
            return status;
        }
    }
    *out = s;
    return RECUR_OK;
}

int recur_rnn_stream_create(const recur_rnn *rnn, int B, recur_rnn_stream **out)
{
    return recur_rnn_stream_create_with(rnn, B, RECUR_PRECISION_F32, out);
}

static void set_or_zero(float *dst, const float *src, size_t n)
{
    if (src)
        memcpy(dst, src, n * sizeof(float));
    else
        memset(dst, 0, n * sizeof(float));
}

int recur_rnn_stream_reset(recur_rnn_stream *s, const float *h0, const float *c0)
{
    if (!s)
        return recur__error(RECUR_E_INVALID, "recur_rnn_stream_reset: stream is NULL");
    size_t n = (size_t)s->L * s->B * s->H;
    set_or_zero(s->h, h0, n);
    set_or_zero(s->c, c0, n);
    return RECUR_OK;
}

/* One layer of one step, the share of thread k of P: the gate blocks of its
 * hidden units for every row of the batch, then the cell on those units.
 * Reads the layer input and the state snapshot (hin / pairs), writes only
 * its own units of h, c, xg, hg, act, aux: no thread waits for another. */
typedef struct layer_job {
    recur_rnn_stream *s;
    int l, in_size;
    const float *in;
    const float *b_ih, *b_hh;
    const float *ln_ih, *ln_hh; /* layer normalization gains, or NULL */
    void (*cell)(const cell_forward_args *);
} layer_job;

static void run_layer(void *ctx, int k)
{
    const layer_job *job = ctx;
    recur_rnn_stream *s = job->s;
    const int B = s->B, H = s->H, G = s->G, GH = G * H, P = s->threads, l = job->l;
    const int GH16 = (GH + 15) / 16 * 16;
    const size_t BH = (size_t)B * H;
    const int j0 = k * (H / P), j1 = P == 1 ? H : j0 + H / P;
    if (k > 0) {
        /* the vectors another core just wrote: ask for all their cache
         * lines at once rather than one miss at a time inside the loop */
        const bool bf16 = s->precision == RECUR_PRECISION_BF16;
        const char *v[2] = {bf16 ? (const char *)s->pairs_x : (const char *)job->in,
                            bf16 ? (const char *)s->pairs_h : (const char *)s->hin};
        const size_t bytes[2] = {bf16 ? (size_t)B * s->pair_stride * 4
                                      : (size_t)B * job->in_size * sizeof(float),
                                 bf16 ? (size_t)B * s->pair_stride * 4 : (size_t)B * H * 4};
        for (int i = 0; i < 2; i++)
            for (size_t o = 0; o < bytes[i]; o += 64)
                __builtin_prefetch(v[i] + o);
    }
    for (int b = 0; b < B; b++) {
        const float *xb = job->in + (size_t)b * job->in_size, *hb = s->hin + (size_t)b * H;
        const uint32_t *px = s->pairs_x + (size_t)b * s->pair_stride;
        const uint32_t *ph = s->pairs_h + (size_t)b * s->pair_stride;
        float *xg = s->xg + (size_t)b * GH16, *hg = s->hg + (size_t)b * GH16;
        if (P == 1) {
            gemv(s, &s->w_ih[l], xb, px, xg, 0, s->w_ih[l].NB);
            gemv(s, &s->w_hh[l], hb, ph, hg, 0, s->w_hh[l].NB);
        } else {
            for (int g = 0; g < G; g++) {
                int nb0 = (g * H + j0) / 16, nb1 = (g * H + j1) / 16;
                gemv(s, &s->w_ih[l], xb, px, xg, nb0, nb1);
                gemv(s, &s->w_hh[l], hb, ph, hg, nb0, nb1);
            }
        }
    }
    if (P == 1 && GH16 != GH) /* the cells read rows of stride G*H */
        for (int b = 1; b < B; b++) {
            memmove(s->xg + (size_t)b * GH, s->xg + (size_t)b * GH16, GH * sizeof(float));
            memmove(s->hg + (size_t)b * GH, s->hg + (size_t)b * GH16, GH * sizeof(float));
        }
    if (job->ln_ih) /* layer normalization (one thread: whole rows) */
        for (int b = 0; b < B; b++) {
            recur__ln_forward(s->xg + (size_t)b * GH, job->ln_ih, G, H, NULL, NULL);
            recur__ln_forward(s->hg + (size_t)b * GH, job->ln_hh, G, H, NULL, NULL);
        }
    float *h = s->h + l * BH, *cs = s->c + l * BH;
    cell_forward_args a = {
        .B = B, .H = H, .j0 = j0, .j1 = j1, .xg = s->xg, .hg = s->hg, .b_ih = job->b_ih,
        .b_hh = job->b_hh, .h_prev = s->hin, .c_prev = cs, .h = h, .c = cs, .act = s->act,
        .aux = s->aux, .active = NULL,
    };
    job->cell(&a);
}

int recur_rnn_stream_step(recur_rnn_stream *s, const float *x, float *y)
{
    if (!s || !x)
        return recur__error(RECUR_E_INVALID, "recur_rnn_stream_step: NULL argument");
    const int B = s->B, H = s->H;
    const size_t BH = (size_t)B * H;
    const int I = recur_rnn_get_config(s->rnn)->input_size;
    const bool bf16 = s->precision == RECUR_PRECISION_BF16;
    layer_job job = {.s = s, .in = x, .cell = recur__rnn_step_forward(s->rnn)};
    for (int l = 0; l < s->L; l++) {
        const float *w_ih, *w_hh;
        recur__rnn_layer_weights(s->rnn, l, &w_ih, &w_hh, &job.b_ih, &job.b_hh);
        recur__rnn_layer_norm(s->rnn, l, &job.ln_ih, &job.ln_hh);
        job.l = l;
        job.in_size = l == 0 ? I : H;
        const float *h = s->h + l * BH;
        /* the state every thread reads, while the cells overwrite h */
        memcpy(s->hin, h, BH * sizeof(float));
        if (bf16)
            for (int b = 0; b < B; b++) {
                make_pairs(job.in + (size_t)b * job.in_size, job.in_size,
                           s->pairs_x + (size_t)b * s->pair_stride);
                make_pairs(h + (size_t)b * H, H, s->pairs_h + (size_t)b * s->pair_stride);
            }
        if (s->team)
            recur__team_run(s->team, run_layer, &job);
        else
            run_layer(&job, 0);
        job.in = s->h + l * BH;
    }
    if (y)
        memcpy(y, job.in, BH * sizeof(float));
    return RECUR_OK;
}

int recur_rnn_stream_state(const recur_rnn_stream *s, float *h, float *c)
{
    if (!s)
        return recur__error(RECUR_E_INVALID, "recur_rnn_stream_state: stream is NULL");
    size_t n = (size_t)s->L * s->B * s->H;
    if (h)
        memcpy(h, s->h, n * sizeof(float));
    if (c)
        memcpy(c, s->c, n * sizeof(float));
    return RECUR_OK;
}
