/* dlc runtime: the small element-wise and reduction kernels of training graphs (the sum
 * of gradients that fan out, the seed of the backward pass, bias gradients). */
#ifndef DLC_ELEMENTWISE_H
#define DLC_ELEMENTWISE_H

#include "dlc_runtime.h"

static inline void dlc_add(size_t n, const dlc_real *a, const dlc_real *b, dlc_real *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = a[i] + b[i];
    }
}

static inline void dlc_ones_like(size_t n, dlc_real *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = 1;
    }
}

/* y (n) = the sum of the rows of x (rows, n): bias gradients. */
static inline void dlc_sum_rows(size_t rows, size_t n, const dlc_real *x, dlc_real *y)
{
    for (size_t j = 0; j < n; j++) {
        y[j] = 0;
    }
    for (size_t i = 0; i < rows; i++) {
        for (size_t j = 0; j < n; j++) {
            y[j] += x[i * n + j];
        }
    }
}

#endif
