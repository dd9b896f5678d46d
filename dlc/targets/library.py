"""The host inference library: dlc_predict and friends, loaded into Python by cffi."""
from __future__ import annotations

from ..ir import Graph
from ..program import LIBRARY_TILE_ROWS, inference_program
from . import Target

LIBRARY = Target("library", header="model.h.j2", source="model.c.j2")


def generate_module(graph: Graph, tile_rows: int = LIBRARY_TILE_ROWS):
    """(header, source, program) of the cffi module for an inference graph."""
    program = inference_program(graph, tile_rows)
    return (*LIBRARY.render(program, prefix=""), program)
