"""Optimizer fusion: an optimizer's moment updates and its step over one parameter become
one fused update node (``momentum_update``, ``rmsprop_update``, ``adam_update``) whose
results are the new parameter and the new moments, so the C backend runs one pass over
them.  Found by dataflow, not by position: a step whose moments are ``ewma``/``ewma_sq``
nodes of the same gradient, over parameters that nothing else reads, read by the step
alone."""
from __future__ import annotations

from ..ir import Graph, Node

# step op -> (fused op, the moment ops in the fused op's operand order, the step operand
# each moment is, where the step reads the gradient (None: only through the moments))
PATTERNS = {
    "sgd_step": ("momentum_update", ("ewma",), (1,), None),
    "rmsprop_step": ("rmsprop_update", ("ewma_sq",), (2,), 1),
    "adam_step": ("adam_update", ("ewma", "ewma_sq"), (1, 2), None),
}


def fuse_updates(graph: Graph) -> Graph:
    producers, users = graph.producers(), graph.users()
    fused, removed = {}, set()
    for node in graph.nodes:
        group = moments_of(node, producers, users, graph)
        if group:
            fused[node.out] = fused_node(node, group)
            removed.update(m.out for m in group)
    if not fused:
        return graph
    nodes = [fused.get(n.out, n) for n in graph.nodes if n.out not in removed]
    return graph.replace(nodes=nodes)


def moments_of(step: Node, producers: dict, users: dict, graph: Graph):
    """The moment nodes ``step`` fuses with, in the fused op's order, or None."""
    if step.op not in PATTERNS:
        return None
    _, ops, positions, grad_at = PATTERNS[step.op]
    group = [producers.get(step.inputs[k]) for k in positions]
    if any(m is None for m in group) or tuple(m.op for m in group) != ops:
        return None
    grads = {m.inputs[1] for m in group} | ({step.inputs[grad_at]} if grad_at else set())
    if len(grads) != 1:
        return None
    for m in group:
        slot = m.inputs[0]
        if (slot not in graph.params or [u.out for u in users.get(slot, [])] != [m.out]
                or [u.out for u in users.get(m.out, [])] != [step.out]
                or m.out in graph.outputs):
            return None
    if step.op == "adam_step" and (group[0].attrs["beta"], group[1].attrs["beta"]) != (
            step.attrs["beta1"], step.attrs["beta2"]):
        return None
    return group


def fused_node(step: Node, group) -> Node:
    """The fused update: the parameter, the moments, the gradient, then the step's scalars;
    its results the new parameter and the new moments."""
    op, *_ = PATTERNS[step.op]
    W, grad = step.inputs[0], group[0].inputs[1]
    moments = tuple(m.inputs[0] for m in group)
    if op == "momentum_update":
        inputs, attrs = (W, *moments, grad, step.inputs[2]), {"beta": group[0].attrs["beta"]}
    elif op == "rmsprop_update":
        inputs = (W, *moments, grad, step.inputs[3])
        attrs = {"beta": group[0].attrs["beta"], "eps": step.attrs["eps"]}
    else:
        inputs, attrs = (W, *moments, grad, *step.inputs[3:5]), dict(step.attrs)
    return Node(step.out, op, inputs, attrs, step.type, step.layer,
                more=tuple(m.out for m in group))
