/* Two exported models in one program: "alpha" (float) and "beta" (double).
 *   two_models alpha_in.bin beta_in.bin out.bin batch
 * writes alpha's predictions, then beta's. */
#include <stdio.h>
#include <stdlib.h>

#include "alpha.h"
#include "beta.h"

static int read_all(const char *path, void *buffer, size_t size)
{
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(buffer, 1, size, f) : 0;
    if (f) {
        fclose(f);
    }
    return got == size;
}

int main(int argc, char **argv)
{
    size_t batch;
    alpha_real *xa, *ya;
    beta_real *xb, *yb;
    FILE *f;
    int ok;
    if (argc != 5) {
        fprintf(stderr, "usage: two_models alpha_in.bin beta_in.bin out.bin batch\n");
        return 1;
    }
    batch = (size_t)strtoul(argv[4], NULL, 10);
    xa = malloc(batch * ALPHA_N_INPUTS * sizeof *xa);
    ya = malloc(batch * ALPHA_N_OUTPUTS * sizeof *ya);
    xb = malloc(batch * BETA_N_INPUTS * sizeof *xb);
    yb = malloc(batch * BETA_N_OUTPUTS * sizeof *yb);
    ok = xa && ya && xb && yb
        && read_all(argv[1], xa, batch * ALPHA_N_INPUTS * sizeof *xa)
        && read_all(argv[2], xb, batch * BETA_N_INPUTS * sizeof *xb)
        && alpha_predict(xa, ya, batch, NULL) == ALPHA_OK
        && beta_predict(xb, yb, batch, NULL) == BETA_OK;
    f = ok ? fopen(argv[3], "wb") : NULL;
    ok = f && fwrite(ya, sizeof *ya, batch * ALPHA_N_OUTPUTS, f) == batch * ALPHA_N_OUTPUTS
        && fwrite(yb, sizeof *yb, batch * BETA_N_OUTPUTS, f) == batch * BETA_N_OUTPUTS;
    if (f) {
        fclose(f);
    }
    free(xa);
    free(ya);
    free(xb);
    free(yb);
    if (!ok) {
        fprintf(stderr, "two_models failed\n");
    }
    return !ok;
}
