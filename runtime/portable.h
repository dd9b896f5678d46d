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

/* The weight matrices of the plain dense kernel are column panels 4 columns wide, the
 * last as wide as the columns left (dlc/targets/embedded.py packs them so, and an export
 * defines it; nothing is padded, the flash holds the weights alone): four outputs are
 * summed at once, in four registers (one vector on a machine that has them), from one read
 * of each input, each sum over k in order. */
#if defined(DLC_PLAIN_PANEL) && DLC_PLAIN_PANEL != 4
#error "the plain kernels read weight panels 4 columns wide"
#endif

#if !DLC_DOUBLE && defined(__GNUC__) \
    && (defined(__SSE2__) || defined(__ARM_NEON) || defined(__ALTIVEC__) || defined(__wasm_simd128__))
/* A machine with vector registers sums a group of up to DLC_PLAIN_GROUP panels at once, one
 * vector of 4 sums per panel: independent chains enough to keep its adders busy (one
 * panel alone waits on each add), each sum still over k in order. */
#define DLC_PLAIN_GROUP 8
typedef float dlc_quad __attribute__((vector_size(16)));
#define DLC_PLAIN_UNROLL _Pragma("GCC unroll 8")

#if defined(__AVX__) && (defined(__FAST_MATH__) || defined(__ASSOCIATIVE_MATH__))
/* Sums that may be reordered (-ffast-math) run on twice the lanes: one 8-lane load holds
 * rows k and k + 1 of a panel, summed apart, the halves added at the end. */
#define DLC_PLAIN_PAIRS 1
typedef float dlc_oct __attribute__((vector_size(32)));
#endif

/* y[0.. n_out) of one row from the g panels at W, each n_in rows of 4 columns but a
 * narrow last one (n_out % 4 columns, read into a vector with zeros after them). */
static inline __attribute__((always_inline)) void dlc_plain_panels(
    size_t g, size_t n_in, size_t n_out, const float *restrict x, const float *restrict W,
    const float *restrict b, float *restrict y)
{
    const size_t whole = n_out / 4, narrow = n_out % 4;
    const float *restrict last = W + whole * n_in * 4;
    dlc_quad s[DLC_PLAIN_GROUP] = {{0}};
    size_t k = 0;
#ifdef DLC_PLAIN_PAIRS
    dlc_oct t[DLC_PLAIN_GROUP] = {{0}};
    for (; k + 1 < n_in; k += 2) {
        const dlc_oct xk = {x[k], x[k], x[k], x[k], x[k + 1], x[k + 1], x[k + 1], x[k + 1]};
        DLC_PLAIN_UNROLL
        for (size_t p = 0; p < whole; p++) {
            dlc_oct w;
            memcpy(&w, W + (p * n_in + k) * 4, sizeof w);
            t[p] += xk * w;
        }
        if (narrow) {
            dlc_oct w = {0};
            for (size_t c = 0; c < narrow; c++) {
                w[c] = last[k * narrow + c];
                w[4 + c] = last[(k + 1) * narrow + c];
            }
            t[whole] += xk * w;
        }
    }
    DLC_PLAIN_UNROLL
    for (size_t p = 0; p < g; p++) {
        dlc_quad half[2];
        memcpy(half, &t[p], sizeof half);
        s[p] = half[0] + half[1];
    }
#endif
    for (; k < n_in; k++) {
        DLC_PLAIN_UNROLL
        for (size_t p = 0; p < whole; p++) {
            dlc_quad w;
            memcpy(&w, W + (p * n_in + k) * 4, sizeof w);
            s[p] += x[k] * w;
        }
        if (narrow) {
            dlc_quad w = {0};
            for (size_t c = 0; c < narrow; c++) {
                w[c] = last[k * narrow + c];
            }
            s[whole] += x[k] * w;
        }
    }
    DLC_PLAIN_UNROLL
    for (size_t p = 0; p < g; p++) {
        if (4 * p + 4 <= n_out) {
            dlc_quad bias;
            memcpy(&bias, b + 4 * p, sizeof bias);
            s[p] += bias;
            memcpy(y + 4 * p, &s[p], sizeof s[p]);
        } else {
            for (size_t c = 0; 4 * p + c < n_out; c++) {
                y[4 * p + c] = s[p][c] + b[4 * p + c];
            }
        }
    }
}

