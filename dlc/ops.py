"""The op registry: every op is defined once, here.

An entry holds the op's input names, its attributes with their defaults, its
shape rule, its NumPy reference, its vector-Jacobian product (which emits IR
nodes, so backward graphs are ordinary graphs), its C facts (``Kernel``) and
example inputs for the op tests.  The verifier, the interpreter, autodiff,
the passes and codegen all dispatch through ``OPS``.  The activations are one
table, ``ACTIVATIONS``, from which their ops and gradient ops are defined.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from .rng import dropout as draw
from .shapes import BATCH, FLOAT_DTYPES, INT_DTYPES, TensorType

REQUIRED = object()


class ShapeError(ValueError):
    pass


@dataclass(frozen=True)
class Kernel:
    """How the C backend computes an op."""
    template: str = None        # templates/ops/<template>.c.j2
    in_place: bool = False      # may write its result over its first operand (result k over
                                # operand k, for an op of several results)
    activation: str = None      # the C name of the activation it applies or differentiates
    fuses_into_dense: bool = False    # a dense layer can apply it in its epilogue
    packed: tuple = ()          # (operand, packing): parameters the kernel reads packed,
                                # by a packing of dlc/layout.py's PACKINGS


@dataclass(frozen=True)
class OpDef:
    name: str
    inputs: tuple           # names of the operands, as the template sees them
    attrs: Mapping          # attribute -> default (REQUIRED when it has none)
    shape: Callable         # (list of TensorType, **attrs) -> TensorType
    numpy: Callable         # (*arrays, **attrs) -> ndarray
    kernel: Kernel
    examples: Callable      # (rng, dtype, rows) -> (input arrays, attrs) for the op tests
    vjp: Callable = None    # (builder, node, dy) -> one gradient ref (or None) per input
    results: tuple = ("y",)     # names of the results; numpy returns a tuple when several
    integer: bool = False   # reads or writes integer tensors (quantized graphs): operands
                            # may differ in dtype, and its shape rule checks each one

    @property
    def template(self) -> str:
        return self.kernel.template


OPS: dict[str, OpDef] = {}


def define(name, inputs, shape, numpy, template=None, attrs=None, vjp=None, kernel=None,
           examples=None, results=("y",), integer=False) -> OpDef:
    """Registers an op; its kernel is ``kernel``, or just the template ``template`` (by
    default the op's name)."""
    op = OpDef(name, tuple(inputs), dict(attrs or {}), shape, numpy,
               kernel or Kernel(template or name), examples, vjp, tuple(results), integer)
    OPS[name] = op
    return op


# ---------------------------------------------------------------- example inputs
# What each operand of an op's examples looks like: B rows of N = 13 features (no multiple
# of a vector width), M = 7 outputs of a matrix product, vectors of N, scalars.
EXAMPLE_N, EXAMPLE_M = 13, 7
OPERANDS = {
    "x": lambda rng, rows: rng.normal(size=(rows, EXAMPLE_N)) * 3,
    "y": lambda rng, rows: rng.normal(size=(rows, EXAMPLE_M)),
    "t": lambda rng, rows: rng.dirichlet(np.ones(EXAMPLE_N), size=rows),   # rows sum to 1
    "W": lambda rng, rows: rng.normal(size=(EXAMPLE_N, EXAMPLE_M)),
    "b": lambda rng, rows: rng.normal(size=EXAMPLE_M),
    "v": lambda rng, rows: rng.normal(size=EXAMPLE_N),
    "var": lambda rng, rows: rng.uniform(0.1, 3.0, size=EXAMPLE_N),
    "s": lambda rng, rows: np.array(rng.uniform(0.5, 2.0)),               # a positive scalar
    "k": lambda rng, rows: np.array(float(rng.integers(1, 100))),         # a count or seed
}


def examples(*operands, **attrs):
    """An example generator: arrays of the kinds named in OPERANDS, and ``attrs``."""
    def generate(rng, dtype, rows):
        return [OPERANDS[kind](rng, rows).astype(dtype) for kind in operands], dict(attrs)
    return generate


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
    if not op.integer and len({t.dtype for t in types}) > 1:
        raise TypeError(f"{where}: mixed dtypes {[str(t) for t in types]}")
    if not op.integer and any(t.is_integer for t in types):
        raise TypeError(f"{where}: integer operands {[str(t) for t in types]}; the op "
                        f"computes in floating point (dequantize first)")
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


def pairwise_batch(types, **_):
    batch_matrix(types[0], "gradient")
    expect(types[1], types[0].shape, "saved value")
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


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(z):
    """z - log(sum(exp(z))) over each row, with the row max taken out first (stable)."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def elu(z, alpha):
    return np.where(z > 0, z, real(z, alpha) * np.expm1(np.minimum(z, 0)))


def silu(z):
    """z sigmoid(z), 0 where the sigmoid is (at -inf the limit, not -inf * 0)."""
    s = stable_sigmoid(z)
    with np.errstate(invalid="ignore"):
        return np.where(s == 0, real(z, 0), z * s)


def silu_grad(dy, x):
    s = stable_sigmoid(x)
    return dy * (s * (1 + x * (1 - s)))


def real(x, value):
    """``value`` rounded to the dtype of ``x`` (what the C code's dlc_real sees)."""
    return x.dtype.type(value)


@dataclass(frozen=True)
class Activation:
    """An activation: its C name (runtime/activations.h, whose enum lists them in this
    table's order), NumPy forward (z, alpha) and gradient (dy, v, alpha), where v is what
    the gradient reads: z ("x") or act(z) ("out")."""
    c_name: str
    forward: Callable
    grad: Callable = None
    reads: str = "x"
    grad_from_out: bool = True      # the gradient is right given act(z) for v: a dense
                                    # layer with it fused can be differentiated
    attrs: Mapping = None           # its attributes, e.g. {"alpha": REQUIRED}


# What a dense layer may apply to x W + b (softmax over each row, the others elementwise).
# On NaN and inf these are the semantics of the C kernels too (runtime/activations.h;
# runtime/softmax.h, dlc_softmax_undefined), under any compiler flags: a NaN stays NaN
# (relu and leaky_relu included), +-inf go to their limits (relu(-inf) = 0, sigmoid 1
# and 0, tanh +-1, elu -alpha, silu 0), and softmax of a row holding a NaN or +inf, or
# all -inf, is all NaN, -inf elsewhere giving 0.
ACTIVATIONS = {
    "none": Activation("DLC_ACT_NONE", lambda z, alpha: z),
    "relu": Activation("DLC_ACT_RELU", lambda z, alpha: np.maximum(z, 0),
                       lambda dy, x, alpha: np.where(x > 0, dy, 0).astype(dy.dtype)),
    "leaky_relu": Activation(
        "DLC_ACT_LEAKY_RELU", lambda z, alpha: np.where(z > 0, z, z * real(z, alpha)),
        lambda dy, x, alpha: np.where(x > 0, dy, dy * real(dy, alpha)),
        attrs={"alpha": REQUIRED}),
    "sigmoid": Activation("DLC_ACT_SIGMOID", lambda z, alpha: stable_sigmoid(z),
                          lambda dy, y, alpha: dy * (y * (1 - y)), reads="out"),
    "tanh": Activation("DLC_ACT_TANH", lambda z, alpha: np.tanh(z),
                       lambda dy, y, alpha: dy * (1 - y * y), reads="out"),
    "softmax": Activation("DLC_ACT_SOFTMAX", lambda z, alpha: softmax(z),
                          lambda dy, y, alpha: softmax_grad(dy, y), reads="out"),
    "elu": Activation("DLC_ACT_ELU", elu,
                      lambda dy, y, alpha: dy * np.where(y > 0, real(y, 1), y + real(y, alpha)),
                      reads="out", attrs={"alpha": REQUIRED}),
    "silu": Activation("DLC_ACT_SILU", lambda z, alpha: silu(z),
                       lambda dy, x, alpha: silu_grad(dy, x), grad_from_out=False),
}


def activation_attr(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}")
    return name


def dense(x, W, b, activation="none", alpha=0.0):
    return ACTIVATIONS[activation_attr(activation)].forward(x @ W + b, alpha)


def batchnorm(x, gamma, beta, mean, var, eps):
    return (x - mean) / np.sqrt(var + x.dtype.type(eps)) * gamma + beta


def normalize(x, mean, var, eps):
    return (x - mean) / np.sqrt(var + x.dtype.type(eps))


# ---------------------------------------------------------------- VJP rules
# A rule receives the builder, the forward node, the ref of the gradient of its
# result and which inputs need a gradient; it emits IR nodes and returns one
# gradient ref (or None) per input.

def grad_of_activation(b, act, alpha, dy, x, y, layer):
    """dL/dz of act(z) from dy, where x is z (or has its sign) and y = act(z)."""
    if act == "none":
        return dy
    attrs = {"alpha": alpha} if ACTIVATIONS[act].attrs else {}
    v = x if ACTIVATIONS[act].reads == "x" else y
    return b.add(f"{act}_grad", dy, v, layer=layer, **attrs)


def vjp_dense(b, node, dy, needed):
    x, W, bias = node.inputs
    act, alpha = node.attrs["activation"], node.attrs["alpha"]
    if act == "leaky_relu" and alpha <= 0:
        raise ValueError(f"layer {node.layer!r}: a dense layer with a fused leaky_relu needs "
                         f"alpha > 0 to be differentiated, got {alpha}")
    if not ACTIVATIONS[act].grad_from_out:
        raise ValueError(f"layer {node.layer!r}: a dense layer with a fused {act} cannot be "
                         f"differentiated (its gradient reads the input of the {act}); "
                         f"keep the {act} a layer of its own when training")
    dz = grad_of_activation(b, act, alpha, dy, node.out, node.out, node.layer)
    return (b.add("matmul_nt", dz, W, layer=node.layer) if needed[0] else None,
            b.add("matmul_tn", x, dz, layer=node.layer) if needed[1] else None,
            b.add("sum_rows", dz, layer=node.layer) if needed[2] else None)


def vjp_activation(b, node, dy, needed):
    return (grad_of_activation(b, node.op, node.attrs.get("alpha", 0.0), dy, node.inputs[0],
                               node.out, node.layer),)


def constant_operands(node, needed, first: int = 1) -> None:
    """Operands from ``first`` on are treated as constants by the node's rule."""
    if any(needed[first:]):
        names = OPS[node.op].inputs[first:]
        raise ValueError(f"layer {node.layer!r} ({node.op}): no gradient with respect to "
                         f"{names}; they must not be trainable")


def vjp_normalize(b, node, dy, needed):
    constant_operands(node, needed)
    x, mean, var = node.inputs
    return b.add("normalize_grad", dy, var, layer=node.layer, eps=node.attrs["eps"]), None, None


def vjp_batchnorm_train(b, node, dy, needed):
    """The full batch-norm backward: mean and var are the batch statistics of x, so
    dx includes their dependence on x and they receive no gradient of their own."""
    x, gamma, beta, mean, var = node.inputs
    eps = node.attrs["eps"]
    return (b.add("batchnorm_backward", dy, x, gamma, mean, var, layer=node.layer, eps=eps)
            if needed[0] else None,
            b.add("batchnorm_dgamma", dy, x, mean, var, layer=node.layer, eps=eps)
            if needed[1] else None,
            b.add("sum_rows", dy, layer=node.layer) if needed[2] else None,
            None, None)


def vjp_dropout_train(b, node, dy, needed):
    x, seed, step = node.inputs
    return b.add("dropout_train", dy, seed, step, layer=node.layer, **node.attrs), None, None


def vjp_add(b, node, dy, needed):
    return dy, dy


def vjp_concat(b, node, dy, needed):
    """The gradient of each operand is its block of dy's columns."""
    na = b.type(node.inputs[0]).shape[1]
    nb = b.type(node.inputs[1]).shape[1]
    return (b.add("take_columns", dy, layer=node.layer, start=0, width=na) if needed[0] else None,
            b.add("take_columns", dy, layer=node.layer, start=na, width=nb) if needed[1] else None)


def vjp_log_softmax(b, node, dy, needed):
    return (b.add("log_softmax_grad", dy, node.out, layer=node.layer),)


def vjp_of_loss(grad_op):
    """Losses are differentiated with respect to their prediction only."""
    def rule(b, node, dy, needed):
        constant_operands(node, needed)
        return (b.add(grad_op, *node.inputs, dy, layer=node.layer, **node.attrs),
                *[None] * (len(node.inputs) - 1))
    return rule


# ---------------------------------------------------------------- the registry

EXAMPLE_ALPHA = {"leaky_relu": 0.1, "elu": 0.7}     # attribute values the op tests use

define("dense", ("x", "W", "b"), dense_shape, dense,
       attrs={"activation": "none", "alpha": 0.0}, vjp=vjp_dense,
       examples=examples("x", "W", "b"))


def define_activation(name: str, act: Activation) -> None:
    """The op ``name`` (elementwise, or softmax over each row) and its gradient op
    ``name``_grad, both from the activation's entry in ACTIVATIONS."""
    attrs = dict(act.attrs or {})
    example_attrs = {key: EXAMPLE_ALPHA[name] for key in attrs}
    elementwise = name != "softmax"
    define(name, ("x",), same_as_input,
           lambda x, alpha=0.0: act.forward(x, alpha), attrs=attrs, vjp=vjp_activation,
           kernel=Kernel("activation" if elementwise else "softmax", in_place=True,
                         activation=act.c_name, fuses_into_dense=True),
           examples=examples("x", **example_attrs))
    define(f"{name}_grad", ("dy", act.reads), pairwise_batch,
           lambda dy, v, alpha=0.0: act.grad(dy, v, alpha), attrs=attrs,
           kernel=Kernel("activation_grad" if elementwise else "softmax_grad",
                         activation=act.c_name),
           examples=examples("x", "x", **example_attrs))


for _name, _act in ACTIVATIONS.items():
    if _name != "none":
        define_activation(_name, _act)
define("batchnorm", ("x", "gamma", "beta", "mean", "var"), per_feature, batchnorm,
       attrs={"eps": REQUIRED}, kernel=Kernel("batchnorm", in_place=True),
       examples=examples("x", "v", "v", "v", "var", eps=1e-5))
define("normalize", ("x", "mean", "var"), per_feature, normalize, attrs={"eps": REQUIRED},
       vjp=vjp_normalize, kernel=Kernel("normalize", in_place=True),
       examples=examples("x", "v", "var", eps=1e-8))
define("dropout", ("x",), same_as_input, lambda x, keep_prob: x.copy(),
       attrs={"keep_prob": REQUIRED}, examples=examples("x", keep_prob=0.5))
# Log-softmax over each row: a layer of its own (no dense epilogue applies it).
define("log_softmax", ("x",), same_as_input, log_softmax, vjp=vjp_log_softmax,
       kernel=Kernel("log_softmax", in_place=True), examples=examples("x"))
define("log_softmax_grad", ("dy", "out"), pairwise_batch,
       lambda dy, y: dy - np.exp(y) * dy.sum(axis=1, keepdims=True),
       examples=examples("x", "x"))


# ---------------------------------------------------------------- training ops
# Backward kernels, losses, penalties and optimizer updates.  Scalars (the cost,
# the learning rate, the step t, the dropout seed, the batch size m) have shape ().

SCALAR = ()


def scalar(type_: TensorType, what: str) -> None:
    expect(type_, SCALAR, what)


def scalar_of(types) -> TensorType:
    return TensorType(SCALAR, types[0].dtype)


def same_shapes(*names):
    """Every operand has the first one's shape; operands named None are scalars."""
    def rule(types, **_):
        for name, t in zip(names[1:], types[1:]):
            if name is None:
                continue
            expect(t, types[0].shape, name)
        for name, t in zip(names, types):
            if name is None:
                scalar(t, "scalar operand")
        return types[0]
    return rule


def matmul_nt_shape(types, **_):
    dy, W = types
    n_out = batch_matrix(dy, "gradient")
    if len(W.shape) != 2 or W.shape[1] != n_out:
        raise ShapeError(f"weights should have shape (n_in, {n_out}), got {_fmt(W.shape)}")
    return TensorType((BATCH, W.shape[0]), dy.dtype)


def matmul_tn_shape(types, **_):
    x, dy = types
    return TensorType((batch_matrix(x), batch_matrix(dy, "gradient")), x.dtype)


def concat_shape(types, **_):
    a, b = types
    return TensorType((BATCH, batch_matrix(a, "operand a") + batch_matrix(b, "operand b")),
                      a.dtype)


def take_columns_shape(types, start, width):
    n = batch_matrix(types[0])
    if not (isinstance(start, int) and isinstance(width, int) and start >= 0 and width >= 1
            and start + width <= n):
        raise ShapeError(f"columns [{start}, {start} + {width}) are not within the {n} "
                         f"features of the input")
    return TensorType((BATCH, width), types[0].dtype)


def column_vector(types, **_):
    """(B, n) -> (n,), checking any further operands are (n,) vectors."""
    n = batch_matrix(types[0])
    for i, t in enumerate(types[1:], 1):
        if t.batched:
            expect(t, types[0].shape, f"operand {i}")
        else:
            expect(t, (n,), f"operand {i}")
    return TensorType((n,), types[0].dtype)


def batchnorm_backward_shape(types, **_):
    dy, x, *stats = types
    expect(x, dy.shape, "x")
    return per_feature([dy, *stats])


def dropout_shape(types, **_):
    x, seed, step = types
    scalar(seed, "seed")
    scalar(step, "step")
    return same_as_input([x])


def loss_shape(types, **_):
    pred, target = types[:2]
    batch_matrix(pred, "prediction")
    expect(target, pred.shape, "targets")
    return scalar_of(types)


def loss_grad_shape(types, **_):
    loss_shape(types[:2])
    scalar(types[2], "cost gradient")
    return types[0]


def penalty_shape(types, **_):
    scalar(types[1], "batch size")
    return scalar_of(types)


def penalty_grad_shape(types, **_):
    scalar(types[1], "batch size")
    scalar(types[2], "cost gradient")
    return types[0]


def as_scalar(array) -> float:
    return float(np.asarray(array).reshape(()))


def sum_rows(x):
    return x.sum(axis=0)


def batch_var(x, mean):
    return ((x - mean) ** 2).mean(axis=0).astype(x.dtype)


def batchnorm_backward(dy, x, gamma, mean, var, eps):
    m = real(x, x.shape[0])
    inv = 1 / np.sqrt(var + real(x, eps))
    xhat = (x - mean) * inv
    dxhat = dy * gamma
    return inv / m * (m * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))


def batchnorm_dgamma(dy, x, mean, var, eps):
    return (dy * ((x - mean) / np.sqrt(var + real(x, eps)))).sum(axis=0)


def softmax_grad(dy, y):
    return y * (dy - (dy * y).sum(axis=1, keepdims=True))


def log_sum_exp(z):
    top = z.max(axis=1, keepdims=True)
    return np.log(np.exp(z - top).sum(axis=1, keepdims=True)) + top


def softmax_cross_entropy(z, t):
    return np.array((t * (log_sum_exp(z) - z)).sum() / real(z, z.shape[0]), z.dtype)


def softmax_cross_entropy_grad(z, t, dc):
    return (softmax(z) - t) * (real(z, as_scalar(dc)) / real(z, z.shape[0]))


def sigmoid_cross_entropy(z, t):
    losses = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    return np.array(losses.sum() / real(z, z.size), z.dtype)


def sigmoid_cross_entropy_grad(z, t, dc):
    return (stable_sigmoid(z) - t) * (real(z, as_scalar(dc)) / real(z, z.size))


def mse(a, t):
    return np.array(((a - t) ** 2).sum() / real(a, a.size), a.dtype)


def mse_grad(a, t, dc):
    return (a - t) * (2 * real(a, as_scalar(dc)) / real(a, a.size))


def l2_penalty(W, m, lam):
    return np.array(real(W, lam) / (2 * real(W, as_scalar(m))) * (W * W).sum(), W.dtype)


def l2_penalty_grad(W, m, dc, lam):
    return W * (real(W, as_scalar(dc)) * real(W, lam) / real(W, as_scalar(m)))


def l1_penalty(W, m, lam):
    return np.array(real(W, lam) / real(W, as_scalar(m)) * np.abs(W).sum(), W.dtype)


def l1_penalty_grad(W, m, dc, lam):
    return np.sign(W) * (real(W, as_scalar(dc)) * real(W, lam) / real(W, as_scalar(m)))


def ewma(v, g, beta):
    return real(v, beta) * v + (1 - real(v, beta)) * g


def ewma_sq(v, g, beta):
    return real(v, beta) * v + (1 - real(v, beta)) * (g * g)


def sgd_step(W, g, lr):
    return W - real(W, as_scalar(lr)) * g


def rmsprop_step(W, g, s, lr, eps):
    return W - real(W, as_scalar(lr)) * g / (np.sqrt(s) + real(W, eps))


def bias_correction(beta: float, t) -> float:
    """1 - beta^t, computed in double precision as the C kernel does."""
    return 1.0 - beta ** as_scalar(t)


def adam_step(W, m, s, lr, t, beta1, beta2, eps):
    mhat = m / real(W, bias_correction(beta1, t))
    shat = s / real(W, bias_correction(beta2, t))
    return W - real(W, as_scalar(lr)) * mhat / (np.sqrt(shat) + real(W, eps))


def dropout_train(x, seed, step, keep_prob, stream):
    return draw(x, as_scalar(seed), as_scalar(step), keep_prob, stream)


define("matmul_nt", ("dy", "W"), matmul_nt_shape, lambda dy, W: dy @ W.T,
       examples=examples("y", "W"))
define("matmul_tn", ("x", "dy"), matmul_tn_shape, lambda x, dy: x.T @ dy,
       examples=examples("x", "y"))
define("sum_rows", ("x",), column_vector, sum_rows, examples=examples("x"))
define("normalize_grad", ("dy", "var"), per_feature,
       lambda dy, var, eps: dy / np.sqrt(var + real(dy, eps)), attrs={"eps": REQUIRED},
       examples=examples("x", "var", eps=1e-8))
define("batch_mean", ("x",), column_vector, lambda x: x.mean(axis=0).astype(x.dtype),
       examples=examples("x"))
define("batch_var", ("x", "mean"), column_vector, batch_var, examples=examples("x", "v"))
define("batchnorm_train", ("x", "gamma", "beta", "mean", "var"), per_feature, batchnorm,
       attrs={"eps": REQUIRED}, vjp=vjp_batchnorm_train,
       kernel=Kernel("batchnorm", in_place=True),
       examples=examples("x", "v", "v", "v", "var", eps=1e-5))
define("batchnorm_backward", ("dy", "x", "gamma", "mean", "var"), batchnorm_backward_shape,
       batchnorm_backward, attrs={"eps": REQUIRED},
       examples=examples("x", "x", "v", "v", "var", eps=1e-5))
define("batchnorm_dgamma", ("dy", "x", "mean", "var"), column_vector, batchnorm_dgamma,
       attrs={"eps": REQUIRED}, examples=examples("x", "x", "v", "var", eps=1e-5))
define("dropout_train", ("x", "seed", "step"), dropout_shape, dropout_train,
       attrs={"keep_prob": REQUIRED, "stream": REQUIRED}, vjp=vjp_dropout_train,
       examples=examples("x", "k", "k", keep_prob=0.75, stream=5))
define("add", ("a", "b"), same_shapes("a", "b"), lambda a, b: a + b, vjp=vjp_add,
       examples=examples("x", "x"))
# Graphs beyond a chain: two tensors side by side along the features, and a block of
# columns (the gradient of an operand of concat).
define("concat", ("a", "b"), concat_shape, lambda a, b: np.concatenate([a, b], axis=1),
       vjp=vjp_concat, examples=examples("x", "y"))
define("take_columns", ("x",), take_columns_shape,
       lambda x, start, width: x[:, start:start + width].copy(),
       attrs={"start": REQUIRED, "width": REQUIRED},
       examples=examples("x", start=3, width=6))
define("ones_like", ("x",), lambda types: types[0], lambda x: np.ones_like(x),
       examples=examples("x"))
for _loss, _cost, _grad in (
        ("softmax_cross_entropy", softmax_cross_entropy, softmax_cross_entropy_grad),
        ("sigmoid_cross_entropy", sigmoid_cross_entropy, sigmoid_cross_entropy_grad),
        ("mse", mse, mse_grad)):
    define(f"{_loss}_grad", ("p", "t", "dc"), loss_grad_shape, _grad, template="loss_grad",
           examples=examples("x", "t", "s"))
    define(_loss, ("p", "t"), loss_shape, _cost, template="loss",
           vjp=vjp_of_loss(f"{_loss}_grad"), examples=examples("x", "t"))
for _penalty, _cost, _grad in (("l2_penalty", l2_penalty, l2_penalty_grad),
                               ("l1_penalty", l1_penalty, l1_penalty_grad)):
    define(f"{_penalty}_grad", ("W", "m", "dc"), penalty_grad_shape, _grad,
           template="penalty_grad", attrs={"lam": REQUIRED},
           examples=examples("W", "k", "s", lam=1e-3))
    define(_penalty, ("W", "m"), penalty_shape, _cost, template="penalty",
           attrs={"lam": REQUIRED}, vjp=vjp_of_loss(f"{_penalty}_grad"),
           examples=examples("W", "k", lam=1e-3))

# Optimizer updates and running averages: element-wise over a parameter, so computed
# straight into it (in place).  Each has a kernel of its own (runtime/optimizers.h); the
# pass fuse_updates replaces an optimizer's passes over one parameter by one fused update
# below, which runs them in one loop over the same per-element rules.
define("ewma", ("v", "g"), same_shapes("v", "g"), ewma, attrs={"beta": REQUIRED},
       kernel=Kernel("ewma", in_place=True), examples=examples("v", "v", beta=0.9))
define("ewma_sq", ("v", "g"), same_shapes("v", "g"), ewma_sq, attrs={"beta": REQUIRED},
       kernel=Kernel("ewma", in_place=True), examples=examples("var", "v", beta=0.99))
define("sgd_step", ("W", "g", "lr"), same_shapes("W", "g", None), sgd_step,
       kernel=Kernel("sgd_step", in_place=True), examples=examples("v", "v", "s"))
define("rmsprop_step", ("W", "g", "s", "lr"), same_shapes("W", "g", "s", None), rmsprop_step,
       attrs={"eps": REQUIRED}, kernel=Kernel("rmsprop_step", in_place=True),
       examples=examples("v", "v", "var", "s", eps=1e-8))
define("adam_step", ("W", "m", "s", "lr", "t"), same_shapes("W", "m", "s", None, None),
       adam_step, attrs={"beta1": REQUIRED, "beta2": REQUIRED, "eps": REQUIRED},
       kernel=Kernel("adam_step", in_place=True),
       examples=examples("v", "v", "var", "s", "k", beta1=0.9, beta2=0.999, eps=1e-8))


# The fused updates: an optimizer's moments and step of one parameter in one pass, each
# result computed over the operand in its position (the parameter, then its moments).
# Their NumPy is the unfused ops' in sequence, so fusing changes no number.

def momentum_update(W, v, g, lr, beta):
    v = ewma(v, g, beta)
    return sgd_step(W, v, lr), v


def rmsprop_update(W, s, g, lr, beta, eps):
    s = ewma_sq(s, g, beta)
    return rmsprop_step(W, g, s, lr, eps), s


def adam_update(W, m, s, g, lr, t, beta1, beta2, eps):
    m, s = ewma(m, g, beta1), ewma_sq(s, g, beta2)
    return adam_step(W, m, s, lr, t, beta1, beta2, eps), m, s


define("momentum_update", ("W", "v", "g", "lr"), same_shapes("W", "v", "g", None),
       momentum_update, attrs={"beta": REQUIRED}, results=("W", "v"),
       kernel=Kernel("momentum_update", in_place=True),
       examples=examples("v", "v", "v", "s", beta=0.9))
define("rmsprop_update", ("W", "s", "g", "lr"), same_shapes("W", "s", "g", None),
       rmsprop_update, attrs={"beta": REQUIRED, "eps": REQUIRED}, results=("W", "s"),
       kernel=Kernel("rmsprop_update", in_place=True),
       examples=examples("v", "var", "v", "s", beta=0.99, eps=1e-8))
define("adam_update", ("W", "m", "s", "g", "lr", "t"),
       same_shapes("W", "m", "s", "g", None, None), adam_update,
       attrs={"beta1": REQUIRED, "beta2": REQUIRED, "eps": REQUIRED}, results=("W", "m", "s"),
       kernel=Kernel("adam_update", in_place=True),
       examples=examples("v", "v", "var", "v", "s", "k", beta1=0.9, beta2=0.999, eps=1e-8))


# ---------------------------------------------------------------- quantized ops
# Integer arithmetic, computed exactly: the C kernels (runtime/quant.h) give the same bits.
# An activation tensor q stands for the real values scale * (q - zero_point) (asymmetric,
# one scale per tensor); weights are symmetric int8 (zero point 0), one scale per output
# channel (or one for all).
INT_RANGES = {"i8": (-128, 127), "i16": (-32768, 32767)}
INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1
QDENSE_MAX_K = 32768    # int8 rows this long keep the int32 accumulator from overflowing


def int_range(dtype: str) -> tuple:
    if dtype not in INT_RANGES:
        raise ShapeError(f"quantized dtype should be one of {sorted(INT_RANGES)}, got {dtype!r}")
    return INT_RANGES[dtype]


def check_zero_point(zero_point, dtype: str, what: str = "zero_point") -> None:
    lo, hi = int_range(dtype)
    if not isinstance(zero_point, int) or not lo <= zero_point <= hi:
        raise ShapeError(f"{what} should be an int in [{lo}, {hi}], got {zero_point!r}")


def check_scale(scale) -> None:
    if not isinstance(scale, float) or not 0 < scale < float("inf"):
        raise ShapeError(f"scale should be a positive finite float, got {scale!r}")


def expect_dtype(type_: TensorType, dtypes, what: str) -> None:
    if type_.dtype not in dtypes:
        raise ShapeError(f"{what} should be {' or '.join(dtypes)}, got {type_}")


def quantize_shape(types, scale, zero_point, dtype):
    x, = types
    batch_matrix(x)
    expect_dtype(x, ("f32", "f64"), "input")
    check_scale(scale)
    check_zero_point(zero_point, dtype)
    return TensorType(x.shape, dtype)


def dequantize_shape(types, scale, zero_point, dtype):
    q, = types
    batch_matrix(q)
    expect_dtype(q, tuple(INT_RANGES), "input")
    check_scale(scale)
    check_zero_point(zero_point, q.dtype)
    if dtype not in ("f32", "f64"):
        raise ShapeError(f"dequantize dtype should be 'f32' or 'f64', got {dtype!r}")
    return TensorType(q.shape, dtype)


def qdense_shape(types, x_zero, y_zero, lo, hi):
    x, W, b, multiplier, shift = types
    expect_dtype(x, tuple(INT_RANGES), "input")
    n_in = batch_matrix(x)
    if len(W.shape) != 2 or W.shape[0] != n_in:
        raise ShapeError(f"weights should have shape ({n_in}, units), got {_fmt(W.shape)}")
    if x.dtype == "i8" and n_in > QDENSE_MAX_K:
        raise ShapeError(f"an int8 dense layer takes at most {QDENSE_MAX_K} inputs (its int32 "
                         f"accumulator could overflow), got {n_in}")
    expect_dtype(W, ("i8",), "weights")
    for t, what in ((b, "bias"), (multiplier, "multiplier"), (shift, "shift")):
        expect(t, (W.shape[1],), what)
        expect_dtype(t, ("i32",), what)
    check_zero_point(x_zero, x.dtype, "x_zero")
    check_zero_point(y_zero, x.dtype, "y_zero")
    check_zero_point(lo, x.dtype, "lo")
    check_zero_point(hi, x.dtype, "hi")
    if lo > hi:
        raise ShapeError(f"clamp lo {lo} should not exceed hi {hi}")
    return TensorType((BATCH, W.shape[1]), x.dtype)


def quantize(x, scale, zero_point, dtype):
    """clamp(rint(x * (1/scale)) + zero_point) with rint rounding half to even (as ONNX's
    QuantizeLinear); 1/scale is rounded to x's dtype once, and the clamp is applied to the
    rounded float before the zero point is added, so no integer overflows."""
    lo, hi = INT_RANGES[dtype]
    t = np.rint(x * real(x, 1.0 / scale))
    t = np.fmin(np.fmax(t, real(x, lo - zero_point)), real(x, hi - zero_point))
    return (t.astype(np.int32) + np.int32(zero_point)).astype(INT_DTYPES[dtype])


def dequantize(q, scale, zero_point, dtype):
    """scale * (q - zero_point), the difference exact, the product rounded once."""
    float_type = FLOAT_DTYPES[dtype]
    return (q.astype(np.int32) - np.int32(zero_point)).astype(float_type) * float_type.type(scale)


def requantize(acc, multiplier, shift):
    """round(acc * multiplier / 2^(31 + shift)), rounding half up (toward +inf), in one
    step: acc, saturated to int32, times the int32 multiplier is exact in int64, and the
    right shift of the sum with 2^(30 + shift) floors it (an arithmetic shift)."""
    acc = np.clip(acc, INT32_MIN, INT32_MAX).astype(np.int64)
    s = 31 + shift.astype(np.int64)
    return (acc * multiplier.astype(np.int64) + (np.int64(1) << (s - 1))) >> s


def qdense(x, W, b, multiplier, shift, x_zero, y_zero, lo, hi):
    """clamp(requantize(sum_k (x - x_zero) W + b) + y_zero, lo, hi): an integer matrix
    product accumulated exactly (int32 in C for int8 inputs, whose bound the shape rule
    keeps; int64 for int16), requantized per output channel; lo/hi are the clamps of a
    fused ReLU (or the dtype's range)."""
    acc = (x.astype(np.int64) - x_zero) @ W.astype(np.int64) + b
    y = requantize(acc, multiplier, shift) + y_zero
    return np.clip(y, lo, hi).astype(x.dtype)


def quantized_examples(kind):
    """Example inputs of the quantized ops: x of EXAMPLE_N features (floats for quantize,
    integers otherwise), a dense layer's int8 weights, int32 bias and requantization."""
    def generate(rng, dtype, rows):
        code = "f64" if np.dtype(dtype) == np.float64 else "f32"
        if kind == "quantize":
            return ([(rng.normal(size=(rows, EXAMPLE_N)) * 3).astype(dtype)],
                    dict(scale=0.05, zero_point=-3, dtype="i8"))
        x = rng.integers(-128, 128, size=(rows, EXAMPLE_N)).astype(np.int8)
        if kind == "dequantize":
            return [x], dict(scale=0.05, zero_point=5, dtype=code)
        W = rng.integers(-127, 128, size=(EXAMPLE_N, EXAMPLE_M)).astype(np.int8)
        b = rng.integers(-5000, 5000, size=EXAMPLE_M).astype(np.int32)
        multiplier = rng.integers(2 ** 30, 2 ** 31, size=EXAMPLE_M).astype(np.int32)
        shift = rng.integers(6, 10, size=EXAMPLE_M).astype(np.int32)
        return [x, W, b, multiplier, shift], dict(x_zero=3, y_zero=-5, lo=-128, hi=127)
    return generate


define("quantize", ("x",), quantize_shape, quantize, integer=True,
       attrs={"scale": REQUIRED, "zero_point": REQUIRED, "dtype": REQUIRED},
       examples=quantized_examples("quantize"))
define("dequantize", ("x",), dequantize_shape, dequantize, integer=True,
       attrs={"scale": REQUIRED, "zero_point": REQUIRED, "dtype": REQUIRED},
       examples=quantized_examples("dequantize"))
define("qdense", ("x", "W", "b", "multiplier", "shift"), qdense_shape, qdense, integer=True,
       attrs={"x_zero": REQUIRED, "y_zero": REQUIRED, "lo": REQUIRED, "hi": REQUIRED},
       kernel=Kernel("qdense", packed=(("W", "int8_pairs"),)),
       examples=quantized_examples("qdense"))
