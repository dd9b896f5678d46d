/* dlc runtime: the integer kernels of quantized models.  A tensor q of int8 (or int16)
 * values stands for scale * (q - zero); a dense layer multiplies int8 activations by int8
 * weights (symmetric, per output channel), sums in int32, adds an int32 bias and
 * requantizes by a fixed-point multiplier and shift.  Every result is exact and equals,
 * bit for bit, what dlc's interpreter computes (dlc/ops.py, the quantized ops). */
#ifndef DLC_QUANT_H
#define DLC_QUANT_H

#include "dlc_runtime.h"

/* The requantization floors with a right shift of a negative value: implementation-defined
 * in C99 and arithmetic in gcc, clang and the embedded compilers; refuse any other. */
#if (-1 >> 1) != -1
#error "dlc's quantized kernels need an arithmetic right shift of negative integers"
#endif

#if DLC_DOUBLE
#define dlc_rint rint
#else
#define dlc_rint rintf
#endif

/* clamp(rint(x * inv_scale), lo - zero, hi - zero) + zero for the range [lo, hi] of the
 * integer type: rint rounds half to even (the default rounding mode, as ONNX's
 * QuantizeLinear), and clamping the rounded float first keeps every integer in range.
 * The clamp compares (fmin and fmax are library calls unless -ffast-math): x * inv_scale
 * is never NaN, as dlc_predict refuses non-finite inputs and every op keeps finite values
 * finite. */
static inline int32_t dlc_quantize1(dlc_real x, dlc_real inv_scale, int32_t zero, int32_t lo,
                                    int32_t hi)
{
    const dlc_real t = dlc_rint(x * inv_scale);
    const dlc_real low = (dlc_real)(lo - zero), high = (dlc_real)(hi - zero);
    return (int32_t)(t < low ? low : t > high ? high : t) + zero;
}

/* x (n values) quantized to int8. */
static inline void dlc_quantize_i8(size_t n, const dlc_real *x, dlc_real inv_scale, int32_t zero,
                                   int8_t *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = (int8_t)dlc_quantize1(x[i], inv_scale, zero, INT8_MIN, INT8_MAX);
    }
}

/* x (n values) quantized to int16. */
static inline void dlc_quantize_i16(size_t n, const dlc_real *x, dlc_real inv_scale, int32_t zero,
                                    int16_t *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = (int16_t)dlc_quantize1(x[i], inv_scale, zero, INT16_MIN, INT16_MAX);
    }
}

/* scale * (q - zero) for n int8 values: the difference exact, the product rounded once. */
static inline void dlc_dequantize_i8(size_t n, const int8_t *q, int32_t zero, dlc_real scale,
                                     dlc_real *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = (dlc_real)((int32_t)q[i] - zero) * scale;
    }
}

/* scale * (q - zero) for n int16 values. */
static inline void dlc_dequantize_i16(size_t n, const int16_t *q, int32_t zero, dlc_real scale,
                                      dlc_real *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = (dlc_real)((int32_t)q[i] - zero) * scale;
    }
}

/* round(acc * multiplier / 2^(31 + shift)) rounding half up, in one step (no double
 * rounding): acc saturated to int32 times the int32 multiplier is exact in int64, and
 * 31 + shift lies in [1, 62]. */
static inline int64_t dlc_requantize(int64_t acc, int32_t multiplier, int32_t shift)
{
    const int s = 31 + shift;
    acc = acc < INT32_MIN ? INT32_MIN : acc > INT32_MAX ? INT32_MAX : acc;
    return (acc * multiplier + ((int64_t)1 << (s - 1))) >> s;
}

/* The output value of a quantized dense layer from its accumulator: requantized to the
 * output scale, shifted by its zero point and clamped to [lo, hi] (a fused ReLU's range,
 * or the type's). */
static inline int32_t dlc_qdense_out(int64_t acc, int32_t multiplier, int32_t shift,
                                     int32_t y_zero, int32_t lo, int32_t hi)
{
    const int64_t v = dlc_requantize(acc, multiplier, shift) + y_zero;
    return (int32_t)(v < lo ? lo : v > hi ? hi : v);
}

