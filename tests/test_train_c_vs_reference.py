"""The training step in C equals the reference interpreter running the same training
graph: every optimizer x regularization x dropout x batch norm x loss, 5 steps from the
same initial weights and seed, and the optimizers' unfused kernels; weights, optimizer
state and running statistics agree.  The C compared calls every training kernel."""
import itertools
import re

import numpy as np
import pytest

import dlc
from dlc.targets.trainer import generate_train_module
from dlc.ops import OPS
from dlc.render import c_activation, resource_dir
from dlc.train import Trainer, compile_trainer, reference_trainer, training_graph
from test_dag import DAG_TRAINING, residual_net
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
    assert_same_state(c, ref, dtype)
    np.testing.assert_allclose(c_history["loss"], ref_history["loss"], rtol=RTOL[dtype])


def assert_same_state(c, ref, dtype):
    for ref_name, expected in ref.views.items():
        got = c.views[ref_name]
        diff = np.max(np.abs(got - expected))
        np.testing.assert_allclose(got, expected, rtol=RTOL[dtype], atol=ATOL[dtype],
                                   err_msg=f"{ref_name}: max abs difference {diff:.3g}")
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


# ---------------------------------------------------------------- the unfused updates

UNFUSED = ("momentum", "rmsprop", "adam")        # the optimizers whose passes fuse


def unfused_trainers(optimizer):
    X, Y = make_data("cross_entropy", np.random.default_rng(1))
    trainers = []
    for backend in ("c", "reference"):
        net = make_net("float64", True, True, "cross_entropy")
        config = dict(loss="cross_entropy", optimizer=OPTIMIZERS[optimizer](), l2=0.0, l1=0.0,
                      regularize=None)
        graph = training_graph(net, **config, fuse=False)
        trainer = Trainer(net, graph, config, backend, flags=FLAGS)
        trainer.fit(X, Y, epochs=1, batch_size=BATCH, seed=3, progress=False)
        trainers.append(trainer)
    return trainers


@pytest.mark.parametrize("optimizer", UNFUSED)
def test_unfused_optimizer_kernels_equal_reference(optimizer):
    c, ref = unfused_trainers(optimizer)
    assert c.step == ref.step == 5
    assert_same_state(c, ref, "float64")
    assert not any(call.endswith("_update") for call in kernel_calls(c.c_source))


# ---------------------------------------------------------------- coverage

CALL = re.compile(r"\b(dlc_[a-z0-9_]+)\s*\(")
TEMPLATE_CALL = re.compile(r"\bdlc_([a-z0-9_]+|\{\{ \w+\.op \}\})\s*\(")
ACTIVATION_GRAD = re.compile(r"\bdlc_activation_grad\([^,]*,\s*(DLC_ACT_[A-Z_]+)")
C_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def kernel_calls(source: str) -> set:
    """The kernels the training step of generated C calls: each function by name and
    dlc_activation_grad once per activation it is called for."""
    step = C_COMMENT.sub("", source.split("static void train_step(")[1].split("\n}\n")[0])
    return set(CALL.findall(step)) | {f"dlc_activation_grad {act}"
                                      for act in ACTIVATION_GRAD.findall(step)}


def training_kernels() -> set:
    """Every kernel the training-only ops and the optimizers' fused updates render to,
    read from their templates (``dlc_{{ step.op }}`` names the op's own kernel)."""
    templates = resource_dir("templates")
    kernels = set()
    for op in TRAINING_ONLY:
        text = (templates / "ops" / f"{OPS[op].template}.c.j2").read_text()
        names = {"dlc_" + (op if name.startswith("{") else name)
                 for name in TEMPLATE_CALL.findall(text)}
        assert names, f"no kernel call found in the template of {op}"
        kernels |= names
        if "dlc_activation_grad(" in text:
            kernels.add(f"dlc_activation_grad {c_activation(op[:-len('_grad')])}")
    updates = sorted(templates.rglob("*_update.c.j2"), key=lambda path: path.name)
    assert [path.name for path in updates] == [f"{kind}_update.c.j2" for kind in sorted(UNFUSED)]
    for path in updates:
        kernels |= {"dlc_" + name for name in TEMPLATE_CALL.findall(path.read_text())}
    return kernels


def test_the_c_compared_calls_every_training_kernel():
    """Counted in the C, not in the IR: an op whose kernel codegen fuses away (Adam's
    moments and step become dlc_adam_update) is covered only where its own kernel runs."""
    called = set()
    for optimizer, reg, dropout, batchnorm, loss in CASES:
        net = make_net("float64", dropout, batchnorm, loss)
        graph = training_graph(net, loss, OPTIMIZERS[optimizer](), **REGULARIZATION[reg])
        called |= kernel_calls(generate_train_module(graph)[1])
    for optimizer in UNFUSED:
        net = make_net("float64", True, True, "cross_entropy")
        graph = training_graph(net, "cross_entropy", OPTIMIZERS[optimizer](), fuse=False)
        called |= kernel_calls(generate_train_module(graph)[1])
    for final, loss in DAG_TRAINING:        # compared in tests/test_dag.py
        graph = training_graph(residual_net("float64", final=final), loss, dlc.SGD(lr=0.05))
        called |= kernel_calls(generate_train_module(graph)[1])
    assert not training_kernels() - called, f"not called: {training_kernels() - called}"


def test_dropout_masks_are_identical_bit_for_bit():
    """With SGD and dropout only, C and reference draw the same masks: the units a mask
    drops get exactly zero gradient in both, so the weights they feed agree exactly where
    the reference left them unchanged."""
    (c, _), (ref, _) = run_both("float64", "sgd", "none", True, False, "mse")
    W0 = ref.graph.params["@dense2.W"].value
    unchanged_ref = ref.views["@dense2.W"] == W0
    unchanged_c = c.views["@dense2.W"] == W0
    np.testing.assert_array_equal(unchanged_c, unchanged_ref)
