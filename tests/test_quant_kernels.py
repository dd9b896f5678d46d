"""The host int8 dense kernels of runtime/quant.h: each path the compiler can build here (the
AVX2 register tile and row kernel, the plain C loops forced by -DDLC_SCALAR_GEMM under the
same -march=native, the portable -O2 build) equals the interpreter bit for bit, on shapes
that reach every edge: inputs past one widened block (DLC_QKC = 1024) and odd, channels not
a multiple of 8 or 16, batches that leave 1..5 rows after the 6-row tiles, sums whose bias
overflows int32 and the extreme requantization shifts.  The AVX-512 path (VNNI's vpdpwssd,
or AVX-512BW's vpmaddwd) cannot run on this CPU: it is compiled strict, warning-free, and
its instructions are looked for in the assembly.  The AVX2 kernel widens its rows into the
workspace, whose stated size counts them: the export runs on glibc's smallest pthread stack."""
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc import interpreter
from dlc.ir import BATCH, GraphBuilder, TensorType
from dlc.library import compile_graph
from dlc.verify import verify
from test_export import SANITIZE, SANITIZER_ENV, STRICT, predict_with_driver

PATHS = {
    "avx2": ("-O3", "-march=native"),
    "plain C under avx2": ("-O3", "-march=native", "-DDLC_SCALAR_GEMM"),
    "portable": ("-O2",),
}
INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1
SMALL_STACK_KIB = 16     # glibc's smallest pthread stack: 12 KiB of widened rows overflow it


def qdense_graph(W, b, multiplier, shift, x_zero=-3, y_zero=4, lo=-128, hi=127):
    """x (f32) -> quantize -> qdense -> dequantize with scale 1: the integers read back."""
    builder = GraphBuilder()
    x = builder.input("x", TensorType((BATCH, W.shape[0]), "f32"))
    q = builder.add("quantize", x, layer="q", scale=0.05, zero_point=x_zero, dtype="i8")
    params = [builder.param(f"fc.{name}", value) for name, value in
              (("W", W), ("b", b), ("multiplier", multiplier), ("shift", shift))]
    q = builder.add("qdense", q, *params, layer="fc", x_zero=x_zero, y_zero=y_zero, lo=lo,
                    hi=hi)
    y = builder.add("dequantize", q, layer="dq", scale=1.0, zero_point=0, dtype="f32")
    return verify(builder.build([y]))


def random_layer(rng, K, N, shift=(6, 12)):
    W = rng.integers(-127, 128, size=(K, N)).astype(np.int8)
    b = rng.integers(-5000, 5000, size=N).astype(np.int32)
    multiplier = rng.integers(2 ** 30, 2 ** 31, size=N).astype(np.int32)
    return W, b, multiplier, rng.integers(*shift, size=N).astype(np.int32)


def inputs(rng, rows, K):
    """Rows that fill int8 (saturating both ways) after quantizing by 0.05."""
    return (rng.normal(size=(rows, K)) * 4).astype(np.float32)


def check(graph, X, flags):
    (expected,), _ = interpreter.run(graph, {"%x": X})
    np.testing.assert_array_equal(compile_graph(graph, flags=flags).predict(X), expected)
    return expected


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("K,N", [(1, 1), (2, 10), (7, 17), (256, 33), (1024, 16),
                                 (1027, 40), (2500, 9)])
def test_every_path_equals_interpreter(path, K, N):
    rng = np.random.default_rng(K + N)
    graph = qdense_graph(*random_layer(rng, K, N, shift=(8, 14) if K > 100 else (3, 8)))
    X = inputs(rng, 23, K)
    for rows in (1, 5, 6, 7, 11, 23):
        y = check(graph, X[:rows], PATHS[path])
    assert len(np.unique(y)) > 10    # the outputs span the range, not one clamped value


@pytest.mark.parametrize("path", sorted(PATHS))
def test_fused_relu_clamp_and_batches(path):
    rng = np.random.default_rng(1)
    graph = qdense_graph(*random_layer(rng, 300, 50, shift=(8, 12)), lo=-20, hi=90)
    X = inputs(rng, 257, 300)
    y = check(graph, X, PATHS[path])
    assert y.min() == -20 and y.max() == 90


@pytest.mark.parametrize("path", sorted(PATHS))
def test_bias_overflow_saturates_and_extreme_shifts(path):
    """Biases at the int32 limits push sum + bias past int32 both ways (the reference
    saturates it); shift -30 and 31 are the smallest and largest 31 + shift the rounding
    takes (1 and 62), with multipliers from 1 to the largest."""
    rng = np.random.default_rng(2)
    K, N = 200, 24
    W = rng.integers(-127, 128, size=(K, N)).astype(np.int8)
    b = np.resize(np.array([INT32_MAX, INT32_MIN, INT32_MAX - 5, INT32_MIN + 5, 0, 7],
                           np.int32), N)
    multiplier = np.resize(np.array([1, INT32_MAX, 2 ** 30, 12345], np.int32), N)
    shift = np.resize(np.array([-30, 31, 0, 20, 31, -30, 5, 12], np.int32), N)
    graph = qdense_graph(W, b, multiplier, shift, lo=-128, hi=127)
    y = check(graph, inputs(rng, 40, K), PATHS[path])
    assert {-128, 127} <= set(np.unique(y))


