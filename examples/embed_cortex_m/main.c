/* Runs a model exported by dlc for a Cortex-M on rows read from a file, one row at a
 * time, and prints per row the predicted class and the outputs; then the stack the
 * predictions used at most (measured by painting it) and whether they stayed inside
 * the workspace.  Under QEMU the file and the printing go through semihosting.
 *
 *   python -m dlc export model.dlc -o model --name digits --target cortex-m4
 *   make run        # see the Makefile and README.md
 *
 * The model's name reaches this file as MODEL (its symbols' prefix), MODEL_UPPER (its
 * macros' prefix) and MODEL_HEADER; ROWS_FILE names the input file. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifndef MODEL
#define MODEL digits
#define MODEL_UPPER DIGITS
#define MODEL_HEADER "digits.h"
#endif
#ifndef ROWS_FILE
#define ROWS_FILE "rows.txt"
#endif
#include MODEL_HEADER

#define PASTE_(a, b) a##b
#define PASTE(a, b) PASTE_(a, b)
#define N_INPUTS PASTE(MODEL_UPPER, _N_INPUTS)
#define N_OUTPUTS PASTE(MODEL_UPPER, _N_OUTPUTS)
#define WORKSPACE_BYTES PASTE(MODEL_UPPER, _WORKSPACE_BYTES)
#define STATUS_OK PASTE(MODEL_UPPER, _OK)
#define model_predict PASTE(MODEL, _predict)
typedef PASTE(MODEL, _real) real;

#define PAINT 0xC5C5C5C5u
#define GUARD_WORDS 16

/* The workspace, exactly WORKSPACE_BYTES, then painted guard words that must survive. */
static struct {
    uint32_t workspace[(WORKSPACE_BYTES + 3) / 4 + 1];    /* +1: never an empty array */
    uint32_t guard[GUARD_WORDS];
} memory;
extern uint32_t __stack_limit__;

static real x[N_INPUTS], y[N_OUTPUTS];

/* Paints the stack from its limit up to the caller's frame (inlined: the caller's stack
 * pointer is the one read). */
static inline __attribute__((always_inline)) uint32_t *paint_stack(void)
{
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (volatile uint32_t *p = &__stack_limit__; p < sp; p++) {
        *p = PAINT;             /* volatile: not a call to memset, whose frame is below sp */
    }
    return sp;
}

/* Bytes of stack used below `sp` since it was painted (inlined: a frame of its own
 * would be counted). */
static inline __attribute__((always_inline)) size_t stack_used(const uint32_t *sp)
{
    const volatile uint32_t *p = &__stack_limit__;
    while (p < sp && *p == PAINT) {
        p++;
    }
    return (size_t)((const char *)sp - (const volatile char *)p);
}

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

int main(void)
{
    FILE *in = fopen(ROWS_FILE, "r");
    size_t peak = 0;
    if (!in) {
        printf("cannot open %s\n", ROWS_FILE);
        return 1;
    }
    for (int j = 0; j < GUARD_WORDS; j++) {
        memory.guard[j] = PAINT;
    }
    while (read_row(in)) {
        uint32_t *sp = paint_stack();
        int status = model_predict(x, y, 1, memory.workspace);
        size_t used = stack_used(sp);
        peak = used > peak ? used : peak;
        if (status != STATUS_OK) {
            printf("predict failed with code %d\n", status);
            return 1;
        }
        int best = 0;
        for (int j = 1; j < N_OUTPUTS; j++) {
            best = y[j] > y[best] ? j : best;
        }
        printf("%d", best);
        for (int j = 0; j < N_OUTPUTS; j++) {
            printf(" %.9g", (double)y[j]);
        }
        printf("\n");
    }
    fclose(in);
    int guard_ok = 1;
    for (int j = 0; j < GUARD_WORDS; j++) {
        guard_ok &= memory.guard[j] == PAINT;
    }
    printf("stack %u bytes at most\n", (unsigned)peak);
    printf("workspace %u bytes, guard %s\n", (unsigned)WORKSPACE_BYTES,
           guard_ok ? "intact" : "OVERWRITTEN");
    return guard_ok ? 0 : 2;
}
