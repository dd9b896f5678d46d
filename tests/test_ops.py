"""Every op in the registry, compiled to C, equals the NumPy reference; every op's
reference follows its shape rule, on the example inputs the registry gives for it."""
import numpy as np
import pytest

from dlc import interpreter
from dlc.api import compile_graph
from dlc.train.c_backend import CBackend
from dlc.layout import param_layout
from dlc.ir import BATCH, GraphBuilder, TensorType, dtype_code, type_of
from dlc.ops import ACTIVATIONS, OPS, infer_type
from helpers import assert_matches

# Ops of training graphs (two batched operands, scalar or per-parameter results): tested
# C against reference by tests/test_train_c_vs_reference.py, which checks that its
# training graphs use every one of them.
TRAINING_ONLY = {
    "matmul_tn", "sum_rows", "relu_grad", "leaky_relu_grad", "sigmoid_grad", "tanh_grad",
    "elu_grad", "silu_grad", "softmax_grad", "normalize_grad", "batch_mean", "batch_var",
    "batchnorm_train", "batchnorm_backward", "batchnorm_dgamma", "dropout_train", "add",
    "ones_like", "softmax_cross_entropy", "softmax_cross_entropy_grad",
    "sigmoid_cross_entropy", "sigmoid_cross_entropy_grad", "mse", "mse_grad", "l2_penalty",
    "l2_penalty_grad", "l1_penalty", "l1_penalty_grad", "ewma", "ewma_sq", "sgd_step",
    "rmsprop_step", "adam_step", "momentum_update", "rmsprop_update", "adam_update",
    # concat reads two batched tensors (the single-op graph has one input): its C runs in
    # the DAG models of tests/test_dag.py, as does take_columns, its gradient
    "concat", "take_columns", "log_softmax_grad",
}
# The fused optimizer updates: several results, each over a parameter (in place); tested
# here as the one update of a training step of its own.
FUSED_UPDATES = sorted(name for name, op in OPS.items() if len(op.results) > 1)
# Ops with a kernel of their own that an inference graph of one op can run (the integer
# ops of quantized graphs are compared bit for bit by tests/test_quant_ops.py).
INFERENCE_OPS = sorted(name for name, op in OPS.items()
                       if op.kernel.template is not None and name not in TRAINING_ONLY
                       and not op.integer)


def test_every_op_has_examples_and_a_c_test():
    assert not [name for name, op in OPS.items() if op.examples is None]
    fused_only = {name for name, op in OPS.items() if op.kernel.template is None}
    assert fused_only <= TRAINING_ONLY      # computed inside a fused optimizer update
    assert set(TRAINING_ONLY) <= set(OPS)


@pytest.mark.parametrize("op", sorted(OPS))
def test_reference_follows_the_shape_rule(op):
    """On its examples, an op's NumPy reference gives the shape and dtype its shape rule
    says (the batch dimension stands for the example's rows)."""
    rows = 5
    for dtype in (np.float32, np.float64):
        inputs, attrs = OPS[op].examples(np.random.default_rng(0), dtype, rows)
        types = [TensorType((BATCH, *a.shape[1:]) if a.ndim == 2 and a.shape[0] == rows
                            else a.shape, type_of(a).dtype) for a in inputs]
        out_type = infer_type(op, types, attrs)
        with np.errstate(all="ignore"):
            outs = OPS[op].numpy(*inputs, **attrs)
        outs = outs if len(OPS[op].results) > 1 else (outs,)
        assert len(outs) == len(OPS[op].results), op
        expected = tuple(rows if d == BATCH else d for d in out_type.shape)
        for out in map(np.asarray, outs):
            assert out.shape == expected and out.dtype == out_type.np_dtype, (op, out.shape,
                                                                              out.dtype)
            if not OPS[op].integer:
                assert out.dtype == dtype, (op, out.dtype)


