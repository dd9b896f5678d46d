"""The entry points: ``reference`` (the NumPy oracle) and ``compile`` (C: an
inference library, or with ``mode="train"`` a trainer)."""
from __future__ import annotations

import numpy as np

from . import interpreter
from .build import DEFAULT_FLAGS
from .checks import as_batch, check_threads
from .program import LIBRARY_TILE_ROWS
from .dsl import Model
from .ir import Graph
from .library import compile_graph
from .lower import lower
from .passes import INFERENCE_PIPELINE, run_pipeline
from .quant import QuantizedModel
from .train import compile_trainer


def _check_model(net) -> None:
    if not isinstance(net, (Model, QuantizedModel)):
        raise TypeError(f"expected a dlc.Model or dlc.Sequential, got {type(net).__name__}")


def source_graph(net) -> Graph:
    """The IR of ``net`` before the inference passes: a DSL model lowered, or the graph of
    a QuantizedModel (which the passes leave as it is: they ran before quantization)."""
    _check_model(net)
    return net.graph if isinstance(net, QuantizedModel) else lower(net)


class Reference:
    """Runs the model's IR with the NumPy interpreter (no passes, no C)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        (self.input_ref, self.input_type), = graph.inputs.items()

    def predict(self, X):
        """The output rows of ``X``: an array, or with several outputs a tuple of arrays."""
        X = as_batch(X, self.input_type.row_size, self.input_type.np_dtype)
        ys, _ = interpreter.run(self.graph, {self.input_ref: X})
        return ys[0] if len(ys) == 1 else tuple(ys)


def reference(net: Model) -> Reference:
    return Reference(source_graph(net))


def compile(net: Model, mode: str = "inference", *, cc=None, flags=DEFAULT_FLAGS,
            passes=INFERENCE_PIPELINE, tile_rows: int = LIBRARY_TILE_ROWS, threads: int = 1,
            **train_options):
    """Compile ``net`` to C and load it.  ``mode="train"`` returns a trainer."""
    _check_model(net)
    threads = check_threads(threads)
    if isinstance(mode, str) and mode == "train":
        if isinstance(net, QuantizedModel):
            raise ValueError("a quantized model compiles for inference only; train the float "
                             "model, then quantize it")
        return compile_trainer(net, cc=cc, flags=flags, threads=threads, **train_options)
    if not isinstance(mode, str) or mode != "inference":
        raise ValueError(f"unknown mode {mode!r}; use 'inference' or 'train'")
    if train_options:
        raise TypeError(f"unexpected options for inference: {sorted(train_options)}")
    return compile_graph(run_pipeline(source_graph(net), passes), cc=cc, flags=flags,
                         tile_rows=tile_rows, threads=threads,
                         output_quantization=getattr(net, "output_quantization", None))
