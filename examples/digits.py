"""Handwritten digits, end to end, with the practitioner's workflow.

    pip install '.[demo]' && python examples/digits.py [--out out/]

On scikit-learn's bundled 8x8 digits (offline): split train/dev/test, fit the input
normalisation on the training part, train a network with batch norm, dropout and
Adam in generated C (augmenting the training images each epoch, stopping early on
the dev loss), diagnose bias and variance, check the test accuracy once, save the
learning curves, export the network as plain C, build the example C program in
examples/embed_c with the system compiler, run it on the test set and check that
its predictions equal the Python ones.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import dlc
from dlc import data
from dlc.callbacks import TrainMetrics

EMBED_C = Path(__file__).resolve().parent / "embed_c"
IMAGE_SHAPE = (8, 8)


def load_digits():
    from sklearn.datasets import load_digits as bundled
    X, y = bundled(return_X_y=True)
    return X.astype(np.float32), y


def build_net(X_train, seed: int) -> dlc.Model:
    """Normalisation fitted on the training part, then 64-128-64-10 with BN and dropout."""
    return dlc.Sequential([
        dlc.Input(X_train.shape[1]),
        data.fit_normalize(X_train),
        dlc.Dense(128), dlc.BatchNorm(), dlc.ReLU(), dlc.Dropout(keep_prob=0.8),
        dlc.Dense(64), dlc.BatchNorm(), dlc.ReLU(), dlc.Dropout(keep_prob=0.8),
        dlc.Dense(10), dlc.Softmax(),
    ], seed=seed)


def train(net, train_set, dev_set, seed: int, epochs: int, progress):
    trainer = dlc.compile(net, mode="train", loss="cross_entropy",
                          optimizer=dlc.Adam(lr=2e-3), l2=1e-3)
    stopper = dlc.EarlyStopping(monitor="dev_loss", patience=20)
    # Pixel noise helps here; whole-pixel shifts or crops (crop_padding=1, shift=1) cost
    # 1-3 points of accuracy: one pixel is an eighth of these tiny images.
    augment = data.ImageAugment(IMAGE_SHAPE, noise=0.5)
    history = trainer.fit(*train_set, epochs=epochs, batch_size=32, seed=seed, dev=dev_set,
                          callbacks=[TrainMetrics(*train_set), stopper], augment=augment,
                          progress=progress)
    return trainer, history, stopper


def export_and_run_c(net, X, out_dir: Path) -> tuple:
    """Export ``net``, build examples/embed_c against it, run it on ``X``:
    (predicted classes, probabilities) as printed by the C program."""
    model_dir, build_dir = out_dir / "digits_c", out_dir / "digits_c" / "build"
    exported = dlc.export_c(net, model_dir, name="digits")
    program = build_dir / "predict"
    program.unlink(missing_ok=True)
    subprocess.run(["make", "--no-print-directory", "-s", "-C", str(EMBED_C),
                    f"MODEL_DIR={model_dir.resolve()}", f"BUILD_DIR={build_dir.resolve()}"],
                   check=True)
    rows = model_dir / "test_rows.txt"
    np.savetxt(rows, X, fmt="%.9g")
    result = subprocess.run([str(program), str(rows)], check=True,
                            capture_output=True, text=True)
    table = np.loadtxt(result.stdout.splitlines(), ndmin=2)
    return exported, table[:, 0].astype(int), table[:, 1:]


def check_exported_c(net, X_test, y_test, out_dir: Path) -> dict:
    """Run the test set through the exported C program and through Python; compare."""
    python_probs = dlc.compile(net).predict(X_test)
    exported, c_classes, c_probs = export_and_run_c(net, X_test, out_dir)
    same = bool(np.array_equal(c_classes, python_probs.argmax(axis=1)))
    print(f"exported C: {exported.header} and {exported.source} "
          f"(workspace {exported.workspace_bytes} bytes, weights {exported.weights_bytes} bytes)")
    print(f"C program {EMBED_C.name}/predict on the {len(X_test)} test images: "
          f"{'the same classes as Python' if same else 'DIFFERENT classes from Python'}, "
          f"probabilities within {np.abs(c_probs - python_probs).max():.1e}; "
          f"its accuracy {np.mean(c_classes == y_test):.2%}")
    return {"python_probs": python_probs, "c_classes": c_classes, "c_probs": c_probs}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="out", help="directory for the plot and the C "
                        "export (default: out/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=200, help="at most this many epochs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if shutil.which(os.environ.get("CC", "cc")) is None or shutil.which("make") is None:
        sys.exit("this demo needs a C compiler (cc or $CC) and make on the PATH")

    X, y = load_digits()
    train_set, dev_set, test_set = data.split(X, y, ratios=(0.6, 0.2, 0.2), seed=args.seed,
                                              stratify=True)
    print(f"digits: {len(X)} images of 8x8 pixels; train {len(train_set[0])}, "
          f"dev {len(dev_set[0])}, test {len(test_set[0])}")
    check = data.check_same_distribution(dev_set[0], test_set[0])   # warns if they differ
    if check.same:
        print(check)

    net = build_net(train_set[0], args.seed)
    print(net)
    start = time.perf_counter()
    trainer, history, stopper = train(net, train_set, dev_set, args.seed, args.epochs,
                                      progress=False if args.no_progress else None)
    print(f"trained {len(history.epochs)} epochs in {time.perf_counter() - start:.1f} s "
          f"(compiling included); best dev loss {stopper.best:.4f} at epoch "
          f"{stopper.best_epoch}, weights restored")

    print("\nbias/variance diagnosis at the best epoch (baseline: humans make ~0.5% errors "
          "on digits):")
    diagnosis = dlc.diagnose(history, epoch=stopper.best_epoch, baseline_error=0.005)
    test_accuracy = trainer.evaluate(*test_set)["accuracy"]
    print(f"\ntest accuracy: {test_accuracy:.2%}")

    plot = dlc.plot_history(history, out_dir / "digits_learning_curves.png",
                            title="digits: 64-128-64-10, BN, dropout, Adam",
                            best_epoch=stopper.best_epoch)
    print(f"learning curves: {plot}")
    compared = check_exported_c(net, *test_set, out_dir)
    return dict(compared, test_accuracy=test_accuracy, diagnosis=diagnosis, history=history,
                best_epoch=stopper.best_epoch, plot=Path(plot), trainer=trainer, net=net,
                dev_set=dev_set, test_set=test_set)


if __name__ == "__main__":
    main()
