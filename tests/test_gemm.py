"""The runtime matrix multiply (dlc_gemm), the dense kernel and softmax against NumPy.

Tolerance: the forward error bound of a sum of K+1 products, |C - exact| <= (K + 1) eps
(|op(A)| |op(B)| + |beta C|), elementwise, with "exact" computed in float64 (float32
cases) or longdouble (float64 cases).  A wrong element, a missed row or a misread
leading dimension is off by O(1) and fails it.
"""
from functools import lru_cache

import numpy as np
import pytest

from dlc import ops
from dlc.build import build
from dlc.targets.kernels import generate_gemm_module
from dlc.layout import PANEL_BYTES, as_panels

DTYPES = {np.float32: "f32", np.float64: "f64"}
# Every vector width on any machine: a width wider than the CPU's is lowered to several
# registers, so the 64-byte code (and its 14-row tile) is checked on AVX2 and the 16-byte
# code on AVX-512 (-O2 where the vectors are wider than the CPU's: gcc -O3 takes half a
# minute to lower them).
WIDTHS = {f"w{n}": ("-O3" if n <= 32 else "-O2", "-march=native", "-fopenmp",
                    f"-DDLC_VEC_BYTES={n}") for n in (64, 32, 16)}
FLAG_SETS = {
    "native": "native",                        # the widest vectors of this CPU, OpenMP
    "portable": "portable",                    # 16-byte vectors, no OpenMP
    "scalar": ("-O2", "-DDLC_SCALAR_GEMM"),    # the plain reference loop
    # tiny blocks: many row, column and depth blocks even on small shapes
    "small-blocks": ("-O3", "-march=native", "-DDLC_MC=12", "-DDLC_NC=32", "-DDLC_KC=40"),
    **WIDTHS,
}
ACTIVATIONS = {name: code for code, name in enumerate(ops.ACTIVATIONS)}   # the C enum
SHAPES = [(1, 1, 1), (1, 300, 17), (2, 10, 256), (3, 65, 300), (5, 33, 9), (6, 16, 1),
          (7, 17, 257), (64, 256, 784 // 4), (73, 129, 255), (300, 1, 300), (13, 300, 2),
          (150, 150, 150), (255, 7, 64), (64, 300, 64), (1, 64, 1000)]


@lru_cache(maxsize=None)
def gemm_module(dtype, flags="native"):
    header, source = generate_gemm_module(DTYPES[dtype])
    return build(header, source, flags=FLAG_SETS[flags])


def c_pointer(ffi, array):
    """A pointer to the first element of ``array``, which may be a column slice [:, :n]
    of a wider C-contiguous buffer."""
    buffer = array if array.flags.c_contiguous else array.base
    assert buffer.flags.c_contiguous and buffer.ctypes.data == array.ctypes.data
    return ffi.from_buffer({np.float32: "float[]", np.float64: "double[]"}[array.dtype.type],
                           buffer, require_writable=array.flags.writeable)


def matmul(A, B, C, trans_a, trans_b, beta, dtype, flags="native", threads=1):
    """Calls dlc_gemm on (possibly strided-row) views; C is updated in place."""
    ffi, lib = gemm_module(dtype, flags)
    lib.dlc_set_threads(threads)
    M, N = C.shape
    K = A.shape[0] if trans_a else A.shape[1]
    lib.dlc_matmul(trans_a, trans_b, M, N, K, c_pointer(ffi, A), A.strides[0] // A.itemsize,
                   c_pointer(ffi, B), B.strides[0] // B.itemsize, beta,
                   c_pointer(ffi, C), C.strides[0] // C.itemsize, 1)


def padded(rng, rows, cols, dtype, pad):
    """A (rows, cols) view into a wider row-major buffer (leading dimension cols + pad)."""
    buffer = rng.normal(size=(rows, cols + pad)).astype(dtype)
    return buffer[:, :cols]


def product_case(dtype, M, N, K, trans_a, trans_b, beta, pad=3, seed=0):
    """(A, B, C, buffer): operands as views into buffers pad values wider than their rows;
    C (beta 1: random values; beta 0: NaN, which must never be read) is buffer[:, :N]."""
    rng = np.random.default_rng(seed)
    A = padded(rng, *((K, M) if trans_a else (M, K)), dtype, pad)
    B = padded(rng, *((N, K) if trans_b else (K, N)), dtype, pad)
    buffer = np.full((M, N + pad), np.nan, dtype)
    C = buffer[:, :N]
    if beta:
        C[:] = rng.normal(size=(M, N))
    return A, B, C, buffer


def check_result(A, B, C0, buffer, trans_a, trans_b, beta):
    """buffer[:, :N] is op(A) op(B) + beta C0 within the error bound, and its padding is
    untouched."""
    dtype, (M, N) = A.dtype.type, C0.shape
    wide = np.longdouble if dtype == np.float64 else np.float64
    opA, opB = (A.T if trans_a else A).astype(wide), (B.T if trans_b else B).astype(wide)
    C0 = C0.astype(wide) if beta else np.zeros((M, N), wide)   # beta 0: C (NaN) is never read
    exact = opA @ opB + C0
    K = opA.shape[1]
    bound = (K + 1) * np.finfo(dtype).eps * (np.abs(opA) @ np.abs(opB) + np.abs(C0))
    error = np.abs(buffer[:, :N].astype(wide) - exact)
    worst = np.unravel_index(np.argmax(error - bound), error.shape)
    assert np.all(error <= bound), (f"{M}x{N}x{K} ta={trans_a} tb={trans_b} beta={beta}: error "
                                    f"{error[worst]:.3g} > bound {bound[worst]:.3g} at {worst}")
    assert np.isnan(buffer[:, N:]).all(), "dlc_gemm wrote past column N (into ldc padding)"


def check_product(dtype, M, N, K, trans_a, trans_b, beta, flags="native", pad=3, seed=0):
    A, B, C, buffer = product_case(dtype, M, N, K, trans_a, trans_b, beta, pad, seed)
    C0 = C.copy()
    matmul(A, B, C, trans_a, trans_b, beta, dtype, flags)
    check_result(A, B, C0, buffer, trans_a, trans_b, beta)


@pytest.mark.parametrize("flags", sorted(WIDTHS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (0, 1), (1, 0), (1, 1)])
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_gemm_equals_numpy(M, N, K, trans_a, trans_b, dtype, flags):
    for beta in (0.0, 1.0):
        check_product(dtype, M, N, K, trans_a, trans_b, beta, flags=flags)


@pytest.mark.parametrize("flags,seed", [("native", s) for s in range(4)]
                         + [(w, s) for w in sorted(WIDTHS) for s in (4, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_random_odd_shapes(dtype, seed, flags):
    rng = np.random.default_rng(seed + 100)
    for _ in range(8):
        M, N, K = rng.integers(1, 301, size=3)
        check_product(dtype, int(M), int(N), int(K), int(rng.integers(2)), int(rng.integers(2)),
                      float(rng.integers(2)), flags=flags, pad=int(rng.integers(0, 5)),
                      seed=seed)


@pytest.mark.parametrize("flags", ["portable", "scalar", "small-blocks"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_portable_scalar_and_blocked_paths_equal_numpy(trans_a, trans_b, dtype, flags):
    for M, N, K in [(1, 37, 300), (3, 17, 5), (70, 129, 257)]:
        for beta in (0.0, 1.0):
            check_product(dtype, M, N, K, trans_a, trans_b, beta, flags=flags)


@pytest.mark.parametrize("flags", ["native", "small-blocks", *sorted(WIDTHS)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (0, 1), (1, 0), (1, 1)])
@pytest.mark.parametrize("M,N,K", [(145, 520, 784), (78, 33, 513), (7, 1030, 257),
                                   (73, 16, 264), (12, 257, 1030)])
def test_block_edges_equal_numpy(M, N, K, trans_a, trans_b, dtype, flags):
    """Products that cross the blocks: M past whole row blocks (72 rows, 12 with
    small-blocks), N past column blocks (1024; 32), K cut into uneven depth blocks (784 =
    200 x 3 + 184; 513 = 176 x 2 + 161; 1030 = 208 x 4 + 198), padded leading dimensions
    wider than the rows read in place, so A's full panels are packed by 8 x 8 turns."""
    for beta in (0.0, 1.0):
        check_product(dtype, M, N, K, trans_a, trans_b, beta, flags=flags, pad=5)


# Narrower than one panel of the wide tile (N < DLC_NR: 32, 16 or 8 columns at float32,
# half at float64): the turned tile, rows in the lanes.  M past whole blocks of DLC_NR rows
# (read in place for A^T, packed for A), N in one group of columns (up to DLC_MR, 14 or 6)
# or several, K in one depth block or several (1000: 4 at float64, 25 with small-blocks).
NARROW_SHAPES = [(4, 10, 1), (5, 1, 7), (31, 14, 8), (33, 15, 9), (255, 17, 255),
                 (257, 31, 257), (33, 10, 1000), (64, 7, 64), (100, 2, 300), (40, 13, 33)]


@pytest.mark.parametrize("flags", ["native", "small-blocks", "portable", *sorted(WIDTHS)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (0, 1), (1, 0), (1, 1)])
@pytest.mark.parametrize("M,N,K", NARROW_SHAPES)
def test_narrow_products_equal_numpy(M, N, K, trans_a, trans_b, dtype, flags):
    for beta in (0.0, 1.0):
        check_product(dtype, M, N, K, trans_a, trans_b, beta, flags=flags, pad=5)


@pytest.mark.parametrize("flags", sorted(WIDTHS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (0, 1), (1, 0), (1, 1)])
@pytest.mark.parametrize("M,N,K", [(1, 4000, 300), (3, 1100, 400), (64, 300, 256),
                                   (300, 257, 100), (200, 30, 300),
                                   (700, 10, 300)])
def test_results_identical_for_any_thread_count(M, N, K, trans_a, trans_b, dtype, flags):
    """Threads split C into tiles, never K: every element is summed in the same order.
    Every shape here is above the 2^20 multiply-adds that make dlc_gemm go parallel."""
    assert M * N * K >= 1 << 20
    rng = np.random.default_rng(M * N + K)
    A = rng.normal(size=(K, M) if trans_a else (M, K)).astype(dtype)
    B = rng.normal(size=(N, K) if trans_b else (K, N)).astype(dtype)
    C0 = rng.normal(size=(M, N)).astype(dtype)
    results = {}
    for threads in (1, 2, 3):
        C = C0.copy()
        matmul(A, B, C, trans_a, trans_b, 1.0, dtype, flags, threads=threads)
        results[threads] = C
    np.testing.assert_array_equal(results[2], results[1])
    np.testing.assert_array_equal(results[3], results[1])
    assert not np.array_equal(results[1], C0)


def dense_layer(x, W, b, activation, flags="native", packing="row-major", threads=1):
    """y = act(x W + b) by the runtime's dense kernel, W row-major or panel-packed."""
    rows, (n_in, n_out) = x.shape[0], W.shape
    panel = PANEL_BYTES // W.itemsize if packing == "panels" else 0
    weights = np.ascontiguousarray(as_panels(W, panel) if panel else W)
    y = np.full((rows, n_out), np.nan, W.dtype)
    ffi, lib = gemm_module(W.dtype.type, flags)
    lib.dlc_set_threads(threads)
    lib.dlc_dense_layer(rows, n_in, n_out, c_pointer(ffi, x), c_pointer(ffi, weights), panel,
                        c_pointer(ffi, b), c_pointer(ffi, y), ACTIVATIONS[activation], 0.1, 1)
    return y


@pytest.mark.parametrize("packing", ["row-major", "panels"])
@pytest.mark.parametrize("flags", sorted(FLAG_SETS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("rows,n_in,n_out", [(1, 300, 70), (1, 32, 10), (2, 5, 3), (7, 64, 33),
                                             (64, 29, 300), (200, 64, 10), (37, 150, 12),
                                             (16, 7, 1), (40, 20, 30)])
def test_dense_epilogue_equals_numpy(rows, n_in, n_out, activation, dtype, flags, packing):
    """Bias and activation in the kernel epilogue, on full and edge tiles, with the weights
    row-major or panel-packed (inference); softmax also on its own kernel (rows on their
    side, up to 12 outputs, depth in blocks of 64) or after the product (30 outputs); the
    reference is dlc's NumPy op evaluated on the exact product."""
    rng = np.random.default_rng(rows + n_in + n_out)
    x, W = rng.normal(size=(rows, n_in)), rng.normal(size=(n_in, n_out))
    b = rng.normal(size=n_out)
    x, W, b = x.astype(dtype), W.astype(dtype), b.astype(dtype)
    y = dense_layer(x, W, b, activation, flags, packing)
    z = x.astype(np.float64) @ W.astype(np.float64) + b
    expected = ops.ACTIVATIONS[activation].forward(z, 0.1)
    eps = np.finfo(dtype).eps
    z_bound = (n_in + 1) * eps * (np.abs(x) @ np.abs(W) + np.abs(b))
    if activation == "softmax":     # |d s_i| <= s_i (|dz_i| + sum_j s_j |dz_j|), then its own
        shifted = np.abs(z - z.max(axis=1, keepdims=True))      # roundings (see the kernel test)
        bound = expected * (2 * z_bound.max(axis=1, keepdims=True) + (4 + n_out + shifted) * eps)
        bound += 2 * np.finfo(dtype).tiny   # float32's exp gives 0, not denormals, below -87.3
    else:
        slope = {"sigmoid": 0.25, "tanh": 0.25, "silu": 1.1}.get(activation, 1.0)  # |d act / dz|
        roundings = 4 if activation == "silu" else 2            # the activation's own (sigmoid, *)
        bound = slope * z_bound + roundings * eps * np.abs(expected)
    error = np.abs(y - expected)
    worst = np.argmax(error - bound)
    assert np.all(error <= bound), (f"error {error.flat[worst]:.3g} > bound "
                                    f"{bound.flat[worst]:.3g} at {worst}")


@pytest.mark.parametrize("packing", ["row-major", "panels"])
@pytest.mark.parametrize("flags", ["native", "small-blocks", *sorted(WIDTHS)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["none", "relu", "leaky_relu"])
@pytest.mark.parametrize("rows,n_in,n_out", [(257, 300, 10), (33, 1000, 15), (100, 40, 17),
                                             (5, 9, 31)])
def test_narrow_dense_epilogue_equals_numpy(rows, n_in, n_out, activation, dtype, flags,
                                            packing):
    """The turned tile's epilogue (bias per column, then the activation) on the last depth
    block only, its columns grouped within one panel of panel-packed weights (17 and 31
    outputs span two 64-byte panels, 10 and 15 two at float64)."""
    rng = np.random.default_rng(rows + n_in + n_out)
    x, W, b = (rng.normal(size=s).astype(dtype) for s in ((rows, n_in), (n_in, n_out), n_out))
    y = dense_layer(x, W, b, activation, flags, packing)
    z = x.astype(np.float64) @ W.astype(np.float64) + b
    expected = ops.ACTIVATIONS[activation].forward(z, 0.1)
    bound = (n_in + 1) * np.finfo(dtype).eps * (np.abs(x) @ np.abs(W) + np.abs(b))
    assert np.all(np.abs(y - expected) <= bound + 2 * np.finfo(dtype).eps * np.abs(expected))


@pytest.mark.parametrize("rows,n_in,n_out", [(1, 700, 300), (3, 100, 520), (300, 90, 333)])
@pytest.mark.parametrize("flags", sorted(WIDTHS))
def test_panel_packed_dense_identical_for_any_thread_count(rows, n_in, n_out, flags):
    rng = np.random.default_rng(rows)
    x, W, b = (rng.normal(size=s).astype(np.float32) for s in ((rows, n_in), (n_in, n_out), n_out))
    one = dense_layer(x, W, b, "relu", flags, packing="panels")
    assert np.isfinite(one).all()
    for threads in (2, 3):
        np.testing.assert_array_equal(dense_layer(x, W, b, "relu", flags, packing="panels",
                                                  threads=threads), one)


@pytest.mark.parametrize("flags", ["native", "small-blocks", *sorted(WIDTHS)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,n_in,n_out", [(150, 784, 600), (9, 300, 1030)])
def test_panel_packed_dense_across_blocks_equals_numpy(rows, n_in, n_out, dtype, flags):
    """Panel-packed weights are swept whole, A packed once per row and depth block: more
    columns than a column block, depth in uneven blocks; bound as for the product."""
    rng = np.random.default_rng(n_out)
    x, W, b = (rng.normal(size=s).astype(dtype) for s in ((rows, n_in), (n_in, n_out), n_out))
    y = dense_layer(x, W, b, "relu", flags, packing="panels")
    z = x.astype(np.float64) @ W.astype(np.float64) + b
    bound = (n_in + 1) * np.finfo(dtype).eps * (np.abs(x) @ np.abs(W) + np.abs(b))
    assert np.all(np.abs(y - np.maximum(z, 0)) <= bound)


def test_panels_are_the_columns_in_cache_line_strips():
    W = np.arange(3 * 20, dtype=np.float32).reshape(3, 20)
    packed = as_panels(W, 16).reshape(2, 3, 16)
    np.testing.assert_array_equal(packed[0], W[:, :16])
    np.testing.assert_array_equal(packed[1, :, :4], W[:, 16:])
    assert not packed[1, :, 4:].any()


def softmax_rows(x, flags="native", in_place=False):
    ffi, lib = gemm_module(x.dtype.type, flags)
    x = x.copy()
    y = x if in_place else np.full_like(x, np.nan)
    lib.dlc_softmax_rows(x.shape[0], x.shape[1], c_pointer(ffi, x), c_pointer(ffi, y))
    return y


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("flags", sorted(FLAG_SETS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,n", [(1, 10), (7, 10), (8, 1), (9, 3), (16, 8), (37, 10),
                                    (40, 16), (17, 23), (256, 10), (24, 64), (24, 65), (5, 300)])
def test_softmax_kernel_equals_numpy(rows, n, dtype, flags, in_place):
    """Softmax on its own, rows taken a vector's lanes at a time on their side (8 or more)
    or one at a time: whole groups, groups with leftover rows, rows of whole 8-blocks and
    leftover columns, longer rows than the turned path takes, in place or not.  Within
    the float64 softmax of the same inputs by (4 + n + |x - max|) eps relative: the exp's
    1.3 ulp, the rounding of x - max (relative in the exp's argument), the sum, the divide."""
    rng = np.random.default_rng(rows * n)
    x = (3 * rng.normal(size=(rows, n))).astype(dtype)
    y = softmax_rows(x, flags, in_place)
    shifted = x.astype(np.float64) - x.max(axis=1, keepdims=True)
    expected = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    bound = (4 + n + np.abs(shifted)) * np.finfo(dtype).eps * expected
    error = np.abs(y - expected)
    assert np.all(error <= bound), f"worst error / bound {np.max(error / bound):.3g}"


@pytest.mark.parametrize("flags", sorted(WIDTHS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_on_its_side_equals_row_by_row(dtype, flags):
    """A row gives the same bits in a group of turned rows (as many as a vector's lanes)
    as alone (one row is never turned): the turned path does the same operations in the
    same order."""
    x = (5 * np.random.default_rng(1).normal(size=(40, 10))).astype(dtype)
    together = softmax_rows(x, flags)
    alone = np.vstack([softmax_rows(row[None], flags) for row in x])
    np.testing.assert_array_equal(together, alone)


def test_set_threads_reports_the_count_in_effect():
    _, lib = gemm_module(np.float32)
    assert lib.dlc_set_threads(2) == 2
    assert lib.dlc_set_threads(0) == 1
    _, portable = gemm_module(np.float32, "portable")
    assert portable.dlc_set_threads(2) == 1


# ---------------------------------------------------------------- through dlc.compile

def wide_net(dtype):
    import dlc
    return dlc.Sequential([dlc.Input(300), dlc.Dense(3600), dlc.ReLU(), dlc.Dense(130),
                           dlc.Tanh(), dlc.Dense(10), dlc.Softmax()], dtype=dtype, seed=3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_model_identical_for_any_thread_count(dtype):
    import dlc
    net = wide_net(dtype)
    X = np.random.default_rng(0).normal(size=(300, 300)).astype(dtype)
    one, two = dlc.compile(net), dlc.compile(net, threads=2)
    assert one.threads == 1 and two.threads == 2
    for batch in (1, 3, 300):       # batch 1: 300 x 3600 multiply-adds, enough to go parallel
        np.testing.assert_array_equal(two.predict(X[:batch]), one.predict(X[:batch]))
    tolerance = {"float32": 1e-5, "float64": 1e-12}[dtype]
    np.testing.assert_allclose(one.predict(X), dlc.reference(net).predict(X), rtol=tolerance,
                               atol=tolerance / 10)


@pytest.mark.parametrize("bad, error, message", [
    (0, ValueError, "threads must be a positive integer, got 0"),
    (-1, ValueError, "threads must be a positive integer, got -1"),
    (1.5, TypeError, r"threads must be an integer, got 1.5 \(float\)"),
    ("2", TypeError, r"threads must be an integer, got '2' \(str\)"),
    (True, TypeError, r"threads must be an integer, got True \(bool\)"),
    (None, TypeError, "threads must be an integer, got None"),
])
def test_threads_must_be_a_positive_integer(bad, error, message):
    import dlc
    with pytest.raises(error, match=message):
        dlc.compile(wide_net("float32"), threads=bad)
    model = dlc.compile(wide_net("float32"))
    with pytest.raises(error, match=message):
        model.threads = bad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_input_on_the_fast_path_names_the_row(bad, dtype):
    """A C-contiguous array of the model's dtype skips the Python checks; C finds the
    NaN or inf and Python then names the row."""
    import dlc
    model = dlc.compile(wide_net(np.dtype(dtype).name))
    X = np.zeros((5, 300), dtype)
    X[3, 299] = bad
    with pytest.raises(ValueError, match="NaN or inf .first at row 3"):
        model.predict(X)


@pytest.mark.parametrize("flags", ["native", "portable"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_check_finds_a_nonfinite_value_at_every_position(dtype, flags):
    """C's check keeps 32 maxima side by side, then takes the tail one by one: a NaN or
    inf at any index of either part, in a batch of any length, is found, and the largest
    finite values and the subnormals pass."""
    import dlc
    net = dlc.Sequential([dlc.Input(37), dlc.Dense(3)], dtype=np.dtype(dtype).name, seed=0)
    model = dlc.compile(net, flags=flags)
    info = np.finfo(dtype)
    for rows in (1, 2, 3):                      # 37, 74, 111 values: 5, 10, 15 in the tail
        X = np.zeros((rows, 37), dtype)
        X.flat[::3] = info.max
        X.flat[1::3] = -info.max
        X.flat[2::5] = info.smallest_subnormal
        model.predict(X)                        # every value finite: no error
        for index in range(X.size):
            for bad in (np.nan, np.inf, -np.inf):
                Y = X.copy()
                Y.flat[index] = bad
                with pytest.raises(ValueError, match=f"first at row {index // 37}"):
                    model.predict(Y)


def test_flag_presets():
    import dlc
    from dlc.build import FLAG_PRESETS, resolve_flags
    assert resolve_flags("native") == FLAG_PRESETS["native"]
    assert "-march=native" not in resolve_flags("portable")
    X = np.random.default_rng(1).normal(size=(7, 300)).astype(np.float32)
    portable = dlc.compile(wide_net("float32"), flags="portable")
    np.testing.assert_allclose(portable.predict(X), dlc.reference(wide_net("float32")).predict(X),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown flag preset 'fast'"):
        dlc.compile(wide_net("float32"), flags="fast")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_path_falls_back_for_strided_and_converted_inputs(dtype):
    import dlc
    model = dlc.compile(wide_net(np.dtype(dtype).name))
    X = np.random.default_rng(2).normal(size=(8, 300)).astype(dtype)
    expected = model.predict(X)
    np.testing.assert_array_equal(model.predict(np.asfortranarray(X)), expected)
    np.testing.assert_array_equal(model.predict(np.repeat(X, 2, axis=0)[::2]), expected)
    np.testing.assert_array_equal(model.predict(X.tolist()), expected)
    other = np.float64 if dtype == np.float32 else np.float32
    converted = model.predict(X.astype(other))
    np.testing.assert_array_equal(converted, model.predict(X.astype(other).astype(dtype)))
