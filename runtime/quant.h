/* dlc runtime: the integer kernels of quantized models.  A tensor q of int8 (or int16)
 * values stands for scale * (q - zero); a dense layer multiplies int8 activations by int8
 * weights (symmetric, per output channel), sums in int32, adds an int32 bias and
 * requantizes by a fixed-point multiplier and shift.  Every result is exact and equals,
 * bit for bit, what dlc's interpreter computes (dlc/ops.py, the quantized ops). */
#ifndef DLC_QUANT_H
#define DLC_QUANT_H

#include "dlc_runtime.h"

/* The intrinsics, on x86 under GCC or clang whatever the target: the first inclusion
 * declares each with its own target, so that the ISA regions of an export
 * (dlc/targets/isa.py) that use them after it need not be the first. */
#if defined(__AVX2__) || (defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)))
#include <immintrin.h>
#endif

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

/* The AVX2 kernels where the compiler targets AVX2 (unless -DDLC_SCALAR_GEMM asks for plain
 * loops), else plain C: the same integers.  Only one dlc_qdense_i8 is defined, so that no
 * unused function is left behind. */
#if defined(__AVX2__) && !defined(DLC_SCALAR_GEMM)
#define DLC_QUANT_AVX2 1
#endif

#ifndef DLC_QUANT_AVX2
/* The plain C sums of rows xs[0..4) by channels n0..n0+15 (channels past the padded N repeat
 * channel n0): the reference the vector kernels equal (an exact sum in any order). */
static inline void dlc_qdense_tile_c(const int8_t *const xs[4], size_t K, int32_t x_zero,
                                     const int8_t *P, size_t N, size_t n0, int32_t acc[4][16])
{
    const size_t pairs = (K + 1) / 2, padded_n = (N + 7) / 8 * 8;
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
}

/* The output values of rows r0.. (count rows) by channels n0..n0+width from their sums acc
 * (row stride 16), one channel at a time in plain C. */
static inline void dlc_qdense_out_c(size_t count, size_t width, const int32_t *acc, size_t N,
                                    size_t r0, size_t n0, const int32_t *b,
                                    const int32_t *multiplier, const int32_t *shift,
                                    int32_t y_zero, int32_t lo, int32_t hi, int8_t *y)
{
    for (size_t i = 0; i < count; i++) {
        for (size_t c = 0; c < width; c++) {
            const size_t n = n0 + c;
            y[(r0 + i) * N + n] = (int8_t)dlc_qdense_out((int64_t)acc[i * 16 + c] + b[n],
                                                         multiplier[n], shift[n], y_zero, lo, hi);
        }
    }
}

/* The int8 dense layer, y (rows, N) from x (rows, K) and the packed weights P:
 *   y = clamp(requantize(sum_k (x - x_zero) W[k][n] + b[n]) + y_zero, lo, hi)
 * x - x_zero lies in [-255, 255] and a weight in [-127, 127] (or -128), so each product
 * fits int16 and a pair's sum int32; the int32 sum cannot overflow for K <= 32768
 * (dlc/ops.py refuses more).  In plain C by tiles of 4 rows (rows past the batch repeat
 * the last) and 16 channels: the reference the vector kernels below equal (which widen
 * rows into the scratch; these loops need none). */
static inline void dlc_qdense_i8(const dlc_scratch *scratch, size_t rows, size_t K,
                                 size_t N, const int8_t *x, int32_t x_zero, const int8_t *P,
                                 const int32_t *b, const int32_t *multiplier,
                                 const int32_t *shift, int32_t y_zero, int32_t lo, int32_t hi,
                                 int8_t *y)
{
    int32_t acc[4][16];
    (void)scratch;
    for (size_t n0 = 0; n0 < N; n0 += 16) {
        const size_t width = N - n0 < 16 ? N - n0 : 16;
        for (size_t r0 = 0; r0 < rows; r0 += 4) {
            const int8_t *xs[4];
            for (size_t i = 0; i < 4; i++) {
                xs[i] = x + (r0 + i < rows ? r0 + i : rows - 1) * K;
            }
            dlc_qdense_tile_c(xs, K, x_zero, P, N, n0, acc);
            dlc_qdense_out_c(rows - r0 < 4 ? rows - r0 : 4, width, acc[0], N, r0, n0, b,
                             multiplier, shift, y_zero, lo, hi, y);
        }
    }
}
#endif

