"""The runner backend of the trainer: the training program executed as data by the runner
(dlc/targets/runner.py), C compiled once per dtype and flags, so a trainer of a new shape
or new hyperparameters builds nothing.  Evaluation runs the inference program through the
same module."""
from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np

from ..build import DEFAULT_FLAGS, build, resolve_flags
from ..dsl import Model
from ..ir import Graph
from ..layout import aligned_zeros, pack_params
from ..lower import lower
from ..passes import run_pipeline
from ..program import LIBRARY_TILE_ROWS, inference_program, training_program
from ..targets.runner import encode, generate_runner
from ..targets.trainer import TRAINER
from .c_backend import call_epoch


def runner_module(dtype: str, cc=None, flags=DEFAULT_FLAGS):
    """(ffi, lib) of the runner for ``dtype``, from the build cache when it is there."""
    header, source, parts = generate_runner(dtype)
    return build(header, source, cc=cc, flags=tuple(flags) + TRAINER.flags, parts=parts)


class RunnerBackend:
    """Runs whole epochs of the training program in the runner."""

    name = "runner"

    def __init__(self, graph: Graph, cc=None, flags=DEFAULT_FLAGS):
        flags = resolve_flags(flags)
        program = training_program(graph)
        self.ffi, self.lib = runner_module(program.dtype, cc, flags)
        self.records = encode(program)
        self.program = program
        self.ctype = f"{program.ctype}[]"
        self.cc, self.flags = cc, flags
        self.threads = 1
        self._work = None
        self._fixed = None          # (records, their pointers)
        self._inference = None      # the RunnerModel of the last evaluation

    @property
    def c_source(self) -> str:
        raise AttributeError("a runner trainer has no C of its own: its program is data "
                             "(backend='c' renders the specialised C)")

    def _pointers(self, records):
        ffi = self.ffi
        return (ffi.from_buffer("int64_t[]", records.ints), ffi.from_buffer("double[]", records.reals),
                records.n_calls, ffi.from_buffer("int64_t[]", records.meta))

    def _program_pointers(self) -> tuple:
        """The training program's arguments, made once (and again if its records are
        replaced)."""
        if self._fixed is None or self._fixed[0] is not self.records:
            self._fixed = (self.records, self._pointers(self.records))
        return self._fixed[1]

    def run_epoch(self, state, X, T, order, batch_size, lr, seed, step0, loss_sum=0.0):
        """(loss_sum + the sum of cost * rows, steps run, whether every cost was finite)."""
        lib, meta = self.lib, self.records.meta
        tasks = lib.dlc_runner_set_threads(self.threads)
        n_work = (tasks * (int(meta[4]) + int(meta[5])) + int(meta[2])
                  + batch_size * (int(meta[3]) + int(meta[0]) + int(meta[1])))
        if self._work is None or self._work.size < n_work:
            self._work = np.empty(n_work, state.dtype)
        return call_epoch(self, lib.dlc_runner_train_epoch, "dlc_runner_train_epoch",
                          self._program_pointers(), state, X, T, order, batch_size, lr,
                          seed, step0, loss_sum)

    def inference(self, net: Model) -> "RunnerModel":
        """The inference program of the model's current weights, run by the runner (its
        records are kept while the IR holds; new weights are only repacked, straight
        from the model when no pass folds them)."""
        model = self._inference
        if model is not None and model.unfolded:
            model.load_weights(model.graph_of(net))
            return model
        graph = run_pipeline(lower(net))    # folds the current weights
        if model is None or str(graph) != model.ir:
            self._inference = RunnerModel(self, graph, net)
        else:
            model.load_weights(graph)
        return self._inference

    def predict(self, net: Model, X: np.ndarray) -> np.ndarray:
        return self.inference(net).predict(X)


class RunnerModel:
    """An inference program and its packed weights, predicting through the runner."""

    def __init__(self, backend: RunnerBackend, graph: Graph, net: Model):
        self.backend, self.graph, self.ir = backend, graph, str(graph)
        self.program = inference_program(graph, LIBRARY_TILE_ROWS)
        self.records = encode(self.program)
        self.dtype = np.dtype(next(iter(graph.inputs.values())).np_dtype)
        self.n_inputs, self.n_outputs = self.program.n_inputs, self.program.n_outputs
        # Whether every packed parameter is the model's own array, which no pass folded:
        # then new weights need no lowering and no passes, only packing.
        self.unfolded = all(graph.params[ref].value is net.params.get(ref[1:])
                            for ref in self.program.params.offsets)
        self.params = pack_params(graph, self.program.params, self.dtype)
        self._local = threading.local()     # each thread's prepared call

    def graph_of(self, net: Model) -> Graph:
        """The graph with the model's current parameters (an unfolded model's)."""
        return self.graph.replace(params={ref: replace(param, value=net.params[ref[1:]])
                                          if ref in self.program.params.offsets else param
                                          for ref, param in self.graph.params.items()})

    def load_weights(self, graph: Graph) -> None:
        """Packed in place: the calls prepared for each thread stay valid."""
        np.copyto(self.params, pack_params(graph, self.program.params, self.dtype))

    def _prepared(self):
        """This thread's call arguments but the rows: made once per thread count and
        Python thread (a batch-1 predict is otherwise mostly cffi conversions;
        threads predicting at once each have a workspace)."""
        backend, program, local = self.backend, self.program, self._local
        tasks = backend.lib.dlc_runner_set_threads(backend.threads)
        if getattr(local, "tasks", None) != tasks:
            ffi = backend.ffi
            local.workspace = aligned_zeros(
                program.arena_elements + tasks * program.blocks.elements, self.dtype)
            local.fixed = (*backend._pointers(self.records),
                           ffi.from_buffer(backend.ctype, self.params))
            local.cdata = ffi.from_buffer(backend.ctype, local.workspace, require_writable=True)
            local.tasks = tasks
        return local.fixed, local.cdata

    def predict(self, X: np.ndarray) -> np.ndarray:
        ffi, lib, ctype = self.backend.ffi, self.backend.lib, self.backend.ctype
        fixed, workspace = self._prepared()
        X = np.ascontiguousarray(X, dtype=self.dtype)
        y = np.empty((X.shape[0], self.n_outputs), self.dtype)
        status = lib.dlc_runner_predict(*fixed, ffi.from_buffer(ctype, X),
                                        ffi.from_buffer(ctype, y, require_writable=True),
                                        X.shape[0], workspace)
        if status != lib.DLC_OK:
            raise RuntimeError(f"dlc_runner_predict failed with code {status}")
        return y
