/* Test driver for a model exported under the name "model":
 *   export_driver in.bin out.bin batch [weights-file]
 * reads batch rows (raw model_real values), checks the error codes, and writes three
 * predictions one after the other: with the internal workspace (built with
 * -DMODEL_STATIC_WORKSPACE; else a caller's workspace again), with a caller's
 * workspace of exactly MODEL_WORKSPACE_BYTES (so a sanitizer catches any access past
 * it), and row by row.  Built with -DDRIVER_STACK_BYTES=n (and -pthread), all of it runs
 * on a thread with a stack of n bytes. */
#ifdef DRIVER_STACK_BYTES
#define _POSIX_C_SOURCE 200112L
#include <pthread.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static int fail(const char *what)
{
    fprintf(stderr, "export_driver: %s\n", what);
    return 1;
}

static int run(int argc, char **argv)
{
    size_t batch, n_in, n_out;
    model_real *x, *ws, *misaligned;
    model_output *y;        /* model_real, or a quantized model's int8 */
    FILE *f;
    int ok;
    if (argc < 4) {
        return fail("usage: export_driver in.bin out.bin batch [weights-file]");
    }
    batch = (size_t)strtoul(argv[3], NULL, 10);
    n_in = batch * MODEL_N_INPUTS;
    n_out = batch * MODEL_N_OUTPUTS;
    x = malloc(n_in * sizeof *x);
    y = malloc(3 * n_out * sizeof *y);
    ws = malloc(MODEL_WORKSPACE_BYTES > 0 ? MODEL_WORKSPACE_BYTES : 1);
    misaligned = malloc(2 * sizeof *misaligned);
    if (!x || !y || !ws || !misaligned) {
        return fail("out of memory");
    }
    f = fopen(argv[1], "rb");
    if (!f || fread(x, sizeof *x, n_in, f) != n_in) {
        return fail("cannot read the input rows");
    }
    fclose(f);
#ifdef MODEL_ERR_NO_WEIGHTS
    if (model_predict(x, y, batch, ws) != MODEL_ERR_NO_WEIGHTS) {
        return fail("predict before loading the weights did not fail");
    }
    if (model_load_weights(argv[1]) != MODEL_ERR_WEIGHTS_FILE
            || model_load_weights("no/such/file") != MODEL_ERR_WEIGHTS_FILE
            || model_load_weights(NULL) != MODEL_ERR_NULL) {
        return fail("a bad weights file was accepted");
    }
    if (argc < 5 || model_load_weights(argv[4]) != MODEL_OK) {
        return fail("cannot load the weights file");
    }
#endif
#if !defined(MODEL_STATIC_WORKSPACE) && MODEL_WORKSPACE_BYTES > 0
    if (model_predict(x, y, batch, NULL) != MODEL_ERR_NULL) {
        return fail("a NULL workspace was accepted without MODEL_STATIC_WORKSPACE");
    }
#endif
    if (model_predict(NULL, y, batch, NULL) != MODEL_ERR_NULL
            || model_predict(x, NULL, batch, ws) != MODEL_ERR_NULL
            || model_predict(x, y, 0, NULL) != MODEL_ERR_BATCH
            || model_predict(x, y, batch, (char *)misaligned + 1) != MODEL_ERR_ALIGN) {
        return fail("a bad argument was not reported");
    }
#ifdef MODEL_STATIC_WORKSPACE
    ok = model_predict(x, y, batch, NULL) == MODEL_OK
#else
    ok = model_predict(x, y, batch, ws) == MODEL_OK
#endif
        && model_predict(x, y + n_out, batch, ws) == MODEL_OK;
    for (size_t i = 0; ok && i < batch; i++) {
        ok = model_predict(x + i * MODEL_N_INPUTS, y + 2 * n_out + i * MODEL_N_OUTPUTS, 1,
                           ws) == MODEL_OK;
    }
    if (!ok) {
        return fail("predict failed");
    }
    f = fopen(argv[2], "wb");
    if (!f || fwrite(y, sizeof *y, 3 * n_out, f) != 3 * n_out) {
        return fail("cannot write the predictions");
    }
    fclose(f);
    free(x);
    free(y);
    free(ws);
    free(misaligned);
    return 0;
}

#ifdef DRIVER_STACK_BYTES
struct arguments {
    int argc, status;
    char **argv;
};

static void *run_on_thread(void *p)
{
    struct arguments *a = p;
    a->status = run(a->argc, a->argv);
    return NULL;
}

int main(int argc, char **argv)
{
    struct arguments a = {argc, 1, argv};
    pthread_attr_t attr;
    pthread_t thread;
    if (pthread_attr_init(&attr) != 0
            || pthread_attr_setstacksize(&attr, DRIVER_STACK_BYTES) != 0
            || pthread_create(&thread, &attr, run_on_thread, &a) != 0
            || pthread_join(thread, NULL) != 0) {
        return fail("cannot run on a thread of DRIVER_STACK_BYTES");
    }
    return a.status;
}
#else
int main(int argc, char **argv)
{
    return run(argc, argv);
}
#endif
