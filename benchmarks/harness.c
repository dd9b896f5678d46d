/* Pure C latency harness around a model exported by dlc.export_c under the name "bench".
 * Usage: harness <calls per run> <runs> <batch>; prints the median ns per call. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench.h"

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e9 * t.tv_sec + t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s CALLS RUNS BATCH\n", argv[0]);
        return 2;
    }
    long calls = atol(argv[1]), runs = atol(argv[2]), batch = atol(argv[3]);
    bench_real *x = malloc(sizeof *x * BENCH_N_INPUTS * batch);
    bench_real *y = malloc(sizeof *y * BENCH_N_OUTPUTS * batch);
    double *times = malloc(sizeof *times * runs);
    static unsigned char workspace[BENCH_WORKSPACE_BYTES + 1] __attribute__((aligned(64)));
    if (!x || !y || !times || calls < 1 || runs < 1 || batch < 1) {
        return 2;
    }
    srand(1);
    for (long i = 0; i < BENCH_N_INPUTS * batch; i++) {
        x[i] = (bench_real)rand() / RAND_MAX - 0.5f;
    }
    double checksum = 0;
    for (long r = 0; r < runs; r++) {
        double start = now_ns();
        for (long c = 0; c < calls; c++) {
            if (bench_predict(x, y, (size_t)batch, workspace) != BENCH_OK) {
                return 1;
            }
        }
        times[r] = (now_ns() - start) / calls;
        checksum += y[0];
    }
    qsort(times, runs, sizeof *times, by_value);
    printf("%.1f %g\n", times[runs / 2], checksum);
    return 0;
}
