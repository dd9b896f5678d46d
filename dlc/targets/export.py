"""The standalone export: <name>.h and <name>.c, C99 with no malloc, the forward code of
the library with every symbol prefixed by the model's name, the weights baked in as
literals or read from a file."""
from __future__ import annotations

from ..ir import Graph
from ..layout import ParamLayout
from ..program import TILE_ROWS, inference_program
from ..render import safe_comment
from . import Target
from .embedded import CORTEX_M, GENERIC, ExportTarget
from .isa import apply_isa

# Portable flags for measuring the exported code (no -march=native: it ships elsewhere).
EXPORT = Target("export", header="export.h.j2", source="export.c.j2", flags=("-std=c99", "-O2"))
HOST = ExportTarget("host", EXPORT, EXPORT.flags, tile_rows=TILE_ROWS,
                    about="the library's packed, vectorised kernels (fast, larger)")
TARGETS = {t.name: t for t in (HOST, GENERIC, *CORTEX_M)}

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


def export_target(name) -> ExportTarget:
    """The export target called ``name``, else a clear error listing them."""
    if not isinstance(name, str):
        raise TypeError(f"target must be a string, got {type(name).__name__}")
    if name not in TARGETS:
        raise ValueError(f"unknown export target {name!r}; known targets: {', '.join(TARGETS)}")
    return TARGETS[name]


def target_program(graph: Graph, target: ExportTarget, tile_rows: int = None):
    """The program of ``graph`` shaped for ``target`` (tiles of ``tile_rows`` rows, by
    default the target's)."""
    return inference_program(graph, tile_rows or target.tile_rows, target.panel, target.packed,
                             target.kernels.packed, ragged=target.plain)


def generate_export(graph: Graph, name: str, block, summary_lines, weights_file: str = None,
                    tile_rows: int = None, target: ExportTarget = HOST, isa: str = "portable",
                    footprint=None, output_quantization=None):
    """(header, source, program) of a standalone model named ``name`` (already a checked
    C identifier) for ``target`` with the packed parameters ``block``, baked in or, with
    ``weights_file``, read from that file; the header states ``footprint`` (flash, RAM
    and stack as measured on the built object) when given, and the (scale, zero point) of
    an integer output, ``output_quantization``."""
    program = target_program(graph, target, tile_rows)
    header, source = target.kernels.render(
        program, prefix=f"{name}_", name=name, macro=name.upper(), machine=target,
        footprint=footprint, output_quantization=output_quantization,
        summary_lines=[safe_comment(s) for s in summary_lines],
        weights_file=safe_comment(weights_file) if weights_file else None,
        weights=None if weights_file else weight_segments(graph, program.params, block),
        weights_bytes=program.params.size * block.itemsize,
        weights_magic=WEIGHTS_MAGIC, weights_version=WEIGHTS_VERSION)
    return (*apply_isa(header, source, name, isa), program)