#ifdef DLC_QUANT_AVX2
/* The vector kernels read x - x_zero widened to int16, DLC_QKC inputs of DLC_QMR rows at
 * a time (12 KiB, in the first task's blocks of the caller's workspace: dlc/layout.py,
 * QDENSE_ROWS_BYTES, plans them): a pair of inputs is then one 32-bit broadcast from memory,
 * which costs a load and no shuffle. */
#define DLC_QKC 1024
#define DLC_QMR 6       /* rows of the AVX2 kernel's register tile (dlc_qtile) */

/* x - x_zero of rows r0..r0+count, inputs k0..k0+kc, into xw (row stride DLC_QKC) as
 * int16, with a zero after an odd kc (the packed weights' padding pairs it). */
static inline void dlc_qwiden(const int8_t *x, size_t K, size_t r0, size_t count, size_t k0,
                              size_t kc, int32_t x_zero, int16_t *xw)
{
    for (size_t i = 0; i < count; i++) {
        const int8_t *xr = x + (r0 + i) * K + k0;
        int16_t *w = xw + i * DLC_QKC;
        for (size_t k = 0; k < kc; k++) {
            w[k] = (int16_t)(xr[k] - x_zero);
        }
        if (kc % 2) {
            w[kc] = 0;      /* kc < DLC_QKC, which is even */
        }
    }
}

/* The two int16 of pair j of a widened row, broadcast to the 8 lanes of 32 bits. */
static inline __m256i dlc_qpair8(const int16_t *xw, size_t j)
{
    int32_t v;
    memcpy(&v, xw + 2 * j, sizeof v);
    return _mm256_set1_epi32(v);
}

/* The 16 weights of pair j of a panel (8 channels x 2 inputs), widened to int16. */
static inline __m256i dlc_qweights(const int8_t *panel, size_t j)
{
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(panel + 16 * j)));
}

/* gcc (12) hoists the six broadcasts above the multiply-adds and then spills half the sums
 * to the stack each pair; an empty asm that takes each value in a register keeps the
 * order written (it emits nothing). */
#if defined(__GNUC__)
#define DLC_QKEEP(v) __asm__("" : "+x"(v))
#else
#define DLC_QKEEP(v) (void)0
#endif
#define DLC_QMADD(a, x, w)                                                                  \
    do {                                                                                    \
        a = _mm256_add_epi32(a, _mm256_madd_epi16(x, w));                                   \
        DLC_QKEEP(a);                                                                       \
    } while (0)

#if defined(__AVX512BW__)
/* The same sums with 512-bit vectors (AVX-512BW; vpdpwssd with VNNI, which adds the pair
 * sums into the accumulator without saturating, so the sums are the AVX2 kernel's): 16
 * channels a register, the two panels' 16 weights of a pair widened side by side, the even
 * and the odd pairs into separate sums so that six rows fill the multiply-add's latency. */
#if defined(__AVX512VNNI__)
#define DLC_QDOT512(a, x, w) a = _mm512_dpwssd_epi32(a, x, w)
#else
#define DLC_QDOT512(a, x, w) a = _mm512_add_epi32(a, _mm512_madd_epi16(x, w))
#endif

