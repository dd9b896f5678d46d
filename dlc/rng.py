"""The counter-based RNG behind dropout masks, mirrored bit for bit by runtime/rng.h.

SplitMix64 used as a hash: a key is mixed from (seed, step, stream) and element i
of a draw is ``mix(key + (i + 1) * GOLDEN)``.  Every mask is therefore a pure
function of (seed, step, layer, element), so the C backend and the reference draw
the same masks and a resumed run repeats an uninterrupted one exactly.
"""
from __future__ import annotations

import zlib

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK = (1 << 64) - 1


def mix(z):
    """The SplitMix64 finaliser, element-wise on uint64 (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def key(seed: int, step: int, stream: int) -> np.uint64:
    z = mix(np.uint64(int(seed) & _MASK))
    z = mix(z ^ np.uint64(int(step) & _MASK))
    return mix(z ^ np.uint64(int(stream) & _MASK))


def uniform(key_: np.uint64, n: int) -> np.ndarray:
    """n doubles in [0, 1): dlc_rng_bits (runtime/rng.h) times 2^-53, exactly."""
    counters = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        bits = mix(key_ + counters * GOLDEN)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def stream_id(layer_name: str) -> int:
    """A stable per-layer stream number (the same in every process)."""
    return zlib.crc32(layer_name.encode("utf-8"))


def dropout(x: np.ndarray, seed, step, keep_prob: float, stream: int) -> np.ndarray:
    """Inverted dropout of a (rows, n) array: element i kept when its uniform < keep_prob."""
    k = key(int(seed), int(step), stream)
    keep = uniform(k, x.size).reshape(x.shape) < keep_prob
    return np.where(keep, x * x.dtype.type(1.0 / keep_prob), x.dtype.type(0))
