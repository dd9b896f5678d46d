"""Quantized models and ONNX: dlc's QDQ export runs in onnxruntime with outputs within
one step of the output scale of dlc's; onnxruntime's quantize_static models (QDQ) import
as QuantizedModels whose C agrees with onnxruntime to one step."""
import numpy as np
import onnxruntime as ort
import pytest
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, \
    quantize_static

import dlc
from dlc.quant import QuantizedModel

ort.set_default_logger_severity(3)


def session(model):
    """onnxruntime at its basic optimisations: the QDQ nodes run as written.  (Its extended
    ones fuse them into u8s8 kernels that on AVX2 saturate pairs of products, its
    documented reduce_range caveat; with full-range int8 weights those outputs differ
    from onnxruntime's own basic ones.)"""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    data = model if isinstance(model, (bytes, str)) else model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


NETS = {
    "relu": lambda: [dlc.Input(12), dlc.Dense(40), dlc.ReLU(), dlc.Dense(16), dlc.ReLU(),
                     dlc.Dense(4)],
    "tanh": lambda: [dlc.Input(12), dlc.Dense(40), dlc.Tanh(), dlc.Dense(4)],
    "normalized": lambda: [dlc.Input(12),
                           dlc.Normalize(mean=np.arange(12.0), var=np.arange(1.0, 13.0)),
                           dlc.Dense(24), dlc.ReLU(), dlc.Dense(3), dlc.Softmax()],
}


@pytest.mark.parametrize("output", ["float", "int8"])
@pytest.mark.parametrize("name", sorted(NETS))
def test_qdq_export_runs_in_onnxruntime_within_one_step(name, output):
    rng = np.random.default_rng(0)
    net = dlc.Sequential(NETS[name](), seed=1)
    X = (rng.normal(size=(400, 12)) * 3).astype(np.float32)
    qnet = dlc.quantize(net, X, output=output)
    got = session(dlc.to_onnx(qnet)).run(None, {"x": X})[0]
    mine = dlc.compile(qnet).predict(X) if output == "float" else qnet.predict(X)
    assert got.dtype == mine.dtype
    step = 1 if output == "int8" else qnet.readback[qnet.float_graph.outputs[0]].scale
    if name == "normalized" and output == "float":
        step = 1 / 255          # the softmax of the dequantized logits: within a probability step
    assert np.abs(got.astype(np.float64) - mine).max() <= step * 1.0001


def test_int16_activations_need_opset_21():
    rng = np.random.default_rng(0)
    net = dlc.Sequential(NETS["relu"](), seed=1)
    qnet = dlc.quantize(net, rng.normal(size=(50, 12)), activations="int16")
    with pytest.raises(ValueError, match="opset"):
        dlc.to_onnx(qnet, opset=17)


class Rows(CalibrationDataReader):
    def __init__(self, X):
        self.batches = iter([{"x": X[i:i + 50]} for i in range(0, len(X), 50)])

    def get_next(self):
        return next(self.batches, None)


@pytest.mark.parametrize("activation_type", [QuantType.QInt8, QuantType.QUInt8])
@pytest.mark.parametrize("per_channel", [True, False])
def test_quantize_static_model_imports(tmp_path, per_channel, activation_type):
    rng = np.random.default_rng(1)
    net = dlc.Sequential([dlc.Input(20), dlc.Dense(48), dlc.ReLU(), dlc.Dense(24), dlc.Tanh(),
                          dlc.Dense(6)], seed=2)
    X = (rng.normal(size=(500, 20)) * 2).astype(np.float32)
    dlc.to_onnx(net, tmp_path / "float.onnx", folded=True)
    quantize_static(str(tmp_path / "float.onnx"), str(tmp_path / "int8.onnx"), Rows(X),
                    quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=activation_type, weight_type=QuantType.QInt8)
    qnet = dlc.from_onnx(tmp_path / "int8.onnx")
    assert isinstance(qnet, QuantizedModel)
    assert [n.op for n in qnet.graph.nodes].count("qdense") == 3
    expected = session(str(tmp_path / "int8.onnx")).run(None, {"x": X})[0]
    got = dlc.compile(qnet).predict(X)
    step = qnet.readback[qnet.float_graph.outputs[0]].scale
    assert np.abs(got - expected).max() <= step * 1.0001
