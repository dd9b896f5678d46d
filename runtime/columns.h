/* dlc runtime: moving blocks of columns between row-major matrices, for graphs beyond a
 * chain: the concatenation of two tensors along their features, its gradient (a slice
 * of columns), and the outputs of a model with several, side by side in one row. */
#ifndef DLC_COLUMNS_H
#define DLC_COLUMNS_H

#include "dlc_runtime.h"

/* y (rows, ld) gets x (rows, n) in its columns [0, n): y points at the first column. */
static inline void dlc_put_columns(size_t rows, size_t n, const dlc_real *x, size_t ld,
                                   dlc_real *y)
{
    for (size_t i = 0; i < rows; i++) {
        memcpy(y + i * ld, x + i * n, n * sizeof(dlc_real));
    }
}

/* y (rows, n) = the columns [start, start + n) of x (rows, ld). */
static inline void dlc_take_columns(size_t rows, size_t ld, const dlc_real *x, size_t start,
                                    size_t n, dlc_real *y)
{
    for (size_t i = 0; i < rows; i++) {
        memcpy(y + i * n, x + i * ld + start, n * sizeof(dlc_real));
    }
}

/* y (rows, na + nb) = a (rows, na) beside b (rows, nb). */
static inline void dlc_concat(size_t rows, size_t na, const dlc_real *a, size_t nb,
                              const dlc_real *b, dlc_real *y)
{
    dlc_put_columns(rows, na, a, na + nb, y);
    dlc_put_columns(rows, nb, b, na + nb, y + na);
}

#endif
