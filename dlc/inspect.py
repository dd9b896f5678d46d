"""What the inference pipeline does to a model: IR before and after, and a summary."""
from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, replace
from typing import Optional

from .checks import check_int
from .codegen import TILE_ROWS, forward_context
from .ir import Graph
from .lower import lower
from .passes import INFERENCE_PIPELINE, run_pipeline


@dataclass(frozen=True)
class Inspection:
    before: str                 # IR text as lowered from the DSL
    after: str                  # IR text after the inference pipeline
    ops_before: Counter
    ops_after: Counter
    param_bytes_before: int
    param_bytes_after: int
    arena_bytes: int            # activations of one tile of tile_rows rows
    arena_values_per_row: int
    tile_rows: int
    block_bytes: int            # the matrix multiply's packed blocks
    workspace_bytes: int        # all the scratch memory: the arena, then the blocks
    code_bytes: Optional[int] = None      # .text of the exported C, when measured
    constant_bytes: Optional[int] = None  # .rodata (the baked weights), when measured

    @property
    def ops_removed(self) -> dict:
        """op -> how many nodes of it the pipeline removed."""
        return {op: n - self.ops_after[op] for op, n in sorted(self.ops_before.items())
                if n > self.ops_after[op]}

    def summary_lines(self) -> list:
        removed = ", ".join(f"{n} {op}" for op, n in self.ops_removed.items()) or "none"
        lines = [
            f"ops: {sum(self.ops_before.values())} -> {sum(self.ops_after.values())} "
            f"(removed {removed})",
            f"parameter bytes: {self.param_bytes_before} -> {self.param_bytes_after}",
            f"arena bytes: {self.arena_bytes} ({self.arena_values_per_row} values per row, "
            f"tiles of {self.tile_rows} rows)",
            f"workspace bytes: {self.workspace_bytes} (the arena and {self.block_bytes} bytes "
            f"of packed blocks)",
        ]
        if self.code_bytes is not None:
            lines.append(f"code bytes: {self.code_bytes} text + {self.constant_bytes} constants")
        return lines

    def __str__(self) -> str:
        return "\n".join(["# before", self.before, "# after", self.after, "# summary",
                          *self.summary_lines()])


def param_bytes(graph: Graph) -> int:
    return sum(p.value.nbytes for p in graph.params.values())


def inspect_graph(graph: Graph, passes=INFERENCE_PIPELINE, tile_rows: int = TILE_ROWS):
    """(Inspection, the optimised graph) for an inference graph."""
    optimised = run_pipeline(graph, passes)
    context = forward_context(optimised, tile_rows)
    report = Inspection(
        before=str(graph), after=str(optimised),
        ops_before=Counter(n.op for n in graph.nodes),
        ops_after=Counter(n.op for n in optimised.nodes),
        param_bytes_before=param_bytes(graph), param_bytes_after=param_bytes(optimised),
        arena_bytes=context["arena_bytes"],
        arena_values_per_row=context["arena_elements"] // tile_rows, tile_rows=tile_rows,
        block_bytes=context["block_bytes"], workspace_bytes=context["workspace_bytes"])
    return report, optimised


def inspect(net, passes=INFERENCE_PIPELINE, *, tile_rows: int = TILE_ROWS,
            code_size: bool = False, cc=None) -> Inspection:
    """The IR of ``net`` before and after the inference passes, and a summary: ops
    removed, parameter bytes, arena bytes and, with ``code_size=True`` (which compiles
    the exported C), the code and constant bytes."""
    from .api import _check_model
    _check_model(net)
    tile_rows = check_int(tile_rows, "tile_rows", low=1)
    report, _ = inspect_graph(lower(net), passes, tile_rows)
    if not code_size:
        return report
    from .export import export_c
    with tempfile.TemporaryDirectory() as tmp:
        size = export_c(net, tmp, name="model", passes=passes, tile_rows=tile_rows).code_size(cc)
    return replace(report, code_bytes=size.text, constant_bytes=size.rodata)
