"""The losses ``compile(net, mode="train", loss=...)`` knows, one entry each: the IR op
of the loss, the output layer fused into it, what its targets may hold, and the
metrics ``Trainer.evaluate`` reports for it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

TINY = np.finfo(np.float64).tiny


@dataclass(frozen=True)
class Loss:
    op: str                 # the IR op computing the loss of a mini-batch
    activation: str         # the final layer the op fuses (it reads the logits), or None
    metrics: Callable       # (P, T) -> {"loss": ..., ...} for inference outputs P, targets T
    class_labels: bool      # integer class labels are accepted, as one-hot targets
    probabilities: bool     # targets must lie in [0, 1]


def cross_entropy_metrics(P: np.ndarray, T: np.ndarray) -> dict:
    return {"loss": float(-(T * np.log(np.maximum(P, TINY))).sum() / P.shape[0]),
            "accuracy": argmax_accuracy(P, T)}


def binary_cross_entropy_metrics(P: np.ndarray, T: np.ndarray) -> dict:
    """The accuracy is thresholded at 0.5 per output."""
    loss = -(T * np.log(np.maximum(P, TINY)) + (1 - T) * np.log(np.maximum(1 - P, TINY)))
    return {"loss": float(loss.mean()), "accuracy": float(((P > 0.5) == (T > 0.5)).mean())}


def mse_metrics(P: np.ndarray, T: np.ndarray) -> dict:
    """mse, rmse, mae over all outputs and r2 averaged over the outputs, as scikit-learn's
    r2_score: a constant target column scores 1 if predicted exactly, else 0; with
    several outputs, "accuracy" as argmax agreement too."""
    error = P - T
    mse = float((error ** 2).mean())
    residual = (error ** 2).sum(axis=0)
    total = ((T - T.mean(axis=0)) ** 2).sum(axis=0)
    constant = total == 0
    r2 = np.where(constant, np.where(residual == 0, 1.0, 0.0),
                  1 - residual / np.where(constant, 1.0, total))
    metrics = {"loss": mse, "mse": mse, "rmse": float(np.sqrt(mse)),
               "mae": float(np.abs(error).mean()), "r2": float(r2.mean())}
    if P.shape[1] > 1:
        metrics["accuracy"] = argmax_accuracy(P, T)
    return metrics


def argmax_accuracy(P: np.ndarray, T: np.ndarray) -> float:
    return float((P.argmax(axis=1) == T.argmax(axis=1)).mean())


LOSSES = {
    "cross_entropy": Loss("softmax_cross_entropy", "softmax", cross_entropy_metrics,
                          class_labels=True, probabilities=True),
    "binary_cross_entropy": Loss("sigmoid_cross_entropy", "sigmoid",
                                 binary_cross_entropy_metrics, class_labels=False,
                                 probabilities=True),
    "mse": Loss("mse", None, mse_metrics, class_labels=False, probabilities=False),
}


def lookup_loss(loss) -> Loss:
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; use one of {sorted(LOSSES)}")
    return LOSSES[loss]
