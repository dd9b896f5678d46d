"""Dead-code elimination: drop nodes and parameters that no output or update needs."""
from __future__ import annotations

from ..ir import Graph


def eliminate_dead(graph: Graph) -> Graph:
    needed = set(graph.outputs)
    for param, value in graph.updates:
        needed |= {param, value}
    kept = []
    for node in reversed(graph.nodes):
        if needed.intersection(node.outs):
            kept.append(node)
            needed.update(node.inputs)
    params = {ref: p for ref, p in graph.params.items() if ref in needed}
    if len(kept) == len(graph.nodes) and len(params) == len(graph.params):
        return graph
    return graph.replace(nodes=kept[::-1], params=params)
