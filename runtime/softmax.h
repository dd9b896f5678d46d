/* dlc runtime: softmax over each row, its gradient, and the exp behind both (and behind
 * the softmax cross-entropy).  All matrices are row-major; a batch of `rows` examples
 * is (rows, n). */
#ifndef DLC_SOFTMAX_H
#define DLC_SOFTMAX_H

#include "dlc_runtime.h"
#include "dlc_vec.h"

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

/* Whether softmax is NaN over the row x[0..n), as NumPy's exp(x - max) / sum makes it:
 * the row holds a NaN or +inf, or is all -inf.  0 or all ones; on the bits, which
 * -ffinite-math-only leaves alone. */
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

/* v[c] = exp(v[c] - max) for 4 values, or NaN where `undefined` is all ones: one
 * vector's work where there are vectors, and a function of its own, so that a row calls
 * it rather than carrying a copy per value. */
static DLC_PLAIN_CALLED void dlc_plain_exp4(dlc_real *v, dlc_real max, dlc_real_bits undefined)
{
    for (int c = 0; c < 4; c++) {
        v[c] = dlc_exp_nonpositive(dlc_shifted(v[c], max, undefined));
    }
}

/* Softmax over each row of x (rows, n), one row at a time in short rolled loops (the
 * host's dlc_softmax_by_row, unrolled and vectorised, is kilobytes for a row of 10): the
 * max, the exps four at a time, their sum, the division; the same operations in the same
 * order, so the same results.  The row is NaN where it holds a NaN or its max is
 * infinite (a +inf, or every value -inf), as in dlc_softmax_undefined.  x and y are the
 * same buffer or do not overlap. */
static inline void dlc_plain_softmax(size_t rows, size_t n, const dlc_real *x, dlc_real *y)
{
    for (size_t i = 0; i < rows; i++, x += n, y += n) {
        dlc_real max = x[0];
        int nan = 0;
        DLC_PLAIN_ROLLED
        for (size_t j = 0; j < n; j++) {
            max = x[j] > max ? x[j] : max;
            nan |= (dlc_bits(x[j]) & DLC_MAGNITUDE_BITS) > DLC_INF_BITS;
        }
        const int infinite = (dlc_bits(max) & DLC_MAGNITUDE_BITS) == DLC_INF_BITS;
        const dlc_real_bits undefined = dlc_mask_if(nan | infinite);
        if (x != y) {
            memcpy(y, x, n * sizeof *y);
        }
        size_t j = 0;
        DLC_PLAIN_ROLLED
        for (; j + 4 <= n; j += 4) {
            dlc_plain_exp4(y + j, max, undefined);
        }
        if (j < n) {            /* the last 1-3 values, beside values that exp to 1 */
            dlc_real last[4] = {max, max, max, max};
            memcpy(last, y + j, (n - j) * sizeof *last);
            dlc_plain_exp4(last, max, undefined);
            memcpy(y + j, last, (n - j) * sizeof *last);
        }
        dlc_real sum = 0;
        DLC_PLAIN_ROLLED
        for (j = 0; j < n; j++) {
            sum += y[j];
        }
        DLC_PLAIN_ROLLED
        for (j = 0; j < n; j++) {
            y[j] /= sum;
        }
    }
}

#ifdef DLC_TURN
/* Rows of 10 classes leave vectors mostly empty and put the max and sum in dependent
 * chains.  With vectors of DLC_VL >= 8 lanes, softmax instead turns groups of DLC_VL
 * rows on their side: value j of the group's rows becomes one vector t[j], lane r from
 * row r, so the max, sum and division run across DLC_VL rows at once.  Same operations
 * in the same order as dlc_softmax_by_row: the results are identical. */
#define DLC_SOFTMAX_LANES_MAX_N 64     /* longer rows fill vectors by themselves */

/* t[j][r] = x[r * ld + j] for j < n and the DLC_VL rows at x: whole square blocks, then
 * blocks 8 columns wide, by shuffles, the columns left over one value at a time.
 * dlc_from_lanes is the inverse (for rows of n values). */
