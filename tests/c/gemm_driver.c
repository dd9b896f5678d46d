/* Test driver for the runtime's matrix multiply on a machine the tests cannot load a
 * library on (an emulated one), compiled after the source of dlc's gemm module in one file:
 *   gemm_driver cases.bin out.bin
 * reads products one after the other, each 9 int64 values (trans_a, trans_b, M, N, K, lda,
 * ldb, ldc, beta) then A, B and C as dlc_real values, and writes each C after
 * C = op(A) op(B) + beta C.  First it prints what the kernels were built for:
 * "<isa> <vector bytes> <tile rows>x<tile columns>". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what)
{
    fprintf(stderr, "gemm_driver: %s\n", what);
    return 1;
}

static dlc_real *read_values(FILE *f, size_t n)
{
    dlc_real *values = malloc((n ? n : 1) * sizeof *values);
    if (values && fread(values, sizeof *values, n, f) != n) {
        free(values);
        return NULL;
    }
    return values;
}

/* One product from `in` to `out`: 1 when done, 0 at the end of the cases, -1 on an error. */
static int one_product(FILE *in, FILE *out)
{
    int64_t h[9];
    if (fread(h, sizeof h[0], 9, in) != 9) {
        return 0;
    }
    const size_t M = (size_t)h[2], N = (size_t)h[3], K = (size_t)h[4];
    const size_t lda = (size_t)h[5], ldb = (size_t)h[6], ldc = (size_t)h[7];
    const size_t a_rows = h[0] ? K : M, b_rows = h[1] ? N : K;
    dlc_real *A = read_values(in, a_rows * lda), *B = read_values(in, b_rows * ldb);
    dlc_real *C = read_values(in, M * ldc);
    int done = A && B && C
        && dlc_matmul((int)h[0], (int)h[1], M, N, K, A, lda, B, ldb, (dlc_real)h[8], C, ldc,
                      1) == 0
        && fwrite(C, sizeof *C, M * ldc, out) == M * ldc;
    free(A);
    free(B);
    free(C);
    return done ? 1 : -1;
}

int main(int argc, char **argv)
{
    char isa[32];
    int vec_bytes, mr, nr, status;
    if (argc != 3) {
        return fail("usage: gemm_driver cases.bin out.bin");
    }
    FILE *in = fopen(argv[1], "rb"), *out = fopen(argv[2], "wb");
    if (!in || !out) {
        return fail("cannot open the cases or the output");
    }
    dlc_kernel_isa(isa, sizeof isa, &vec_bytes, &mr, &nr);
    printf("%s %d %dx%d\n", isa, vec_bytes, mr, nr);
    while ((status = one_product(in, out)) == 1) {
    }
    fclose(in);
    if (fclose(out) != 0 || status < 0) {
        return fail("a product could not be read, computed or written");
    }
    return 0;
}
