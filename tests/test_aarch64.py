"""The kernels at NEON width on a real AArch64 target.  aarch64-linux-gnu-gcc builds the
runtime for its baseline, which has NEON: the 16-byte vectors live in NEON registers and,
AArch64 having 32 of them, the matrix multiply takes the 14-row tile (14 x 8 at float32,
14 x 4 at float64).  Built statically under the strict flags and run under qemu-aarch64:

- the matrix multiply (every transpose, beta 0 and 1, padded leading dimensions, shapes from
  one element through the block edges and the narrow products) against NumPy within
  test_gemm's forward error bound, nothing written past column N;
- exported models, portable and dispatching (whose x86 kernels a non-x86 compiler never
  sees), against the reference interpreter within helpers.assert_matches' tolerances.

.ci/run installs gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user."""
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.targets.kernels import generate_gemm_module
from helpers import assert_matches
from test_export import MODELS, STRICT, compile_c, inputs_for, predict_with_driver, run
from test_gemm import DTYPES, SHAPES, check_result, product_case

HERE = Path(__file__).resolve().parent
CC = "aarch64-linux-gnu-gcc"
QEMU = ("qemu-aarch64",)
FLAGS = [*STRICT, "-O3", "-static"]
TILE = {np.float32: "NEON 16 14x8", np.float64: "NEON 16 14x4"}
# Past the row blocks (72 rows), the column blocks (1024) and uneven depth blocks (784, 1030),
# and narrower than a panel (the turned tile where vectors have 8 lanes; here 4).
BLOCK_SHAPES = [(145, 520, 784), (7, 1030, 257), (12, 257, 1030), (255, 10, 256), (33, 3, 9)]
CASES = [(M, N, K, ta, tb, beta) for M, N, K in SHAPES + BLOCK_SHAPES
         for ta in (0, 1) for tb in (0, 1) for beta in (0.0, 1.0)]


def write_cases(path, dtype):
    """The products in gemm_driver's format; returns each one's (A, B, C, buffer)."""
    cases = []
    with open(path, "wb") as f:
        for seed, (M, N, K, ta, tb, beta) in enumerate(CASES):
            A, B, C, buffer = product_case(dtype, M, N, K, ta, tb, beta, pad=3, seed=seed)
            header = [ta, tb, M, N, K, A.base.shape[1], B.base.shape[1], buffer.shape[1], beta]
            f.write(np.array(header, np.int64).tobytes())
            for array in (A.base, B.base, buffer):
                f.write(array.tobytes())
            cases.append((A, B, C.copy(), buffer))
    return cases


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_on_aarch64_equals_numpy(dtype, tmp_path):
    _, source = generate_gemm_module(DTYPES[dtype])
    driver = tmp_path / "gemm_driver.c"
    driver.write_text(source + (HERE / "c" / "gemm_driver.c").read_text())
    binary = compile_c([driver], tmp_path / "gemm_driver", FLAGS, tmp_path, CC)
    cases = write_cases(tmp_path / "cases.bin", dtype)
    out = run([*QEMU, binary, tmp_path / "cases.bin", tmp_path / "out.bin"]).stdout
    assert out.splitlines()[0] == TILE[dtype]
    results = np.fromfile(tmp_path / "out.bin", dtype)
    assert results.size == sum(buffer.size for *_, buffer in cases)
    at = 0
    for (A, B, C0, buffer), (*_, ta, tb, beta) in zip(cases, CASES):
        got = results[at:at + buffer.size].reshape(buffer.shape)
        at += buffer.size
        check_result(A, B, C0, got, ta, tb, beta)


@pytest.mark.parametrize("isa", ["portable", "dispatch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_exported_c_on_aarch64_equals_reference(model, dtype, isa, tmp_path):
    net = MODELS[model](dtype)
    exported = dlc.export_c(net, tmp_path / "out", name="model", isa=isa)
    X = inputs_for(net)
    expected = dlc.reference(net).predict(X)
    scale = max(1.0, np.abs(expected).max())
    internal, own, row_by_row = predict_with_driver(exported, X, tmp_path, FLAGS, cc=CC,
                                                    runner=QEMU)
    assert_matches(internal, expected, dtype, what=f"{model} on AArch64", scale=scale)
    np.testing.assert_array_equal(own, internal)
    assert_matches(row_by_row, expected, dtype, what=f"{model} on AArch64, row by row",
                   scale=scale)
