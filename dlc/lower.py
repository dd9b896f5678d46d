"""Lowering: a DSL model becomes an IR graph, one rule per layer kind."""
from __future__ import annotations

from . import dsl
from .ir import BATCH, Graph, GraphBuilder, TensorType, dtype_code
from .rng import stream_id
from .verify import verify

MODES = ("inference", "train")


def lower(model: dsl.Model, mode: str = "inference") -> Graph:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    b = GraphBuilder()
    x = b.input("x", TensorType((BATCH, model.n_inputs), dtype_code(model.dtype)),
                label=model.input_name)
    values = []
    for layer, sources in zip(model.layers, model.wiring):
        params = {}
        for name, (owner, trainable, regularized) in model.param_info.items():
            if owner is layer:
                short = name[len(layer.name) + 1:]
                params[short] = b.param(name, model.params[name], trainable=trainable,
                                        regularized=regularized, layer=layer.name)
        rule = lower_activation if isinstance(layer, dsl.Activation) else RULES[type(layer)]
        reads = [x if s < 0 else values[s] for s in sources]
        values.append(rule(b, layer, reads if isinstance(layer, dsl.Merge) else reads[0],
                           params, mode))
    return verify(b.build([values[i] for i in model.output_layers]))


def lower_dense(b, layer, x, p, mode):
    return b.add("dense", x, p["W"], p["b"], layer=layer.name)


def lower_batchnorm(b, layer, x, p, mode):
    if mode == "train":
        return batchnorm_train(b, layer, x, p)
    return b.add("batchnorm", x, p["gamma"], p["beta"], p["running_mean"], p["running_var"],
                 layer=layer.name, eps=layer.eps)


def batchnorm_train(b, layer, x, p):
    """Normalise with the batch statistics (biased variance, which also feeds the running
    variance) and update the running averages: running = momentum running + (1 - momentum) batch."""
    mean = b.add("batch_mean", x, layer=layer.name)
    var = b.add("batch_var", x, mean, layer=layer.name)
    y = b.add("batchnorm_train", x, p["gamma"], p["beta"], mean, var, layer=layer.name,
              eps=layer.eps)
    for stat, batch in (("running_mean", mean), ("running_var", var)):
        b.update(p[stat], b.add("ewma", p[stat], batch, layer=layer.name, beta=layer.momentum))
    return y


def lower_dropout(b, layer, x, p, mode):
    if mode == "train":
        return dropout_train(b, layer, x)
    return b.add("dropout", x, layer=layer.name, keep_prob=layer.keep_prob)


def dropout_train(b, layer, x):
    """Inverted dropout with masks keyed by (%seed, %step, layer, element)."""
    if not any(node.op == "dense" for node in b.nodes):
        raise ValueError(f"{layer.describe()}: dropout on the network input is not supported; "
                         f"put it after a Dense layer")
    if layer.keep_prob == 1.0:
        return x
    scalar = TensorType((), b.type(x).dtype)
    seed, step = b.input("seed", scalar), b.input("step", scalar)
    return b.add("dropout_train", x, seed, step, layer=layer.name, keep_prob=layer.keep_prob,
                 stream=stream_id(layer.name))


def lower_normalize(b, layer, x, p, mode):
    return b.add("normalize", x, p["mean"], p["var"], layer=layer.name, eps=layer.eps)


def lower_activation(b, layer, x, p, mode):
    """Every activation layer: the op its kind names (dlc/ops.py, ACTIVATIONS)."""
    return b.add(layer.kind, x, layer=layer.name, **layer.op_attrs())


def lower_merge(op: str):
    """Add and Concatenate: one binary op, applied left to right over the tensors."""
    def rule(b, layer, xs, p, mode):
        y = xs[0]
        for x in xs[1:]:
            y = b.add(op, y, x, layer=layer.name)
        return y
    return rule


RULES = {
    dsl.Dense: lower_dense,
    dsl.BatchNorm: lower_batchnorm,
    dsl.Dropout: lower_dropout,
    dsl.Normalize: lower_normalize,
    dsl.Add: lower_merge("add"),
    dsl.Concatenate: lower_merge("concat"),
}
