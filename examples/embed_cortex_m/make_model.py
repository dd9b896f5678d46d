"""Trains a small digits classifier (64-32-10) and writes it with dlc.save, and a few test
rows to run it on:  python make_model.py MODEL.dlc ROWS.txt"""
import sys

import numpy as np
from sklearn.datasets import load_digits

import dlc


def main(model_path, rows_path):
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32) / 16
    net = dlc.Sequential([dlc.Input(64), dlc.Dense(32), dlc.ReLU(), dlc.Dense(10),
                          dlc.Softmax()], seed=0)
    trainer = dlc.compile(net, mode="train", loss="cross_entropy", optimizer=dlc.Adam(lr=0.01))
    trainer.fit(X[:1500], y[:1500], epochs=30, batch_size=64, seed=0, progress=False)
    dlc.save(net, model_path)
    np.savetxt(rows_path, X[1500:1520], fmt="%.9g")
    accuracy = (dlc.compile(net).predict(X[1500:]).argmax(axis=1) == y[1500:]).mean()
    print(f"wrote {model_path} (test accuracy {accuracy:.3f}) and 20 rows to {rows_path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