def single_op_graph(op, dtype, rng, attrs=None):
    """x (B, N) through the op, its other operands parameters from the op's examples."""
    (x, *operands), example_attrs = OPS[op].examples(rng, dtype, 1)
    b = GraphBuilder()
    xin = b.input("x", TensorType((BATCH, x.shape[1]), dtype_code(dtype)))
    params = [b.param(f"p{i}", v) for i, v in enumerate(operands)]
    out = b.add(op, xin, *params, layer=f"test_{op}",
                **(example_attrs if attrs is None else attrs))
    return b.build([out])


def check_op(op, dtype, batch, attrs=None, scale_input=3.0):
    rng = np.random.default_rng(batch)
    graph = single_op_graph(op, dtype, rng, attrs)
    N = graph.inputs["%x"].shape[1]
    X = (rng.normal(size=(batch, N)) * scale_input).astype(dtype)
    lib = compile_graph(graph)
    (expected,), _ = interpreter.run(graph, {"%x": X})
    assert_matches(lib.predict(X), expected, dtype, what=f"{op} batch {batch}")


@pytest.mark.parametrize("batch", [1, 7, 64, 1000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", INFERENCE_OPS)
def test_op_c_equals_reference(op, dtype, batch):
    check_op(op, dtype, batch)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_dense_epilogue_activations(activation, dtype):
    check_op("dense", dtype, 65, {"activation": activation, "alpha": 0.2})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["softmax", "log_softmax", "sigmoid", "tanh", "elu", "silu"])
def test_extreme_inputs_stay_finite(op, dtype):
    """Logits of +-1000 give no inf or NaN, in C and in the reference."""
    graph = single_op_graph(op, dtype, np.random.default_rng(0))
    N = graph.inputs["%x"].shape[1]
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
    graph = single_op_graph("softmax", np.float32, np.random.default_rng(0))
    N = graph.inputs["%x"].shape[1]
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


def update_step_graph(op, dtype, rng):
    """A training step whose update is ``op`` alone on its example operands: the tensors
    parameters (the gradient one that is never updated), the scalars %lr and %step, and
    the cost an L2 penalty of the first parameter."""
    operands, attrs = OPS[op].examples(rng, dtype, 1)
    b = GraphBuilder()
    code = dtype_code(dtype)
    for name in ("x", "y"):
        b.input(name, TensorType((BATCH, 2), code))
    m, lr, step, _ = [b.input(name, TensorType((), code)) for name in ("m", "lr", "step", "seed")]
    scalars = iter((lr, step))
    refs = [next(scalars) if value.ndim == 0 else b.param(f"p{i}", value)
            for i, (name, value) in enumerate(zip(OPS[op].inputs, operands))]
    cost = b.add("l2_penalty", refs[0], m, lam=1e-3)
    b.add(op, *refs, layer="update", **attrs)
    for param, value in zip(refs, b.nodes[-1].outs):
        b.update(param, value)
    return b.build([cost]), operands


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", FUSED_UPDATES)
def test_fused_update_c_equals_reference(op, dtype):
    """One step of the C kernel (every result in place in the state block) against the
    op's NumPy reference: the same new parameter and moments."""
    graph, operands = update_step_graph(op, dtype, np.random.default_rng(3))
    backend = CBackend(graph, flags=("-O2",))
    layout = param_layout(graph)
    state = np.zeros(layout.size, dtype)
    for ref, param in graph.params.items():
        state[layout.offsets[ref]:][:param.value.size] = param.value.ravel()
    X, T = np.zeros((3, 2), dtype), np.zeros((3, 2), dtype)
    lr, step0 = 0.05, 6
    backend.run_epoch(state, X, T, np.arange(3, dtype=np.int64), 3, lr, 0, step0)
    scalars = {"%x": X, "%y": T, "%m": np.array(3, dtype), "%lr": np.array(lr, dtype),
               "%step": np.array(step0 + 1, dtype), "%seed": np.array(0, dtype)}
    _, updates = interpreter.run(graph, scalars)
    assert len(updates) == len(OPS[op].results)
    for ref, expected in updates.items():
        got = state[layout.offsets[ref]:][:expected.size].reshape(expected.shape)
        assert_matches(got, expected, dtype, what=f"{op} {ref}")
