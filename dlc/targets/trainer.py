"""The host trainer: dlc_train_epoch runs whole epochs of a training graph in C."""
from __future__ import annotations

from ..ir import Graph
from ..program import training_program
from . import Target

# The square roots of RMSProp, Adam and batch norm vectorize only when they need not set
# errno (which nothing reads); this makes an Adam step about 4x faster at batch size 1.
TRAINER = Target("trainer", header="train.h.j2", source="train.c.j2",
                 flags=("-fno-math-errno",))


def generate_train_module(graph: Graph):
    """(header, source, program) of the cffi module of a training graph."""
    program = training_program(graph)
    return (*TRAINER.render(program), program)
