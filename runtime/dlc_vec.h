/* dlc runtime: one vector register as a GCC/clang vector extension (32 bytes with AVX,
 * else 16), the mask type of its comparisons, unaligned loads and stores, and with 8-float
 * vectors an 8 x 8 transpose.  DLC_VEC is defined where they exist: under GCC or clang,
 * unless -DDLC_SCALAR_GEMM asks for plain loops. */
#ifndef DLC_VEC_H
#define DLC_VEC_H

#include "dlc_runtime.h"

#if defined(__GNUC__) && !defined(DLC_SCALAR_GEMM)
#define DLC_VEC 1
#ifdef __AVX__
#define DLC_VEC_BYTES 32
#else
#define DLC_VEC_BYTES 16
#endif
typedef dlc_real dlc_vec __attribute__((vector_size(DLC_VEC_BYTES)));
#if DLC_DOUBLE
typedef long long dlc_mask __attribute__((vector_size(DLC_VEC_BYTES)));
#else
typedef int dlc_mask __attribute__((vector_size(DLC_VEC_BYTES)));
#endif
#define DLC_VL (DLC_VEC_BYTES / sizeof(dlc_real))

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

#if DLC_VEC_BYTES == 32 && !DLC_DOUBLE
#define DLC_TURN8 1                             /* dlc_turn8 exists */
/* Lanes i0.. i7 of the 16 in a then b (clang and gcc spell the builtin differently). */
#ifdef __clang__
#define DLC_SHUFFLE8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) \
    __builtin_shufflevector(a, b, i0, i1, i2, i3, i4, i5, i6, i7)
#else
#define DLC_SHUFFLE8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) \
    __builtin_shuffle(a, b, (dlc_mask){i0, i1, i2, i3, i4, i5, i6, i7})
#endif

/* The 8 x 8 block r[0..8) transposed in place, by three rounds of shuffles that each
 * map to one AVX instruction. */
static inline void dlc_transpose8(dlc_vec *r)
{
    dlc_vec a[8], b[8];
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
    dlc_vec v[8];
    for (size_t r = 0; r < 8; r++) {
        v[r] = dlc_load(src + r * ld_src);
    }
    dlc_transpose8(v);
    for (size_t r = 0; r < 8; r++) {
        dlc_store(dst + r * ld_dst, v[r]);
    }
}

#endif
#endif

#endif
