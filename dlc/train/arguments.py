"""The checks of ``fit``'s arguments beyond ``dlc.checks``: targets, the batch size
and callbacks, each with an error that names the argument."""
from __future__ import annotations

from numbers import Integral

import numpy as np

from ..checks import as_array, cast_finite, check_int, check_real_dtype, first_bad_row
from .losses import lookup_loss

CALLBACK_METHODS = ("on_train_begin", "on_epoch_end", "on_train_end")


def as_targets(Y, n_rows: int, n_out: int, loss: str, dtype, what: str = "Y") -> np.ndarray:
    """Targets as a (n_rows, n_out) array: integer class labels become one-hot for
    cross-entropy; a vector is one column for a single-output network."""
    Y = as_array(Y, what)
    check_real_dtype(Y, what)
    if Y.ndim not in (1, 2) or Y.shape[0] != n_rows:
        raise ValueError(f"{what} should have {n_rows} rows (one per example in X), "
                         f"got shape {Y.shape}")
    if not np.isfinite(Y).all():
        raise ValueError(f"{what} contains NaN or inf (first at row "
                         f"{first_bad_row(Y.reshape(n_rows, -1))})")
    kind = lookup_loss(loss)
    if kind.class_labels and (Y.ndim == 1 or (Y.shape[1] == 1 and n_out > 1)):
        return one_hot(Y.reshape(-1), n_out, dtype, what)
    if Y.ndim == 1:
        if n_out != 1:
            raise ValueError(f"{what} is a vector, but the network has {n_out} outputs; "
                             f"give {what} with shape ({n_rows}, {n_out})")
        Y = Y.reshape(-1, 1)
    if Y.shape[1] != n_out:
        raise ValueError(f"{what} has {Y.shape[1]} columns, the network has {n_out} outputs")
    if kind.probabilities and ((Y < 0) | (Y > 1)).any():
        raise ValueError(f"{what} for {loss} must lie in [0, 1] (probabilities or one-hot), "
                         f"got values in [{Y.min()}, {Y.max()}]")
    return cast_finite(Y, dtype, what)


def one_hot(labels: np.ndarray, n_classes: int, dtype, what: str) -> np.ndarray:
    fractional = labels != np.round(labels)
    if fractional.any():
        raise ValueError(f"{what} class labels must be integers, got {labels[fractional][0]} "
                         f"at row {int(np.argmax(fractional))}")
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        raise ValueError(f"{what} has label {labels[bad][0]} at row {int(np.argmax(bad))}; "
                         f"labels must be in [0, {n_classes}) for {n_classes} outputs")
    Y = np.zeros((labels.size, n_classes), dtype)
    Y[np.arange(labels.size), labels.astype(np.int64)] = 1
    return Y


def check_batch_size(batch_size, n_rows: int) -> int:
    note = "at most the number of examples"
    if isinstance(batch_size, Integral) and batch_size > n_rows:
        note += (f"; use batch_size={n_rows} for full-batch training, or leave it out: 64, "
                 f"or the number of rows when there are fewer")
    return check_int(batch_size, "batch_size", low=1, high=n_rows, note=note)


def as_callbacks(callbacks) -> list:
    """A callback or an iterable of callbacks, as a list; anything else is a TypeError."""
    if callbacks is None:
        return []
    if is_callback(callbacks):
        return [callbacks]
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be a callback or a list of callbacks, got "
                        f"{callbacks!r}") from None
    for i, cb in enumerate(callbacks):
        if not is_callback(cb):
            raise TypeError(f"callbacks[{i}] is {cb!r}, which has none of the callback "
                            f"methods {list(CALLBACK_METHODS)}")
    return callbacks


def is_callback(obj) -> bool:
    return any(callable(getattr(obj, name, None)) for name in CALLBACK_METHODS)
