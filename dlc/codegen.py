"""Codegen: a typed context from the IR, rendered through the Jinja2 templates.

Python never concatenates C text; it only decides names, offsets and sizes.
User-chosen names reach C only as sanitised comments.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import __version__
from .ir import DTYPES, Graph, format_node
from .layout import (GemmBlocks, ParamLayout, gemm_blocks, inference_layout, param_layout)
from .ops import OPS
from .passes.plan_memory import MemoryPlan, plan_memory
from .render import CTYPES, ir_lines, render, safe_comment
from .runtime import runtime_for

TILE_ROWS = 64
# Libraries loaded into Python run 256-row tiles: each weight matrix is packed once per
# 256 rows instead of per 64 (the workspace grows, which matters in firmware, not here).
LIBRARY_TILE_ROWS = 256


def render_program(template: str, **context) -> str:
    """``template`` rendered with the runtime its own C calls into."""
    program = render(template, runtime="", **context)
    return render(template, runtime=runtime_for(program), **context)


# The products of the kernels that call the matrix multiply, as the arguments of
# gemm_blocks (M, N, K, lda, trans_a, b_panels, trans_b) of a step run on at most `rows`
# batch rows (see templates/ops/).
PRODUCTS = {
    "ops/dense.c.j2": lambda size, panels, rows: (
        rows, size["y"], size["x"], size["x"], False, "W" in panels, False),
    "ops/matmul_nt.c.j2": lambda size, panels, rows: (
        rows, size["y"], size["dy"], size["dy"], False, False, True),
    "ops/matmul_tn.c.j2": lambda size, panels, rows: (
        size["x"], size["dy"], rows, size["x"], True, False, False),
}


def program_blocks(steps, rows, itemsize: int) -> GemmBlocks:
    """Blocks that fit every product of ``steps`` run on at most ``rows`` rows."""
    blocks = GemmBlocks()
    for step in steps:
        if step["template"] in PRODUCTS:
            M, N, K, lda, trans_a, panels, trans_b = PRODUCTS[step["template"]](
                step["size"], step["panels"], rows)
            blocks = blocks.union(gemm_blocks(M, N, K, itemsize, lda, trans_a, panels, trans_b))
    return blocks


def forward_context(graph: Graph, tile_rows: int = TILE_ROWS, prefix: str = "") -> dict:
    """Everything the forward templates need for an inference graph (input %x, one output)."""
    (x_ref, x_type), = graph.inputs.items()
    out_ref, = graph.outputs
    out_type = graph.types()[out_ref]
    plan = plan_memory(graph, tile_rows, exclude={out_ref})
    layout = inference_layout(graph)
    steps = [node_step(node, graph, plan, layout) for node in graph.nodes]
    if out_ref not in plan.offsets and out_ref not in {n.out for n in graph.nodes}:
        steps.append({"template": "copy.c.j2", "layer": "output", "ir": "copy to output",
                      "x": "x", "size": {"y": out_type.row_size}})
    itemsize = x_type.np_dtype.itemsize
    scratch = program_blocks(steps, tile_rows, itemsize)
    return dict(
        version=__version__, prefix=prefix, ctype=CTYPES[x_type.dtype],
        n_inputs=x_type.row_size, n_outputs=out_type.row_size, tile_rows=tile_rows,
        steps=steps, arena_elements=plan.size, n_params=layout.size, scratch=scratch,
        arena_bytes=plan.size * itemsize, block_bytes=scratch.elements * itemsize,
        workspace_elements=plan.size + scratch.elements,
        workspace_bytes=(plan.size + scratch.elements) * itemsize, ir_lines=ir_lines(graph),
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
        panels={name: layout.panels[ref] for name, ref in zip(op.inputs, node.inputs)
                if ref in layout.panels},
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
    source = render_program("model.c.j2", header=header, **context)
    return header, source, context


def generate_gemm_module(dtype: str = "f32"):
    """(header, source) of a module exposing the runtime's matrix multiply, dense kernel
    and softmax alone, for the kernel tests and benchmarks."""
    context = dict(version=__version__, ctype=CTYPES[dtype],
                   ir_lines=["(no model: the runtime kernels alone)"])
    header = render("gemm.h.j2", **context)
    return header, render_program("gemm.c.j2", header=header, **context)


# ---------------------------------------------------------------- standalone export

LITERAL_FORMATS = {"f32": ("{:.9g}", "f"), "f64": ("{:.17g}", "")}
VALUES_PER_LINE = 8
WEIGHTS_MAGIC, WEIGHTS_VERSION = "DLCW", 1     # header of a separate weights file


def c_literal(value: float, dtype: str) -> str:
    """A C floating literal that reads back as exactly ``value`` (%.9g for float,
    %.17g for double)."""
    fmt, suffix = LITERAL_FORMATS[dtype]
    text = fmt.format(float(value))
    if not any(c in text for c in ".en"):
        text += ".0"
    return text + suffix


def literal_lines(values, dtype: str) -> list:
    """``values`` as C literals, VALUES_PER_LINE to a line."""
    texts = [c_literal(v, dtype) for v in values.tolist()]
    return [texts[i:i + VALUES_PER_LINE] for i in range(0, len(texts), VALUES_PER_LINE)]


def weight_segments(graph: Graph, layout: ParamLayout, block) -> list:
    """The packed parameter block cut into one commented segment per parameter
    (plus its alignment padding), ready for the export template."""
    segments, dtype = [], graph.dtype
    starts = sorted((offset, ref) for ref, offset in layout.offsets.items())
    ends = [offset for offset, _ in starts[1:]] + [layout.size]
    for (start, ref), end in zip(starts, ends):
        param = graph.params[ref]
        segments.append(dict(
            comment=safe_comment(f"{ref} {param.type} at {start}"),
            lines=literal_lines(block[start:end], dtype)))
    if not segments:
        segments.append(dict(comment="no parameters", lines=literal_lines(block, dtype)))
    return segments


def export_context(graph: Graph, name: str, block, summary_lines, weights_file: str = None,
                   tile_rows: int = TILE_ROWS) -> dict:
    """The context of templates/export.{h,c}.j2: the forward context with symbols prefixed
    by ``name`` (already a checked C identifier) and the weights, baked in or read from
    ``weights_file``."""
    context = forward_context(graph, tile_rows, prefix=f"{name}_")
    layout = context["layout"]
    context.update(
        name=name, macro=name.upper(), summary_lines=[safe_comment(s) for s in summary_lines],
        weights_file=safe_comment(weights_file) if weights_file else None,
        weights=None if weights_file else weight_segments(graph, layout, block),
        weights_bytes=layout.size * block.itemsize,
        weights_magic=WEIGHTS_MAGIC, weights_version=WEIGHTS_VERSION)
    return context


def generate_export(graph: Graph, name: str, block, summary_lines, weights_file: str = None,
                    tile_rows: int = TILE_ROWS):
    """(header, source, context) of a standalone model named ``name``."""
    context = export_context(graph, name, block, summary_lines, weights_file, tile_rows)
    header = render("export.h.j2", **context)
    source = render_program("export.c.j2", **context)
    return header, source, context


# ---------------------------------------------------------------- training

TRAIN_INPUTS = {"%x": "x", "%y": "t", "%m": "&m", "%lr": "&lr", "%step": "&step",
                "%seed": "&seed"}


@dataclass(frozen=True)
class TrainLayout:
    """Where every value of a training graph lives: the state block S (parameters and
    optimizer state, persistent), the fixed scratch U (unbatched values such as
    gradients) and the batch arena A (``per_row`` elements per batch row)."""
    state: ParamLayout
    fixed: MemoryPlan
    per_row: MemoryPlan
    in_place: dict          # update value ref -> the parameter it is computed over


def in_place_updates(graph: Graph) -> dict:
    """Updates whose element-wise op reads the parameter as its first operand, with no
    later reader of the parameter: those are computed straight into the state block."""
    position = {node.out: i for i, node in enumerate(graph.nodes)}
    readers = graph.users()
    in_place = {}
    for param, value in graph.updates:
        node = graph.nodes[position[value]] if value in position else None
        if (node is None or node.inputs[:1] != (param,) or value in graph.outputs
                or not OPS[node.op].kernel.in_place):
            continue
        if all(position[r.out] <= position[value] for r in readers.get(param, [])):
            in_place[value] = param
    return in_place


def train_layout(graph: Graph) -> TrainLayout:
    in_place = in_place_updates(graph)
    for param, value in graph.updates:
        if value not in in_place:
            raise ValueError(f"the update {param} <- {value} cannot be computed in place: it "
                             f"needs an element-wise update op reading {param} last")
    batched = {n.out for n in graph.nodes if n.type.batched}
    unbatched = {n.out for n in graph.nodes} - batched
    return TrainLayout(
        state=param_layout(graph),
        fixed=plan_memory(graph, 1, exclude=batched | set(in_place)),
        per_row=plan_memory(graph, 1, exclude=unbatched | set(in_place)),
        in_place=in_place)


def train_expr(ref: str, graph: Graph, layout: TrainLayout) -> str:
    ref = layout.in_place.get(ref, ref)
    if ref in graph.params:
        return f"S + {layout.state.offsets[ref]} /* {safe_comment(ref)} */"
    if ref in graph.inputs:
        return TRAIN_INPUTS[ref]
    if ref in layout.per_row.offsets:
        return f"A + rows * {layout.per_row.offsets[ref]}"
    return f"U + {layout.fixed.offsets[ref]}"


def train_step_context(node, graph: Graph, layout: TrainLayout) -> dict:
    op, types = OPS[node.op], graph.types()
    operands = dict(zip(op.inputs, node.inputs))
    return {**{name: train_expr(ref, graph, layout) for name, ref in operands.items()},
            "template": f"ops/{op.template}.c.j2", "op": node.op, "attrs": dict(node.attrs),
            "panels": {}, "layer": safe_comment(node.layer or node.op),
            "ir": safe_comment(format_node(node, with_layer=False)),
            "y": train_expr(node.out, graph, layout),
            "size": {**{name: types[ref].row_size for name, ref in operands.items()},
                     "y": node.type.row_size},
            "batched": {**{name: types[ref].batched for name, ref in operands.items()},
                        "y": node.type.batched}}


def train_steps(graph: Graph, layout: TrainLayout) -> list:
    """The step contexts in graph order, where an optimizer's element-wise passes over a
    parameter (its moments, then the step, all in place) become one pass."""
    nodes, steps, i = graph.nodes, [], 0
    while i < len(nodes):
        for ops, connected, context in FUSED_UPDATES:
            group = nodes[i:i + len(ops)]
            if (tuple(node.op for node in group) == ops and connected(*group)
                    and all(node.out in layout.in_place for node in group)):
                steps.append(context(graph, layout, *group))
                i += len(ops)
                break
        else:
            steps.append(train_step_context(nodes[i], graph, layout))
            i += 1
    return steps


def update_context(kind: str, graph: Graph, layout: TrainLayout, group, W: str, **refs) -> dict:
    """The context of templates/{kind}_update.c.j2: the parameter W, the moments and the
    gradient named by ``refs``, the last node's attributes and the moments' betas."""
    step = group[-1]
    expr = lambda ref: train_expr(ref, graph, layout)       # noqa: E731
    return {"template": f"{kind}_update.c.j2", "layer": safe_comment(step.layer or kind),
            "ir": safe_comment(", ".join(n.out for n in group) + " = "
                               + ", ".join(n.op for n in group)
                               + f" of {layout.in_place[step.out]} in one pass"),
            "size": step.type.row_size, "W": expr(W), "attrs": dict(step.attrs),
            "betas": [n.attrs["beta"] for n in group[:-1]],
            **{name: expr(ref) for name, ref in refs.items()}}


FUSED_UPDATES = [
    (("ewma", "ewma_sq", "adam_step"),
     lambda m, s, step: step.inputs[1:3] == (m.out, s.out) and m.inputs[1] == s.inputs[1],
     lambda graph, layout, m, s, step: update_context(
         "adam", graph, layout, (m, s, step), step.inputs[0], m=m.inputs[0], s=s.inputs[0],
         g=m.inputs[1], lr=step.inputs[3], t=step.inputs[4])),
    (("ewma", "sgd_step"),
     lambda v, step: step.inputs[1] == v.out,
     lambda graph, layout, v, step: update_context(
         "momentum", graph, layout, (v, step), step.inputs[0], v=v.inputs[0], g=v.inputs[1],
         lr=step.inputs[2])),
    (("ewma_sq", "rmsprop_step"),
     lambda s, step: step.inputs[2] == s.out and step.inputs[1] == s.inputs[1],
     lambda graph, layout, s, step: update_context(
         "rmsprop", graph, layout, (s, step), step.inputs[0], s=s.inputs[0], g=s.inputs[1],
         lr=step.inputs[3])),
]


def train_context(graph: Graph) -> dict:
    """Everything templates/train.{h,c}.j2 need for a training graph with inputs
    %x, %y (batched) and %m, %lr, %step, %seed (scalars) and the cost as its output."""
    unknown = set(graph.inputs) - set(TRAIN_INPUTS)
    if unknown or {"%x", "%y"} - set(graph.inputs):
        raise ValueError(f"a training graph has inputs {sorted(TRAIN_INPUTS)}, got "
                         f"{sorted(graph.inputs)}")
    layout = train_layout(graph)
    types = graph.types()
    cost, = graph.outputs
    steps = train_steps(graph, layout)
    return dict(
        version=__version__, ctype=CTYPES[graph.dtype], ir_lines=ir_lines(graph),
        n_inputs=types["%x"].row_size, n_outputs=types["%y"].row_size,
        state_elements=layout.state.size, fixed_elements=max(layout.fixed.size, 1),
        per_row_elements=layout.per_row.size,
        steps=steps, cost=train_expr(cost, graph, layout), layout=layout,
        scratch=program_blocks(steps, math.inf, DTYPES[graph.dtype].itemsize))


def generate_train_module(graph: Graph):
    """(header, source, context) of the cffi module of a training graph."""
    context = train_context(graph)
    header = render("train.h.j2", **context)
    source = render_program("train.c.j2", header=header, **context)
    return header, source, context
