/* dlc runtime: matrix multiply.  One entry point serves the forward pass
 * (X W) and both backward products (dY W^T and X^T dY).
 *
 * C (M, N) = op(A) op(B) + beta C, where op(A) is (M, K) and op(B) is (K, N);
 * op(A) = A^T when trans_a, reading A as (K, M); likewise for B.  Row-major,
 * with leading dimensions lda, ldb, ldc.  beta is 0 (overwrite, C is never read)
 * or 1 (accumulate).  An inference weight matrix B (never transposed) may instead come
 * packed once by dlc as column panels: with panel > 0, columns p * panel.. of B are K
 * rows of `panel` values at B + p * K * panel, zero-padded past N (see
 * dlc_b_column), so no product ever copies it.
 *
 * Under GCC or clang the product runs through packed, register-blocked
 * micro-kernels written with vector extensions: op(A) and op(B) are copied
 * block by block into contiguous panels (which is where the transposes
 * happen; untransposed rows close together, and panel-packed weights, are read
 * in place), and a micro-kernel keeps a DLC_MR x DLC_NR tile of C in 2 DLC_MR
 * named vector variables (an array would be spilled to the stack).  A product
 * of fewer than DLC_SMALL_M rows (batch-1 inference) streams through B without
 * packing; one narrower than the tile (N < DLC_NR: a classifier's 10 classes) takes
 * the tile turned on its side, DLC_NR rows in the lanes by up to DLC_MR columns.
 * OpenMP threads split C by columns only, never along K, and at the blocks each
 * path steps by, so every element is computed by the same code in the same order
 * whatever the thread count.  Elsewhere dlc_gemm_reference, the
 * plain loop, runs; it stays as the algorithmic reference.
 *
 * The packed blocks live in the caller's workspace (a dlc_scratch), never on the
 * stack: dlc sizes them for the products of each program (gemm_blocks in dlc/layout.py)
 * with the block sizes below, which -D may lower but not raise.  -DDLC_SCALAR_GEMM builds
 * the plain loop, which needs no blocks. */
#ifndef DLC_GEMM_H
#define DLC_GEMM_H

#include "activations.h"
#include "dlc_runtime.h"
#include "dlc_vec.h"

/* What to do with a finished tile: add a bias per column, then a piecewise
 * linear activation (DLC_ACT_NONE, _RELU or _LEAKY_RELU). */
typedef struct {
    const dlc_real *bias;   /* N values, or NULL */
    int act;
    dlc_real alpha;
} dlc_epilogue;

static inline dlc_real dlc_epilogue1(const dlc_epilogue *ep, size_t j, dlc_real z)
{
    if (ep->bias) {
        z += ep->bias[j];
    }
    if (ep->act == DLC_ACT_RELU) {
        return dlc_relu(z);
    }
    if (ep->act == DLC_ACT_LEAKY_RELU) {
        return dlc_leaky_relu(z, ep->alpha);
    }
    return z;
}

/* Where column j of an untransposed B starts (row k = 0); *stride receives the distance
 * between its rows: ldb for a row-major B, `panel` for a panel-packed one. */
static inline const dlc_real *dlc_b_column(const dlc_real *B, size_t ldb, size_t panel,
                                           size_t K, size_t j, size_t *stride)
{
    *stride = panel ? panel : ldb;
    return panel ? B + j / panel * K * panel + j % panel : B + j;
}

/* The reference: C = op(A) op(B) + beta C, then the epilogue, one element at a time. */
static inline void dlc_gemm_reference(int trans_a, int trans_b, size_t M, size_t N, size_t K,
                                      const dlc_real *A, size_t lda,
                                      const dlc_real *B, size_t ldb, size_t panel,
                                      dlc_real beta, dlc_real *C, size_t ldc,
                                      const dlc_epilogue *ep)
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
                for (size_t j = 0; j < N; j++) {
                    size_t stride;
                    Ci[j] += a * dlc_b_column(B, ldb, panel, K, j, &stride)[k * stride];
                }
            }
        }
        for (size_t j = 0; j < N; j++) {
            Ci[j] = dlc_epilogue1(ep, j, Ci[j]);
        }
    }
}

#ifdef DLC_VEC

/* The register tile: DLC_MR rows of two vectors (DLC_NR columns) of sums, one vector of B
 * and a broadcast value of A: 15 of 16 registers (6 x 16 floats with AVX2), 31 of 32 with
 * AVX-512 or NEON (14 x 32 floats with 64-byte vectors). */
#if DLC_VEC_REGS >= 32
#define DLC_MR 14
#else
#define DLC_MR 6
#endif
#define DLC_HALF_MR (DLC_MR / 2)                /* rows of the tile of an edge in rows */
#define DLC_NR (2 * DLC_VL)                     /* columns: two vectors */
/* DLC_TILE_ROWS(F): F(0) F(1) .. F(DLC_MR - 1), so that each row of the tile is a pair of
 * named variables (an array would be spilled to the stack). */
#define DLC_ROWS_6(F) F(0) F(1) F(2) F(3) F(4) F(5)
#define DLC_ROWS_14(F) DLC_ROWS_6(F) F(6) F(7) F(8) F(9) F(10) F(11) F(12) F(13)
#define DLC_ROWS_OF(mr) DLC_ROWS_##mr
#define DLC_ROWS(mr) DLC_ROWS_OF(mr)
#define DLC_TILE_ROWS(F) DLC_ROWS(DLC_MR)(F)
#ifndef DLC_KC                                 /* block sizes, overridable with -D */
#define DLC_KC (1024 / sizeof(dlc_real))        /* depth of a packed block: 1 KiB per row */
#endif
#ifndef DLC_MC
#define DLC_MC (72 / DLC_MR * DLC_MR)           /* rows of a packed A block (L2) */
#endif
#ifndef DLC_NC
#define DLC_NC 1024                             /* columns of a packed B block (L3) */
#endif
#define DLC_SMALL_M 4                           /* fewer rows: no packing */
#define DLC_ROW_VECS 8                          /* ..but rows of 8 vectors of sums */
#define DLC_IN_PLACE_BYTES 1024                 /* rows this close are read in place */
/* dlc plans the blocks for these defaults and the widest tiles (dlc/layout.py). */
typedef char dlc_blocks_fit_the_planned_scratch[
    DLC_MC <= 72 && DLC_NC <= 1024 && DLC_KC * sizeof(dlc_real) <= 1024
    && DLC_NR * sizeof(dlc_real) <= 128 && (DLC_MR == 6 || DLC_MR == 14) && DLC_SMALL_M == 4
    && DLC_IN_PLACE_BYTES == 1024 ? 1 : -1];
