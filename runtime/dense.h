/* dlc runtime: the dense layer, y = act(x W + b), its bias and activation fused.
 * Its backward is matrix products (gemm.h) and the activation's gradient. */
#ifndef DLC_DENSE_H
#define DLC_DENSE_H

#include "activations.h"
#include "dlc_runtime.h"
#include "dlc_vec.h"
#include "gemm.h"
#include "softmax.h"

#ifdef DLC_TURN
/* t[j] = x W[:, j] + b[j], j < n_out <= 12, for the DLC_VL rows at x, on their side (lane r
 * from row r): a micro-kernel with rows in the lanes and 12 columns of sums in named
 * registers, reading x turned DLC_TURNED_DEPTH columns at a time and W's first panel in place (12
 * columns of it; panel >= 12, zero-padded).  A classifier of 10 classes fills 10 of the
 * matrix multiply's 16 tile columns; here 10 of 12. */
#define DLC_TURNED_COLUMNS 12
#define DLC_TURNED_DEPTH (2048 / DLC_VEC_BYTES)   /* x turned in 2 KiB blocks */
#define DLC_TURNED_FMA(j) s##j += a * w[j]
static inline void dlc_dense_turned(size_t n_in, size_t n_out, const dlc_real *x,
                                    const dlc_real *W, size_t panel, const dlc_real *b,
                                    dlc_real (*t)[DLC_VL])
{
    dlc_vec s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, s4 = {0}, s5 = {0};
    dlc_vec s6 = {0}, s7 = {0}, s8 = {0}, s9 = {0}, s10 = {0}, s11 = {0};
    dlc_real xt[DLC_TURNED_DEPTH][DLC_VL] __attribute__((aligned(DLC_VEC_BYTES)));
    for (size_t k0 = 0; k0 < n_in; k0 += DLC_TURNED_DEPTH) {
        const size_t kc = n_in - k0 < DLC_TURNED_DEPTH ? n_in - k0 : DLC_TURNED_DEPTH;
        dlc_to_lanes(kc, x + k0, n_in, xt);
        const dlc_real *w = W + k0 * panel;
        for (size_t k = 0; k < kc; k++, w += panel) {
            const dlc_vec a = dlc_load(xt[k]);
            DLC_TURNED_FMA(0); DLC_TURNED_FMA(1); DLC_TURNED_FMA(2); DLC_TURNED_FMA(3);
            DLC_TURNED_FMA(4); DLC_TURNED_FMA(5); DLC_TURNED_FMA(6); DLC_TURNED_FMA(7);
            DLC_TURNED_FMA(8); DLC_TURNED_FMA(9); DLC_TURNED_FMA(10); DLC_TURNED_FMA(11);
        }
    }
    const dlc_vec sums[DLC_TURNED_COLUMNS] = {s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11};
    for (size_t j = 0; j < n_out; j++) {
        dlc_store(t[j], sums[j] + b[j]);
    }
}
#endif

#ifdef DLC_TURN
/* y = softmax(x W + b) for the whole DLC_VL-row blocks of x, their logits on their side
 * (see dlc_dense_softmax); returns the rows done.  Not inlined, so that its blocks are off
 * the stack by the time the leftover rows call the matrix multiply. */
static __attribute__((noinline, unused)) size_t dlc_dense_softmax_turned(
    size_t rows, size_t n_in, size_t n_out, const dlc_real *x, const dlc_real *W,
    size_t panel, const dlc_real *b, dlc_real *y)
{
    if (n_out > DLC_TURNED_COLUMNS || panel < DLC_TURNED_COLUMNS) {
        return 0;
    }
    const size_t whole = rows / DLC_VL * DLC_VL;
    dlc_real t[DLC_TURNED_COLUMNS][DLC_VL] __attribute__((aligned(DLC_VEC_BYTES)));
    for (size_t i = 0; i < whole; i += DLC_VL) {
        dlc_dense_turned(n_in, n_out, x + i * n_in, W, panel, b, t);
        dlc_store_shifted(n_out, t, y + i * n_out);
    }
    dlc_finish_turned(whole, n_out, y, t);
    return whole;
}
#endif

/* y = softmax(x W + b): a dense layer with its softmax fused.  With vectors of 8 or more
 * lanes, the logits of each DLC_VL rows are computed on their side and kept there for the
 * softmax; other shapes, and leftover rows, take the matrix multiply, then the softmax. */
static inline void dlc_dense_softmax(const dlc_scratch *scratch,
                                     size_t rows, size_t n_in, size_t n_out, const dlc_real *x,
                                     const dlc_real *W, size_t panel, const dlc_real *b,
                                     dlc_real *y)
{
    size_t whole = 0;
#ifdef DLC_TURN
    if (rows >= DLC_VL) {
        whole = dlc_dense_softmax_turned(rows, n_in, n_out, x, W, panel, b, y);
    }
#endif
    if (whole < rows) {
        dlc_real *rest = y + whole * n_out;
        dlc_gemm_bias_act(scratch, 0, 0, rows - whole, n_out, n_in, x + whole * n_in, n_in,
                          W, n_out, panel, rest, n_out, b, DLC_ACT_NONE, 0);
        dlc_softmax(rows - whole, n_out, rest, rest);
    }
}

/* Dense layer: x is (rows, n_in), W is (n_in, n_out), row-major or, with panel > 0,
 * packed by dlc as column panels (see dlc_b_column), b is (n_out), y is (rows, n_out)
 * = act(x W + b).  The bias and a piecewise linear activation run in the matrix
 * multiply's epilogue; the others (sigmoid, tanh, elu, silu), which cost more than the
 * pass over y, follow it; softmax has a kernel of its own. */
static inline void dlc_dense(const dlc_scratch *scratch,
                             size_t rows, size_t n_in, size_t n_out, const dlc_real *x,
                             const dlc_real *W, size_t panel, const dlc_real *b, dlc_real *y,
                             int act, dlc_real alpha)
{
    if (act == DLC_ACT_SOFTMAX) {
        dlc_dense_softmax(scratch, rows, n_in, n_out, x, W, panel, b, y);
        return;
    }
    const int fused = act == DLC_ACT_RELU || act == DLC_ACT_LEAKY_RELU;
    dlc_gemm_bias_act(scratch, 0, 0, rows, n_out, n_in, x, n_in, W, n_out, panel, y, n_out,
                      b, fused ? act : DLC_ACT_NONE, alpha);
    if (!fused && act != DLC_ACT_NONE) {
        dlc_activation(rows * n_out, act, alpha, y, y);
    }
}

#endif
