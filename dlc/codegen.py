"""Codegen: a typed context from the IR, rendered through the Jinja2 templates.

Python never concatenates C text; it only decides names, offsets and sizes.
User-chosen names reach C only as sanitised comments.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2

from . import __version__
from .ir import Graph, format_node
from .ops import OPS
from .passes.plan_memory import ALIGN, MemoryPlan, plan_memory

PACKAGE = Path(__file__).resolve().parent
TILE_ROWS = 64
CTYPES = {"f32": "float", "f64": "double"}
RUNTIME_FILES = ("dlc_runtime.h", "gemm.c", "kernels.c")


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
        undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters.update(real=c_real, activation=c_activation, comment=safe_comment)
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


@lru_cache(maxsize=1)
def runtime_source() -> str:
    root = resource_dir("runtime")
    return "\n".join((root / f).read_text() for f in RUNTIME_FILES)


@dataclass(frozen=True)
class ParamLayout:
    offsets: dict     # param ref -> element offset in the packed parameter block
    size: int


def param_layout(graph: Graph) -> ParamLayout:
    offsets, size = {}, 0
    for ref, param in graph.params.items():
        offsets[ref] = size
        size += -(-param.value.size // ALIGN) * ALIGN
    return ParamLayout(offsets, max(size, 1))


def ir_lines(graph: Graph) -> list:
    return [safe_comment(line) for line in str(graph).splitlines()]


def forward_context(graph: Graph, tile_rows: int = TILE_ROWS, prefix: str = "") -> dict:
    """Everything the forward templates need for an inference graph (input %x, one output)."""
    (x_ref, x_type), = graph.inputs.items()
    out_ref, = graph.outputs
    out_type = graph.types()[out_ref]
    plan = plan_memory(graph, tile_rows, exclude={out_ref})
    layout = param_layout(graph)
    steps = [node_step(node, graph, plan, layout) for node in graph.nodes]
    if out_ref not in plan.offsets and out_ref not in {n.out for n in graph.nodes}:
        steps.append({"template": "copy.c.j2", "layer": "output", "ir": "copy to output",
                      "x": "x", "size": {"y": out_type.row_size}})
    return dict(
        version=__version__, prefix=prefix, ctype=CTYPES[x_type.dtype],
        n_inputs=x_type.row_size, n_outputs=out_type.row_size, tile_rows=tile_rows,
        steps=steps, arena_elements=plan.size, n_params=layout.size,
        workspace_bytes=plan.size * x_type.np_dtype.itemsize, ir_lines=ir_lines(graph),
        plan=plan, layout=layout)


def value_expr(ref: str, graph: Graph, plan: MemoryPlan, layout: ParamLayout) -> str:
    if ref in graph.params:
        return f"P + {layout.offsets[ref]} /* {safe_comment(ref)} */"
    if ref in graph.inputs:
        return "x"
    if ref in graph.outputs:
        return "y"
    return f"A + {plan.offsets[ref]}"


def node_step(node, graph: Graph, plan: MemoryPlan, layout: ParamLayout) -> dict:
    op = OPS[node.op]
    types = graph.types()
    step = {name: value_expr(ref, graph, plan, layout) for name, ref in zip(op.inputs, node.inputs)}
    step.update(
        template=f"ops/{op.template}.c.j2", op=node.op, attrs=dict(node.attrs),
        layer=safe_comment(node.layer or node.op), ir=safe_comment(format_node(node, with_layer=False)),
        y=value_expr(node.out, graph, plan, layout),
        size={**{name: types[ref].row_size for name, ref in zip(op.inputs, node.inputs)},
              "y": node.type.row_size})
    return step


def generate_module(graph: Graph, tile_rows: int = TILE_ROWS):
    """(header, source, context) of the cffi module for an inference graph."""
    context = forward_context(graph, tile_rows)
    header = render("model.h.j2", **context)
    source = render("model.c.j2", header=header, runtime=runtime_source(), **context)
    return header, source, context
