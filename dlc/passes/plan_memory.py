"""Static memory planning: liveness-based reuse of buffers in one arena.

An analysis, not a rewrite: it returns a side table of offsets.  The arena is counted in
elements of the graph's float dtype; each buffer takes the bytes of its own dtype (an int8
value a quarter of a float32's), rounded up to ALIGN elements, so every buffer starts as
aligned as the vector kernels need, whatever its type.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import DTYPES, Graph
from ..ops import OPS

ALIGN = 16  # elements; keeps every buffer 64-byte aligned in float32 (128 in float64)


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


def buffer_elements(type_, rows: int, unit: int = None) -> int:
    """Elements of ``unit`` bytes (by default, of the value's own dtype) that hold ``rows``
    rows of a value of ``type_``, rounded up to ALIGN."""
    values = type_.row_size * (rows if type_.batched else 1)
    if unit is not None:
        values = -(-values * type_.np_dtype.itemsize // unit)
    return aligned(values)


def plan_memory(graph: Graph, rows: int, exclude=frozenset()) -> MemoryPlan:
    """Place every node result not in ``exclude`` (e.g. results written straight to
    the caller's output) so that values alive at the same time never overlap.
    A result shares memory with an input of its node only when the node's kernel
    works in place and that input dies there.  Offsets and lengths are in elements of the
    graph's dtype (``graph.dtype``), each buffer sized by its own dtype's bytes."""
    last = last_uses(graph)
    unit = DTYPES[graph.dtype].itemsize
    live, offsets, size = [], {}, 0     # live: (offset, length, last use)
    for i, node in enumerate(graph.nodes):
        length = buffer_elements(node.type, rows, unit)
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