/* The packed weights of a quantized dense layer (dlc/layout.py, pack_int8_pairs): panels of
 * 8 output channels; in a panel, for each pair of inputs (k, k + 1), the 8 channels' two
 * weights side by side, 16 bytes; K rounded up to even and N to a multiple of 8 with
 * zeros.  The index of W[k][n] for pairs = K rounded up / 2: */
static inline size_t dlc_qpacked_index(size_t pairs, size_t k, size_t n)
{
    return ((n / 8) * pairs + k / 2) * 16 + (n % 8) * 2 + k % 2;
}

#ifdef __AVX2__
#include <immintrin.h>

/* (x[k] - x_zero, x[k + 1] - x_zero) as two int16 in one 32-bit word, low first, the
 * second 0 past the row's K values: the operand a multiply-add pairs with two weights. */
static inline int32_t dlc_qpair(const int8_t *x, size_t k, size_t K, int32_t x_zero)
{
    const uint32_t lo = (uint16_t)(int16_t)(x[k] - x_zero);
    const uint32_t hi = k + 1 < K ? (uint16_t)(int16_t)(x[k + 1] - x_zero) : 0u;
    return (int32_t)(lo | hi << 16);
}

/* The 16 weights of pair j of a panel (8 channels x 2 inputs), widened to int16. */
static inline __m256i dlc_qweights(const int8_t *panel, size_t j)
{
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(panel + 16 * j)));
}

/* Rows r0..r0+3 (rows past the batch repeat the last) by channels n0..n0+15: for each pair
 * of inputs, the pair of each row broadcast, times 16 channels' weight pairs widened to
 * int16, summed in int32 by vpmaddwd (exact: each product fits int16 x int16, each pair
 * sum int32).  acc receives the 4 x 16 sums. */
static inline void dlc_qdense_tile_avx2(const int8_t *const xs[4], size_t K, int32_t x_zero,
                                        const int8_t *panel0, const int8_t *panel1,
                                        int32_t acc[4][16])
{
    __m256i a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00;
    __m256i a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    const __m256i zero = _mm256_set1_epi16((int16_t)x_zero);
    size_t k = 0, j = 0;
    /* 16 inputs at a time: each row's x - x_zero widened to int16 in one register, whose
     * 8 pairs are broadcast in turn by a lane permutation */
    for (; k + 16 <= K; k += 16, j += 8) {
        __m256i d[4];
        for (size_t i = 0; i < 4; i++) {
            d[i] = _mm256_sub_epi16(_mm256_cvtepi8_epi16(
                _mm_loadu_si128((const __m128i *)(const void *)(xs[i] + k))), zero);
        }
        for (int p = 0; p < 8; p++) {
            const __m256i lane = _mm256_set1_epi32(p);
            const __m256i w0 = dlc_qweights(panel0, j + (size_t)p);
            const __m256i w1 = dlc_qweights(panel1, j + (size_t)p);
            __m256i x = _mm256_permutevar8x32_epi32(d[0], lane);
            a00 = _mm256_add_epi32(a00, _mm256_madd_epi16(x, w0));
            a01 = _mm256_add_epi32(a01, _mm256_madd_epi16(x, w1));
            x = _mm256_permutevar8x32_epi32(d[1], lane);
            a10 = _mm256_add_epi32(a10, _mm256_madd_epi16(x, w0));
            a11 = _mm256_add_epi32(a11, _mm256_madd_epi16(x, w1));
            x = _mm256_permutevar8x32_epi32(d[2], lane);
            a20 = _mm256_add_epi32(a20, _mm256_madd_epi16(x, w0));
            a21 = _mm256_add_epi32(a21, _mm256_madd_epi16(x, w1));
            x = _mm256_permutevar8x32_epi32(d[3], lane);
            a30 = _mm256_add_epi32(a30, _mm256_madd_epi16(x, w0));
            a31 = _mm256_add_epi32(a31, _mm256_madd_epi16(x, w1));
        }
    }
    for (; k < K; k += 2, j++) {
        const __m256i w0 = dlc_qweights(panel0, j);
        const __m256i w1 = dlc_qweights(panel1, j);
        __m256i x = _mm256_set1_epi32(dlc_qpair(xs[0], k, K, x_zero));
        a00 = _mm256_add_epi32(a00, _mm256_madd_epi16(x, w0));
        a01 = _mm256_add_epi32(a01, _mm256_madd_epi16(x, w1));
        x = _mm256_set1_epi32(dlc_qpair(xs[1], k, K, x_zero));
        a10 = _mm256_add_epi32(a10, _mm256_madd_epi16(x, w0));
        a11 = _mm256_add_epi32(a11, _mm256_madd_epi16(x, w1));
        x = _mm256_set1_epi32(dlc_qpair(xs[2], k, K, x_zero));
        a20 = _mm256_add_epi32(a20, _mm256_madd_epi16(x, w0));
        a21 = _mm256_add_epi32(a21, _mm256_madd_epi16(x, w1));
        x = _mm256_set1_epi32(dlc_qpair(xs[3], k, K, x_zero));
        a30 = _mm256_add_epi32(a30, _mm256_madd_epi16(x, w0));
        a31 = _mm256_add_epi32(a31, _mm256_madd_epi16(x, w1));
    }
    _mm256_storeu_si256((__m256i *)(void *)acc[0], a00);
    _mm256_storeu_si256((__m256i *)(void *)(acc[0] + 8), a01);
    _mm256_storeu_si256((__m256i *)(void *)acc[1], a10);
    _mm256_storeu_si256((__m256i *)(void *)(acc[1] + 8), a11);
    _mm256_storeu_si256((__m256i *)(void *)acc[2], a20);
    _mm256_storeu_si256((__m256i *)(void *)(acc[2] + 8), a21);
    _mm256_storeu_si256((__m256i *)(void *)acc[3], a30);
    _mm256_storeu_si256((__m256i *)(void *)(acc[3] + 8), a31);
}

