/* The API of an export named "bench" (see harness.c), offered by plain_mlp.c. */
#ifndef PLAIN_BENCH_H
#define PLAIN_BENCH_H

#include <stddef.h>

#include "plain_weights.h"     /* the sizes BENCH_N_INPUTS, BENCH_N_OUTPUTS and weights */

typedef float bench_real;
#define BENCH_WORKSPACE_BYTES 0
#define BENCH_OK 0

int bench_predict(const float *x, float *y, size_t batch, void *workspace);

#endif
