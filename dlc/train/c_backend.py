"""The C backend of the trainer: the training graph as generated C, which runs whole
epochs (``dlc_train_epoch``) on the trainer's state block in place."""
from __future__ import annotations

import numpy as np

from ..build import DEFAULT_FLAGS, build, resolve_flags
from ..dsl import Model
from ..ir import Graph
from ..library import compile_graph
from ..lower import lower
from ..passes import run_pipeline
from ..targets.trainer import TRAINER, generate_train_module


def call_epoch(backend, entry, name: str, leading: tuple, state, X, T, order, batch_size,
               lr, seed, step0, loss_sum):
    """Runs the C epoch ``entry`` (after its ``leading`` arguments) on ``backend``'s state
    and work buffer: (loss_sum + the sum of cost * rows, steps run, whether every cost was
    finite)."""
    ffi, lib, ctype = backend.ffi, backend.lib, backend.ctype
    loss_sum, steps = ffi.new("double *", loss_sum), ffi.new("int64_t *")
    status = entry(
        *leading,
        ffi.from_buffer(ctype, state, require_writable=True),
        ffi.from_buffer(ctype, backend._work, require_writable=True),
        ffi.from_buffer(ctype, X), ffi.from_buffer(ctype, T), X.shape[0],
        ffi.from_buffer("int64_t[]", order), order.size, batch_size, lr, seed, step0,
        loss_sum, steps)
    if status not in (lib.DLC_OK, lib.DLC_ERR_NONFINITE):
        raise RuntimeError(f"{name} failed with code {status}")
    return loss_sum[0], steps[0], status == lib.DLC_OK


class CBackend:
    """Runs whole epochs in the generated C."""

    name = "c"

    def __init__(self, graph: Graph, cc=None, flags=DEFAULT_FLAGS):
        flags = resolve_flags(flags)        # a preset name or a list of flags
        header, self.c_source, program = generate_train_module(graph)
        self.ffi, self.lib = build(header, self.c_source, cc=cc, flags=flags + TRAINER.flags)
        self.ctype = f"{program.ctype}[]"
        self.entries = {role: getattr(self.lib, name) for role, name in program.entries.items()}
        self.epoch_name = program.entries["epoch"]
        self.cc, self.flags = cc, flags
        self.threads = 1
        self._work = None
        self._inference = None      # the last inference library, reused while its IR holds

    def run_epoch(self, state, X, T, order, batch_size, lr, seed, step0, loss_sum=0.0):
        """(loss_sum + the sum of cost * rows, steps run, whether every cost was finite)."""
        self.entries["set_threads"](self.threads)   # the library may be shared by several trainers
        n_work = self.entries["work_elements"](batch_size)      # for those threads
        if self._work is None or self._work.size < n_work:
            self._work = np.empty(n_work, state.dtype)
        return call_epoch(self, self.entries["epoch"], self.epoch_name, (), state, X, T,
                          order, batch_size, lr, seed, step0, loss_sum)

    def inference(self, net: Model):
        """The inference library of the model's current weights: built once, reloaded
        with new weights while its IR holds."""
        graph = run_pipeline(lower(net))    # folds the current weights
        if self._inference is not None and str(graph) == str(self._inference.graph):
            self._inference.load_weights(graph)
        else:
            self._inference = compile_graph(graph, cc=self.cc, flags=self.flags)
        return self._inference

    def predict(self, net: Model, X: np.ndarray) -> np.ndarray:
        return self.inference(net).predict(X)
