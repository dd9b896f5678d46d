/* dlc runtime: the input check of a library's entry point. */

/* Whether x[0..n) holds no NaN or inf.  On the bits: the largest magnitude has the
 * exponent all ones exactly when some value is not finite; an integer max reduction
 * vectorises without reordering any floating-point arithmetic. */
static inline int dlc_all_finite(size_t n, const dlc_real *x)
{
#if DLC_DOUBLE
    const uint64_t magnitude = 0x7fffffffffffffffu, infinity = 0x7ff0000000000000u;
    uint64_t largest = 0, bits;
#else
    const uint32_t magnitude = 0x7fffffffu, infinity = 0x7f800000u;
    uint32_t largest = 0, bits;
#endif
    for (size_t i = 0; i < n; i++) {
        memcpy(&bits, x + i, sizeof bits);
        bits &= magnitude;
        largest = bits > largest ? bits : largest;
    }
    return largest < infinity;
}
