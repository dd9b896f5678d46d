/* dlc runtime: batch normalisation and fixed normalisation, forward and backward.  A
 * batch is (rows, n) row-major; per-feature values are vectors of n. */
#ifndef DLC_BATCHNORM_H
#define DLC_BATCHNORM_H

#include "dlc_runtime.h"
#include "elementwise.h"

/* Kernels below walk a batch row by row, so that every inner loop is unit-stride and
 * vectorises; per-feature values live in blocks of at most this many features. */
#define DLC_FEATURE_BLOCK 256

/* Per-feature affine map y = (x - mean) / sqrt(var + eps) * gamma + beta,
 * x and y (rows, n); gamma or beta may be NULL (1 and 0). */
static inline void dlc_standardize(size_t rows, size_t n, const dlc_real *x,
                                   const dlc_real *gamma, const dlc_real *beta,
                                   const dlc_real *mean, const dlc_real *var,
                                   dlc_real eps, dlc_real *y)
{
    for (size_t i = 0; i < rows; i++) {
        for (size_t j = 0; j < n; j++) {
            dlc_real v = (x[i * n + j] - mean[j]) / dlc_sqrt(var[j] + eps);
            if (gamma) {
                v *= gamma[j];
            }
            if (beta) {
                v += beta[j];
            }
            y[i * n + j] = v;
        }
    }
}

/* The number of features of the block starting at feature j0 of n. */
static inline size_t dlc_block_size(size_t j0, size_t n)
{
    return n - j0 < DLC_FEATURE_BLOCK ? n - j0 : DLC_FEATURE_BLOCK;
}

/* sd[j] = sqrt(var[j] + eps) for the nb features of a block. */
static inline void dlc_block_sd(size_t nb, const dlc_real *var, dlc_real eps, dlc_real *sd)
{
    for (size_t j = 0; j < nb; j++) {
        sd[j] = dlc_sqrt(var[j] + eps);
    }
}

/* dx = dy / sqrt(var + eps), per feature: the backward of a fixed normalisation. */
static inline void dlc_normalize_grad(size_t rows, size_t n, const dlc_real *dy,
                                      const dlc_real *var, dlc_real eps, dlc_real *dx)
{
    for (size_t j0 = 0; j0 < n; j0 += DLC_FEATURE_BLOCK) {
        const size_t nb = dlc_block_size(j0, n);
        dlc_real sd[DLC_FEATURE_BLOCK];
        dlc_block_sd(nb, var + j0, eps, sd);
        for (size_t i = 0; i < rows; i++) {
            const dlc_real *dyi = dy + i * n + j0;
            dlc_real *dxi = dx + i * n + j0;
            for (size_t j = 0; j < nb; j++) {
                dxi[j] = dyi[j] / sd[j];
            }
        }
    }
}

/* Batch statistics of x (rows, n): the mean and the biased variance (divided by rows). */
static inline void dlc_batch_mean(size_t rows, size_t n, const dlc_real *x, dlc_real *mean)
{
    dlc_sum_rows(rows, n, x, mean);
    for (size_t j = 0; j < n; j++) {
        mean[j] /= (dlc_real)rows;
    }
}

static inline void dlc_batch_var(size_t rows, size_t n, const dlc_real *x,
                                 const dlc_real *mean, dlc_real *var)
{
    for (size_t j = 0; j < n; j++) {
        var[j] = 0;
    }
    for (size_t i = 0; i < rows; i++) {
        for (size_t j = 0; j < n; j++) {
            dlc_real d = x[i * n + j] - mean[j];
            var[j] += d * d;
        }
    }
    for (size_t j = 0; j < n; j++) {
        var[j] /= (dlc_real)rows;
    }
}

/* Batch-norm backward through the batch statistics, x and dy (rows, n):
 * dx = inv / rows * (rows * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)),
 * with xhat = (x - mean) inv, inv = 1 / sqrt(var + eps), dxhat = dy gamma. */
static inline void dlc_batchnorm_backward(size_t rows, size_t n, const dlc_real *dy,
                                          const dlc_real *x, const dlc_real *gamma,
                                          const dlc_real *mean, const dlc_real *var,
                                          dlc_real eps, dlc_real *dx)
{
    const dlc_real m = (dlc_real)rows;
    for (size_t j0 = 0; j0 < n; j0 += DLC_FEATURE_BLOCK) {
        const size_t nb = dlc_block_size(j0, n);
        const dlc_real *g = gamma + j0, *mu = mean + j0;
        dlc_real inv[DLC_FEATURE_BLOCK], sum[DLC_FEATURE_BLOCK], dot[DLC_FEATURE_BLOCK];
        dlc_block_sd(nb, var + j0, eps, inv);
        for (size_t j = 0; j < nb; j++) {
            inv[j] = 1 / inv[j];
            sum[j] = 0;
            dot[j] = 0;
        }
        for (size_t i = 0; i < rows; i++) {
            const dlc_real *dyi = dy + i * n + j0, *xi = x + i * n + j0;
            for (size_t j = 0; j < nb; j++) {
                const dlc_real dxhat = dyi[j] * g[j];
                sum[j] += dxhat;
                dot[j] += dxhat * ((xi[j] - mu[j]) * inv[j]);
            }
        }
        for (size_t i = 0; i < rows; i++) {
            const dlc_real *dyi = dy + i * n + j0, *xi = x + i * n + j0;
            dlc_real *dxi = dx + i * n + j0;
            for (size_t j = 0; j < nb; j++) {
                const dlc_real xhat = (xi[j] - mu[j]) * inv[j];
                dxi[j] = inv[j] / m * (m * (dyi[j] * g[j]) - sum[j] - xhat * dot[j]);
            }
        }
    }
}

/* dgamma (n) = sum over rows of dy * xhat. */
static inline void dlc_batchnorm_dgamma(size_t rows, size_t n, const dlc_real *dy,
                                        const dlc_real *x, const dlc_real *mean,
                                        const dlc_real *var, dlc_real eps, dlc_real *dgamma)
{
    for (size_t j0 = 0; j0 < n; j0 += DLC_FEATURE_BLOCK) {
        const size_t nb = dlc_block_size(j0, n);
        const dlc_real *mu = mean + j0;
        dlc_real sd[DLC_FEATURE_BLOCK], sum[DLC_FEATURE_BLOCK];
        dlc_block_sd(nb, var + j0, eps, sd);
        for (size_t j = 0; j < nb; j++) {
            sum[j] = 0;
        }
        for (size_t i = 0; i < rows; i++) {
            const dlc_real *dyi = dy + i * n + j0, *xi = x + i * n + j0;
            for (size_t j = 0; j < nb; j++) {
                sum[j] += dyi[j] * ((xi[j] - mu[j]) / sd[j]);
            }
        }
        memcpy(dgamma + j0, sum, nb * sizeof(dlc_real));
    }
}

#endif
