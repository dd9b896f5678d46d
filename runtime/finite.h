/* dlc runtime: the input check of a library's entry point. */
#ifndef DLC_FINITE_H
#define DLC_FINITE_H

#include "dlc_runtime.h"

/* The maxima kept side by side: a loop of this constant trip count is one that gcc
 * vectorises at -O2 too, where it leaves a single running maximum scalar (3-15x slower
 * on a batch of 64 KB; at -O3 both run at the cache's bandwidth). */
#define DLC_FINITE_LANES 32

static inline dlc_real_bits dlc_larger_magnitude(dlc_real_bits largest, dlc_real x)
{
    const dlc_real_bits magnitude = dlc_bits(x) & DLC_MAGNITUDE_BITS;
    return magnitude > largest ? magnitude : largest;
}

/* Whether x[0..n) holds no NaN or inf.  On the bits: the largest magnitude has the
 * exponent all ones exactly when some value is not finite; an integer max reduction
 * vectorises without reordering any floating-point arithmetic. */
static inline int dlc_all_finite(size_t n, const dlc_real *x)
{
    dlc_real_bits largest[DLC_FINITE_LANES] = {0};
    size_t i = 0;
    for (; i + DLC_FINITE_LANES <= n; i += DLC_FINITE_LANES) {
        for (size_t l = 0; l < DLC_FINITE_LANES; l++) {
            largest[l] = dlc_larger_magnitude(largest[l], x[i + l]);
        }
    }
    for (; i < n; i++) {
        largest[0] = dlc_larger_magnitude(largest[0], x[i]);
    }
    dlc_real_bits top = 0;
    for (size_t l = 0; l < DLC_FINITE_LANES; l++) {
        top = largest[l] > top ? largest[l] : top;
    }
    return top < DLC_INF_BITS;
}

#endif
