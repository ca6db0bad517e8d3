/* vmath.h - exp, sigmoid and tanh written with plain float arithmetic so
 * that loops calling them vectorize (AVX2 / AVX-512 clones chosen at run
 * time through RECUR_VECTOR_CLONES). exp follows Cephes' expf: range
 * reduction x = n ln2 + r with a two-part ln2, a degree-6 polynomial on r,
 * and 2^n built in the exponent bits; relative error about 2e-7 on the
 * clamped range. libm's expf/tanhf stay as the reference path (cell_*.c
 * compile both; tests compare them). Loops vectorize only with
 * -fno-trapping-math (set for the library in CMakeLists.txt). */
#ifndef RECUR_VMATH_H
#define RECUR_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(RECUR_NO_CLONES)
#define RECUR_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RECUR_VECTOR_CLONES
#endif

static inline float recur_vexp(float x)
{
    x = x < -87.0f ? -87.0f : x; /* ternaries, not fminf: they if-convert */
    x = x > 88.0f ? 88.0f : x;
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float recur_vsigmoid(float x) { return 1.0f / (1.0f + recur_vexp(-x)); }

/* tanh(x) = 1 - 2 / (exp(2x) + 1): absolute error about 1e-7 everywhere;
 * small |x| uses the odd Taylor series where the subtraction would cancel. */
static inline float recur_vtanh(float x)
{
    float big = 1.0f - 2.0f / (recur_vexp(2.0f * x) + 1.0f);
    float x2 = x * x;
    float small = x * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f + x2 * -0.0539682540f)));
    return fabsf(x) < 0.0625f ? small : big;
}

#endif
