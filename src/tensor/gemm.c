/* gemm.c - the only file that talks to a BLAS library. RECUR_BLAS_ONEDNN
 * calls dnnl_sgemm (row-major natively), RECUR_BLAS_OPENBLAS calls
 * cblas_sgemm with CblasRowMajor, and neither defined uses the reference.
 * With recur_set_matmul_precision(RECUR_PRECISION_BF16) the large products
 * go to oneDNN's bf16 matmul primitive instead (below).
 * Threading: oneDNN and OpenBLAS (OpenMP build) share the OpenMP pool that
 * recur_set_threads sizes. */
#include <stddef.h>
#include <string.h>

#include "gemm.h"
#include "internal.h"

#if defined(RECUR_BLAS_ONEDNN)
#include <dnnl.h>
#elif defined(RECUR_BLAS_OPENBLAS)
#include <cblas.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(RECUR_BLAS_ONEDNN) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RECUR_GEMM_BF16 1
#include <immintrin.h>
#include <pthread.h>
#endif

void recur_gemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta,
                    float *C, int ldc)
{
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k];
                float b = trans_b ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n];
                acc += (double)a * b;
            }
            float *c = &C[(size_t)m * ldc + n];
            *c = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
    }
}

#ifdef RECUR_GEMM_BF16
/* ---- bfloat16 products -------------------------------------------------------
 * The inputs are rounded into packed copies (K padded with zeros to a multiple
 * of BF16_ROWS, which changes nothing in the sums) and multiplied by a oneDNN
 * matmul primitive (its brgemm kernels for AVX512-BF16, or its bf16 gemm
 * kernels when C's rows are not contiguous), accumulating in
 * float; alpha is the primitive's output scale, beta its sum post-op. Each
 * primitive is made for exact sizes, so M is cut to a multiple of BF16_ROWS
 * and the last M % BF16_ROWS rows go to the float product: the sizes a
 * training run meets then take a few dozen primitives, kept in a small cache.
 * One lock serializes the bf16 products of concurrent callers. */
enum { BF16_ROWS = 64, BF16_CACHE = 96 };

typedef struct bf16_entry {
    int M, N, K, ldc;   /* K padded */
    bool ta, tb;
    float alpha, beta;
    dnnl_primitive_t prim; /* NULL: no bf16 kernel for it, the float product runs */
    dnnl_memory_t a, b, c;
    uint64_t used;
} bf16_entry;

static struct {
    pthread_mutex_t lock;
    volatile int on;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    bf16_entry cache[BF16_CACHE];
    int count;
    uint64_t tick;
    uint16_t *a, *b; /* packed inputs */
    size_t a_cap, b_cap;
} bf16 = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* rows x cols floats (row stride ld) to bfloat16, rounded to nearest even,
 * into rows of cols_pad (the padding zero). */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void
to_bf16(const float *src, size_t ld, int rows, int cols, int cols_pad, uint16_t *dst)
{
    for (int r = 0; r < rows; r++) {
        const float *s = src + (size_t)r * ld;
        uint16_t *d = dst + (size_t)r * cols_pad;
        int c = 0;
        for (; c + 16 <= cols; c += 16)
            _mm256_storeu_si256((__m256i *)(void *)(d + c),
                                (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(s + c)));
        if (c < cols) {
            const __mmask16 m = (__mmask16)((1u << (cols - c)) - 1u);
            _mm256_mask_storeu_epi16(d + c, m,
                                     (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, s + c)));
        }
        if (cols_pad > cols)
            memset(d + cols, 0, (size_t)(cols_pad - cols) * sizeof(uint16_t));
    }
}

static bool grow(uint16_t **buf, size_t *cap, size_t n)
{
    if (n <= *cap)
        return true;
    uint16_t *p = recur__malloc(n * sizeof(uint16_t));
    if (!p)
        return false;
    recur__free(*buf);
    *buf = p;
    *cap = n;
    return true;
}

static void entry_clear(bf16_entry *e)
{
    dnnl_primitive_destroy(e->prim);
    dnnl_memory_destroy(e->a);
    dnnl_memory_destroy(e->b);
    dnnl_memory_destroy(e->c);
    memset(e, 0, sizeof *e);
}

/* Makes the primitive of e's key; leaves e->prim NULL when oneDNN has no
 * bf16 kernel for it (or fails). */
