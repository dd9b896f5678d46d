"""A random search on the digits, in dlc and in PyTorch eager, on 1 and 2 processes.

    python benchmarks/tune.py [--configs 20,100] [--processes 1,2] [--epochs 20]
                              [--backend runner] [--quick] [--overhead] [--timeline]

The same sampled configurations (hidden width 16-256 on a log scale, lr, L2, keep_prob,
batch size), the same epochs, the dev error after every epoch, one thread per process.
dlc runs ``dlc.tune.search`` (its trials on the runner unless ``--backend c``) with a
fresh build cache for every row, on a one-thread executor for 1 process and its own
process pool otherwise; PyTorch runs the trials on as many processes, forked once torch
is imported, on one thread and warm (so no row times its lazy imports), widest first as dlc's search
submits them.  ``--timeline`` shows where dlc's time went: the CPU and busy seconds of
each worker and the makespan against its ideal.  The time the C compiler
takes is measured around the build cache's compile step, in every process.  First, the
cold build of the runner alone (what ``dlc prebuild`` does once per machine).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dlc  # noqa: E402
import dlc.build  # noqa: E402
from dlc import tune  # noqa: E402

SPACE = {"hidden": tune.IntLogUniform(16, 256), "lr": tune.LogUniform(1e-4, 1e-1),
         "l2": tune.LogUniform(1e-6, 1e-2), "keep_prob": tune.Uniform(0.5, 1.0),
         "batch_size": tune.Choice([32, 64, 128])}


def digits():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = ((X - X.mean(axis=0)) / (X.std(axis=0) + 1e-8)).astype(np.float32)
    (Xt, yt), (Xd, yd), _ = dlc.data.split(X, y, seed=0, stratify=True)
    return Xt, yt, Xd, yd


def build(p):
    net = dlc.Sequential([dlc.Input(64), dlc.Dense(p["hidden"]), dlc.ReLU(),
                          dlc.Dropout(keep_prob=p["keep_prob"]), dlc.Dense(10), dlc.Softmax()],
                         seed=p.seed)
    return dlc.compile(net, mode="train", optimizer=dlc.Adam(lr=p["lr"]), l2=p["l2"])


COMPILE_LOG = "DLC_BENCH_COMPILE_LOG"       # where every process appends its compile times


def timed_compile(*args, **kwargs):
    start = time.perf_counter()
    try:
        return ORIGINAL_COMPILE(*args, **kwargs)
    finally:
        with open(os.environ[COMPILE_LOG], "a") as log:
            log.write(f"{time.perf_counter() - start}\n")


ORIGINAL_COMPILE = dlc.build._compile
dlc.build._compile = timed_compile      # module level: the pool's processes time theirs too


TIMELINE_LOG = "DLC_BENCH_TIMELINE_LOG"     # where every process appends its trials' spans


def timed_trial(*args, **kwargs):
    """train_trial, its span (pid, wall start and end on the machine-wide monotonic
    clock, CPU seconds of the process) appended to the timeline log."""
    start, cpu = time.perf_counter(), time.process_time()
    try:
        return ORIGINAL_TRIAL(*args, **kwargs)
    finally:
        with open(os.environ.get(TIMELINE_LOG, os.devnull), "a") as log:
            log.write(f"{os.getpid()} {start} {time.perf_counter()} "
                      f"{time.process_time() - cpu}\n")


SEARCH = sys.modules["dlc.tune.search"]      # the module (dlc.tune.search is the function)
ORIGINAL_TRIAL = SEARCH.train_trial
SEARCH.train_trial = timed_trial


def compile_times(path: str) -> list:
    with open(path) as log:
        return [float(line) for line in log if line.strip()]


def run_dlc(data, configs: int, epochs: int, processes: int, backend: str, warm: bool,
            start_method: str = "fork"):
    """The search with a fresh build cache, holding the runner already when ``warm`` (as
    after dlc's first training on the machine: the runner is built once per dtype and
    flags, then read from the cache)."""
    Xt, yt, Xd, yd = data
    with tempfile.TemporaryDirectory() as cache:
        os.environ["DLC_CACHE_DIR"] = cache
        os.environ[COMPILE_LOG] = os.path.join(cache, "compile-seconds.log")
        dlc.build._loaded.clear()           # nothing built in this process counts either
        if warm:
            tune.prebuild("float32")        # as `dlc prebuild` does once per machine
            dlc.build._loaded.clear()       # read from the cache, as a new process would
        open(os.environ[COMPILE_LOG], "w").close()
        os.environ[TIMELINE_LOG] = os.path.join(cache, "timeline.log")
        open(os.environ[TIMELINE_LOG], "w").close()
        if processes == 1:
            pool = ThreadPoolExecutor(1)
        elif start_method == "search":      # the search's own pool, over the cores
            pool = contextlib.nullcontext()
        else:
            pool = ProcessPoolExecutor(processes,
                                       mp_context=multiprocessing.get_context(start_method))
        with pool:
            start, cpu = time.perf_counter(), time.process_time()
            result = tune.search(build, SPACE, train=(Xt, yt), dev=(Xd, yd), trials=configs,
                                 rounds=1, epochs=epochs, seed=0, executor=pool.__enter__(),
                                 patience=None, progress=False, backend=backend)
            seconds = time.perf_counter() - start
            parent_cpu = time.process_time() - cpu
        timeline = Timeline(start, seconds, parent_cpu, processes, os.environ[TIMELINE_LOG])
        return result, seconds, compile_times(os.environ[COMPILE_LOG]), timeline


class Timeline:
    """Where a search's wall time went: each worker's trials (pid -> [(start, end, cpu)]
    on the monotonic clock, which Linux shares between processes)."""

    def __init__(self, start, seconds, parent_cpu, processes, path):
        self.start, self.seconds, self.parent_cpu = start, seconds, parent_cpu
        self.processes = processes
        self.workers = {}
        with open(path) as log:
            for line in log:
                pid, begin, end, cpu = line.split()
                self.workers.setdefault(pid, []).append((float(begin), float(end), float(cpu)))

    def critical_cpu(self) -> float:
        """The CPU seconds of the busiest worker's trials: the makespan of an idle
        machine, start-up aside."""
        return max(sum(c for _, _, c in spans) for spans in self.workers.values())

    def summary(self) -> str:
        """busy: the sum of the trials' wall seconds in each worker; ideal: all of them
        spread evenly over the processes; first: from the search's start to each
        worker's first trial (pool start-up); idle tail: from each worker's last trial to
        the search's end."""
        end = self.start + self.seconds
        busy = {pid: sum(e - b for b, e, _ in spans) for pid, spans in self.workers.items()}
        worker_cpu = [sum(c for _, _, c in spans) for spans in self.workers.values()]
        cpu = sum(c for spans in self.workers.values() for _, _, c in spans)
        ideal = sum(busy.values()) / self.processes
        first = [min(b for b, _, _ in spans) - self.start for spans in self.workers.values()]
        tail = [end - max(e for _, e, _ in spans) for spans in self.workers.values()]
        counts = [len(spans) for spans in self.workers.values()]
        return (f"makespan {self.seconds:.2f} s, ideal {ideal:.2f} s (makespan/ideal "
                f"{self.seconds / ideal:.2f}); trials' CPU {cpu:.2f} s of "
                f"{sum(busy.values()):.2f} s busy; per worker: trials {counts}, busy "
                f"{[round(b, 2) for b in busy.values()]} s, CPU "
                f"{[round(c, 2) for c in worker_cpu]} s, first trial at "
                f"{[round(f, 2) for f in first]} s, idle tail {[round(t, 2) for t in tail]} s;"
                f" parent CPU {self.parent_cpu:.2f} s")


