"""Checks at the Python boundary: clear errors before any C runs."""
from __future__ import annotations

import numpy as np


def as_batch(X, n_features: int, dtype: np.dtype, what: str = "X") -> np.ndarray:
    """``X`` as a C-contiguous (batch, n_features) array of ``dtype``.

    Other real dtypes are converted (float64 -> float32 rounds); non-contiguous
    arrays are copied.  Raises for wrong rank, width, empty batch, non-real
    dtypes and NaN or inf.
    """
    array = np.asarray(X)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                     or array.dtype == bool) or np.iscomplexobj(array):
        raise TypeError(f"{what} must hold real numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        hint = f"; for one example use {what}.reshape(1, -1)" if array.ndim == 1 else ""
        raise ValueError(f"{what} must be a 2-D array (batch, {n_features}), "
                         f"got shape {array.shape}{hint}")
    if array.shape[1] != n_features:
        raise ValueError(f"{what} has {array.shape[1]} features per row, the model expects {n_features}")
    if array.shape[0] == 0:
        raise ValueError(f"{what} is an empty batch (0 rows)")
    array = np.ascontiguousarray(array, dtype=dtype)
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contains NaN or inf (first at row {first_bad_row(array)})")
    return array


def positive_int(value, what: str) -> int:
    """``value`` as an int, or a ValueError naming ``what`` (bools are not counts)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def first_bad_row(array: np.ndarray) -> int:
    return int(np.argmax(~np.isfinite(array).all(axis=1)))
