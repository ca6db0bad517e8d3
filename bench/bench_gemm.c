/* bench_gemm.c - GFLOP/s of the compiled matrix-product backend on the
 * shapes an RNN uses: the input projection of all steps (T*B x G*H x I), one
 * recurrent step (B x G*H x H) and the weight gradients (G*H x I x T*B,
 * transposed A). Usage: bench_gemm [threads]. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "recur.h"
#include "tensor/gemm.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    recur_set_threads(argc > 1 ? atoi(argv[1]) : 0);
    const struct {
        const char *what;
        bool ta, tb;
        int M, N, K;
    } cases[] = {
        {"input projection  NT", false, true, 3200, 2048, 512},
        {"recurrent step    NT", false, true, 32, 2048, 512},
        {"recurrent step    NT", false, true, 64, 4096, 1024},
        {"dW = dG^T X       TN", true, false, 2048, 512, 3200},
        {"dW = dG^T X       TN", true, false, 4096, 1024, 6400},
        {"dX = dG W         NN", false, false, 3200, 512, 2048},
        {"large             NT", false, true, 6400, 4096, 1024},
    };
    printf("backend %s, %d threads\n", recur_blas_backend(), recur_get_threads());
    printf("%-22s %6s %6s %6s %10s %9s\n", "shape", "M", "N", "K", "us/call", "GFLOP/s");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int M = cases[c].M, N = cases[c].N, K = cases[c].K;
        float *A = calloc((size_t)M * K, sizeof(float)), *B = calloc((size_t)K * N, sizeof(float));
        float *C = calloc((size_t)M * N, sizeof(float));
        for (size_t i = 0; i < (size_t)M * K; i++)
            A[i] = (float)(i % 7) * 0.01f;
        for (size_t i = 0; i < (size_t)K * N; i++)
            B[i] = (float)(i % 5) * 0.01f;
        int lda = cases[c].ta ? M : K, ldb = cases[c].tb ? K : N;
        recur_gemm(cases[c].ta, cases[c].tb, M, N, K, 1, A, lda, B, ldb, 0, C, N);
        double flops = 2.0 * M * N * K, t0 = now();
        int reps = 0;
        do {
            recur_gemm(cases[c].ta, cases[c].tb, M, N, K, 1, A, lda, B, ldb, 0, C, N);
            reps++;
        } while (now() - t0 < 0.5);
        double dt = (now() - t0) / reps;
        printf("%-22s %6d %6d %6d %10.1f %9.1f\n", cases[c].what, M, N, K, dt * 1e6,
               flops / dt * 1e-9);
        free(A), free(B), free(C);
    }
    return 0;
}