/* y = x W + b, W in panels of 4 columns as below, DLC_PLAIN_GROUP panels at a time. */
static inline __attribute__((always_inline)) void dlc_plain_dense(
    size_t rows, size_t n_in, size_t n_out, const float *restrict x, const float *restrict W,
    const float *restrict b, float *restrict y)
{
    const size_t group = 4 * DLC_PLAIN_GROUP, full = n_out - n_out % group;
    for (size_t i = 0; i < rows; i++, x += n_in, y += n_out) {
        for (size_t j = 0; j < full; j += group) {
            dlc_plain_panels(DLC_PLAIN_GROUP, n_in, group, x, W + j * n_in, b + j, y + j);
        }
        const size_t n = n_out - full;
        const float *w = W + full * n_in;
        switch ((n + 3) / 4) {     /* a constant g: the sums stay in registers */
        case 7: dlc_plain_panels(7, n_in, n, x, w, b + full, y + full); break;
        case 6: dlc_plain_panels(6, n_in, n, x, w, b + full, y + full); break;
        case 5: dlc_plain_panels(5, n_in, n, x, w, b + full, y + full); break;
        case 4: dlc_plain_panels(4, n_in, n, x, w, b + full, y + full); break;
        case 3: dlc_plain_panels(3, n_in, n, x, w, b + full, y + full); break;
        case 2: dlc_plain_panels(2, n_in, n, x, w, b + full, y + full); break;
        case 1: dlc_plain_panels(1, n_in, n, x, w, b + full, y + full); break;
        default: break;
        }
    }
}
#else
/* y = x W + b: x is (rows, n_in), W (n_in, n_out) packed as ceil(n_out / 4) panels of
 * n_in rows of 4 columns, the last of the n_out % 4 left when there are some; b is
 * (n_out), y is (rows, n_out).  Each output is summed over k in order, from 0, then the
 * bias added. */
static inline void dlc_plain_dense(size_t rows, size_t n_in, size_t n_out, const dlc_real *x,
                                   const dlc_real *W, const dlc_real *b, dlc_real *y)
{
    for (size_t i = 0; i < rows; i++, x += n_in, y += n_out) {
        const dlc_real *w = W;
        size_t j = 0;
        for (; j + 4 <= n_out; j += 4) {
            dlc_real s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (size_t k = 0; k < n_in; k++, w += 4) {
                const dlc_real v = x[k];
                s0 += v * w[0];
                s1 += v * w[1];
                s2 += v * w[2];
                s3 += v * w[3];
            }
            y[j] = s0 + b[j];
            y[j + 1] = s1 + b[j + 1];
            y[j + 2] = s2 + b[j + 2];
            y[j + 3] = s3 + b[j + 3];
        }
        const size_t width = n_out - j;
        for (size_t c = 0; c < width; c++) {     /* the narrow last panel, column by column */
            dlc_real s = 0;
            for (size_t k = 0; k < n_in; k++) {
                s += x[k] * w[k * width + c];
            }
            y[j + c] = s + b[j + c];
        }
    }
}
#endif

/* y[i] = act(x[i]) for n values, one function per activation (alpha: leaky_relu's slope,
 * elu's scale; ignored by the others); x and y may be the same buffer. */
static inline void dlc_plain_relu(size_t n, dlc_real alpha, const dlc_real *x, dlc_real *y)
{
    (void)alpha;
    DLC_PLAIN_ROLLED
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_relu(x[i]);
    }
}

static inline void dlc_plain_leaky_relu(size_t n, dlc_real alpha, const dlc_real *x, dlc_real *y)
{
    DLC_PLAIN_ROLLED
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_leaky_relu(x[i], alpha);
    }
}

static inline void dlc_plain_sigmoid(size_t n, dlc_real alpha, const dlc_real *x, dlc_real *y)
{
    (void)alpha;
    DLC_PLAIN_ROLLED
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_sigmoid1(x[i]);
    }
}

static inline void dlc_plain_tanh(size_t n, dlc_real alpha, const dlc_real *x, dlc_real *y)
{
    (void)alpha;
    DLC_PLAIN_ROLLED
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_tanh(x[i]);
    }
}

static inline void dlc_plain_elu(size_t n, dlc_real alpha, const dlc_real *x, dlc_real *y)
{
    DLC_PLAIN_ROLLED
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_elu(x[i], alpha);
    }
}

static inline void dlc_plain_silu(size_t n, dlc_real alpha, const dlc_real *x, dlc_real *y)
{
    (void)alpha;
    DLC_PLAIN_ROLLED
    for (size_t i = 0; i < n; i++) {
        y[i] = dlc_silu(x[i]);
    }
}

#endif
