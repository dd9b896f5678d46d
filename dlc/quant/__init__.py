"""Post-training quantization: ``dlc.quantize(net, calibration_X, ...)`` returns a
``QuantizedModel`` (int8 weights, int8 or int16 activations, integer kernels computed
exactly by the interpreter and the C alike); ``dlc.quantize.compare(net, qnet, X)``
reports each layer's error against the float model.  ``compare`` is also an attribute of
the function, so the pair reads as one name."""
from .compare import Comparison, LayerError, compare
from .convert import quantize
from .model import QuantizedModel, Readback

quantize.compare = compare

__all__ = ["quantize", "compare", "Comparison", "LayerError", "QuantizedModel", "Readback"]