def cold_build() -> tuple:
    """(wall seconds, compiler CPU seconds, translation units) of building the float32
    runner into an empty cache, as `dlc prebuild` does."""
    with tempfile.TemporaryDirectory() as cache:
        os.environ["DLC_CACHE_DIR"] = cache
        os.environ[COMPILE_LOG] = os.path.join(cache, "compile-seconds.log")
        dlc.build._loaded.clear()
        units = []
        real = dlc.build.run_compiler
        dlc.build.run_compiler = lambda command: units.append(command) or real(command)
        cpu = os.times()
        start = time.perf_counter()
        try:
            tune.prebuild("float32")
        finally:
            dlc.build.run_compiler = real
        seconds = time.perf_counter() - start
        after = os.times()
        dlc.build._loaded.clear()
        compiler_cpu = (after.children_user - cpu.children_user
                        + after.children_system - cpu.children_system)
        return seconds, compiler_cpu, sum("-c" in c for c in units)


class InThisThread(Executor):
    def submit(self, fn, *args, **kwargs):
        future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def overhead(data, configs: int, epochs: int, repeats: int = 5) -> tuple:
    """(CPU ms per trial, of which in the runner's C entry points) of the warm search on
    one thread in this process: the median of ``repeats`` searches, the C measured by
    cProfile on the process-time clock (CPU time, so other load on the machine counts
    little)."""
    import cProfile
    import pstats
    import statistics
    Xt, yt, Xd, yd = data
    tune.prebuild("float32")

    def once():     # in this thread, where the profiler sees the trials
        tune.search(build, SPACE, train=(Xt, yt), dev=(Xd, yd), trials=configs, rounds=1,
                    epochs=epochs, seed=0, executor=InThisThread(), patience=None,
                    progress=False)
    once()
    cpu = []
    for _ in range(repeats):
        start = time.process_time()
        once()
        cpu.append(time.process_time() - start)
    profile = cProfile.Profile(time.process_time)
    profile.runcall(once)
    in_c = sum(row[2] for (_, _, name), row in pstats.Stats(profile).stats.items()
               if "dlc_runner_" in name)
    return statistics.median(cpu) / configs * 1e3, in_c / configs * 1e3


