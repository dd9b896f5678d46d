"""The arithmetic of quantization parameters: an activation range to a scale and zero
point, a weight matrix to int8 with one scale per output channel, and a real
multiplier to the fixed-point multiplier and shift the requantization applies."""
from __future__ import annotations

import math

import numpy as np

from ..ops import INT_RANGES

WEIGHT_MAX = 127        # weights are symmetric: [-127, 127], zero point 0
MULTIPLIER_BITS = 31


def activation_params(lo: float, hi: float, dtype: str) -> tuple:
    """(scale, zero_point) mapping [lo, hi], widened to hold 0 (so that zero, the value of
    padding and of a ReLU's cut, is exact), onto the range of ``dtype``."""
    qmin, qmax = INT_RANGES[dtype]
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / (qmax - qmin)
    if not scale > 0 or not math.isfinite(scale):
        return 1.0, 0 if qmin < 0 <= qmax else qmin
    zero_point = int(np.clip(round(qmin - lo / scale), qmin, qmax))
    return float(scale), zero_point


def weight_scales(W: np.ndarray, per_channel: bool) -> np.ndarray:
    """Scales of the columns (output channels) of W, or one for all, max |W| / 127
    (1 for a column of zeros)."""
    peak = np.abs(W).max(axis=0) if per_channel else np.full(W.shape[1], np.abs(W).max())
    return np.where(peak > 0, peak / WEIGHT_MAX, 1.0).astype(np.float64)


CLIP_CANDIDATES = np.linspace(1.0, 0.2, 33)     # fractions of max |W| tried by "mse"


def output_mse_scales(W: np.ndarray, X: np.ndarray, per_channel: bool) -> np.ndarray:
    """Weight scales clipped to the fraction of max |W| whose quantization errs least on
    the layer's output for the calibration inputs X: || X (W - Q(W)) ||^2 per output
    channel (over all channels when not ``per_channel``).  Clipping the few large weights
    of a rare input (say a border pixel that normalization divided by a tiny deviation)
    gives every other weight more levels."""
    full = weight_scales(W, per_channel)
    best, best_error = full, np.full(W.shape[1], np.inf)
    for fraction in CLIP_CANDIDATES:
        scales = full * fraction
        error = ((X @ (W - quantize_weights(W, scales) * scales)) ** 2).sum(axis=0)
        if not per_channel:
            error = np.full(W.shape[1], error.sum())
        better = error < best_error
        best, best_error = np.where(better, scales, best), np.where(better, error, best_error)
    return best


def quantize_weights(W: np.ndarray, scales: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(W.astype(np.float64) / scales), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)


def quantize_multiplier(real: np.ndarray) -> tuple:
    """(multiplier, shift) int32 vectors with real ~= multiplier * 2^-(31 + shift),
    the multiplier in [2^30, 2^31) (a tiny real gets shift 31 and a smaller one);
    the requantization needs 31 + shift in [1, 62]."""
    mantissa, exponent = np.frexp(np.asarray(real, np.float64))     # real = m 2^e, m in [0.5, 1)
    multiplier = np.rint(mantissa * 2.0 ** MULTIPLIER_BITS).astype(np.int64)
    carry = multiplier == 2 ** MULTIPLIER_BITS
    multiplier[carry] //= 2
    shift = -(exponent + carry).astype(np.int64)
    if (shift < -30).any():
        raise ValueError(f"a requantization multiplier of {float(np.max(real)):.3g} is too "
                         f"large (at most 2^30)")
    tiny = shift > 31
    multiplier[tiny] = np.rint(np.asarray(real, np.float64)[tiny] * 2.0 ** 62).astype(np.int64)
    shift[tiny] = 31
    return multiplier.astype(np.int32), shift.astype(np.int32)
