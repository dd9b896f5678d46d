"""ONNX in and out: ``from_onnx`` builds a dlc model from an ONNX graph, ``to_onnx`` writes one.

Import walks the graph in topological order with an environment from ONNX value
names to ``Value``s (a dlc tensor, its ONNX feature dimensions and a pending
per-feature affine map); each op type has one converter in ``CONVERTERS``.
Constants (initializers, ``Constant`` nodes and nodes computed from constants
alone) are evaluated first with onnx's reference evaluator.  Add/Sub/Mul/Div by
constants accumulate into the pending affine map, which becomes a ``Normalize``
(positive scale), folds into the Dense before or after it, or becomes a diagonal
Dense.  Today the graph must be a chain; the walk itself already handles a DAG.

onnx is imported lazily, so it stays an optional dependency (``pip install 'dlc[onnx]'``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import dsl
from .api import _check_model
from .ir import DTYPES
from .lower import lower
from .passes import run_pipeline

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_OPSET = 17
MIN_OPSET = 9


def _onnx():
    try:
        import onnx
    except ImportError as exc:      # pragma: no cover - depends on the environment
        raise ImportError("dlc's ONNX support needs the onnx package: "
                          "pip install 'dlc[onnx]'") from exc
    return onnx


class Unsupported(Exception):
    """A node dlc cannot represent; the walk records it and goes on."""


# ================================================================ import

@dataclass
class Affine:
    """y = scale * x + shift per feature (float64), and the exact Normalize it spells when
    the steps were Sub(mean) then Div(Sqrt(Add(var, eps))), as ``to_onnx`` writes it."""
    scale: np.ndarray
    shift: np.ndarray
    normalize: tuple = None          # (mean, var, eps) or None
    subtracted: np.ndarray = None    # the mean, while the only step so far is a Sub
    name: str = None                 # the layer name the first step asked for


@dataclass
class Value:
    tensor: object                   # dsl.Tensor, or None when an earlier node failed
    dims: tuple                      # ONNX dimensions after the batch axes
    batch_axes: int = 1
    affine: Affine = None
    shared: bool = False             # its tensor is also read without this value's affine

    @property
    def features(self) -> int:
        return int(np.prod(self.dims, dtype=np.int64))

    @property
    def rank(self) -> int:
        return self.batch_axes + len(self.dims)


@dataclass
class Imported:
    """The dlc model and how its flat (batch, features) arrays map to the ONNX shapes."""
    net: dsl.Model
    input_dims: tuple
    output_dims: list           # per output
    batch_axes: int
    output_batch_axes: list     # per output


def from_onnx(model) -> dsl.Model:
    """A dlc model computing the ONNX model's graph.

    ``model`` is a path, an ``onnx.ModelProto`` or its serialized bytes.  The graph
    has one input whose first dimension is the batch (symbolic or fixed) and whose other
    dimensions are static, and one or more outputs; it may be any DAG (a residual Add
    of two computed values, a Concat along the features).  A Gemm with transA=1 reading
    the input needs a static input shape: the whole input is then one example.  What
    cannot be imported raises one ValueError listing every unsupported node and shape.
    """
    return import_model(model).net


def load_model(model):
    onnx = _onnx()
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_model_from_string(bytes(model))
    if isinstance(model, (str, Path)):
        if not Path(model).is_file():
            raise ValueError(f"model: no ONNX file at {str(model)!r}")
        return onnx.load(str(model))
    raise TypeError(f"model must be a path, an onnx.ModelProto or bytes, "
                    f"got {type(model).__name__}")


def prepare(model):
    """Local functions inlined, the opset checked, shapes inferred."""
    onnx = _onnx()
    from onnx import inliner, shape_inference
    model = load_model(model)
    newest = onnx.defs.onnx_opset_version()
    version = opset_of(model)
    if version > newest:
        raise ValueError(f"model: opset {version} is newer than the installed onnx "
                         f"supports ({newest}); upgrade onnx")
    model = inliner.inline_local_functions(model)
    try:
        model = shape_inference.infer_shapes(model)
    except Exception:   # noqa: BLE001 - shapes are then tracked by the walk alone
        pass
    return model


def opset_of(model) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    return max(versions, default=1)


def import_model(model, batch_axes: int = None) -> Imported:
    """``from_onnx`` with the shape bookkeeping; ``batch_axes`` leading axes of the input
    form the batch (the ONNX backend views N-D node tests that way).  By default one, or
    none when a Gemm with transA=1 reads the input and its shape is static: the whole
    input is then one example."""
    model = prepare(model)
    if batch_axes is None:
        batch_axes = 0 if transposed_input(model) else 1
    return Importer(model, batch_axes).run()


def transposed_input(model) -> bool:
    """Whether a Gemm with transA=1 reads the graph's input, whose shape is static."""
    inits = {t.name for t in model.graph.initializer}
    x = next((v for v in model.graph.input if v.name not in inits), None)
    if x is None:
        return False
    dims = x.type.tensor_type.shape.dim
    static = bool(dims) and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims)
    helper = _onnx().helper
    return static and any(
        n.op_type == "Gemm" and n.input and n.input[0] == x.name
        and any(a.name == "transA" and helper.get_attribute_value(a) for a in n.attribute)
        for n in model.graph.node)


