/* dlc runtime: training kernels.  Backward kernels come in the order of the forward
 * kernels they differentiate; then losses, penalties and optimizer updates.  A batch
 * is (rows, n) row-major; parameters and their gradients are flat arrays of n values.
 * The matrix products of the backward pass call dlc_gemm from the templates. */

#if DLC_DOUBLE
#define dlc_log1p log1p
#else
#define dlc_log1p log1pf
#endif

/* Most kernels below walk a batch row by row, so that every inner loop is unit-stride
 * and vectorises; per-feature values live in blocks of at most this many features. */
#define DLC_FEATURE_BLOCK 256

/* Element-wise loops over at least this many values are split into contiguous parts,
 * one per thread of dlc_set_threads: every element is computed alike, so the results
 * are the same bits whatever the thread count. */
#define DLC_PARALLEL_ELEMENTS 65536

static inline size_t dlc_parts(size_t n)
{
    return dlc_gemm_threads > 1 && n >= DLC_PARALLEL_ELEMENTS ? (size_t)dlc_gemm_threads : 1;
}

/* C = op(A) op(B) + beta C: the matrix products of the backward pass. */
static inline void dlc_gemm(const dlc_scratch *scratch,
                            int trans_a, int trans_b, size_t M, size_t N, size_t K,
                            const dlc_real *A, size_t lda, const dlc_real *B, size_t ldb,
                            dlc_real beta, dlc_real *C, size_t ldc)
{
    const dlc_epilogue none = {NULL, DLC_ACT_NONE, 0};
    dlc_gemm_ex(scratch, trans_a, trans_b, M, N, K, A, lda, B, ldb, 0, beta, C, ldc, &none);
}

/* dx = dy * act'(z) for n values, where v is z (or any value of its sign: relu,
 * leaky_relu) or y = act(z) (sigmoid, tanh).  One loop per activation (vectorised). */
static inline void dlc_activation_grad(size_t n, int act, dlc_real alpha, const dlc_real *dy,
                                       const dlc_real *v, dlc_real *dx)
{
    switch (act) {
    case DLC_ACT_RELU:
        for (size_t i = 0; i < n; i++) {
            dx[i] = v[i] > 0 ? dy[i] : 0;
        }
        break;
    case DLC_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++) {
            dx[i] = dy[i] * (v[i] > 0 ? 1 : alpha);     /* dy * 1 is dy: vectorises */
        }
        break;
    case DLC_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) {
            dx[i] = dy[i] * (v[i] * (1 - v[i]));
        }
        break;
    case DLC_ACT_TANH:
        for (size_t i = 0; i < n; i++) {
            dx[i] = dy[i] * (1 - v[i] * v[i]);
        }
        break;
    default:
        for (size_t i = 0; i < n; i++) {
            dx[i] = dy[i];
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

/* Softmax backward: y is the softmax output (rows, n); dx = y * (dy - sum(dy * y)). */
static inline void dlc_softmax_grad(size_t rows, size_t n, const dlc_real *dy,
                                    const dlc_real *y, dlc_real *dx)
{
    for (size_t i = 0; i < rows; i++) {
        const dlc_real *dyi = dy + i * n, *yi = y + i * n;
        dlc_real dot = 0;
        for (size_t j = 0; j < n; j++) {
            dot += dyi[j] * yi[j];
        }
        for (size_t j = 0; j < n; j++) {
            dx[i * n + j] = yi[j] * (dyi[j] - dot);
        }
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

/* ---- losses: p (prediction or logits) and t (targets) are (rows, n); cost is a scalar */

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

/* ---- optimizer updates on n values; y may be the same buffer as v, s or W */

/* y = beta v + (1 - beta) g: momentum, Adam's first moment, running statistics. */
static inline void dlc_ewma(size_t n, dlc_real beta, const dlc_real *v, const dlc_real *g,
                            dlc_real *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = beta * v[i] + (1 - beta) * g[i];
    }
}

/* y = beta s + (1 - beta) g^2: RMSProp's and Adam's second moment. */
static inline void dlc_ewma_sq(size_t n, dlc_real beta, const dlc_real *s, const dlc_real *g,
                               dlc_real *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = beta * s[i] + (1 - beta) * (g[i] * g[i]);
    }
}

static inline void dlc_sgd_step(size_t n, dlc_real lr, const dlc_real *W, const dlc_real *g,
                                dlc_real *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = W[i] - lr * g[i];
    }
}

static inline void dlc_rmsprop_step(size_t n, dlc_real lr, dlc_real eps, const dlc_real *W,
                                    const dlc_real *g, const dlc_real *s, dlc_real *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = W[i] - lr * g[i] / (dlc_sqrt(s[i]) + eps);
    }
}

