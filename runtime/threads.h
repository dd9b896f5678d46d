/* dlc runtime: the thread count of a library whose entry points share it (a trainer's
 * epochs, the kernel test module), set by dlc_set_threads.  An inference library takes
 * its count with each call instead. */
#ifndef DLC_THREADS_H
#define DLC_THREADS_H

#include "dlc_runtime.h"

/* Threads used by the matrix multiply and the element-wise loops (OpenMP builds only). */
static int dlc_gemm_threads = 1;

static inline int dlc_set_num_threads(int n)
{
#ifdef _OPENMP
    dlc_gemm_threads = n > 0 ? n : 1;
#else
    (void)n;
    dlc_gemm_threads = 1;
#endif
    return dlc_gemm_threads;
}

/* Element-wise loops over at least this many values are split into contiguous parts,
 * one per thread of dlc_set_threads: every element is computed alike, so the results
 * are the same bits whatever the thread count. */
#define DLC_PARALLEL_ELEMENTS 65536

static inline size_t dlc_parts(size_t n)
{
    return dlc_gemm_threads > 1 && n >= DLC_PARALLEL_ELEMENTS ? (size_t)dlc_gemm_threads : 1;
}

#endif