class Importer:
    def __init__(self, model, batch_axes: int):
        self.model, self.graph = model, model.graph
        self.opset = opset_of(model)
        self.batch_axes = batch_axes
        self.problems = []
        self.consts, self.const_origin = {}, {}
        self.env = {}
        self.params = {}            # layer -> {short name: array}
        self.used_names = set()
        self.skipped = set()         # ids of nodes already reported, not converted
        self.taken_outputs = []      # the tensors of the graph outputs so far
        self.types = self.value_types()

    # ---------------------------------------------------------------- bookkeeping

    def value_types(self) -> dict:
        g = self.graph
        return {v.name: v.type for v in list(g.input) + list(g.value_info) + list(g.output)}

    def shape_of(self, name: str):
        """The inferred ONNX shape: ints, dim_param strings, or None where unknown."""
        type_ = self.types.get(name)
        if type_ is None or not type_.tensor_type.HasField("shape"):
            return None
        return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                     for d in type_.tensor_type.shape.dim)

    def fail(self, node, reason: str) -> None:
        self.problems.append(f"node {node.name or '(unnamed)'!r} ({node.op_type}, domain "
                             f"{node.domain or 'ai.onnx'!r}): {reason}")

    def layer_name(self, node):
        """The ONNX node's name when it is an identifier not yet taken, else dlc's default."""
        name = node if isinstance(node, str) else node.name
        if name and IDENTIFIER.fullmatch(name) and name not in self.used_names:
            self.used_names.add(name)
            return name
        return None

    # ---------------------------------------------------------------- the walk

    def run(self) -> Imported:
        x_name, dtype = self.read_input()
        self.evaluate_constants()
        runtime = self.live([n for n in self.graph.node if not self.is_constant_node(n)])
        self.readers = {}
        for node in runtime:
            for name in node.input:
                self.readers[name] = self.readers.get(name, 0) + 1
        for out in self.graph.output:
            self.readers[out.name] = self.readers.get(out.name, 0) + 1
        self.check_ops(runtime)
        self.check_static_shapes(runtime)
        if self.problems and not all(isinstance(d, int) for d in self.input_value.dims):
            self.raise_problems()        # nothing to walk without the input's width
        x = dsl.Input(self.input_value.features)
        self.input_value.tensor = x
        self.env[x_name] = self.input_value
        for node in runtime:
            self.convert(node)
        outs = [self.output_value(o.name, x) for o in self.graph.output]
        self.raise_problems()
        tensors = [o.tensor for o in outs]
        net = dsl.Model(x, tensors if len(tensors) > 1 else tensors[0], dtype=dtype)
        net.set_params({f"{layer.name}.{short}": value
                        for layer, values in self.params.items()
                        for short, value in values.items()})
        return Imported(net, self.input_value.dims, [o.dims for o in outs], self.batch_axes,
                        [o.batch_axes for o in outs])

    def live(self, runtime) -> list:
        """The nodes some graph output needs (ONNX's dead code, such as an unused mask
        output's producer, is not imported)."""
        needed, kept = {o.name for o in self.graph.output}, []
        for node in reversed(runtime):
            if any(name in needed for name in node.output if name):
                kept.append(node)
                needed.update(i for i in node.input if i)
        return kept[::-1]

    def output_value(self, name: str, x):
        """The graph output ``name`` as a Value whose tensor is a layer's own: its pending
        affine materialized, an identity layer where it is the input or another output."""
        out = self.env.get(name)
        if out is None and not self.problems:
            self.problems.append(f"output {name!r} is not computed from the input")
        if out is None or out.tensor is None or self.problems:
            return Value(None, ())
        out = Value(self.materialize(out), out.dims, out.batch_axes)
        if out.tensor is x or out.tensor in self.taken_outputs:
            out.tensor = self.identity(out.tensor, name)
        self.taken_outputs.append(out.tensor)
        return out

    def raise_problems(self) -> None:
        if self.problems:
            lines = "\n  ".join(self.problems)
            raise ValueError(f"cannot import this ONNX model into dlc "
                             f"({len(self.problems)} problem(s)):\n  {lines}")

    def read_input(self):
        inits = {t.name for t in self.graph.initializer}
        inputs = [v for v in self.graph.input if v.name not in inits]
        if len(inputs) != 1 or not self.graph.output:
            raise ValueError(f"model: dlc imports a graph with one input and at least one "
                             f"output; this one has inputs {[v.name for v in inputs]} and "
                             f"outputs {[v.name for v in self.graph.output]}")
        x = inputs[0]
        onnx = _onnx()
        elem = x.type.tensor_type.elem_type
        dtypes = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64"}
        if elem not in dtypes:
            raise ValueError(f"model: input {x.name!r} has element type "
                             f"{onnx.TensorProto.DataType.Name(elem)}; dlc runs float32 or "
                             f"float64")
        shape = self.shape_of(x.name)
        if shape is None or len(shape) < self.batch_axes:
            raise ValueError(f"model: input {x.name!r} needs a shape with a batch axis, "
                             f"got {shape}")
        dims = shape[self.batch_axes:]
        bad = [i for i, d in enumerate(dims, self.batch_axes) if not isinstance(d, int) or d <= 0]
        if bad:
            self.problems.append(f"input {x.name!r} has shape {fmt_shape(shape)}: every "
                                 f"dimension after the batch must be static (not {bad})")
        self.input_value = Value(None, tuple(dims), self.batch_axes)
        return x.name, dtypes[elem]

    def evaluate_constants(self) -> None:
        for t in self.graph.initializer:
            self.consts[t.name] = _onnx().numpy_helper.to_array(t)
        for node in self.graph.node:
            if self.is_constant_node(node):
                try:
                    values = self.evaluate(node)
                except Exception as exc:   # noqa: BLE001 - reported with the node
                    self.fail(node, f"cannot evaluate this constant node: {exc}")
                    continue
                for name, value in zip(node.output, values):
                    self.consts[name] = value
                    self.const_origin[name] = node

    def is_constant_node(self, node) -> bool:
        if node.op_type == "CastLike" and node.input[0] in self.consts:
            return True      # the cast constant depends on the other input's type only
        return all(i in self.consts for i in node.input if i)

    def evaluate(self, node) -> list:
        from onnx.reference import ReferenceEvaluator
        if node.op_type == "CastLike":
            elem = self.types[node.input[1]].tensor_type.elem_type
            return [self.consts[node.input[0]].astype(_onnx().helper.tensor_dtype_to_np_dtype(elem))]
        feeds = {i: self.consts[i] for i in node.input if i}
        return ReferenceEvaluator(node, opsets={"": self.opset}).run(None, feeds)

    def check_ops(self, runtime) -> None:
        for node in runtime:
            if node.domain not in ("", "ai.onnx") or node.op_type not in CONVERTERS:
                self.fail(node, UNSUPPORTED.get(node.op_type, "unsupported op")
                          if node.domain in ("", "ai.onnx") else "unsupported op")
                self.skipped.add(id(node))

    def check_static_shapes(self, runtime) -> None:
        for node in runtime:
            for name in node.output:
                shape = self.shape_of(name) if name else None
                if shape is None or len(shape) < self.batch_axes:
                    continue
                loose = [i for i, d in enumerate(shape) if i >= self.batch_axes
                         and not isinstance(d, int)]
                if loose:
                    self.problems.append(f"value {name!r} has shape {fmt_shape(shape)}: "
                                         f"dimension(s) {loose} are not static")

    def convert(self, node) -> None:
        computed = [self.env.get(i) for i in node.input if i and i not in self.consts]
        if id(node) in self.skipped or any(v is None or v.tensor is None for v in computed):
            self.mark_failed(node)
            return
        try:
            if len(computed) > 1 and node.op_type not in MERGES:
                raise Unsupported(f"reads {len(computed)} computed values; dlc joins two "
                                  f"computed values only with {sorted(MERGES)}")
            value = (MERGES[node.op_type](self, node, computed) if len(computed) > 1
                     else CONVERTERS[node.op_type](self, node, computed[0]))
        except Unsupported as exc:
            self.fail(node, str(exc))
            self.mark_failed(node)
            return
        if len(computed) == 1 and value.tensor is computed[0].tensor and (
                computed[0].shared or self.readers.get(self.computed_input(node), 0) > 1):
            value.shared = True       # the same dlc tensor is read elsewhere too
        self.env[node.output[0]] = value

    def computed_input(self, node) -> str:
        return next(i for i in node.input if i and i not in self.consts)

    def mark_failed(self, node) -> None:
        for name in node.output:
            if name:
                self.env[name] = Value(None, ())

    # ---------------------------------------------------------------- helpers for converters

    def attrs(self, node, known: dict) -> dict:
        """The node's attributes with defaults; an attribute dlc does not know is an error."""
        helper = _onnx().helper
        values = dict(known)
        for a in node.attribute:
            if a.name not in known:
                raise Unsupported(f"attribute {a.name!r} is not supported")
            value = helper.get_attribute_value(a)
            values[a.name] = short_float(np.float32(value)) if isinstance(value, float) else value
        return values

    def const_input(self, node, index: int, default=None):
        if index >= len(node.input) or not node.input[index]:
            return default
        name = node.input[index]
        if name not in self.consts:
            raise Unsupported(f"input {index} ({name!r}) must be a constant")
        return self.consts[name]

    def add_layer(self, layer, value: Value, dims=None, params=None) -> Value:
        tensor = self.materialize(value)
        if params:
            self.params[layer] = params
        return Value(layer(tensor), value.dims if dims is None else tuple(dims),
                     value.batch_axes)

    def per_feature(self, const, value: Value, what: str) -> np.ndarray:
        """``const`` broadcast over the feature dims and flattened, or Unsupported."""
        c = np.asarray(const, np.float64)
        if c.ndim > value.rank:
            raise Unsupported(f"{what} of shape {c.shape} has more axes than the tensor "
                              f"(rank {value.rank})")
        c = c.reshape((1,) * (value.rank - c.ndim) + c.shape)
        if any(d != 1 for d in c.shape[:value.batch_axes]):
            raise Unsupported(f"{what} of shape {np.shape(const)} varies along the batch")
        c = c.reshape(c.shape[value.batch_axes:])
        try:
            if np.broadcast_shapes(c.shape, value.dims) != tuple(value.dims):
                raise ValueError
        except ValueError:
            raise Unsupported(f"{what} of shape {np.shape(const)} does not broadcast to the "
                              f"features {value.dims} without widening them") from None
        return np.broadcast_to(c, value.dims).reshape(-1)

    def with_affine(self, value: Value, scale, shift, name=None) -> Value:
        """``value`` followed by y = scale x + shift (per feature)."""
        a = value.affine or Affine(np.ones(value.features), np.zeros(value.features),
                                   name=name)
        composed = Affine(a.scale * scale, a.shift * scale + shift, name=a.name)
        return Value(value.tensor, value.dims, value.batch_axes, composed)

    def materialize(self, value: Value):
        """The dlc tensor of ``value`` with its pending affine turned into layers: the exact
        Normalize it spells, a fold into the Dense that made the tensor, a Normalize when
        every scale is positive, else a diagonal Dense."""
        a, tensor = value.affine, value.tensor
        if is_identity(a):
            return tensor
        if a.normalize is not None:
            mean, var, eps = a.normalize
            return dsl.Normalize(mean, var, eps=eps, name=a.name)(tensor)
        if self.folds_back(value):
            p = self.params[tensor.layer]
            p["W"], p["b"] = p["W"] * a.scale, p["b"] * a.scale + a.shift
            return tensor
        if np.all(a.scale > 0):
            return dsl.Normalize(-a.shift / a.scale, 1 / a.scale ** 2, eps=0.0,
                                 name=a.name)(tensor)
        dense = dsl.Dense(value.features, name=a.name)
        self.params[dense] = {"W": np.diag(a.scale), "b": a.shift}
        return dense(tensor)

    def folds_back(self, value: Value) -> bool:
        """Whether ``value``'s affine can fold into the Dense that made its tensor: one
        whose output nothing else reads."""
        layer = value.tensor.layer
        return (isinstance(layer, dsl.Dense) and layer in self.params and not value.shared
                and not value.tensor.children)

    def folds_forward(self, value: Value) -> bool:
        """Whether a Dense reading ``value`` should absorb its affine: one that would
        otherwise become a diagonal Dense of its own."""
        a = value.affine
        return (not is_identity(a) and a.normalize is None and not self.folds_back(value)
                and not np.all(a.scale > 0))

    def identity(self, x, name):
        n = x.features
        return dsl.Normalize(np.zeros(n), np.ones(n), eps=0.0,
                             name=self.layer_name(name))(x)


