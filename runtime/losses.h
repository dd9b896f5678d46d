/* dlc runtime: losses and weight penalties, each beside its gradient.  p (prediction or
 * logits) and t (targets) are (rows, n); a cost is a scalar. */
#ifndef DLC_LOSSES_H
#define DLC_LOSSES_H

#include "activations.h"
#include "dlc_runtime.h"
#include "softmax.h"

/* Mean over rows of -sum(t * log softmax(z)), with a stable log-sum-exp; NaN from a row
 * whose softmax is NaN (see dlc_softmax_by_row). */
static inline void dlc_softmax_cross_entropy(size_t rows, size_t n, const dlc_real *z,
                                             const dlc_real *t, dlc_real *cost)
{
    dlc_real total = 0;
    for (size_t i = 0; i < rows; i++) {
        const dlc_real *zi = z + i * n, *ti = t + i * n;
        dlc_real top = zi[0], sum = 0;
        for (size_t j = 1; j < n; j++) {
            top = zi[j] > top ? zi[j] : top;
        }
        const dlc_real_bits undefined = dlc_softmax_undefined(n, zi);
        for (size_t j = 0; j < n; j++) {
            sum += dlc_exp_nonpositive(dlc_shifted(zi[j], top, undefined));
        }
        const dlc_real lse = dlc_log(sum) + top;
        for (size_t j = 0; j < n; j++) {
            total += ti[j] * (lse - zi[j]);
        }
    }
    *cost = total / (dlc_real)rows;
}

/* dz = (softmax(z) - t) * dc / rows: the fused softmax + cross-entropy backward. */
static inline void dlc_softmax_cross_entropy_grad(size_t rows, size_t n, const dlc_real *z,
                                                  const dlc_real *t, dlc_real dc, dlc_real *dz)
{
    const dlc_real scale = dc / (dlc_real)rows;
    dlc_softmax(rows, n, z, dz);
    for (size_t i = 0; i < rows * n; i++) {
        dz[i] = (dz[i] - t[i]) * scale;
    }
}

/* Mean over all rows * n elements of max(z, 0) - z t + log(1 + exp(-|z|)). */
static inline void dlc_sigmoid_cross_entropy(size_t rows, size_t n, const dlc_real *z,
                                             const dlc_real *t, dlc_real *cost)
{
    dlc_real total = 0;
    for (size_t i = 0; i < rows * n; i++) {
        total += (z[i] > 0 ? z[i] : 0) - z[i] * t[i] + dlc_log1p(dlc_exp(-dlc_fabs(z[i])));
    }
    *cost = total / (dlc_real)(rows * n);
}

/* dz = (sigmoid(z) - t) * dc / (rows n): the fused sigmoid + binary cross-entropy backward. */
static inline void dlc_sigmoid_cross_entropy_grad(size_t rows, size_t n, const dlc_real *z,
                                                  const dlc_real *t, dlc_real dc, dlc_real *dz)
{
    const dlc_real scale = dc / (dlc_real)(rows * n);
    for (size_t i = 0; i < rows * n; i++) {
        dz[i] = (dlc_sigmoid1(z[i]) - t[i]) * scale;
    }
}

/* Mean over all rows * n elements of (a - t)^2. */
static inline void dlc_mse(size_t rows, size_t n, const dlc_real *a, const dlc_real *t,
                           dlc_real *cost)
{
    dlc_real total = 0;
    for (size_t i = 0; i < rows * n; i++) {
        total += (a[i] - t[i]) * (a[i] - t[i]);
    }
    *cost = total / (dlc_real)(rows * n);
}

static inline void dlc_mse_grad(size_t rows, size_t n, const dlc_real *a, const dlc_real *t,
                                dlc_real dc, dlc_real *da)
{
    const dlc_real scale = 2 * dc / (dlc_real)(rows * n);
    for (size_t i = 0; i < rows * n; i++) {
        da[i] = (a[i] - t[i]) * scale;
    }
}

/* ---- penalties on a parameter W of n values; m is the batch size */

static inline void dlc_l2_penalty(size_t n, const dlc_real *W, dlc_real m, dlc_real lam,
                                  dlc_real *cost)
{
    dlc_real total = 0;
    for (size_t i = 0; i < n; i++) {
        total += W[i] * W[i];
    }
    *cost = lam / (2 * m) * total;
}

static inline void dlc_l2_penalty_grad(size_t n, const dlc_real *W, dlc_real m, dlc_real dc,
                                       dlc_real lam, dlc_real *dW)
{
    const dlc_real scale = dc * lam / m;
    for (size_t i = 0; i < n; i++) {
        dW[i] = W[i] * scale;
    }
}

static inline void dlc_l1_penalty(size_t n, const dlc_real *W, dlc_real m, dlc_real lam,
                                  dlc_real *cost)
{
    dlc_real total = 0;
    for (size_t i = 0; i < n; i++) {
        total += dlc_fabs(W[i]);
    }
    *cost = lam / m * total;
}

static inline void dlc_l1_penalty_grad(size_t n, const dlc_real *W, dlc_real m, dlc_real dc,
                                       dlc_real lam, dlc_real *dW)
{
    const dlc_real scale = dc * lam / m;
    for (size_t i = 0; i < n; i++) {
        dW[i] = (W[i] > 0 ? 1 : W[i] < 0 ? -1 : 0) * scale;
    }
}

#endif
