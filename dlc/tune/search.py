"""The search: random points in rounds of shrinking boxes, each round's trials trained in
rungs of successive halving, on any executor; every finished trial logged as it lands.

Every point is sampled here, in the calling process, from ``default_rng([seed, round])``;
workers only train.  Results are kept by trial index, so a seed gives the same trials
and the same table on any executor.
"""
from __future__ import annotations

import csv
import functools
import json
import math
import multiprocessing
import os
import pickle
import shutil
import sys
import tempfile
import threading
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..checks import check_int, check_real, shown
from ..train import default_backend
from .space import Params, SpaceError, check_factor, check_space, sample_points, shrunk_space
from .trial import CONSTRAINTS, STATUSES, SharedData, Trial, TrialTask, train_trial

BEST_FRACTION = 0.25        # a box shrinks around the best quarter of the trials in it
SEED_LIMIT = 1 << 24        # fit's seeds are exact float32 integers
COLUMNS = ("index", "round", "status", "dev_error", "train_error", "dev_loss", "epochs",
           "best_epoch", "seconds", "param_bytes", "workspace_bytes", "latency_us", "error")
TIMED = ("seconds", "latency_us")   # measured, so they differ from run to run


# ---------------------------------------------------------------- the result

@dataclass
class SearchResult:
    """``trials`` (in index order), ``boxes`` (each round's space), ``best`` (the ok trial
    of least dev error, then dev loss), ``interrupted`` (Ctrl-C stopped the search)."""
    trials: list
    boxes: list
    interrupted: bool = False
    _build: object = field(default=None, repr=False)
    _train: tuple = field(default=None, repr=False)
    _backend: str = field(default="runner", repr=False)

    @property
    def best(self):
        done = [t for t in self.trials if t.status == "ok" and t.dev_error is not None]
        return min(done, key=Trial.key, default=None)

    def table(self) -> list:
        """One dict per trial: its number, round and status, each hyperparameter, the
        figures and the error message of a failed trial."""
        names = list(self.boxes[0]) if self.boxes else []
        rows = []
        for t in self.trials:
            row = {"index": t.index, "round": t.round, "status": t.status}
            row.update({name: t.params.get(name) for name in names})
            row.update({name: getattr(t, name) for name in COLUMNS[3:]})
            rows.append(row)
        return rows

    def to_csv(self, path) -> str:
        rows = self.table()
        names = list(rows[0]) if rows else list(COLUMNS)
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=names)
            writer.writeheader()
            writer.writerows(rows)
        return str(path)

    def best_trainer(self):
        """The best trial rebuilt in this process and trained again to its best epoch with
        its seed and batch size: the trainer the trial had at that epoch."""
        best = self.best
        if best is None:
            raise ValueError("the search has no successful trial to rebuild")
        if self._build is None:
            raise ValueError("this result was not made by dlc.tune.search (no build)")
        with default_backend(self._backend):
            trainer = self._build(Params(best.params, best.seed, best.index))
        X, Y = self._train
        trainer.fit(X, Y, epochs=best.best_epoch, batch_size=best.params.get("batch_size"),
                    seed=best.seed, progress=False)
        return trainer

    def __repr__(self) -> str:
        counts = {s: sum(t.status == s for t in self.trials) for s in STATUSES}
        best = self.best
        shown_best = f"best dev error {best.dev_error:.4g} (trial {best.index})" if best else \
            "no successful trial"
        return (f"<dlc.tune.SearchResult {len(self.trials)} trials {counts}, {shown_best}"
                f"{', interrupted' if self.interrupted else ''}>")


# ---------------------------------------------------------------- executors

class Pool:
    """One interface over a concurrent.futures.Executor and a dask.distributed.Client."""

    def __init__(self, executor, build=None, space=None, fork: bool = False):
        """``build``, ``space``: for the workers of a pool made here to load the runner
        as they start; ``fork``: that pool forks this process."""
        self.owned = executor is None
        if executor is None:
            executor = local_pool(build, space, fork)
        self.dask = check_executor(executor)
        self.executor = executor
        self.directory = None       # the temporary directory of the shared data

    @property
    def pickles(self) -> bool:
        return isinstance(self.executor, ProcessPoolExecutor)

    def put(self, data: tuple):
        """The arrays where the workers read them: scattered once to a Dask cluster, in a
        file each worker of a process pool reads once, else as they are."""
        if self.dask:
            return self.executor.scatter([data], broadcast=True)[0]
        if self.pickles and not any(a.dtype.hasobject for a in data):
            self.directory = tempfile.mkdtemp(prefix="dlc-search-")
            return SharedData(data, self.directory)
        return data

    def submit(self, fn, *args):
        if self.dask:
            return self.executor.submit(fn, *args, pure=False)
        return self.executor.submit(fn, *args)

    def as_completed(self, futures):
        if self.dask:
            from distributed import as_completed
            return as_completed(futures)
        return done_first(futures)

    def close(self, cancel: bool = False) -> None:
        if self.owned:
            self.executor.shutdown(wait=not cancel, cancel_futures=cancel)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


