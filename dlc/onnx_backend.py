"""An ONNX backend (``onnx.backend.base.Backend``) that runs models through dlc.

``prepare(model)`` keeps the model; ``run(inputs)`` imports it with every input but
the first bound to its value as a constant, so a node test's weights, biases and
scalar operands become dlc parameters while the first input is the batch.  An
N-D tensor is viewed as (batch, features): the batch is the input's leading axes
up to the axis a Softmax, LogSoftmax or Flatten node names (axis 1 otherwise),
the features are the rest, flattened row-major.  The engine is the reference
interpreter (``engine="reference"``, the default) or the compiled C library
(``engine="c"``).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from . import api
from .onnx import import_model, opset_of, transposed_input

ENGINES = ("reference", "c")
AXIS_OPS = ("Softmax", "LogSoftmax", "Flatten")


def batch_axes_of(model) -> int:
    """How many leading input axes form the batch rows (see the module docstring)."""
    if transposed_input(model) or varies_along_batch(model):
        return 0
    opset = opset_of(model)
    for node in model.graph.node:
        if node.op_type in AXIS_OPS:
            default = -1 if node.op_type != "Flatten" and opset >= 13 else 1
            axis = next((onnx.helper.get_attribute_value(a) for a in node.attribute
                         if a.name == "axis"), default)
            rank = len(input_shape(model))
            axis = axis + rank if axis < 0 else axis
            return max(axis, 1)
    return 1


def varies_along_batch(model) -> bool:
    """Whether an input after the first (bound as a constant) has the first input's rank
    and leading axis (> 1): then the whole first input is one example, and the constant
    is its partner element by element."""
    shapes = [tuple(d.dim_value for d in v.type.tensor_type.shape.dim) for v in model.graph.input]
    x = shapes[0]
    return bool(x) and x[0] > 1 and any(len(s) == len(x) and s[0] == x[0] for s in shapes[1:])


def input_shape(model) -> tuple:
    x = model.graph.input[0]
    return tuple(d.dim_value for d in x.type.tensor_type.shape.dim)


def bind_inputs(model, values) -> onnx.ModelProto:
    """A copy of ``model`` whose inputs after the first are initializers of ``values``."""
    bound = onnx.ModelProto()
    bound.CopyFrom(model)
    graph = bound.graph
    names = [v.name for v in graph.input]
    for name, value in zip(names[1:], values[1:]):
        graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(value), name))
    keep = [v for v in graph.input if v.name == names[0]]
    del graph.input[:]
    graph.input.extend(keep)
    return bound


class DlcRep(BackendRep):
    def __init__(self, model, engine: str):
        self.model, self.engine = model, engine

    def run(self, inputs, **kwargs):
        inputs = list(inputs.values()) if isinstance(inputs, dict) else list(inputs)
        x = np.asarray(inputs[0])
        imported = import_model(bind_inputs(self.model, inputs), batch_axes_of(self.model))
        k = imported.batch_axes
        rows = x.reshape((int(np.prod(x.shape[:k], dtype=np.int64)), -1))
        net = imported.net
        runner = api.compile(net) if self.engine == "c" else api.reference(net)
        ys = runner.predict(rows.astype(net.dtype, copy=False))
        ys = ys if isinstance(ys, tuple) else (ys,)
        return tuple(y.reshape((x.shape[:k] if axes == k else (rows.shape[0],)) + tuple(dims))
                     for y, dims, axes in zip(ys, imported.output_dims,
                                              imported.output_batch_axes))


class DlcBackend(Backend):
    @classmethod
    def prepare(cls, model, device: str = "CPU", engine: str = "reference", **kwargs):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        super().prepare(model, device, **kwargs)
        return DlcRep(model, engine)

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


prepare = DlcBackend.prepare
run_model = DlcBackend.run_model
supports_device = DlcBackend.supports_device
