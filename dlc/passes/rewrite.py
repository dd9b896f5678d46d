"""Small helpers the passes share for graph surgery (never a pass themselves)."""
from __future__ import annotations

import re
from dataclasses import replace

from ..ir import Graph, Param


def sole_user(graph: Graph, ref: str):
    """The one node reading ``ref``, or None when it has several readers or is an output."""
    users = graph.users().get(ref, [])
    if len(users) != 1 or ref in graph.outputs or any(v == ref for _, v in graph.updates):
        return None
    return users[0]


def rename_uses(graph: Graph, renames: dict) -> Graph:
    """Every read of a key of ``renames`` (by nodes, outputs, updates) reads its value instead."""
    def new(ref):
        while ref in renames:
            ref = renames[ref]
        return ref
    nodes = [node if not set(node.inputs) & set(renames)
             else replace(node, inputs=[new(r) for r in node.inputs])
             for node in graph.nodes]
    return graph.replace(nodes=nodes, outputs=[new(r) for r in graph.outputs],
                         updates=[(p, new(v)) for p, v in graph.updates])


def fresh_param(params: dict, base: str, value, layer: str) -> str:
    """Add a new constant ``value`` under an unused ref derived from ``base``; return the ref."""
    base = re.sub(r"\.folded\d*$", "", base)
    ref, n = f"{base}.folded", 1
    while ref in params:
        n += 1
        ref = f"{base}.folded{n}"
    params[ref] = Param(value, trainable=False, layer=layer)
    return ref

