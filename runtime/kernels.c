/* dlc runtime: forward kernels.  All matrices are row-major; a batch of
 * `rows` examples is (rows, n).  Kernels never write to their inputs. */

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

#if DLC_DOUBLE
#define dlc_exp_nonpositive exp
#else
/* expf for x <= 0 (and NaN, which it returns) in plain arithmetic that compilers
 * vectorise (libm's expf is a call per value): x = n ln2 + r with n = round(x / ln2),
 * exp(r) by Cephes' polynomial, 2^n put in the exponent bits.  Below ln(FLT_MIN), where
 * expf turns denormal, and at -inf it returns 0.  Written so that nothing -ffast-math may
 * do decides the result: n is rounded by a float -> int conversion (the old rounding,
 * adding and subtracting 1.5 * 2^23, is folded away by -fassociative-math); ln2 is split
 * so that r = x - n C1 is exact (C1 has 17 bits, n 7) and the rest, -n C2, is a factor
 * 1 + l, not a third term of r that reassociation could add to x first; the range and
 * NaN tests are on the bits.  Within 1.3 ulp of exp over [ln FLT_MIN, 0]; 2.3 ulp where
 * -ffast-math reorders the last sum (tests/test_fast_math.py). */
#define DLC_EXP_LOW_BITS 0xc2aeac50u           /* -87.33654f, ln(FLT_MIN) */
static inline float dlc_exp_nonpositive(float x)
{
    const uint32_t u = dlc_bits(x);
    const uint32_t nan = dlc_mask_if((u & DLC_MAGNITUDE_BITS) > DLC_INF_BITS);
    const uint32_t below = dlc_mask_if(u > DLC_EXP_LOW_BITS) | nan;   /* -0 is 0x80000000 */
    x = dlc_from_bits((u & ~below) | (DLC_EXP_LOW_BITS & below));
    const int32_t n = (int32_t)(x * 1.44269504088896341f - 0.5f);   /* rounds: x <= 0 */
    const float nf = (float)n;
    const float r = x - nf * 0.693145751953125f;
    const float l = nf * -1.42860682030941723e-6f;                 /* |l| < 2e-4 */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float q = p * r * r + r;                                /* exp(r) - 1 */
    const float e = (1.0f + (q + l * (1.0f + q))) * dlc_from_bits((uint32_t)(n + 127) << 23);
    return dlc_from_bits((dlc_bits(e) & ~below) | (u & nan));
}
#endif

/* Whether softmax is NaN over the row x[0..n), as NumPy's exp(x - max) / sum makes it: the row holds a NaN or +inf, or is all -inf.  0 or all
 * ones; on the bits, which -ffinite-math-only leaves alone. */
static inline dlc_real_bits dlc_softmax_undefined(size_t n, const dlc_real *x)
{
    int some_nan_or_inf = 0, all_minus_inf = 1;
    for (size_t j = 0; j < n; j++) {
        const dlc_real_bits b = dlc_bits(x[j]), magnitude = b & DLC_MAGNITUDE_BITS;
        const int inf = magnitude == DLC_INF_BITS;       /* & and |: no branches */
        some_nan_or_inf |= (magnitude > DLC_INF_BITS) | (inf & (b == magnitude));
        all_minus_inf &= inf & (b != magnitude);
    }
    return dlc_mask_if(some_nan_or_inf | all_minus_inf);
}

/* x - max, or NaN (as bits: fast-math may fold 0 / 0) where `undefined` is all ones. */
static inline dlc_real dlc_shifted(dlc_real x, dlc_real max, dlc_real_bits undefined)
{
    return dlc_from_bits((dlc_bits(x - max) & ~undefined) | (DLC_NAN_BITS & undefined));
}

/* Softmax over each row of x (rows, n), one row at a time: y = x - row max, y = exp(y),
 * y /= row sum.  The exp runs once over the whole block, where it vectorises.  x and y
 * may be the same buffer.  A row dlc_softmax_undefined says is NaN is shifted to NaN,
 * which the exp, the sum and the divide carry through. */
