"""Reverse-mode automatic differentiation as an IR pass.

``gradients`` walks the graph backwards from a scalar cost, asks each op's VJP rule
(in the op registry) for the gradients of its inputs, and appends those as ordinary
IR nodes; where a value fans out, its gradient contributions are summed by explicit
``add`` nodes.  Only values that depend on a trainable parameter get a gradient.
"""
from __future__ import annotations

from .ir import Graph, GraphBuilder
from .ops import OPS
from .verify import verify


def depends_on_trainable(graph: Graph) -> set:
    """Refs whose value depends on a trainable parameter (the ones that need gradients)."""
    needs = {ref for ref, p in graph.params.items() if p.trainable}
    for node in graph.nodes:
        if any(ref in needs for ref in node.inputs):
            needs.add(node.out)
    return needs


def backward(b: GraphBuilder, graph: Graph, cost: str) -> dict:
    """Append the backward pass of ``graph`` from the scalar ``cost`` to the builder
    ``b`` (which already holds the forward nodes); return {trainable param: gradient ref}."""
    if graph.types()[cost].shape != ():
        raise ValueError(f"the cost {cost} must be a scalar, got {graph.types()[cost]}")
    needs = depends_on_trainable(graph)
    grads = {cost: b.add("ones_like", cost, layer="loss")}
    for node in reversed(graph.nodes):
        if node.out not in grads or node.out not in needs:
            continue
        rule = OPS[node.op].vjp
        if rule is None:
            raise ValueError(f"layer {node.layer!r}: op {node.op} has no gradient rule (VJP)")
        needed = tuple(ref in needs for ref in node.inputs)
        for ref, grad in zip(node.inputs, rule(b, node, grads[node.out], needed)):
            if grad is None or ref not in needs:
                continue
            grads[ref] = b.add("add", grads[ref], grad, layer=node.layer) if ref in grads else grad
    return {ref: grads[ref] for ref, p in graph.params.items()
            if p.trainable and ref in grads}


def gradients(graph: Graph, cost: str) -> tuple:
    """(graph whose outputs are the cost and then every gradient, {param: gradient ref})."""
    b = GraphBuilder.extending(graph)
    grads = backward(b, graph, cost)
    return verify(b.build([cost, *grads.values()], graph.updates)), grads
