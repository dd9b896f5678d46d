/* dlc runtime: types, math and constants shared by every generated model.
 * The generated translation unit defines DLC_DOUBLE (0 or 1) before this. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if DLC_DOUBLE
typedef double dlc_real;
#define dlc_exp exp
#define dlc_log log
#define dlc_sqrt sqrt
#define dlc_tanh tanh
#define dlc_fabs fabs
#else
typedef float dlc_real;
#define dlc_exp expf
#define dlc_log logf
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

/* Activations on NaN and inf do what NumPy's do (dlc/ops.py, ACTIVATIONS): a NaN stays
 * NaN, +-inf go to their limits.  relu(z) = max(z, 0), NaN kept: the bits of z, cleared
 * when the sign is set and z is no NaN. */
static inline dlc_real dlc_relu(dlc_real z)
{
    const dlc_real_bits b = dlc_bits(z), magnitude = b & DLC_MAGNITUDE_BITS;
    return dlc_from_bits(b & dlc_mask_if((b == magnitude) | (magnitude > DLC_INF_BITS)));
}

/* z if its sign is clear, else alpha z (NaN stays NaN either way). */
static inline dlc_real dlc_leaky_relu(dlc_real z, dlc_real alpha)
{
    const dlc_real_bits b = dlc_bits(z), negative = dlc_mask_if(b != (b & DLC_MAGNITUDE_BITS));
    return dlc_from_bits((b & ~negative) | (dlc_bits(alpha * z) & negative));
}

/* Activations that a dense layer can apply in its epilogue (softmax over each row). */
enum {
    DLC_ACT_NONE = 0,
    DLC_ACT_RELU = 1,
    DLC_ACT_LEAKY_RELU = 2,
    DLC_ACT_SIGMOID = 3,
    DLC_ACT_TANH = 4,
    DLC_ACT_SOFTMAX = 5
};

/* Where the matrix multiply (gemm.c) packs its blocks, in the caller's workspace: `tasks`
 * slices one after the other at `blocks`, one per task that may run at once, each a packed
 * A block of a_elements values then a packed B block of b_elements.  A product runs at
 * most `tasks` tasks. */
typedef struct {
    dlc_real *blocks;
    size_t a_elements, b_elements;
    int tasks;
} dlc_scratch;
