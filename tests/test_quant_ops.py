"""The integer ops of quantized graphs: the C kernels equal the interpreter bit for bit,
on every batch size, for int8 and int16; the requantization rounds as documented."""
import math
from fractions import Fraction

import numpy as np
import pytest

from dlc import interpreter
from dlc.ir import BATCH, GraphBuilder, TensorType
from dlc.library import compile_graph
from dlc.ops import OPS, ShapeError, infer_type, requantize
from dlc.verify import VerifyError, verify

BATCHES = [1, 7, 64, 257, 1000]


def float_sandwich(op, dtype="i8", rng=None, K=13, N=7, fused=None):
    """x (f32) -> quantize -> op -> dequantize: a graph the inference library runs whose
    integer op is read back exactly (dequantize with scale 1 and zero point 0 turns each
    integer into the float of the same value)."""
    rng = rng or np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input("x", TensorType((BATCH, K), "f32"))
    q = b.add("quantize", x, layer="q", scale=0.05, zero_point=-3, dtype=dtype)
    if op == "qdense":
        limit = 127 if dtype == "i8" else 32767
        W = b.param("fc.W", rng.integers(-127, 128, size=(K, N)).astype(np.int8))
        bias = b.param("fc.b", rng.integers(-5000, 5000, size=N).astype(np.int32))
        mult = b.param("fc.multiplier", rng.integers(2 ** 30, 2 ** 31, size=N).astype(np.int32))
        shift = b.param("fc.shift", rng.integers(3 if dtype == "i8" else -2, 9,
                                                 size=N).astype(np.int32))
        lo, hi = fused or (-limit - 1, limit)
        q = b.add("qdense", q, W, bias, mult, shift, layer="fc", x_zero=-3, y_zero=4,
                  lo=lo, hi=hi)
    y = b.add("dequantize", q, layer="dq", scale=1.0, zero_point=0, dtype="f32")
    return verify(b.build([y]))


def inputs(rng, batch, K=13):
    X = rng.normal(size=(batch, K)).astype(np.float32) * 4
    X[0, :3] = [1e9, -1e9, 0.025]       # saturating, and a tie rounding to even
    return X


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", ["i8", "i16"])
@pytest.mark.parametrize("op", ["quantize", "qdense"])
def test_c_equals_interpreter_bit_for_bit(op, dtype, batch):
    rng = np.random.default_rng(batch)
    graph = float_sandwich(op, dtype, rng)
    X = inputs(rng, batch)
    (expected,), _ = interpreter.run(graph, {"%x": X})
    got = compile_graph(graph).predict(X)
    np.testing.assert_array_equal(got, expected)


# "native" takes the AVX2 tile on this machine, "portable" the plain C one.
@pytest.mark.parametrize("flags", ["native", "portable", ("-O3", "-mavx2", "-ffast-math")])
@pytest.mark.parametrize("K,N", [(1, 1), (3, 5), (64, 64), (100, 33), (301, 17)])
def test_qdense_shapes_and_fused_relu(K, N, flags):
    rng = np.random.default_rng(K * N)
    graph = float_sandwich("qdense", "i8", rng, K, N, fused=(4, 127))
    for rows in (1, 6, 65):
        X = inputs(rng, rows, K) if K >= 3 else rng.normal(size=(rows, K)).astype(np.float32)
        (expected,), _ = interpreter.run(graph, {"%x": X})
        np.testing.assert_array_equal(compile_graph(graph, flags=flags).predict(X), expected)
        assert expected.min() >= 4


def test_quantize_rounds_half_to_even_and_saturates():
    x = np.array([[0.5, 1.5, 2.5, -0.5, -1.5, 1000.0, -1000.0, 0.49999997]], np.float32)
    q = OPS["quantize"].numpy(x, scale=1.0, zero_point=0, dtype="i8")
    assert q.tolist() == [[0, 2, 2, 0, -2, 127, -128, 0]]
    q = OPS["quantize"].numpy(x, scale=1.0, zero_point=100, dtype="i8")
    assert q.tolist() == [[100, 102, 102, 100, 98, 127, -128, 100]]


def test_requantize_is_one_rounding_half_up():
    """acc * M / 2^(31 + shift), against exact rational arithmetic."""
    rng = np.random.default_rng(0)
    acc = rng.integers(-2 ** 31, 2 ** 31, size=2000)
    mult = rng.integers(2 ** 30, 2 ** 31, size=2000)
    shift = rng.integers(-10, 30, size=2000)
    got = requantize(acc, mult, shift)
    for a, m, s, g in zip(acc[:300], mult[:300], shift[:300], got[:300]):
        exact = Fraction(int(a) * int(m), 2 ** (31 + int(s)))
        assert g == math.floor(exact + Fraction(1, 2))
    assert requantize(np.array([2 ** 40]), np.array([2 ** 30]), np.array([0]))[0] == \
        (2 ** 31 - 1) // 2 + 1     # saturated to int32 first


def test_shape_rules_check_dtypes_and_attributes():
    x8 = TensorType((BATCH, 4), "i8")
    with pytest.raises(ShapeError, match="weights should be i8"):
        infer_type("qdense", [x8, TensorType((4, 2), "f32"), TensorType((2,), "i32"),
                              TensorType((2,), "i32"), TensorType((2,), "i32")],
                   dict(x_zero=0, y_zero=0, lo=-128, hi=127))
    with pytest.raises(ShapeError, match="zero_point"):
        infer_type("quantize", [TensorType((BATCH, 4), "f32")],
                   dict(scale=0.1, zero_point=300, dtype="i8"))
    with pytest.raises(ShapeError, match="scale"):
        infer_type("dequantize", [x8], dict(scale=-1.0, zero_point=0, dtype="f32"))
    with pytest.raises(TypeError, match="integer operands"):
        infer_type("relu", [x8], {})


def test_ir_text_names_integer_types():
    text = str(float_sandwich("qdense"))
    assert "i8[B,13] = quantize(%x" in text and "@fc.W : i8[13,7]" in text
    assert "@fc.b : i32[7]" in text and "f32[B,7] = dequantize(" in text


def test_verifier_rejects_a_wrong_integer_type():
    graph = float_sandwich("qdense")
    node = graph.nodes[1]
    bad = graph.replace(nodes=(graph.nodes[0], type(node)(node.out, node.op, node.inputs,
                                                          node.attrs, TensorType((BATCH, 7), "i16"),
                                                          node.layer), graph.nodes[2]))
    with pytest.raises(VerifyError, match="declared type i16"):
        verify(bad)
