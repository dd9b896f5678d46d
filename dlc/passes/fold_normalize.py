"""Fold a fixed input normalisation into the Dense layer that reads it.

dense((x - mean) / s, W, b) with s = sqrt(var + eps) is dense(x, W', b') with
W' = W / s (per input row) and b' = b - (mean / s) W.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ir import Graph
from .rewrite import fresh_param, sole_user


def fold_normalize_params(W, b, mean, var, eps):
    """(W', b') of the dense layer equal to the normalisation followed by dense(W, b).
    Computed in float64, returned in W's dtype."""
    W64 = np.asarray(W, np.float64)
    scale = 1 / np.sqrt(np.asarray(var, np.float64) + eps)
    W2 = W64 * scale[:, None]
    b2 = np.asarray(b, np.float64) - (np.asarray(mean, np.float64) * scale) @ W64
    return W2.astype(W.dtype), b2.astype(W.dtype)


def fold_normalize(graph: Graph) -> Graph:
    while (pair := next_foldable(graph)) is not None:
        graph = fold_one(graph, *pair)
    return graph


def next_foldable(graph: Graph):
    """The first (normalize, dense) pair whose normalize output is read by that dense
    alone, as its x operand, all operands being constants; else None."""
    for norm in graph.nodes:
        dense = sole_user(graph, norm.out) if norm.op == "normalize" else None
        if (dense is not None and dense.op == "dense" and dense.inputs[0] == norm.out
                and norm.out not in dense.inputs[1:]
                and all(r in graph.params for r in dense.inputs[1:] + norm.inputs[1:])):
            return norm, dense
    return None


def fold_one(graph: Graph, norm, dense) -> Graph:
    params = dict(graph.params)
    W, b, mean, var = (params[r].value for r in dense.inputs[1:] + norm.inputs[1:])
    W2, b2 = fold_normalize_params(W, b, mean, var, norm.attrs["eps"])
    inputs = (norm.inputs[0],
              fresh_param(params, dense.inputs[1], W2, dense.layer),
              fresh_param(params, dense.inputs[2], b2, dense.layer))
    folded = replace(dense, inputs=inputs, layer=f"{norm.layer}+{dense.layer}")
    nodes = [folded if n is dense else n for n in graph.nodes if n is not norm]
    return graph.replace(params=params, nodes=nodes)