def torch_one_thread():
    """torch imported and on one thread (intra-op)."""
    import torch
    torch.set_num_threads(1)
    return torch


def torch_warm_up() -> None:
    """torch imported, on one thread, and one Adam step taken (the first imports much of
    torch lazily: about 4 s), before the clock starts, in this process and so in the
    pool's workers forked from it: no row times that."""
    torch = torch_one_thread()
    layer = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.zeros(1, 2)).sum().backward()
    optimizer.step()


TORCH_DATA = None       # the digits in a worker of the PyTorch pool, shipped once


def torch_worker(data) -> None:
    global TORCH_DATA
    TORCH_DATA = data
    torch_one_thread()


def torch_trial(params: dict, seed: int, epochs: int, data=None) -> float:
    """One configuration in PyTorch eager: the best dev error over its epochs."""
    torch = torch_one_thread()
    assert torch.get_num_threads() == 1
    Xt, yt, Xd, yd = (torch.from_numpy(np.asarray(a)) for a in (data or TORCH_DATA))
    yt, yd = yt.long(), yd.long()
    p = params
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(64, p["hidden"]), torch.nn.ReLU(),
                              torch.nn.Dropout(1 - p["keep_prob"]),
                              torch.nn.Linear(p["hidden"], 10))
    opt = torch.optim.Adam(net.parameters(), lr=p["lr"])
    g = torch.Generator().manual_seed(seed)
    best = 1.0
    for _ in range(epochs):
        net.train()
        for rows in torch.randperm(len(Xt), generator=g).split(p["batch_size"]):
            loss = torch.nn.functional.cross_entropy(net(Xt[rows]), yt[rows])
            penalty = sum((m.weight ** 2).sum() for m in net if hasattr(m, "weight"))
            loss = loss + p["l2"] / (2 * len(rows)) * penalty
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            best = min(best, float((net(Xd).argmax(1) != yd).float().mean()))
    return best


