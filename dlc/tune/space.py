"""Search spaces: one scale per hyperparameter, sampled from a seeded NumPy Generator.

Each scale maps its values to the coordinate it is uniform in (the value itself, its
log, or log(1 - value) for betas) and shrinks in that coordinate: ``shrunk(points,
best, factor)`` is a box ``factor`` times as wide, centred on the span of ``points``,
moved to contain ``best`` and kept inside the old box, so successive boxes nest.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral

import numpy as np

from ..checks import check_fraction, check_int, check_real, plain, shown


class SpaceError(ValueError):
    """A search space that cannot be searched, or a build reading a name not in it."""


class Scale:
    """A range of real values sampled uniformly in ``to_scale`` coordinates."""

    log = False             # plotted on a log axis (of the value, or of 1 - value)

    def __init__(self, low, high):
        self.low, self.high = self._check_bounds(low, high)

    def _check_bounds(self, low, high) -> tuple:
        name = type(self).__name__
        low, high = check_real(low, f"{name} low"), check_real(high, f"{name} high")
        if low >= high:
            raise SpaceError(f"{name} needs low < high, got low={low:g}, high={high:g}")
        return low, high

    # the coordinate the scale is uniform in; subclasses override both
    def to_scale(self, x):
        return np.asarray(x, dtype=np.float64)

    def from_scale(self, u):
        return np.asarray(u, dtype=np.float64)

    def scale_bounds(self) -> tuple:
        a, b = float(self.to_scale(self.low)), float(self.to_scale(self.high))
        return min(a, b), max(a, b)

    def sample(self, rng: np.random.Generator):
        a, b = self.scale_bounds()
        value = float(self.from_scale(rng.uniform(a, b)))
        return min(max(value, self.low), self.high)     # rounding in exp/log stays inside

    def contains(self, value) -> bool:
        return self.low <= value <= self.high

    def shrunk(self, points, best, factor: float) -> "Scale":
        lo, hi = shrunk_interval(self.scale_bounds(), self.to_scale(points),
                                 float(self.to_scale(best)), factor)
        low, high = sorted((float(self.from_scale(lo)), float(self.from_scale(hi))))
        return self._with_bounds(max(low, self.low), min(high, self.high))

    def _with_bounds(self, low, high) -> "Scale":
        box = object.__new__(type(self))
        box.__dict__.update(self.__dict__, low=low, high=high)
        return box

    def describe(self) -> str:
        return f"[{self.low:.4g}, {self.high:.4g}]"

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.__dict__ == self.__dict__

    def __repr__(self) -> str:
        return f"{type(self).__name__}({plain(self.low)!r}, {plain(self.high)!r})"


class Uniform(Scale):
    """A real in [low, high], uniform."""


class LogScale:
    """Mixed into a scale whose coordinate is log x: its bounds must be positive."""

    log = True

    def _check_bounds(self, low, high) -> tuple:
        low, high = super()._check_bounds(low, high)
        if low <= 0:
            raise SpaceError(f"{type(self).__name__} needs 0 < low (a log scale), got "
                             f"low={low:g}")
        return low, high

    def to_scale(self, x):
        return np.log(np.asarray(x, dtype=np.float64))

    def from_scale(self, u):
        return np.exp(np.asarray(u, dtype=np.float64))


class LogUniform(LogScale, Scale):
    """A real in [low, high], 0 < low, uniform in log: as many draws per decade."""


class OneMinusLogUniform(Scale):
    """A real in [low, high] within [0, 1) whose 1 - value is log-uniform: a beta of
    0.9 .. 0.999 averages over 10 .. 1000 steps, each decade as likely."""

    log = True

    def _check_bounds(self, low, high) -> tuple:
        name = type(self).__name__
        low = check_fraction(low, f"{name} low", high_open=True)
        high = check_fraction(high, f"{name} high", high_open=True)
        return super()._check_bounds(low, high)

    def to_scale(self, x):
        return np.log1p(-np.asarray(x, dtype=np.float64))

    def from_scale(self, u):
        return -np.expm1(np.asarray(u, dtype=np.float64))


class IntUniform(Scale):
    """An integer in [low, high] (both included), each equally likely."""

    def _check_bounds(self, low, high) -> tuple:
        name = type(self).__name__
        low, high = check_int(low, f"{name} low"), check_int(high, f"{name} high")
        if low >= high:
            raise SpaceError(f"{name} needs low < high, got low={low}, high={high}")
        return low, high

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high + 1))

    def shrunk(self, points, best, factor: float) -> "Scale":
        lo, hi = shrunk_interval(self.scale_bounds(), self.to_scale(points),
                                 float(self.to_scale(best)), factor)
        low, high = sorted((float(self.from_scale(lo)), float(self.from_scale(hi))))
        low = max(self.low, min(math.floor(low), best))      # outward, and keep best
        high = min(self.high, max(math.ceil(high), best))
        return self._with_bounds(int(low), int(high))

    def describe(self) -> str:
        return f"[{self.low}, {self.high}]"


class IntLogUniform(LogScale, IntUniform):
    """An integer in [low, high], 0 < low, uniform in log: floor(exp(u)) with u uniform
    in [log low, log(high + 1)), so k is drawn with probability log((k + 1) / k) / log((high + 1) / low)."""

    def sample(self, rng: np.random.Generator) -> int:
        u = rng.uniform(math.log(self.low), math.log(self.high + 1))
        return int(min(max(math.floor(math.exp(u)), self.low), self.high))


class Choice:
    """One of ``values``, each equally likely; shrinking keeps the values of the points."""

    log = False

    def __init__(self, values):
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeError(f"Choice takes a list of values, got {shown(values)}")
        values = [plain(v) for v in values]
        if not values:
            raise SpaceError("Choice needs at least one value, got an empty list")
        if len(set(map(repr, values))) != len(values):
            raise SpaceError(f"Choice values must be distinct, got {values!r}")
        self.values = values

    def sample(self, rng: np.random.Generator):
        return self.values[int(rng.integers(len(self.values)))]

    def contains(self, value) -> bool:
        return value in self.values

    def shrunk(self, points, best, factor: float) -> "Choice":
        kept = [v for v in self.values if v in list(points) or v == best]
        box = object.__new__(Choice)
        box.values = kept
        return box

    def describe(self) -> str:
        return "{" + ", ".join(map(repr, self.values)) + "}"

    def __eq__(self, other) -> bool:
        return type(other) is Choice and other.values == self.values

    def __repr__(self) -> str:
        return f"Choice({self.values!r})"


SCALES = (Uniform, LogUniform, OneMinusLogUniform, IntUniform, IntLogUniform, Choice)


def shrunk_interval(bounds: tuple, points, best: float, factor: float) -> tuple:
    """[lo, hi] of width ``factor`` (b - a) inside ``bounds`` = (a, b): centred on the span
    of ``points``, moved to contain ``best``, then moved back inside (a, b)."""
    a, b = bounds
    width = factor * (b - a)
    points = np.atleast_1d(np.asarray(points, dtype=np.float64))
    centre = (points.min() + points.max()) / 2
    lo, hi = centre - width / 2, centre + width / 2
    if best < lo:
        lo, hi = best, best + width
    elif best > hi:
        lo, hi = best - width, best
    if lo < a:
        lo, hi = a, a + width
    elif hi > b:
        lo, hi = b - width, b
    return float(lo), float(hi)


# ---------------------------------------------------------------- spaces

def check_space(space) -> dict:
    """``space`` as a dict name -> scale, or a SpaceError/TypeError naming the entry."""
    if not isinstance(space, Mapping):
        raise TypeError(f"space must be a dict of name -> dlc.tune scale, got {shown(space)}")
    if not space:
        raise SpaceError("space is empty: give at least one hyperparameter")
    checked = {}
    for name, scale in space.items():
        if not isinstance(name, str):
            raise TypeError(f"space names must be strings, got {name!r}")
        if not isinstance(scale, SCALES):
            raise TypeError(f"space[{name!r}] must be one of dlc.tune."
                            f"{', '.join(s.__name__ for s in SCALES)}, got {shown(scale)}")
        checked[name] = scale
    for name in ("batch_size", "epochs"):
        if name in checked:
            check_count_scale(name, checked[name])
    return checked


def check_count_scale(name: str, scale) -> None:
    values = scale.values if isinstance(scale, Choice) else [scale.low, scale.high]
    if not isinstance(scale, (Choice, IntUniform)) or not all(
            isinstance(v, Integral) and not isinstance(v, bool) and v >= 1 for v in values):
        raise SpaceError(f"space[{name!r}] is a count: use IntUniform, IntLogUniform or a "
                         f"Choice of positive integers, got {scale!r}")


def sample_points(space: dict, n: int, rng: np.random.Generator) -> list:
    """``n`` points, each a dict in the space's order, drawn trial by trial."""
    return [{name: scale.sample(rng) for name, scale in space.items()} for _ in range(n)]


def shrunk_space(space: dict, points: list, best: dict, factor: float) -> dict:
    return {name: scale.shrunk([p[name] for p in points], best[name], factor)
            for name, scale in space.items()}


class Params(Mapping):
    """A trial's hyperparameters as ``build`` sees them: reading a name that is not in
    the space is a SpaceError naming it.  ``seed`` is the trial's own seed (for the
    network's initialisation); ``index`` its number in the search."""

    def __init__(self, values: dict, seed: int = 0, index: int = 0):
        self._values, self.seed, self.index = dict(values), seed, index

    def __getitem__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise SpaceError(f"build reads the hyperparameter {name!r}, which is not in the "
                             f"space; the space has {sorted(self._values)}") from None

    def get(self, name, default=None):
        return self._values.get(name, default)

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Params({self._values!r}, seed={self.seed})"


def check_factor(value, what: str = "shrink") -> float:
    return check_real(value, what, 0.0, 1.0, low_open=True)


__all__ = ["Uniform", "LogUniform", "OneMinusLogUniform", "IntUniform", "IntLogUniform",
           "Choice", "SpaceError", "Params", "check_space", "sample_points", "shrunk_space"]
