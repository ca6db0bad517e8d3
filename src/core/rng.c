/* rng.c - xoshiro256** (Blackman & Vigna 2018) seeded through splitmix64.
 * All state is in the caller's recur_rng; there is no global generator. */
#include <math.h>
#include <string.h>

#include "internal.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void recur_rng_seed(recur_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* One xoshiro256** step on the state s[4]: the next output. */
static inline uint64_t step(uint64_t *s)
{
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t recur_rng_next(recur_rng *rng) { return step(rng->s); }

void recur__rng_dropout_mask(recur_rng *rng, size_t n, float p, float keep, float *mask)
{
    /* recur_rng_uniform(rng) < p, with u = k / 2^24 for the integer k = next >> 40, is
     * k < p * 2^24 (exact in float), that is k < ceil(p * 2^24); the state is a local
     * copy, kept in registers. p <= 0 (or NaN) drops nothing, as the comparison would. */
    const uint64_t limit = p > 0.0f ? (uint64_t)ceilf((p < 1.0f ? p : 1.0f) * 16777216.0f) : 0;
    uint64_t s[4] = {rng->s[0], rng->s[1], rng->s[2], rng->s[3]};
    for (size_t i = 0; i < n; i++)
        mask[i] = (step(s) >> 40) < limit ? 0.0f : keep;
    memcpy(rng->s, s, sizeof s);
}

float recur_rng_uniform(recur_rng *rng)
{
    return (float)(recur_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

double recur_rng_uniform_double(recur_rng *rng)
{
    return (double)(recur_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

double recur_rng_normal(recur_rng *rng)
{
    double u1 = recur_rng_uniform_double(rng);
    double u2 = recur_rng_uniform_double(rng);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t recur_rng_below(recur_rng *rng, uint64_t n)
{
    /* Rejection sampling: draws landing in the incomplete top block are redrawn. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do {
        r = recur_rng_next(rng);
    } while (r >= limit);
    return r % n;
}
