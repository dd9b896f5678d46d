"""The runner built ahead of time: the one C compile a search (or any trainer with
backend="runner") waits for, done once per machine, compiler and flag set, e.g. by
``dlc prebuild`` after installing."""
from __future__ import annotations

import time

from ..build import DEFAULT_FLAGS, resolve_flags
from ..shapes import dtype_code
from ..train.runner_backend import runner_module

DTYPES = ("float32", "float64")


def prebuild(dtypes=DTYPES, flags=DEFAULT_FLAGS, cc=None) -> dict:
    """Builds the runner for each of ``dtypes`` ("float32", "float64") with ``flags`` (a
    preset name or a list, as ``compile`` takes) into the build cache, unless it is
    there; returns {dtype: seconds}, the seconds of a build that was needed or of
    loading the cached one."""
    if isinstance(dtypes, str):
        dtypes = (dtypes,)
    codes = [dtype_code(dtype) for dtype in dtypes]
    flags = resolve_flags(flags)
    seconds = {}
    for code in dict.fromkeys(codes):
        start = time.perf_counter()
        runner_module(code, cc, flags)
        seconds[code] = time.perf_counter() - start
    return seconds
