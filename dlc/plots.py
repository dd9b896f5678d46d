"""Learning curves as PNG (matplotlib is optional: imported only when plotting)."""
from __future__ import annotations

import os

import numpy as np

# panel -> (label, log key); accuracies are drawn as errors (1 - accuracy)
CURVES = {
    "cost": (("train cost (during the epoch)", "loss"), ("train cost", "train_loss"),
             ("dev cost", "dev_loss")),
    "error": (("train error (during the epoch)", "accuracy"), ("train error", "train_accuracy"),
              ("dev error", "dev_accuracy")),
}


def learning_curves(history) -> tuple:
    """(epochs, {"cost": {label: values}, "error": {label: values}}) for every series
    that all epochs of the history log."""
    logs_list = list(getattr(history, "epochs", history))
    if not logs_list:
        raise ValueError("learning curves: the history has no epochs")
    epochs = np.array([logs.get("epoch", i + 1) for i, logs in enumerate(logs_list)])
    panels = {}
    for panel, curves in CURVES.items():
        panels[panel] = {}
        for label, key in curves:
            if all(key in logs for logs in logs_list):
                values = np.array([float(logs[key]) for logs in logs_list])
                panels[panel][label] = 1 - values if panel == "error" else values
    return epochs, panels


def plot_history(history, path, title: str = None, best_epoch: int = None) -> str:
    """Save the learning curves of a fit history to ``path`` (PNG): cost per epoch on
    the left, error (1 - accuracy) on the right (log scale when all errors are
    positive).  ``best_epoch`` (e.g. ``EarlyStopping.best_epoch``) is marked.
    Returns ``path``."""
    try:
        from matplotlib.figure import Figure   # no pyplot: no global state, no GUI backend
    except ImportError as exc:
        raise ImportError("plot_history needs matplotlib: pip install 'dlc[demo]'") from exc
    epochs, panels = learning_curves(history)
    fig = Figure(figsize=(10, 4), layout="tight")
    for ax, (panel, curves) in zip(fig.subplots(1, 2), panels.items()):
        for label, values in curves.items():
            ax.plot(epochs, values, label=label)
        if panel == "error" and curves and min(v.min() for v in curves.values()) > 0:
            ax.set_yscale("log")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle="--", label="best epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel(panel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    if title:
        fig.suptitle(title)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path
