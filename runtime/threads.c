/* dlc runtime: the thread count of a library whose entry points share it (a trainer's
 * epochs, the kernel test module), set by dlc_set_threads.  An inference library takes
 * its count with each call instead. */

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
