/* dlc runtime: the number type, math and bit tests every other runtime header uses.
 * A generated translation unit defines DLC_DOUBLE (0 or 1) before it; float otherwise. */
#ifndef DLC_RUNTIME_H
#define DLC_RUNTIME_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef DLC_DOUBLE
#define DLC_DOUBLE 0
#endif

/* Loops a compiler should leave rolled, and functions it should not inline: the plain
 * kernels (runtime/portable.h, the softmax's) use them to stay as small as the plain
 * loops one writes by hand, at -O3 too, for a microcontroller's flash. */
#if defined(__GNUC__)
#define DLC_PLAIN_ROLLED _Pragma("GCC unroll 1")
#define DLC_PLAIN_CALLED __attribute__((noinline, unused))
#else
#define DLC_PLAIN_ROLLED
#define DLC_PLAIN_CALLED
#endif

#if DLC_DOUBLE
typedef double dlc_real;
#define dlc_exp exp
#define dlc_log log
#define dlc_log1p log1p
#define dlc_sqrt sqrt
#define dlc_tanh tanh
#define dlc_fabs fabs
#else
typedef float dlc_real;
#define dlc_exp expf
#define dlc_log logf
#define dlc_log1p log1pf
#define dlc_sqrt sqrtf
#define dlc_tanh tanhf
#define dlc_fabs fabsf
#endif

/* The bits of a dlc_real, for the tests and selects that must survive -ffast-math: it lets
 * the compiler assume no NaN or inf, so isfinite(x) may become 1 and `z > 0 ? z : 0` a
 * max instruction that drops a NaN.  Integer operations on the bits it leaves alone. */
#if DLC_DOUBLE
typedef uint64_t dlc_real_bits;
#define DLC_MAGNITUDE_BITS 0x7fffffffffffffff    /* all but the sign */
#define DLC_INF_BITS 0x7ff0000000000000          /* +inf; larger magnitudes are NaN */
#define DLC_NAN_BITS 0x7ff8000000000000
#else
typedef uint32_t dlc_real_bits;
#define DLC_MAGNITUDE_BITS 0x7fffffff
#define DLC_INF_BITS 0x7f800000
#define DLC_NAN_BITS 0x7fc00000
#endif

static inline dlc_real_bits dlc_bits(dlc_real x)
{
    dlc_real_bits b;
    memcpy(&b, &x, sizeof b);
    return b;
}

static inline dlc_real dlc_from_bits(dlc_real_bits b)
{
    dlc_real x;
    memcpy(&x, &b, sizeof x);
    return x;
}

static inline int dlc_is_finite(dlc_real x)
{
    return (dlc_bits(x) & DLC_MAGNITUDE_BITS) < DLC_INF_BITS;
}

/* All ones where `when` is nonzero, else 0: a mask for selects on the bits. */
static inline dlc_real_bits dlc_mask_if(int when)
{
    return (dlc_real_bits)0 - (dlc_real_bits)(when != 0);
}

/* Where the matrix multiply (gemm.h) packs its blocks, in the caller's workspace: `tasks`
 * slices one after the other at `blocks`, one per task that may run at once, each a packed
 * A block of a_elements values then a packed B block of b_elements.  A product runs at
 * most `tasks` tasks. */
typedef struct {
    dlc_real *blocks;
    size_t a_elements, b_elements;
    int tasks;
} dlc_scratch;

#endif
