"""A binary classifier (sigmoid output) on scikit-learn's bundled breast-cancer data.

    pip install '.[demo]' && python examples/breast_cancer.py

30 measurements per tumour, malignant (0) or benign (1).  Split train/dev/test with
the classes stratified, normalise with the training statistics, train in generated
C with binary cross-entropy, Adam and L2, stop early on the dev loss, diagnose,
then check the test accuracy once.
"""
from __future__ import annotations

import argparse

import numpy as np

import dlc
from dlc import data
from dlc.callbacks import TrainMetrics


def load_breast_cancer():
    from sklearn.datasets import load_breast_cancer as bundled
    X, y = bundled(return_X_y=True)
    return X.astype(np.float32), y.reshape(-1, 1).astype(np.float32)


def build_net(X_train, seed: int) -> dlc.Model:
    return dlc.Sequential([
        dlc.Input(X_train.shape[1]),
        data.fit_normalize(X_train),
        dlc.Dense(16), dlc.ReLU(), dlc.Dropout(keep_prob=0.9),
        dlc.Dense(1, init="xavier"), dlc.Sigmoid(),
    ], seed=seed)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=200, help="at most this many epochs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    X, y = load_breast_cancer()
    train_set, dev_set, test_set = data.split(X, y, ratios=(0.6, 0.2, 0.2), seed=args.seed,
                                              stratify=True)
    print(f"breast cancer: {len(X)} tumours, {X.shape[1]} features; train "
          f"{len(train_set[0])}, dev {len(dev_set[0])}, test {len(test_set[0])}")
    check = data.check_same_distribution(dev_set[0], test_set[0])   # warns if they differ
    if check.same:
        print(check)

    net = build_net(train_set[0], args.seed)
    trainer = dlc.compile(net, mode="train", loss="binary_cross_entropy",
                          optimizer=dlc.Adam(lr=1e-3), l2=1e-2)
    stopper = dlc.EarlyStopping(monitor="dev_loss", patience=20, min_delta=1e-4)
    history = trainer.fit(*train_set, epochs=args.epochs, batch_size=32, seed=args.seed,
                          dev=dev_set, callbacks=[TrainMetrics(*train_set), stopper],
                          progress=False if args.no_progress else None)
    print(f"trained {len(history.epochs)} epochs; best dev loss {stopper.best:.4f} at epoch "
          f"{stopper.best_epoch}, weights restored")

    print("\nbias/variance diagnosis at the best epoch:")
    diagnosis = dlc.diagnose(history, epoch=stopper.best_epoch)
    test_accuracy = trainer.evaluate(*test_set)["accuracy"]
    print(f"\ntest accuracy: {test_accuracy:.2%}")

    probs = dlc.compile(net).predict(test_set[0])
    compiled_accuracy = float(np.mean((probs > 0.5) == (test_set[1] > 0.5)))
    print(f"compiled inference library accuracy: {compiled_accuracy:.2%}")
    return {"test_accuracy": test_accuracy, "compiled_accuracy": compiled_accuracy,
            "diagnosis": diagnosis, "history": history, "net": net, "test_set": test_set}


if __name__ == "__main__":
    main()