def done_first(futures):
    """The futures as they complete, those found done together in the order given
    (concurrent.futures.as_completed yields them in a set's order)."""
    pending = list(futures)
    while pending:
        futures_wait(pending, return_when=FIRST_COMPLETED)
        done, pending = split_done(pending)
        yield from done


def split_done(futures) -> tuple:
    done, pending = [], []
    for future in futures:
        (done if future.done() else pending).append(future)
    return done, pending


def check_executor(executor) -> bool:
    """Whether ``executor`` is a Dask client (else None or a concurrent.futures one)."""
    if is_dask_client(executor):
        return True
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(f"executor must be None (a local process pool), a "
                        f"concurrent.futures.Executor or a dask.distributed.Client, "
                        f"got {shown(executor)}")
    return False


def local_pool(build, space, fork: bool) -> ProcessPoolExecutor:
    """A process pool over the cores, its workers started at once and ready to train:
    forked from this process when ``fork`` (they inherit dlc and the runner that
    ``warm_up`` loaded), else started by a fork server that imported dlc once, each
    worker loading the runner as it starts."""
    workers = os.cpu_count() or 1
    if fork:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    else:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() \
            else "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(["__main__", "dlc.tune.trial"])
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=warm_up,
                                   initargs=(build, space))
    for _ in range(workers):    # fork: all now, before the bar's or the pool's threads
        pool.submit(int)
    return pool


def fork_is_safe(trainer) -> bool:
    """Forking copies only the calling thread: fork a process in which no other Python
    thread runs (it could hold a lock the child needs) and whose trials, like
    ``trainer``, train on one thread (a child cannot start OpenMP threads if the parent
    ever ran more than one: libgomp's pool does not survive a fork), on Linux."""
    return (sys.platform.startswith("linux") and trainer is not None
            and "fork" in multiprocessing.get_all_start_methods()
            and threading.active_count() == 1 and getattr(trainer, "threads", 1) == 1)


def is_dask_client(executor) -> bool:
    return type(executor).__module__.split(".")[0] == "distributed" and \
        callable(getattr(executor, "scatter", None))


def check_picklable(build, executor) -> None:
    """A process pool pickles build by reference: it must be importable in the workers."""
    if executor is not None and not isinstance(executor, ProcessPoolExecutor):
        return
    hint = ("; define build at module level in an importable module or a script run as "
            "python script.py (with the search under if __name__ == '__main__'), or pass "
            "executor=concurrent.futures.ThreadPoolExecutor() to train in threads")
    try:
        pickle.dumps(build)
    except Exception as exc:
        raise TypeError(f"build must be picklable for the process pool, but pickling "
                        f"{build!r} failed ({type(exc).__name__}: {exc}){hint}") from None
    module = sys.modules.get(getattr(build, "__module__", None) or "")
    if getattr(build, "__module__", None) == "__main__" and \
            not getattr(module, "__file__", None):
        raise TypeError(f"build {build!r} is defined interactively (in __main__ without a "
                        f"file), which worker processes cannot import{hint}")


# ---------------------------------------------------------------- the log

def read_log(path) -> dict:
    """index -> Trial of every finished trial in a JSONL log (a truncated last line, as a
    kill mid-write leaves, is ignored)."""
    trials = {}
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return trials
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"resume: line {number} of {path} is not JSON") from None
        trial = Trial.from_dict(record)
        if trial.status in STATUSES:
            trials[trial.index] = trial
    return trials


