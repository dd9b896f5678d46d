/* dlc runtime: the plain-loop integer kernels of quantized models on small machines (the
 * export's microcontroller and generic targets).  The weights are read in place from flash
 * in the order the loops take them (dlc/layout.py, pack_int8_quads: groups of 4 output
 * channels, 4 inputs at a time), nothing is packed at run time and nothing sits in a
 * scratch buffer.  Each sum is exact in int32, so any order gives the bits of
 * runtime/quant.h and dlc's interpreter; with the Armv7E-M DSP extension (Cortex-M4, M7)
 * the products go through dual 16-bit multiply-accumulates (SMLAD), two at a time. */
#ifndef DLC_PORTABLE_QUANT_H
#define DLC_PORTABLE_QUANT_H

#include "dlc_runtime.h"
#include "quant.h"

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>

/* Four int8 from p (any alignment: the M4 and M7 load words unaligned) as one word. */
static inline uint32_t dlc_plain_word(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* v rotated right by a byte: SXTB16 then takes bytes 1 and 3. */
static inline uint32_t dlc_plain_ror8(uint32_t v)
{
    return v >> 8 | v << 24;
}

/* acc plus the products of four inputs, given as x02 (inputs 0 and 2 widened to int16, less
 * x_zero: in [-255, 255], no wrap) and x13, by the four int8 weights of ws: SXTB16 widens
 * bytes 0 and 2 (then, rotated, 1 and 3) and SMLAD adds both products of a pair. */
static inline int32_t dlc_plain_smlad4(int16x2_t x02, int16x2_t x13, uint32_t ws, int32_t acc)
{
    acc = __smlad(x02, __sxtb16((int8x4_t)ws), acc);
    return __smlad(x13, __sxtb16((int8x4_t)dlc_plain_ror8(ws)), acc);
}
#endif

/* The output value of an int8 dense layer from its int32 sum and bias, as dlc_qdense_out
 * computes it from their int64 sum, with 32-bit arithmetic where it can on a 32-bit core:
 * the sum saturated to int32 (QADD on the DSP extension), then for 31 + shift = 32 + t,
 * t >= 1 (every multiplier below 1/2), the rounded shift of p = acc * multiplier is
 * floor((p + 2^(31 + t)) / 2^(32 + t)) = floor((floor(p / 2^32) + 2^(t - 1)) / 2^t), from
 * the high word of the one 32 x 32 -> 64 multiply alone (|p| < 2^62: no overflow). */
static inline int32_t dlc_plain_qout(int32_t sum, int32_t bias, int32_t multiplier,
                                     int32_t shift, int32_t y_zero, int32_t lo, int32_t hi)
{
#if defined(__ARM_FEATURE_DSP)
    const int32_t acc = __qadd(sum, bias);
#else
    const int64_t wide = (int64_t)sum + bias;
    const int32_t acc = wide < INT32_MIN ? INT32_MIN : wide > INT32_MAX ? INT32_MAX : (int32_t)wide;
#endif
    if (shift < 2) {
        return dlc_qdense_out(acc, multiplier, shift, y_zero, lo, hi);
    }
    const int t = shift - 1;
    const int32_t high = (int32_t)(((int64_t)acc * multiplier) >> 32);
    const int32_t v = ((high + ((int32_t)1 << (t - 1))) >> t) + y_zero;
    return v < lo ? lo : v > hi ? hi : v;
}

/* The sums acc[c] = sum_k (x[k] - x_zero) W[k][n + c] of a group of 4 output channels,
 * from its weights w (for each 4 inputs the 4 channels' 4, then for each of the K % 4 last
 * inputs the 4 channels' one); returns where the next group's weights start. */
static inline const int8_t *dlc_plain_qdot4_i8(size_t K, const int8_t *x, int32_t x_zero,
                                               const int8_t *w, int32_t acc[4])
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    size_t k = 0;
#if defined(__ARM_FEATURE_DSP)
    const int16x2_t offset = (int16x2_t)((uint32_t)(uint16_t)(int16_t)-x_zero * 0x10001u);
    for (; k + 4 <= K; k += 4, w += 16) {
        const uint32_t xs = dlc_plain_word(x + k);
        const int16x2_t x02 = __sxtab16(offset, (int8x4_t)xs);
        const int16x2_t x13 = __sxtab16(offset, (int8x4_t)dlc_plain_ror8(xs));
        a0 = dlc_plain_smlad4(x02, x13, dlc_plain_word(w), a0);
        a1 = dlc_plain_smlad4(x02, x13, dlc_plain_word(w + 4), a1);
        a2 = dlc_plain_smlad4(x02, x13, dlc_plain_word(w + 8), a2);
        a3 = dlc_plain_smlad4(x02, x13, dlc_plain_word(w + 12), a3);
    }
#else
    for (; k + 4 <= K; k += 4, w += 16) {
        for (size_t j = 0; j < 4; j++) {
            const int32_t v = (int32_t)x[k + j] - x_zero;
            a0 += v * w[j];
            a1 += v * w[4 + j];
            a2 += v * w[8 + j];
            a3 += v * w[12 + j];
        }
    }
#endif
    for (; k < K; k++, w += 4) {
        const int32_t v = (int32_t)x[k] - x_zero;
        a0 += v * w[0];
        a1 += v * w[1];
        a2 += v * w[2];
        a3 += v * w[3];
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    return w;
}

/* The int8 dense layer, y (rows, N) from x (rows, K) and the weights W as
 * dlc_plain_qdot4_i8 reads them, then the N % 4 last channels' K weights each:
 *   y = clamp(requantize(sum_k (x - x_zero) W[k][n] + b[n]) + y_zero, lo, hi)
 * Each product lies within 255 x 127, so K <= 32768 (dlc/ops.py's bound) keeps the int32
 * sums exact. */
static inline void dlc_plain_qdense_i8(size_t rows, size_t K, size_t N, const int8_t *x,
                                       int32_t x_zero, const int8_t *W, const int32_t *b,
                                       const int32_t *multiplier, const int32_t *shift,
                                       int32_t y_zero, int32_t lo, int32_t hi, int8_t *y)
{
    for (size_t r = 0; r < rows; r++, x += K, y += N) {
        const int8_t *w = W;
        int32_t acc[4];
        size_t n = 0;
        for (; n + 4 <= N; n += 4) {
            w = dlc_plain_qdot4_i8(K, x, x_zero, w, acc);
            for (size_t c = 0; c < 4; c++) {
                y[n + c] = (int8_t)dlc_plain_qout(acc[c], b[n + c], multiplier[n + c],
                                                  shift[n + c], y_zero, lo, hi);
            }
        }
        for (; n < N; n++) {
            int32_t a = 0;
            for (size_t k = 0; k < K; k++, w++) {
                a += ((int32_t)x[k] - x_zero) * *w;
            }
            y[n] = (int8_t)dlc_plain_qout(a, b[n], multiplier[n], shift[n], y_zero, lo, hi);
        }
    }
}

/* Where W[k][n] is in the weights of dlc_plain_qdense_i8 (K inputs, N channels): in group
 * n / 4, 16 bytes per 4 inputs, then 4 per input; past the groups, rows of K. */
static inline size_t dlc_plain_qindex(size_t K, size_t N, size_t k, size_t n)
{
    const size_t k4 = K / 4 * 4, n4 = N / 4 * 4, c = n % 4;
    if (n >= n4) {
        return n4 * K + (n - n4) * K + k;
    }
    return n / 4 * 4 * K + (k < k4 ? k / 4 * 16 + c * 4 + k % 4 : k4 * 4 + (k - k4) * 4 + c);
}

/* The dense layer on int16 activations, W as for dlc_plain_qdense_i8: the products (up to
 * 65535 x 127) summed in int64, each channel on its own. */
static inline void dlc_plain_qdense_i16(size_t rows, size_t K, size_t N, const int16_t *x,
                                        int32_t x_zero, const int8_t *W, const int32_t *b,
                                        const int32_t *multiplier, const int32_t *shift,
                                        int32_t y_zero, int32_t lo, int32_t hi, int16_t *y)
{
    for (size_t r = 0; r < rows; r++, x += K, y += N) {
        for (size_t n = 0; n < N; n++) {
            int64_t acc = b[n];
            for (size_t k = 0; k < K; k++) {
                acc += (int64_t)((int32_t)x[k] - x_zero) * W[dlc_plain_qindex(K, N, k, n)];
            }
            y[n] = (int16_t)dlc_qdense_out(acc, multiplier[n], shift[n], y_zero, lo, hi);
        }
    }
}

#endif