def run_torch(data, trials, epochs: int, processes: int) -> tuple:
    """The trials' seconds and best dev errors, submitted widest first as dlc's search
    does; a pool's workers are forked from this process (as dlc's are), the data given
    them once."""
    torch_warm_up()
    trials = sorted(trials, key=lambda t: -t.params["hidden"])
    jobs = [(dict(t.params), t.seed, epochs) for t in trials]
    start = time.perf_counter()
    if processes == 1:
        errors = [torch_trial(*job, data=data) for job in jobs]
    else:
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"),
                                 initializer=torch_worker, initargs=(data,)) as pool:
            errors = list(pool.map(torch_trial, *zip(*jobs)))
    return time.perf_counter() - start, errors


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="20,100")
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--backend", default="runner", choices=("runner", "c"))
    parser.add_argument("--cache", default="cold,warm",
                        help="cold: an empty build cache; warm: one holding the runner")
    parser.add_argument("--quick", action="store_true", help="4 configurations, 3 epochs")
    parser.add_argument("--timeline", action="store_true",
                        help="after each row, where dlc's wall time went: each worker's busy "
                             "time, its first trial's start, its idle tail, the parent's CPU")
    parser.add_argument("--no-torch", action="store_true", help="dlc's rows only")
    parser.add_argument("--start-method", default="search",
                        choices=("search", "fork", "forkserver", "spawn"),
                        help="dlc's process pool: the search's own (executor=None, over "
                             "the cores; its time includes starting the workers) or a "
                             "ProcessPoolExecutor started by this method")
    parser.add_argument("--no-cold", action="store_true", help="no cold build of the runner")
    parser.add_argument("--overhead", action="store_true",
                        help="only the CPU per trial of the first --configs search, and how "
                             "much of it is Python")
    args = parser.parse_args(argv)
    if args.start_method == "search" and \
            set(map(int, args.processes.split(","))) - {1, os.cpu_count()}:
        parser.error(f"--start-method search runs on the {os.cpu_count()} cores: "
                     f"--processes 1,{os.cpu_count()}, or name a start method")
    epochs = 3 if args.quick else args.epochs
    config_counts = [4] if args.quick else [int(n) for n in args.configs.split(",")]
    data = digits()
    if args.overhead:
        with tempfile.TemporaryDirectory() as cache:
            os.environ["DLC_CACHE_DIR"] = cache
            os.environ[COMPILE_LOG] = os.path.join(cache, "compile-seconds.log")
            total, in_c = overhead(data, config_counts[0], epochs)
        print(f"{config_counts[0]} configurations, {epochs} epochs, 1 thread: {total:.1f} ms of "
              f"CPU per trial, {in_c:.1f} ms in the runner's C, {total - in_c:.1f} ms of Python")
        return
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    seconds, cpu, units = cold_build() if not args.no_cold else (math.nan,) * 3
    print(f"== cold build of the float32 runner (dlc prebuild, empty cache): {seconds:.2f} s wall, "
          f"{cpu:.2f} s of compiler CPU in {units} translation units on {os.cpu_count()} cores "
          f"(load average {load:.2f} before) ==")
    print(f"== random search on digits: {epochs} epochs per configuration, 1 thread per "
          f"process, dlc trials on backend {args.backend!r}, a fresh build cache per row ==")
    print(f"{'cache':>5} {'configs':>7} {'procs':>5} {'dlc s':>8} {'PyTorch s':>9} "
          f"{'PyTorch/dlc':>11} {'builds':>6} {'compile s':>9} {'compile share':>13} "
          f"{'dlc speedup':>11} {'PyTorch speedup':>15}  best dev error dlc/PyTorch")
    caches = args.cache.split(",") if args.backend == "runner" else ["cold"]
    rows = [(c, n, p) for n in config_counts for p in map(int, args.processes.split(","))
            for c in caches]
    torch_runs, dlc_runs, timelines = {}, {}, {}
    for cache, configs, processes in rows:
        result, dlc_seconds, compiles, timeline = run_dlc(data, configs, epochs, processes,
                                                args.backend, cache == "warm",
                                                args.start_method)
        dlc_runs[cache, configs, processes] = dlc_seconds
        if args.no_torch:
            torch_runs[configs, processes] = (math.nan, [math.nan])
        elif (configs, processes) not in torch_runs:
            torch_runs[configs, processes] = run_torch(data, result.trials, epochs, processes)
        torch_seconds, torch_errors = torch_runs[configs, processes]
        one = dlc_runs.get((cache, configs, 1)), torch_runs.get((configs, 1), (None,))[0]
        speedups = [f"{base / now:.2f}x" if base else "-"
                    for base, now in zip(one, (dlc_seconds, torch_seconds))]
        failed = [t.index for t in result.trials if t.status != "ok"]
        print(f"{cache:>5} {configs:7} {processes:5} {dlc_seconds:8.2f} {torch_seconds:9.2f} "
              f"{torch_seconds / dlc_seconds:10.2f}x {len(compiles):6} {sum(compiles):9.2f} "
              f"{sum(compiles) / dlc_seconds:13.1%} {speedups[0]:>11} {speedups[1]:>15}  "
              f"{result.best.dev_error:.4f}/{min(torch_errors):.4f}"
              + (f"; failed dlc trials {failed}" if failed else ""), flush=True)
        timelines[cache, configs, processes] = timeline
        if args.timeline:
            alone = timelines.get((cache, configs, 1))
            bound = (f"; CPU speedup {alone.critical_cpu() / timeline.critical_cpu():.2f}x "
                     f"(the 1-process row's trials' CPU / the busiest worker's)"
                     if alone and processes > 1 else "")
            print(f"      timeline (load {os.getloadavg()[0]:.2f}): {timeline.summary()}{bound}",
                  flush=True)
    print("compile share: the compiler's seconds (every process) / the search's wall time; "
          "cold: the search starts with an empty cache and builds the runner once, in the "
          "searching process, before the workers start; warm: `dlc prebuild` ran before. "
          "speedup: the 1-process wall time / this row's")


if __name__ == "__main__":
    main()
