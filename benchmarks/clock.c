/* Measures the core clock and the fp32 FMA peak of one core (x86-64 with AVX2+FMA).
 *
 * Clock: a chain of dependent integer adds retires one add per cycle.
 * FMA peak: twelve independent chains of 8-lane fp32 FMAs keep both FMA units busy
 * (Zen 3: 2 FMA pipes, 4-cycle latency, so 8 chains suffice).
 * Prints: "<GHz> <measured fp32 GFLOP/s>". */
#include <stdio.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double clock_ghz(void)
{
    const long iterations = 4000000;
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
    const long iterations = 4000000;
    long counter = iterations;
    double start = now();
    __asm__ volatile("vxorps %%ymm0, %%ymm0, %%ymm0\n\t"
                     "vmovaps %%ymm0, %%ymm1\n\tvmovaps %%ymm0, %%ymm2\n\t"
                     "vmovaps %%ymm0, %%ymm3\n\tvmovaps %%ymm0, %%ymm4\n\t"
                     "vmovaps %%ymm0, %%ymm5\n\tvmovaps %%ymm0, %%ymm6\n\t"
                     "vmovaps %%ymm0, %%ymm7\n\tvmovaps %%ymm0, %%ymm8\n\t"
                     "vmovaps %%ymm0, %%ymm9\n\tvmovaps %%ymm0, %%ymm10\n\t"
                     "vmovaps %%ymm0, %%ymm11\n\t"
                     "1:\n\t"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm0\n\t"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm1\n\t"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm2\n\t"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm3\n\t"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm4\n\t"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm5\n\t"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm6\n\t"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm7\n\t"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm8\n\t"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm9\n\t"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm10\n\t"
                     "vfmadd231ps %%ymm14, %%ymm15, %%ymm11\n\t"
                     "dec %0\n\tjnz 1b"
                     : "+r"(counter) :
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                       "xmm8", "xmm9", "xmm10", "xmm11", "cc");
    double seconds = now() - start;
    return 12.0 * 8 * 2 * iterations / seconds / 1e9;
}

int main(void)
{
    double ghz = 0, gflops = 0;
    for (int r = 0; r < 25; r++) {     /* the best of 25: interruptions only slow a run down */
        double g = clock_ghz(), f = fma_gflops();
        ghz = g > ghz ? g : ghz;
        gflops = f > gflops ? f : gflops;
    }
    printf("%.3f %.1f\n", ghz, gflops);
    return 0;
}
