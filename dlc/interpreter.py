"""The reference interpreter: executes any IR graph with NumPy, op by op."""
from __future__ import annotations

import numpy as np

from .ir import Graph
from .ops import OPS


def run(graph: Graph, inputs: dict, params: dict = None) -> tuple[list, dict]:
    """Evaluate ``graph``; return (outputs, new values of updated parameters).

    ``inputs`` maps input refs to arrays; ``params`` overrides parameter values.
    """
    env = {ref: p.value for ref, p in graph.params.items()}
    env.update(params or {})
    env.update(inputs)
    for node in graph.nodes:
        args = [env[ref] for ref in node.inputs]
        result = OPS[node.op].numpy(*args, **node.attrs)
        env.update(zip(node.outs, result) if node.more else [(node.out, result)])
    outputs = [env[ref] for ref in graph.outputs]
    updates = {param: env[value] for param, value in graph.updates}
    return outputs, updates
