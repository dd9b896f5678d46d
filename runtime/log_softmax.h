/* dlc runtime: log-softmax over each row and its gradient.  A batch of `rows` examples is
 * (rows, n), row-major. */
#ifndef DLC_LOG_SOFTMAX_H
#define DLC_LOG_SOFTMAX_H

#include "dlc_runtime.h"
#include "softmax.h"

/* y = (x - row max) - log(sum(exp(x - row max))) over each row of x (rows, n): stable for
 * any magnitude.  x and y may be the same buffer.  A row whose softmax is NaN (see
 * dlc_softmax_undefined) is all NaN; -inf elsewhere stays -inf. */
static inline void dlc_log_softmax(size_t rows, size_t n, const dlc_real *x, dlc_real *y)
{
    for (size_t i = 0; i < rows; i++) {
        const dlc_real *xi = x + i * n;
        dlc_real *yi = y + i * n;
        dlc_real max = xi[0], sum = 0;
        for (size_t j = 1; j < n; j++) {
            max = xi[j] > max ? xi[j] : max;
        }
        const dlc_real_bits undefined = dlc_softmax_undefined(n, xi);
        for (size_t j = 0; j < n; j++) {
            yi[j] = dlc_shifted(xi[j], max, undefined);
        }
        for (size_t j = 0; j < n; j++) {
            sum += dlc_exp_nonpositive(yi[j]);
        }
        const dlc_real log_sum = dlc_log(sum);
        for (size_t j = 0; j < n; j++) {
            yi[j] -= log_sum;
        }
    }
}

/* Log-softmax backward: y is the output (rows, n); dx = dy - exp(y) * sum(dy). */
static inline void dlc_log_softmax_grad(size_t rows, size_t n, const dlc_real *dy,
                                        const dlc_real *y, dlc_real *dx)
{
    for (size_t i = 0; i < rows; i++) {
        const dlc_real *dyi = dy + i * n, *yi = y + i * n;
        dlc_real total = 0;
        for (size_t j = 0; j < n; j++) {
            total += dyi[j];
        }
        for (size_t j = 0; j < n; j++) {
            dx[i * n + j] = dyi[j] - dlc_exp_nonpositive(yi[j]) * total;
        }
    }
}

#endif
