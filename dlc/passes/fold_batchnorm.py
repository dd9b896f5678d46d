"""Fold an inference BatchNorm into the Dense layer before it.

dense(x, W, b) followed by batchnorm(gamma, beta, mean, var) is one dense with
W' = W * gamma / sqrt(var + eps) (per output unit) and
b' = (b - mean) * gamma / sqrt(var + eps) + beta.
A BatchNorm with no foldable Dense before it stays: it is already a per-feature
scale-and-shift.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ir import Graph
from .rewrite import fresh_param, rename_uses, sole_user


def fold_batchnorm_params(W, b, gamma, beta, mean, var, eps):
    """(W', b') of the dense layer equal to dense(W, b) followed by the batch norm.
    Computed in float64, returned in W's dtype."""
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    W2 = np.asarray(W, np.float64) * scale
    b2 = (np.asarray(b, np.float64) - mean) * scale + beta
    return W2.astype(W.dtype), b2.astype(W.dtype)


def fold_batchnorm(graph: Graph) -> Graph:
    while (pair := next_foldable(graph)) is not None:
        graph = fold_one(graph, *pair)
    return graph


def next_foldable(graph: Graph):
    """The first (batchnorm, dense) pair that is safe to fold, else None: the dense
    has no activation, no other reader, and both layers' operands are constants."""
    producers = graph.producers()
    for bn in graph.nodes:
        dense = producers.get(bn.inputs[0]) if bn.op == "batchnorm" else None
        if (dense is not None and dense.op == "dense" and dense.attrs["activation"] == "none"
                and sole_user(graph, dense.out) is bn
                and all(r in graph.params for r in dense.inputs[1:] + bn.inputs[1:])):
            return bn, dense
    return None


def fold_one(graph: Graph, bn, dense) -> Graph:
    params = dict(graph.params)
    W, b, gamma, beta, mean, var = (params[r].value for r in dense.inputs[1:] + bn.inputs[1:])
    W2, b2 = fold_batchnorm_params(W, b, gamma, beta, mean, var, bn.attrs["eps"])
    inputs = (dense.inputs[0],
              fresh_param(params, dense.inputs[1], W2, dense.layer),
              fresh_param(params, dense.inputs[2], b2, dense.layer))
    folded = replace(dense, inputs=inputs, layer=f"{dense.layer}+{bn.layer}")
    nodes = [folded if n is dense else n for n in graph.nodes if n is not bn]
    return rename_uses(graph.replace(params=params, nodes=nodes), {bn.out: dense.out})