static void entry_make(bf16_entry *e)
{
    const int M = e->M, N = e->N, K = e->K;
    dnnl_memory_desc_t a, b, c;
    dnnl_dims_t da = {M, K}, db = {K, N}, dc = {M, N};
    dnnl_dims_t sa = {e->ta ? 1 : K, e->ta ? M : 1}, sb = {e->tb ? 1 : N, e->tb ? K : 1};
    dnnl_dims_t sc = {e->ldc, 1};
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t post = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_matmul_desc_t md;
    const char *impl = NULL;
    bool ok = dnnl_memory_desc_init_by_strides(&a, 2, da, dnnl_bf16, sa) == dnnl_success &&
              dnnl_memory_desc_init_by_strides(&b, 2, db, dnnl_bf16, sb) == dnnl_success &&
              dnnl_memory_desc_init_by_strides(&c, 2, dc, dnnl_f32, sc) == dnnl_success &&
              dnnl_matmul_desc_init(&md, &a, &b, NULL, &c) == dnnl_success &&
              dnnl_primitive_attr_create(&attr) == dnnl_success &&
              (e->alpha == 1.0f ||
               dnnl_primitive_attr_set_output_scales(attr, 1, 0, &e->alpha) == dnnl_success);
    if (ok && e->beta != 0.0f)
        ok = dnnl_post_ops_create(&post) == dnnl_success &&
             dnnl_post_ops_append_sum(post, e->beta) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, post) == dnnl_success;
    ok = ok && dnnl_primitive_desc_create(&pd, &md, attr, bf16.engine, NULL) == dnnl_success &&
         dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
         impl && strncmp(impl, "ref", 3) != 0 && /* brgemm (dense C) or gemm:jit, not a loop */
         dnnl_primitive_create(&e->prim, pd) == dnnl_success &&
         dnnl_memory_create(&e->a, &a, bf16.engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&e->b, &b, bf16.engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&e->c, &c, bf16.engine, DNNL_MEMORY_NONE) == dnnl_success;
    dnnl_primitive_desc_destroy(pd);
    dnnl_post_ops_destroy(post);
    dnnl_primitive_attr_destroy(attr);
    if (!ok) {
        dnnl_primitive_destroy(e->prim);
        dnnl_memory_destroy(e->a);
        dnnl_memory_destroy(e->b);
        dnnl_memory_destroy(e->c);
        e->prim = NULL;
        e->a = e->b = e->c = NULL;
    }
}

/* The cached primitive for this key (made on a miss, replacing the least
 * recently used). Under the lock. */
static bf16_entry *entry_for(const bf16_entry *key)
{
    bf16_entry *oldest = NULL;
    for (int i = 0; i < bf16.count; i++) {
        bf16_entry *e = &bf16.cache[i];
        if (e->M == key->M && e->N == key->N && e->K == key->K && e->ldc == key->ldc &&
            e->ta == key->ta && e->tb == key->tb && e->alpha == key->alpha &&
            e->beta == key->beta) {
            e->used = ++bf16.tick;
            return e;
        }
        if (!oldest || e->used < oldest->used)
            oldest = e;
    }
    bf16_entry *e = bf16.count < BF16_CACHE ? &bf16.cache[bf16.count++] : oldest;
    entry_clear(e);
    *e = *key;
    e->prim = NULL;
    e->a = e->b = e->c = NULL;
    e->used = ++bf16.tick;
    entry_make(e);
    return e;
}

/* The first M rows of C (M a multiple of BF16_ROWS) in bf16; false when this
 * product has no bf16 kernel (nothing written). Under the lock. */
static bool gemm_bf16_locked(bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
                             int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    const int Kp = (K + BF16_ROWS - 1) / BF16_ROWS * BF16_ROWS;
    const bf16_entry key = {M, N, Kp, ldc, ta, tb, alpha, beta, NULL, NULL, NULL, NULL, 0};
    bf16_entry *e = entry_for(&key);
    if (!e->prim || !grow(&bf16.a, &bf16.a_cap, (size_t)M * Kp) ||
        !grow(&bf16.b, &bf16.b_cap, (size_t)N * Kp))
        return false;
    /* packed as stored: A [M, Kp] or (ta) [Kp, M]; B [Kp, N] or (tb) [N, Kp] */
    if (ta) {
        to_bf16(A, (size_t)lda, K, M, M, bf16.a);
        memset(bf16.a + (size_t)K * M, 0, (size_t)(Kp - K) * M * sizeof(uint16_t));
    } else {
        to_bf16(A, (size_t)lda, M, K, Kp, bf16.a);
    }
    if (tb) {
        to_bf16(B, (size_t)ldb, N, K, Kp, bf16.b);
    } else {
        to_bf16(B, (size_t)ldb, K, N, N, bf16.b);
        memset(bf16.b + (size_t)K * N, 0, (size_t)(Kp - K) * N * sizeof(uint16_t));
    }
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b},
                               {DNNL_ARG_DST, e->c}};
    return dnnl_memory_set_data_handle(e->a, bf16.a) == dnnl_success &&
           dnnl_memory_set_data_handle(e->b, bf16.b) == dnnl_success &&
           dnnl_memory_set_data_handle(e->c, C) == dnnl_success &&
           dnnl_primitive_execute(e->prim, bf16.stream, 3, args) == dnnl_success &&
           dnnl_stream_wait(bf16.stream) == dnnl_success;
}

