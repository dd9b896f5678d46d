/* Measures the core clock and the fp32 FMA throughput of one core at one vector width
 * (x86-64: -DVEC_BYTES=16, 32 or 64, for xmm, ymm or zmm FMAs; 32 by default).
 *
 * Clock: a chain of dependent integer adds retires one add per cycle.
 * FMA throughput: twelve independent chains of FMAs at that width keep every FMA unit busy
 * (2 pipes x 4-cycle latency needs 8).
 * Prints: "<GHz> <measured fp32 GFLOP/s>". */
#include <stdio.h>
#include <time.h>

#ifndef VEC_BYTES
#define VEC_BYTES 32
#endif
#if VEC_BYTES == 64
#define R(n) "%%zmm" #n
#elif VEC_BYTES == 32
#define R(n) "%%ymm" #n
#else
#define R(n) "%%xmm" #n
#endif
#define FMA(n) "vfmadd231ps " R(14) ", " R(15) ", " R(n) "\n\t"
#define ZERO(n) "vxorps %%xmm" #n ", %%xmm" #n ", %%xmm" #n "\n\t"   /* the whole register */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double clock_ghz(void)
{
    const long iterations = 400000;
    long x = 0;
    double start = now();
    for (long i = 0; i < iterations; i++) {
        __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                         "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                         "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                         "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
                         : "+r"(x));
    }
    double seconds = now() - start;
    return 16.0 * iterations / seconds / 1e9 + 0 * x;
}

static double fma_gflops(void)
{
    const long iterations = 400000;
    long counter = iterations;
    double start = now();
    __asm__ volatile(ZERO(0) ZERO(1) ZERO(2) ZERO(3) ZERO(4) ZERO(5) ZERO(6) ZERO(7)
                     ZERO(8) ZERO(9) ZERO(10) ZERO(11) ZERO(14) ZERO(15)
                     "1:\n\t"
                     FMA(0) FMA(1) FMA(2) FMA(3) FMA(4) FMA(5)
                     FMA(6) FMA(7) FMA(8) FMA(9) FMA(10) FMA(11)
                     "dec %0\n\tjnz 1b"
                     : "+r"(counter) :
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                       "xmm8", "xmm9", "xmm10", "xmm11", "xmm14", "xmm15", "cc");
    double seconds = now() - start;
    return 12.0 * (VEC_BYTES / 4) * 2 * iterations / seconds / 1e9;
}

int main(void)
{
    double ghz = 0, gflops = 0;
    for (int r = 0; r < 250; r++) {    /* the best of 250 short runs: interruptions only slow one */
        double g = clock_ghz(), f = fma_gflops();
        ghz = g > ghz ? g : ghz;
        gflops = f > gflops ? f : gflops;
    }
    printf("%.3f %.1f\n", ghz, gflops);
    return 0;
}
