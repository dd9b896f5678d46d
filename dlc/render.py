"""The one Jinja2 environment that renders every C file, and its filters.

Python never concatenates C text; it only decides names, offsets and sizes.
User-chosen names reach C only as sanitised comments.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import jinja2

from .build import cache_subdirectory
from .ir import Graph
from .ops import ACTIVATIONS, OPS

PACKAGE = Path(__file__).resolve().parent
CTYPES = {"f32": "float", "f64": "double", "i8": "int8_t", "i16": "int16_t", "i32": "int32_t"}


def resource_dir(name: str) -> Path:
    """templates/ and runtime/ ship inside the installed package; in a source
    checkout they sit beside it."""
    for base in (PACKAGE, PACKAGE.parent):
        if (base / name).is_dir():
            return base / name
    raise FileNotFoundError(f"dlc cannot find its {name}/ directory")


def safe_comment(text: str) -> str:
    """Text that is harmless inside a C block comment: no '*', '/', '\\', '?'
    or control characters survive."""
    return re.sub(r"[^A-Za-z0-9 _.,:;=()\[\]{}%@#<>+\-']", "_", str(text))


class RuntimeValue(str):
    """A C expression that the runner (dlc/targets/runner.py) reads at run time where a
    specialised program has a constant; the filters pass it through."""

    def __repr__(self) -> str:        # "%r" | format(value), as for a double constant
        return str(self)


def c_real(value) -> str:
    if isinstance(value, RuntimeValue):
        return f"(dlc_real){value}"
    return f"(dlc_real){float(value)!r}"


def c_scalar(arg) -> str:
    """The value of a scalar argument of a program call: a Scalar is passed by value, a
    buffer of one value read at its element."""
    return f"{arg}[0]" if hasattr(arg, "region") else str(arg)


def c_activation(name: str) -> str:
    """The C name of the activation ``name`` (a dense layer's attribute)."""
    if isinstance(name, RuntimeValue):     # its position in ACTIVATIONS, the C enum's order
        return f"(int){name}"
    return ACTIVATIONS[name].c_name


def c_type(dtype: str) -> str:
    """The C type of the IR dtype ``dtype``."""
    return CTYPES[dtype]


def op_kernel(op: str):
    """The C facts of the op ``op`` (dlc/ops.py, Kernel)."""
    return OPS[op].kernel


def declarations(text: str) -> str:
    """A runtime header without its preprocessor lines (guard, includes): what a cffi
    cdef can read."""
    kept = [line for line in text.splitlines() if not line.startswith("#")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n") + "\n"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(resource_dir("templates")),
                                        str(resource_dir("runtime"))]),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined, autoescape=False, bytecode_cache=template_cache())
    env.filters.update(real=c_real, activation=c_activation, kernel=op_kernel,
                       declarations=declarations, comment=safe_comment, scalar=c_scalar,
                       ctype=c_type)
    return env


def template_cache():
    """Compiled templates kept in the build cache, so a cache hit in a new process
    does not re-parse them (keyed by each template's source, never stale)."""
    try:
        path = cache_subdirectory("templates")     # private, as the modules' directory
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(path))


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


def ir_lines(graph: Graph) -> list:
    return [safe_comment(line) for line in str(graph).splitlines()]

