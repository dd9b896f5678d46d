"""``quantize``: a float model, after the inference passes, to a quantized graph.

Every dense layer becomes ``qdense``: int8 weights, symmetric, one scale per output
channel (or one for the layer); activations asymmetric, one scale and zero point per
tensor, from the calibration rows; an int32 bias at the scale s_x s_w; a ReLU fused as the
clamp of the output.  Other activations (sigmoid, tanh, softmax, leaky ReLU, ELU, SiLU)
and any layer the passes left (batch norm, normalization that did not fold) are computed
in floating point between a dequantize and, where a dense layer follows, a quantize.
"""
from __future__ import annotations

import numpy as np

from .. import interpreter
from ..checks import as_batch
from ..dsl import Model
from ..ir import Graph, GraphBuilder, Node
from ..lower import lower
from ..ops import ACTIVATIONS, INT32_MAX, INT_RANGES
from ..passes import INFERENCE_PIPELINE, run_pipeline
from ..passes.fold_normalize import fold_normalize
from ..verify import verify
from .calibrate import CALIBRATIONS, calibrated_range
from .model import QuantizedModel, Readback
from .scales import (activation_params, output_mse_scales, quantize_multiplier,
                     quantize_weights, weight_scales)

ACTIVATION_DTYPES = {"int8": "i8", "int16": "i16"}
OUTPUTS = ("float", "int8")
CLAMPS = ("none", "relu")       # fused activations a quantized dense applies as clamps


def quantize(net, calibration_X, weights: str = "int8", activations: str = "int8",
             per_channel: bool = True, calibration: str = "minmax",
             output: str = "float") -> QuantizedModel:
    """The post-training quantization of ``net``, calibrated on the rows
    ``calibration_X``: int8 weights (per output channel with ``per_channel``), int8 or
    int16 activations (``activations``) with ranges by ``calibration`` ("minmax",
    "percentile" or "mse", which also clips each layer's weights where that lowers the
    error of its output on the calibration rows), a float or int8 output (``output``)."""
    check_options(net, weights, activations, per_channel, calibration, output)
    X = as_batch(calibration_X, net.n_inputs, net.dtype, what="calibration_X")
    graph = float_graph(net)
    values = capture(graph, X)
    dtype = ACTIVATION_DTYPES[activations]
    ranges = {ref: activation_params(*calibrated_range(v, calibration, dtype), dtype)
              for ref, v in values.items()}
    options = dict(weights=weights, activations=activations, per_channel=per_channel,
                   calibration=calibration, output=output, calibration_rows=len(X))
    return quantize_graph(graph, ranges, options, values if calibration == "mse" else None)


def quantize_graph(graph: Graph, ranges: dict, options: dict,
                   clip_inputs: dict = None) -> QuantizedModel:
    """The QuantizedModel of the float graph ``graph`` (as float_graph makes it) with the
    activation ranges ``ranges`` (ref -> (scale, zero point)) and ``options`` (those of
    quantize); ``clip_inputs`` (ref -> calibration values) clips weights by MSE."""
    converter = Converter(graph, ranges, ACTIVATION_DTYPES[options["activations"]],
                          options["per_channel"], clip_inputs)
    qgraph, readback = converter.run(options["output"])
    return QuantizedModel(verify(qgraph), graph, readback, options, converter.weight_scales)


# The inference passes but one: a normalization stays a float op of its own, so that the
# input is quantized after it.  Folded into the first layer's weights, it would leave the
# raw features, whose ranges may differ by orders of magnitude, one scale between them.
QUANTIZE_PIPELINE = tuple(p for p in INFERENCE_PIPELINE if p is not fold_normalize)


def float_graph(net) -> Graph:
    """The float graph a quantization starts from: ``net`` after QUANTIZE_PIPELINE, with
    activations other than ReLU as nodes of their own."""
    return split_epilogues(run_pipeline(lower(net), QUANTIZE_PIPELINE))


def check_options(net, weights, activations, per_channel, calibration, output) -> None:
    if not isinstance(net, Model):
        raise TypeError(f"quantize expects a dlc.Model or dlc.Sequential as net, got "
                        f"{type(net).__name__}")
    if weights != "int8":
        raise ValueError(f"weights must be 'int8', got {weights!r}")
    if activations not in ACTIVATION_DTYPES:
        raise ValueError(f"activations must be one of {sorted(ACTIVATION_DTYPES)}, got "
                         f"{activations!r}")
    if not isinstance(per_channel, bool):
        raise TypeError(f"per_channel must be True or False, got {per_channel!r}")
    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")


def split_epilogues(graph: Graph) -> Graph:
    """Each dense layer whose fused activation is not a clamp gets the activation back as
    a node of its own, which keeps the dense layer's result ref (so its readers need no
    renaming); fused equals unfused, so the values are the same."""
    counter = max((int(n.out[1:]) for n in graph.nodes if n.out[1:].isdigit()), default=0)
    nodes = []
    for node in graph.nodes:
        act = node.attrs.get("activation") if node.op == "dense" else None
        if act is None or act in CLAMPS:
            nodes.append(node)
            continue
        counter += 1
        attrs = {"alpha": node.attrs["alpha"]} if ACTIVATIONS[act].attrs else {}
        nodes += [Node(f"%{counter}", "dense", node.inputs,
                       {**node.attrs, "activation": "none", "alpha": 0.0}, node.type, node.layer),
                  Node(node.out, act, (f"%{counter}",), attrs, node.type, node.layer)]
    return verify(graph.replace(nodes=nodes))


