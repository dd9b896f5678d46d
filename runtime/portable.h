/* dlc runtime: plain-loop kernels for small machines (the export's microcontroller and
 * generic targets).  Nothing is packed at run time and nothing sits in a scratch buffer:
 * the weights are read in place from their constant (flash) block and every loop is
 * scalar C that a compiler without vector units (or with a single FPU) turns into
 * multiply-accumulates.  The activations are the runtime's own (activations.h), one
 * function each, so an export carries only the ones its model applies. */
#ifndef DLC_PORTABLE_H
#define DLC_PORTABLE_H

#include "activations.h"
#include "dlc_runtime.h"

/* The weight matrices of the plain dense kernel are column panels this many columns wide
 * (dlc/targets/embedded.py packs them so, and an export defines it): with 4 (the
 * microcontrollers), four outputs are summed at once, in four registers, from one read of
 * each input; with 1 (generic), W is stored transposed and each output is one dot
 * product, which optimising compilers vectorise best. */
#ifndef DLC_PLAIN_PANEL
#define DLC_PLAIN_PANEL 4
#endif

#if DLC_PLAIN_PANEL == 1
/* y = x W + b: x is (rows, n_in), W (n_in, n_out) stored transposed (n_out, n_in), b is
 * (n_out), y is (rows, n_out).  Each output is summed over k in order, from 0, then the
 * bias added. */
static inline void dlc_plain_dense(size_t rows, size_t n_in, size_t n_out, const dlc_real *x,
                                   const dlc_real *W, const dlc_real *b, dlc_real *y)
{
    for (size_t i = 0; i < rows; i++, x += n_in, y += n_out) {
        for (size_t j = 0; j < n_out; j++) {
            const dlc_real *w = W + j * n_in;
            dlc_real s = 0;
            for (size_t k = 0; k < n_in; k++) {
                s += x[k] * w[k];
            }
            y[j] = s + b[j];
        }
    }
}
#else
/* y = x W + b: x is (rows, n_in), W (n_in, n_out) packed as ceil(n_out / 4) panels of
 * n_in rows of 4 columns (zero-padded), b is (n_out), y is (rows, n_out).  Each output is
 * summed over k in order, from 0, then the bias added. */
static inline void dlc_plain_dense(size_t rows, size_t n_in, size_t n_out, const dlc_real *x,
                                   const dlc_real *W, const dlc_real *b, dlc_real *y)
{
    for (size_t i = 0; i < rows; i++, x += n_in, y += n_out) {
        const dlc_real *w = W;
        for (size_t j = 0; j < n_out; j += 4) {
            dlc_real s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (size_t k = 0; k < n_in; k++, w += 4) {
                const dlc_real v = x[k];
                s0 += v * w[0];
                s1 += v * w[1];
                s2 += v * w[2];
                s3 += v * w[3];
            }
            y[j] = s0 + b[j];
            if (j + 1 < n_out) {
                y[j + 1] = s1 + b[j + 1];
            }
            if (j + 2 < n_out) {
                y[j + 2] = s2 + b[j + 2];
            }
            if (j + 3 < n_out) {
                y[j + 3] = s3 + b[j + 3];
            }
        }
    }
}
#endif

/* y[i] = act(x[i]) for n values, one function per activation (alpha: leaky_relu's slope,
 * elu's scale; ignored by the others); x and y may be the same buffer. */
static inline void dlc_plain_relu(size_t n, dlc_real alpha, const dlc_real *x, dlc_real *y)
{
    (void)alpha;
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_relu(x[i]);
    }
}

static inline void dlc_plain_leaky_relu(size_t n, dlc_real alpha, const dlc_real *x, dlc_real *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_leaky_relu(x[i], alpha);
    }
}

static inline void dlc_plain_sigmoid(size_t n, dlc_real alpha, const dlc_real *x, dlc_real *y)
{
    (void)alpha;
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_sigmoid1(x[i]);
    }
}

static inline void dlc_plain_tanh(size_t n, dlc_real alpha, const dlc_real *x, dlc_real *y)
{
    (void)alpha;
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_tanh(x[i]);
    }
}

static inline void dlc_plain_elu(size_t n, dlc_real alpha, const dlc_real *x, dlc_real *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_elu(x[i], alpha);
    }
}

static inline void dlc_plain_silu(size_t n, dlc_real alpha, const dlc_real *x, dlc_real *y)
{
    (void)alpha;
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_silu(x[i]);
    }
}

#endif
