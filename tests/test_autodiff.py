"""Autodiff: analytic gradients from the VJP rules agree with centred finite differences
(float64, relative error ||a - n|| / (||a|| + ||n||) below 1e-7), for every op with a
VJP rule and for whole networks with batch norm, dropout, penalties and every loss."""
import numpy as np
import pytest

import dlc
from dlc import interpreter
from dlc.autodiff import gradients
from dlc.ir import BATCH, GraphBuilder, TensorType
from dlc.ops import OPS
from dlc.train import cost_graph

ROWS, N = 5, 6
H = 1e-6
TOLERANCE = 1e-7
F64 = TensorType((BATCH, N), "f64")
SCALAR = TensorType((), "f64")


def relative_error(analytic, numeric) -> float:
    return np.linalg.norm(analytic - numeric) / (np.linalg.norm(analytic) + np.linalg.norm(numeric))


def numeric_gradient(graph, inputs, params, ref):
    """Centred differences of the cost with respect to every element of ``params[ref]``."""
    value = params[ref]
    grad = np.zeros_like(value)
    for i in np.ndindex(value.shape):
        costs = []
        for sign in (1, -1):
            trial = value.copy()
            trial[i] += sign * H
            (cost,), _ = interpreter.run(graph, inputs, {**params, ref: trial})
            costs.append(float(cost))
        grad[i] = (costs[0] - costs[1]) / (2 * H)
    return grad


def check_gradients(graph, inputs):
    """Every trainable parameter's autodiff gradient against finite differences."""
    cost, = graph.outputs
    with_grads, grads = gradients(graph, cost)
    assert grads, "nothing to differentiate"
    outputs, _ = interpreter.run(with_grads, inputs)
    analytic = dict(zip(grads, outputs[1:]))
    params = {ref: p.value for ref, p in graph.params.items()}
    for ref in grads:
        numeric = numeric_gradient(graph, inputs, params, ref)
        error = relative_error(analytic[ref], numeric)
        assert error < TOLERANCE, f"{ref}: relative error {error:.3g}"
    return grads


def op_graph(rng, build):
    """%x -> dense (so the op's input gradient is checked through W and b) -> the op,
    then a mean-squared error against fixed targets unless the op is itself a cost."""
    b = GraphBuilder()
    x = b.input("x", F64)
    t = b.input("t", F64)
    inputs = {"%x": rng.normal(size=(ROWS, N)), "%t": rng.normal(size=(ROWS, N))}
    W = b.param("W", rng.normal(size=(N, N)) * 0.7)
    h = b.add("dense", x, W, b.param("b", rng.normal(size=N)))
    out = build(b, h, rng, inputs)
    if b.type(out).shape != ():
        out = b.add("mse", out, t)
    return b.build([out]), inputs


def vector(b, rng, name, low=None):
    value = rng.normal(size=N) if low is None else rng.uniform(low, 2.0, size=N)
    return b.param(name, value)


def scalar_input(b, inputs, name, value):
    inputs["%" + name] = np.array(float(value))
    return b.input(name, SCALAR)


def with_batch_statistics(b, h, rng, inputs):
    """Batch norm of tanh(h): a bias right before batch norm has an exactly zero gradient,
    which leaves nothing to compare."""
    h = b.add("tanh", h)
    mean = b.add("batch_mean", h)
    var = b.add("batch_var", h, mean)
    return b.add("batchnorm_train", h, vector(b, rng, "gamma"), vector(b, rng, "beta"), mean,
                 var, eps=1e-5)


def penalty(kind):
    def build(b, h, rng, inputs):
        m = scalar_input(b, inputs, "m", ROWS)
        pen = b.add(kind, b.param("V", rng.normal(size=(N, 3))), m, lam=0.7)
        return b.add("add", b.add("mse", h, "%t"), pen)
    return build


def probabilities(b, t, rng, inputs, key="%t"):
    inputs[key] = rng.dirichlet(np.ones(N), size=ROWS)


