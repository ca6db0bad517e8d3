/* gemm.h - the one interface to matrix products. Row-major throughout:
 *   C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C
 * op(A) = A (A stored [M, lda]) or A^T (A stored [K, lda]) when trans_a.
 * The backend (oneDNN, OpenBLAS or the plain reference) is chosen at build
 * time with RECUR_BLAS; recur_gemm_ref is always compiled so that tests can
 * compare the two. */
#ifndef RECUR_GEMM_H
#define RECUR_GEMM_H

#include <stdbool.h>

void recur_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta,
                float *C, int ldc);

/* Plain C reference with the same contract (double accumulation). */
void recur_gemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta,
                    float *C, int ldc);

#endif
