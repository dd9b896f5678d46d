/* dlc runtime: matrix multiply.  One entry point serves the forward pass
 * (X W) and both backward products (dY W^T and X^T dY).
 *
 * C (M, N) = op(A) op(B) + beta C, where op(A) is (M, K) and op(B) is (K, N);
 * op(A) = A^T when trans_a, reading A as (K, M); likewise for B.  Row-major,
 * with leading dimensions lda, ldb, ldc.  beta is 0 (overwrite) or 1 (accumulate).
 * This is the plain reference loop; it stays as the algorithmic reference. */
static inline void dlc_gemm(int trans_a, int trans_b, size_t M, size_t N, size_t K,
                            const dlc_real *A, size_t lda, const dlc_real *B, size_t ldb,
                            dlc_real beta, dlc_real *C, size_t ldc)
{
    for (size_t i = 0; i < M; i++) {
        dlc_real *Ci = C + i * ldc;
        if (beta == 0) {
            for (size_t j = 0; j < N; j++) {
                Ci[j] = 0;
            }
        }
        for (size_t k = 0; k < K; k++) {
            const dlc_real a = trans_a ? A[k * lda + i] : A[i * lda + k];
            if (trans_b) {
                for (size_t j = 0; j < N; j++) {
                    Ci[j] += a * B[j * ldb + k];
                }
            } else {
                const dlc_real *Bk = B + k * ldb;
                for (size_t j = 0; j < N; j++) {
                    Ci[j] += a * Bk[j];
                }
            }
        }
    }
}
