"""Side-by-side timing: medians of interleaved runs, so drift and noise hit every peer alike."""
from __future__ import annotations

import statistics
import time


def calls_per_run(fn, min_seconds: float) -> int:
    """How many calls make one run last at least ``min_seconds`` (after one warm-up call)."""
    fn()
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or n >= 1 << 20:
            return n
        n = max(n * 2, int(n * min_seconds / max(elapsed, 1e-9) * 1.2))


def side_by_side(candidates: dict, runs: int, min_seconds: float, settle: float = 0.0) -> dict:
    """{name: median seconds per call}; candidates are zero-argument callables, timed in
    interleaved rounds.  A candidate that raises is reported as its exception.  Between
    two candidates the process sleeps ``settle`` seconds: with several threads, the
    workers one runtime leaves spinning (OpenMP, OpenBLAS: up to ~0.1 s) would otherwise
    steal the cores from the next."""
    plan, results = {}, {}
    for name, fn in candidates.items():
        try:
            plan[name] = calls_per_run(fn, min_seconds)
        except Exception as exc:     # noqa: BLE001 - a peer's failure is a table entry
            results[name] = exc
    samples = {name: [] for name in plan}
    for _ in range(runs):
        for name, n in plan.items():
            fn = candidates[name]
            time.sleep(settle)
            start = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - start) / n)
    results.update({name: statistics.median(s) for name, s in samples.items()})
    return {name: results[name] for name in candidates}