/* One row by 16 channels (a batch's last rows, and batch 1): two pairs of inputs a step,
 * into separate sums, so that the multiply-adds do not wait on one another. */
static inline void dlc_qdense_row_avx2(const int8_t *x, size_t K, int32_t x_zero,
                                       const int8_t *panel0, const int8_t *panel1,
                                       int32_t acc[16])
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, b0 = a0, b1 = a0;
    size_t k = 0, j = 0;
    for (; k + 2 < K; k += 4, j += 2) {
        const __m256i x0 = _mm256_set1_epi32(dlc_qpair(x, k, K, x_zero));
        const __m256i x1 = _mm256_set1_epi32(dlc_qpair(x, k + 2, K, x_zero));
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(x0, dlc_qweights(panel0, j)));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(x0, dlc_qweights(panel1, j)));
        b0 = _mm256_add_epi32(b0, _mm256_madd_epi16(x1, dlc_qweights(panel0, j + 1)));
        b1 = _mm256_add_epi32(b1, _mm256_madd_epi16(x1, dlc_qweights(panel1, j + 1)));
    }
    for (; k < K; k += 2, j++) {
        const __m256i x0 = _mm256_set1_epi32(dlc_qpair(x, k, K, x_zero));
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(x0, dlc_qweights(panel0, j)));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(x0, dlc_qweights(panel1, j)));
    }
    _mm256_storeu_si256((__m256i *)(void *)acc, _mm256_add_epi32(a0, b0));
    _mm256_storeu_si256((__m256i *)(void *)(acc + 8), _mm256_add_epi32(a1, b1));
}
#endif

/* The sums of rows r0..r0+3 (rows past the batch repeat the last) by channels n0..n0+15,
 * from the packed weights P: the AVX2 tile where the compiler targets it, else the same
 * integers in plain C (an exact sum in any order). */
