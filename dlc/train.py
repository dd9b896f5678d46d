"""Training: one training graph (forward in training form, loss, penalty, backward,
optimizer update), run by generated C in calls of whole mini-batches (about
``CHUNK_SECONDS`` each, so Ctrl-C is noticed quickly), or by the reference interpreter
step by step.

``training_graph`` builds the graph; ``Trainer`` owns the state block (parameters,
optimizer state, running statistics) as one NumPy array that the C code updates in
place, and runs the epoch loop: a seeded shuffle per epoch, the learning rate from
the schedule, write-back of the weights into the model after every epoch, which
commits whole or, on any exception, not at all.
"""
from __future__ import annotations

import inspect
import sys
import time
from numbers import Integral

import numpy as np

from . import interpreter
from .autodiff import backward
from .build import DEFAULT_FLAGS, build, resolve_flags
from .checks import as_array, as_batch, cast_finite, check_int, check_real, first_bad_row
from .codegen import generate_train_module
from .layout import param_layout
from .dsl import Model
from .ir import BATCH, Graph, GraphBuilder, TensorType
from .lower import lower
from .optim import Optimizer, learning_rate
from .passes import run_pipeline
from .verify import verify

# loss -> (the output layer fused into it, the loss op)
LOSSES = {"cross_entropy": ("softmax", "softmax_cross_entropy"),
          "binary_cross_entropy": ("sigmoid", "sigmoid_cross_entropy"),
          "mse": (None, "mse")}
SCALAR_INPUTS = ("m", "lr", "step", "seed")
DEFAULT_BATCH_SIZE = 64
CHUNK_SECONDS = 0.015   # an epoch runs in calls of about this long: the latency of Ctrl-C
MAX_SEED = 1 << 24      # seeds are fed to the graph as exact float32 scalars
CALLBACK_METHODS = ("on_train_begin", "on_epoch_end", "on_train_end")


# ---------------------------------------------------------------- the training graph

def training_graph(net: Model, loss: str, optimizer: Optimizer, l2: float = 0.0,
                   l1: float = 0.0, regularize=None) -> Graph:
    """The whole training step of ``net`` as one IR graph: ``cost_graph`` followed by
    the backward pass and the optimizer's updates of every trainable parameter."""
    with_cost = cost_graph(net, loss, l2, l1, regularize)
    cost, = with_cost.outputs
    b = GraphBuilder.extending(with_cost)
    for param, value in with_cost.updates:
        b.update(param, value)
    for param, grad in backward(b, with_cost, cost).items():
        optimizer.emit(b, param, grad, "%lr", "%step")
    return verify(b.build([cost]))


def cost_graph(net: Model, loss: str, l2: float = 0.0, l1: float = 0.0,
               regularize=None) -> Graph:
    """The forward pass in training form and the cost (loss + penalty) as its output.

    Inputs: %x and %y (targets) of the mini-batch, and scalars %m (its size), %lr,
    %step (t, from 1) and %seed.  Updates: the batch-norm running statistics.
    """
    forward = lower(net, "train")
    pred, nodes = fused_prediction(forward, loss)
    b = GraphBuilder.extending(forward.replace(nodes=nodes))
    scalar = TensorType((), forward.dtype)
    targets = b.input("y", TensorType((BATCH, net.n_outputs), forward.dtype))
    m, *_ = [b.input(name, scalar) for name in SCALAR_INPUTS]     # all four, always
    cost = b.add(LOSSES[loss][1], pred, targets, layer="loss")
    for ref in regularized_params(forward, regularize):
        for kind, lam in (("l2", l2), ("l1", l1)):
            if lam:
                term = b.add(f"{kind}_penalty", ref, m, layer=forward.params[ref].layer, lam=lam)
                cost = b.add("add", cost, term, layer="loss")
    return verify(b.build([cost], forward.updates))


