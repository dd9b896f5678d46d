/* dlc runtime: the per-feature affine map of a normalize or batch norm layer that no
 * pass folded into a dense layer. */

/* Per-feature affine map y = (x - mean) / sqrt(var + eps) * gamma + beta,
 * x and y (rows, n); gamma or beta may be NULL (1 and 0). */
static inline void dlc_standardize(size_t rows, size_t n, const dlc_real *x,
                                   const dlc_real *gamma, const dlc_real *beta,
                                   const dlc_real *mean, const dlc_real *var,
                                   dlc_real eps, dlc_real *y)
{
    for (size_t i = 0; i < rows; i++) {
        for (size_t j = 0; j < n; j++) {
            dlc_real v = (x[i * n + j] - mean[j]) / dlc_sqrt(var[j] + eps);
            if (gamma) {
                v *= gamma[j];
            }
            if (beta) {
                v += beta[j];
            }
            y[i * n + j] = v;
        }
    }
}
