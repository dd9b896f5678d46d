/* dlc runtime: the counter-based RNG of dropout masks (mirrors dlc/rng.py bit for bit).
 * SplitMix64 used as a hash: key = mix(mix(mix(seed) ^ step) ^ stream), and element i
 * of a draw is mix(key + (i + 1) * golden), so a mask is a pure function of
 * (seed, step, layer, element). */
#ifndef DLC_RNG_H
#define DLC_RNG_H

#include <math.h>
#include <stdint.h>

static inline uint64_t dlc_rng_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static inline uint64_t dlc_rng_key(uint64_t seed, uint64_t step, uint64_t stream)
{
    return dlc_rng_mix(dlc_rng_mix(dlc_rng_mix(seed) ^ step) ^ stream);
}

/* The 53 random bits of the i-th draw of the stream `key`; times 2^-53, its uniform
 * double in [0, 1) (dlc/rng.py, uniform). */
static inline int64_t dlc_rng_bits(uint64_t key, uint64_t i)
{
    return (int64_t)(dlc_rng_mix(key + (i + 1) * UINT64_C(0x9E3779B97F4A7C15)) >> 11);
}

/* The integer threshold t with bits < t exactly when bits * 2^-53 < p: comparing the
 * bits as integers keeps the loop of a dropout mask in vector registers. */
static inline int64_t dlc_rng_threshold(double p)
{
    return (int64_t)ceil(p * 9007199254740992.0);
}

#endif
