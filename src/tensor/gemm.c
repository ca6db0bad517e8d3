/* gemm.c - the only file that talks to a BLAS library. RECUR_BLAS_ONEDNN
 * calls dnnl_sgemm (row-major natively), RECUR_BLAS_OPENBLAS calls
 * cblas_sgemm with CblasRowMajor, and neither defined uses the reference.
 * Threading: oneDNN and OpenBLAS (OpenMP build) share the OpenMP pool that
 * recur_set_threads sizes. */
#include <stddef.h>

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
