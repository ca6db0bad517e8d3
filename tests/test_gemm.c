/* test_gemm.c - the compiled matrix-product backend against the plain C
 * reference on odd sizes, every transpose combination, leading dimensions
 * larger than the rows, and beta 0 / 1 (beta 0 must ignore NaN in C); then
 * the bf16 products of recur_set_matmul_precision against the reference on
 * inputs rounded to bfloat16. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

static float round_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The first M / 64 * 64 rows equal the reference on bf16-rounded inputs (and
 * differ from the float product: the rounding happened); the other rows, and
 * every row of a product under 64 in some dimension, equal the float one. */
static void bf16_case(int M, int N, int K, bool ta, bool tb, float alpha, float beta,
                      recur_rng *rng)
{
    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = malloc(na * sizeof(float)), *Bm = malloc(nb * sizeof(float));
    float *Ar = malloc(na * sizeof(float)), *Br = malloc(nb * sizeof(float));
    float *C = malloc(nc * sizeof(float)), *Cf = malloc(nc * sizeof(float));
    float *Cr = malloc(nc * sizeof(float));
    for (size_t i = 0; i < na; i++)
        Ar[i] = round_bf16(A[i] = recur_rng_uniform(rng) - 0.5f);
    for (size_t i = 0; i < nb; i++)
        Br[i] = round_bf16(Bm[i] = recur_rng_uniform(rng) - 0.5f);
    for (size_t i = 0; i < nc; i++)
        C[i] = Cf[i] = Cr[i] = beta == 0.0f ? NAN : recur_rng_uniform(rng);
    recur_gemm(ta, tb, M, N, K, alpha, A, lda, Bm, ldb, beta, C, ldc);
    recur_gemm_ref(ta, tb, M, N, K, alpha, A, lda, Bm, ldb, beta, Cf, ldc);
    recur_gemm_ref(ta, tb, M, N, K, alpha, Ar, lda, Br, ldb, beta, Cr, ldc);
    const bool big = M >= 64 && N >= 64 && K >= 64;
    const int rows = big ? M / 64 * 64 : 0;
    double worst = 0.0, moved = 0.0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const size_t i = (size_t)m * ldc + n;
            const double e = fabs((double)C[i] - (m < rows ? Cr[i] : Cf[i]));
            worst = isnan(e) ? INFINITY : fmax(worst, e);
            if (m < rows)
                moved = fmax(moved, fabs((double)C[i] - Cf[i]));
        }
    CHECK_MSG(worst <= 1e-5 * sqrt((double)K + 1), "bf16 gemm %dx%dx%d ta=%d tb=%d alpha=%g "
              "beta=%g: error %.3g", M, N, K, ta, tb, (double)alpha, (double)beta, worst);
    if (rows)
        CHECK_MSG(moved > 1e-4, "bf16 gemm %dx%dx%d: the float product ran (%.3g)", M, N, K,
                  moved);
    free(A), free(Bm), free(Ar), free(Br), free(C), free(Cf), free(Cr);
}

static void test_bf16(recur_rng *rng)
{
    CHECK(recur_get_matmul_precision() == RECUR_PRECISION_F32);
    CHECK_STATUS(recur_set_matmul_precision((recur_precision)5), RECUR_E_INVALID);
    const int status = recur_set_matmul_precision(RECUR_PRECISION_BF16);
    if (status != RECUR_OK) {
        CHECK_STATUS(status, RECUR_E_UNSUPPORTED);
        CHECK_ERROR_MENTIONS("products stay float");
        CHECK(recur_get_matmul_precision() == RECUR_PRECISION_F32);
        printf("bf16 products: not on this machine (%s)\n", recur_last_error());
        return;
    }
    CHECK(recur_get_matmul_precision() == RECUR_PRECISION_BF16);
    const int sizes[][3] = {{64, 64, 64}, {130, 70, 100}, {200, 96, 65}, {65, 128, 300},
                            {63, 200, 200}, {128, 63, 100}, {300, 100, 40}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int beta = 0; beta < 2; beta++)
                    bf16_case(sizes[s][0], sizes[s][1], sizes[s][2], ta, tb,
                              beta ? 0.75f : 1.0f, (float)beta, rng);
    /* the same sizes again come from the cache */
    bf16_case(130, 70, 100, true, false, 0.75f, 1.0f, rng);
    CHECK_OK(recur_set_matmul_precision(RECUR_PRECISION_F32));
    CHECK(recur_get_matmul_precision() == RECUR_PRECISION_F32);
    one_case(130, 70, 100, false, true, 1.0f, rng); /* float again */
    printf("bf16 products: checked\n");
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
    test_bf16(&rng);
    printf("backend: %s\n", recur_blas_backend());
    CHECK_DONE();
}
