"""The inference library: an inference graph built as C and loaded with cffi,
``CompiledModel``, which predicts through it (``compile_graph`` makes one)."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .build import DEFAULT_FLAGS, build, build_extension, resolve_flags
from .checks import as_batch, check_int, check_threads
from .ir import Graph
from .layout import aligned_zeros, pack_params
from .program import LIBRARY_TILE_ROWS, Program
from .targets.library import generate_module


class CompiledModel:
    """An inference library built from the model; weights are copied in at compile time.
    It pickles as its graph and build options: unpickling rebuilds the library from the
    build cache (compiling it if absent), with the same weights and bits."""

    def __init__(self, graph: Graph, ffi, lib, program: Program, source: str, threads: int = 1,
                 cc=None, build_options: dict = None, output_quantization: tuple = None):
        self.graph, self.ffi, self.lib, self.c_source = graph, ffi, lib, source
        self._build_options = dict(build_options or {}, cc=cc)
        self.n_inputs, self.n_outputs = program.n_inputs, program.n_outputs
        self.output_widths = program.output_widths
        self.dtype = next(iter(graph.inputs.values())).np_dtype
        # A quantized model's integer output, and the real values it stands for:
        # output_scale * (y - output_zero_point); None for a float output.
        self.output_dtype = graph.types()[graph.outputs[0]].np_dtype if program.output_dtype \
            else self.dtype
        self.output_scale, self.output_zero_point = output_quantization or (None, None)
        self._layout, self._entries = program.params, program.entries
        self.params = pack_params(graph, self._layout, self.dtype)
        self._local, self._capacity, self._retired = threading.local(), 0, []
        self._fastcall = fastcall(cc)
        self.threads = threads

    def predict(self, X):
        """The output rows of ``X``: an array, or with several outputs a tuple of arrays."""
        y = self._predictor(X)
        return y if len(self.output_widths) < 2 else split_outputs(y, self.output_widths)

    def _predict(self, X) -> np.ndarray:
        # The fast path takes a C-contiguous 2-D array of the model's dtype and width and
        # leaves the finiteness check to C; anything else comes back as None and goes
        # through as_batch, which converts it or raises a clear error.  The entry is read
        # before the workspace, which the threads setter replaces first (see there).
        entry = self._entry
        try:
            workspace = self._local.workspace
        except AttributeError:
            workspace = self._new_workspace()
        y = self._fastcall.predict(entry, X, workspace)
        if y is None:
            X = as_batch(X, self.n_inputs, self.dtype)
            y = self._fastcall.predict(entry, X, workspace)
        if type(y) is not np.ndarray:
            if y == self.lib.DLC_ERR_NONFINITE:     # name the row with NaN or inf
                as_batch(X, self.n_inputs, self.dtype)
            raise RuntimeError(f"dlc_predict failed with code {y}")
        return y

    def load_weights(self, graph: Graph) -> None:
        """Takes the weights of ``graph``, an inference graph with this model's IR: the
        same C, other values (a trainer evaluating after every epoch need not build)."""
        if str(graph) != str(self.graph):
            raise ValueError("load_weights needs a graph with this model's IR; compile it")
        if any(p.type.is_integer for p in graph.params.values()):
            raise ValueError("a quantized model's integer weights are compiled into its C; "
                             "compile the new graph")
        self.graph = graph
        self.params = pack_params(graph, self._layout, self.dtype)
        self.threads = self._threads        # the entry holds the parameters' address

    @property
    def workspace_bytes(self) -> int:
        """The scratch memory of a predict call with this model's threads: the arena and
        the matrix multiply's packed blocks (one set per thread)."""
        return getattr(self.lib, self._entries["workspace_bytes"])(self._threads)

    def _new_workspace(self) -> int:
        """This thread's workspace (threads may call predict concurrently), at least as large
        as its thread-local store was made for."""
        local = self._local
        local.buffer = aligned_zeros(max(self._capacity, 1), np.uint8)
        local.workspace = local.buffer.ctypes.data
        return local.workspace

    @property
    def threads(self) -> int:
        """Threads the matrix multiplies may use; results are identical for any count."""
        return self._threads

    @threads.setter
    def threads(self, n: int) -> None:
        self._threads = check_threads(n)
        if self.workspace_bytes > self._capacity:
            # More threads, more blocks: every thread's workspace is allocated afresh.  The
            # old ones stay alive (another thread may be predicting in one), and the new
            # size is set before the new store, the store before the entry: a predict
            # that reads the entry, then the store, has room for the entry's threads.
            self._retired.append(self._local)
            self._capacity = self.workspace_bytes
            self._local = threading.local()
        function = self.ffi.cast("uintptr_t", self.ffi.addressof(self.lib, self._entries["predict"]))
        self._entry = (int(function), self.params.ctypes.data, self.n_inputs, self.n_outputs,
                       self.dtype.num, self._threads, self.output_dtype.num)
        # predict in one C call (the entry and the store it was sized for, together), which
        # hands whatever it does not finish to _predict.  With one output it replaces the
        # method: at batch 1 a Python frame costs a third of a small network's forward pass.
        self._predictor = self._fastcall.Predictor(self._entry, self._local, self._predict)
        if len(self.output_widths) < 2:
            self.predict = self._predictor

    @property
    def ir(self) -> str:
        return str(self.graph)

    def __reduce__(self):
        return (rebuild_compiled, (self.graph, dict(self._build_options, threads=self.threads)))


def split_outputs(y: np.ndarray, widths) -> tuple:
    """The outputs side by side in the rows of ``y`` as one array each."""
    return tuple(np.split(y, np.cumsum(widths)[:-1], axis=1))


def rebuild_compiled(graph: Graph, options: dict) -> CompiledModel:
    """The CompiledModel of a pickle."""
    return compile_graph(graph, **options)


def fastcall(cc=None):
    """The module that calls dlc_predict from Python (dlc/_fastcall.c), built by the
    compiler that built the model, once (then cached on disk and in the process)."""
    return build_extension(Path(__file__).with_name("_fastcall.c"), cc=cc,
                           include=np.get_include(), version=np.__version__)


def compile_graph(graph: Graph, *, cc=None, flags=DEFAULT_FLAGS,
                  tile_rows: int = LIBRARY_TILE_ROWS, threads: int = 1,
                  output_quantization: tuple = None) -> CompiledModel:
    """Build an inference graph (one batched input, one output) as it stands;
    ``output_quantization`` is the (scale, zero point) of an integer output."""
    threads = check_threads(threads)
    tile_rows = check_int(tile_rows, "tile_rows", low=1)
    flags = resolve_flags(flags)
    header, source, program = generate_module(graph, tile_rows)
    ffi, lib = build(header, source, cc=cc, flags=flags)
    return CompiledModel(graph, ffi, lib, program, source, threads, cc,
                         build_options=dict(flags=flags, tile_rows=tile_rows,
                                            output_quantization=output_quantization),
                         output_quantization=output_quantization)