static inline void dlc_to_lanes(size_t n, const dlc_real *x, size_t ld, dlc_real (*t)[DLC_VL])
{
    size_t c = 0;
    for (; c + DLC_VL <= n; c += DLC_VL) {
        dlc_turn(x + c, ld, t[c], DLC_VL);
    }
    for (; c + 8 <= n; c += 8) {            /* a row of 10 classes: 8 of them by shuffles */
        for (size_t r = 0; r < DLC_VL; r += 8) {
            dlc_turn8(x + r * ld + c, ld, t[c] + r, DLC_VL);
        }
    }
    for (size_t j = c; j < n; j++) {
        for (size_t r = 0; r < DLC_VL; r++) {
            t[j][r] = x[r * ld + j];
        }
    }
}

static inline void dlc_from_lanes(size_t n, dlc_real (*t)[DLC_VL], dlc_real *y)
{
    size_t c = 0;
    for (; c + DLC_VL <= n; c += DLC_VL) {
        dlc_turn(t[c], DLC_VL, y + c, n);
    }
    for (; c + 8 <= n; c += 8) {            /* a row of 10 classes: 8 of them by shuffles */
        for (size_t r = 0; r < DLC_VL; r += 8) {
            dlc_turn8(t[c] + r, DLC_VL, y + r * n + c, n);
        }
    }
    for (size_t j = c; j < n; j++) {
        for (size_t r = 0; r < DLC_VL; r++) {
            y[r * n + j] = t[j][r];
        }
    }
}

/* Stores the group's t[j] - row max, still on its side, at g (DLC_VL n values); NaN in the
 * lanes of rows that dlc_softmax_undefined says are NaN (the same tests, lane by lane). */
static inline void dlc_store_shifted(size_t n, dlc_real (*t)[DLC_VL], dlc_real *g)
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
        dlc_store(g + j * DLC_VL, (dlc_vec)((shifted & ~undefined) | (DLC_NAN_BITS & undefined)));
    }
}

/* Finishes the softmax of the first `whole` rows of y, each group of DLC_VL stored shifted
 * and on its side in its own place: the exp over all of them at once (where it
 * vectorises best), then each group divided by its sums and turned back through t, the
 * caller's n x DLC_VL block (one per frame: at 64-byte vectors each is 4 KiB). */
static inline void dlc_finish_turned(size_t whole, size_t n, dlc_real *y, dlc_real (*t)[DLC_VL])
{
    for (size_t i = 0; i < whole * n; i++) {
        y[i] = dlc_exp_nonpositive(y[i]);
    }
    for (size_t i = 0; i < whole; i += DLC_VL) {
        dlc_real *g = y + i * n;
        dlc_vec sum = {0};
        for (size_t j = 0; j < n; j++) {
            sum += dlc_load(g + j * DLC_VL);
        }
        for (size_t j = 0; j < n; j++) {
            dlc_store(t[j], dlc_load(g + j * DLC_VL) / sum);
        }
        dlc_from_lanes(n, t, g);
    }
}

static inline void dlc_softmax(size_t rows, size_t n, const dlc_real *x, dlc_real *y)
{
    const size_t whole = n <= DLC_SOFTMAX_LANES_MAX_N ? rows / DLC_VL * DLC_VL : 0;
    dlc_real t[DLC_SOFTMAX_LANES_MAX_N][DLC_VL] __attribute__((aligned(DLC_VEC_BYTES)));
    for (size_t i = 0; i < whole; i += DLC_VL) {
        dlc_to_lanes(n, x + i * n, n, t);
        dlc_store_shifted(n, t, y + i * n);
    }
    dlc_finish_turned(whole, n, y, t);
    dlc_softmax_by_row(rows - whole, n, x + whole * n, y + whole * n);
}

#else
static inline void dlc_softmax(size_t rows, size_t n, const dlc_real *x, dlc_real *y)
{
    dlc_softmax_by_row(rows, n, x, y);
}
#endif

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

#endif
