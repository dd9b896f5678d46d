"""The runner (programs as data, C compiled once) against the specialised build (the
training step rendered and compiled per model) on the benchmark workloads.

    python benchmarks/runner.py [--quick] [--threads 1,2]

Training samples/s of one epoch (Adam, cross-entropy) at batch 64 and 256, and predict
latency at batch 1 and 256, float32; the two backends run interleaved, the median of the
runs is kept; the ratio is runner / specialised (1.00 = as fast).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dlc  # noqa: E402
from workloads import WORKLOADS, dlc_net  # noqa: E402

BACKENDS = ("c", "runner")
STEPS = {"small": 100, "mnist": 16, "wide": 8}


def interleaved(engines: dict, runs: int, min_seconds: float) -> dict:
    """Median seconds per call of each engine, the engines taking turns."""
    repeats = {}
    for name, fn in engines.items():
        fn()                                    # warm
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < min_seconds / 4 or n == 0:
            fn()
            n += 1
        repeats[name] = max(1, int(n * min_seconds / (time.perf_counter() - start) / 4) or 1)
    times = {name: [] for name in engines}
    for _ in range(runs):
        for name, fn in engines.items():
            start = time.perf_counter()
            for _ in range(repeats[name]):
                fn()
            times[name].append((time.perf_counter() - start) / repeats[name])
    return {name: statistics.median(t) for name, t in times.items()}


def bench(name: str, threads: int, runs: int, min_seconds: float) -> list:
    w = WORKLOADS[name]
    rng = np.random.default_rng(1)
    rows = []
    for batch in (64, 256):
        n = batch * STEPS[name]
        X = rng.normal(size=(n, w.sizes[0])).astype(np.float32)
        Y = rng.integers(0, w.sizes[-1], size=n)
        trainers = {b: dlc.compile(dlc_net(w), mode="train", backend=b, threads=threads,
                                   optimizer=dlc.Adam(lr=1e-3)) for b in BACKENDS}
        fit = interleaved({b: (lambda t=t: t.fit(X, Y, epochs=1, batch_size=batch,
                                                   progress=False))
                           for b, t in trainers.items()}, runs, min_seconds)
        models = {b: t.inference_model() for b, t in trainers.items()}
        Xp = np.ascontiguousarray(X[:batch])
        X1 = np.ascontiguousarray(X[:1])
        infer = interleaved({b: (lambda m=m: m.predict(Xp)) for b, m in models.items()},
                            runs, min_seconds)
        latency = interleaved({b: (lambda m=m: m.predict(X1)) for b, m in models.items()},
                              runs, min_seconds)
        rows.append((name, threads, batch, {b: n / fit[b] for b in BACKENDS},
                     {b: batch / infer[b] for b in BACKENDS},
                     {b: latency[b] * 1e6 for b in BACKENDS}))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--only", default=",".join(WORKLOADS))
    args = parser.parse_args(argv)
    runs, min_seconds = (3, 0.05) if args.quick else (7, 0.2)
    print("workload threads batch | train samples/s: specialised  runner  ratio | "
          "predict rows/s: specialised  runner  ratio | batch-1 us: specialised  runner")
    for name in args.only.split(","):
        for threads in map(int, args.threads.split(",")):
            for w, t, batch, fit, infer, lat in bench(name, threads, runs, min_seconds):
                print(f"{w:8} {t:7} {batch:5} | {fit['c']:12.0f} {fit['runner']:8.0f} "
                      f"{fit['runner'] / fit['c']:6.2f} | {infer['c']:12.0f} "
                      f"{infer['runner']:8.0f} {infer['runner'] / infer['c']:6.2f} | "
                      f"{lat['c']:10.1f} {lat['runner']:8.1f}", flush=True)


if __name__ == "__main__":
    main()
