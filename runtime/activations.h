/* dlc runtime: the activations, each forward beside its gradient.  Their names, codes
 * and NumPy references are the table ACTIVATIONS in dlc/ops.py (a test checks that the
 * enum below agrees with it).  On NaN and inf they do what NumPy's do: a NaN stays NaN,
 * +-inf go to their limits, under any compiler flags (selects are made on the bits). */
#ifndef DLC_ACTIVATIONS_H
#define DLC_ACTIVATIONS_H

#include "dlc_runtime.h"

#if DLC_DOUBLE
#define dlc_expm1 expm1
#else
#define dlc_expm1 expm1f
#endif

/* Activations that a dense layer can apply in its epilogue (softmax over each row). */
enum {
    DLC_ACT_NONE = 0,
    DLC_ACT_RELU = 1,
    DLC_ACT_LEAKY_RELU = 2,
    DLC_ACT_SIGMOID = 3,
    DLC_ACT_TANH = 4,
    DLC_ACT_SOFTMAX = 5,
    DLC_ACT_ELU = 6,
    DLC_ACT_SILU = 7
};

/* relu(z) = max(z, 0), NaN kept: the bits of z, cleared when the sign is set and z is
 * no NaN. */
static inline dlc_real dlc_relu(dlc_real z)
{
    const dlc_real_bits b = dlc_bits(z), magnitude = b & DLC_MAGNITUDE_BITS;
    return dlc_from_bits(b & dlc_mask_if((b == magnitude) | (magnitude > DLC_INF_BITS)));
}

/* z if its sign is clear, else alpha z (NaN stays NaN either way). */
static inline dlc_real dlc_leaky_relu(dlc_real z, dlc_real alpha)
{
    const dlc_real_bits b = dlc_bits(z), negative = dlc_mask_if(b != (b & DLC_MAGNITUDE_BITS));
    return dlc_from_bits((b & ~negative) | (dlc_bits(alpha * z) & negative));
}

/* Sigmoid without overflow: exp() only ever sees a non-positive argument.  NaN gives
 * NaN (the second branch), +-inf 1 and 0. */
static inline dlc_real dlc_sigmoid1(dlc_real z)
{
    if (z >= 0) {
        return 1 / (1 + dlc_exp(-z));
    }
    dlc_real e = dlc_exp(z);
    return e / (1 + e);
}

/* z where its sign is clear or z is NaN, else alpha (exp(z) - 1): -inf gives -alpha. */
static inline dlc_real dlc_elu(dlc_real z, dlc_real alpha)
{
    const dlc_real_bits b = dlc_bits(z), magnitude = b & DLC_MAGNITUDE_BITS;
    const dlc_real_bits keep = dlc_mask_if((b == magnitude) | (magnitude > DLC_INF_BITS));
    return dlc_from_bits((b & keep) | (dlc_bits(alpha * dlc_expm1(z)) & ~keep));
}

/* z sigmoid(z), and 0 where the sigmoid is 0 (z = -inf, or so negative that it
 * underflows): the limit, not the NaN of -inf * 0. */
static inline dlc_real dlc_silu(dlc_real z)
{
    const dlc_real s = dlc_sigmoid1(z);
    return dlc_from_bits(dlc_bits(z * s) & dlc_mask_if(dlc_bits(s) != 0));
}

static inline dlc_real dlc_activate1(int act, dlc_real alpha, dlc_real z)
{
    switch (act) {
    case DLC_ACT_RELU:
        return dlc_relu(z);
    case DLC_ACT_LEAKY_RELU:
        return dlc_leaky_relu(z, alpha);
    case DLC_ACT_SIGMOID:
        return dlc_sigmoid1(z);
    case DLC_ACT_TANH:
        return dlc_tanh(z);
    case DLC_ACT_ELU:
        return dlc_elu(z, alpha);
    case DLC_ACT_SILU:
        return dlc_silu(z);
    default:
        return z;
    }
}

/* y[i] = act(x[i]) for n values; x and y may be the same buffer. */
static inline void dlc_activation(size_t n, int act, dlc_real alpha,
                                  const dlc_real *x, dlc_real *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_activate1(act, alpha, x[i]);
    }
}

/* dx = dy * act'(z) for n values, where v is z (relu and leaky_relu: or any value of its
 * sign; silu) or y = act(z) (sigmoid, tanh, elu).  One loop per activation (vectorised
 * where it can be). */
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
    case DLC_ACT_ELU:      /* alpha exp(z) = y + alpha where z <= 0 */
        for (size_t i = 0; i < n; i++) {
            dx[i] = dy[i] * (v[i] > 0 ? 1 : v[i] + alpha);
        }
        break;
    case DLC_ACT_SILU:     /* s + z s (1 - s) with s = sigmoid(z) */
        for (size_t i = 0; i < n; i++) {
            const dlc_real s = dlc_sigmoid1(v[i]);
            dx[i] = dy[i] * (s * (1 + v[i] * (1 - s)));
        }
        break;
    default:
        for (size_t i = 0; i < n; i++) {
            dx[i] = dy[i];
        }
    }
}

#endif
