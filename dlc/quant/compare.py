"""``compare``: each layer's error in the quantized model against the float model."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..checks import as_batch
from ..dsl import Model
from .convert import capture, float_graph
from .model import QuantizedModel


@dataclass(frozen=True)
class LayerError:
    """One value of the float model against its quantized counterpart (dequantized)."""
    layer: str
    op: str
    ref: str
    max_abs: float          # largest |quantized - float|
    rms: float              # root mean square of the difference
    relative: float         # rms over the float values' rms
    lsb: float              # max_abs in units of the value's scale (nan for float values)


class Comparison(tuple):
    """LayerErrors in graph order; prints as a table."""

    def __str__(self) -> str:
        lines = [f"{'layer':24} {'op':10} {'max abs':>10} {'rms':>10} {'relative':>9} "
                 f"{'LSB':>6}"]
        lines += [f"{e.layer[:24]:24} {e.op:10} {e.max_abs:10.3g} {e.rms:10.3g} "
                  f"{e.relative:9.2%} {e.lsb:6.1f}" for e in self]
        return "\n".join(lines)


def compare(net, qnet, X) -> Comparison:
    """Runs the float model ``net`` and its quantization ``qnet`` on rows X and reports,
    for each layer's result, the error of the quantized value (dequantized) against the
    float one."""
    if not isinstance(net, Model):
        raise TypeError(f"compare expects the float dlc.Model as net, got {type(net).__name__}")
    if not isinstance(qnet, QuantizedModel):
        raise TypeError(f"compare expects what dlc.quantize returned as qnet, got "
                        f"{type(qnet).__name__}")
    graph = float_graph(net)
    if str(graph) != str(qnet.float_graph) or any(
            not np.array_equal(p.value, qnet.float_graph.params[r].value)
            for r, p in graph.params.items()):
        raise ValueError("qnet was not quantized from net (their float graphs differ)")
    X = as_batch(X, net.n_inputs, net.dtype)
    floats, quants = capture(graph, X), capture(qnet.graph, X)
    rows = []
    for node in graph.nodes:
        place = qnet.readback.get(node.out)
        if place is None:
            continue
        expected = floats[node.out].astype(np.float64)
        diff = place.to_float(quants[place.ref]) - expected
        rms = float(np.sqrt(np.mean(diff ** 2)))
        scale = place.scale if place.scale is not None else np.nan
        rows.append(LayerError(node.layer, node.op, node.out, float(np.abs(diff).max()), rms,
                               rms / max(float(np.sqrt(np.mean(expected ** 2))), 1e-30),
                               float(np.abs(diff).max() / scale)))
    return Comparison(rows)
