"""The trainer: ``Trainer`` owns the state block (parameters, optimizer state, running
statistics) as one NumPy array that a backend updates in place, and runs the epoch
loop: a seeded shuffle per epoch, the learning rate from the schedule, calls of whole
mini-batches (about ``CHUNK_SECONDS`` each, so Ctrl-C is noticed quickly), write-back
of the weights into the model after every epoch, which commits whole or, on any
exception, not at all.  ``History`` holds the logs of a fit.
"""
from __future__ import annotations

import time

import numpy as np

from ..build import DEFAULT_FLAGS
from ..checks import as_batch, check_int, check_threads
from ..dsl import Model
from ..ir import Graph
from ..layout import param_layout
from ..optim import learning_rate
from .arguments import as_callbacks, as_targets, check_batch_size
from .c_backend import CBackend
from .graph import MAX_SEED, training_graph
from .losses import lookup_loss
from .progress import progress_bar, update_bar
from .reference_backend import ReferenceBackend
from .runner_backend import RunnerBackend

DEFAULT_BATCH_SIZE = 64
COMPILED_BACKENDS = {"c": CBackend, "runner": RunnerBackend}
BACKENDS = (*COMPILED_BACKENDS, "reference")
CHUNK_SECONDS = 0.015   # an epoch runs in calls of about this long: the latency of Ctrl-C


class History:
    """The per-epoch logs of ``fit``: ``history.epochs`` is a list of dicts and
    ``history["loss"]`` the list of one key's values."""

    def __init__(self):
        self.epochs = []

    def __getitem__(self, key: str) -> list:
        return [logs[key] for logs in self.epochs if key in logs]

    def __len__(self) -> int:
        return len(self.epochs)

    def __repr__(self) -> str:
        return f"<dlc.History of {len(self.epochs)} epochs>"


