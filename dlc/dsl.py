"""The Python DSL: layers, the functional ``Model`` and ``Sequential``.

A model owns its parameters as a dict of named NumPy arrays (``"fc1.W"``);
layers only describe shapes and how to initialise them.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from .checks import (cast_finite, check_fraction, check_int, check_positive, check_real,
                     check_real_dtype, check_vector)
from .shapes import DTYPES, dtype_code

INITS = {
    "he": lambda rng, n_in, shape: rng.standard_normal(shape) * np.sqrt(2.0 / n_in),
    "xavier": lambda rng, n_in, shape: rng.standard_normal(shape) * np.sqrt(1.0 / n_in),
    "small": lambda rng, n_in, shape: rng.standard_normal(shape) * 0.01,
}


@dataclass(frozen=True)
class ParamSpec:
    value: np.ndarray
    trainable: bool = True
    regularized: bool = False


class Tensor:
    """A symbolic value in the functional form: the layer that made it, the tensors that
    layer read (``parents``) and its width.  It keeps weak references to the tensors made
    from it, so a model can tell a branch it would drop (still held, in no model) from one
    of another model already built."""

    def __init__(self, features: int, layer: "Layer" = None, parents=(), name: str = None):
        if isinstance(parents, Tensor):
            parents = (parents,)
        self.features, self.layer, self.name = features, layer, name
        self.parents = tuple(parents)
        self.claimed = False        # part of a model already built
        self.children = weakref.WeakSet()
        for parent in self.parents:
            parent.children.add(self)

    @property
    def parent(self) -> "Tensor":
        """The first tensor the layer read (the only one, but for Add and Concatenate)."""
        return self.parents[0] if self.parents else None

    def __repr__(self) -> str:
        if self.layer is None:
            made_by = f"Input {self.name!r}" if self.name else "Input"
        else:
            made_by = self.layer.name or type(self.layer).__name__
        return f"<dlc.Tensor ({made_by}) of {self.features} features>"


def Input(features: int, name: str = None) -> Tensor:
    """The model's input: ``features`` values per example; ``name`` labels it in the
    IR text and the summary."""
    return Tensor(check_int(features, "Input features", low=1),
                  name=check_name(name, "Input name"))


def check_name(name, what: str = "layer name"):
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"{what} must be a non-empty string, got {name!r}")
    return name


class Layer:
    kind = "layer"

    def __init__(self, name: str = None):
        self.name = check_name(name)

    def __call__(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{self.describe()} must be called on a dlc tensor, got {type(x).__name__}")
        return Tensor(self.out_features(x.features), self, x)

    def describe(self) -> str:
        return f"layer {self.name!r}" if self.name else f"{type(self).__name__} layer"

    def out_features(self, n_in: int) -> int:
        return n_in

    def init_params(self, n_in: int, rng, dtype) -> dict:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Dense(Layer):
    kind = "dense"

    def __init__(self, units: int, init: str = "he", name: str = None, in_features: int = None):
        super().__init__(name)
        self.units = check_int(units, f"Dense units{f' of {name!r}' if name else ''}", low=1)
        if not isinstance(init, str) or init not in INITS:
            raise ValueError(f"unknown init {init!r} for {self.describe()}; use one of {sorted(INITS)}")
        self.init = init
        self.in_features = (None if in_features is None
                            else check_int(in_features, "Dense in_features", low=1))

    def out_features(self, n_in):
        if self.in_features is not None and self.in_features != n_in:
            raise ValueError(f"{self.describe()} expects {self.in_features} input features, "
                             f"but the layer before it gives {n_in}")
        return self.units

    def init_params(self, n_in, rng, dtype):
        W = INITS[self.init](rng, n_in, (n_in, self.units)).astype(dtype)
        return {"W": ParamSpec(W, regularized=True),
                "b": ParamSpec(np.zeros(self.units, dtype))}


class BatchNorm(Layer):
    """Batch normalisation; ``momentum`` weighs the old running statistics
    (running = momentum * running + (1 - momentum) * batch)."""
    kind = "batchnorm"

    def __init__(self, eps: float = 1e-5, momentum: float = 0.9, name: str = None):
        super().__init__(name)
        self.eps = check_positive(eps, "BatchNorm eps")
        self.momentum = check_fraction(momentum, "BatchNorm momentum", high_open=True)

    def init_params(self, n_in, rng, dtype):
        return {"gamma": ParamSpec(np.ones(n_in, dtype)),
                "beta": ParamSpec(np.zeros(n_in, dtype)),
                "running_mean": ParamSpec(np.zeros(n_in, dtype), trainable=False),
                "running_var": ParamSpec(np.ones(n_in, dtype), trainable=False)}


class Dropout(Layer):
    """Inverted dropout: keeps each unit with probability ``keep_prob`` while training."""
    kind = "dropout"

    def __init__(self, keep_prob: float = 0.8, name: str = None):
        super().__init__(name)
        self.keep_prob = check_fraction(keep_prob, "Dropout keep_prob", low_open=True)


class Normalize(Layer):
    """Fixed input normalisation: (x - mean) / sqrt(var + eps).  eps may be 0 (an exact
    affine map, as ONNX import makes) when every var is positive."""
    kind = "normalize"

    def __init__(self, mean, var, eps: float = 1e-8, name: str = None):
        super().__init__(name)
        self.mean = check_vector(mean, "Normalize mean")
        self.var = check_vector(var, "Normalize var", low=0.0)
        if self.mean.shape != self.var.shape:
            raise ValueError(f"Normalize mean has {self.mean.size} values but var has {self.var.size}")
        self.eps = check_real(eps, "Normalize eps", low=0.0)
        if self.eps == 0 and (self.var == 0).any():
            zero = int(np.argmax(self.var == 0))
            raise ValueError(f"Normalize eps must be positive where var is 0 (var[{zero}] is 0), "
                             f"got eps 0.0")

    def out_features(self, n_in):
        if self.mean.size != n_in:
            raise ValueError(f"{self.describe()} has statistics for {self.mean.size} features, "
                             f"but its input has {n_in}")
        return n_in

    def init_params(self, n_in, rng, dtype):
        return {"mean": ParamSpec(self.mean.astype(dtype), trainable=False),
                "var": ParamSpec(self.var.astype(dtype), trainable=False)}


class Activation(Layer):
    """A layer that is one activation op of dlc/ops.py: the op named by ``kind``, with the
    attributes ``op_attrs`` gives."""

    def op_attrs(self) -> dict:
        return {}


class ReLU(Activation):
    kind = "relu"


class LeakyReLU(Activation):
    """x for x > 0, else alpha x; alpha >= 0 (the backward pass reads the sign of the
    output, which is the input's only for a non-negative slope)."""
    kind = "leaky_relu"

    def __init__(self, alpha: float = 0.01, name: str = None):
        super().__init__(name)
        self.alpha = check_real(alpha, "LeakyReLU alpha", low=0.0)

    def op_attrs(self):
        return {"alpha": self.alpha}


class ELU(Activation):
    """x for x > 0, else alpha (exp(x) - 1); alpha > 0 (the backward pass reads the
    output, alpha exp(x) = y + alpha where x <= 0)."""
    kind = "elu"

    def __init__(self, alpha: float = 1.0, name: str = None):
        super().__init__(name)
        self.alpha = check_positive(alpha, "ELU alpha")

    def op_attrs(self):
        return {"alpha": self.alpha}


class Sigmoid(Activation):
    kind = "sigmoid"


class SiLU(Activation):
    """x sigmoid(x), also called swish."""
    kind = "silu"


class Tanh(Activation):
    kind = "tanh"


class Softmax(Activation):
    kind = "softmax"


class LogSoftmax(Activation):
    """log(softmax(x)) over each row, computed stably (x - max - log(sum(exp(x - max))))."""
    kind = "log_softmax"


class Merge(Layer):
    """A layer of several tensors: call it on a list, ``dlc.Add()([a, b])``."""

    def __call__(self, xs) -> Tensor:
        if isinstance(xs, Tensor) or not isinstance(xs, (list, tuple)):
            raise TypeError(f"{self.describe()} must be called on a list of at least two dlc "
                            f"tensors, got {type(xs).__name__}")
        if len(xs) < 2 or not all(isinstance(x, Tensor) for x in xs):
            raise TypeError(f"{self.describe()} must be called on a list of at least two dlc "
                            f"tensors, got {[type(x).__name__ for x in xs]}")
        if len({id(x) for x in xs}) < len(xs):
            raise ValueError(f"{self.describe()} reads the same tensor twice")
        return Tensor(self.out_features(tuple(x.features for x in xs)), self, tuple(xs))


class Add(Merge):
    """The element-wise sum of tensors of one width (a residual connection)."""
    kind = "add"

    def out_features(self, n_in):
        if len(set(n_in)) > 1:
            raise ValueError(f"{self.describe()} adds tensors of one width, got widths "
                             f"{list(n_in)}")
        return n_in[0]


class Concatenate(Merge):
    """Tensors side by side along the features, in the order given."""
    kind = "concatenate"

    def out_features(self, n_in):
        return sum(n_in)


class Model:
    """A network from an input tensor to one output tensor or several (the functional
    form).  The layers may form any DAG: a tensor read by several layers, ``Add`` and
    ``Concatenate`` joining branches; every layer must reach an output."""

    def __init__(self, inputs: Tensor, outputs, dtype="float32", seed: int = 0):
        if not isinstance(inputs, Tensor) or inputs.layer is not None:
            raise TypeError("Model inputs must be the tensor returned by dlc.Input(...)")
        outputs = _output_list(outputs)
        self.dtype = DTYPES[dtype_code(dtype)]
        self.seed = check_int(seed, "Model seed", low=0)
        self.input_name = inputs.name
        tensors = _topological(inputs, outputs)
        if not tensors:
            raise ValueError("the model has no layers between its input and output")
        self.layers = [t.layer for t in tensors]
        position = {id(t): i for i, t in enumerate(tensors)}
        # wiring[i]: where layer i reads from, -1 for the model input, else a layer index
        self.wiring = tuple(tuple(-1 if p is inputs else position[id(p)] for p in t.parents)
                            for t in tensors)
        self.output_layers = tuple(position[id(t)] for t in outputs)
        _assign_names(self.layers)
        _check_branches(tensors, position, outputs)
        for t in tensors:
            t.claimed = True
        self.n_inputs = inputs.features
        self.output_widths = tuple(t.features for t in outputs)
        self.n_outputs = sum(self.output_widths)
        self.params, self.param_info = {}, {}
        self._init_params(np.random.default_rng(seed))

    @property
    def multi_output(self) -> bool:
        return len(self.output_layers) > 1

    def _init_params(self, rng) -> None:
        for layer, n in zip(self.layers, self.input_widths()):
            for short, spec in layer.init_params(n, rng, self.dtype).items():
                name = f"{layer.name}.{short}"
                self.params[name] = spec.value
                self.param_info[name] = (layer, spec.trainable, spec.regularized)

    def input_widths(self) -> list:
        """The width of each layer's input, in order (a tuple for Add and Concatenate)."""
        widths, outs = [], []
        for layer, sources in zip(self.layers, self.wiring):
            n = tuple(self.n_inputs if s < 0 else outs[s] for s in sources)
            n = n if isinstance(layer, Merge) else n[0]
            widths.append(n)
            outs.append(layer.out_features(n))
        return widths

    def output_features(self) -> list:
        """The width of each layer's output, in order."""
        return [layer.out_features(n) for layer, n in zip(self.layers, self.input_widths())]

    def get_params(self) -> dict:
        return {name: value.copy() for name, value in self.params.items()}

    def set_params(self, params: dict) -> None:
        """Replace some or all parameters; names, shapes and finiteness are checked first."""
        staged = {}
        for name, value in params.items():
            if name not in self.params:
                raise KeyError(f"unknown parameter {name!r}; the model has {sorted(self.params)}")
            array = np.asarray(value)
            if array.shape != self.params[name].shape:
                raise ValueError(f"parameter {name!r} should have shape {self.params[name].shape}, "
                                 f"got {array.shape}")
            check_real_dtype(array, f"parameter {name!r}")
            if not np.isfinite(array).all():
                raise ValueError(f"parameter {name!r} contains NaN or inf")
            cast = cast_finite(array, self.dtype, f"parameter {name!r}")
            staged[name] = cast.copy() if np.shares_memory(cast, array) else cast
        self.params.update(staged)

    def summary(self) -> str:
        """A table of the layers (name, kind, output shape, parameters, of which
        trainable) and the totals, with the parameters' size at the model's dtype."""
        counts = {layer: [0, 0] for layer in self.layers}
        for name, (layer, trainable, _) in self.param_info.items():
            counts[layer][0] += self.params[name].size
            counts[layer][1] += self.params[name].size if trainable else 0
        rows = [(self.input_name or "input", "input", f"(B, {self.n_inputs})", 0, 0)]
        for layer, n in zip(self.layers, self.output_features()):
            rows.append((layer.name, layer.kind, f"(B, {n})", *counts[layer]))
        total = sum(row[3] for row in rows)
        trainable = sum(row[4] for row in rows)
        title = (f"{type(self).__name__} ({self.dtype.name}): {self.n_inputs} inputs -> "
                 f"{' + '.join(map(str, self.output_widths))} outputs")
        return "\n".join([title] + format_table(("Layer", "Kind", "Output shape", "Params", "Trainable"),
                                       rows) + [
            f"Total params: {total:,} ({total * self.dtype.itemsize:,} bytes as {self.dtype.name})",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}"])

    def __repr__(self) -> str:
        chain = " -> ".join(l.name for l in self.layers)
        outs = " + ".join(map(str, self.output_widths))
        return f"<dlc.Model {self.n_inputs} -> {outs}: {chain}>"


class Sequential(Model):
    """A model as a list: ``dlc.Input(n)`` first, then layers applied in order."""

    def __init__(self, layers, dtype="float32", seed: int = 0):
        if isinstance(layers, (str, bytes, dict)) or not hasattr(layers, "__iter__"):
            raise TypeError(f"Sequential takes a list of layers, dlc.Input(n) first, got "
                            f"{type(layers).__name__}")
        layers = list(layers)
        if not layers or not isinstance(layers[0], Tensor):
            raise TypeError("Sequential needs dlc.Input(n) as its first element")
        x = layers[0]
        for i, layer in enumerate(layers[1:], 1):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential element {i} is {layer!r}, not a dlc layer")
            x = layer(x)
        super().__init__(layers[0], x, dtype=dtype, seed=seed)


def format_table(header: tuple, rows: list) -> list:
    """Text columns: strings left-aligned, numbers right-aligned, a rule under the
    header and one closing the table."""
    cells = [header] + [tuple(f"{v:,}" if isinstance(v, int) else str(v) for v in row)
                        for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [isinstance(v, int) for v in rows[0]]

    def line(row):
        return "  ".join(c.rjust(w) if num else c.ljust(w)
                         for c, w, num in zip(row, widths, numeric)).rstrip()
    rule = "-" * len(line(tuple("x" * w for w in widths)))
    return [line(header), rule] + [line(row) for row in cells[1:]] + [rule]


def _output_list(outputs) -> list:
    """The model's outputs as a list: one tensor, or a non-empty list or tuple of them."""
    many = isinstance(outputs, (list, tuple))
    outputs = list(outputs) if many else [outputs]
    if not outputs or not all(isinstance(t, Tensor) for t in outputs):
        got = [type(t).__name__ for t in outputs] if many else type(outputs[0]).__name__
        raise TypeError(f"Model outputs must be a dlc tensor or a list of dlc tensors, got {got}")
    if len({id(t) for t in outputs}) < len(outputs):
        raise ValueError("Model outputs list the same tensor twice")
    return outputs


def _topological(inputs: Tensor, outputs: list) -> list:
    """The tensors computed between ``inputs`` and ``outputs``, each after those it
    reads (depth first from the outputs in order: a chain keeps its order)."""
    order, done, made = [], set(), {}
    stack = [(t, False) for t in reversed(outputs)]
    while stack:
        t, expanded = stack.pop()
        if t is inputs or id(t) in done:
            continue
        if expanded:
            done.add(id(t))
            order.append(t)
            continue
        if t.layer is None:
            raise ValueError("Model outputs are not computed from the given inputs")
        if made.setdefault(t.layer, t) is not t:
            raise ValueError(f"{t.layer.describe()} is used twice; create a new layer instead")
        stack.append((t, True))
        stack.extend((p, False) for p in reversed(t.parents))
    return order


def _check_branches(tensors: list, position: dict, outputs: list) -> None:
    """A tensor made from one of the model's inner values (not an output) must be part of
    the model or of a model built before: else the model would silently drop that branch."""
    outs = {id(t) for t in outputs}
    for t in tensors:
        if id(t) in outs:
            continue
        for child in list(t.children):
            if id(child) not in position and not child.claimed:
                raise ValueError(
                    f"{child.layer.describe()} reads the output of {t.layer.describe()} but "
                    f"reaches none of the model's outputs; list it in outputs=[...] (a "
                    f"branch of another model is fine once that model is built)")


def _assign_names(layers) -> None:
    """Give unnamed layers "dense1", "relu2", ...; names the user chose win."""
    seen = set()
    for layer in layers:
        if layer.name in seen:
            raise ValueError(f"two layers are named {layer.name!r}; layer names must be unique")
        if layer.name is not None:
            seen.add(layer.name)
    counts = {}
    for layer in layers:
        if layer.name is None:
            while layer.name is None or layer.name in seen:
                counts[layer.kind] = counts.get(layer.kind, 0) + 1
                layer.name = f"{layer.kind}{counts[layer.kind]}"
            seen.add(layer.name)
