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