static inline __m512i dlc_qweights512(const int8_t *p0, const int8_t *p1, size_t j)
{
    const __m128i lo = _mm_loadu_si128((const __m128i *)(const void *)(p0 + 16 * j));
    const __m128i hi = _mm_loadu_si128((const __m128i *)(const void *)(p1 + 16 * j));
    return _mm512_cvtepi8_epi16(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
}

static inline __m512i dlc_qpair16(const int16_t *xw, size_t j)
{
    int32_t v;
    memcpy(&v, xw + 2 * j, sizeof v);
    return _mm512_set1_epi32(v);
}

static inline void dlc_qtile(const int16_t *xw, size_t pairs, const int8_t *p0,
                             const int8_t *p1, __m256i acc[2 * DLC_QMR])
{
    __m512i even[DLC_QMR], odd[DLC_QMR];
    for (int i = 0; i < DLC_QMR; i++) {
        even[i] = _mm512_setzero_si512();
        odd[i] = even[i];
    }
    size_t j = 0;
    for (; j + 1 < pairs; j += 2) {
        const __m512i w = dlc_qweights512(p0, p1, j), u = dlc_qweights512(p0, p1, j + 1);
        for (int i = 0; i < DLC_QMR; i++) {
            DLC_QDOT512(even[i], dlc_qpair16(xw + (size_t)i * DLC_QKC, j), w);
            DLC_QDOT512(odd[i], dlc_qpair16(xw + (size_t)i * DLC_QKC, j + 1), u);
        }
    }
    if (j < pairs) {
        const __m512i w = dlc_qweights512(p0, p1, j);
        for (int i = 0; i < DLC_QMR; i++) {
            DLC_QDOT512(even[i], dlc_qpair16(xw + (size_t)i * DLC_QKC, j), w);
        }
    }
    for (int i = 0; i < DLC_QMR; i++) {
        const __m512i sum = _mm512_add_epi32(even[i], odd[i]);
        acc[2 * i] = _mm256_add_epi32(acc[2 * i], _mm512_castsi512_si256(sum));
        acc[2 * i + 1] = _mm256_add_epi32(acc[2 * i + 1], _mm512_extracti64x4_epi64(sum, 1));
    }
}
#undef DLC_QDOT512
#else
#define DLC_QROW6(pair, a0, a1)                                                             \
    do {                                                                                    \
        __m256i x = pair;                                                                   \
        DLC_QKEEP(x);                                                                       \
        DLC_QMADD(a0, x, w0);                                                               \
        DLC_QMADD(a1, x, w1);                                                               \
    } while (0)

/* acc[2 i + h] += the sums over pairs [0, pairs) of widened row i (i < 6) by the 8 channels
 * of panel h (h < 2): per pair, two weight loads, six broadcasts and twelve vpmaddwd into
 * twelve registers, exact: each product fits int16 x int16, each pair's sum int32. */
static inline void dlc_qtile(const int16_t *xw, size_t pairs, const int8_t *p0,
                             const int8_t *p1, __m256i acc[2 * DLC_QMR])
{
    __m256i a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3], a20 = acc[4];
    __m256i a21 = acc[5], a30 = acc[6], a31 = acc[7], a40 = acc[8], a41 = acc[9];
    __m256i a50 = acc[10], a51 = acc[11];
    for (size_t j = 0; j < pairs; j++) {
        const __m256i w0 = dlc_qweights(p0, j), w1 = dlc_qweights(p1, j);
        DLC_QROW6(dlc_qpair8(xw + 0 * DLC_QKC, j), a00, a01);
        DLC_QROW6(dlc_qpair8(xw + 1 * DLC_QKC, j), a10, a11);
        DLC_QROW6(dlc_qpair8(xw + 2 * DLC_QKC, j), a20, a21);
        DLC_QROW6(dlc_qpair8(xw + 3 * DLC_QKC, j), a30, a31);
        DLC_QROW6(dlc_qpair8(xw + 4 * DLC_QKC, j), a40, a41);
        DLC_QROW6(dlc_qpair8(xw + 5 * DLC_QKC, j), a50, a51);
    }
    acc[0] = a00, acc[1] = a01, acc[2] = a10, acc[3] = a11, acc[4] = a20, acc[5] = a21;
    acc[6] = a30, acc[7] = a31, acc[8] = a40, acc[9] = a41, acc[10] = a50, acc[11] = a51;
}
#undef DLC_QROW6
#endif

