"""Every op in the registry, compiled to C, equals the NumPy reference."""
import numpy as np
import pytest

from dlc import interpreter
from dlc.api import compile_graph
from dlc.ir import BATCH, GraphBuilder, TensorType, dtype_code
from dlc.ops import OPS
from helpers import assert_matches

N = 13  # features: not a multiple of any vector width


def vector(rng, dtype, low=None, high=None):
    if low is None:
        return rng.normal(size=N).astype(dtype)
    return rng.uniform(low, high, size=N).astype(dtype)


# One case per op: (extra params as a function of rng and dtype, attributes).
CASES = {
    "dense": (lambda rng, dt: [rng.normal(size=(N, 7)).astype(dt), rng.normal(size=7).astype(dt)],
              {}),
    "relu": (lambda rng, dt: [], {}),
    "leaky_relu": (lambda rng, dt: [], {"alpha": 0.1}),
    "sigmoid": (lambda rng, dt: [], {}),
    "tanh": (lambda rng, dt: [], {}),
    "softmax": (lambda rng, dt: [], {}),
    "batchnorm": (lambda rng, dt: [vector(rng, dt), vector(rng, dt), vector(rng, dt),
                                   vector(rng, dt, 0.1, 3.0)], {"eps": 1e-5}),
    "normalize": (lambda rng, dt: [vector(rng, dt), vector(rng, dt, 0.1, 3.0)], {"eps": 1e-8}),
    "dropout": (lambda rng, dt: [], {"keep_prob": 0.5}),
    "matmul_nt": (lambda rng, dt: [rng.normal(size=(7, N)).astype(dt)], {}),
}
DENSE_ACTIVATIONS = ["none", "relu", "leaky_relu", "sigmoid", "tanh", "softmax"]


def test_every_registered_op_has_a_case():
    missing = {name for name, op in OPS.items() if op.template} - set(CASES) - TRAINING_ONLY
    assert not missing, f"ops without a C-vs-reference case: {missing}"


# Ops of training graphs (two batched operands, scalar or per-parameter results): tested
# C against reference by tests/test_train_c_vs_reference.py, which checks that its
# training graphs use every one of them.
TRAINING_ONLY = {
    "matmul_tn", "sum_rows", "relu_grad", "leaky_relu_grad", "sigmoid_grad", "tanh_grad",
    "softmax_grad", "normalize_grad", "batch_mean", "batch_var", "batchnorm_train",
    "batchnorm_backward", "batchnorm_dgamma", "dropout_train", "add", "ones_like",
    "softmax_cross_entropy", "softmax_cross_entropy_grad", "sigmoid_cross_entropy",
    "sigmoid_cross_entropy_grad", "mse", "mse_grad", "l2_penalty", "l2_penalty_grad",
    "l1_penalty", "l1_penalty_grad", "ewma", "ewma_sq", "sgd_step", "rmsprop_step", "adam_step",
}


def single_op_graph(op, dtype, rng, attrs):
    make_params, _ = CASES[op]
    b = GraphBuilder()
    x = b.input("x", TensorType((BATCH, N), dtype_code(dtype)))
    params = [b.param(f"p{i}", v) for i, v in enumerate(make_params(rng, dtype))]
    out = b.add(op, x, *params, layer=f"test_{op}", **attrs)
    return b.build([out])


def check_op(op, dtype, batch, attrs, scale_input=3.0):
    rng = np.random.default_rng(batch)
    graph = single_op_graph(op, dtype, rng, attrs)
    X = (rng.normal(size=(batch, N)) * scale_input).astype(dtype)
    lib = compile_graph(graph)
    (expected,), _ = interpreter.run(graph, {"%x": X})
    assert_matches(lib.predict(X), expected, dtype, what=f"{op} batch {batch}")


@pytest.mark.parametrize("batch", [1, 7, 64, 1000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", sorted(CASES))
def test_op_c_equals_reference(op, dtype, batch):
    check_op(op, dtype, batch, CASES[op][1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", DENSE_ACTIVATIONS)
def test_dense_epilogue_activations(activation, dtype):
    check_op("dense", dtype, 65, {"activation": activation, "alpha": 0.2})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["softmax", "sigmoid", "tanh"])
def test_extreme_inputs_stay_finite(op, dtype):
    """Logits of +-1000 give no inf or NaN, in C and in the reference."""
    graph = single_op_graph(op, dtype, np.random.default_rng(0), {})
    X = np.array([[1000, -1000] + [0] * (N - 2), [-1000] * N, [1000] * N], dtype=dtype)
    lib = compile_graph(graph)
    got = lib.predict(X)
    (expected,), _ = interpreter.run(graph, {"%x": X})
    assert np.isfinite(got).all() and np.isfinite(expected).all()
    assert_matches(got, expected, dtype)
    if op == "softmax":
        np.testing.assert_allclose(got[0, 0], 1.0)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)
    if op == "sigmoid":
        assert got[0, 0] == 1.0 and got[0, 1] == 0.0


def test_float32_softmax_exp_is_accurate_over_its_range():
    """The vectorised float32 exp behind softmax: exp(x) / exp(0) within 4 float32 eps of
    exp (float64), the exp's 1.3 ulp plus the softmax's roundings, for arguments from 0
    down to -87, and tiny (0, not garbage) below, where expf turns denormal."""
    graph = single_op_graph("softmax", np.float32, np.random.default_rng(0), {})
    lib = compile_graph(graph)
    # Row max 0 in the first column, so softmax = exp(x) / (1 + sum of the others).
    offsets = np.linspace(-87, -0.5, 4001).astype(np.float32)
    X = np.zeros((len(offsets), N), np.float32)
    X[:, 1] = offsets
    X[:, 2:] = -200
    got = lib.predict(X).astype(np.float64)
    exp = np.exp(offsets.astype(np.float64))
    ratio = got[:, 1] / got[:, 0]            # exp(x) / exp(0), rounded twice
    np.testing.assert_allclose(ratio, exp, rtol=4 * np.finfo(np.float32).eps)
    assert (got[:, 2:] >= 0).all() and (got[:, 2:] < 1e-37).all()