class Trainer:
    """Trains ``net`` with a compiled training step; see ``dlc.compile(net, mode="train")``.

    ``fit`` reports the training cost including the penalty; ``evaluate`` runs in
    inference mode (no dropout, running statistics) and reports the data loss alone.
    Everything random is a pure function of (seed, epoch, step, layer): the shuffle of
    epoch e is ``default_rng([seed, e]).permutation``, augmentation gets
    ``default_rng([seed, e, 1])`` and dropout masks come from ``dlc.rng``, so training
    resumed from ``state_dict`` repeats uninterrupted training bit for bit.  The step
    count reaches the graph as a float scalar: exact up to 2**24 steps in float32.
    ``threads`` (settable) is the number of threads of the matrix multiplies; each
    splits only its output columns, so the results are the same whatever the count.
    Weights set on the model (``net.set_params``) are taken over at the next fit,
    evaluate, predict or state_dict.  A trainer pickles with its model and whole state
    and is rebuilt from the build cache on unpickling (multiprocessing, Dask).
    """

    def __init__(self, net: Model, graph: Graph, config: dict, backend: str = "c", cc=None,
                 flags=DEFAULT_FLAGS, threads: int = 1):
        """``graph``: the training graph of ``net`` built with ``config``, the checked
        options of ``training_graph`` (loss, optimizer, l2, l1, regularize); ``backend``:
        "c" (the training step rendered to C and compiled), "runner" (the training
        program run as data by C compiled once per dtype and flags) or "reference"."""
        self.net, self.graph, self.config = net, graph, config
        self.loss, self.optimizer = config["loss"], config["optimizer"]
        self.dtype = np.dtype(net.dtype)
        layout = param_layout(graph)
        self.state = np.zeros(layout.size, self.dtype)
        self.views = {}
        for ref, param in graph.params.items():
            start = layout.offsets[ref]
            view = self.state[start:start + param.value.size].reshape(param.value.shape)
            view[...] = param.value
            self.views[ref] = view
        self.backend = (ReferenceBackend(graph, self.views) if backend == "reference"
                        else COMPILED_BACKENDS[backend](graph, cc, flags))
        self.threads = threads
        self.step, self.epoch, self.seed = 0, 0, 0
        self._chunk_rows = 1        # rows per call into the C epoch loop, adapted as it runs

    @property
    def threads(self) -> int:
        return self.backend.threads

    @threads.setter
    def threads(self, n: int) -> None:
        self.backend.threads = check_threads(n)

    # ------------------------------------------------------------ state

    def _model_refs(self) -> list:
        return ["@" + name for name in self.net.params]

    def _slot_refs(self) -> list:
        model = set(self._model_refs())
        return [ref for ref in self.views if ref not in model]

    def state_dict(self) -> dict:
        """Copies of the parameters and optimizer state, and the counters."""
        self._adopt_model_params()
        return {"params": {ref[1:]: self.views[ref].copy() for ref in self._model_refs()},
                "optimizer": {ref[1:]: self.views[ref].copy() for ref in self._slot_refs()},
                "step": int(self.step), "epoch": int(self.epoch), "seed": int(self.seed),
                "optimizer_type": type(self.optimizer).__name__}

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict`` exactly (everything is checked before anything changes)."""
        if not isinstance(state, dict) or not {"params", "optimizer", "step", "epoch",
                                               "seed"} <= set(state):
            raise ValueError("load_state_dict needs a dict from Trainer.state_dict()")
        kind = state.get("optimizer_type", type(self.optimizer).__name__)
        if kind != type(self.optimizer).__name__:
            raise ValueError(f"the state is of a {kind} optimizer, this trainer uses "
                             f"{type(self.optimizer).__name__}")
        staged = {}
        for group, refs in (("params", self._model_refs()), ("optimizer", self._slot_refs())):
            names = {ref[1:] for ref in refs}
            if set(state[group]) != names:
                raise ValueError(f"state {group} has {sorted(state[group])}, "
                                 f"expected {sorted(names)}")
            for ref in refs:
                value = np.asarray(state[group][ref[1:]])
                if value.shape != self.views[ref].shape or not np.isfinite(value).all():
                    raise ValueError(f"state {group}[{ref[1:]!r}] should be finite with shape "
                                     f"{self.views[ref].shape}, got shape {value.shape}")
                staged[ref] = value
        counters = {key: check_int(state[key], f"state {key!r}", low=0) for key in
                    ("step", "epoch", "seed")}
        for ref, value in staged.items():
            self.views[ref][...] = value
        self.step, self.epoch, self.seed = counters["step"], counters["epoch"], counters["seed"]
        self._write_back()

    def _adopt_model_params(self) -> None:
        """Take the weights the model holds when they differ from the trainer's (set with
        ``net.set_params`` since the last epoch, pretrained weights for fine-tuning), so
        that training, evaluation and saving all start from the model's current weights."""
        for ref in self._model_refs():
            value, view = self.net.params[ref[1:]], self.views[ref]
            if same_array(value, view):
                continue
            if not np.array_equal(value, view):
                if np.shape(value) != view.shape or not np.isfinite(value).all():
                    raise ValueError(f"model parameter {ref[1:]!r} should be finite with shape "
                                     f"{view.shape}, got shape {np.shape(value)}")
                view[...] = value

    def _write_back(self) -> None:
        # Copies, not views, so the model never aliases the training state; no checks,
        # as set_params would make: the values come from the state block itself.
        self.net.params.update({ref[1:]: self.views[ref].copy() for ref in self._model_refs()})

    # ------------------------------------------------------------ data

    def targets(self, Y, n_rows: int, what: str = "Y") -> np.ndarray:
        return as_targets(Y, n_rows, self.net.n_outputs, self.loss, self.dtype, what)

    # ------------------------------------------------------------ training

    def fit(self, X, Y, epochs: int = 1, batch_size: int = None, seed: int = None, dev=None,
            callbacks=(), augment=None, progress=None, drop_last: bool = False) -> History:
        """Train ``epochs`` more epochs; returns the History of this call.

        Training starts from the model's current weights (``net.set_params`` included).
        ``batch_size`` defaults to 64, or to the number of rows when there are fewer;
        ``seed`` defaults to the trainer's (0, or the one of the last fit or loaded state);
        ``dev=(X, Y)`` adds the dev metrics of ``evaluate`` (dev_loss, dev_accuracy, ...)
        to each epoch's logs; ``callbacks`` is a callback or a list of them (see
        dlc.callbacks); ``augment(X, rng)`` returns the epoch's inputs; ``progress`` shows
        a tqdm bar (None: when stderr is a terminal); ``drop_last`` skips the last
        partial mini-batch.  An exception in an epoch (Ctrl-C included, noticed within
        about ``CHUNK_SECONDS``) leaves the trainer and the model exactly as they were
        after the last completed epoch.
        """
        X = as_batch(X, self.net.n_inputs, self.dtype)
        T = self.targets(Y, X.shape[0])
        epochs = check_int(epochs, "epochs", low=0)
        batch_size = (min(DEFAULT_BATCH_SIZE, X.shape[0]) if batch_size is None
                      else check_batch_size(batch_size, X.shape[0]))
        seed = self.seed if seed is None else check_int(seed, "seed", low=0, high=MAX_SEED - 1)
        dev = None if dev is None else self._dev_set(dev)
        callbacks = as_callbacks(callbacks)
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be a callable (X, rng) -> X, got {augment!r}")
        n_used = X.shape[0] // batch_size * batch_size if drop_last else X.shape[0]
        if n_used == 0:
            raise ValueError(f"drop_last with batch_size {batch_size} > {X.shape[0]} rows "
                             f"leaves no mini-batch")
        self._adopt_model_params()
        self.seed = seed
        history = History()
        for cb in callbacks:
            if hasattr(cb, "on_train_begin"):
                cb.on_train_begin(self)
        bar = progress_bar(progress, epochs)
        try:
            for _ in range(epochs):
                logs = self._train_epoch(X, T, batch_size, n_used, augment)
                if dev is not None:     # checked once, and the weights just written back
                    logs.update({f"dev_{k}": v for k, v in self._metrics(*dev).items()})
                history.epochs.append(logs)
                stop = [cb.on_epoch_end(self, logs["epoch"], logs) for cb in callbacks
                        if hasattr(cb, "on_epoch_end")]
                update_bar(bar, logs)
                if any(stop):
                    break
        finally:
            if bar is not None:
                bar.close()
        for cb in callbacks:
            if hasattr(cb, "on_train_end"):
                cb.on_train_end(self, history)
        return history

    def _train_epoch(self, X, T, batch_size, n_used, augment) -> dict:
        epoch, step = self.epoch, self.step
        lr = learning_rate(self.optimizer, epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(X.shape[0])
        order = np.ascontiguousarray(order[:n_used], dtype=np.int64)
        if augment is not None:
            X = as_batch(augment(X.copy(), np.random.default_rng([self.seed, epoch, 1])),
                         self.net.n_inputs, self.dtype, what="augment(X)")
            if X.shape[0] != T.shape[0]:
                raise ValueError(f"augment(X) returned {X.shape[0]} rows for {T.shape[0]}")
        snapshot = self._snapshot_state()
        start = time.perf_counter()
        try:
            loss_sum, steps, finite = self._run_in_chunks(X, T, order, batch_size, lr)
            if not finite:
                raise FloatingPointError(
                    f"training diverged in epoch {epoch + 1}: the cost became NaN or inf at "
                    f"step {steps} of the epoch (lr {lr:g}); the weights are kept as they were "
                    f"after epoch {epoch}")
            seconds = time.perf_counter() - start
            self.step, self.epoch = step + steps, epoch + 1
            self._write_back()
        except BaseException:       # Ctrl-C too: the epoch commits whole or not at all
            np.copyto(self.state, snapshot)
            self.step, self.epoch = step, epoch
            self._write_back()
            raise
        return {"epoch": self.epoch, "loss": loss_sum / n_used, "lr": lr,
                "samples_per_second": n_used / max(seconds, 1e-9)}

    def _run_in_chunks(self, X, T, order, batch_size, lr) -> tuple:
        """The epoch over ``order`` as calls of whole mini-batches, each taking about
        ``CHUNK_SECONDS``, so Python (and a KeyboardInterrupt) gets control back between
        them; steps are numbered on and the cost summed on, so the bits (the logged loss
        too) are those of a single call.
        Returns (sum of cost * rows, steps run, whether every cost was finite)."""
        n_batches = -(-order.size // batch_size)
        loss_sum, done = 0.0, 0
        while done < n_batches:
            count = min(max(1, self._chunk_rows // batch_size), n_batches - done)
            part = order[done * batch_size:(done + count) * batch_size]
            start = time.perf_counter()
            loss_sum, part_steps, finite = self.backend.run_epoch(
                self.state, X, T, part, batch_size, lr, self.seed, self.step + done, loss_sum)
            seconds = time.perf_counter() - start
            done += int(part_steps)
            if not finite:
                return loss_sum, done, False
            self._chunk_rows = next_chunk_rows(count * batch_size, seconds, self._chunk_rows)
        return loss_sum, done, True

    def _snapshot_state(self) -> np.ndarray:
        """A copy of the state block to restore if the epoch diverges, in a buffer kept
        from epoch to epoch (a fresh array of that size would page-fault all over again)."""
        if getattr(self, "_snapshot", None) is None or self._snapshot.shape != self.state.shape:
            self._snapshot = np.empty_like(self.state)
        np.copyto(self._snapshot, self.state)
        return self._snapshot

    def _dev_set(self, dev):
        if not isinstance(dev, (tuple, list)) or len(dev) != 2:
            raise TypeError("dev must be a pair (X_dev, Y_dev)")
        Xd = as_batch(dev[0], self.net.n_inputs, self.dtype, what="dev X")
        return Xd, self.targets(dev[1], Xd.shape[0], what="dev Y")

    # ------------------------------------------------------------ evaluation

    def predict(self, X) -> np.ndarray:
        """Inference-mode outputs of the current weights."""
        self._adopt_model_params()
        return self.backend.predict(self.net, as_batch(X, self.net.n_inputs, self.dtype))

    def inference_model(self):
        """The model's current weights in the inference path that ``predict`` and
        ``evaluate`` use (an object with ``predict(X)``): the trainer's own, no second
        build (C and runner backends)."""
        self._adopt_model_params()
        return self.backend.inference(self.net)

    def evaluate(self, X, Y) -> dict:
        """The metrics of the current weights in inference mode: "loss", the data loss
        (no penalty), and for classification "accuracy" (argmax agreement for
        cross-entropy, thresholded at 0.5 per output for binary cross-entropy); for mse
        "mse", "rmse", "mae" and "r2" (scikit-learn's r2_score, outputs averaged), and
        "accuracy" as argmax agreement when there are several outputs."""
        X = as_batch(X, self.net.n_inputs, self.dtype)
        T = self.targets(Y, X.shape[0])
        self._adopt_model_params()
        return self._metrics(X, T)

    def _metrics(self, X: np.ndarray, T: np.ndarray) -> dict:
        """evaluate's metrics of checked rows and targets, with the weights as they are."""
        P = self.backend.predict(self.net, X).astype(np.float64)
        return lookup_loss(self.loss).metrics(P, T)

    @property
    def c_source(self) -> str:
        """The generated C of the training step (C backend only)."""
        return self.backend.c_source

    def __reduce__(self):
        """A trainer pickles with its model and full state (parameters, optimizer state,
        counters, seed, options, compiler flags); unpickling rebuilds the C from the build
        cache (compiling it if absent) and continues training bit for bit."""
        self._adopt_model_params()
        backend = {"backend": self.backend.name, "threads": self.threads}
        if not isinstance(self.backend, ReferenceBackend):
            backend.update(cc=self.backend.cc, flags=self.backend.flags)
        return (restore_trainer, (self.net, dict(self.config), backend, self.state.copy(),
                                  (self.step, self.epoch, self.seed)))

    def __repr__(self) -> str:
        return (f"<dlc.Trainer {self.loss} {self.optimizer!r} epoch {self.epoch} "
                f"step {self.step}>")


def same_array(a, b: np.ndarray) -> bool:
    """Whether ``a`` is an array of ``b``'s dtype and shape with the same bytes: a memcmp,
    far cheaper than np.array_equal on small arrays (checked once per fit)."""
    return (isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
            and a.tobytes() == b.tobytes())


def next_chunk_rows(rows: int, seconds: float, current: int) -> int:
    """Rows for the next call into the epoch loop: doubled while a call of ``rows``
    takes under half of CHUNK_SECONDS, halved when it takes over twice as long."""
    if seconds < CHUNK_SECONDS / 2:
        return max(current, 2 * rows)
    if seconds > 2 * CHUNK_SECONDS:
        return max(1, rows // 2)
    return rows


def restore_trainer(net: Model, config: dict, backend: dict, state: np.ndarray,
                    counters: tuple) -> Trainer:
    """The trainer of a pickle (see ``Trainer.__reduce__``), whose options were checked
    when it was made."""
    trainer = Trainer(net, training_graph(net, **config), config, **backend)
    if trainer.state.shape != np.shape(state):
        raise ValueError(f"the pickled trainer state has shape {np.shape(state)}, the "
                         f"rebuilt trainer {trainer.state.shape}")
    np.copyto(trainer.state, state)
    trainer.step, trainer.epoch, trainer.seed = counters
    trainer._write_back()
    return trainer
