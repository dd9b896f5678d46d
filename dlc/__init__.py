"""dlc: a static-graph compiler from a small Python DSL for dense networks to C."""
from .version import __version__

from .dsl import (ELU, Add, BatchNorm, Concatenate, Dense, Dropout, Input,  # noqa: E402
                  LeakyReLU, LogSoftmax, Model, Normalize, ReLU, Sequential, Sigmoid, SiLU,
                  Softmax, Tanh)
from .api import compile, reference  # noqa: E402
from .lower import lower  # noqa: E402
from .export import export_c  # noqa: E402
from .inspect import inspect  # noqa: E402
from . import callbacks, data  # noqa: E402
from .callbacks import EarlyStopping  # noqa: E402
from .checkpoint import load, save  # noqa: E402
from .diagnose import diagnose  # noqa: E402
from .plots import plot_history  # noqa: E402
from .optim import (SGD, Adam, ExponentialDecay, InverseTimeDecay, Momentum,  # noqa: E402
                    RMSProp, SqrtDecay, StepDecay)

from .quant import QuantizedModel, quantize  # noqa: E402  (dlc.quantize.compare too)
# dlc.onnx's from_onnx and to_onnx, with QDQ ONNX for quantized models (onnx loads on use)
from .onnx_quant import from_onnx, to_onnx  # noqa: E402

__all__ = ["Add", "BatchNorm", "Concatenate", "LogSoftmax", "Dense", "Dropout", "ELU", "Input",
           "LeakyReLU", "Model", "Normalize",
           "ReLU", "Sequential", "Sigmoid", "SiLU", "Softmax", "Tanh", "compile", "reference",
           "lower",
           "export_c", "inspect",
           "callbacks", "data", "EarlyStopping", "load", "save", "diagnose", "plot_history",
           "SGD", "Momentum", "RMSProp", "Adam", "InverseTimeDecay", "ExponentialDecay",
           "SqrtDecay", "StepDecay", "from_onnx", "to_onnx", "from_sklearn", "quantize",
           "QuantizedModel"]


def __getattr__(name):
    # from_sklearn lives in dlc.sklearn, the one module that imports scikit-learn (an
    # optional dependency): importing dlc must not import it, so it is looked up on use.
    if name == "from_sklearn":
        from .sklearn import from_sklearn
        return from_sklearn
    if name == "tune":          # the search: loaded on use, as it brings executors along
        import importlib
        return importlib.import_module(".tune", __name__)
    raise AttributeError(f"module 'dlc' has no attribute {name!r}")
