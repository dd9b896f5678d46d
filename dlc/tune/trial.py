"""One trial: what it is (``TrialTask``), what it found (``Trial``) and how it is trained
(``train_trial``).

``train_trial`` is the one function that builds and trains: it runs in a worker, takes a
task and an epoch budget (a rung of successive halving) and returns the trial's record
and, when it may go on, the state to continue from.  It builds under the search's
backend, by default the runner, so a trial of a new shape or new hyperparameters waits
for no compiler.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

import numpy as np

from ..inspect import inspect
from ..train import default_backend
from .space import Params, SpaceError

STATUSES = ("ok", "pruned", "failed")
CONSTRAINTS = ("max_param_bytes", "max_workspace_bytes", "max_latency_us")
LATENCY_CALLS = 50          # predict calls per timing block; the median of blocks is kept
LATENCY_BLOCKS = 5


class SharedData:
    """The search's arrays (X, Y, X dev, Y dev) in a file that each worker process reads
    once, where a process pool would pickle them with every trial: it pickles as its
    path."""

    _read: dict = {}        # path -> the arrays, in this process

    def __init__(self, data: tuple, directory: str):
        self.path = os.path.join(directory, "data.npz")
        np.savez(self.path, *data)

    def arrays(self) -> tuple:
        if self.path not in SharedData._read:
            with np.load(self.path) as arrays:
                SharedData._read = {self.path: tuple(arrays[f"arr_{i}"]
                                                     for i in range(len(arrays.files)))}
        return SharedData._read[self.path]


class BuildResultError(TypeError):
    """``build`` returned something that is not a trainer: a bug of the search's caller,
    so it stops the search instead of failing every trial."""


@dataclass(frozen=True)
class TrialTask:
    """What a worker needs to train one trial (the data travels beside it)."""
    index: int
    round: int
    params: dict
    seed: int
    epochs: int                 # the trial's whole budget
    batch_size: Optional[int]   # None: fit's default
    patience: Optional[int]     # early stopping on the dev error; None: never
    constraints: dict           # CONSTRAINTS -> limit (absent: unconstrained)


@dataclass
class Trial:
    """A trial's record.  ``dev_error`` (1 - accuracy, or the mse for regression),
    ``dev_loss`` and ``train_error`` are those of its best epoch ``best_epoch`` (by dev
    error, then dev loss); ``epochs`` is how many it trained; ``curve`` and
    ``dev_losses`` hold the dev error and loss of every epoch.  ``param_bytes`` and
    ``workspace_bytes`` are the exported inference model's (as ``dlc.inspect`` reports
    them), ``latency_us`` the batch-1 predict time of the trainer's own inference path
    (the one its evaluation uses: no second build)."""
    index: int
    round: int
    params: dict
    seed: int
    status: str = "running"
    dev_error: Optional[float] = None
    train_error: Optional[float] = None
    dev_loss: Optional[float] = None
    epochs: int = 0
    best_epoch: Optional[int] = None
    seconds: float = 0.0
    error: Optional[str] = None
    param_bytes: Optional[int] = None
    workspace_bytes: Optional[int] = None
    latency_us: Optional[float] = None
    curve: list = field(default_factory=list)
    dev_losses: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict) -> "Trial":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})

    def key_at(self, epochs: int) -> tuple:
        """(dev error, dev loss, index) of the best of the first ``epochs`` epochs: the
        trial's rank at a rung of that many epochs."""
        best = min(zip(self.curve[:epochs], self.dev_losses[:epochs]), default=(math.inf,) * 2)
        return (*best, self.index)

    def key(self) -> tuple:
        return (math.inf if self.dev_error is None else self.dev_error,
                math.inf if self.dev_loss is None else self.dev_loss, self.index)


class TrialState:
    """A trial that may continue: its trainer and its early-stopping bookkeeping.
    It pickles (the trainer rebuilds from the build cache), so rungs may run in
    different worker processes."""

    def __init__(self, trainer, trial: Trial):
        self.trainer, self.trial = trainer, trial
        self.best_key, self.best_state, self.wait, self.stopped = None, None, 0, False


class Watch:
    """fit's callback: records the dev error of every epoch, keeps the best epoch's
    state and stops after ``patience`` epochs without improvement."""

    def __init__(self, state: TrialState, patience):
        self.state, self.patience = state, patience

    def on_epoch_end(self, trainer, epoch, logs):
        state, trial = self.state, self.state.trial
        key = (dev_error(logs, trainer.loss), float(logs["dev_loss"]))
        trial.curve.append(key[0])
        trial.dev_losses.append(key[1])
        if state.best_key is None or key < state.best_key:
            state.best_key, state.wait = key, 0
            state.best_state = trainer.state_dict()
            trial.best_epoch = len(trial.curve)
            return False
        state.wait += 1
        state.stopped = self.patience is not None and state.wait >= self.patience
        return state.stopped