#ifndef DLC_PACK_AHEAD
#define DLC_PACK_AHEAD 4
#endif
#define DLC_PARALLEL_MACS (1L << 20)            /* less work: one thread (fork/join costs) */

/* Fetches the line `ahead` values after p into the cache; the address may lie past the
 * array (a prefetch never faults), so it is computed as an integer. */
static inline void dlc_prefetch(const dlc_real *p, size_t ahead)
{
    __builtin_prefetch((const void *)((uintptr_t)p + ahead * sizeof(dlc_real)));
}

/* Bias and piecewise linear activation on one vector of columns j.. j+DLC_VL-1;
 * bit for bit what dlc_epilogue1 computes (dlc_relu, dlc_leaky_relu: on the bits). */
static inline dlc_vec dlc_epilogue_vec(const dlc_epilogue *ep, dlc_vec bias, dlc_vec z)
{
    if (ep->bias) {
        z += bias;
    }
    const dlc_mask bits = (dlc_mask)z, negative = bits < 0;
    if (ep->act == DLC_ACT_RELU) {
        return (dlc_vec)(bits & (~negative | ((bits & DLC_MAGNITUDE_BITS) > DLC_INF_BITS)));
    }
    if (ep->act == DLC_ACT_LEAKY_RELU) {
        return (dlc_vec)((bits & ~negative) | ((dlc_mask)(ep->alpha * z) & negative));
    }
    return z;
}

#ifdef DLC_TURN
/* Depth 0.. 8 of one full panel of an untransposed A (rows src, lda apart) into
 * panel[k * DLC_MR + r]: the rows in groups of 8 (DLC_MR is 6 or 14: the last group 6
 * rows, padded with zeros), each group's 8 x 8 block turned by shuffles rather than
 * gathered one value at a time.  The last group goes first and each of its depths is
 * stored as 8 values: the 2 past its rows land on values stored after them (the next
 * depth's first rows, or the first group's), and the last depth's store is moved back
 * by 2 values so as to end where the block does. */
#define DLC_TAIL_STORE(k) dlc_store8(tail_out + k * DLC_MR, v[k]);
static inline void dlc_pack_a_turned(const dlc_real *src, size_t lda, dlc_real *panel)
{
    for (size_t r = 0; r < DLC_MR; r++) {
        dlc_prefetch(src + r * lda, 16 * 8);
    }
    const dlc_real *tail = src + (DLC_MR - 6) * lda;
    dlc_real *tail_out = panel + DLC_MR - 6;
    const dlc_vec8 zero = {0};
    dlc_vec8 v[8] = {dlc_load8(tail), dlc_load8(tail + lda), dlc_load8(tail + 2 * lda),
                     dlc_load8(tail + 3 * lda), dlc_load8(tail + 4 * lda),
                     dlc_load8(tail + 5 * lda), zero, zero};
    dlc_transpose8(v);
    DLC_ROWS_6(DLC_TAIL_STORE) DLC_TAIL_STORE(6)
    dlc_store8(tail_out + 7 * DLC_MR - 2, DLC_SHUFFLE8(v[6], v[7], 4, 5, 8, 9, 10, 11, 12, 13));
    for (size_t g = 0; g + 8 <= DLC_MR; g += 8) {
        dlc_turn8(src + g * lda, lda, panel + g, DLC_MR);
    }
}
#endif

/* Copies rows i0.. i0+mc of op(A), depth k0.. k0+kc, into panels of `height` rows
 * (DLC_MR for the wide tile, DLC_NR for the turned one), each stored k-major (height
 * values per k), zero-padded past row mc.  Full panels take loops of constant trip count
 * that gcc unrolls (for A^T, walking each row of A once); the last panel the general
 * loop.  Always inlined, so that each caller's constant height folds into them. */
static inline __attribute__((always_inline)) void dlc_pack_a(
    int trans_a, const dlc_real *A, size_t lda, size_t i0, size_t mc, size_t k0, size_t kc,
    size_t height, dlc_real *Ap)
{
    const size_t full = trans_a ? mc / height * height : 0;
    for (size_t k = 0; k < kc && full; k++) {     /* op(A) = A^T: walk A's rows once */
        const dlc_real *src = A + (k0 + k) * lda + i0;
        for (size_t ir = 0; ir < full; ir += height) {     /* a copy gcc vectorises */
            memcpy(Ap + ir * kc + k * height, src + ir, height * sizeof(dlc_real));
        }
    }
    for (size_t ir = full; ir < mc; ir += height) {
        const size_t mr = mc - ir < height ? mc - ir : height;
        dlc_real *panel = Ap + ir * kc;
        if (mr == height && !trans_a) {
            const dlc_real *src = A + (i0 + ir) * lda + k0;
            size_t k = 0;
#ifdef DLC_TURN
            for (; k + 8 <= kc; k += 8) {
                if (height == DLC_MR) {
                    dlc_pack_a_turned(src + k, lda, panel + k * DLC_MR);
                    continue;
                }
                for (size_t g = 0; g < height; g += 8) {    /* DLC_NR: groups of 8 rows */
                    dlc_turn8(src + g * lda + k, lda, panel + k * height + g, height);
                }
            }
#endif
            for (; k < kc; k++) {
                for (size_t r = 0; r < height; r++) {
                    panel[k * height + r] = src[r * lda + k];
                }
            }
        } else {
            for (size_t k = 0; k < kc; k++) {
                for (size_t r = 0; r < height; r++) {
                    const size_t i = i0 + ir + r, kk = k0 + k;
                    panel[k * height + r] = r >= mr ? 0
                                          : trans_a ? A[kk * lda + i] : A[i * lda + kk];
                }
            }
        }
    }
}