/* acc[h] += the sums of one widened row by the 8 channels of panel h (h < 4): two pairs a
 * step into separate sums, so that the additions do not wait on one another. */
static inline void dlc_qrow_avx2(const int16_t *xw, size_t pairs, const int8_t *const p[4],
                                 __m256i acc[4])
{
    __m256i a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    __m256i b0 = _mm256_setzero_si256(), b1 = b0, b2 = b0, b3 = b0;
    size_t j = 0;
    for (; j + 1 < pairs; j += 2) {
        const __m256i x = dlc_qpair8(xw, j), u = dlc_qpair8(xw, j + 1);
        DLC_QMADD(a0, x, dlc_qweights(p[0], j));
        DLC_QMADD(a1, x, dlc_qweights(p[1], j));
        DLC_QMADD(a2, x, dlc_qweights(p[2], j));
        DLC_QMADD(a3, x, dlc_qweights(p[3], j));
        DLC_QMADD(b0, u, dlc_qweights(p[0], j + 1));
        DLC_QMADD(b1, u, dlc_qweights(p[1], j + 1));
        DLC_QMADD(b2, u, dlc_qweights(p[2], j + 1));
        DLC_QMADD(b3, u, dlc_qweights(p[3], j + 1));
    }
    if (j < pairs) {
        const __m256i x = dlc_qpair8(xw, j);
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(x, dlc_qweights(p[0], j)));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(x, dlc_qweights(p[1], j)));
        a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(x, dlc_qweights(p[2], j)));
        a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(x, dlc_qweights(p[3], j)));
    }
    acc[0] = _mm256_add_epi32(a0, b0), acc[1] = _mm256_add_epi32(a1, b1);
    acc[2] = _mm256_add_epi32(a2, b2), acc[3] = _mm256_add_epi32(a3, b3);
}

/* v >> s for int64 lanes, arithmetic (AVX2 shifts 64-bit lanes logically only): the
 * logical shift of v or of ~v, whichever is non-negative, complemented back. */
static inline __m256i dlc_qsra64(__m256i v, __m256i s)
{
    const __m256i sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), v);
    return _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(v, sign), s), sign);
}

/* clamp(requantize(acc, m, 31 + s) + y_zero, lo, hi) for the int64 lanes of acc and m (their
 * low 32 bits) and s (31 + shift): dlc_qdense_out on 4 lanes. */
static inline __m256i dlc_qout4_avx2(__m256i acc, __m256i m, __m256i s, __m256i y_zero,
                                     __m256i lo, __m256i hi)
{
    const __m256i half = _mm256_sllv_epi64(_mm256_set1_epi64x(1),
                                           _mm256_sub_epi64(s, _mm256_set1_epi64x(1)));
    __m256i v = dlc_qsra64(_mm256_add_epi64(_mm256_mul_epi32(acc, m), half), s);
    v = _mm256_add_epi64(v, y_zero);
    v = _mm256_blendv_epi8(v, lo, _mm256_cmpgt_epi64(lo, v));
    return _mm256_blendv_epi8(v, hi, _mm256_cmpgt_epi64(v, hi));
}

static inline __m256i dlc_qload8(const int32_t *p)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

/* The output values of channels n..n+width (width <= 8) of one row from their 8 sums.  8
 * at once: the bias added saturating to int32 (an overflow wraps the sign of the sum away
 * from both terms'), then the even and the odd lanes requantized in int64; fewer (the
 * last channels) one at a time. */
