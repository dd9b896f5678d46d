"""dlc: a static-graph compiler from a small Python DSL for dense networks to C."""
__version__ = "0.1.0"

from .dsl import (BatchNorm, Dense, Dropout, Input, LeakyReLU, Model, Normalize,  # noqa: E402
                  ReLU, Sequential, Sigmoid, Softmax, Tanh)
from .api import compile, reference  # noqa: E402

__all__ = ["BatchNorm", "Dense", "Dropout", "Input", "LeakyReLU", "Model", "Normalize", "ReLU",
           "Sequential", "Sigmoid", "Softmax", "Tanh", "compile", "reference"]
