/* dlc runtime: the plain-loop integer kernels of quantized models on small machines (the
 * export's microcontroller and generic targets).  The weights are read in place from flash
 * as they are stored, one output channel's K int8 weights in a row (W transposed): no
 * packing, no scratch.  Each sum is exact in int32, so any order gives the bits of
 * runtime/quant.h and dlc's interpreter; with the Armv7E-M DSP extension (Cortex-M4, M7)
 * four inputs at a time go through two dual 16-bit multiply-accumulates (SMLAD). */
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
#endif

/* sum_k (x[k] - x_zero) w[k] over K int8 inputs and weights.  Each product lies within
 * 255 x 127, so K <= 32768 (dlc/ops.py's bound) keeps the int32 sum exact.  On the DSP
 * extension, SXTAB16 widens bytes 0 and 2 (then 1 and 3) of four inputs to two int16 and
 * adds -x_zero to both (in [-255, 255]: no wrap), SXTB16 widens the weights alike, and
 * SMLAD adds both products to the sum. */
static inline int32_t dlc_plain_qdot_i8(size_t K, const int8_t *x, int32_t x_zero,
                                        const int8_t *w)
{
    int32_t acc = 0;
    size_t k = 0;
#if defined(__ARM_FEATURE_DSP)
    const int16x2_t offset = (int16x2_t)((uint32_t)(uint16_t)(int16_t)-x_zero * 0x10001u);
    for (; k + 4 <= K; k += 4) {
        const uint32_t xs = dlc_plain_word(x + k), ws = dlc_plain_word(w + k);
        acc = __smlad(__sxtab16(offset, (int8x4_t)xs), __sxtb16((int8x4_t)ws), acc);
        acc = __smlad(__sxtab16(offset, (int8x4_t)dlc_plain_ror8(xs)),
                      __sxtb16((int8x4_t)dlc_plain_ror8(ws)), acc);
    }
#endif
    for (; k < K; k++) {
        acc += ((int32_t)x[k] - x_zero) * w[k];
    }
    return acc;
}

/* The int8 dense layer, y (rows, N) from x (rows, K) and W (N, K), its weights transposed:
 *   y = clamp(requantize(sum_k (x - x_zero) W[n][k] + b[n]) + y_zero, lo, hi)
 * one output channel at a time. */
static inline void dlc_plain_qdense_i8(size_t rows, size_t K, size_t N, const int8_t *x,
                                       int32_t x_zero, const int8_t *W, const int32_t *b,
                                       const int32_t *multiplier, const int32_t *shift,
                                       int32_t y_zero, int32_t lo, int32_t hi, int8_t *y)
{
    for (size_t r = 0; r < rows; r++, x += K, y += N) {
        for (size_t n = 0; n < N; n++) {
            const int32_t acc = dlc_plain_qdot_i8(K, x, x_zero, W + n * K);
            y[n] = (int8_t)dlc_qdense_out((int64_t)acc + b[n], multiplier[n], shift[n],
                                          y_zero, lo, hi);
        }
    }
}

/* The dense layer on int16 activations, W (N, K) as for dlc_plain_qdense_i8: the products
 * (up to 65535 x 127) summed in int64. */
static inline void dlc_plain_qdense_i16(size_t rows, size_t K, size_t N, const int16_t *x,
                                        int32_t x_zero, const int8_t *W, const int32_t *b,
                                        const int32_t *multiplier, const int32_t *shift,
                                        int32_t y_zero, int32_t lo, int32_t hi, int16_t *y)
{
    for (size_t r = 0; r < rows; r++, x += K, y += N) {
        for (size_t n = 0; n < N; n++) {
            const int8_t *w = W + n * K;
            int64_t acc = b[n];
            for (size_t k = 0; k < K; k++) {
                acc += (int64_t)((int32_t)x[k] - x_zero) * w[k];
            }
            y[n] = (int16_t)dlc_qdense_out(acc, multiplier[n], shift[n], y_zero, lo, hi);
        }
    }
}

#endif
