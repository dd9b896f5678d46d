/* Runs a model exported by dlc for a Cortex-M under QEMU (semihosting): one prediction
 * per row of ROWS_FILE, each row's outputs printed (integers with -DINTEGER_OUTPUT, for
 * an int8 output; else %.9g, which reads back as the same float); then REPEATS more
 * predictions of the last row timed by SysTick on the processor clock, printed as
 * "systick T repeats R".  Under
 * `qemu-system-arm -icount shift=0` the virtual clock advances 1 ns per instruction and
 * the mps2 boards clock SysTick at 25 MHz, so T * 40 / R is the instructions one
 * prediction executes (instructions, not the core's cycles).  The model reaches this
 * file as MODEL, MODEL_UPPER and MODEL_HEADER, as in examples/embed_cortex_m. */
#include <stdint.h>
#include <stdio.h>

#include MODEL_HEADER

#ifndef REPEATS
#define REPEATS 100
#endif

#define PASTE_(a, b) a##b
#define PASTE(a, b) PASTE_(a, b)
#define N_INPUTS PASTE(MODEL_UPPER, _N_INPUTS)
#define N_OUTPUTS PASTE(MODEL_UPPER, _N_OUTPUTS)
#define WORKSPACE_BYTES PASTE(MODEL_UPPER, _WORKSPACE_BYTES)
#define STATUS_OK PASTE(MODEL_UPPER, _OK)
#define model_predict PASTE(MODEL, _predict)
typedef PASTE(MODEL, _real) real;
typedef PASTE(MODEL, _output) output;

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_MASK 0xFFFFFFu

static uint32_t workspace[(WORKSPACE_BYTES + 3) / 4 + 1];
static real x[N_INPUTS];
static output y[N_OUTPUTS];

static int read_row(FILE *in)
{
    for (int j = 0; j < N_INPUTS; j++) {
        float value;
        if (fscanf(in, "%f", &value) != 1) {
            return 0;
        }
        x[j] = (real)value;
    }
    return 1;
}

static void print_row(void)
{
    for (int j = 0; j < N_OUTPUTS; j++) {
#ifdef INTEGER_OUTPUT
        printf(j ? " %d" : "%d", (int)y[j]);
#else
        printf(j ? " %.9g" : "%.9g", (double)y[j]);
#endif
    }
    printf("\n");
}

int main(void)
{
    FILE *in = fopen(ROWS_FILE, "r");
    if (!in) {
        printf("cannot open %s\n", ROWS_FILE);
        return 1;
    }
    while (read_row(in)) {
        if (model_predict(x, y, 1, workspace) != STATUS_OK) {
            printf("predict failed\n");
            return 1;
        }
        print_row();
    }
    fclose(in);
    SYST_RVR = SYST_MASK;
    SYST_CVR = 0;
    SYST_CSR = 5u;          /* enabled, processor clock, no interrupt */
    const uint32_t start = SYST_CVR;
    for (int r = 0; r < REPEATS; r++) {
        model_predict(x, y, 1, workspace);
    }
    const uint32_t ticks = (start - SYST_CVR) & SYST_MASK;     /* it counts down */
    printf("systick %u repeats %u\n", (unsigned)ticks, (unsigned)REPEATS);
    return 0;
}
