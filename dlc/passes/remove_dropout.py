"""Remove Dropout: inverted dropout is the identity at inference time."""
from __future__ import annotations

from ..ir import Graph
from .rewrite import rename_uses


def remove_dropout(graph: Graph) -> Graph:
    dropouts = [n for n in graph.nodes if n.op == "dropout"]
    if not dropouts:
        return graph
    kept = [n for n in graph.nodes if n.op != "dropout"]
    return rename_uses(graph.replace(nodes=kept), {n.out: n.inputs[0] for n in dropouts})