OP_CASES = {
    "dense": lambda b, h, rng, inputs: b.add("dense", h, b.param("V", rng.normal(size=(N, N))),
                                             vector(b, rng, "c"), activation="tanh"),
    "dense/relu": lambda b, h, rng, inputs: b.add(
        "dense", h, b.param("V", rng.normal(size=(N, N))), vector(b, rng, "c"),
        activation="relu"),
    "dense/leaky_relu": lambda b, h, rng, inputs: b.add(
        "dense", h, b.param("V", rng.normal(size=(N, N))), vector(b, rng, "c"),
        activation="leaky_relu", alpha=0.2),
    "dense/sigmoid": lambda b, h, rng, inputs: b.add(
        "dense", h, b.param("V", rng.normal(size=(N, N))), vector(b, rng, "c"),
        activation="sigmoid"),
    "dense/softmax": lambda b, h, rng, inputs: b.add(
        "dense", h, b.param("V", rng.normal(size=(N, N))), vector(b, rng, "c"),
        activation="softmax"),
    "dense/elu": lambda b, h, rng, inputs: b.add(
        "dense", h, b.param("V", rng.normal(size=(N, N))), vector(b, rng, "c"),
        activation="elu", alpha=0.7),
    "elu": lambda b, h, rng, inputs: b.add("elu", h, alpha=0.7),
    "silu": lambda b, h, rng, inputs: b.add("silu", h),
    "relu": lambda b, h, rng, inputs: b.add("relu", h),
    "leaky_relu": lambda b, h, rng, inputs: b.add("leaky_relu", h, alpha=0.1),
    "sigmoid": lambda b, h, rng, inputs: b.add("sigmoid", h),
    "tanh": lambda b, h, rng, inputs: b.add("tanh", h),
    "softmax": lambda b, h, rng, inputs: b.add("softmax", h),
    "normalize": lambda b, h, rng, inputs: b.add(
        "normalize", h, b.param("mu", rng.normal(size=N), trainable=False),
        b.param("var", rng.uniform(0.5, 2, N), trainable=False), eps=1e-3),
    "batchnorm_train": with_batch_statistics,
    "dropout_train": lambda b, h, rng, inputs: b.add(
        "dropout_train", h, scalar_input(b, inputs, "seed", 3), scalar_input(b, inputs, "step", 9),
        keep_prob=0.6, stream=5),
    "add": lambda b, h, rng, inputs: b.add("add", h, b.add("tanh", h)),
    "concat": lambda b, h, rng, inputs: b.add(
        "dense", b.add("concat", h, b.add("tanh", h)), b.param("V", rng.normal(size=(2 * N, N))),
        vector(b, rng, "c")),
    "log_softmax": lambda b, h, rng, inputs: b.add("log_softmax", h),
    "softmax_cross_entropy": lambda b, h, rng, inputs: (
        probabilities(b, h, rng, inputs), b.add("softmax_cross_entropy", h, "%t"))[1],
    "sigmoid_cross_entropy": lambda b, h, rng, inputs: (
        inputs.__setitem__("%t", rng.uniform(0, 1, (ROWS, N))),
        b.add("sigmoid_cross_entropy", h, "%t"))[1],
    "mse": lambda b, h, rng, inputs: b.add("mse", h, "%t"),
    "l2_penalty": penalty("l2_penalty"),
    "l1_penalty": penalty("l1_penalty"),
}


def test_every_op_with_a_vjp_has_a_gradient_check():
    with_vjp = {name for name, op in OPS.items() if op.vjp is not None}
    checked = {case.split("/")[0] for case in OP_CASES}
    assert with_vjp <= checked, f"VJP rules without a gradient check: {with_vjp - checked}"


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_op_gradients_match_finite_differences(case):
    graph, inputs = op_graph(np.random.default_rng(sum(map(ord, case))), OP_CASES[case])
    grads = check_gradients(graph, inputs)
    assert "@W" in grads and "@b" in grads       # the op's input gradient was checked


def test_dense_with_a_fused_silu_is_not_differentiated():
    """silu's gradient reads its input, which a dense layer with silu fused never keeps."""
    rng = np.random.default_rng(0)
    graph, _ = op_graph(rng, lambda b, h, rng, inputs: b.add(
        "dense", h, b.param("V", rng.normal(size=(N, N))), vector(b, rng, "c"),
        activation="silu"))
    with pytest.raises(ValueError, match="fused silu cannot be differentiated"):
        gradients(graph, graph.outputs[0])


def network(loss, dropout, n_out=3):
    output = {"cross_entropy": [dlc.Softmax()], "binary_cross_entropy": [dlc.Sigmoid()],
              "mse": [dlc.Tanh()]}[loss]
    return dlc.Sequential(
        [dlc.Input(4), dlc.Dense(5), dlc.Tanh(), dlc.BatchNorm(), dlc.ReLU()]
        + ([dlc.Dropout(keep_prob=0.6)] if dropout else [])
        + [dlc.Dense(4, init="xavier"), dlc.Tanh(), dlc.BatchNorm(), dlc.Dense(n_out)] + output,
        dtype="float64", seed=5)


def network_inputs(loss, rng, rows=7, n_out=3):
    X = rng.normal(size=(rows, 4))
    if loss == "cross_entropy":
        Y = np.eye(n_out)[rng.integers(0, n_out, rows)]
    elif loss == "binary_cross_entropy":
        Y = rng.integers(0, 2, (rows, n_out)).astype(float)
    else:
        Y = rng.normal(size=(rows, n_out))
    scalars = {"%m": rows, "%lr": 0.1, "%step": 4, "%seed": 11}
    return {"%x": X, "%y": Y, **{k: np.array(float(v)) for k, v in scalars.items()}}


@pytest.mark.parametrize("dropout", [False, True])
@pytest.mark.parametrize("penalty", [{}, {"l2": 0.4}, {"l1": 0.2}])
@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse"])
def test_network_gradients_match_finite_differences(loss, penalty, dropout):
    graph = cost_graph(network(loss, dropout), loss, **penalty)
    grads = check_gradients(graph, network_inputs(loss, np.random.default_rng(2)))
    trainable = {ref for ref, p in graph.params.items() if p.trainable}
    assert set(grads) == trainable


def test_fan_out_gradients_are_summed_by_add_nodes():
    """A weight read by its dense layer and by the L2 penalty gets one add node summing
    the two contributions."""
    graph = cost_graph(network("mse", False), "mse", l2=0.5)
    with_grads, grads = gradients(graph, graph.outputs[0])
    producers = with_grads.producers()
    assert producers[grads["@dense1.W"]].op == "add"
    assert producers[grads["@dense1.b"]].op == "sum_rows"


def test_input_gets_no_gradient_work():
    """Nothing is computed for the network input: the first dense layer emits no dx."""
    graph = cost_graph(network("mse", False), "mse")
    with_grads, _ = gradients(graph, graph.outputs[0])
    products = [n for n in with_grads.nodes if n.op == "matmul_nt"]
    assert len(products) == 2      # dx of dense2 and dense3 only