/* Rows of C done in bf16 (a multiple of BF16_ROWS, 0 when the product is too
 * small or the mode is off). */
static int gemm_bf16(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc)
{
    const int rows = M / BF16_ROWS * BF16_ROWS;
    if (!bf16.on || rows == 0 || N < BF16_ROWS || K < BF16_ROWS)
        return 0;
#ifdef _OPENMP
    if (omp_in_parallel())
        return 0;
#endif
    pthread_mutex_lock(&bf16.lock);
    const bool done = bf16.on && gemm_bf16_locked(ta, tb, rows, N, K, alpha, A, lda, B, ldb,
                                                  beta, C, ldc);
    pthread_mutex_unlock(&bf16.lock);
    return done ? rows : 0;
}
#endif

int recur_set_matmul_precision(recur_precision precision)
{
    if (precision == RECUR_PRECISION_F32) {
#ifdef RECUR_GEMM_BF16
        bf16.on = 0;
#endif
        return RECUR_OK;
    }
    if (precision != RECUR_PRECISION_BF16)
        return recur__error(RECUR_E_INVALID, "recur_set_matmul_precision: unknown precision %d",
                            (int)precision);
#ifdef RECUR_GEMM_BF16
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512bf16"))
        return recur__error(RECUR_E_UNSUPPORTED, "bf16 matrix products need a CPU with "
                            "AVX512-BF16; this one has none (products stay float)");
    pthread_mutex_lock(&bf16.lock);
    int status = RECUR_OK;
    if (!bf16.engine && dnnl_engine_create(&bf16.engine, dnnl_cpu, 0) != dnnl_success)
        status = recur__error(RECUR_E_UNSUPPORTED, "oneDNN: cannot create a CPU engine");
    if (!status && !bf16.stream &&
        dnnl_stream_create(&bf16.stream, bf16.engine, dnnl_stream_default_flags) != dnnl_success)
        status = recur__error(RECUR_E_UNSUPPORTED, "oneDNN: cannot create a stream");
    if (!status) { /* a first product tells whether oneDNN has bf16 kernels here */
        const bf16_entry key = {BF16_ROWS, BF16_ROWS, BF16_ROWS, BF16_ROWS, false, false,
                                1.0f, 0.0f, NULL, NULL, NULL, NULL, 0};
        if (!entry_for(&key)->prim)
            status = recur__error(RECUR_E_UNSUPPORTED, "oneDNN %d.%d offers no bf16 matrix "
                                  "multiplication kernel on this CPU (products stay float)",
                                  dnnl_version()->major, dnnl_version()->minor);
    }
    bf16.on = status == RECUR_OK;
    pthread_mutex_unlock(&bf16.lock);
    return status;
#else
    return recur__error(RECUR_E_UNSUPPORTED, "bf16 matrix products need the oneDNN backend "
                        "built with GCC on x86-64; this build has %s (products stay float)",
                        recur_blas_backend());
#endif
}

recur_precision recur_get_matmul_precision(void)
{
#ifdef RECUR_GEMM_BF16
    return bf16.on ? RECUR_PRECISION_BF16 : RECUR_PRECISION_F32;
#else
    return RECUR_PRECISION_F32;
#endif
}

void recur_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta,
                float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        /* op(A) op(B) is empty: C = beta * C (beta 0 clears NaNs too). */
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++)
                C[(size_t)m * ldc + n] = beta == 0.0f ? 0.0f : beta * C[(size_t)m * ldc + n];
        return;
    }
#if defined(RECUR_BLAS_ONEDNN)
#ifdef RECUR_GEMM_BF16
    const int done = gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (done == M)
        return;
    A += trans_a ? (size_t)done : (size_t)done * lda;
    C += (size_t)done * ldc;
    M -= done;
#endif
    dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb,
               beta, C, ldc);
#elif defined(RECUR_BLAS_OPENBLAS)
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                ldc);
#else
    recur_gemm_ref(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

const char *recur_blas_backend(void)
{
#if defined(RECUR_BLAS_ONEDNN)
    return "onednn";
#elif defined(RECUR_BLAS_OPENBLAS)
    return "openblas";
#else
    return "reference";
#endif
}

void recur_set_threads(int n)
{
#ifdef _OPENMP
    if (n <= 0)
        n = omp_get_num_procs();
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

int recur__thread_index(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

int recur_get_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
