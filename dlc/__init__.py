"""dlc: a static-graph compiler from a small Python DSL for dense networks to C."""
__version__ = "0.1.0"

from .dsl import (BatchNorm, Dense, Dropout, Input, LeakyReLU, Model, Normalize,  # noqa: E402
                  ReLU, Sequential, Sigmoid, Softmax, Tanh)
from .api import compile, reference  # noqa: E402
from .export import export_c  # noqa: E402
from .inspect import inspect  # noqa: E402
from . import callbacks, data  # noqa: E402
from .callbacks import EarlyStopping  # noqa: E402
from .checkpoint import load, save  # noqa: E402
from .diagnose import diagnose  # noqa: E402
from .plots import plot_history  # noqa: E402
from .optim import (SGD, Adam, ExponentialDecay, InverseTimeDecay, Momentum,  # noqa: E402
                    RMSProp, SqrtDecay, StepDecay)



def from_onnx(model):
    """A dlc model from an ONNX model (path, ModelProto or bytes); see dlc.onnx."""
    from .onnx import from_onnx as convert
    return convert(model)


def to_onnx(net, path=None, opset=None, folded=False):
    """The model's inference graph as ONNX (written to ``path`` if given); see dlc.onnx."""
    from .onnx import DEFAULT_OPSET, to_onnx as convert
    return convert(net, path, opset=DEFAULT_OPSET if opset is None else opset, folded=folded)


__all__ = ["BatchNorm", "Dense", "Dropout", "Input", "LeakyReLU", "Model", "Normalize", "ReLU",
           "Sequential", "Sigmoid", "Softmax", "Tanh", "compile", "reference",
           "export_c", "inspect",
           "callbacks", "data", "EarlyStopping", "load", "save", "diagnose", "plot_history",
           "SGD", "Momentum", "RMSProp", "Adam", "InverseTimeDecay", "ExponentialDecay",
           "SqrtDecay", "StepDecay", "from_onnx", "to_onnx"]
