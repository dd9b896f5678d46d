"""The op registry: every op is defined once, here.

An entry holds the op's input names, its attributes with their defaults, its
shape rule, its NumPy reference, its vector-Jacobian product (which emits IR
nodes, so backward graphs are ordinary graphs) and the C template that
renders it.  The verifier, the interpreter, autodiff and codegen all dispatch
through ``OPS``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from .ir import BATCH, TensorType

REQUIRED = object()


class ShapeError(ValueError):
    pass


@dataclass(frozen=True)
class OpDef:
    name: str
    inputs: tuple           # names of the operands, as the template sees them
    attrs: Mapping          # attribute -> default (REQUIRED when it has none)
    shape: Callable         # (list of TensorType, **attrs) -> TensorType
    numpy: Callable         # (*arrays, **attrs) -> ndarray
    template: str           # templates/ops/<template>.c.j2
    vjp: Callable = None    # (builder, node, dy) -> one gradient ref (or None) per input


OPS: dict[str, OpDef] = {}


def define(name, inputs, shape, numpy, template=None, attrs=None, vjp=None) -> OpDef:
    op = OpDef(name, tuple(inputs), dict(attrs or {}), shape, numpy, template or name, vjp)
    OPS[name] = op
    return op


def lookup(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise ValueError(f"unknown op {name!r}; known ops: {', '.join(sorted(OPS))}") from None


def check_attrs(op_name: str, attrs: Mapping, layer: str = "") -> dict:
    """The attributes with defaults filled in; unknown or missing ones are errors."""
    op = lookup(op_name)
    where = f"layer {layer!r}: " if layer else ""
    unknown = set(attrs) - set(op.attrs)
    if unknown:
        raise ValueError(f"{where}op {op_name} has no attribute(s) {sorted(unknown)}")
    full = {}
    for key, default in op.attrs.items():
        value = attrs.get(key, default)
        if value is REQUIRED:
            raise ValueError(f"{where}op {op_name} needs attribute {key!r}")
        full[key] = value
    return full


def infer_type(op_name: str, types, attrs: Mapping, layer: str = "") -> TensorType:
    op = lookup(op_name)
    where = f"layer {layer!r} ({op_name})" if layer else f"op {op_name}"
    if len(types) != len(op.inputs):
        raise ValueError(f"{where}: expects {len(op.inputs)} inputs {op.inputs}, got {len(types)}")
    if len({t.dtype for t in types}) > 1:
        raise TypeError(f"{where}: mixed dtypes {[str(t) for t in types]}")
    try:
        return op.shape(list(types), **attrs)
    except ShapeError as exc:
        raise ShapeError(f"{where}: {exc}") from None


# ---------------------------------------------------------------- shape rules

def expect(type_: TensorType, shape: tuple, what: str) -> None:
    if tuple(type_.shape) != tuple(shape):
        raise ShapeError(f"{what} should have shape {_fmt(shape)}, got {_fmt(type_.shape)}")


def _fmt(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def batch_matrix(type_: TensorType, what: str = "input") -> int:
    if len(type_.shape) != 2 or type_.shape[0] != BATCH:
        raise ShapeError(f"{what} should have shape (B, n), got {_fmt(type_.shape)}")
    return type_.shape[1]


def same_as_input(types, **_):
    batch_matrix(types[0])
    return types[0]


def per_feature(types, **_):
    """Input (B, n) followed by vectors of n values (scale, shift, statistics)."""
    n = batch_matrix(types[0])
    for i, t in enumerate(types[1:], 1):
        expect(t, (n,), f"operand {i}")
    return types[0]


def dense_shape(types, **_):
    x, w, b = types
    n_in = batch_matrix(x)
    if len(w.shape) != 2 or w.shape[0] != n_in:
        raise ShapeError(f"weights should have shape ({n_in}, units), got {_fmt(w.shape)}")
    expect(b, (w.shape[1],), "bias")
    return TensorType((BATCH, w.shape[1]), x.dtype)


# ---------------------------------------------------------------- NumPy references

def stable_sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


ACTIVATIONS = {
    "none": lambda z, alpha: z,
    "relu": lambda z, alpha: np.maximum(z, 0),
    "leaky_relu": lambda z, alpha: np.where(z > 0, z, z * z.dtype.type(alpha)),
    "sigmoid": lambda z, alpha: stable_sigmoid(z),
    "tanh": lambda z, alpha: np.tanh(z),
}


def activation_attr(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}")
    return name


def dense(x, W, b, activation="none", alpha=0.0):
    return ACTIVATIONS[activation_attr(activation)](x @ W + b, alpha)


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def batchnorm(x, gamma, beta, mean, var, eps):
    return (x - mean) / np.sqrt(var + x.dtype.type(eps)) * gamma + beta


def normalize(x, mean, var, eps):
    return (x - mean) / np.sqrt(var + x.dtype.type(eps))


# ---------------------------------------------------------------- the registry

define("dense", ("x", "W", "b"), dense_shape, dense,
       attrs={"activation": "none", "alpha": 0.0})
for _name in ("relu", "sigmoid", "tanh"):
    define(_name, ("x",), same_as_input,
           lambda x, _act=_name: ACTIVATIONS[_act](x, 0.0), template="activation")
define("leaky_relu", ("x",), same_as_input,
       lambda x, alpha: ACTIVATIONS["leaky_relu"](x, alpha),
       template="activation", attrs={"alpha": REQUIRED})
define("softmax", ("x",), same_as_input, softmax)
define("batchnorm", ("x", "gamma", "beta", "mean", "var"), per_feature, batchnorm,
       attrs={"eps": REQUIRED})
define("normalize", ("x", "mean", "var"), per_feature, normalize, attrs={"eps": REQUIRED})
define("dropout", ("x",), same_as_input, lambda x, keep_prob: x.copy(),
       attrs={"keep_prob": REQUIRED})
