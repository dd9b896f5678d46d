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
from .quant.convert import capture, float_graph, quantize_graph

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


# ================================================================ import

QDQ = ("QuantizeLinear", "DequantizeLinear")
PROBE_ROWS = 64


def from_onnx(model):
    """``dlc.onnx.from_onnx``; a QDQ-quantized model (onnxruntime's quantize_static with
    QuantFormat.QDQ) becomes a QuantizedModel with the file's own int8 weights, scales and
    zero points.  Its float part (the graph with each activation's QuantizeLinear /
    DequantizeLinear pair removed, weights dequantized) must be importable by
    dlc.onnx.from_onnx; uint8 activations become int8 with the zero point moved by 128
    (the same real values)."""
    model = float_onnx.load_model(model)
    if not any(node.op_type in QDQ for node in model.graph.node):
        return float_onnx.from_onnx(model)
    stripped, qparams = strip_activation_qdq(model)
    net = float_onnx.from_onnx(stripped)
    graph = float_graph(net)
    ranges = match_values(graph, stripped, qparams, net.n_inputs)
    per_channel = any(np.asarray(float_onnx._onnx().numpy_helper.to_array(init)).size > 1
                      for init in model.graph.initializer if init.name.endswith("W_scale"))
    options = dict(weights="int8", activations="int8", per_channel=per_channel,
                   calibration="onnx", output="float", calibration_rows=0)
    return quantize_graph(graph, ranges, options)


def strip_activation_qdq(model):
    """(model without the QuantizeLinear -> DequantizeLinear pairs on computed values,
    {tensor name: (scale, zero point as int8)}); constant DequantizeLinear nodes (the
    weights) stay, for the importer to evaluate."""
    onnx = float_onnx._onnx()
    consts = {init.name: onnx.numpy_helper.to_array(init) for init in model.graph.initializer}
    nodes = list(model.graph.node)
    readers = {}
    for node in nodes:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    renames, qparams, dropped = {}, {}, set()
    for node in nodes:
        if node.op_type != "QuantizeLinear" or node.input[0] in consts:
            continue
        pair = readers.get(node.output[0], [])
        if len(pair) != 1 or pair[0].op_type != "DequantizeLinear":
            raise ValueError(f"model: QuantizeLinear {node.name!r} is not followed by one "
                             f"DequantizeLinear (only the QDQ format imports)")
        scale = float(consts[node.input[1]])
        zero = consts[node.input[2]] if len(node.input) > 2 else np.zeros((), np.uint8)
        qparams[node.input[0]] = (scale, int(zero) - (128 if zero.dtype == np.uint8 else 0))
        renames[pair[0].output[0]] = node.input[0]
        dropped |= {id(node), id(pair[0])}
    kept = []
    for node in nodes:
        if id(node) in dropped:
            continue
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [renames.get(name, name) for name in node.input]
        kept.append(copy)
    graph = onnx.helper.make_graph(kept, model.graph.name, model.graph.input,
                                   [output_renamed(o, renames) for o in model.graph.output],
                                   model.graph.initializer)
    stripped = onnx.helper.make_model(graph, opset_imports=model.opset_import,
                                      ir_version=model.ir_version)
    return stripped, qparams


def output_renamed(value_info, renames):
    onnx = float_onnx._onnx()
    copy = onnx.ValueInfoProto()
    copy.CopyFrom(value_info)
    copy.name = renames.get(value_info.name, value_info.name)
    return copy


REFERENCE_OPSET = 19        # onnx.reference implements DequantizeLinear from opset 19


def evaluable(model):
    """``model`` with an opset onnx.reference can run (its ops here, Gemm, MatMul, the
    activations and DequantizeLinear of int8, mean the same from opset 13 to 19)."""
    onnx = float_onnx._onnx()
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for opset in copy.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = max(opset.version, REFERENCE_OPSET)
    return copy


def match_values(graph, stripped, qparams: dict, n_inputs: int) -> dict:
    """dlc value ref -> (scale, zero point) of the ONNX tensor computing the same values on
    probe rows (names do not survive the import; values do)."""
    from onnx.reference import ReferenceEvaluator
    X = np.random.default_rng(0).normal(size=(PROBE_ROWS, n_inputs)).astype(np.float32)
    x_name = next(v.name for v in stripped.graph.input
                  if v.name not in {i.name for i in stripped.graph.initializer})
    names = [name for name in qparams if name != x_name]
    outputs = ReferenceEvaluator(evaluable(stripped)).run(names, {x_name: X}) if names else []
    onnx_values = dict(zip(names, outputs), **{x_name: X})
    dlc_values = capture(graph, X)
    ranges = {}
    for name, value in onnx_values.items():
        value = np.asarray(value).reshape(PROBE_ROWS, -1)
        ref = next((r for r, v in dlc_values.items() if v.shape == value.shape
                    and np.allclose(v, value, rtol=1e-4, atol=1e-5)), None)
        if ref is not None and ref not in ranges:
            ranges[ref] = qparams[name]
    needed = {n.inputs[0] for n in graph.nodes if n.op == "dense"} | {
        n.out for n in graph.nodes if n.op == "dense"}
    missing = sorted(needed - set(ranges))
    if missing:
        raise ValueError(f"model: no QuantizeLinear gives the scale of the dlc values "
                         f"{missing} (the input and output of every quantized MatMul/Gemm)")
    return ranges
