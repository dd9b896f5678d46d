"""Callbacks for ``trainer.fit(..., callbacks=[...])``.

A callback has optional methods ``on_train_begin(trainer)`` (at the start of every
``fit``), ``on_epoch_end(trainer, epoch, logs)`` (return a truthy value to stop
training) and ``on_train_end(trainer, history)``; ``fit(callbacks=...)`` takes one
callback or a list.  They run in
the order given, so put ``TrainMetrics`` before an ``EarlyStopping`` that reads it.
"""
from __future__ import annotations

from .checkpoint import save
from .checks import check_int, check_real

MODES = {"loss": "min", "accuracy": "max", "error": "min"}


class TrainMetrics:
    """Adds the inference-mode loss and accuracy on a fixed set to every epoch's logs
    (as "train_loss", "train_accuracy" by default): the training error that
    bias/variance diagnosis and learning curves need, without dropout's noise."""

    def __init__(self, X, Y, prefix: str = "train"):
        self.X, self.Y, self.prefix = X, Y, prefix

    def on_epoch_end(self, trainer, epoch, logs):
        for key, value in trainer.evaluate(self.X, self.Y).items():
            logs[f"{self.prefix}_{key}"] = value


class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs; with ``restore_best`` the trainer is put back (weights,
    optimizer state and epoch counter) to the best epoch when training ends.

    After training, ``best_epoch`` and ``best`` hold the best epoch and its value and
    ``stopped_epoch`` the epoch training stopped at (None if it ran to the end).
    """

    def __init__(self, monitor: str = "dev_loss", patience: int = 5, min_delta: float = 0.0,
                 restore_best: bool = True, mode: str = None):
        self.patience = check_int(patience, "EarlyStopping patience", low=1)
        self.min_delta = check_real(min_delta, "EarlyStopping min_delta", low=0.0)
        if not isinstance(monitor, str):
            raise TypeError(f"EarlyStopping monitor must be a key of the epoch logs (a string), "
                            f"got {monitor!r}")
        self.monitor = monitor
        self.restore_best = restore_best
        self.mode = mode or MODES.get(monitor.rsplit("_", 1)[-1])
        if self.mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping cannot tell whether {monitor!r} should go up or "
                             f"down; pass mode='min' or mode='max'")
        self.on_train_begin(None)

    def on_train_begin(self, trainer):
        """Forget the previous fit: each fit stops and restores on its own epochs."""
        self.best = self.best_epoch = self.stopped_epoch = self.best_state = None
        self.wait = 0

    def improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer, epoch, logs):
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, but the epoch logs "
                             f"only have {sorted(logs)}; dev metrics need fit(dev=(X, Y))")
        value = float(logs[self.monitor])
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, logs.get("epoch", epoch), 0
            if self.restore_best:
                self.best_state = trainer.state_dict()   # copies, by contract
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = logs.get("epoch", epoch)
            return True
        return False

    def on_train_end(self, trainer, history):
        if self.restore_best and self.best_state is not None:
            trainer.load_state_dict(self.best_state)

    def __repr__(self) -> str:
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
                f"best_epoch={self.best_epoch}, best={self.best})")


class Checkpoint:
    """Saves the trainer with ``dlc.save`` every ``every`` epochs (atomically, so an
    interrupted run leaves the previous checkpoint intact)."""

    def __init__(self, path, every: int = 1):
        self.path, self.every = path, check_int(every, "Checkpoint every", low=1)

    def on_epoch_end(self, trainer, epoch, logs):
        if trainer.epoch % self.every == 0:
            save(trainer, self.path)
