"""Graph-to-graph passes, composed in explicit pipelines.

Each pass is a plain function ``Graph -> Graph`` in a file of its own; it
checks its preconditions and leaves the graph unchanged when they fail.
"""
from __future__ import annotations

from ..ir import Graph
from ..verify import verify

INFERENCE_PIPELINE = ()


def run_pipeline(graph: Graph, passes=INFERENCE_PIPELINE) -> Graph:
    for p in passes:
        graph = verify(p(graph))
    return graph