static inline void dlc_qout8_avx2(__m256i acc, size_t n, size_t width, const int32_t *b,
                                  const int32_t *multiplier, const int32_t *shift,
                                  int32_t y_zero, int32_t lo, int32_t hi, int8_t *y)
{
    if (width < 8) {
        int32_t out[8];
        _mm256_storeu_si256((__m256i *)(void *)out, acc);
        for (size_t c = 0; c < width; c++) {
            y[n + c] = (int8_t)dlc_qdense_out((int64_t)out[c] + b[n + c], multiplier[n + c],
                                              shift[n + c], y_zero, lo, hi);
        }
        return;
    }
    const __m256i bias = dlc_qload8(b + n), m = dlc_qload8(multiplier + n);
    const __m256i s = _mm256_add_epi32(dlc_qload8(shift + n), _mm256_set1_epi32(31));
    __m256i sum = _mm256_add_epi32(acc, bias);
    const __m256i over = _mm256_srai_epi32(
        _mm256_and_si256(_mm256_xor_si256(acc, sum), _mm256_xor_si256(bias, sum)), 31);
    const __m256i saturated = _mm256_xor_si256(_mm256_srai_epi32(sum, 31),
                                               _mm256_set1_epi32(INT32_MIN));
    sum = _mm256_blendv_epi8(sum, saturated, over);
    const __m256i low = _mm256_set1_epi64x(0xffffffff);
    const __m256i z = _mm256_set1_epi64x(y_zero), l = _mm256_set1_epi64x(lo);
    const __m256i h = _mm256_set1_epi64x(hi);
    const __m256i even = dlc_qout4_avx2(sum, m, _mm256_and_si256(s, low), z, l, h);
    const __m256i odd = dlc_qout4_avx2(_mm256_srli_epi64(sum, 32), _mm256_srli_epi64(m, 32),
                                       _mm256_srli_epi64(s, 32), z, l, h);
    /* the 8 values, in [lo, hi] already, narrowed by saturating packs that change none */
    const __m256i v = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xaa);
    const __m128i v16 = _mm_packs_epi32(_mm256_castsi256_si128(v),
                                        _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64((__m128i *)(void *)(y + n), _mm_packs_epi16(v16, v16));
}

/* Rows r0..r0+DLC_QMR by channels n0..n0+16 (panel p0 then p1, the same panel when one is
 * left), the inputs in blocks of DLC_QKC widened into xw unless K fits one block (the
 * caller widened it then). */
static inline void dlc_qdense_block_avx2(const int8_t *x, size_t K, size_t N, size_t r0,
                                          int32_t x_zero, const int8_t *p0, const int8_t *p1,
                                          size_t n0, const int32_t *b,
                                          const int32_t *multiplier, const int32_t *shift,
                                          int32_t y_zero, int32_t lo, int32_t hi,
                                          int16_t *xw, int8_t *y)
{
    if (n0 >= N) {      /* never (the caller's loop): lets gcc see the 8-wide loads of */
        return;         /* dlc_qout8_avx2 stay inside b, multiplier and shift */
    }
    __m256i acc[2 * DLC_QMR];
    for (size_t i = 0; i < 2 * DLC_QMR; i++) {
        acc[i] = _mm256_setzero_si256();
    }
    for (size_t k0 = 0; k0 < K; k0 += DLC_QKC) {
        const size_t kc = K - k0 < DLC_QKC ? K - k0 : DLC_QKC;
        if (K > DLC_QKC) {
            dlc_qwiden(x, K, r0, DLC_QMR, k0, kc, x_zero, xw);
        }
        dlc_qtile(xw, (kc + 1) / 2, p0 + k0 * 8, p1 + k0 * 8, acc);
    }
    for (size_t i = 0; i < DLC_QMR; i++) {
        for (size_t h = 0; h < 2 && n0 + 8 * h < N; h++) {
            const size_t width = N - n0 - 8 * h < 8 ? N - n0 - 8 * h : 8;
            dlc_qout8_avx2(acc[2 * i + h], n0 + 8 * h, width, b, multiplier, shift, y_zero,
                           lo, hi, y + (r0 + i) * N);
        }
    }
}