def drop_partial_line(path) -> None:
    """Cut a last line left half-written by a kill, so that appending starts a fresh line."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def as_json(value):
    return json.loads(json.dumps(value))


class Log:
    """Appends each finished trial to a JSONL file as it lands (None: no file)."""

    def __init__(self, path, resumed: dict, same_file: bool):
        self.file = None
        if path is not None:
            if same_file:
                drop_partial_line(path)
            self.file = open(path, "a" if same_file else "w")
            if not same_file:
                for trial in sorted(resumed.values(), key=lambda t: t.index):
                    self.write(trial)

    def write(self, trial: Trial) -> None:
        if self.file is not None:
            self.file.write(json.dumps(trial.to_dict()) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


# ---------------------------------------------------------------- the search

def search(build, space, train, dev, trials: int = 40, rounds: int = 3, epochs: int = 30,
           seed: int = 0, executor=None, halving=None, log=None, resume=None,
           max_param_bytes=None, max_workspace_bytes=None, max_latency_us=None,
           shrink: float = 0.5, patience=10, progress=None,
           backend: str = "runner") -> SearchResult:
    """Random search, coarse to fine, for the hyperparameters of ``build``.

    ``build(params)`` returns a trainer, ``dlc.compile(net, mode="train", ...)``, for a
    mapping of one value per name of ``space`` (``params.seed`` seeds the trial); it
    runs in the workers, so for the default process pool it must be a module-level
    function.  ``batch_size`` and ``epochs``, when in the space, are fit's.

    ``trials`` are split over ``rounds`` (the first rounds take the remainder); after
    each round every scale shrinks, in its own coordinate (log for log scales), to
    ``shrink`` times its width, centred on the best quarter of the trials inside it and
    containing the best one (a Choice keeps their values).  Each trial trains up to
    ``epochs`` with the dev error (1 - accuracy; the mse for regression) after every
    epoch, stops after ``patience`` epochs without improvement (None: never) and keeps
    its best epoch.  ``halving=dict(min_epochs=m, factor=3)`` trains each round in rungs
    of m, 3m, 9m, ... epochs (fit continues), stopping all but the best third at each
    rung ("pruned").  ``max_*`` constraints fail a trial before it trains.
    ``executor``: None (a process pool over the cores, forked from this process when
    that is safe), any concurrent.futures.Executor or a dask.distributed.Client; the
    trials expected to take longest (most epochs times widths) are submitted first.
    ``log`` gets every finished trial as a JSON line; ``resume`` (a log) skips the
    trials it holds.  A failing trial is recorded and the
    search goes on; Ctrl-C returns what has finished (``interrupted``).  ``backend`` is
    the default of ``compile(mode="train")`` inside ``build`` (a backend named there
    wins): "runner" (C compiled once, no compiler run per trial) or "c" (each trial's
    training step compiled for it).
    """
    if backend not in ("c", "runner"):
        raise ValueError(f"backend must be 'c' or 'runner', got {backend!r}")
    if not callable(build):
        raise TypeError(f"build must be a function params -> trainer, got {shown(build)}")
    data = check_data(train, dev)
    check_executor(executor)
    check_picklable(build, executor)
    trainer = warm_up(build, space) if backend == "runner" else None
    pool = Pool(executor, build, space, fork=fork_is_safe(trainer))
    try:
        job = functools.partial(train_trial, build, backend=backend)
        result = run_search(job, pool, pool.put(data), space, trials=trials, rounds=rounds,
                            epochs=epochs, seed=seed, halving=halving, log=log,
                            resume=resume, shrink=shrink, patience=patience,
                            constraints=dict(max_param_bytes=max_param_bytes,
                                             max_workspace_bytes=max_workspace_bytes,
                                             max_latency_us=max_latency_us),
                            progress=progress)
    except BaseException:
        pool.close(cancel=True)
        raise
    pool.close(cancel=result.interrupted)
    result._build, result._train, result._backend = build, data[:2], backend
    return result


def check_data(train, dev) -> tuple:
    arrays = []
    for name, pair in (("train", train), ("dev", dev)):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"{name} must be a pair (X, Y), got {shown(pair)}")
        X, Y = np.asarray(pair[0]), np.asarray(pair[1])
        if X.ndim != 2 or len(X) == 0 or len(Y) != len(X):
            raise ValueError(f"{name} must be (X, Y) with X of shape (rows, features) and Y "
                             f"of as many rows, got shapes {X.shape} and {Y.shape}")
        arrays += [X, Y]
    return tuple(arrays)


def check_options(trials, rounds, epochs, seed, halving, shrink, patience, constraints):
    trials = check_int(trials, "trials", low=1)
    rounds = check_int(rounds, "rounds", low=1, high=trials, note="at most trials")
    epochs = check_int(epochs, "epochs", low=1)
    seed = check_int(seed, "seed", low=0)
    shrink = check_factor(shrink)
    patience = None if patience is None else check_int(patience, "patience", low=1)
    limits = {}
    for name in CONSTRAINTS:
        if constraints.get(name) is not None:
            limits[name] = check_real(constraints[name], name, low=0.0, low_open=True)
    return trials, rounds, epochs, seed, check_halving(halving), shrink, patience, limits


def check_halving(halving):
    if halving is None:
        return None
    if not isinstance(halving, dict):
        raise TypeError(f"halving must be None or dict(min_epochs=..., factor=3), got "
                        f"{shown(halving)}")
    unknown = sorted(set(halving) - {"min_epochs", "factor"})
    if unknown:
        raise TypeError(f"halving takes min_epochs and factor, got unknown {unknown}")
    if "min_epochs" not in halving:
        raise ValueError("halving needs min_epochs, the epochs of the first rung")
    return dict(min_epochs=check_int(halving["min_epochs"], "halving min_epochs", low=1),
                factor=check_int(halving.get("factor", 3), "halving factor", low=2))


def rungs(halving, max_epochs: int) -> list:
    """The epoch budgets of successive halving: m, m f, m f^2, ... below max_epochs, then
    max_epochs."""
    if halving is None:
        return [max_epochs]
    budgets, budget = [], halving["min_epochs"]
    while budget < max_epochs:
        budgets.append(budget)
        budget *= halving["factor"]
    return budgets + [max_epochs]


def split(trials: int, rounds: int) -> list:
    return [trials // rounds + (r < trials % rounds) for r in range(rounds)]


def trial_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] % SEED_LIMIT)


def warm_up(build=None, space=None):
    """One trainer built here before the workers start, so the runner is in the build
    cache (and, on forked workers, already loaded) when they look, instead of each of
    them compiling it at once; a pool's worker does the same as it starts.  Returns the
    trainer (None if build failed: the trials meet the same error and record it)."""
    if build is None:
        return None
    try:
        point = sample_points(check_space(space), 1, np.random.default_rng(0))[0]
        with default_backend("runner"):
            return build(Params(point, 0, -1))
    except Exception:       # noqa: BLE001 - the trials meet the same error and record it
        return None


def run_search(job, pool: Pool, shared, space, *, trials, rounds, epochs, seed, halving,
               log, resume, shrink, patience, constraints, progress) -> SearchResult:
    """The search loop over ``job(shared, task, budget, state) -> (trial, state)``, the
    seam where training happens (``train_trial`` for ``search``)."""
    space = check_space(space)
    trials, rounds, epochs, seed, halving, shrink, patience, constraints = check_options(
        trials, rounds, epochs, seed, halving, shrink, patience, constraints)
    resumed = read_log(resume) if resume is not None else {}
    same_file = (resume is not None and log is not None
                 and Path(resume).resolve() == Path(log).resolve())
    run = Run(job, pool, shared, halving, Log(log, resumed, same_file), resumed,
              progress_bar(progress, trials))
    box, first = space, 0
    try:
        for r, n in enumerate(split(trials, rounds)):
            run.boxes.append(box)
            points = sample_points(box, n, np.random.default_rng([seed, r]))
            tasks = [make_task(first + i, r, p, seed, epochs, patience, constraints)
                     for i, p in enumerate(points)]
            first += n
            run.round(tasks)
            box = next_box(box, list(run.trials.values()), shrink)
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        run.close()
    return SearchResult(sorted(run.trials.values(), key=lambda t: t.index), run.boxes,
                        run.interrupted)


def make_task(index, round_, point, seed, epochs, patience, constraints) -> TrialTask:
    return TrialTask(index=index, round=round_, params=point, seed=trial_seed(seed, index),
                     epochs=point.get("epochs", epochs), batch_size=point.get("batch_size"),
                     patience=patience, constraints=constraints)


def next_box(box: dict, trials: list, factor: float) -> dict:
    """The box shrunk around the best quarter of the scored trials inside it (unchanged
    if none has a score)."""
    inside = [t for t in trials if t.status in ("ok", "pruned") and t.dev_error is not None
              and all(box[name].contains(t.params[name]) for name in box)]
    if not inside:
        return box
    ranked = sorted(inside, key=Trial.key)
    top = ranked[:max(1, math.ceil(BEST_FRACTION * len(ranked)))]
    return shrunk_space(box, [t.params for t in top], top[0].params, factor)


class Run:
    """The state of one search: finished trials, boxes, the log and the bar."""

    def __init__(self, job, pool, shared, halving, log, resumed, bar):
        self.job, self.pool, self.shared, self.halving = job, pool, shared, halving
        self.log, self.resumed, self.bar = log, resumed, bar
        self.trials, self.boxes, self.interrupted, self.pending = {}, [], False, []

    def round(self, tasks: list) -> None:
        """Train one round's tasks rung by rung; at each rung the best 1/factor of those
        that completed it go on, the others are pruned."""
        live = []
        for task in tasks:
            if task.index in self.resumed:
                self.finish(self.check_resumed(self.resumed[task.index], task), logged=True)
            else:
                live.append(task)
        logged = [self.trials[t.index] for t in tasks if t.index in self.resumed]
        states = {}
        budgets = rungs(self.halving, max(t.epochs for t in tasks))
        for k, budget in enumerate(budgets):
            candidates = self.run_rung(live, budget, states)
            if k == len(budgets) - 1:
                break
            competing = candidates + [t for t in logged if reached(t, budget)]
            keep = math.ceil(len(competing) / self.halving["factor"])
            going_on = {t.index for t in sorted(competing, key=lambda t: t.key_at(budget))[:keep]}
            for trial in candidates:
                if trial.index not in going_on:
                    trial.status = "pruned"
                    states.pop(trial.index)
                    self.finish(trial)
            live = [t for t in live if t.index in going_on]

    def run_rung(self, tasks: list, budget: int, states: dict) -> list:
        """Run ``tasks`` to ``budget`` epochs in parallel; finished trials are recorded as
        they land; returns the others (which may go on), in index order."""
        futures = {self.pool.submit(self.job, self.shared, task, budget,
                                    states.get(task.index)): task
                   for task in sorted(tasks, key=lambda t: -expected_cost(t, budget))}
        self.pending = list(futures)
        going = []
        for future in self.pool.as_completed(list(futures)):
            trial, state = future.result()
            if state is None:
                states.pop(trial.index, None)
                self.finish(trial)
            else:
                states[trial.index] = state
                going.append(trial)
        self.pending = []
        return sorted(going, key=lambda t: t.index)

    def check_resumed(self, trial: Trial, task: TrialTask) -> Trial:
        if as_json(trial.params) != as_json(task.params) or trial.round != task.round:
            raise SpaceError(f"resume: trial {task.index} of the log has {trial.params} in "
                             f"round {trial.round}, this search samples {task.params} in "
                             f"round {task.round}; the log comes from another search "
                             f"(its space, seed, trials or rounds differ)")
        return trial

    def finish(self, trial: Trial, logged: bool = False) -> None:
        self.trials[trial.index] = trial
        if not logged:
            self.log.write(trial)
        if self.bar is not None:
            self.bar.update(1)
            best = min((t for t in self.trials.values() if t.status == "ok"
                        and t.dev_error is not None), key=Trial.key, default=None)
            if best is not None:
                self.bar.set_postfix(best_dev_error=f"{best.dev_error:.4g}",
                                     trial=best.index)

    def close(self) -> None:
        for future in self.pending:
            future.cancel()
        self.log.close()
        if self.bar is not None:
            self.bar.close()


def expected_cost(task: TrialTask, budget: int) -> float:
    """A guess at a trial's time, by which the longest are submitted first, so that none
    starts last and keeps one worker busy while the others idle: its epochs times the
    product of its integer hyperparameters but the batch size and epochs (widths, layer
    counts), which the work of an epoch grows with."""
    work = math.prod(v for name, v in task.params.items() if name not in
                     ("batch_size", "epochs") and isinstance(v, (int, np.integer))
                     and not isinstance(v, bool))
    return min(budget, task.epochs) * float(work)


def reached(trial: Trial, budget: int) -> bool:
    """Whether a logged trial completed a rung of ``budget`` epochs still in the running:
    a candidate there (an ok trial that ended exactly at it did not compete)."""
    if trial.status == "failed":
        return len(trial.curve) >= budget
    return len(trial.curve) > budget or (len(trial.curve) == budget
                                         and trial.status == "pruned")


def progress_bar(progress, total: int):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="trial", desc="search")