def fused_prediction(forward: Graph, loss: str):
    """(the value the loss reads, the forward nodes it needs): cross-entropy losses read
    the logits before the final softmax/sigmoid, which they fuse."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; use one of {sorted(LOSSES)}")
    activation = LOSSES[loss][0]
    out, = forward.outputs
    if activation is None:
        return out, forward.nodes
    final = forward.producers().get(out)
    if final is None or final.op != activation:
        ends = f"layer {final.layer!r} ({final.op})" if final else "its input"
        raise ValueError(f"loss {loss!r} needs the network to end with a "
                         f"{activation.capitalize()} layer (fused into the loss), but it ends "
                         f"with {ends}")
    return final.inputs[0], forward.nodes[:-1]


def regularized_params(forward: Graph, regularize) -> list:
    """The parameter refs the penalty applies to: by default the dense weights
    (``regularized`` in the model), else the names listed in ``regularize``."""
    if regularize is None:
        return [ref for ref, p in forward.params.items() if p.regularized]
    if isinstance(regularize, str):
        regularize = [regularize]
    refs = []
    for name in regularize:
        ref = "@" + str(name)
        if ref not in forward.params or not forward.params[ref].trainable:
            trainable = [r[1:] for r, p in forward.params.items() if p.trainable]
            raise ValueError(f"regularize: {name!r} is not a trainable parameter; "
                             f"the model has {trainable}")
        refs.append(ref)
    return refs


# ---------------------------------------------------------------- backends

# The square roots of RMSProp, Adam and batch norm vectorize only when they need not set
# errno (which nothing reads); this makes an Adam step about 4x faster at batch size 1.
EXTRA_FLAGS = ("-fno-math-errno",)


class CBackend:
    """Runs whole epochs in the generated C."""

    name = "c"

    def __init__(self, graph: Graph, cc=None, flags=DEFAULT_FLAGS):
        flags = resolve_flags(flags)        # a preset name or a list of flags
        header, self.c_source, context = generate_train_module(graph)
        self.ffi, self.lib = build(header, self.c_source, cc=cc, flags=flags + EXTRA_FLAGS)
        self.ctype = f"{context['ctype']}[]"
        self.cc, self.flags = cc, flags
        self.threads = 1
        self._work = None
        self._inference = None      # the last inference library, reused while its IR holds

    def run_epoch(self, state, X, T, order, batch_size, lr, seed, step0, loss_sum=0.0):
        """(loss_sum + the sum of cost * rows, steps run, whether every cost was finite)."""
        ffi, lib = self.ffi, self.lib
        lib.dlc_set_threads(self.threads)   # the library may be shared by several trainers
        n_work = lib.dlc_work_elements(batch_size)      # for those threads
        if self._work is None or self._work.size < n_work:
            self._work = np.empty(n_work, state.dtype)
        loss_sum, steps = ffi.new("double *", loss_sum), ffi.new("int64_t *")
        status = lib.dlc_train_epoch(
            ffi.from_buffer(self.ctype, state, require_writable=True),
            ffi.from_buffer(self.ctype, self._work, require_writable=True),
            ffi.from_buffer(self.ctype, X), ffi.from_buffer(self.ctype, T), X.shape[0],
            ffi.from_buffer("int64_t[]", order), order.size, batch_size, lr, seed, step0,
            loss_sum, steps)
        if status not in (lib.DLC_OK, lib.DLC_ERR_NONFINITE):
            raise RuntimeError(f"dlc_train_epoch failed with code {status}")
        return loss_sum[0], steps[0], status == lib.DLC_OK

    def predict(self, net: Model, X: np.ndarray) -> np.ndarray:
        from .api import compile_graph
        graph = run_pipeline(lower(net))    # folds the current weights
        if self._inference is not None and str(graph) == str(self._inference.graph):
            self._inference.load_weights(graph)
        else:
            self._inference = compile_graph(graph, cc=self.cc, flags=self.flags)
        return self._inference.predict(X)


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
        from .api import reference
        return reference(net).predict(X)


# ---------------------------------------------------------------- the trainer

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

    def __init__(self, net: Model, graph: Graph, loss: str, optimizer: Optimizer,
                 config: dict, backend: str = "c", cc=None, flags=DEFAULT_FLAGS,
                 threads: int = 1):
        self.net, self.graph, self.loss, self.optimizer = net, graph, loss, optimizer
        self.config = config
        self.dtype = np.dtype(net.dtype)
        layout = param_layout(graph)
        self.state = np.zeros(layout.size, self.dtype)
        self.views = {}
        for ref, param in graph.params.items():
            start = layout.offsets[ref]
            view = self.state[start:start + param.value.size].reshape(param.value.shape)
            view[...] = param.value
            self.views[ref] = view
        self.backend = (CBackend(graph, cc, flags) if backend == "c"
                        else ReferenceBackend(graph, self.views))
        self.threads = threads
        self.step, self.epoch, self.seed = 0, 0, 0
        self._chunk_rows = 1        # rows per call into the C epoch loop, adapted as it runs

    @property
    def threads(self) -> int:
        return self.backend.threads

    @threads.setter
    def threads(self, n: int) -> None:
        from .api import check_threads
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
                if dev is not None:
                    logs.update({f"dev_{k}": v for k, v in self.evaluate(*dev).items()})
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

    def evaluate(self, X, Y) -> dict:
        """The metrics of the current weights in inference mode: "loss", the data loss
        (no penalty), and for classification "accuracy" (argmax agreement for
        cross-entropy, thresholded at 0.5 per output for binary cross-entropy); for mse
        "mse", "rmse", "mae" and "r2" (scikit-learn's r2_score, outputs averaged), and
        "accuracy" as argmax agreement when there are several outputs."""
        X = as_batch(X, self.net.n_inputs, self.dtype)
        T = self.targets(Y, X.shape[0])
        P = self.predict(X).astype(np.float64)
        metrics = {"loss": data_loss(self.loss, P, T)}
        if self.loss == "mse":
            metrics.update(regression_metrics(P, T))
        if self.loss != "mse" or P.shape[1] > 1:
            metrics["accuracy"] = accuracy(self.loss, P, T)
        return metrics

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
        if isinstance(self.backend, CBackend):
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


def data_loss(loss: str, P: np.ndarray, T: np.ndarray) -> float:
    tiny = np.finfo(np.float64).tiny
    if loss == "cross_entropy":
        return float(-(T * np.log(np.maximum(P, tiny))).sum() / P.shape[0])
    if loss == "binary_cross_entropy":
        return float(-(T * np.log(np.maximum(P, tiny))
                       + (1 - T) * np.log(np.maximum(1 - P, tiny))).mean())
    return float(((P - T) ** 2).mean())


def accuracy(loss: str, P: np.ndarray, T: np.ndarray) -> float:
    if loss == "binary_cross_entropy":
        return float(((P > 0.5) == (T > 0.5)).mean())
    return float((P.argmax(axis=1) == T.argmax(axis=1)).mean())


def regression_metrics(P: np.ndarray, T: np.ndarray) -> dict:
    """mse, rmse, mae over all outputs and r2 averaged over the outputs, as scikit-learn's
    r2_score: a constant target column scores 1 if predicted exactly, else 0."""
    error = P - T
    mse = float((error ** 2).mean())
    residual = (error ** 2).sum(axis=0)
    total = ((T - T.mean(axis=0)) ** 2).sum(axis=0)
    constant = total == 0
    r2 = np.where(constant, np.where(residual == 0, 1.0, 0.0),
                  1 - residual / np.where(constant, 1.0, total))
    return {"mse": mse, "rmse": float(np.sqrt(mse)), "mae": float(np.abs(error).mean()),
            "r2": float(r2.mean())}


# ---------------------------------------------------------------- checks

def next_chunk_rows(rows: int, seconds: float, current: int) -> int:
    """Rows for the next call into the epoch loop: doubled while a call of ``rows``
    takes under half of CHUNK_SECONDS, halved when it takes over twice as long."""
    if seconds < CHUNK_SECONDS / 2:
        return max(current, 2 * rows)
    if seconds > 2 * CHUNK_SECONDS:
        return max(1, rows // 2)
    return rows


def as_callbacks(callbacks) -> list:
    """A callback or an iterable of callbacks, as a list; anything else is a TypeError."""
    if callbacks is None:
        return []
    if is_callback(callbacks):
        return [callbacks]
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be a callback or a list of callbacks, got "
                        f"{callbacks!r}") from None
    for i, cb in enumerate(callbacks):
        if not is_callback(cb):
            raise TypeError(f"callbacks[{i}] is {cb!r}, which has none of the callback "
                            f"methods {list(CALLBACK_METHODS)}")
    return callbacks


def is_callback(obj) -> bool:
    return any(callable(getattr(obj, name, None)) for name in CALLBACK_METHODS)


def check_batch_size(batch_size, n_rows: int) -> int:
    note = "at most the number of examples"
    if isinstance(batch_size, Integral) and batch_size > n_rows:
        note += (f"; use batch_size={n_rows} for full-batch training, or leave it out: 64, "
                 f"or the number of rows when there are fewer")
    return check_int(batch_size, "batch_size", low=1, high=n_rows, note=note)


def as_targets(Y, n_rows: int, n_out: int, loss: str, dtype, what: str = "Y") -> np.ndarray:
    """Targets as a (n_rows, n_out) array: integer class labels become one-hot for
    cross-entropy; a vector is one column for a single-output network."""
    Y = as_array(Y, what)
    if Y.dtype == object or not (np.issubdtype(Y.dtype, np.number) or Y.dtype == bool) \
            or np.iscomplexobj(Y):
        raise TypeError(f"{what} must hold real numbers, got dtype {Y.dtype}")
    if Y.ndim not in (1, 2) or Y.shape[0] != n_rows:
        raise ValueError(f"{what} should have {n_rows} rows (one per example in X), "
                         f"got shape {Y.shape}")
    if not np.isfinite(Y).all():
        raise ValueError(f"{what} contains NaN or inf (first at row "
                         f"{first_bad_row(Y.reshape(n_rows, -1))})")
    if loss == "cross_entropy" and (Y.ndim == 1 or (Y.shape[1] == 1 and n_out > 1)):
        return one_hot(Y.reshape(-1), n_out, dtype, what)
    if Y.ndim == 1:
        if n_out != 1:
            raise ValueError(f"{what} is a vector, but the network has {n_out} outputs; "
                             f"give {what} with shape ({n_rows}, {n_out})")
        Y = Y.reshape(-1, 1)
    if Y.shape[1] != n_out:
        raise ValueError(f"{what} has {Y.shape[1]} columns, the network has {n_out} outputs")
    if loss != "mse" and ((Y < 0) | (Y > 1)).any():
        raise ValueError(f"{what} for {loss} must lie in [0, 1] (probabilities or one-hot), "
                         f"got values in [{Y.min()}, {Y.max()}]")
    return cast_finite(Y, dtype, what)


def one_hot(labels: np.ndarray, n_classes: int, dtype, what: str) -> np.ndarray:
    fractional = labels != np.round(labels)
    if fractional.any():
        raise ValueError(f"{what} class labels must be integers, got {labels[fractional][0]} "
                         f"at row {int(np.argmax(fractional))}")
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        raise ValueError(f"{what} has label {labels[bad][0]} at row {int(np.argmax(bad))}; "
                         f"labels must be in [0, {n_classes}) for {n_classes} outputs")
    Y = np.zeros((labels.size, n_classes), dtype)
    Y[np.arange(labels.size), labels.astype(np.int64)] = 1
    return Y


def progress_bar(progress, total: int):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="epoch", desc="fit")


def update_bar(bar, logs: dict) -> None:
    if bar is None:
        return
    shown = {"loss": f"{logs['loss']:.4g}", "samples/s": f"{logs['samples_per_second']:.3g}"}
    for key in ("dev_loss", "dev_accuracy"):
        if key in logs:
            shown[key] = f"{logs[key]:.4g}"
    bar.set_postfix(shown)
    bar.update(1)


# ---------------------------------------------------------------- entry points

def make_trainer(net: Model, backend: str, cc=None, flags=DEFAULT_FLAGS,
                 loss: str = "cross_entropy", optimizer: Optimizer = None, l2: float = 0.0,
                 l1: float = 0.0, regularize=None, threads: int = 1) -> Trainer:
    from .api import check_threads
    if not isinstance(net, Model):
        raise TypeError(f"expected a dlc.Model, got {type(net).__name__}")
    threads = check_threads(threads)
    if optimizer is None:
        from .optim import Adam
        optimizer = Adam()
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be dlc.SGD, Momentum, RMSProp or Adam, got {optimizer!r}")
    l2, l1 = check_real(l2, "l2", low=0.0), check_real(l1, "l1", low=0.0)
    if regularize is not None and not isinstance(regularize, str):
        regularize = list(regularize)
    graph = training_graph(net, loss, optimizer, l2=l2, l1=l1, regularize=regularize)
    config = dict(loss=loss, optimizer=optimizer, l2=l2, l1=l1, regularize=regularize)
    return Trainer(net, graph, loss, optimizer, config, backend, cc=cc, flags=flags,
                   threads=threads)


def compile_trainer(net: Model, cc=None, flags=DEFAULT_FLAGS, **options) -> Trainer:
    """``dlc.compile(net, mode="train", loss=..., optimizer=..., l2=..., l1=...,
    regularize=..., threads=...)``: a Trainer whose epochs run in generated C."""
    check_train_options(options)
    return make_trainer(net, "c", cc=cc, flags=flags, **options)


def train_option_names() -> list:
    """The keyword options of ``compile(net, mode="train", ...)``."""
    names = list(inspect.signature(make_trainer).parameters)
    return [name for name in names if name not in ("net", "backend")]


def check_train_options(options: dict) -> None:
    unknown = sorted(set(options) - set(train_option_names()))
    if unknown:
        hint = (" (the learning rate belongs to the optimizer: optimizer=dlc.Adam(lr=...); "
                "batch_size and epochs are arguments of fit)"
                if {"lr", "learning_rate", "batch_size", "epochs"} & set(unknown) else "")
        raise TypeError(f"unknown training option(s) {unknown} for compile(net, "
                        f"mode='train'); the options are {train_option_names()}{hint}")


def restore_trainer(net: Model, config: dict, backend: dict, state: np.ndarray,
                    counters: tuple) -> Trainer:
    """The trainer of a pickle (see ``Trainer.__reduce__``)."""
    trainer = make_trainer(net, **backend, **config)
    if trainer.state.shape != np.shape(state):
        raise ValueError(f"the pickled trainer state has shape {np.shape(state)}, the "
                         f"rebuilt trainer {trainer.state.shape}")
    np.copyto(trainer.state, state)
    trainer.step, trainer.epoch, trainer.seed = counters
    trainer._write_back()
    return trainer


def reference_trainer(net: Model, **options) -> Trainer:
    """The same Trainer running the training graph in the NumPy interpreter: the oracle."""
    return make_trainer(net, "reference", **options)
