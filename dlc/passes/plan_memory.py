"""Static memory planning: liveness-based reuse of buffers in one arena.

An analysis, not a rewrite: it returns a side table of offsets.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph
from ..ops import OPS

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


def aligned(n: int) -> int:
    """n rounded up to a whole number of ALIGN elements."""
    return -(-n // ALIGN) * ALIGN


def buffer_elements(type_, rows: int) -> int:
    return aligned(type_.row_size * (rows if type_.batched else 1))


def plan_memory(graph: Graph, rows: int, exclude=frozenset()) -> MemoryPlan:
    """Place every node result not in ``exclude`` (e.g. results written straight to
    the caller's output) so that values alive at the same time never overlap.
    A result shares memory with an input of its node only when the node's kernel
    works in place and that input dies there."""
    last = last_uses(graph)
    live, offsets, size = [], {}, 0     # live: (offset, length, last use)
    for i, node in enumerate(graph.nodes):
        length = buffer_elements(node.type, rows)
        for k, ref in enumerate(node.outs):
            if ref in exclude:
                continue
            reused = in_place_block(graph, node, i, live, offsets, last, length) if k == 0 else None
            live = [block for block in live if block[2] >= i and block is not reused]
            offset = reused[0] if reused else first_fit(sorted(live), length)
            offsets[ref] = offset
            live.append((offset, length, last.get(ref, i)))
            size = max(size, offset + length)
    return MemoryPlan(offsets, size)


def in_place_block(graph, node, i, live, offsets, last, length):
    """The live block of ``node``'s first operand when the result may overwrite it."""
    if not OPS[node.op].kernel.in_place or not node.inputs:
        return None
    x = node.inputs[0]
    if x not in offsets or last.get(x) != i or x in node.inputs[1:]:
        return None
    return next((b for b in live if b[0] == offsets[x] and b[1] == length and b[2] == i), None)


def first_fit(blocks, length: int) -> int:
    offset = 0
    for start, size, _ in blocks:
        if start - offset >= length:
            return offset
        offset = max(offset, start + size)
    return offset
