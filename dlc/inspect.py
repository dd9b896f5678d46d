"""What the inference pipeline does to a model: IR before and after, and a summary."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np

from .api import _check_model, source_graph
from .build import BuildError, compiler_command, run_compiler
from .checks import check_int
from .ir import Graph
from .layout import pack_params
from .passes import INFERENCE_PIPELINE, run_pipeline
from .program import TILE_ROWS, inference_program
from .quant import QuantizedModel
from .targets.export import EXPORT, generate_export

EXPORT_FLAGS = EXPORT.flags


@dataclass(frozen=True)
class CodeSize:
    text: int       # machine code bytes
    rodata: int     # read-only data: the baked weights and other constants
    data: int
    bss: int        # zero-initialised: the internal workspace (and file-loaded weights)


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


def inspect_graph(graph: Graph, passes=INFERENCE_PIPELINE, tile_rows: int = TILE_ROWS,
                  before: Graph = None):
    """(Inspection, the optimised graph) for an inference graph; ``before``, when given, is
    what the report compares with (a quantized model's float graph)."""
    optimised = run_pipeline(graph, passes)
    graph = graph if before is None else before
    program = inference_program(optimised, tile_rows)
    report = Inspection(
        before=str(graph), after=str(optimised),
        ops_before=Counter(n.op for n in graph.nodes),
        ops_after=Counter(n.op for n in optimised.nodes),
        param_bytes_before=param_bytes(graph), param_bytes_after=param_bytes(optimised),
        arena_bytes=program.arena_bytes,
        arena_values_per_row=program.arena_elements // tile_rows, tile_rows=tile_rows,
        block_bytes=program.block_bytes, workspace_bytes=program.workspace_bytes)
    return report, optimised


def inspect_model(net, passes=INFERENCE_PIPELINE, tile_rows: int = TILE_ROWS):
    """(Inspection, the optimised graph) of a model; a quantized one is compared with its
    float graph (after the inference passes), so the parameter bytes show the int8 saving."""
    return inspect_graph(source_graph(net), passes, tile_rows,
                         before=net.float_graph if isinstance(net, QuantizedModel) else None)


def inspect(net, passes=INFERENCE_PIPELINE, *, tile_rows: int = TILE_ROWS,
            code_size: bool = False, cc=None) -> Inspection:
    """The IR of ``net`` before and after the inference passes, and a summary: ops
    removed, parameter bytes, arena bytes and, with ``code_size=True`` (which compiles
    the exported C), the code and constant bytes."""
    _check_model(net)
    tile_rows = check_int(tile_rows, "tile_rows", low=1)
    report, graph = inspect_model(net, passes, tile_rows)
    if not code_size:
        return report
    program = inference_program(graph, tile_rows)
    block = pack_params(graph, program.params, np.dtype(net.dtype))
    header, source, _ = generate_export(graph, "model", block, report.summary_lines(),
                                        tile_rows=tile_rows)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "model.h").write_text(header)
        (Path(tmp) / "model.c").write_text(source)
        size = measure_code_size(Path(tmp) / "model.c", cc)
    return replace(report, code_bytes=size.text, constant_bytes=size.rodata)


def measure_code_size(source: Path, cc=None, flags=EXPORT_FLAGS) -> CodeSize:
    size_tool = shutil.which("size")
    if size_tool is None:
        raise BuildError("measuring code size needs the binutils 'size' tool")
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "model.o"
        run_compiler([*compiler_command(cc), *flags, "-c", str(source), "-o", str(obj)])
        done = subprocess.run([size_tool, "-A", str(obj)], capture_output=True, text=True,
                              check=True)
    sections = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            kind = parts[0].split(".")[1]
            sections[kind] = sections.get(kind, 0) + int(parts[1])
    return CodeSize(sections.get("text", 0), sections.get("rodata", 0),
                    sections.get("data", 0), sections.get("bss", 0))

