/* Runs a model exported by dlc on rows read from a text file and prints, for each
 * row, the predicted class (the largest output) and the outputs (the probabilities
 * when the model ends in a softmax).
 *
 *   dlc.export_c(net, "model", name="digits")    # in Python
 *   make MODEL_DIR=model NAME=digits && ./predict rows.txt
 *
 * rows.txt holds whitespace-separated numbers, N_INPUTS per row (line breaks are
 * free); "-" or no argument reads standard input.  Output: one line per row,
 * "class p0 p1 ...".  No dynamic memory: rows go through the model in chunks.
 *
 * The model's name reaches this file as MODEL (its symbols' prefix), MODEL_UPPER (its
 * macros' prefix) and MODEL_HEADER (the Makefile sets all three from NAME). */
#include <stdio.h>
#include <stdlib.h>

#ifndef MODEL
#define MODEL digits
#define MODEL_UPPER DIGITS
#define MODEL_HEADER "digits.h"
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

#define CHUNK 64

static real x[CHUNK * N_INPUTS];
static real y[CHUNK * N_OUTPUTS];
/* Any memory aligned for the model's real type will do; one extra value avoids a zero-size array. */
static real workspace[WORKSPACE_BYTES / sizeof(real) + 1];

/* Reads up to CHUNK rows into x; returns the number of complete rows and sets *bad
 * when the input ends inside a row or holds something that is not a number. */
static int read_rows(FILE *in, int *bad)
{
    int rows = 0;
    for (; rows < CHUNK; rows++) {
        for (int j = 0; j < N_INPUTS; j++) {
            double value;
            int got = fscanf(in, "%lf", &value);
            if (got != 1) {
                *bad = !(got == EOF && j == 0);
                return rows;
            }
            x[rows * N_INPUTS + j] = (real)value;
        }
    }
    return rows;
}

static void print_rows(int rows)
{
    for (int i = 0; i < rows; i++) {
        const real *yi = y + i * N_OUTPUTS;
        int best = 0;
        for (int j = 1; j < N_OUTPUTS; j++) {
            best = yi[j] > yi[best] ? j : best;
        }
        printf("%d", best);
        for (int j = 0; j < N_OUTPUTS; j++) {
            printf(" %.17g", (double)yi[j]);
        }
        printf("\n");
    }
}

int main(int argc, char **argv)
{
    FILE *in = stdin;
    long total = 0;
    int rows, bad = 0;
    if (argc > 2) {
        fprintf(stderr, "usage: %s [rows.txt]\n", argv[0]);
        return 2;
    }
    if (argc == 2 && argv[1][0] != '-') {
        in = fopen(argv[1], "r");
        if (!in) {
            perror(argv[1]);
            return 1;
        }
    }
    while ((rows = read_rows(in, &bad)) > 0) {
        int status = model_predict(x, y, (size_t)rows, workspace);
        if (status != STATUS_OK) {
            fprintf(stderr, "predict failed with code %d\n", status);
            return 1;
        }
        print_rows(rows);
        total += rows;
        if (bad) {
            break;
        }
    }
    if (in != stdin) {
        fclose(in);
    }
    if (bad) {
        fprintf(stderr, "input ends inside row %ld or holds a non-number "
                "(expected %d numbers per row)\n", total + 1, N_INPUTS);
        return 1;
    }
    return 0;
}
