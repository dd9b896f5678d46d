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

PACKAGE = Path(__file__).resolve().parent
CTYPES = {"f32": "float", "f64": "double"}


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


def c_real(value) -> str:
    return f"(dlc_real){float(value)!r}"


def c_activation(name: str) -> str:
    return "DLC_ACT_" + name.upper()


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined, autoescape=False, bytecode_cache=template_cache())
    env.filters.update(real=c_real, activation=c_activation, comment=safe_comment)
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

