"""An objective for optuna studies (optuna is optional: imported when the objective runs)."""
from __future__ import annotations

import math

from ..checks import check_int
from .space import (Choice, IntLogUniform, IntUniform, LogUniform, OneMinusLogUniform, Params,
                    check_space)
from .search import check_data
from .trial import check_trainer, dev_error


def suggest(trial, name: str, scale):
    """The optuna suggestion matching a dlc.tune scale (same range, same coordinate)."""
    if isinstance(scale, Choice):
        return trial.suggest_categorical(name, scale.values)
    if isinstance(scale, IntUniform):
        return trial.suggest_int(name, scale.low, scale.high,
                                 log=isinstance(scale, IntLogUniform))
    if isinstance(scale, OneMinusLogUniform):
        return 1.0 - trial.suggest_float(f"1 - {name}", 1.0 - scale.high, 1.0 - scale.low,
                                         log=True)
    return trial.suggest_float(name, scale.low, scale.high, log=isinstance(scale, LogUniform))


def optuna_objective(build, train, dev, epochs: int, space: dict = None):
    """``objective(trial) -> best dev error`` for ``optuna.create_study().optimize``.

    Without ``space``, ``build(trial)`` asks the optuna trial for its values
    (``trial.suggest_float(...)``); with a dlc.tune ``space``, each scale becomes the
    matching suggestion and ``build`` gets the same params mapping as in
    ``dlc.tune.search``.  The trainer trains epoch by epoch, reports the dev error
    (1 - accuracy; the mse for regression) after each, and stops with
    ``optuna.TrialPruned`` when the study's pruner says so.  A ``batch_size`` parameter
    is fit's batch size."""
    X, Y, Xd, Yd = check_data(train, dev)
    epochs = check_int(epochs, "epochs", low=1)
    space = None if space is None else check_space(space)

    def objective(trial):
        import optuna
        if space is None:
            trainer = build(trial)
        else:
            values = {name: suggest(trial, name, scale) for name, scale in space.items()}
            trainer = build(Params(values, seed=trial.number, index=trial.number))
        check_trainer(trainer)
        batch_size = trial.params.get("batch_size")
        best = math.inf
        for epoch in range(epochs):
            logs = trainer.fit(X, Y, epochs=1, batch_size=batch_size, dev=(Xd, Yd),
                               progress=False).epochs[-1]
            error = dev_error(logs, trainer.loss)
            best = min(best, error)
            trial.report(error, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}, dev error {error:.4g}")
        return best

    return objective
