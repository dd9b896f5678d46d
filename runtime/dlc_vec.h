/* dlc runtime: one vector register as a GCC/clang vector extension, the mask type of its
 * comparisons, unaligned loads and stores, and a DLC_VL x DLC_VL transpose.  DLC_VEC is
 * defined where they exist: under GCC or clang, unless -DDLC_SCALAR_GEMM asks for plain
 * loops.
 *
 * The width, DLC_VEC_BYTES, is that of the widest vectors the compiler builds for: 64 with
 * AVX-512F, 32 with AVX (AVX2 and FMA on any x86-64-v3), else 16 (SSE2, NEON, or whatever
 * the compiler lowers 16-byte vectors to).  -DDLC_VEC_BYTES=64, 32 or 16 forces one: a
 * vector wider than the machine's is lowered to several registers, slower but computing
 * the same, so every width runs (and is tested) anywhere.  DLC_VEC_REGS, the vector
 * registers the register tiles may fill, is 32 with AVX-512 or on AArch64 (and taken so for
 * 64-byte vectors, whose tile is that of AVX-512 wherever it is built), else 16. */
#ifndef DLC_VEC_H
#define DLC_VEC_H

#include "dlc_runtime.h"

#if defined(__GNUC__) && !defined(DLC_SCALAR_GEMM)
#define DLC_VEC 1
#ifndef DLC_VEC_BYTES
#if defined(__AVX512F__)
#define DLC_VEC_BYTES 64
#elif defined(__AVX__)
#define DLC_VEC_BYTES 32
#else
#define DLC_VEC_BYTES 16
#endif
#endif
#if DLC_VEC_BYTES != 16 && DLC_VEC_BYTES != 32 && DLC_VEC_BYTES != 64
#error "DLC_VEC_BYTES must be 16, 32 or 64"
#endif
#ifndef DLC_VEC_REGS
#if defined(__AVX512F__) || defined(__aarch64__) || DLC_VEC_BYTES == 64
#define DLC_VEC_REGS 32
#else
#define DLC_VEC_REGS 16
#endif
#endif
#if DLC_VEC_BYTES == 64 && !defined(__AVX512F__) || DLC_VEC_BYTES == 32 && !defined(__AVX__)
/* gcc and clang warn that a vector wider than the ISA's would be passed differently where
 * the ISA has it: these are all static functions, whose calls no other translation unit
 * sees. */
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#elif __has_warning("-Wpsabi")
#pragma clang diagnostic ignored "-Wpsabi"
#endif
#endif
typedef dlc_real dlc_vec __attribute__((vector_size(DLC_VEC_BYTES)));
#if DLC_DOUBLE
typedef long long dlc_mask __attribute__((vector_size(DLC_VEC_BYTES)));
#else
typedef int dlc_mask __attribute__((vector_size(DLC_VEC_BYTES)));
#endif
#define DLC_VL (DLC_VEC_BYTES / sizeof(dlc_real))     /* lanes */
#define DLC_LANES (DLC_VEC_BYTES / (DLC_DOUBLE ? 8 : 4))   /* the same, for #if */

static inline dlc_vec dlc_load(const dlc_real *p)
{
    dlc_vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void dlc_store(dlc_real *p, dlc_vec v)
{
    memcpy(p, &v, sizeof v);
}

/* Vectors of 8 or more lanes turn blocks of rows on their side (softmax, a classifier's
 * dense layer): dlc_turn exists.  It turns a DLC_VL x DLC_VL block as (DLC_VL / 8)^2
 * blocks of 8 x 8, each in eight 8-lane vectors by three rounds of shuffles. */
#if DLC_LANES >= 8
#define DLC_TURN 1
typedef dlc_real dlc_vec8 __attribute__((vector_size(8 * sizeof(dlc_real))));
#if DLC_DOUBLE
typedef long long dlc_mask8 __attribute__((vector_size(8 * sizeof(long long))));
#else
typedef int dlc_mask8 __attribute__((vector_size(8 * sizeof(int))));
#endif

/* Lanes i0.. i7 of the 16 in a then b (clang and gcc spell the builtin differently). */
#ifdef __clang__
#define DLC_SHUFFLE8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) \
    __builtin_shufflevector(a, b, i0, i1, i2, i3, i4, i5, i6, i7)
#else
#define DLC_SHUFFLE8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) \
    __builtin_shuffle(a, b, (dlc_mask8){i0, i1, i2, i3, i4, i5, i6, i7})
#endif

/* The 8 x 8 block r[0..8) transposed in place, by three rounds of shuffles that each
 * map to one AVX instruction. */
static inline void dlc_transpose8(dlc_vec8 *r)
{
    dlc_vec8 a[8], b[8];
    for (int i = 0; i < 8; i += 2) {
        a[i] = DLC_SHUFFLE8(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        a[i + 1] = DLC_SHUFFLE8(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int i = 0; i < 8; i += 4) {
        for (int h = 0; h < 2; h++) {
            b[i + 2 * h] = DLC_SHUFFLE8(a[i + h], a[i + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
            b[i + 2 * h + 1] = DLC_SHUFFLE8(a[i + h], a[i + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    }
    for (int i = 0; i < 4; i++) {
        r[i] = DLC_SHUFFLE8(b[i], b[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        r[i + 4] = DLC_SHUFFLE8(b[i], b[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

/* dst[r * ld_dst + c] = src[c * ld_src + r] for r, c < 8: an 8 x 8 block turned. */
static inline void dlc_turn8(const dlc_real *src, size_t ld_src, dlc_real *dst, size_t ld_dst)
{
    dlc_vec8 v[8];
    for (size_t r = 0; r < 8; r++) {
        memcpy(&v[r], src + r * ld_src, sizeof v[r]);
    }
    dlc_transpose8(v);
    for (size_t r = 0; r < 8; r++) {
        memcpy(dst + r * ld_dst, &v[r], sizeof v[r]);
    }
}

/* dst[r * ld_dst + c] = src[c * ld_src + r] for r, c < DLC_VL: a lane-square block turned. */
static inline void dlc_turn(const dlc_real *src, size_t ld_src, dlc_real *dst, size_t ld_dst)
{
    for (size_t i = 0; i < DLC_VL; i += 8) {
        for (size_t j = 0; j < DLC_VL; j += 8) {
            dlc_turn8(src + i * ld_src + j, ld_src, dst + j * ld_dst + i, ld_dst);
        }
    }
}
#endif
#endif

#endif
