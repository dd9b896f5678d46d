"""Training in generated C, one module per job; the data flow reads down the list:

- ``losses``: the table of losses (their IR op, fused output layer, targets, metrics);
- ``graph``: the training graph (forward in training form, loss, penalty, backward,
  optimizer update) built from a model;
- ``c_backend`` and ``reference_backend``: the two runners of that graph, generated C
  by whole epochs and the NumPy interpreter step by step;
- ``arguments`` and ``progress``: the checks of fit's arguments and its progress bar;
- ``trainer``: ``Trainer`` (the state block and the epoch loop) and ``History``;
- ``options``: the options of ``compile(net, mode="train")`` checked, a Trainer made.
"""
from .graph import MAX_SEED, cost_graph, training_graph
from .losses import LOSSES
from .options import (compile_trainer, default_backend, make_trainer, reference_trainer,
                      train_option_names)
from .trainer import CHUNK_SECONDS, History, Trainer

__all__ = ["MAX_SEED", "cost_graph", "training_graph", "LOSSES", "compile_trainer",
           "default_backend", "make_trainer", "reference_trainer", "train_option_names", "CHUNK_SECONDS",
           "History", "Trainer"]