static inline void dlc_qdense_tile(const int8_t *x, size_t rows, size_t r0, size_t K,
                                   int32_t x_zero, const int8_t *P, size_t N, size_t n0,
                                   int32_t acc[4][16])
{
    const size_t pairs = (K + 1) / 2, padded_n = (N + 7) / 8 * 8;
    const int8_t *xs[4];
    for (size_t i = 0; i < 4; i++) {
        xs[i] = x + (r0 + i < rows ? r0 + i : rows - 1) * K;
    }
#ifdef __AVX2__
    const int8_t *panel0 = P + dlc_qpacked_index(pairs, 0, n0);
    const int8_t *panel1 = n0 + 8 < padded_n ? P + dlc_qpacked_index(pairs, 0, n0 + 8) : panel0;
    if (rows - r0 >= 4) {
        dlc_qdense_tile_avx2(xs, K, x_zero, panel0, panel1, acc);
        return;
    }
    for (size_t i = 0; i < rows - r0; i++) {
        dlc_qdense_row_avx2(xs[i], K, x_zero, panel0, panel1, acc[i]);
    }
#else
    for (size_t i = 0; i < 4; i++) {
        for (size_t c = 0; c < 16; c++) {
            const size_t n = n0 + c < padded_n ? n0 + c : n0;
            int32_t a = 0;
            for (size_t k = 0; k < K; k++) {
                a += (int16_t)(xs[i][k] - x_zero) * (int16_t)P[dlc_qpacked_index(pairs, k, n)];
            }
            acc[i][c] = a;
        }
    }
#endif
}

/* The int8 dense layer, y (rows, N) from x (rows, K) and the packed weights P:
 *   y = clamp(requantize(sum_k (x - x_zero) W[k][n] + b[n]) + y_zero, lo, hi)
 * by tiles of 4 rows and 16 channels.  x - x_zero lies in [-255, 255] and a weight in
 * [-127, 127], so each product fits int16 and a pair's sum int32; the int32 sum cannot
 * overflow for K <= 32768 (dlc/ops.py refuses more). */
static inline void dlc_qdense_i8(size_t rows, size_t K, size_t N, const int8_t *x,
                                 int32_t x_zero, const int8_t *P, const int32_t *b,
                                 const int32_t *multiplier, const int32_t *shift,
                                 int32_t y_zero, int32_t lo, int32_t hi, int8_t *y)
{
    int32_t acc[4][16];
    for (size_t n0 = 0; n0 < N; n0 += 16) {
        const size_t width = N - n0 < 16 ? N - n0 : 16;
        for (size_t r0 = 0; r0 < rows; r0 += 4) {
            dlc_qdense_tile(x, rows, r0, K, x_zero, P, N, n0, acc);
            for (size_t i = 0; i < 4 && r0 + i < rows; i++) {
                for (size_t c = 0; c < width; c++) {
                    const size_t n = n0 + c;
                    y[(r0 + i) * N + n] = (int8_t)dlc_qdense_out(
                        (int64_t)acc[i][c] + b[n], multiplier[n], shift[n], y_zero, lo, hi);
                }
            }
        }
    }
}

/* The dense layer on int16 activations (int8 weights, packed as for dlc_qdense_i8): the
 * products (up to 65535 x 127) summed in int64. */
static inline void dlc_qdense_i16(size_t rows, size_t K, size_t N, const int16_t *x,
                                  int32_t x_zero, const int8_t *P, const int32_t *b,
                                  const int32_t *multiplier, const int32_t *shift,
                                  int32_t y_zero, int32_t lo, int32_t hi, int16_t *y)
{
    const size_t pairs = (K + 1) / 2;
    for (size_t r = 0; r < rows; r++) {
        const int16_t *xr = x + r * K;
        for (size_t n = 0; n < N; n++) {
            int64_t a = b[n];
            for (size_t k = 0; k < K; k++) {
                a += (int64_t)((int32_t)xr[k] - x_zero) * P[dlc_qpacked_index(pairs, k, n)];
            }
            y[r * N + n] = (int16_t)dlc_qdense_out(a, multiplier[n], shift[n], y_zero, lo, hi);
        }
    }
}

#endif
