"""Hyperparameter search on the digits: three rounds, coarse to fine.

    pip install '.[demo]' && python examples/tune_digits.py [--trials 24] [--out out/]

Random points (never a grid) over the learning rate and L2 on log scales, the hidden
units on a log scale, keep_prob and the mini-batch size; after each round the box
shrinks around the best trials; within a round, successive halving stops the worst two
thirds at each rung.  Prints the table and the best trial, writes the plot and the
table, then trains the best configuration on train + dev and checks the test accuracy
once.
"""
from __future__ import annotations

import argparse
import functools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import dlc
from dlc import data, tune

SPACE = {
    "lr": tune.LogUniform(1e-4, 1e-1),
    "hidden": tune.IntLogUniform(16, 256),
    "l2": tune.LogUniform(1e-6, 1e-1),
    "keep_prob": tune.Uniform(0.5, 1.0),
    "batch_size": tune.Choice([16, 32, 64, 128]),
}
SHOWN = ("index", "round", "status", "lr", "hidden", "l2", "keep_prob", "batch_size",
         "epochs", "dev_error", "train_error", "param_bytes", "seconds")


def load_digits():
    from sklearn.datasets import load_digits as bundled
    X, y = bundled(return_X_y=True)
    return X.astype(np.float32), y


def build(mean, var, p):
    """A trainer for one point of the space (module level, so worker processes can
    import it; the normalisation statistics come in through functools.partial)."""
    net = dlc.Sequential([
        dlc.Input(64), dlc.Normalize(mean=mean, var=var),
        dlc.Dense(p["hidden"]), dlc.ReLU(), dlc.Dropout(keep_prob=p["keep_prob"]),
        dlc.Dense(10), dlc.Softmax(),
    ], seed=p.seed)
    return dlc.compile(net, mode="train", optimizer=dlc.Adam(lr=p["lr"]), l2=p["l2"])


def print_table(rows) -> None:
    print("  ".join(f"{name:>10}" for name in SHOWN))
    for row in rows:
        print("  ".join(f"{shown(row[name]):>10}" for name in SHOWN))


def shown(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "-" if value is None else str(value)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=24, help="in all, over three rounds")
    parser.add_argument("--epochs", type=int, default=27, help="at most, per trial")
    parser.add_argument("--out", default="out", help="directory for the plot, table and log")
    parser.add_argument("--executor", choices=["processes", "threads"], default="processes",
                        help="a process pool over the cores (default) or threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    X, y = load_digits()
    train_set, dev_set, test_set = data.split(X, y, ratios=(0.6, 0.2, 0.2), seed=args.seed,
                                              stratify=True)
    mean, var = train_set[0].mean(axis=0), train_set[0].var(axis=0)
    build_point = functools.partial(build, mean, var)
    executor = ThreadPoolExecutor() if args.executor == "threads" else None
    result = tune.search(build_point, SPACE, train=train_set, dev=dev_set,
                         trials=args.trials, rounds=3, epochs=args.epochs, seed=args.seed,
                         halving=dict(min_epochs=max(1, args.epochs // 9), factor=3),
                         executor=executor, log=out / "search.jsonl",
                         progress=False if args.no_progress else None)
    if executor is not None:
        executor.shutdown()
    print_table(result.table())
    for r, box in enumerate(result.boxes):
        print(f"round {r + 1} box: " + ", ".join(f"{n} {s.describe()}" for n, s in box.items()))
    best = result.best
    print(f"best: trial {best.index}, dev error {best.dev_error:.2%} at epoch "
          f"{best.best_epoch}, " + ", ".join(f"{k}={shown(v)}" for k, v in best.params.items()))
    plot = tune.plot(result, out / "search.png", title="digits: coarse to fine")
    table = result.to_csv(out / "search.csv")
    print(f"wrote {plot} and {table}")

    # The chosen configuration, trained on train + dev for the best trial's epochs.
    X_all = np.concatenate([train_set[0], dev_set[0]])
    y_all = np.concatenate([train_set[1], dev_set[1]])
    trainer = build_point(tune.Params(best.params, seed=best.seed))
    trainer.fit(X_all, y_all, epochs=best.best_epoch, batch_size=best.params["batch_size"],
                seed=best.seed, progress=False)
    test_accuracy = trainer.evaluate(*test_set)["accuracy"]
    print(f"test accuracy of the best configuration trained on train + dev: "
          f"{test_accuracy:.2%}")
    return dict(result=result, test_accuracy=test_accuracy, plot=Path(plot),
                table=Path(table), trainer=trainer, test_set=test_set)


if __name__ == "__main__":
    main()
