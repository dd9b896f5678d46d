"""The runtime's matrix multiply, dense kernel and softmax alone, for the kernel tests
and benchmarks (no model, no program)."""
from __future__ import annotations

from ..version import __version__
from ..render import CTYPES, render
from . import render_with_runtime


def generate_gemm_module(dtype: str = "f32"):
    """(header, source) of the module."""
    context = dict(version=__version__, ctype=CTYPES[dtype],
                   ir_lines=["(no model: the runtime kernels alone)"])
    header = render("gemm.h.j2", **context)
    return header, render_with_runtime("gemm.c.j2", header=header, **context)
