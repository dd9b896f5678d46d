"""Graph-to-graph passes, composed in explicit pipelines.

Each pass is a plain function ``Graph -> Graph`` in a file of its own; it
checks its preconditions and leaves the graph unchanged when they fail.
Memory planning (``plan_memory``) is the analysis codegen runs last.
"""
from __future__ import annotations

from ..ir import Graph
from ..verify import verify
from .eliminate_dead import eliminate_dead
from .fold_batchnorm import fold_batchnorm
from .fold_normalize import fold_normalize
from .fuse_epilogue import fuse_epilogue
from .fuse_updates import fuse_updates
from .remove_dropout import remove_dropout

# Order matters: dropout between a dense and its batch norm must go before the fold,
# and folding comes before fusing (a dense with an activation folds nothing).
INFERENCE_PIPELINE = (remove_dropout, fold_normalize, fold_batchnorm, fuse_epilogue,
                      eliminate_dead)

# A training graph: each optimizer's passes over a parameter become one fused update.
TRAINING_PIPELINE = (fuse_updates,)


def run_pipeline(graph: Graph, passes=INFERENCE_PIPELINE) -> Graph:
    for p in passes:
        graph = verify(p(graph))
    return graph
