"""The quantized model: its integer IR graph and what relates it to the float model."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

import numpy as np

from .. import interpreter
from ..checks import as_batch
from ..ir import Graph


@dataclass(frozen=True)
class Readback:
    """Where a value of the float model is in the quantized graph: ``ref``, holding
    scale * (q - zero_point) for an integer value (scale None: a float value)."""
    ref: str
    scale: Optional[float] = None
    zero_point: int = 0

    def to_float(self, value: np.ndarray) -> np.ndarray:
        if self.scale is None:
            return value.astype(np.float64)
        return (value.astype(np.float64) - self.zero_point) * self.scale


@dataclass(frozen=True)
class QuantizedModel:
    """What ``dlc.quantize`` returns: ``graph``, the quantized inference graph, which
    ``dlc.compile``, ``dlc.export_c``, ``dlc.reference`` and ``dlc.to_onnx`` accept;
    ``float_graph``, the float model after the inference passes (activations other than
    ReLU as nodes of their own); ``readback``, each float value's place in ``graph``."""
    graph: Graph
    float_graph: Graph
    readback: Mapping = field(repr=False)
    options: Mapping = field(default_factory=dict)
    weight_scales: Mapping = field(default_factory=dict, repr=False)  # int8 W ref -> scales

    def scale_of(self, ref: str) -> Readback:
        """The scale and zero point of the integer value ``ref`` of ``graph``."""
        for place in self.readback.values():
            if place.ref == ref and place.scale is not None:
                return place
        raise KeyError(f"{ref} is not an integer value of the quantized graph")

    @property
    def output_quantization(self):
        """(scale, zero point) of an integer output (output="int8"), else None."""
        out = self.graph.outputs[0]
        if not self.graph.types()[out].is_integer:
            return None
        place = self.scale_of(out)
        return place.scale, place.zero_point

    @property
    def dtype(self) -> np.dtype:
        return next(iter(self.graph.inputs.values())).np_dtype

    @property
    def n_inputs(self) -> int:
        return next(iter(self.graph.inputs.values())).row_size

    @property
    def n_outputs(self) -> int:
        return self.graph.types()[self.graph.outputs[0]].row_size

    @property
    def weight_bytes(self) -> int:
        """Bytes of the quantized model's parameters (int8 weights, int32 bias and
        requantization)."""
        return sum(p.value.nbytes for p in self.graph.params.values())

    @property
    def float_weight_bytes(self) -> int:
        return sum(p.value.nbytes for p in self.float_graph.params.values())

    def predict(self, X) -> np.ndarray:
        """The output on rows X by dlc's interpreter: the integers the C computes."""
        X = as_batch(X, self.n_inputs, self.dtype)
        (y,), _ = interpreter.run(self.graph, {next(iter(self.graph.inputs)): X})
        return y
