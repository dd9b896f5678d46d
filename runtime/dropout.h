/* dlc runtime: inverted dropout while training (at inference dropout is a copy). */
#ifndef DLC_DROPOUT_H
#define DLC_DROPOUT_H

#include "dlc_runtime.h"
#include "rng.h"
#include "threads.h"

/* Inverted dropout of n values: element i is kept (and scaled) when the i-th uniform
 * of the stream `key` is below keep_prob.  The backward is the same call on dy.
 * `keep ? x * scale : 0` would not vectorise (gcc computes no product that a lane may
 * discard, as it might trap), so the product is masked bit by bit: +0 when dropped. */
static inline void dlc_dropout_part(size_t begin, size_t end, int64_t threshold,
                                    dlc_real scale, uint64_t key, const dlc_real *x,
                                    dlc_real *y)
{
    for (size_t i = begin; i < end; i++) {
        const dlc_real kept = x[i] * scale;
        dlc_real_bits bits;
        memcpy(&bits, &kept, sizeof bits);
        bits &= (dlc_real_bits)0 - (dlc_real_bits)(dlc_rng_bits(key, i) < threshold);
        memcpy(y + i, &bits, sizeof bits);
    }
}

static inline void dlc_dropout_train(size_t n, double keep_prob, dlc_real scale, uint64_t key,
                                     const dlc_real *x, dlc_real *y)
{
    const int64_t threshold = dlc_rng_threshold(keep_prob);
    const size_t parts = dlc_parts(n);
    if (parts == 1) {
        dlc_dropout_part(0, n, threshold, scale, key, x, y);
        return;
    }
#ifdef _OPENMP
    #pragma omp parallel for schedule(static) num_threads((int)parts)
#endif
    for (size_t k = 0; k < parts; k++) {
        dlc_dropout_part(n * k / parts, n * (k + 1) / parts, threshold, scale, key, x, y);
    }
}

#endif
