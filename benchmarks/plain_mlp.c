/* A hand-written plain-loop MLP, the baseline of benchmarks/footprint.py: dense layers
 * with ReLU between them and a softmax last, written as one writes it without a
 * generator (each output a dot product over its row of W stored (out, in), sizes known
 * at compile time).  It offers the API of an export named "bench", for harness.c.
 * plain_weights.h (written by footprint.py) holds the weights W<i>, B<i> and
 * PLAIN_LAYERS(L): L(i, n_in, n_out, relu) for each layer in order, and PLAIN_WIDEST. */
#include <math.h>
#include <stddef.h>

#include "bench.h"

static void dense(const float *W, const float *b, int n_in, int n_out, const float *x,
                  float *y, int relu)
{
    for (int j = 0; j < n_out; j++) {
        float s = b[j];
        for (int k = 0; k < n_in; k++) {
            s += W[j * n_in + k] * x[k];
        }
        y[j] = relu && s < 0 ? 0 : s;
    }
}

static void softmax(float *y, int n)
{
    float max = y[0], sum = 0;
    for (int j = 1; j < n; j++) {
        max = y[j] > max ? y[j] : max;
    }
    for (int j = 0; j < n; j++) {
        y[j] = expf(y[j] - max);
        sum += y[j];
    }
    for (int j = 0; j < n; j++) {
        y[j] /= sum;
    }
}

static float buffers[2][PLAIN_WIDEST];

#define LAYER(i, n_in, n_out, relu)                          \
    dense(W##i, B##i, n_in, n_out, in, out, relu);          \
    in = out;                                               \
    out = out == buffers[0] ? buffers[1] : buffers[0];

int bench_predict(const float *x, float *y, size_t batch, void *workspace)
{
    (void)workspace;
    for (size_t r = 0; r < batch; r++, x += BENCH_N_INPUTS, y += BENCH_N_OUTPUTS) {
        const float *in = x;
        float *out = buffers[0];
        PLAIN_LAYERS(LAYER)
        for (int j = 0; j < BENCH_N_OUTPUTS; j++) {
            y[j] = in[j];
        }
        softmax(y, BENCH_N_OUTPUTS);
    }
    return BENCH_OK;
}
