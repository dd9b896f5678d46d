"""The entry points: ``reference`` (the NumPy oracle) and ``compile`` (C)."""
from __future__ import annotations

import threading

import numpy as np

from . import interpreter
from .build import DEFAULT_FLAGS, build
from .checks import as_batch, positive_int
from .codegen import LIBRARY_TILE_ROWS, generate_module
from .dsl import Model
from .ir import Graph
from .lower import lower
from .passes import INFERENCE_PIPELINE, run_pipeline


def _check_model(net) -> None:
    if not isinstance(net, Model):
        raise TypeError(f"expected a dlc.Model or dlc.Sequential, got {type(net).__name__}")


class Reference:
    """Runs the model's IR with the NumPy interpreter (no passes, no C)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        (self.input_ref, self.input_type), = graph.inputs.items()

    def predict(self, X) -> np.ndarray:
        X = as_batch(X, self.input_type.row_size, self.input_type.np_dtype)
        (y,), _ = interpreter.run(self.graph, {self.input_ref: X})
        return y


def reference(net: Model) -> Reference:
    _check_model(net)
    return Reference(lower(net))


class CompiledModel:
    """An inference library built from the model; weights are copied in at compile time."""

    def __init__(self, graph: Graph, ffi, lib, context: dict, source: str, threads: int = 1):
        self.graph, self.ffi, self.lib, self.c_source = graph, ffi, lib, source
        self.threads = threads
        self.n_inputs, self.n_outputs = context["n_inputs"], context["n_outputs"]
        self.dtype = next(iter(graph.inputs.values())).np_dtype
        self.params = pack_params(graph, context["layout"], self.dtype)
        self._ctype = {np.float32: "float[]", np.float64: "double[]"}[self.dtype.type]
        self._params_ptr = ffi.from_buffer(self._ctype, self.params)
        self.workspace_bytes = context["workspace_bytes"]
        self._local = threading.local()

    def _workspace(self):
        ws = getattr(self._local, "ws", None)
        if ws is None:
            buffer = aligned_zeros(max(self.workspace_bytes, 1), np.uint8)
            ws = self._local.ws = (buffer, self.ffi.from_buffer(buffer))
        return ws[1]

    def predict(self, X) -> np.ndarray:
        # The fast path (a 2-D array of the model's dtype and width, C-contiguous) skips
        # the Python checks: C checks the values are finite.  Everything else goes
        # through as_batch, which converts or raises a clear error.
        dtype, from_buffer = self.dtype, self.ffi.from_buffer
        if not (type(X) is np.ndarray and X.dtype is dtype and X.ndim == 2
                and X.shape[1] == self.n_inputs and X.shape[0]):
            X = as_batch(X, self.n_inputs, dtype)
        try:
            x = from_buffer(self._ctype, X)
        except ValueError:          # not C-contiguous
            X = as_batch(X, self.n_inputs, dtype)
            x = from_buffer(self._ctype, X)
        y = np.empty((X.shape[0], self.n_outputs), dtype)
        lib = self.lib
        lib.dlc_set_threads(self._threads)   # the library may be shared by several models
        status = lib.dlc_predict(self._params_ptr, x,
                                 from_buffer(self._ctype, y, require_writable=True),
                                 X.shape[0], self._workspace())
        if status:
            if status == lib.DLC_ERR_NONFINITE:     # name the row with NaN or inf
                as_batch(X, self.n_inputs, dtype)
            raise RuntimeError(f"dlc_predict failed with code {status}")
        return y

    @property
    def threads(self) -> int:
        """Threads the matrix multiplies may use; results are identical for any count."""
        return self._threads

    @threads.setter
    def threads(self, n: int) -> None:
        self._threads = check_threads(n)

    @property
    def ir(self) -> str:
        return str(self.graph)


def check_threads(n) -> int:
    return positive_int(n, "threads")


def aligned_zeros(n: int, dtype, align: int = 64) -> np.ndarray:
    """n zeros starting on an ``align``-byte boundary (a cache line: the kernels' vector
    loads never straddle two lines when the data is packed at aligned offsets)."""
    dtype = np.dtype(dtype)
    raw = np.zeros(n * dtype.itemsize + align, np.uint8)
    start = -raw.ctypes.data % align
    return raw[start:start + n * dtype.itemsize].view(dtype)


def pack_params(graph: Graph, layout, dtype) -> np.ndarray:
    block = aligned_zeros(layout.size, dtype)
    for ref, param in graph.params.items():
        start = layout.offsets[ref]
        block[start:start + param.value.size] = param.value.reshape(-1)
    return block


def compile(net: Model, mode: str = "inference", *, cc=None, flags=DEFAULT_FLAGS,
            passes=INFERENCE_PIPELINE, tile_rows: int = LIBRARY_TILE_ROWS, threads: int = 1,
            **train_options):
    """Compile ``net`` to C and load it.  ``mode="train"`` returns a trainer."""
    _check_model(net)
    threads = check_threads(threads)
    if mode == "train":
        from .train import compile_trainer
        return compile_trainer(net, cc=cc, flags=flags, threads=threads, **train_options)
    if mode != "inference":
        raise ValueError(f"unknown mode {mode!r}; use 'inference' or 'train'")
    if train_options:
        raise TypeError(f"unexpected options for inference: {sorted(train_options)}")
    return compile_graph(run_pipeline(lower(net), passes), cc=cc, flags=flags,
                         tile_rows=tile_rows, threads=threads)


def compile_graph(graph: Graph, *, cc=None, flags=DEFAULT_FLAGS,
                  tile_rows: int = LIBRARY_TILE_ROWS, threads: int = 1) -> CompiledModel:
    """Build an inference graph (one batched input, one output) as it stands."""
    threads = check_threads(threads)
    header, source, context = generate_module(graph, tile_rows)
    ffi, lib = build(header, source, cc=cc, flags=flags)
    return CompiledModel(graph, ffi, lib, context, source, threads)
