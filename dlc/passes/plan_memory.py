"""Static memory planning: liveness-based reuse of buffers in one arena.

An analysis, not a rewrite: it returns a side table of offsets.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph

ALIGN = 16  # elements; keeps every buffer 64-byte aligned in float32


@dataclass(frozen=True)
class MemoryPlan:
    offsets: dict    # value ref -> element offset in the arena
    size: int        # arena size in elements


def last_uses(graph: Graph) -> dict:
    """ref -> index of the last node that reads it (len(nodes) for graph outputs)."""
    last = {}
    for i, node in enumerate(graph.nodes):
        for ref in node.inputs:
            last[ref] = i
    for ref in graph.outputs:
        last[ref] = len(graph.nodes)
    return last


def buffer_elements(type_, rows: int) -> int:
    n = type_.row_size * (rows if type_.batched else 1)
    return -(-n // ALIGN) * ALIGN


def plan_memory(graph: Graph, rows: int, exclude=frozenset()) -> MemoryPlan:
    """Place every node result not in ``exclude`` (e.g. results written straight to
    the caller's output) so that values alive at the same time never overlap.
    A result never shares memory with the inputs of the node that makes it."""
    last = last_uses(graph)
    live, offsets, size = [], {}, 0     # live: (offset, length, last use)
    for i, node in enumerate(graph.nodes):
        if node.out in exclude:
            continue
        live = [block for block in live if block[2] >= i]
        length = buffer_elements(node.type, rows)
        offset = first_fit(sorted(live), length)
        offsets[node.out] = offset
        live.append((offset, length, last.get(node.out, i)))
        size = max(size, offset + length)
    return MemoryPlan(offsets, size)


def first_fit(blocks, length: int) -> int:
    offset = 0
    for start, size, _ in blocks:
        if start - offset >= length:
            return offset
        offset = max(offset, start + size)
    return offset