def is_identity(a: Affine) -> bool:
    return a is None or (a.normalize is None and np.all(a.scale == 1) and np.all(a.shift == 0))


def short_float(value) -> float:
    """A float32 attribute or constant as the shortest decimal that rounds to it:
    the 0.1 or 1e-5 the exporter was given rather than 0.10000000149011612."""
    value = np.asarray(value)
    if value.dtype == np.float32:
        return float(str(value.reshape(())[()]))
    return float(value)


def fmt_shape(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def normalized_axis(axis: int, rank: int, node_what: str) -> int:
    if not -rank <= axis < rank:
        raise Unsupported(f"{node_what} {axis} is out of range for rank {rank}")
    return axis % rank


# ---------------------------------------------------------------- converters

def convert_dense(imp: Importer, node, x: Value, W, b, dims=None) -> Value:
    """A Dense of weights W (in, out) and bias b, absorbing a pending affine before it;
    ``dims`` are the output's ONNX feature dimensions (default (out,))."""
    if x.batch_axes == 1 and len(x.dims) != 1 or x.batch_axes > 1:
        raise Unsupported(f"needs a (batch, features) input, got rank {x.rank}")
    if W.ndim != 2 or W.shape[0] != x.features:
        raise Unsupported(f"weights of shape {W.shape} do not take {x.features} features")
    if imp.folds_forward(x):       # dense(scale x + shift) = dense(x, diag(scale) W, shift W + b)
        tensor, a = x.tensor, x.affine
        W, b = a.scale[:, None] * W, a.shift @ W + b
    else:
        tensor = imp.materialize(x)
    layer = dsl.Dense(W.shape[1], name=imp.layer_name(node))
    imp.params[layer] = {"W": W, "b": b}
    return Value(layer(tensor), (W.shape[1],) if dims is None else tuple(dims), x.batch_axes)


TRANS_A = ("transA=1 puts the batch on A's second axis; dlc imports it when A's shape is "
           "static, taking the whole of A as one example (a row of its values)")


def convert_gemm(imp, node, x):
    a = imp.attrs(node, {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0})
    if node.input[0] not in imp.env:
        raise Unsupported("the computed value must be input A (the batch rows)")
    if a["transA"] and x.batch_axes != 0:
        raise Unsupported(TRANS_A)
    B = np.asarray(imp.const_input(node, 1), np.float64)
    if B.ndim != 2:
        raise Unsupported(f"B must be a matrix, got shape {B.shape}")
    W = a["alpha"] * (B.T if a["transB"] else B)
    C = imp.const_input(node, 2, np.zeros(()))
    if x.batch_axes == 0:
        return static_product(imp, node, x, W, a["beta"] * np.asarray(C, np.float64),
                              a["transA"])
    out = Value(None, (W.shape[1],))
    b = a["beta"] * imp.per_feature(C, out, "C")
    return convert_dense(imp, node, x, W, b)


def static_product(imp, node, x: Value, W, C, trans: bool = False) -> Value:
    """A (M, K) @ W (K, N) + C (or A^T with A (K, M)) where A is a whole example (no batch
    axis): one Dense of M K -> M N whose weights hold W once per row of the product."""
    if len(x.dims) != 2:
        raise Unsupported(f"A must be a matrix, got features {x.dims}")
    K, M = x.dims if trans else x.dims[::-1]
    if W.shape[0] != K:
        raise Unsupported(f"B of shape {W.shape} does not take {K} columns of A")
    N = W.shape[1]
    eye = np.eye(M)
    # row (k, m) of A^T's layout, or (m, k) of A's, feeds column (m, n) with weight W[k, n]
    full = (np.einsum("kn,mp->kmpn", W, eye) if trans
            else np.einsum("kn,mp->mkpn", W, eye)).reshape(K * M, M * N)
    b = imp.per_feature(C, Value(None, (M, N), 0), "C")
    return convert_dense(imp, node, x, full, b, dims=(M, N))


def convert_matmul(imp, node, x):
    imp.attrs(node, {})
    if node.input[0] not in imp.env:
        raise Unsupported("the computed value must be the left operand")
    W = np.asarray(imp.const_input(node, 1), np.float64)
    if W.ndim != 2:
        raise Unsupported(f"the right operand must be a matrix, got shape {W.shape}")
    if x.batch_axes == 0:
        return static_product(imp, node, x, W, np.zeros(()))
    return convert_dense(imp, node, x, W, np.zeros(W.shape[1]))


def convert_arithmetic(imp, node, x):
    imp.attrs(node, {})
    computed_first = node.input[0] in imp.env
    const = imp.consts[node.input[1] if computed_first else node.input[0]]
    c = imp.per_feature(const, x, "the constant operand")
    op, n = node.op_type, x.features
    name = imp.layer_name(node) if x.affine is None else None
    if op == "Add":
        y = imp.with_affine(x, np.ones(n), c, name)
    elif op == "Mul":
        y = imp.with_affine(x, c, np.zeros(n), name)
    elif op == "Sub":
        y = (imp.with_affine(x, np.ones(n), -c, name) if computed_first
             else imp.with_affine(x, -np.ones(n), c, name))
    elif not computed_first:
        raise Unsupported("a constant divided by a computed value is not affine")
    elif np.any(c == 0):
        raise Unsupported("division by a constant with zeros")
    else:
        y = imp.with_affine(x, 1 / c, np.zeros(n), name)
    y.affine.normalize, y.affine.subtracted = exact_normalize(imp, node, x, const,
                                                              computed_first)
    return y


def exact_normalize(imp, node, x, const, computed_first):
    """Track Sub(mean) then Div(Sqrt(Add(var, eps))), the form ``to_onnx`` gives Normalize,
    so it imports back as the same Normalize (mean, var, eps)."""
    if node.op_type == "Sub" and computed_first and x.affine is None:
        return None, imp.per_feature(const, x, "the mean")
    if node.op_type != "Div" or not computed_first or (
            x.affine is not None and x.affine.subtracted is None):
        return None, None
    sqrt = imp.const_origin.get(node.input[1])
    add = imp.const_origin.get(sqrt.input[0]) if sqrt is not None and sqrt.op_type == "Sqrt" else None
    if add is None or add.op_type != "Add" or np.ndim(imp.consts[add.input[1]]) != 0:
        return None, None
    mean = x.affine.subtracted if x.affine is not None else np.zeros(x.features)
    var = imp.per_feature(imp.consts[add.input[0]], x, "the variance")
    eps = short_float(imp.consts[add.input[1]])
    return (mean, var, eps), None


def convert_activation(layer_type):
    def convert(imp, node, x):
        imp.attrs(node, {})
        return imp.add_layer(layer_type(name=imp.layer_name(node)), x)
    return convert


def convert_leaky_relu(imp, node, x):
    a = imp.attrs(node, {"alpha": 0.01})
    return imp.add_layer(dsl.LeakyReLU(a["alpha"], name=imp.layer_name(node)), x)


def convert_elu(imp, node, x):
    a = imp.attrs(node, {"alpha": 1.0})
    return imp.add_layer(dsl.ELU(a["alpha"], name=imp.layer_name(node)), x)


def convert_softmax(layer_type):
    def convert(imp, node, x):
        return softmax_layer(imp, node, x, layer_type)
    return convert


def softmax_layer(imp, node, x, layer_type):
    """(Log)Softmax over the features of each row: before opset 13 the axes from ``axis``
    on (default 1), from 13 the one ``axis`` (default -1); other feature axes must be 1."""
    new = imp.opset >= 13
    a = imp.attrs(node, {"axis": -1 if new else 1})
    axis = normalized_axis(a["axis"], x.rank, "axis")
    axes = {axis} if new else set(range(axis, x.rank))
    if axis < x.batch_axes:
        raise Unsupported(f"axis {a['axis']} reduces over the batch")
    others = [d for i, d in enumerate(x.dims, x.batch_axes) if i not in axes]
    if any(d != 1 for d in others):
        raise Unsupported(f"axis {a['axis']} of a tensor with features {x.dims} is not a "
                          f"softmax over each row's features")
    return imp.add_layer(layer_type(name=imp.layer_name(node)), x)


def convert_batchnorm(imp, node, x):
    a = imp.attrs(node, {"epsilon": 1e-5, "momentum": 0.9, "training_mode": 0, "spatial": 1})
    if a["training_mode"]:
        raise Unsupported("training_mode=1; dlc imports the inference form")
    if not a["spatial"]:
        raise Unsupported("spatial=0 (per-activation statistics) is not supported")
    if x.batch_axes != 1 or not x.dims:
        raise Unsupported(f"needs the channels on axis 1 after one batch axis")
    if len([o for o in node.output if o]) > 1:
        raise Unsupported("only the inference output Y may be used")
    if not a["epsilon"] > 0:
        raise Unsupported(f"epsilon must be positive, got {a['epsilon']}")
    if not 0 <= a["momentum"] < 1:
        raise Unsupported(f"momentum must be in [0, 1), got {a['momentum']}")
    channels = x.dims[0]
    stats = {}
    for short, index in (("gamma", 1), ("beta", 2), ("running_mean", 3), ("running_var", 4)):
        v = np.asarray(imp.const_input(node, index), np.float64).reshape(-1)
        if v.shape != (channels,):
            raise Unsupported(f"input {index} has {v.size} values for {channels} channels")
        stats[short] = np.broadcast_to(v.reshape((channels,) + (1,) * (len(x.dims) - 1)),
                                       x.dims).reshape(-1)
    layer = dsl.BatchNorm(eps=a["epsilon"], momentum=a["momentum"], name=imp.layer_name(node))
    return imp.add_layer(layer, x, params=stats)


def convert_dropout(imp, node, x):
    if imp.opset < 12:
        a = imp.attrs(node, {"ratio": 0.5, "is_test": 0, "seed": 0})
        ratio, training = a["ratio"], imp.opset < 7 and not a["is_test"]
    else:
        imp.attrs(node, {"seed": 0})
        ratio = short_float(imp.const_input(node, 1, np.float64(0.5)))
        training = bool(imp.const_input(node, 2, False))
    mask = node.output[1] if len(node.output) > 1 else ""
    if mask and any(mask in n.input for n in imp.graph.node):
        raise Unsupported("the mask output is not supported")
    if training and ratio > 0:
        raise Unsupported("training_mode=1 draws random masks; export in inference mode")
    if not 0 <= ratio < 1:
        raise Unsupported(f"ratio must be in [0, 1), got {ratio}")
    return imp.add_layer(dsl.Dropout(keep_prob=1.0 - ratio, name=imp.layer_name(node)), x)


def convert_identity(imp, node, x):
    imp.attrs(node, {})
    return x


def convert_flatten(imp, node, x):
    """Rows of prod(shape[:axis]) by prod(shape[axis:]): the batch rows when every
    feature axis before ``axis`` has size 1."""
    a = imp.attrs(node, {"axis": 1})
    axis = a["axis"] + x.rank if a["axis"] < 0 else a["axis"]
    if not 0 <= axis <= x.rank:
        raise Unsupported(f"axis {a['axis']} is out of range for rank {x.rank}")
    if axis < x.batch_axes:
        raise Unsupported(f"axis {a['axis']} folds the batch into the features")
    inner = x.dims[:axis - x.batch_axes]
    if any(d != 1 for d in inner):
        raise Unsupported(f"axis {a['axis']} moves features {inner} into the rows")
    return Value(x.tensor, (x.features,), 1, x.affine)


def convert_reshape(imp, node, x):
    a = imp.attrs(node, {"allowzero": 0})
    shape = [int(s) for s in np.asarray(imp.const_input(node, 1)).reshape(-1)]
    if x.batch_axes != 1 or not shape or shape[0] not in (0, -1) or (
            shape[0] == 0 and a["allowzero"]):
        raise Unsupported(f"shape {shape} must keep the batch first (0 or -1)")
    dims = [x.dims[i - 1] if s == 0 and not a["allowzero"] and i - 1 < len(x.dims) else s
            for i, s in enumerate(shape)][1:]
    if -1 in dims:
        if shape[0] == -1 or dims.count(-1) > 1:
            raise Unsupported(f"shape {shape} leaves the batch to be inferred")
        known = int(np.prod([d for d in dims if d != -1]))
        dims[dims.index(-1)] = x.features // known if known and x.features % known == 0 else 0
    if int(np.prod(dims)) != x.features or any(d <= 0 for d in dims):
        raise Unsupported(f"shape {shape} does not hold the {x.features} features of a row")
    return Value(x.tensor, tuple(dims), 1, x.affine)


def squeeze_axes(imp, node, x, rank_out):
    if imp.opset < 13:
        axes = imp.attrs(node, {"axes": None})["axes"]
    else:
        imp.attrs(node, {})
        axes = imp.const_input(node, 1)
    return None if axes is None else [normalized_axis(int(a), rank_out, "axis")
                                      for a in np.asarray(axes).reshape(-1)]


def convert_squeeze(imp, node, x):
    axes = squeeze_axes(imp, node, x, x.rank)
    if axes is None:
        axes = [i for i, d in enumerate(x.dims, x.batch_axes) if d == 1]
    if any(a < x.batch_axes or x.dims[a - x.batch_axes] != 1 for a in axes):
        raise Unsupported(f"axes {axes} must be feature axes of size 1")
    dims = tuple(d for i, d in enumerate(x.dims, x.batch_axes) if i not in axes)
    return Value(x.tensor, dims, x.batch_axes, x.affine)


def convert_unsqueeze(imp, node, x):
    if imp.opset < 13:
        raw = imp.attrs(node, {"axes": None})["axes"]
    else:
        imp.attrs(node, {})
        raw = imp.const_input(node, 1)
    rank_out = x.rank + len(np.asarray(raw).reshape(-1))
    axes = sorted(normalized_axis(int(a), rank_out, "axis") for a in np.asarray(raw).reshape(-1))
    if any(a < x.batch_axes for a in axes):
        raise Unsupported(f"axes {axes} insert an axis before the batch")
    dims = list(x.dims)
    for a in axes:
        dims.insert(a - x.batch_axes, 1)
    return Value(x.tensor, tuple(dims), x.batch_axes, x.affine)


def convert_clip(imp, node, x):
    """min(max(x, lo), hi) as ReLUs between per-feature affine maps:
    relu(x - lo) + lo, then hi - relu(hi - y)."""
    if imp.opset < 11:
        a = imp.attrs(node, {"min": -np.inf, "max": np.inf})
        lo, hi = a["min"], a["max"]
    else:
        imp.attrs(node, {})
        lo, hi = (float(imp.const_input(node, i, v)) for i, v in ((1, -np.inf), (2, np.inf)))
    n = x.features
    name = imp.layer_name(node)
    if np.isfinite(lo):
        x = imp.add_layer(dsl.ReLU(name=name), imp.with_affine(x, np.ones(n), -lo))
        x = imp.with_affine(x, np.ones(n), np.full(n, lo))
        name = None
    if np.isfinite(hi):
        x = imp.add_layer(dsl.ReLU(name=name), imp.with_affine(x, -np.ones(n), np.full(n, hi)))
        x = imp.with_affine(x, -np.ones(n), np.full(n, hi))
    return x


def convert_max(imp, node, x):
    """Max(x, c) with a constant c: relu(x - c) + c."""
    imp.attrs(node, {})
    if len(node.input) != 2:
        raise Unsupported("only Max of one computed value and one constant")
    const = imp.consts[node.input[1] if node.input[0] in imp.env else node.input[0]]
    c = imp.per_feature(const, x, "the constant operand")
    y = imp.add_layer(dsl.ReLU(name=imp.layer_name(node)),
                      imp.with_affine(x, np.ones(x.features), -c))
    return imp.with_affine(y, np.ones(x.features), c)


def convert_add(imp, node, xs):
    """The sum (Add, Sum) or difference (Sub) of computed values of one shape: an Add
    layer."""
    imp.attrs(node, {})
    if any(x.dims != xs[0].dims or x.batch_axes != xs[0].batch_axes for x in xs):
        raise Unsupported(f"the operands have features {[x.dims for x in xs]}; dlc adds "
                          f"computed values of one shape (no broadcasting)")
    a = xs[0]
    if len(xs) == 2 and node.input[0] == node.input[1] and node.op_type != "Sum":
        scale = 2.0 if node.op_type == "Add" else 0.0       # x + x, x - x: affine in x
        return imp.with_affine(a, np.full(a.features, scale), np.zeros(a.features))
    if node.op_type == "Sub":
        xs = [a, imp.with_affine(xs[1], -np.ones(a.features), np.zeros(a.features))]
    layer = dsl.Add(name=imp.layer_name(node))
    return Value(layer(distinct(imp, [imp.materialize(x) for x in xs])), a.dims, a.batch_axes)


def convert_concat(imp, node, xs):
    """Values side by side along a feature axis that is the first one larger than 1
    (so each row of the result is the rows of the operands, one after the other)."""
    axis = imp.attrs(node, {"axis": None})["axis"]
    if axis is None:
        raise Unsupported("needs the axis attribute")
    if len({x.batch_axes for x in xs}) > 1 or len({len(x.dims) for x in xs}) > 1:
        raise Unsupported("the operands have different ranks")
    k = xs[0].batch_axes
    axis = normalized_axis(axis, xs[0].rank, "axis")
    if axis < k:
        raise Unsupported(f"axis {axis} concatenates along the batch")
    i = axis - k
    if any(x.dims[:i] != xs[0].dims[:i] or x.dims[i + 1:] != xs[0].dims[i + 1:] for x in xs):
        raise Unsupported(f"the operands' features {[x.dims for x in xs]} differ off axis {axis}")
    if any(d != 1 for d in xs[0].dims[:i]):
        raise Unsupported(f"axis {axis} interleaves the operands' features within each row")
    dims = xs[0].dims[:i] + (sum(x.dims[i] for x in xs),) + xs[0].dims[i + 1:]
    layer = dsl.Concatenate(name=imp.layer_name(node))
    return Value(layer(distinct(imp, [imp.materialize(x) for x in xs])), dims, k)


def convert_concat_one(imp, node, x):
    """A Concat of one operand is the identity; one with constants is not a dlc layer."""
    imp.attrs(node, {"axis": None})
    if len([i for i in node.input if i]) > 1:
        raise Unsupported("concatenates a computed value with constants")
    return x


def convert_sum_one(imp, node, x):
    """Sum of one computed value and constants: the value shifted by their sum."""
    imp.attrs(node, {})
    consts = [imp.per_feature(imp.consts[i], x, "a constant operand")
              for i in node.input if i and i in imp.consts]
    return imp.with_affine(x, np.ones(x.features), sum(consts, np.zeros(x.features)),
                           imp.layer_name(node) if x.affine is None else None)


def distinct(imp, tensors: list) -> list:
    """``tensors`` with a repeated one passed through an identity layer (a merge layer
    reads each tensor once)."""
    seen, out = set(), []
    for t in tensors:
        out.append(imp.identity(t, "") if id(t) in seen else t)
        seen.add(id(t))
    return out


# Ops of several computed values.
MERGES = {
    "Add": convert_add,
    "Sum": convert_add,
    "Sub": convert_add,
    "Concat": convert_concat,
}

CONVERTERS = {
    "Gemm": convert_gemm,
    "MatMul": convert_matmul,
    "Add": convert_arithmetic,
    "Sub": convert_arithmetic,
    "Mul": convert_arithmetic,
    "Div": convert_arithmetic,
    "Relu": convert_activation(dsl.ReLU),
    "Sigmoid": convert_activation(dsl.Sigmoid),
    "Tanh": convert_activation(dsl.Tanh),
    "LeakyRelu": convert_leaky_relu,
    "Elu": convert_elu,
    "Softmax": convert_softmax(dsl.Softmax),
    "LogSoftmax": convert_softmax(dsl.LogSoftmax),
    "BatchNormalization": convert_batchnorm,
    "Dropout": convert_dropout,
    "Identity": convert_identity,
    "Flatten": convert_flatten,
    "Reshape": convert_reshape,
    "Squeeze": convert_squeeze,
    "Unsqueeze": convert_unsqueeze,
    "Clip": convert_clip,
    "Max": convert_max,
    "Concat": convert_concat_one,
    "Sum": convert_sum_one,
}

# Ops dlc has no layer for, with the reason the error gives.
UNSUPPORTED = {}


# ================================================================ export

def to_onnx(net: dsl.Model, path=None, opset: int = DEFAULT_OPSET, folded: bool = False):
    """The model's inference graph as an ``onnx.ModelProto`` (written to ``path`` if given).

    ``folded=True`` exports the graph after dlc's inference passes (batch norm and
    normalisation folded into the Dense layers, dropout removed, activations fused).
    """
    onnx = _onnx()
    _check_model(net)
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to {newest}, got {opset!r}")
    graph = lower(net)
    if folded:
        graph = run_pipeline(graph)
    model = Exporter(net, graph, opset).model()
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        onnx.save(model, str(path))
    return model


class Exporter:
    def __init__(self, net, graph, opset: int):
        self.net, self.graph, self.opset = net, graph, opset
        self.helper = _onnx().helper
        self.nodes, self.initializers = [], []
        self.names = {}                 # IR ref -> ONNX value name
        self.merges = {}                # IR ref of an add/concat -> (its ONNX node, layer)
        self.layers = {layer.name: layer for layer in net.layers}
        self.elem = {"f32": _onnx().TensorProto.FLOAT,
                     "f64": _onnx().TensorProto.DOUBLE}[graph.dtype]
        self.exporters = EXPORTERS      # op -> its export rule (dlc/onnx_quant.py adds some)

    def model(self):
        h = self.helper
        (x_ref, x_type), = self.graph.inputs.items()
        self.names[x_ref] = "x"
        for ref, param in self.graph.params.items():
            self.names[ref] = ref[1:]
            self.initializers.append(_onnx().numpy_helper.from_array(param.value, ref[1:]))
        for node in self.graph.nodes:
            self.exporters[node.op](self, node)
        types, outputs = self.graph.types(), []
        for k, ref in enumerate(self.graph.outputs):
            y = self.names[ref]
            if y == "x" or y in outputs:     # an empty graph after the passes, or a repeat
                name = "y" if len(self.graph.outputs) == 1 else f"y{k}"
                self.nodes.append(h.make_node("Identity", [y], [name], name=f"identity_{name}"))
                y = name
            outputs.append(y)
        graph = h.make_graph(self.nodes, "dlc", [self.tensor_info("x", x_type)],
                             [self.tensor_info(y, types[ref])
                              for y, ref in zip(outputs, self.graph.outputs)],
                             self.initializers)
        opsets = [h.make_opsetid("", self.opset)]
        return h.make_model(graph, opset_imports=opsets, producer_name="dlc",
                            ir_version=h.find_min_ir_version_for(opsets))

    def tensor_info(self, name, type_):
        return self.helper.make_tensor_value_info(name, self.elem,
                                                  ["batch"] + list(type_.shape[1:]))

    def emit(self, op_type, inputs, node, suffix="", **attrs) -> str:
        """Append one ONNX node named after the IR node's layer; returns its output name."""
        name = (node.layer or f"n{node.out[1:]}") + suffix
        self.nodes.append(self.helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def constant(self, name, value) -> str:
        dtype = DTYPES[self.graph.dtype]
        self.initializers.append(_onnx().numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def inputs(self, node) -> list:
        return [self.names[r] for r in node.inputs]

    def finish(self, node, out: str) -> None:
        self.names[node.out] = out


def export_dense(exp, node):
    out = exp.emit("Gemm", exp.inputs(node), node)
    act = node.attrs["activation"]
    if act != "none":
        out = export_activation_op(exp, act, out, node, node.attrs["alpha"], suffix=f".{act}")
    exp.finish(node, out)


def export_activation_op(exp, act, x, node, alpha=0.0, suffix=""):
    if act == "leaky_relu":
        return exp.emit("LeakyRelu", [x], node, suffix, alpha=float(alpha))
    if act == "elu":
        return exp.emit("Elu", [x], node, suffix, alpha=float(alpha))
    if act == "silu":       # no ONNX op: x Sigmoid(x)
        sigmoid = exp.emit("Sigmoid", [x], node, f"{suffix}.sigmoid")
        return exp.emit("Mul", [x, sigmoid], node, suffix)
    if act == "softmax":
        return exp.emit("Softmax", [x], node, suffix, axis=-1 if exp.opset >= 13 else 1)
    return exp.emit({"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}[act], [x], node, suffix)


def export_activation(exp, node):
    exp.finish(node, export_activation_op(exp, node.op, exp.inputs(node)[0], node,
                                          node.attrs.get("alpha", 0.0)))


def export_batchnorm(exp, node):
    layer = exp.layers.get(node.layer)
    momentum = layer.momentum if isinstance(layer, dsl.BatchNorm) else 0.9
    exp.finish(node, exp.emit("BatchNormalization", exp.inputs(node), node,
                              epsilon=float(node.attrs["eps"]), momentum=float(momentum)))


def export_normalize(exp, node):
    """(x - mean) / Sqrt(Add(var, eps)): the form the importer reads back as this Normalize."""
    x, mean, var = exp.inputs(node)
    base = node.layer or f"n{node.out[1:]}"
    eps = exp.constant(f"{base}.eps", node.attrs["eps"])
    centred = exp.emit("Sub", [x, mean], node)
    var_eps = exp.emit("Add", [var, eps], node, ".var_eps")
    std = exp.emit("Sqrt", [var_eps], node, ".std")
    exp.finish(node, exp.emit("Div", [centred, std], node, ".div"))


def export_dropout(exp, node):
    ratio = 1.0 - node.attrs["keep_prob"]
    if exp.opset < 12:
        out = exp.emit("Dropout", exp.inputs(node), node, ratio=ratio)
    else:
        base = node.layer or f"n{node.out[1:]}"
        out = exp.emit("Dropout", exp.inputs(node) + [exp.constant(f"{base}.ratio", ratio)],
                       node)
    exp.finish(node, out)


def export_merge(op_type, many=None, **attrs):
    """Add and Concatenate: a layer of k tensors lowers to k - 1 binary nodes, which export
    as one ONNX node (``many``, Sum, when the binary op type takes two operands only)."""
    def export(exp, node):
        first = exp.merges.get(node.inputs[0])
        if first is not None and first[1] == node.layer:
            proto = first[0]
            proto.input.append(exp.names[node.inputs[1]])
            if many:
                proto.op_type = many
        else:
            exp.emit(op_type, exp.inputs(node), node, **attrs)
            proto = exp.nodes[-1]
        exp.merges[node.out] = (proto, node.layer)
        exp.finish(node, proto.output[0])
    return export


def export_log_softmax(exp, node):
    exp.finish(node, exp.emit("LogSoftmax", exp.inputs(node), node,
                              axis=-1 if exp.opset >= 13 else 1))


EXPORTERS = {
    "dense": export_dense,
    "add": export_merge("Add", many="Sum"),
    "concat": export_merge("Concat", axis=1),
    "log_softmax": export_log_softmax,
    "relu": export_activation,
    "sigmoid": export_activation,
    "tanh": export_activation,
    "leaky_relu": export_activation,
    "elu": export_activation,
    "silu": export_activation,
    "softmax": export_activation,
    "batchnorm": export_batchnorm,
    "normalize": export_normalize,
    "dropout": export_dropout,
}