def capture(graph: Graph, X: np.ndarray) -> dict:
    """Every value of ``graph`` (its input and each node's result) on the rows X."""
    refs = (*graph.inputs, *(n.out for n in graph.nodes))
    outs, _ = interpreter.run(graph.replace(outputs=refs), {next(iter(graph.inputs)): X})
    return dict(zip(refs, outs))


class Converter:
    """Builds the quantized graph node by node, keeping each float value's float and
    quantized forms (made on first need)."""

    def __init__(self, graph: Graph, ranges: dict, dtype: str, per_channel: bool,
                 clip_inputs: dict = None):
        self.graph, self.ranges, self.dtype, self.per_channel = graph, ranges, dtype, per_channel
        self.clip_inputs = clip_inputs      # ref -> calibration values: clip weights by MSE
        self.b = GraphBuilder()
        (x_ref, x_type), = graph.inputs.items()
        self.floats = {x_ref: self.b.input(x_ref[1:], x_type, graph.labels.get(x_ref))}
        self.quants = {}        # float ref -> Readback of its integer form
        self.weight_scales = {}     # int8 weight ref -> its scales (the ONNX export needs them)

    def run(self, output: str):
        for node in self.graph.nodes:
            if node.op == "dense" and node.attrs["activation"] in CLAMPS:
                self.qdense(node)
            else:
                self.float_node(node)
        out, = self.graph.outputs
        result = self.as_float(out) if output == "float" else self.as_quant(out, "output").ref
        readback = {ref: (self.quants.get(ref) or Readback(self.floats[ref]))
                    for ref in (*self.graph.inputs, *(n.out for n in self.graph.nodes))
                    if ref in self.quants or ref in self.floats}
        return self.b.build([result]), readback

    def as_quant(self, ref: str, layer: str) -> Readback:
        if ref not in self.quants:
            scale, zero = self.ranges[ref]
            q = self.b.add("quantize", self.floats[ref], layer=f"{layer}.quantize",
                           scale=scale, zero_point=zero, dtype=self.dtype)
            self.quants[ref] = Readback(q, scale, zero)
        return self.quants[ref]

    def as_float(self, ref: str) -> str:
        if ref not in self.floats:
            q = self.quants[ref]
            self.floats[ref] = self.b.add("dequantize", q.ref, layer=f"{layer_of(self.graph, ref)}"
                                          ".dequantize", scale=q.scale, zero_point=q.zero_point,
                                          dtype=self.graph.dtype)
        return self.floats[ref]

    def float_node(self, node: Node) -> None:
        inputs = [self.param(ref, self.graph.params[ref].value) if ref in self.graph.params
                  else self.as_float(ref) for ref in node.inputs]
        self.floats[node.out] = self.b.add(node.op, *inputs, layer=node.layer, **node.attrs)

    def param(self, ref: str, value: np.ndarray) -> str:
        name, n = ref[1:], 1
        while "@" + name in self.b.params:
            n += 1
            name = f"{ref[1:]}.{n}"
        return self.b.param(name, value, trainable=False, layer=self.graph.params.get(
            ref).layer if ref in self.graph.params else "")

    def qdense(self, node: Node) -> None:
        x_ref, W_ref, b_ref = node.inputs
        x = self.as_quant(x_ref, node.layer)
        y_scale, y_zero = self.ranges[node.out]
        W = self.graph.params[W_ref].value.astype(np.float64)
        w_scales = (weight_scales(W, self.per_channel) if self.clip_inputs is None else
                    output_mse_scales(W, self.clip_inputs[x_ref].astype(np.float64),
                                      self.per_channel))
        bias_scale = x.scale * w_scales
        bias = np.rint(self.graph.params[b_ref].value / bias_scale)
        if np.abs(bias).max(initial=0) > INT32_MAX // 2:
            raise ValueError(f"layer {node.layer!r}: its bias at the scale of its input times "
                             f"its weights exceeds int32; calibrate on more representative rows")
        multiplier, shift = quantize_multiplier(bias_scale / y_scale)
        qmin, qmax = INT_RANGES[self.dtype]
        lo = max(qmin, y_zero) if node.attrs["activation"] == "relu" else qmin
        prefix = W_ref[1:].split(".W")[0]
        params = [self.param(f"@{prefix}.W", quantize_weights(W, w_scales)),
                  self.param(f"@{prefix}.b", bias.astype(np.int32)),
                  self.param(f"@{prefix}.multiplier", multiplier),
                  self.param(f"@{prefix}.shift", shift)]
        self.weight_scales[params[0]] = w_scales
        q = self.b.add("qdense", x.ref, *params, layer=node.layer, x_zero=x.zero_point,
                       y_zero=y_zero, lo=lo, hi=qmax)
        self.quants[node.out] = Readback(q, y_scale, y_zero)


def layer_of(graph: Graph, ref: str) -> str:
    producer = graph.producers().get(ref)
    return producer.layer if producer is not None and producer.layer else ref[1:]