static inline void dlc_softmax_by_row(size_t rows, size_t n, const dlc_real *x, dlc_real *y)
{
    for (size_t i = 0; i < rows; i++) {
        const dlc_real *xi = x + i * n;
        dlc_real *yi = y + i * n;
        dlc_real max = xi[0];
        for (size_t j = 1; j < n; j++) {
            max = xi[j] > max ? xi[j] : max;
        }
        const dlc_real_bits undefined = dlc_softmax_undefined(n, xi);
        for (size_t j = 0; j < n; j++) {
            yi[j] = dlc_shifted(xi[j], max, undefined);
        }
    }
    for (size_t i = 0; i < rows * n; i++) {
        y[i] = dlc_exp_nonpositive(y[i]);
    }
    for (size_t i = 0; i < rows; i++) {
        dlc_real *yi = y + i * n;
        dlc_real sum = 0;
        for (size_t j = 0; j < n; j++) {
            sum += yi[j];
        }
        for (size_t j = 0; j < n; j++) {
            yi[j] /= sum;
        }
    }
}

#ifdef DLC_TURN8
/* Rows of 10 classes leave vectors mostly empty and put the max and sum in dependent
 * chains.  With 8-float vectors, softmax instead turns groups of 8 rows on their side:
 * value j of the group's rows becomes one vector t[j], lane r from row r, so the max,
 * sum and division run across 8 rows at once.  Same operations in the same order as
 * dlc_softmax_by_row: the results are identical. */
#define DLC_SOFTMAX_LANES_MAX_N 64     /* longer rows fill vectors by themselves */

/* t[j][r] = x[r * ld + j] for j < n and the 8 rows at x: whole 8 x 8 blocks by
 * shuffles, the columns left over one value at a time.  dlc_from_lanes is the inverse
 * (for rows of n values). */
static inline void dlc_to_lanes(size_t n, const dlc_real *x, size_t ld, dlc_real (*t)[8])
{
    size_t c = 0;
    for (; c + 8 <= n; c += 8) {
        dlc_turn8(x + c, ld, t[c], 8);
    }
    for (size_t j = c; j < n; j++) {
        for (size_t r = 0; r < 8; r++) {
            t[j][r] = x[r * ld + j];
        }
    }
}

static inline void dlc_from_lanes(size_t n, dlc_real (*t)[8], dlc_real *y)
{
    size_t c = 0;
    for (; c + 8 <= n; c += 8) {
        dlc_turn8(t[c], 8, y + c, n);
    }
    for (size_t j = c; j < n; j++) {
        for (size_t r = 0; r < 8; r++) {
            y[r * n + j] = t[j][r];
        }
    }
}

/* Stores the group's t[j] - row max, still on its side, at g (8 n values); NaN in the
 * lanes of rows that dlc_softmax_undefined says are NaN (the same tests, lane by lane). */
static inline void dlc_store_shifted(size_t n, dlc_real (*t)[8], dlc_real *g)
{
    dlc_vec max = dlc_load(t[0]);
    dlc_mask some_nan_or_inf = {0}, all_minus_inf = ~some_nan_or_inf;
    for (size_t j = 0; j < n; j++) {
        const dlc_vec v = dlc_load(t[j]);
        const dlc_mask above = v > max, bits = (dlc_mask)v;
        const dlc_mask magnitude = bits & DLC_MAGNITUDE_BITS, inf = magnitude == DLC_INF_BITS;
        max = (dlc_vec)((above & bits) | (~above & (dlc_mask)max));
        some_nan_or_inf |= (magnitude > DLC_INF_BITS) | (inf & (bits >= 0));
        all_minus_inf &= inf & (bits < 0);
    }
    const dlc_mask undefined = some_nan_or_inf | all_minus_inf;
    for (size_t j = 0; j < n; j++) {
        const dlc_mask shifted = (dlc_mask)(dlc_load(t[j]) - max);
        dlc_store(g + j * 8, (dlc_vec)((shifted & ~undefined) | (DLC_NAN_BITS & undefined)));
    }
}

/* Finishes the softmax of the first `whole` rows of y, each group of 8 stored shifted
 * and on its side in its own place: the exp over all of them at once (where it
 * vectorises best), then each group divided by its sums and turned back. */