@pytest.mark.parametrize("n_in", [1024, 2048 + 3])
def test_avx2_path_under_the_sanitizers(n_in, tmp_path):
    """The AVX2 kernels built with AddressSanitizer and UBSan (-march=native): whole
    widened blocks of DLC_QKC inputs and an odd last one, 6-row tiles and the rows after
    them, read and write nothing out of bounds and give the interpreter's integers."""
    rng = np.random.default_rng(n_in)
    net = dlc.Sequential([dlc.Input(n_in), dlc.Dense(37), dlc.ReLU(), dlc.Dense(5)], seed=2)
    qnet = dlc.quantize(net, rng.normal(size=(100, n_in)))
    exported = dlc.export_c(qnet, tmp_path / "out", name="model")
    X = (rng.normal(size=(15, n_in)) * 2).astype(np.float32)
    for got in predict_with_driver(exported, X, tmp_path, SANITIZE + ["-march=native"],
                                   SANITIZER_ENV):
        np.testing.assert_array_equal(got, qnet.predict(X))


def quantized_export(tmp_path, name="model"):
    rng = np.random.default_rng(3)
    net = dlc.Sequential([dlc.Input(40), dlc.Dense(70), dlc.ReLU(), dlc.Dense(9)], seed=1)
    qnet = dlc.quantize(net, rng.normal(size=(200, 40)))
    return dlc.export_c(qnet, tmp_path / "out", name=name)


@pytest.mark.parametrize("cc", ["gcc", "clang"])
@pytest.mark.parametrize("features,instruction", [
    (("-mavx512f", "-mavx512bw", "-mavx512vnni"), "vpdpwssd"),
    (("-mavx512f", "-mavx512bw"), "vpmaddwd"),
])
def test_avx512_path_compiles_strict(features, instruction, cc, tmp_path):
    """The export built for AVX-512 (with and without VNNI) compiles without a warning, and
    its assembly holds the 512-bit multiply-adds (zmm registers)."""
    exported = quantized_export(tmp_path)
    asm = tmp_path / "model.s"
    done = subprocess.run([cc, *STRICT, *features, "-S", str(exported.source), "-o", str(asm)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert re.search(rf"\b{instruction}\b[^\n]*zmm", asm.read_text())


@pytest.mark.parametrize("cc", ["gcc", "clang"])
@pytest.mark.parametrize("isa", ["x86-64-v3", "dispatch"])
def test_isa_exports_equal_interpreter(isa, cc, tmp_path):
    """export_c(isa=...) puts the kernels in a target region (and, for dispatch, once per
    level: the AVX-512 tile in the x86-64-v4 copy): strict builds, and this CPU's copy gives
    the interpreter's integers."""
    rng = np.random.default_rng(4)
    net = dlc.Sequential([dlc.Input(40), dlc.Dense(70), dlc.ReLU(), dlc.Dense(9)], seed=1)
    qnet = dlc.quantize(net, rng.normal(size=(200, 40)))
    exported = dlc.export_c(qnet, tmp_path / "out", name="model", isa=isa)
    X = (rng.normal(size=(61, 40)) * 2).astype(np.float32)
    for got in predict_with_driver(exported, X, tmp_path, STRICT, cc=cc):
        np.testing.assert_array_equal(got, qnet.predict(X))


def widened_rows_bytes() -> int:
    """DLC_QMR rows of DLC_QKC int16 inputs: the AVX2 kernel's buffer, as runtime/quant.h
    defines it."""
    text = (Path(dlc.__file__).parent.parent / "runtime" / "quant.h").read_text()
    rows, kc = (int(re.search(rf"#define {name} (\d+)", text).group(1))
                for name in ("DLC_QMR", "DLC_QKC"))
    return rows * kc * 2


def wide_quantized(n_in=1024):
    rng = np.random.default_rng(5)
    net = dlc.Sequential([dlc.Input(n_in), dlc.Dense(37), dlc.ReLU(), dlc.Dense(5)], seed=2)
    return dlc.quantize(net, rng.normal(size=(100, n_in))), rng


def test_workspace_holds_the_widened_rows(tmp_path):
    """The host program's blocks are the AVX2 kernel's widened rows and nothing else, in
    the header, dlc.inspect and the library (one set per task); the embedded target's plain
    kernels need none."""
    qnet, _ = wide_quantized()
    report = dlc.inspect(qnet)
    assert report.block_bytes == widened_rows_bytes()
    assert report.workspace_bytes == report.arena_bytes + widened_rows_bytes()
    header = dlc.export_c(qnet, tmp_path / "out", name="model").header.read_text()
    assert f"#define MODEL_WORKSPACE_BYTES {report.workspace_bytes}\n" in header
    model = compile_graph(qnet.graph)
    arena = int(re.search(r"#define ARENA_ELEMENTS (\d+)", model.c_source).group(1)) * 4
    assert model.workspace_bytes == arena + widened_rows_bytes()
    model.threads = 2
    assert model.workspace_bytes == arena + 2 * widened_rows_bytes()
    embedded = dlc.inspect(qnet, target="cortex-m4", footprint=False)
    assert embedded.block_bytes == 0 and embedded.workspace_bytes == embedded.arena_bytes


@pytest.mark.parametrize("flags", [PATHS["avx2"], PATHS["portable"]])
def test_exported_kernel_runs_on_a_small_pthread_stack(flags, tmp_path):
    """K = 1024 and 2051 inputs (the widened rows full, then in blocks), 15 rows (two 6-row
    tiles and 3 after): the export runs on a pthread of SMALL_STACK_KIB KiB, in a workspace
    malloc'ed at exactly the stated size, and gives the interpreter's integers."""
    for n_in in (1024, 2051):
        qnet, rng = wide_quantized(n_in)
        exported = dlc.export_c(qnet, tmp_path / f"out{n_in}", name="model")
        X = (rng.normal(size=(15, n_in)) * 2).astype(np.float32)
        stack = [*STRICT, *flags, f"-DDRIVER_STACK_BYTES={SMALL_STACK_KIB * 1024}", "-pthread"]
        for got in predict_with_driver(exported, X, tmp_path, stack):
            np.testing.assert_array_equal(got, qnet.predict(X))