/* Row r by channels n0..n0+32 (4 panels, the last repeated past the padded N). */
static inline void dlc_qdense_block1_avx2(const int8_t *x, size_t K, size_t N, size_t r,
                                          int32_t x_zero, const int8_t *P, size_t n0,
                                          const int32_t *b, const int32_t *multiplier,
                                          const int32_t *shift, int32_t y_zero, int32_t lo,
                                          int32_t hi, int16_t *xw, int8_t *y)
{
    const size_t pairs = (K + 1) / 2, panels = (N + 7) / 8;
    __m256i acc[4];
    for (size_t h = 0; h < 4; h++) {
        acc[h] = _mm256_setzero_si256();
    }
    for (size_t k0 = 0; k0 < K; k0 += DLC_QKC) {
        const size_t kc = K - k0 < DLC_QKC ? K - k0 : DLC_QKC;
        const int8_t *p[4];
        for (size_t h = 0; h < 4; h++) {
            const size_t panel = n0 / 8 + h < panels ? n0 / 8 + h : panels - 1;
            p[h] = P + dlc_qpacked_index(pairs, k0, 8 * panel);
        }
        if (K > DLC_QKC) {
            dlc_qwiden(x, K, r, 1, k0, kc, x_zero, xw);
        }
        dlc_qrow_avx2(xw, (kc + 1) / 2, p, acc);
    }
    for (size_t h = 0; h < 4 && n0 + 8 * h < N; h++) {
        const size_t width = N - n0 - 8 * h < 8 ? N - n0 - 8 * h : 8;
        dlc_qout8_avx2(acc[h], n0 + 8 * h, width, b, multiplier, shift, y_zero, lo, hi,
                       y + r * N);
    }
}

/* The int8 dense layer (as the plain C one above computes it) with AVX2: blocks of DLC_QMR
 * rows by 16 channels, then the last rows one at a time by 32 channels; a block's rows
 * widened once when K fits DLC_QKC, into the scratch's blocks (it runs as one task). */
static inline void dlc_qdense_i8(const dlc_scratch *scratch, size_t rows, size_t K,
                                 size_t N, const int8_t *x, int32_t x_zero, const int8_t *P,
                                 const int32_t *b, const int32_t *multiplier,
                                 const int32_t *shift, int32_t y_zero, int32_t lo, int32_t hi,
                                 int8_t *y)
{
    int16_t *const xw = (int16_t *)(void *)scratch->blocks;
    const size_t pairs = (K + 1) / 2, panels = (N + 7) / 8;
    size_t r0 = 0;
    for (; r0 + DLC_QMR <= rows; r0 += DLC_QMR) {
        if (K <= DLC_QKC) {
            dlc_qwiden(x, K, r0, DLC_QMR, 0, K, x_zero, xw);
        }
        for (size_t n0 = 0; n0 < N; n0 += 16) {
            const int8_t *p0 = P + dlc_qpacked_index(pairs, 0, n0);
            const int8_t *p1 = n0 / 8 + 1 < panels ? p0 + pairs * 16 : p0;
            dlc_qdense_block_avx2(x, K, N, r0, x_zero, p0, p1, n0, b, multiplier, shift,
                                  y_zero, lo, hi, xw, y);
        }
    }
    for (; r0 < rows; r0++) {
        if (K <= DLC_QKC) {
            dlc_qwiden(x, K, r0, 1, 0, K, x_zero, xw);
        }
        for (size_t n0 = 0; n0 < N; n0 += 32) {
            dlc_qdense_block1_avx2(x, K, N, r0, x_zero, P, n0, b, multiplier, shift, y_zero,
                                   lo, hi, xw, y);
        }
    }
}
#endif

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
