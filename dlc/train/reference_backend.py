"""The reference backend of the trainer: the same training graph, run step by step by
the NumPy interpreter, the oracle of the C backend."""
from __future__ import annotations

import numpy as np

from .. import interpreter
from ..dsl import Model
from ..ir import Graph
from ..lower import lower


class ReferenceBackend:
    """Runs the same training graph step by step with the NumPy interpreter."""
    name = "reference"

    def __init__(self, graph: Graph, views: dict):
        self.graph, self.views = graph, views
        self.threads = 1

    def run_epoch(self, state, X, T, order, batch_size, lr, seed, step0, loss_sum=0.0):
        dtype = state.dtype
        total = loss_sum
        for k, start in enumerate(range(0, order.size, batch_size)):
            rows = order[start:start + batch_size]
            inputs = {"%x": X[rows], "%y": T[rows], "%m": np.array(rows.size, dtype),
                      "%lr": np.array(lr, dtype), "%step": np.array(step0 + k + 1, dtype),
                      "%seed": np.array(seed, dtype)}
            (cost,), updates = interpreter.run(self.graph, inputs, self.views)
            for ref, value in updates.items():
                self.views[ref][...] = value
            if not np.isfinite(cost):
                return total, k + 1, False
            total += float(cost) * rows.size
        return total, -(-order.size // batch_size), True

    def predict(self, net: Model, X: np.ndarray) -> np.ndarray:
        """Inference-mode outputs of ``net``, ``X`` already checked (Trainer.predict)."""
        (y,), _ = interpreter.run(lower(net), {"%x": X})
        return y

    def inference(self, net: Model):
        """``net`` in inference mode, run by the interpreter (an object with predict)."""
        return ReferenceModel(self, net)


class ReferenceModel:
    def __init__(self, backend: ReferenceBackend, net: Model):
        self.backend, self.net, self.dtype = backend, net, np.dtype(net.dtype)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.backend.predict(self.net, np.asarray(X, self.dtype))