def dev_error(logs: dict, loss: str) -> float:
    """The number the search minimises: 1 - dev accuracy for classification, the dev
    mse for regression."""
    if loss != "mse" and "dev_accuracy" in logs:
        return 1.0 - float(logs["dev_accuracy"])
    return float(logs["dev_loss"])


def train_trial(build, data: tuple, task: TrialTask, budget: int, state: TrialState = None,
                backend: str = "runner"):
    """Train ``task`` up to ``budget`` epochs in all (continuing ``state`` if given);
    ``build`` runs with ``backend`` as the default of ``compile(mode="train")`` (the
    runner: no compiler run per trial).

    Returns (trial, state): state is None when the trial is finished (its budget
    spent, stopped early or failed), else what the next rung continues from.  Errors of
    the trial (a raising build, a diverging fit) are recorded in the trial; errors of
    the search (a name not in the space, a build that returns no trainer) propagate."""
    start = time.perf_counter()
    trial = state.trial if state is not None else Trial(task.index, task.round,
                                                        dict(task.params), task.seed)
    X, Y, Xd, Yd = data.arrays() if isinstance(data, SharedData) else data
    try:
        if state is None:
            with default_backend(backend):
                trainer = build(Params(task.params, task.seed, task.index))
            check_trainer(trainer)
            violation = measure_footprint(trial, trainer, X[:1], task.constraints)
            if violation:
                return finish(trial, start, "failed", violation), None
            state = TrialState(trainer, trial)
        todo = min(budget, task.epochs) - trial.epochs
        state.trainer.fit(X, Y, epochs=todo, batch_size=task.batch_size, seed=task.seed,
                          dev=(Xd, Yd), callbacks=[Watch(state, task.patience)],
                          progress=False)
        trial.epochs = len(trial.curve)
        done = state.stopped or trial.epochs >= task.epochs
        record_best(state, X, Y, keep_current=not done)
    except (SpaceError, BuildResultError):
        raise
    except Exception as exc:        # the trial failed; the search goes on
        trial.epochs = len(trial.curve)
        return finish(trial, start, "failed", f"{type(exc).__name__}: {exc}"), None
    if done:
        return finish(trial, start, "ok"), None
    trial.seconds += time.perf_counter() - start
    return trial, state


def finish(trial: Trial, start: float, status: str, error: str = None) -> Trial:
    trial.status, trial.error = status, error
    trial.seconds += time.perf_counter() - start
    return trial


def check_trainer(trainer) -> None:
    if not all(callable(getattr(trainer, name, None)) for name in
               ("fit", "evaluate", "state_dict", "load_state_dict")):
        raise BuildResultError(f"build(params) must return a trainer, "
                               f"dlc.compile(net, mode='train', ...), got "
                               f"{type(trainer).__name__}")


def record_best(state: TrialState, X, Y, keep_current: bool) -> None:
    """The trial's figures at its best epoch; the trainer is left at the best epoch when
    the trial is finished, else where it was (to continue)."""
    trainer, trial = state.trainer, state.trial
    if state.best_key is None:
        return
    trial.dev_error, trial.dev_loss = state.best_key
    current = trainer.state_dict() if keep_current else None
    trainer.load_state_dict(state.best_state)
    trial.train_error = dev_error({f"dev_{k}": v for k, v in trainer.evaluate(X, Y).items()},
                                  trainer.loss)
    if current is not None:
        trainer.load_state_dict(current)


def measure_footprint(trial: Trial, trainer, x1: np.ndarray, constraints: dict):
    """Record the inference model's parameter and workspace bytes (from shapes) and its
    batch-1 latency; returns the first constraint violated (a message) or None.  The
    sizes are checked before anything runs."""
    report = inspect(trainer.net)
    trial.param_bytes, trial.workspace_bytes = report.param_bytes_after, report.workspace_bytes
    for name, value in (("max_param_bytes", trial.param_bytes),
                        ("max_workspace_bytes", trial.workspace_bytes)):
        if name in constraints and value > constraints[name]:
            return f"{name[4:].replace('_', ' ')} {value} > {name}={constraints[name]}"
    model = trainer.inference_model() if hasattr(trainer, "inference_model") else trainer
    trial.latency_us = batch1_latency_us(model, x1)
    if "max_latency_us" in constraints and trial.latency_us > constraints["max_latency_us"]:
        return (f"batch-1 latency {trial.latency_us:.3g} us > "
                f"max_latency_us={constraints['max_latency_us']:g}")
    return None


def batch1_latency_us(model, x1: np.ndarray) -> float:
    """The median over a few blocks of the mean time of one-row predict calls."""
    x1 = np.ascontiguousarray(x1, dtype=model.dtype)
    for _ in range(LATENCY_CALLS):
        model.predict(x1)
    blocks = []
    for _ in range(LATENCY_BLOCKS):
        start = time.perf_counter()
        for _ in range(LATENCY_CALLS):
            model.predict(x1)
        blocks.append((time.perf_counter() - start) / LATENCY_CALLS)
    return float(np.median(blocks) * 1e6)
