"""Fuse an activation into the epilogue of the Dense layer before it
(the bias is already there): dense(x, W, b) then relu is dense(..., activation=relu).
A softmax fuses too: its kernel computes a narrow layer's logits with rows in the vector
lanes, where the softmax wants them."""
from __future__ import annotations

from dataclasses import replace

from ..ir import Graph
from ..ops import OPS
from .rewrite import rename_uses, sole_user


def fuse_epilogue(graph: Graph) -> Graph:
    while (pair := next_fusable(graph)) is not None:
        graph = fuse_one(graph, *pair)
    return graph


def next_fusable(graph: Graph):
    """The first (activation, dense) pair where the dense has no activation yet and
    the activation is its only reader; else None."""
    for dense in graph.nodes:
        act = sole_user(graph, dense.out) if dense.op == "dense" else None
        if (act is not None and OPS[act.op].kernel.fuses_into_dense
                and dense.attrs["activation"] == "none"):
            return act, dense
    return None


def fuse_one(graph: Graph, act, dense) -> Graph:
    attrs = {**dense.attrs, "activation": act.op, "alpha": act.attrs.get("alpha", 0.0)}
    fused = replace(dense, attrs=attrs, layer=f"{dense.layer}+{act.layer}")
    nodes = [fused if n is dense else n for n in graph.nodes if n is not act]
    return rename_uses(graph.replace(nodes=nodes), {act.out: dense.out})
