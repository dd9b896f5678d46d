"""Quantized models in ONNX: ``to_onnx`` writes a QuantizedModel in the QDQ form
(QuantizeLinear / DequantizeLinear around float MatMul and Add, the weights and biases
stored as int8 and int32 with their scales), which onnxruntime runs; other models go to
dlc.onnx as before.

The integers onnxruntime computes differ from dlc's only where roundings differ: its
QuantizeLinear divides by the scale where dlc multiplies by 1/scale, and it requantizes in
float where dlc uses a 31-bit fixed-point multiplier; each may move a value by one step.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from . import onnx as float_onnx
from .onnx import DEFAULT_OPSET, EXPORTERS, Exporter
from .quant import QuantizedModel

MIN_QDQ_OPSET = 13          # DequantizeLinear with a per-channel axis
ONNX_INT_TYPES = {"i8": "INT8", "i16": "INT16", "i32": "INT32"}
INT16_OPSET = 21            # QuantizeLinear to int16


def to_onnx(net, path=None, opset: int = DEFAULT_OPSET, folded: bool = False):
    """``dlc.onnx.to_onnx`` for a dlc model; a QuantizedModel as QDQ ONNX (``folded`` does
    not apply: a quantized model is folded already)."""
    if not isinstance(net, QuantizedModel):
        return float_onnx.to_onnx(net, path, opset=opset, folded=folded)
    onnx = float_onnx._onnx()
    needed = INT16_OPSET if net.options.get("activations") == "int16" else MIN_QDQ_OPSET
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not needed <= opset <= newest:
        raise ValueError(f"opset must be an integer from {needed} to {newest} for this "
                         f"quantized model, got {opset!r}")
    model = QuantizedExporter(net, opset).model()
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        onnx.save(model, str(path))
    return model


class QuantizedExporter(Exporter):
    """The ONNX exporter with rules for the integer ops and integer-typed values."""

    def __init__(self, qnet: QuantizedModel, opset: int):
        super().__init__(SimpleNamespace(layers=[]), qnet.graph, opset)
        self.qnet = qnet
        self.exporters = {**EXPORTERS, **QUANTIZED_EXPORTERS}

    def emit(self, op_type, inputs, node, suffix="", **attrs) -> str:
        """As Exporter.emit, with a number appended to a name already taken (a layer whose
        activation runs in float is two IR nodes of one layer)."""
        name, n = (node.layer or f"n{node.out[1:]}") + suffix, 1
        taken = {out for made in self.nodes for out in made.output}
        taken |= {init.name for init in self.initializers}
        while (name if n == 1 else f"{name}.{n}") in taken:
            n += 1
        unique = name if n == 1 else f"{name}.{n}"
        self.nodes.append(self.helper.make_node(op_type, inputs, [unique], name=unique, **attrs))
        return unique

    def tensor_info(self, name, type_):
        if not type_.is_integer:
            return super().tensor_info(name, type_)
        elem = getattr(float_onnx._onnx().TensorProto, ONNX_INT_TYPES[type_.dtype])
        return self.helper.make_tensor_value_info(name, elem,
                                                  ["batch"] + list(type_.shape[1:]))

    def typed_constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(float_onnx._onnx().numpy_helper.from_array(value, name))
        return name

    def scale_and_zero(self, base: str, scale, zero_point, dtype: str):
        """Initializers of a scale (the model's float type) and a zero point (``dtype``)."""
        return (self.constant(f"{base}.scale", scale),
                self.typed_constant(f"{base}.zero_point",
                                    np.asarray(zero_point, ONNX_NUMPY[dtype])))


ONNX_NUMPY = {"i8": np.int8, "i16": np.int16, "i32": np.int32}


def base_name(node) -> str:
    return node.layer or f"n{node.out[1:]}"


def export_quantize(exp, node):
    scale, zero = exp.scale_and_zero(f"{base_name(node)}.q", node.attrs["scale"],
                                     node.attrs["zero_point"], node.attrs["dtype"])
    exp.finish(node, exp.emit("QuantizeLinear", [*exp.inputs(node), scale, zero], node))


def export_dequantize(exp, node):
    x_type = exp.graph.types()[node.inputs[0]]
    scale, zero = exp.scale_and_zero(f"{base_name(node)}.dq", node.attrs["scale"],
                                     node.attrs["zero_point"], x_type.dtype)
    exp.finish(node, exp.emit("DequantizeLinear", [*exp.inputs(node), scale, zero], node))


def export_qdense(exp, node):
    """Dequantize x, W (per output channel) and b; MatMul, Add, a Relu for a raised clamp;
    QuantizeLinear to the output's scale."""
    x_ref, W_ref, b_ref = node.inputs[:3]
    base, x_type = base_name(node), exp.graph.types()[x_ref]
    x_scale, y_scale = exp.qnet.scale_of(x_ref).scale, exp.qnet.scale_of(node.out).scale
    w_scale = exp.qnet.weight_scales[W_ref]
    sx, zx = exp.scale_and_zero(f"{base}.x", x_scale, node.attrs["x_zero"], x_type.dtype)
    x = exp.emit("DequantizeLinear", [exp.names[x_ref], sx, zx], node, ".x")
    ws = exp.constant(f"{base}.W.scale", w_scale)
    wz = exp.typed_constant(f"{base}.W.zero_point", np.zeros(len(w_scale), np.int8))
    W = exp.emit("DequantizeLinear", [exp.names[W_ref], ws, wz], node, ".W", axis=1)
    bs = exp.constant(f"{base}.b.scale", x_scale * w_scale)
    bz = exp.typed_constant(f"{base}.b.zero_point", np.zeros(len(w_scale), np.int32))
    b = exp.emit("DequantizeLinear", [exp.names[b_ref], bs, bz], node, ".b", axis=0)
    z = exp.emit("Add", [exp.emit("MatMul", [x, W], node, ".matmul"), b], node, ".add")
    if node.attrs["lo"] > np.iinfo(ONNX_NUMPY[x_type.dtype]).min:
        z = exp.emit("Relu", [z], node, ".relu")
    sy, zy = exp.scale_and_zero(f"{base}.y", y_scale, node.attrs["y_zero"], x_type.dtype)
    exp.finish(node, exp.emit("QuantizeLinear", [z, sy, zy], node))


QUANTIZED_EXPORTERS = {"quantize": export_quantize, "dequantize": export_dequantize,
                       "qdense": export_qdense}
