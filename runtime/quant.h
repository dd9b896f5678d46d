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
#define dlc_fmin fmin
#define dlc_fmax fmax
#else
#define dlc_rint rintf
#define dlc_fmin fminf
#define dlc_fmax fmaxf
#endif

/* clamp(rint(x * inv_scale), lo - zero, hi - zero) + zero for the range [lo, hi] of the
 * integer type: rint rounds half to even (the default rounding mode, as ONNX's
 * QuantizeLinear), and clamping the rounded float first keeps every integer in range. */
static inline int32_t dlc_quantize1(dlc_real x, dlc_real inv_scale, int32_t zero, int32_t lo,
                                    int32_t hi)
{
    const dlc_real t = dlc_rint(x * inv_scale);
    return (int32_t)dlc_fmin(dlc_fmax(t, (dlc_real)(lo - zero)), (dlc_real)(hi - zero)) + zero;
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

/* The int8 dense layer, y (rows, N) from x (rows, K) and the weights transposed, Wt
 * (N, K), each output channel's K weights contiguous:
 *   y = clamp(requantize(sum_k (x - x_zero) Wt[n] + b[n]) + y_zero, lo, hi).
 * x - x_zero lies in [-255, 255] and a weight in [-127, 127], so each product fits int16
 * and a sum of pairs int32: the inner loop vectorises to multiply-add instructions
 * (pmaddwd on x86, vpdpwssd with AVX-512 VNNI, smlal on ARM).  Four channels share each
 * load of x.  The int32 sum cannot overflow for K <= 32768 (dlc/ops.py refuses more). */
static inline void dlc_qdense_i8(size_t rows, size_t K, size_t N, const int8_t *x, int32_t x_zero,
                                 const int8_t *Wt, const int32_t *b, const int32_t *multiplier,
                                 const int32_t *shift, int32_t y_zero, int32_t lo, int32_t hi,
                                 int8_t *y)
{
    for (size_t r = 0; r < rows; r++) {
        const int8_t *xr = x + r * K;
        int8_t *yr = y + r * N;
        size_t n = 0;
        for (; n + 4 <= N; n += 4) {
            const int8_t *w0 = Wt + n * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            for (size_t k = 0; k < K; k++) {
                const int16_t d = (int16_t)(xr[k] - x_zero);
                a0 += d * (int16_t)w0[k];
                a1 += d * (int16_t)w1[k];
                a2 += d * (int16_t)w2[k];
                a3 += d * (int16_t)w3[k];
            }
            const int32_t acc[4] = {a0, a1, a2, a3};
            for (size_t j = 0; j < 4; j++) {
                yr[n + j] = (int8_t)dlc_qdense_out((int64_t)acc[j] + b[n + j],
                                                   multiplier[n + j], shift[n + j], y_zero,
                                                   lo, hi);
            }
        }
        for (; n < N; n++) {
            const int8_t *w = Wt + n * K;
            int32_t a = 0;
            for (size_t k = 0; k < K; k++) {
                a += (int16_t)(xr[k] - x_zero) * (int16_t)w[k];
            }
            yr[n] = (int8_t)dlc_qdense_out((int64_t)a + b[n], multiplier[n], shift[n], y_zero,
                                           lo, hi);
        }
    }
}

/* The dense layer on int16 activations (int8 weights): as dlc_qdense_i8, with the
 * products (up to 65535 x 127) summed in int64. */
static inline void dlc_qdense_i16(size_t rows, size_t K, size_t N, const int16_t *x, int32_t x_zero,
                                  const int8_t *Wt, const int32_t *b, const int32_t *multiplier,
                                  const int32_t *shift, int32_t y_zero, int32_t lo, int32_t hi,
                                  int16_t *y)
{
    for (size_t r = 0; r < rows; r++) {
        const int16_t *xr = x + r * K;
        for (size_t n = 0; n < N; n++) {
            const int8_t *w = Wt + n * K;
            int64_t a = b[n];
            for (size_t k = 0; k < K; k++) {
                a += (int64_t)((int32_t)xr[k] - x_zero) * w[k];
            }
            y[r * N + n] = (int16_t)dlc_qdense_out(a, multiplier[n], shift[n], y_zero, lo, hi);
        }
    }
}

#endif
