"""A random search on the digits, in dlc and in PyTorch eager, on one process.

    python benchmarks/tune.py [--configs 20] [--epochs 20] [--quick]

The same sampled configurations (hidden width 16-256 on a log scale, lr, L2, keep_prob,
batch size), the same epochs, the dev error after every epoch, one thread each.  dlc
runs ``dlc.tune.search`` on a one-thread executor with a fresh build cache; the time
its C compiler takes is measured around the build cache's compile step.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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


class CompileClock:
    """Seconds spent in the build cache's compile step (cache misses only)."""

    def __init__(self):
        self.seconds, self.builds, self._compile = 0.0, 0, dlc.build._compile

    def __enter__(self):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return self._compile(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.builds += 1
        dlc.build._compile = timed
        return self

    def __exit__(self, *exc):
        dlc.build._compile = self._compile


def run_dlc(data, configs: int, epochs: int):
    Xt, yt, Xd, yd = data
    with tempfile.TemporaryDirectory() as cache, ThreadPoolExecutor(1) as one:
        os.environ["DLC_CACHE_DIR"] = cache
        dlc.build._loaded.clear()
        with CompileClock() as clock:
            start = time.perf_counter()
            result = tune.search(build, SPACE, train=(Xt, yt), dev=(Xd, yd), trials=configs,
                                 rounds=1, epochs=epochs, seed=0, executor=one, patience=None,
                                 progress=False)
            seconds = time.perf_counter() - start
    return result, seconds, clock


def run_torch(data, trials, epochs: int) -> tuple:
    import torch
    torch.set_num_threads(1)
    Xt, yt, Xd, yd = (torch.from_numpy(np.asarray(a)) for a in data)
    yt, yd = yt.long(), yd.long()
    start = time.perf_counter()
    errors = []
    for trial in trials:
        p = trial.params
        torch.manual_seed(trial.seed)
        net = torch.nn.Sequential(torch.nn.Linear(64, p["hidden"]), torch.nn.ReLU(),
                                  torch.nn.Dropout(1 - p["keep_prob"]),
                                  torch.nn.Linear(p["hidden"], 10))
        opt = torch.optim.Adam(net.parameters(), lr=p["lr"])
        g = torch.Generator().manual_seed(trial.seed)
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
        errors.append(best)
    return time.perf_counter() - start, errors


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="4 configurations, 3 epochs")
    args = parser.parse_args(argv)
    configs, epochs = (4, 3) if args.quick else (args.configs, args.epochs)
    data = digits()
    result, dlc_seconds, clock = run_dlc(data, configs, epochs)
    torch_seconds, torch_errors = run_torch(data, result.trials, epochs)
    failed = [t.index for t in result.trials if t.status != "ok"]
    print(f"== random search on digits: {configs} configurations x {epochs} epochs, "
          f"1 process, 1 thread ==")
    print(f"dlc      {dlc_seconds:8.2f} s   ({clock.builds} C builds, {clock.seconds:.2f} s "
          f"compiling = {clock.seconds / dlc_seconds:.0%} of the search)")
    print(f"PyTorch  {torch_seconds:8.2f} s")
    print(f"PyTorch / dlc = {torch_seconds / dlc_seconds:.2f}x  (dlc without compiling: "
          f"{torch_seconds / max(dlc_seconds - clock.seconds, 1e-9):.1f}x)")
    print(f"best dev error: dlc {result.best.dev_error:.4f}, PyTorch {min(torch_errors):.4f}"
          + (f"; failed dlc trials {failed}" if failed else ""))


if __name__ == "__main__":
    main()
