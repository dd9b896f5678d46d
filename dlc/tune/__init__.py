"""Hyperparameter search: random points on linear and log scales, coarse to fine,
successive halving, on local processes, any Executor or a Dask cluster.

    space = {"lr": dlc.tune.LogUniform(1e-4, 1.0), "hidden": dlc.tune.IntLogUniform(16, 512)}
    result = dlc.tune.search(build, space, train=(X, Y), dev=(Xd, Yd), trials=40, rounds=3)
    result.best, result.table(), result.best_trainer(), dlc.tune.plot(result, "search.png")

The trials run on the runner, C compiled once per dtype and flag set: ``dlc.tune.prebuild()``
(or ``dlc prebuild``) builds it ahead, so that no search waits for the compiler.
"""
from .space import (Choice, IntLogUniform, IntUniform, LogUniform, OneMinusLogUniform,
                    Params, Scale, SpaceError, Uniform)
from .trial import Trial, train_trial
from .search import SearchResult, search
from .plot import plot
from .optuna import optuna_objective
from .prebuild import prebuild

__all__ = ["Uniform", "LogUniform", "OneMinusLogUniform", "IntUniform", "IntLogUniform",
           "Choice", "Scale", "Params", "SpaceError", "Trial", "SearchResult", "search", "plot",
           "optuna_objective", "train_trial", "prebuild"]