/* One DLC_NR-column panel of op(B): columns j0.. j0+nr, depth k0.. k0+kc, stored
 * k-major (DLC_NR values per k) and zero-padded past column nr.  The full panels of
 * an untransposed B are copied by dlc_pack_b_block. */
static inline void dlc_pack_b(int trans_b, const dlc_real *B, size_t ldb, size_t j0, size_t nr,
                              size_t k0, size_t kc, dlc_real *panel)
{
    if (nr == DLC_NR && trans_b) {
        const dlc_real *src = B + j0 * ldb + k0;
        size_t k = 0;
#ifdef DLC_TURN
        for (; k + DLC_VL <= kc; k += DLC_VL) {     /* DLC_VL x DLC_VL blocks turned */
            dlc_turn(src + k, ldb, panel + k * DLC_NR, DLC_NR);
            dlc_turn(src + DLC_VL * ldb + k, ldb, panel + k * DLC_NR + DLC_VL, DLC_NR);
        }
#endif
        for (; k < kc; k++) {
            for (size_t c = 0; c < DLC_NR; c++) {
                panel[k * DLC_NR + c] = src[c * ldb + k];
            }
        }
        return;
    }
    for (size_t k = 0; k < kc; k++) {
        for (size_t c = 0; c < DLC_NR; c++) {
            const size_t j = j0 + c, kk = k0 + k;
            panel[k * DLC_NR + c] = c >= nr ? 0
                                  : trans_b ? B[j * ldb + kk] : B[kk * ldb + j];
        }
    }
}

/* Columns j0.. j0+nc of op(B), depth k0.. k0+kc, as consecutive DLC_NR-column panels.
 * Without a transpose, full panels are copied row by row of B, so each row (often
 * a page of its own) is visited once rather than once per panel. */
static inline void dlc_pack_b_block(int trans_b, const dlc_real *B, size_t ldb, size_t j0,
                                    size_t nc, size_t k0, size_t kc, dlc_real *Bp)
{
    const size_t full = trans_b ? 0 : nc / DLC_NR * DLC_NR;
    for (size_t k = 0; k < kc && full; k++) {
        const dlc_real *src = B + (k0 + k) * ldb + j0;
        for (size_t jr = 0; jr < full; jr += DLC_NR) {
            dlc_prefetch(src + jr, DLC_PACK_AHEAD * ldb);
            dlc_store(Bp + jr * kc + k * DLC_NR, dlc_load(src + jr));
            dlc_store(Bp + jr * kc + k * DLC_NR + DLC_VL, dlc_load(src + jr + DLC_VL));
        }
    }
    for (size_t jr = full; jr < nc; jr += DLC_NR) {
        const size_t nr = nc - jr < DLC_NR ? nc - jr : DLC_NR;
        dlc_pack_b(trans_b, B, ldb, j0 + jr, nr, k0, kc, Bp + jr * kc);
    }
}

/* Finishes one vector of a tile's row: Ci[0..DLC_VL) = v (+ Ci), then the epilogue. */
static inline void dlc_finish_vec(dlc_real *Ci, dlc_vec v, int accumulate,
                                  const dlc_epilogue *ep, dlc_vec bias)
{
    if (accumulate) {
        v += dlc_load(Ci);
    }
    dlc_store(Ci, ep ? dlc_epilogue_vec(ep, bias, v) : v);
}

/* Finishes one full row of a tile: C[0..DLC_NR) = v0|v1 (+ C), then the epilogue. */
static inline void dlc_finish_row(dlc_real *Ci, dlc_vec v0, dlc_vec v1, int accumulate,
                                  const dlc_epilogue *ep, dlc_vec bias0, dlc_vec bias1)
{
    dlc_finish_vec(Ci, v0, accumulate, ep, bias0);
    dlc_finish_vec(Ci + DLC_VL, v1, accumulate, ep, bias1);
}

/* C tile (mr, nr) at C = Ap Bp (+ C when accumulate); the epilogue when ep.
 * Ap holds DLC_MR rows of kc values, row r, depth k at Ap[r * ars + k * aks] (a packed
 * panel, ars = 1 and aks = DLC_MR, or A itself, ars = lda and aks = 1); Bp kc rows of
 * DLC_NR values, ldbp apart (a packed panel, or B itself), the second vector of each b1
 * after the first (DLC_VL, or the next panel of a panel-packed B narrower than the tile).
 * The tile lives in 2 DLC_MR named vectors, which gcc keeps in registers.  `rows` is
 * a constant, DLC_MR or DLC_HALF_MR (an edge of that many rows or fewer: M = 256 leaves
 * 4 of 14), and the sums of rows past it are never computed. */