static inline void dlc_finish_turned(size_t whole, size_t n, dlc_real *y)
{
    dlc_real t[DLC_SOFTMAX_LANES_MAX_N][8] __attribute__((aligned(32)));
    for (size_t i = 0; i < whole * n; i++) {
        y[i] = dlc_exp_nonpositive(y[i]);
    }
    for (size_t i = 0; i < whole; i += 8) {
        dlc_real *g = y + i * n;
        dlc_vec sum = {0};
        for (size_t j = 0; j < n; j++) {
            sum += dlc_load(g + j * 8);
        }
        for (size_t j = 0; j < n; j++) {
            dlc_store(t[j], dlc_load(g + j * 8) / sum);
        }
        dlc_from_lanes(n, t, g);
    }
}

static inline void dlc_softmax(size_t rows, size_t n, const dlc_real *x, dlc_real *y)
{
    const size_t whole = n <= DLC_SOFTMAX_LANES_MAX_N ? rows / 8 * 8 : 0;
    dlc_real t[DLC_SOFTMAX_LANES_MAX_N][8] __attribute__((aligned(32)));
    for (size_t i = 0; i < whole; i += 8) {
        dlc_to_lanes(n, x + i * n, n, t);
        dlc_store_shifted(n, t, y + i * n);
    }
    dlc_finish_turned(whole, n, y);
    dlc_softmax_by_row(rows - whole, n, x + whole * n, y + whole * n);
}

/* t[j] = x W[:, j] + b[j], j < n_out <= 12, for the 8 rows at x, on their side (lane r
 * from row r): a micro-kernel with rows in the lanes and 12 columns of sums in named
 * registers, reading x turned 64 columns at a time and W's first panel in place (12
 * columns of it; panel >= 12, zero-padded).  A classifier of 10 classes fills 10 of the
 * matrix multiply's 16 tile columns; here 10 of 12. */
#define DLC_TURNED_COLUMNS 12
#define DLC_TURNED_DEPTH 64
#define DLC_TURNED_FMA(j) s##j += a * w[j]
static inline void dlc_dense_turned(size_t n_in, size_t n_out, const dlc_real *x,
                                    const dlc_real *W, size_t panel, const dlc_real *b,
                                    dlc_real (*t)[8])
{
    dlc_vec s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, s4 = {0}, s5 = {0};
    dlc_vec s6 = {0}, s7 = {0}, s8 = {0}, s9 = {0}, s10 = {0}, s11 = {0};
    dlc_real xt[DLC_TURNED_DEPTH][8] __attribute__((aligned(32)));
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

#else
static inline void dlc_softmax(size_t rows, size_t n, const dlc_real *x, dlc_real *y)
{
    dlc_softmax_by_row(rows, n, x, y);
}
#endif

/* y = softmax(x W + b): a dense layer with its softmax fused.  With 8-float vectors, the
 * logits of each 8 rows are computed on their side and kept there for the softmax; other
 * shapes, and leftover rows, take the matrix multiply, then the softmax. */
static inline void dlc_dense_softmax(const dlc_scratch *scratch,
                                     size_t rows, size_t n_in, size_t n_out, const dlc_real *x,
                                     const dlc_real *W, size_t panel, const dlc_real *b,
                                     dlc_real *y)
{
    size_t whole = 0;
#ifdef DLC_TURN8
    if (n_out <= DLC_TURNED_COLUMNS && panel >= DLC_TURNED_COLUMNS) {
        whole = rows / 8 * 8;
    }
    dlc_real t[DLC_TURNED_COLUMNS][8] __attribute__((aligned(32)));
    for (size_t i = 0; i < whole; i += 8) {
        dlc_dense_turned(n_in, n_out, x + i * n_in, W, panel, b, t);
        dlc_store_shifted(n_out, t, y + i * n_out);
    }
    dlc_finish_turned(whole, n_out, y);
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
 * multiply's epilogue; sigmoid and tanh, which cost more than the pass over y, follow it;
 * softmax has a kernel of its own. */
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
