"""Checks at the Python boundary: clear errors before any C runs.

One contract for every public argument:

- a wrong *type* (a string, None, a bool where a number is expected, a float where
  an integer is expected) raises TypeError naming the argument and what was given;
- a wrong *value* (out of range, NaN, inf) raises ValueError naming the argument,
  the allowed range and the value;
- NumPy scalars (np.int64, np.float32, ...) are accepted wherever Python numbers are.

Integer arguments (counts, sizes, seeds) take integers only: an integral float such
as ``32.0`` is a TypeError, as in scikit-learn, for every one of them.  Real
arguments take integers and floats and are returned as Python floats (a float32
scalar keeps its exact value).
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np


# ---------------------------------------------------------------- numbers

def check_int(value, what: str, low: int = None, high: int = None, note: str = "") -> int:
    """``value`` as an int in [low, high] (either bound may be None); ``note`` explains
    the bounds in the error message, e.g. "at most the number of examples"."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        hint = f"; pass {int(value)}" if _is_integral_float(value) else ""
        raise TypeError(f"{what} must be an integer, got {shown(value)}{hint}")
    if (low is not None and value < low) or (high is not None and value > high):
        note = f" ({note})" if note else ""
        raise ValueError(f"{what} must be {integer_range(low, high)}{note}, "
                         f"got {plain(value)!r}")
    return int(value)


def check_threads(value) -> int:
    """A thread count: a positive integer."""
    return check_int(value, "threads", low=1)


def check_real(value, what: str, low: float = None, high: float = None, *,
               low_open: bool = False, high_open: bool = False, note: str = "") -> float:
    """``value`` as a finite float in the interval from ``low`` to ``high`` (None: no
    bound), each end closed unless ``low_open``/``high_open``; ``note`` explains the
    bounds in the error message, as for ``check_int``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{what} must be a real number, got {shown(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        note = f" ({note})" if note else ""
        raise ValueError(f"{what} must be in {interval(low, high, low_open, high_open)}{note}, "
                         f"got {value!r}")
    return value


def check_positive(value, what: str) -> float:
    """A finite real > 0 (learning rates, epsilons)."""
    return check_real(value, what, low=0.0, low_open=True)


def check_fraction(value, what: str, *, low_open: bool = False, high_open: bool = False,
                   note: str = "") -> float:
    """A finite real in [0, 1], either end open on request."""
    return check_real(value, what, 0.0, 1.0, low_open=low_open, high_open=high_open, note=note)


def integer_range(low, high) -> str:
    if high is None:
        return {0: "a non-negative integer", 1: "a positive integer"}.get(
            low, f"an integer >= {low}") if low is not None else "an integer"
    if low is None:
        return f"an integer <= {high}"
    return f"an integer in [{low}, {high}]"


def interval(low, high, low_open: bool, high_open: bool) -> str:
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    return (f"{left}{'-inf' if low is None else f'{low:g}'}, "
            f"{'inf' if high is None else f'{high:g}'}{right}")


def shown(value) -> str:
    """An argument of the wrong type in a message: its value and its type, ``'2' (str)``."""
    if value is None:
        return "None"
    text = repr(value.item() if isinstance(value, np.generic) else value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def plain(value):
    """A number as it reads in a message (NumPy scalars as the number they hold)."""
    return value.item() if isinstance(value, np.generic) else value


def _is_integral_float(value) -> bool:
    return (isinstance(value, Real) and not isinstance(value, (bool, Integral))
            and math.isfinite(value) and float(value).is_integer())


# ---------------------------------------------------------------- arrays

def as_array(value, what: str) -> np.ndarray:
    """``np.asarray(value)``, or a ValueError naming ``what`` for what NumPy cannot make
    an array of (ragged nested lists)."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError):
        raise ValueError(f"{what} must be an array (nested lists of equal lengths), "
                         f"got {shown(value)}") from None


def as_real_array(value, what: str) -> np.ndarray:
    """``value`` as an array of real numbers (of any shape), else a clear error."""
    array = as_array(value, what)
    check_real_dtype(array, what)
    return array


def check_real_dtype(array: np.ndarray, what: str) -> None:
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                     or array.dtype == bool) or np.iscomplexobj(array):
        raise TypeError(f"{what} must hold real numbers, got dtype {array.dtype}")


def check_vector(value, what: str, low: float = None) -> np.ndarray:
    """``value`` as a non-empty 1-D float64 array of finite reals, each >= ``low``."""
    array = as_real_array(value, what).astype(np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{what} is empty")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contains NaN or inf (first at index "
                         f"{int(np.argmax(~np.isfinite(array)))})")
    if low is not None and (array < low).any():
        first = int(np.argmax(array < low))
        raise ValueError(f"{what} must be >= {low:g} everywhere, got {array[first]:g} "
                         f"at index {first}")
    return array


def cast_finite(array: np.ndarray, dtype, what: str) -> np.ndarray:
    """``array`` as a C-contiguous array of ``dtype``, every value finite.  A value that
    is finite but too large for ``dtype`` (1e39 in float32) is reported as overflowing
    it; NaN and inf as such, with the first row that holds one."""
    with np.errstate(over="ignore", invalid="ignore"):
        cast = np.ascontiguousarray(array, dtype=dtype)
    finite = np.isfinite(cast)
    if finite.all():
        return cast
    source = np.asarray(array)
    overflow = ~finite & np.isfinite(source)
    if overflow.any():
        where = np.unravel_index(int(np.argmax(overflow)), overflow.shape)
        raise ValueError(f"{what} {position(where)} holds {source[where]:g}, which overflows "
                         f"{np.dtype(dtype).name} (largest finite {np.finfo(dtype).max:g})")
    raise ValueError(f"{what} contains NaN or inf (first at row "
                     f"{first_bad_row(cast.reshape(cast.shape[0], -1))})")


def position(index: tuple) -> str:
    if len(index) == 1:
        return f"index {index[0]}"
    if len(index) == 2:
        return f"row {index[0]} column {index[1]}"
    return f"at {tuple(int(i) for i in index)}"


def as_batch(X, n_features: int, dtype: np.dtype, what: str = "X") -> np.ndarray:
    """``X`` as a C-contiguous (batch, n_features) array of ``dtype``.

    Other real dtypes are converted (float64 -> float32 rounds); non-contiguous
    arrays are copied.  Raises for wrong rank, width, empty batch, non-real
    dtypes, NaN or inf, and values that overflow ``dtype``.
    """
    array = as_real_array(X, what)
    if array.ndim != 2:
        hint = f"; for one example use {what}.reshape(1, -1)" if array.ndim == 1 else ""
        raise ValueError(f"{what} must be a 2-D array (batch, {n_features}), "
                         f"got shape {array.shape}{hint}")
    if array.shape[1] != n_features:
        raise ValueError(f"{what} has {array.shape[1]} features per row, the model expects {n_features}")
    if array.shape[0] == 0:
        raise ValueError(f"{what} is an empty batch (0 rows)")
    return cast_finite(array, dtype, what)


def first_bad_row(array: np.ndarray) -> int:
    return int(np.argmax(~np.isfinite(array).all(axis=1)))
