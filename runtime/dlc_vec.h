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
 * map to one AVX instruction.  Written out without loops, as dlc_turn8 is, so that gcc
 * keeps the block in registers (with loops it went through the stack, a wide load after
 * two narrow stores at every row: 5x slower). */
#define DLC_PAIR_LO(a, b) DLC_SHUFFLE8(a, b, 0, 8, 1, 9, 4, 12, 5, 13)
#define DLC_PAIR_HI(a, b) DLC_SHUFFLE8(a, b, 2, 10, 3, 11, 6, 14, 7, 15)
#define DLC_QUAD_LO(a, b) DLC_SHUFFLE8(a, b, 0, 1, 8, 9, 4, 5, 12, 13)
#define DLC_QUAD_HI(a, b) DLC_SHUFFLE8(a, b, 2, 3, 10, 11, 6, 7, 14, 15)
#define DLC_HALF_LO(a, b) DLC_SHUFFLE8(a, b, 0, 1, 2, 3, 8, 9, 10, 11)
#define DLC_HALF_HI(a, b) DLC_SHUFFLE8(a, b, 4, 5, 6, 7, 12, 13, 14, 15)
static inline void dlc_transpose8(dlc_vec8 *r)
{
    const dlc_vec8 a0 = DLC_PAIR_LO(r[0], r[1]), a1 = DLC_PAIR_HI(r[0], r[1]);
    const dlc_vec8 a2 = DLC_PAIR_LO(r[2], r[3]), a3 = DLC_PAIR_HI(r[2], r[3]);
    const dlc_vec8 a4 = DLC_PAIR_LO(r[4], r[5]), a5 = DLC_PAIR_HI(r[4], r[5]);
    const dlc_vec8 a6 = DLC_PAIR_LO(r[6], r[7]), a7 = DLC_PAIR_HI(r[6], r[7]);
    const dlc_vec8 b0 = DLC_QUAD_LO(a0, a2), b1 = DLC_QUAD_HI(a0, a2);
    const dlc_vec8 b2 = DLC_QUAD_LO(a1, a3), b3 = DLC_QUAD_HI(a1, a3);
    const dlc_vec8 b4 = DLC_QUAD_LO(a4, a6), b5 = DLC_QUAD_HI(a4, a6);
    const dlc_vec8 b6 = DLC_QUAD_LO(a5, a7), b7 = DLC_QUAD_HI(a5, a7);
    r[0] = DLC_HALF_LO(b0, b4);
    r[4] = DLC_HALF_HI(b0, b4);
    r[1] = DLC_HALF_LO(b1, b5);
    r[5] = DLC_HALF_HI(b1, b5);
    r[2] = DLC_HALF_LO(b2, b6);
    r[6] = DLC_HALF_HI(b2, b6);
    r[3] = DLC_HALF_LO(b3, b7);
    r[7] = DLC_HALF_HI(b3, b7);
}

static inline dlc_vec8 dlc_load8(const dlc_real *p)
{
    dlc_vec8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void dlc_store8(dlc_real *p, dlc_vec8 v)
{
    memcpy(p, &v, sizeof v);
}

/* dst[r * ld_dst + c] = src[c * ld_src + r] for r, c < 8: an 8 x 8 block turned. */
static inline void dlc_turn8(const dlc_real *src, size_t ld_src, dlc_real *dst, size_t ld_dst)
{
    dlc_vec8 v[8] = {dlc_load8(src), dlc_load8(src + ld_src),
                     dlc_load8(src + 2 * ld_src), dlc_load8(src + 3 * ld_src),
                     dlc_load8(src + 4 * ld_src), dlc_load8(src + 5 * ld_src),
                     dlc_load8(src + 6 * ld_src), dlc_load8(src + 7 * ld_src)};
    dlc_transpose8(v);
    dlc_store8(dst, v[0]);
    dlc_store8(dst + ld_dst, v[1]);
    dlc_store8(dst + 2 * ld_dst, v[2]);
    dlc_store8(dst + 3 * ld_dst, v[3]);
    dlc_store8(dst + 4 * ld_dst, v[4]);
    dlc_store8(dst + 5 * ld_dst, v[5]);
    dlc_store8(dst + 6 * ld_dst, v[6]);
    dlc_store8(dst + 7 * ld_dst, v[7]);
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