/* Adam with bias correction 1 - beta^t computed in double precision; eps outside the root. */
static inline void dlc_adam_step(size_t n, dlc_real lr, dlc_real t, double beta1, double beta2,
                                 dlc_real eps, const dlc_real *W, const dlc_real *m,
                                 const dlc_real *s, dlc_real *y)
{
    const dlc_real c1 = (dlc_real)(1.0 - pow(beta1, (double)t));
    const dlc_real c2 = (dlc_real)(1.0 - pow(beta2, (double)t));
    for (size_t i = 0; i < n; i++) {
        y[i] = W[i] - lr * (m[i] / c1) / (dlc_sqrt(s[i] / c2) + eps);
    }
}

/* An optimizer's whole update of one parameter in one pass over W, its moments and the
 * gradient g, all in place, each value computed as the separate element-wise kernels
 * above (dlc_ewma, dlc_ewma_sq, then the step) compute it. */
enum { DLC_UPDATE_MOMENTUM, DLC_UPDATE_RMSPROP, DLC_UPDATE_ADAM };

typedef struct {
    int kind;
    dlc_real lr, beta_m, beta_s, eps;
    dlc_real c1, c2;          /* Adam's bias corrections 1 - beta^t */
    dlc_real *W, *m, *s;      /* m: Momentum's and Adam's first moment; s: the second */
    const dlc_real *g;
} dlc_update;

static inline void dlc_update_part(const dlc_update *u, size_t begin, size_t end)
{
    dlc_real *W = u->W, *m = u->m, *s = u->s;
    const dlc_real *g = u->g;
    const dlc_real lr = u->lr, beta_m = u->beta_m, beta_s = u->beta_s, eps = u->eps;
    switch (u->kind) {
    case DLC_UPDATE_MOMENTUM:
        for (size_t i = begin; i < end; i++) {
            m[i] = beta_m * m[i] + (1 - beta_m) * g[i];
            W[i] = W[i] - lr * m[i];
        }
        break;
    case DLC_UPDATE_RMSPROP:
        for (size_t i = begin; i < end; i++) {
            s[i] = beta_s * s[i] + (1 - beta_s) * (g[i] * g[i]);
            W[i] = W[i] - lr * g[i] / (dlc_sqrt(s[i]) + eps);
        }
        break;
    default:
        for (size_t i = begin; i < end; i++) {
            const dlc_real mi = beta_m * m[i] + (1 - beta_m) * g[i];
            const dlc_real si = beta_s * s[i] + (1 - beta_s) * (g[i] * g[i]);
            m[i] = mi;
            s[i] = si;
            W[i] = W[i] - lr * (mi / u->c1) / (dlc_sqrt(si / u->c2) + eps);
        }
    }
}

static inline void dlc_update_run(const dlc_update *u, size_t n)
{
    const size_t parts = dlc_parts(n);
    if (parts == 1) {
        dlc_update_part(u, 0, n);
        return;
    }
#ifdef _OPENMP
    #pragma omp parallel for schedule(static) num_threads((int)parts)
#endif
    for (size_t k = 0; k < parts; k++) {
        dlc_update_part(u, n * k / parts, n * (k + 1) / parts);
    }
}

/* Momentum: v = beta v + (1 - beta) g, W -= lr v. */
static inline void dlc_momentum_update(size_t n, dlc_real lr, dlc_real beta, dlc_real *W,
                                       dlc_real *v, const dlc_real *g)
{
    const dlc_update u = {DLC_UPDATE_MOMENTUM, lr, beta, 0, 0, 1, 1, W, v, NULL, g};
    dlc_update_run(&u, n);
}

/* RMSProp: s = beta s + (1 - beta) g^2, W -= lr g / (sqrt(s) + eps). */
static inline void dlc_rmsprop_update(size_t n, dlc_real lr, dlc_real beta, dlc_real eps,
                                      dlc_real *W, dlc_real *s, const dlc_real *g)
{
    const dlc_update u = {DLC_UPDATE_RMSPROP, lr, 0, beta, eps, 1, 1, W, NULL, s, g};
    dlc_update_run(&u, n);
}

/* Adam, its bias corrections computed in double precision as dlc_adam_step does. */
static inline void dlc_adam_update(size_t n, dlc_real lr, dlc_real t, dlc_real beta_m,
                                   dlc_real beta_s, double beta1, double beta2, dlc_real eps,
                                   dlc_real *W, dlc_real *m, dlc_real *s, const dlc_real *g)
{
    const dlc_update u = {DLC_UPDATE_ADAM, lr, beta_m, beta_s, eps,
                          (dlc_real)(1.0 - pow(beta1, (double)t)),
                          (dlc_real)(1.0 - pow(beta2, (double)t)), W, m, s, g};
    dlc_update_run(&u, n);
}