#define DLC_TILE_ZERO(i) dlc_vec c##i##_0 = {0}, c##i##_1 = {0};
#define DLC_TILE_FMA(i) \
    if (i < rows) { a = Ap[i * ars]; c##i##_0 += a * b0; c##i##_1 += a * b1v; }
#define DLC_TILE_FINISH(i) \
    if (i < mr) dlc_finish_row(C + i * ldc, c##i##_0, c##i##_1, accumulate, ep, bias0, bias1);
#define DLC_TILE_EDGE(i) \
    if (i < mr && whole) dlc_finish_vec(C + i * ldc, c##i##_0, accumulate, ep, bias0); \
    if (i < rows) dlc_store(edge + i * DLC_VL, whole ? c##i##_1 : c##i##_0);
static inline __attribute__((always_inline)) void dlc_tile_kernel(
    size_t rows, size_t kc, const dlc_real *Ap, size_t ars, size_t aks, const dlc_real *Bp,
    size_t ldbp, size_t b1, dlc_real *C, size_t ldc, size_t mr, size_t nr, int accumulate,
    const dlc_epilogue *ep, size_t j0)
{
    for (size_t i = 0; i < mr && kc >= 64; i++) {   /* C's rows are far apart: fetch them */
        __builtin_prefetch(C + i * ldc, 1);         /* while the sums take 64 steps or more */
        __builtin_prefetch(C + i * ldc + nr - 1, 1);
    }
    DLC_TILE_ROWS(DLC_TILE_ZERO)
    for (size_t k = 0; k < kc; k++) {
        const dlc_vec b0 = dlc_load(Bp), b1v = dlc_load(Bp + b1);
        dlc_real a;
        DLC_TILE_ROWS(DLC_TILE_FMA)
        Ap += aks;
        Bp += ldbp;
    }
    const int bias = ep && ep->bias;
    const dlc_vec bias0 = bias ? dlc_load(ep->bias + j0) : c0_0;
    if (nr == DLC_NR) {             /* the rows there are, whole */
        const dlc_vec bias1 = bias ? dlc_load(ep->bias + j0 + DLC_VL) : c0_0;
        DLC_TILE_ROWS(DLC_TILE_FINISH)
        return;
    }
    /* An edge in columns: the first vector of each row whole when nr allows, the vector
     * holding the edge through the stack, one per row, then value by value. */
    const size_t whole = nr >= DLC_VL ? DLC_VL : 0;
    dlc_real edge[DLC_MR * DLC_VL] __attribute__((aligned(DLC_VEC_BYTES)));
    DLC_TILE_ROWS(DLC_TILE_EDGE)
    for (size_t i = 0; i < mr; i++) {
        dlc_real *Ci = C + i * ldc;
        for (size_t j = whole; j < nr; j++) {
            const dlc_real v = edge[i * DLC_VL + j - whole] + (accumulate ? Ci[j] : 0);
            Ci[j] = ep ? dlc_epilogue1(ep, j0 + j, v) : v;
        }
    }
}

/* The tile for mr rows: the half-height copy when they fit in it. */
static inline void dlc_micro_kernel(size_t kc, const dlc_real *Ap, size_t ars, size_t aks,
                                    const dlc_real *Bp, size_t ldbp, size_t b1,
                                    dlc_real *C, size_t ldc, size_t mr, size_t nr,
                                    int accumulate, const dlc_epilogue *ep, size_t j0)
{
    if (mr <= DLC_HALF_MR) {
        dlc_tile_kernel(DLC_HALF_MR, kc, Ap, ars, aks, Bp, ldbp, b1, C, ldc, mr, nr,
                        accumulate, ep, j0);
    } else {
        dlc_tile_kernel(DLC_MR, kc, Ap, ars, aks, Bp, ldbp, b1, C, ldc, mr, nr, accumulate,
                        ep, j0);
    }
}

/* How far the second vector of the tile's columns j.. j+nr of a panel-packed B lies after
 * the first: in the same panel or the next (panels narrower than DLC_NR); 0, which loads
 * the first again, when nr leaves no second vector (that next panel may not exist). */
static inline size_t dlc_second_vector(const dlc_real *B, size_t panel, size_t K, size_t j,
                                       size_t nr)
{
    size_t stride;
    if (nr <= DLC_VL) {
        return 0;
    }
    return (size_t)(dlc_b_column(B, 0, panel, K, j + DLC_VL, &stride)
                    - dlc_b_column(B, 0, panel, K, j, &stride));
}

/* The depth of the blocks K is cut into: as even as multiples of 8 allow, at most DLC_KC
 * (K = 784 as 200 + 200 + 200 + 184, not 256 x 3 + 16, whose last block would load and
 * store C for 16 steps).  It depends on K alone: any thread count sums in the same order. */
static inline size_t dlc_depth_block(size_t K)
{
    const size_t blocks = (K + DLC_KC - 1) / DLC_KC, even = (K + blocks - 1) / blocks;
    const size_t rounded = (even + 7) / 8 * 8;
    return rounded < DLC_KC ? rounded : DLC_KC;
}

/* One task: columns j0.. j0+nc of C, all rows, all of K.  For each block of
 * DLC_NC columns and DLC_KC depth, op(B) is packed once into Bp (L3) and reused by
 * every block of DLC_MC rows of op(A), itself packed into Ap (L2) and swept by each
 * DLC_NR-column panel of Bp (L1).  Edge panels of a row-major B are packed
 * (zero-padded); a panel-packed B has its zero padding already.  Ap holds
 * min(M, DLC_MC) rows rounded up to DLC_MR by min(K, DLC_KC) (just the panel left over
 * when A's rows are read in place); Bp min(N, DLC_NC) columns rounded up to DLC_NR by
 * min(K, DLC_KC), and is not touched for a panel-packed B. */
static inline void dlc_gemm_columns(int trans_a, int trans_b, size_t M, size_t K,
                                    const dlc_real *A, size_t lda,
                                    const dlc_real *B, size_t ldb, size_t panel,
                                    int accumulate, dlc_real *C, size_t ldc,
                                    const dlc_epilogue *ep, size_t j0, size_t nc,
                                    dlc_real *Ap, dlc_real *Bp)
{
    const size_t depth = dlc_depth_block(K);
    /* A panel-packed B is never copied, so its columns need no blocks: A is packed once. */
    const size_t nc_block = panel ? nc : DLC_NC;
    for (size_t jc = j0; jc < j0 + nc; jc += nc_block) {
        const size_t ncc = j0 + nc - jc < nc_block ? j0 + nc - jc : nc_block;
        for (size_t k0 = 0; k0 < K; k0 += depth) {
            const size_t kc = K - k0 < depth ? K - k0 : depth;
            const int add = accumulate || k0 > 0;
            const dlc_epilogue *finish = k0 + kc == K ? ep : NULL;
            /* One block of rows uses each panel once: read B in place rather than
             * copy it, where its rows are close enough (1 KiB) for the cache sets.
             * Likewise A's full panels when its rows are that close.  A panel-packed
             * B is read in place whole, its zero padding completing the edge panel. */
            const size_t near = DLC_IN_PLACE_BYTES / sizeof(dlc_real);
            const int direct = !trans_b && M <= DLC_MC && ldb <= near;
            /* ..or whatever their distance when one panel of columns uses them (then A^T
             * too: each value is read once, so copying it would only add a pass). */
            const int direct_a = (!trans_a && lda <= near) || ncc <= DLC_NR;
            const size_t full = panel ? ncc : direct ? ncc / DLC_NR * DLC_NR : 0;
            if (full < ncc) {
                dlc_pack_b_block(trans_b, B, ldb, jc + full, ncc - full, k0, kc, Bp + full * kc);
            }
            for (size_t i0 = 0; i0 < M; i0 += DLC_MC) {
                const size_t mc = M - i0 < DLC_MC ? M - i0 : DLC_MC;
                const size_t in_place = direct_a ? mc / DLC_MR * DLC_MR : 0;
                if (in_place < mc) {
                    dlc_pack_a(trans_a, A, lda, i0 + in_place, mc - in_place, k0, kc, DLC_MR,
                               Ap);
                }
                for (size_t jr = 0; jr < ncc; jr += DLC_NR) {
                    const size_t nr = ncc - jr < DLC_NR ? ncc - jr : DLC_NR;
                    size_t ldbp = DLC_NR;
                    const dlc_real *b = jr < full
                        ? dlc_b_column(B, ldb, panel, K, jc + jr, &ldbp) + k0 * ldbp
                        : Bp + jr * kc;
                    const size_t b1 = jr < full && panel
                        ? dlc_second_vector(B, panel, K, jc + jr, nr) : DLC_VL;
                    for (size_t ir = 0; ir < mc; ir += DLC_MR) {
                        const size_t mr = mc - ir < DLC_MR ? mc - ir : DLC_MR;
                        const int packed = ir >= in_place;
                        const size_t ars = packed ? 1 : trans_a ? 1 : lda;
                        const size_t aks = packed ? DLC_MR : trans_a ? lda : 1;
                        dlc_micro_kernel(kc, packed ? Ap + (ir - in_place) * kc
                                                    : A + (i0 + ir) * ars + k0 * aks,
                                         ars, aks, b, ldbp, b1,
                                         C + (i0 + ir) * ldc + jc + jr, ldc, mr, nr, add,
                                         finish, jc + jr);
                    }
                }
            }
        }
    }
}

/* The turned tile, for products narrower than one panel (N < DLC_NR: a classifier's
 * logits, X^T dY for its weights), the wide tile's exact transpose: DLC_NR rows of C in
 * the lanes of 2 vectors, by nr <= DLC_MR columns, each a pair of named vectors (2 DLC_MR
 * of them, as in the wide tile).  Depth k of op(A)'s rows is 2 vectors at a + k a_step
 * (a packed panel, a_step = DLC_NR, or A^T itself, a_step = lda), and of op(B)'s nr
 * columns nr values side by side at b + k b_step (B itself, a panel of a panel-packed B,
 * or the B block).  nr must be a constant for the sums to stay in registers: the kernel
 * is always inlined into dlc_turned_tile, whose switch gives each count its own copy, and
 * leaves column j's sums in tile[j]. */
#define DLC_TURNED_TILE_ZERO(j) dlc_vec t##j##_0 = {0}, t##j##_1 = {0};
#define DLC_TURNED_TILE_FMA(j) \
    if (j < nr) { const dlc_real bj = b[j]; t##j##_0 += a0 * bj; t##j##_1 += a1 * bj; }
#define DLC_TURNED_TILE_SPILL(j) \
    if (j < nr) { dlc_store(tile[j], t##j##_0); dlc_store(tile[j] + DLC_VL, t##j##_1); }
static inline __attribute__((always_inline)) void dlc_turned_kernel(
    size_t nr, size_t kc, const dlc_real *a, size_t a_step, const dlc_real *b, size_t b_step,
    dlc_real (*tile)[DLC_NR])
{
    DLC_TILE_ROWS(DLC_TURNED_TILE_ZERO)
    for (size_t k = 0; k < kc; k++) {
        const dlc_vec a0 = dlc_load(a), a1 = dlc_load(a + DLC_VL);
        DLC_TILE_ROWS(DLC_TURNED_TILE_FMA)
        a += a_step;
        b += b_step;
    }
    DLC_TILE_ROWS(DLC_TURNED_TILE_SPILL)
}

/* One turned tile, stored turned back: mr rows of C, nr columns, at C (+ C when
 * accumulate), then the epilogue (columns j0..).  The tile's columns are turned back into
 * 8 rows of C's order at a time (by 8 x 8 blocks where dlc_turn8 exists: the tile has
 * whole 8-column blocks, zero past nr), each row then finished in one pass (8 columns at
 * a time when there is no epilogue: a classifier's product in training).  Not inlined:
 * its DLC_MR copies of the kernel are compiled once, however many products call the
 * matrix multiply. */
#ifdef DLC_TURN
#define DLC_TURNED_TILE_WIDTH ((DLC_MR + 7) / 8 * 8)
#else
#define DLC_TURNED_TILE_WIDTH DLC_MR
#endif
#define DLC_TURNED_TILE_CASE(j) \
    case j + 1: \
        dlc_turned_kernel(j + 1, kc, a, a_step, b, b_step, tile); \
        break;
static __attribute__((noinline, unused)) void dlc_turned_tile(
    size_t nr, size_t kc, const dlc_real *a, size_t a_step, const dlc_real *b, size_t b_step,
    dlc_real *C, size_t ldc, size_t mr, int accumulate, const dlc_epilogue *ep, size_t j0)
{
    dlc_real tile[DLC_TURNED_TILE_WIDTH][DLC_NR] __attribute__((aligned(DLC_VEC_BYTES)));
    dlc_real rows[8][DLC_TURNED_TILE_WIDTH] __attribute__((aligned(DLC_VEC_BYTES)));
    switch (nr) {
    DLC_TILE_ROWS(DLC_TURNED_TILE_CASE)
    default:
        return;
    }
    const int plain = !ep || (!ep->bias && ep->act == DLC_ACT_NONE);
#ifdef DLC_TURN
    const size_t width = (nr + 7) / 8 * 8;
    memset(tile[nr], 0, (width - nr) * sizeof tile[0]);
#endif
    for (size_t i0 = 0; i0 < mr; i0 += 8) {
#ifdef DLC_TURN
        for (size_t jb = 0; jb < width; jb += 8) {
            dlc_turn8(tile[jb] + i0, DLC_NR, rows[0] + jb, DLC_TURNED_TILE_WIDTH);
        }
#else
        for (size_t r = 0; r < 8 && i0 + r < mr; r++) {
            for (size_t j = 0; j < nr; j++) {
                rows[r][j] = tile[j][i0 + r];
            }
        }
#endif
        for (size_t r = 0; r < 8 && i0 + r < mr; r++) {
            dlc_real *Ci = C + (i0 + r) * ldc;
            const dlc_real *row = rows[r];
            size_t j = 0;
#ifdef DLC_TURN
            for (; plain && j + 8 <= nr; j += 8) {
                const dlc_vec8 v = dlc_load8(row + j);
                dlc_store8(Ci + j, accumulate ? v + dlc_load8(Ci + j) : v);
            }
#endif
            for (; j < nr; j++) {
                const dlc_real v = accumulate ? row[j] + Ci[j] : row[j];
                Ci[j] = plain ? v : dlc_epilogue1(ep, j0 + j, v);
            }
        }
    }
}

/* The whole product by turned tiles, when N < DLC_NR (always one task: tasks are whole
 * panels wide).  For each depth block (those of dlc_gemm_columns): op(B)^T is packed into
 * Bp as kc rows of N values, else read in place; then each DLC_NR rows of op(A) are read in
 * place (A^T, whole blocks) or packed into Ap (DLC_NR x kc, zero-padded: A, or the last
 * rows of A^T), and swept by groups of up to DLC_MR columns (never across two panels of
 * a panel-packed B). */
static inline void dlc_gemm_narrow(int trans_a, int trans_b, size_t M, size_t N, size_t K,
                                   const dlc_real *A, size_t lda,
                                   const dlc_real *B, size_t ldb, size_t panel,
                                   int accumulate, dlc_real *C, size_t ldc,
                                   const dlc_epilogue *ep, dlc_real *Ap, dlc_real *Bp)
{
    const size_t depth = dlc_depth_block(K);
    for (size_t k0 = 0; k0 < K; k0 += depth) {
        const size_t kc = K - k0 < depth ? K - k0 : depth;
        const int add = accumulate || k0 > 0;
        const dlc_epilogue *finish = k0 + kc == K ? ep : NULL;
        for (size_t k = 0; k < kc && trans_b; k++) {
            for (size_t j = 0; j < N; j++) {
                Bp[k * N + j] = B[j * ldb + k0 + k];
            }
        }
        for (size_t i0 = 0; i0 < M; i0 += DLC_NR) {
            const size_t mr = M - i0 < DLC_NR ? M - i0 : DLC_NR;
            const int in_place = trans_a && mr == DLC_NR;
            if (!in_place) {
                dlc_pack_a(trans_a, A, lda, i0, mr, k0, kc, DLC_NR, Ap);
            }
            const dlc_real *a = in_place ? A + k0 * lda + i0 : Ap;
            const size_t a_step = in_place ? lda : DLC_NR;
            for (size_t j0 = 0; j0 < N;) {
                size_t nr = N - j0 < DLC_MR ? N - j0 : DLC_MR, b_step = N;
                if (panel && panel - j0 % panel < nr) {
                    nr = panel - j0 % panel;
                }
                const dlc_real *b = trans_b ? Bp + j0
                    : dlc_b_column(B, ldb, panel, K, j0, &b_step) + k0 * b_step;
                dlc_turned_tile(nr, kc, a, a_step, b, b_step, C + i0 * ldc + j0, ldc, mr, add,
                                finish, j0);
                j0 += nr;
            }
        }
    }
}

/* Finishes DLC_VL sums s of row Ci at column j: + C, then the epilogue. */
static inline void dlc_store_row(dlc_real *Ci, size_t j, dlc_vec s, int accumulate,
                                 const dlc_epilogue *ep)
{
    const dlc_vec zero = {0};
    if (accumulate) {
        s += dlc_load(Ci + j);
    }
    dlc_store(Ci + j, dlc_epilogue_vec(ep, ep->bias ? dlc_load(ep->bias + j) : zero, s));
}

/* Sum over k < K of a[k * step] b[k * ldb .. + DLC_VL): the columns left over by
 * dlc_gemm_rows' blocks.  One chain of K dependent adds would wait on the add's latency
 * at every step; eight chains, summed at the end, keep both FMA units busy. */
static inline dlc_vec dlc_dot_vec(size_t K, const dlc_real *a, size_t step,
                                  const dlc_real *b, size_t ldb)
{
    dlc_vec t0 = {0}, t1 = {0}, t2 = {0}, t3 = {0}, t4 = {0}, t5 = {0}, t6 = {0}, t7 = {0};
    size_t k = 0;
    for (; k + 8 <= K; k += 8) {
        t0 += a[(k + 0) * step] * dlc_load(b + (k + 0) * ldb);
        t1 += a[(k + 1) * step] * dlc_load(b + (k + 1) * ldb);
        t2 += a[(k + 2) * step] * dlc_load(b + (k + 2) * ldb);
        t3 += a[(k + 3) * step] * dlc_load(b + (k + 3) * ldb);
        t4 += a[(k + 4) * step] * dlc_load(b + (k + 4) * ldb);
        t5 += a[(k + 5) * step] * dlc_load(b + (k + 5) * ldb);
        t6 += a[(k + 6) * step] * dlc_load(b + (k + 6) * ldb);
        t7 += a[(k + 7) * step] * dlc_load(b + (k + 7) * ldb);
    }
    for (; k < K; k++) {
        t0 += a[k * step] * dlc_load(b + k * ldb);
    }
    return ((t0 + t1) + (t2 + t3)) + ((t4 + t5) + (t6 + t7));
}

/* The same for one column b[k * ldb]. */
static inline dlc_real dlc_dot(size_t K, const dlc_real *a, size_t step,
                               const dlc_real *b, size_t ldb)
{
    dlc_real t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0, t5 = 0, t6 = 0, t7 = 0;
    size_t k = 0;
    for (; k + 8 <= K; k += 8) {
        t0 += a[(k + 0) * step] * b[(k + 0) * ldb];
        t1 += a[(k + 1) * step] * b[(k + 1) * ldb];
        t2 += a[(k + 2) * step] * b[(k + 2) * ldb];
        t3 += a[(k + 3) * step] * b[(k + 3) * ldb];
        t4 += a[(k + 4) * step] * b[(k + 4) * ldb];
        t5 += a[(k + 5) * step] * b[(k + 5) * ldb];
        t6 += a[(k + 6) * step] * b[(k + 6) * ldb];
        t7 += a[(k + 7) * step] * b[(k + 7) * ldb];
    }
    for (; k < K; k++) {
        t0 += a[k * step] * b[k * ldb];
    }
    return ((t0 + t1) + (t2 + t3)) + ((t4 + t5) + (t6 + t7));
}

/* Few rows and B not transposed (batch-1 inference): no packing; each row
 * streams once through columns j0.. j0+nc of B, eight vectors of sums in registers.
 * Vector v of a block starts (v / per) panels and (v % per) vectors after the first,
 * per vectors to a panel: all eight in one row-major "panel" unless B is panel-packed. */
static inline void dlc_gemm_rows(int trans_a, size_t M, size_t K,
                                 const dlc_real *A, size_t lda,
                                 const dlc_real *B, size_t ldb, size_t panel,
                                 int accumulate, dlc_real *C, size_t ldc,
                                 const dlc_epilogue *ep, size_t j0, size_t nc)
{
    const size_t end = j0 + nc, per = panel ? panel / DLC_VL : DLC_ROW_VECS, apart = K * panel;
    const size_t o1 = 1 / per * apart + 1 % per * DLC_VL, o2 = 2 / per * apart + 2 % per * DLC_VL;
    const size_t o3 = 3 / per * apart + 3 % per * DLC_VL, o4 = 4 / per * apart + 4 % per * DLC_VL;
    const size_t o5 = 5 / per * apart + 5 % per * DLC_VL, o6 = 6 / per * apart + 6 % per * DLC_VL;
    const size_t o7 = 7 / per * apart + 7 % per * DLC_VL;
    for (size_t i = 0; i < M; i++) {
        dlc_real *Ci = C + i * ldc;
        const dlc_real *Ai = A + (trans_a ? i : i * lda);
        const size_t a_step = trans_a ? lda : 1;
        size_t j = j0, stride;
        for (; j + DLC_ROW_VECS * DLC_VL <= end; j += DLC_ROW_VECS * DLC_VL) {
            const dlc_real *b = dlc_b_column(B, ldb, panel, K, j, &stride);
            dlc_vec s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, s4 = {0}, s5 = {0}, s6 = {0}, s7 = {0};
            for (size_t k = 0; k < K; k++) {
                const dlc_real a = Ai[k * a_step];
                const dlc_real *Bk = b + k * stride;
                s0 += a * dlc_load(Bk);
                s1 += a * dlc_load(Bk + o1);
                s2 += a * dlc_load(Bk + o2);
                s3 += a * dlc_load(Bk + o3);
                s4 += a * dlc_load(Bk + o4);
                s5 += a * dlc_load(Bk + o5);
                s6 += a * dlc_load(Bk + o6);
                s7 += a * dlc_load(Bk + o7);
            }
            dlc_store_row(Ci, j + 0 * DLC_VL, s0, accumulate, ep);
            dlc_store_row(Ci, j + 1 * DLC_VL, s1, accumulate, ep);
            dlc_store_row(Ci, j + 2 * DLC_VL, s2, accumulate, ep);
            dlc_store_row(Ci, j + 3 * DLC_VL, s3, accumulate, ep);
            dlc_store_row(Ci, j + 4 * DLC_VL, s4, accumulate, ep);
            dlc_store_row(Ci, j + 5 * DLC_VL, s5, accumulate, ep);
            dlc_store_row(Ci, j + 6 * DLC_VL, s6, accumulate, ep);
            dlc_store_row(Ci, j + 7 * DLC_VL, s7, accumulate, ep);
        }
        for (; j + DLC_VL <= end; j += DLC_VL) {
            const dlc_real *b = dlc_b_column(B, ldb, panel, K, j, &stride);
            dlc_store_row(Ci, j, dlc_dot_vec(K, Ai, a_step, b, stride), accumulate, ep);
        }
        /* A panel-packed B is zero-padded to whole vectors: its last columns (a classifier's
         * 10 of 16) take one vector's dot product, the same sums lane by lane as dlc_dot's. */
        if (j < end && panel && panel % DLC_VL == 0) {
            const dlc_real *b = dlc_b_column(B, ldb, panel, K, j, &stride);
            dlc_real s[DLC_VL] __attribute__((aligned(DLC_VEC_BYTES)));
            dlc_store(s, dlc_dot_vec(K, Ai, a_step, b, stride));
            for (size_t first = j; j < end; j++) {
                Ci[j] = dlc_epilogue1(ep, j, s[j - first] + (accumulate ? Ci[j] : 0));
            }
        }
        for (; j < end; j++) {
            const dlc_real *b = dlc_b_column(B, ldb, panel, K, j, &stride);
            const dlc_real s = dlc_dot(K, Ai, a_step, b, stride);
            Ci[j] = dlc_epilogue1(ep, j, s + (accumulate ? Ci[j] : 0));
        }
    }
}

/* A product cut into tasks that each own a range of C's columns, for all rows and
 * all of K: any split sums every element in the same order. */
typedef struct {
    int trans_a, trans_b, accumulate;
    size_t M, N, K, lda, ldb, panel, ldc, width;
    const dlc_real *A, *B;
    dlc_real *C;
    const dlc_epilogue *ep;
    const dlc_scratch *scratch;
} dlc_gemm_plan;

/* Task t of the plan, packing into slice t of the scratch. */
static inline void dlc_gemm_task(const dlc_gemm_plan *p, size_t t)
{
    const size_t j0 = t * p->width, nc = p->N - j0 < p->width ? p->N - j0 : p->width;
    const dlc_scratch *s = p->scratch;
    dlc_real *Ap = s->blocks + t * (s->a_elements + s->b_elements);
    if (p->M < DLC_SMALL_M && !p->trans_b) {
        dlc_gemm_rows(p->trans_a, p->M, p->K, p->A, p->lda, p->B, p->ldb, p->panel, p->accumulate,
                      p->C, p->ldc, p->ep, j0, nc);
    } else if (p->N < DLC_NR) {     /* the whole product's N: then it is one task */
        dlc_gemm_narrow(p->trans_a, p->trans_b, p->M, p->N, p->K, p->A, p->lda, p->B, p->ldb,
                        p->panel, p->accumulate, p->C, p->ldc, p->ep, Ap, Ap + s->a_elements);
    } else {
        dlc_gemm_columns(p->trans_a, p->trans_b, p->M, p->K, p->A, p->lda, p->B, p->ldb,
                         p->panel, p->accumulate, p->C, p->ldc, p->ep, j0, nc,
                         Ap, Ap + s->a_elements);
    }
}

static inline void dlc_gemm_ex(const dlc_scratch *scratch,
                               int trans_a, int trans_b, size_t M, size_t N, size_t K,
                               const dlc_real *A, size_t lda,
                               const dlc_real *B, size_t ldb, size_t panel,
                               dlc_real beta, dlc_real *C, size_t ldc, const dlc_epilogue *ep)
{
    if (M == 0 || N == 0) {
        return;
    }
    if (K == 0) {
        dlc_gemm_reference(trans_a, trans_b, M, N, K, A, lda, B, ldb, panel, beta, C, ldc, ep);
        return;
    }
    /* A product of few rows streams B from memory: worth two cores from 2^17 values of B. */
    const double work = (double)(M < DLC_SMALL_M ? 8 : M) * N * K;
    const int parallel = scratch->tasks > 1 && work >= DLC_PARALLEL_MACS;
    const size_t parts = parallel ? (size_t)scratch->tasks : 1;
    /* Task edges fall on the blocks each path steps by, so a column takes the same
     * code (and rounding) whatever the split. */
    const size_t step = M < DLC_SMALL_M && !trans_b ? DLC_ROW_VECS * DLC_VL : DLC_NR;
    const size_t width = ((N + parts - 1) / parts + step - 1) / step * step;
    const size_t n_tasks = (N + width - 1) / width;
    const dlc_gemm_plan p = {trans_a, trans_b, beta != 0, M, N, K, lda, ldb, panel, ldc, width,
                             A, B, C, ep, scratch};
    if (n_tasks > 1) {
#ifdef _OPENMP
        #pragma omp parallel for schedule(static) num_threads(scratch->tasks)
#endif
        for (long t = 0; t < (long)n_tasks; t++) {
            dlc_gemm_task(&p, (size_t)t);
        }
        return;
    }
    dlc_gemm_task(&p, 0);     /* one task: no call into the OpenMP runtime at all */
}

#else

static inline void dlc_gemm_ex(const dlc_scratch *scratch,
                               int trans_a, int trans_b, size_t M, size_t N, size_t K,
                               const dlc_real *A, size_t lda,
                               const dlc_real *B, size_t ldb, size_t panel,
                               dlc_real beta, dlc_real *C, size_t ldc, const dlc_epilogue *ep)
{
    (void)scratch;
    dlc_gemm_reference(trans_a, trans_b, M, N, K, A, lda, B, ldb, panel, beta, C, ldc, ep);
}

#endif

/* C = act(op(A) op(B) + bias): a dense layer's product with its bias and a
 * piecewise linear activation applied while the tile is in registers. */
static inline void dlc_gemm_bias_act(const dlc_scratch *scratch,
                                     int trans_a, int trans_b, size_t M, size_t N, size_t K,
                                     const dlc_real *A, size_t lda,
                                     const dlc_real *B, size_t ldb, size_t panel,
                                     dlc_real *C, size_t ldc,
                                     const dlc_real *bias, int act, dlc_real alpha)
{
    const dlc_epilogue ep = {bias, act, alpha};
    dlc_gemm_ex(scratch, trans_a, trans_b, M, N, K, A, lda, B, ldb, panel, 0, C, ldc, &ep);
}

/* C = op(A) op(B) + beta C: the matrix products of the backward pass. */
static inline void dlc_gemm(const dlc_scratch *scratch,
                            int trans_a, int trans_b, size_t M, size_t N, size_t K,
                            const dlc_real *A, size_t lda, const dlc_real *B, size_t ldb,
                            dlc_real beta, dlc_real *C, size_t ldc)
{
    const dlc_epilogue none = {NULL, DLC_ACT_NONE, 0};
    dlc_gemm_ex(scratch, trans_a, trans_b, M, N, K, A, lda, B, ldb, 0, beta, C, ldc, &none);
}

#endif
