/* dlc runtime: optimizer updates.  Each rule is defined once, on one element; the kernels
 * are loops over them: one per update op (dlc_ewma for running statistics, dlc_sgd_step
 * for plain SGD, and the steps of an update that could not be fused), and an optimizer's
 * whole update of one parameter in one pass over W, its moments and the gradient g, all in
 * place. */
#ifndef DLC_OPTIMIZERS_H
#define DLC_OPTIMIZERS_H

#include "dlc_runtime.h"
#include "threads.h"

/* beta v + (1 - beta) g: momentum, Adam's first moment, running statistics. */
static inline dlc_real dlc_ewma1(dlc_real beta, dlc_real v, dlc_real g)
{
    return beta * v + (1 - beta) * g;
}

/* beta s + (1 - beta) g^2: RMSProp's and Adam's second moment. */
static inline dlc_real dlc_ewma_sq1(dlc_real beta, dlc_real s, dlc_real g)
{
    return beta * s + (1 - beta) * (g * g);
}

/* W - lr g: SGD, and momentum's step with g its velocity. */
static inline dlc_real dlc_sgd1(dlc_real lr, dlc_real W, dlc_real g)
{
    return W - lr * g;
}

/* W - lr g / (sqrt(s) + eps). */
static inline dlc_real dlc_rmsprop1(dlc_real lr, dlc_real eps, dlc_real W, dlc_real g,
                                    dlc_real s)
{
    return W - lr * g / (dlc_sqrt(s) + eps);
}

/* W - lr (m / c1) / (sqrt(s / c2) + eps), c1 and c2 the bias corrections 1 - beta^t;
 * eps outside the root. */
static inline dlc_real dlc_adam1(dlc_real lr, dlc_real eps, dlc_real c1, dlc_real c2,
                                 dlc_real W, dlc_real m, dlc_real s)
{
    return W - lr * (m / c1) / (dlc_sqrt(s / c2) + eps);
}

/* y = beta v + (1 - beta) g for n values; y may be v. */
static inline void dlc_ewma(size_t n, dlc_real beta, const dlc_real *v, const dlc_real *g,
                            dlc_real *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_ewma1(beta, v[i], g[i]);
    }
}

/* y = W - lr g for n values; y may be W. */
static inline void dlc_sgd_step(size_t n, dlc_real lr, const dlc_real *W, const dlc_real *g,
                                dlc_real *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_sgd1(lr, W[i], g[i]);
    }
}

/* y = beta s + (1 - beta) g^2 for n values; y may be s. */
static inline void dlc_ewma_sq(size_t n, dlc_real beta, const dlc_real *s, const dlc_real *g,
                               dlc_real *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_ewma_sq1(beta, s[i], g[i]);
    }
}

/* y = W - lr g / (sqrt(s) + eps) for n values; y may be W. */
static inline void dlc_rmsprop_step(size_t n, dlc_real lr, dlc_real eps, const dlc_real *W,
                                    const dlc_real *g, const dlc_real *s, dlc_real *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_rmsprop1(lr, eps, W[i], g[i], s[i]);
    }
}

/* y = Adam's step of W from its (updated) moments m and s, the bias corrections
 * 1 - beta^t computed in double precision; y may be W. */
static inline void dlc_adam_step(size_t n, dlc_real lr, dlc_real t, double beta1, double beta2,
                                 dlc_real eps, const dlc_real *W, const dlc_real *m,
                                 const dlc_real *s, dlc_real *y)
{
    const dlc_real c1 = (dlc_real)(1.0 - pow(beta1, (double)t));
    const dlc_real c2 = (dlc_real)(1.0 - pow(beta2, (double)t));
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_adam1(lr, eps, c1, c2, W[i], m[i], s[i]);
    }
}

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
            m[i] = dlc_ewma1(beta_m, m[i], g[i]);
            W[i] = dlc_sgd1(lr, W[i], m[i]);
        }
        break;
    case DLC_UPDATE_RMSPROP:
        for (size_t i = begin; i < end; i++) {
            s[i] = dlc_ewma_sq1(beta_s, s[i], g[i]);
            W[i] = dlc_rmsprop1(lr, eps, W[i], g[i], s[i]);
        }
        break;
    default:
        for (size_t i = begin; i < end; i++) {
            const dlc_real mi = dlc_ewma1(beta_m, m[i], g[i]);
            const dlc_real si = dlc_ewma_sq1(beta_s, s[i], g[i]);
            m[i] = mi;
            s[i] = si;
            W[i] = dlc_adam1(lr, eps, u->c1, u->c2, W[i], mi, si);
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

/* Adam, its bias corrections 1 - beta^t computed in double precision. */
static inline void dlc_adam_update(size_t n, dlc_real lr, dlc_real t, dlc_real beta_m,
                                   dlc_real beta_s, double beta1, double beta2, dlc_real eps,
                                   dlc_real *W, dlc_real *m, dlc_real *s, const dlc_real *g)
{
    const dlc_update u = {DLC_UPDATE_ADAM, lr, beta_m, beta_s, eps,
                          (dlc_real)(1.0 - pow(beta1, (double)t)),
                          (dlc_real)(1.0 - pow(beta2, (double)t)), W, m, s, g};
    dlc_update_run(&u, n);
}

#endif
