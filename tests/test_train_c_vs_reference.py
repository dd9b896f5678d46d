"""The training step in C equals the reference interpreter running the same training
graph: every optimizer x regularization x dropout x batch norm x loss, 5 steps from the
same initial weights and seed; weights, optimizer state and running statistics agree."""
import itertools

import numpy as np
import pytest

import dlc
from dlc.train import compile_trainer, reference_trainer, training_graph
from test_ops import TRAINING_ONLY

FLAGS = ("-O0",)     # the fastest build: this file compiles 180 training steps
OPTIMIZERS = {
    "sgd": lambda: dlc.SGD(lr=0.1),
    "momentum": lambda: dlc.Momentum(lr=0.1, beta=0.8),
    "rmsprop": lambda: dlc.RMSProp(lr=0.01, beta2=0.9),
    "adam": lambda: dlc.Adam(lr=0.01, schedule=dlc.InverseTimeDecay(decay_rate=1.0)),
}
REGULARIZATION = {"none": {}, "l2": {"l2": 0.3}, "l1": {"l1": 0.05}}
LOSSES = {"cross_entropy": (4, dlc.Softmax), "binary_cross_entropy": (3, dlc.Sigmoid),
          "mse": (4, dlc.Softmax)}
# float64 agrees to rounding; float32 to its precision over 5 steps (the weights are O(1);
# RMSProp's first steps divide a gradient by its own size, which carries the float32
# rounding of a small bias gradient straight into the update, hence atol 1e-4).
RTOL = {"float64": 1e-10, "float32": 1e-4}
ATOL = {"float64": 1e-12, "float32": 1e-4}
ROWS, BATCH = 18, 4       # 5 steps, the last one on a partial batch of 2 rows


def make_net(dtype, dropout, batchnorm, loss):
    """Every activation and its gradient.  Batch norm follows a curved activation: after a
    dense layer (or one linear on the batch) the bias before it has an exactly zero
    gradient, which rounding turns into noise that RMSProp and Adam amplify."""
    n_out, output = LOSSES[loss]
    layers = [dlc.Input(6), dlc.Dense(9), dlc.Tanh()]
    layers += [dlc.BatchNorm(momentum=0.8)] if batchnorm else []
    layers += [dlc.Dropout(keep_prob=0.7)] if dropout else []
    layers += [dlc.Dense(8), dlc.Normalize(mean=np.full(8, 0.1), var=np.full(8, 2.0)),
               dlc.LeakyReLU(alpha=0.1),
               dlc.Dense(7), dlc.Sigmoid(), dlc.Dense(6), dlc.ReLU(), dlc.Dense(6),
               dlc.ELU(alpha=0.8), dlc.Dense(5), dlc.SiLU(), dlc.Dense(n_out), output()]
    return dlc.Sequential(layers, dtype=dtype, seed=7)


def make_data(loss, rng):
    X = rng.normal(size=(ROWS, 6))
    if loss == "cross_entropy":
        return X, rng.integers(0, 4, ROWS)
    if loss == "binary_cross_entropy":
        return X, rng.integers(0, 2, (ROWS, 3))
    return X, rng.uniform(0, 1, (ROWS, 4))


def run_both(dtype, optimizer, reg, dropout, batchnorm, loss):
    X, Y = make_data(loss, np.random.default_rng(1))
    trainers = []
    for make in (compile_trainer, reference_trainer):
        net = make_net(dtype, dropout, batchnorm, loss)
        options = dict(loss=loss, optimizer=OPTIMIZERS[optimizer](), **REGULARIZATION[reg])
        if make is compile_trainer:
            options["flags"] = FLAGS
        trainer = make(net, **options)
        history = trainer.fit(X, Y, epochs=1, batch_size=BATCH, seed=3, progress=False)
        trainers.append((trainer, history))
    return trainers


def check_agree(dtype, *case):
    (c, c_history), (ref, ref_history) = run_both(dtype, *case)
    assert c.step == ref.step == 5
    for ref_name, expected in ref.views.items():
        got = c.views[ref_name]
        diff = np.max(np.abs(got - expected))
        np.testing.assert_allclose(got, expected, rtol=RTOL[dtype], atol=ATOL[dtype],
                                   err_msg=f"{ref_name}: max abs difference {diff:.3g}")
    np.testing.assert_allclose(c_history["loss"], ref_history["loss"], rtol=RTOL[dtype])
    moved = [r for r in ref.views if not np.array_equal(ref.views[r], ref.graph.params[r].value)]
    assert len(moved) > len(ref.views) // 2, "training should change most of the state"


CASES = list(itertools.product(OPTIMIZERS, REGULARIZATION, [False, True], [False, True],
                               LOSSES))


@pytest.mark.parametrize("optimizer,reg,dropout,batchnorm,loss", CASES)
def test_float64_c_equals_reference(optimizer, reg, dropout, batchnorm, loss):
    check_agree("float64", optimizer, reg, dropout, batchnorm, loss)


@pytest.mark.parametrize("optimizer,reg,loss",
                         list(itertools.product(OPTIMIZERS, REGULARIZATION, LOSSES)))
def test_float32_c_equals_reference(optimizer, reg, loss):
    check_agree("float32", optimizer, reg, True, True, loss)


def test_combinations_use_every_training_op():
    """Every op that test_ops leaves to training graphs appears in the graphs above."""
    used = set()
    for optimizer, reg, dropout, batchnorm, loss in CASES:
        net = make_net("float64", dropout, batchnorm, loss)
        graph = training_graph(net, loss, OPTIMIZERS[optimizer](), **REGULARIZATION[reg])
        used |= {node.op for node in graph.nodes}
    assert TRAINING_ONLY <= used, f"not covered: {TRAINING_ONLY - used}"


def test_dropout_masks_are_identical_bit_for_bit():
    """With SGD and dropout only, C and reference draw the same masks: the units a mask
    drops get exactly zero gradient in both, so the weights they feed agree exactly where
    the reference left them unchanged."""
    (c, _), (ref, _) = run_both("float64", "sgd", "none", True, False, "mse")
    W0 = ref.graph.params["@dense2.W"].value
    unchanged_ref = ref.views["@dense2.W"] == W0
    unchanged_c = c.views["@dense2.W"] == W0
    np.testing.assert_array_equal(unchanged_c, unchanged_ref)
