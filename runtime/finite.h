/* dlc runtime: the input check of a library's entry point. */
#ifndef DLC_FINITE_H
#define DLC_FINITE_H

#include "dlc_runtime.h"

/* Whether x[0..n) holds no NaN or inf.  On the bits: the largest magnitude has the
 * exponent all ones exactly when some value is not finite; an integer max reduction
 * vectorises without reordering any floating-point arithmetic. */
static inline int dlc_all_finite(size_t n, const dlc_real *x)
{
    dlc_real_bits largest = 0;
    for (size_t i = 0; i < n; i++) {
        const dlc_real_bits magnitude = dlc_bits(x[i]) & DLC_MAGNITUDE_BITS;
        largest = magnitude > largest ? magnitude : largest;
    }
    return largest < DLC_INF_BITS;
}

#endif
