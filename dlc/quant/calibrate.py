"""Calibration: the range [lo, hi] of an activation tensor that its scale covers, from the
values the float model computes on the calibration rows."""
from __future__ import annotations

import numpy as np

from ..ops import INT_RANGES
from .scales import activation_params

CALIBRATIONS = ("minmax", "percentile", "mse")
PERCENTILE = 99.99          # of the values, each side
MSE_CANDIDATES = 40         # clipping ranges tried, fractions of the min-max range
MSE_SAMPLE = 20000          # values the MSE search reads (a seeded sample)


def calibrated_range(values: np.ndarray, method: str, dtype: str) -> tuple:
    """(lo, hi) by ``method``: the extremes ("minmax"), the 0.01% and 99.99% percentiles
    ("percentile"), or the shrunk min-max range whose quantization of the values has
    the least mean squared error ("mse")."""
    values = np.asarray(values, np.float64).reshape(-1)
    if method == "minmax":
        return float(values.min()), float(values.max())
    if method == "percentile":
        return (float(np.percentile(values, 100 - PERCENTILE)),
                float(np.percentile(values, PERCENTILE)))
    return mse_range(values, dtype)


def fake_quantize(values: np.ndarray, lo: float, hi: float, dtype: str) -> np.ndarray:
    """The values after quantizing to [lo, hi] and back."""
    scale, zero = activation_params(lo, hi, dtype)
    qmin, qmax = INT_RANGES[dtype]
    return (np.clip(np.rint(values / scale) + zero, qmin, qmax) - zero) * scale


def mse_range(values: np.ndarray, dtype: str) -> tuple:
    if values.size > MSE_SAMPLE:
        values = np.random.default_rng(0).choice(values, MSE_SAMPLE, replace=False)
    lo, hi = float(values.min()), float(values.max())
    best, best_error = (lo, hi), np.inf
    for fraction in np.linspace(1.0, 0.3, MSE_CANDIDATES):
        error = np.mean((fake_quantize(values, lo * fraction, hi * fraction, dtype)
                         - values) ** 2)
        if error < best_error:
            best, best_error = (lo * fraction, hi * fraction), error
    return best
