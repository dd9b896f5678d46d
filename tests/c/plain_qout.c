/* Reads records of (sum, bias, multiplier, shift, y_zero, lo, hi) as int32 from qout.bin
 * and writes dlc_plain_qout of each, as int32, to qout.out (in the working directory, which
 * semihosting opens too). */
#include <stdio.h>

#include "portable_quant.h"

int main(void)
{
    FILE *in = fopen("qout.bin", "rb");
    FILE *out = fopen("qout.out", "wb");
    int32_t r[7];
    if (!in || !out) {
        printf("cannot open the files\n");
        return 1;
    }
    while (fread(r, sizeof r[0], 7, in) == 7) {
        const int32_t v = dlc_plain_qout(r[0], r[1], r[2], r[3], r[4], r[5], r[6]);
        fwrite(&v, sizeof v, 1, out);
    }
    fclose(in);
    fclose(out);
    printf("done\n");
    return 0;
}
