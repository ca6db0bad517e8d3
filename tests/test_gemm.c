/* test_gemm.c - the compiled matrix-product backend against the plain C
 * reference on odd sizes, every transpose combination, leading dimensions
 * larger than the rows, and beta 0 / 1 (beta 0 must ignore NaN in C). */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "recur.h"
#include "tensor/gemm.h"

static void one_case(int M, int N, int K, bool ta, bool tb, float beta, recur_rng *rng)
{
    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = malloc(na * sizeof(float)), *Bm = malloc(nb * sizeof(float));
    float *C1 = malloc(nc * sizeof(float)), *C2 = malloc(nc * sizeof(float));
    for (size_t i = 0; i < na; i++)
        A[i] = recur_rng_uniform(rng) - 0.5f;
    for (size_t i = 0; i < nb; i++)
        Bm[i] = recur_rng_uniform(rng) - 0.5f;
    for (size_t i = 0; i < nc; i++)
        C1[i] = C2[i] = beta == 0.0f ? NAN : recur_rng_uniform(rng);
    recur_gemm(ta, tb, M, N, K, 0.75f, A, lda, Bm, ldb, beta, C1, ldc);
    recur_gemm_ref(ta, tb, M, N, K, 0.75f, A, lda, Bm, ldb, beta, C2, ldc);
    double worst = 0.0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double e = fabs((double)C1[(size_t)m * ldc + n] - C2[(size_t)m * ldc + n]);
            worst = isnan(e) ? INFINITY : fmax(worst, e);
        }
    CHECK_MSG(worst <= 1e-5 * sqrt((double)K + 1), "gemm %dx%dx%d ta=%d tb=%d beta=%g: error %.3g",
              M, N, K, ta, tb, (double)beta, worst);
    free(A), free(Bm), free(C1), free(C2);
}

int main(void)
{
    recur_rng rng;
    recur_rng_seed(&rng, 7);
    const int sizes[][3] = {{1, 1, 1}, {1, 17, 33}, {5, 1, 7}, {13, 29, 17}, {64, 48, 80},
                            {33, 65, 129}, {100, 7, 3}, {2, 515, 31}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int beta = 0; beta < 2; beta++)
                    one_case(sizes[s][0], sizes[s][1], sizes[s][2], ta, tb, (float)beta, &rng);
    printf("backend: %s\n", recur_blas_backend());
    CHECK_DONE();
}
