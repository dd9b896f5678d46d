"""dlc.quantize: a quantized model's C equals its interpreter bit for bit (integer ops),
its accuracy stays within a point of the float model's, its weights take a quarter of
the bytes, and bad arguments get errors that name them."""
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split

import dlc
from dlc.quant import QuantizedModel
from dlc.quant.convert import capture
from dlc.quant.scales import output_mse_scales, quantize_weights, weight_scales
from test_export import SANITIZE, SANITIZER_ENV, STRICT, predict_with_driver

CALIBRATION_ROWS = 500


def relu_net(n_in, widths, n_out, seed, final=None):
    layers = [dlc.Input(n_in)]
    for w in widths:
        layers += [dlc.Dense(w), dlc.ReLU()]
    layers.append(dlc.Dense(n_out))
    if final is not None:
        layers.append(final)
    return dlc.Sequential(layers, seed=seed)


@pytest.mark.parametrize("activations", ["int8", "int16"])
@pytest.mark.parametrize("seed", range(4))
def test_random_relu_nets_c_equals_interpreter_bit_for_bit(seed, activations):
    """Nets of integer ops only (ReLU fused as clamps, a float output by dequantize):
    the library's outputs equal the interpreter's exactly, batches 1 to 1000."""
    rng = np.random.default_rng(seed)
    widths = [int(w) for w in rng.integers(1, 70, size=rng.integers(0, 4))]
    n_in, n_out = int(rng.integers(1, 40)), int(rng.integers(1, 12))
    net = relu_net(n_in, widths, n_out, seed)
    qnet = dlc.quantize(net, rng.normal(size=(300, n_in)), activations=activations,
                        per_channel=bool(seed % 2))
    lib = dlc.compile(qnet)
    for batch in (1, 3, 64, 257, 1000):
        X = (rng.normal(size=(batch, n_in)) * 1.5).astype(np.float32)
        np.testing.assert_array_equal(lib.predict(X), qnet.predict(X), err_msg=f"batch {batch}")


@pytest.mark.parametrize("final", [dlc.Softmax, dlc.Sigmoid, dlc.Tanh])
def test_float_activations_run_dequantized(final):
    """A tanh, sigmoid or softmax runs in floating point on the dequantized values: the C
    agrees with the interpreter within the float op's tolerance, and the quantized
    model with the float one to within 0.1 (about ten int8 steps of the tanh)."""
    rng = np.random.default_rng(1)
    net = dlc.Sequential([dlc.Input(9), dlc.Dense(20), dlc.Tanh(), dlc.Dense(5), final()],
                         seed=3)
    X = rng.normal(size=(400, 9)).astype(np.float32)
    qnet = dlc.quantize(net, X)
    ops = [n.op for n in qnet.graph.nodes]
    assert ops.count("qdense") == 2 and "tanh" in ops and "dense" not in ops
    got = dlc.compile(qnet).predict(X)
    np.testing.assert_allclose(got, qnet.predict(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, dlc.reference(net).predict(X), atol=0.1)


def test_int8_output_is_the_quantized_logits():
    rng = np.random.default_rng(2)
    net = relu_net(6, [16], 3, seed=1)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    qnet = dlc.quantize(net, X, output="int8")
    y = qnet.predict(X)
    assert y.dtype == np.int8
    place = qnet.readback[net_output_ref(qnet)]
    np.testing.assert_allclose(place.to_float(y), dlc.reference(net).predict(X),
                               atol=4 * place.scale)


def net_output_ref(qnet):
    return qnet.float_graph.outputs[0]


def trained(net, X, Y, loss, epochs=40):
    trainer = dlc.compile(net, mode="train", loss=loss, optimizer=dlc.Adam(lr=3e-3))
    trainer.fit(X, Y, epochs=epochs, batch_size=32, seed=0)
    return net


def accuracy(predict, X, y):
    out = predict(X)
    labels = out.argmax(axis=1) if out.shape[1] > 1 else (out[:, 0] > 0.5).astype(int)
    return float((labels == y).mean())


def digits():
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X.astype(np.float32), y, test_size=0.3,
                                          random_state=0)
    net = dlc.Sequential([dlc.Input(64), dlc.data.fit_normalize(Xtr), dlc.Dense(64),
                          dlc.ReLU(), dlc.Dense(32), dlc.ReLU(), dlc.Dense(10), dlc.Softmax()],
                         seed=0)
    return trained(net, Xtr, np.eye(10)[ytr], "cross_entropy"), Xtr, Xte, yte


def breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X.astype(np.float32), y, test_size=0.3,
                                          random_state=0)
    net = dlc.Sequential([dlc.Input(30), dlc.data.fit_normalize(Xtr), dlc.Dense(32),
                          dlc.ReLU(), dlc.Dense(16), dlc.ReLU(), dlc.Dense(1),
                          dlc.Sigmoid()], seed=0)
    return trained(net, Xtr, ytr[:, None], "binary_cross_entropy"), Xtr, Xte, yte


@pytest.mark.parametrize("dataset", [digits, breast_cancer])
def test_per_channel_minmax_accuracy_within_a_point(dataset):
    net, Xtr, Xte, yte = dataset()
    qnet = dlc.quantize(net, Xtr[:CALIBRATION_ROWS])
    float_accuracy = accuracy(dlc.reference(net).predict, Xte, yte)
    int8_accuracy = accuracy(dlc.compile(qnet).predict, Xte, yte)
    assert abs(int8_accuracy - float_accuracy) <= 0.01, (float_accuracy, int8_accuracy)
    int8_bytes = sum(p.value.nbytes for p in qnet.graph.params.values()
                     if p.value.dtype == np.int8)
    float_matrix_bytes = sum(p.value.nbytes for p in qnet.float_graph.params.values()
                             if p.value.ndim == 2)
    assert 4 * int8_bytes == float_matrix_bytes         # the weight matrices, 4x smaller
    assert qnet.weight_bytes < 0.4 * qnet.float_weight_bytes    # with int32 bias and scales


def test_mse_weight_scales_clip_a_rare_inputs_weights():
    """A rarely nonzero input with weights 50 times the others: "mse" clips them where
    that lowers the layer's output error on the calibration rows below min-max's."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(16, 8))
    W[3] *= 50
    X = rng.normal(size=(500, 16))
    X[rng.random(500) < 0.98, 3] = 0
    full = weight_scales(W, True)
    clipped = output_mse_scales(W, X, True)
    assert (clipped <= full).all() and (clipped < full).any()

    def error(scales):
        return ((X @ (W - quantize_weights(W, scales) * scales)) ** 2).sum(axis=0)
    assert (error(clipped) <= error(full)).all() and error(clipped).sum() < error(full).sum()


def test_compare_reports_each_layer():
    rng = np.random.default_rng(0)
    net = dlc.Sequential([dlc.Input(8), dlc.Dense(16), dlc.ReLU(), dlc.Dense(4), dlc.Tanh()],
                         seed=0)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    qnet = dlc.quantize(net, X)
    report = dlc.quantize.compare(net, qnet, X)
    assert [e.op for e in report] == ["dense", "dense", "tanh"]
    first = report[0]
    expected = dlc.reference(dlc.Sequential([dlc.Input(8), dlc.Dense(16), dlc.ReLU()],
                                            seed=0)).predict(X)
    qfirst = qnet.readback[qnet.float_graph.nodes[0].out]
    got = qfirst.to_float(capture(qnet.graph, X)[qfirst.ref])
    assert first.max_abs == pytest.approx(np.abs(got - expected).max())
    assert first.lsb <= 2.5 and "max abs" in str(report)
    other = dlc.Sequential([dlc.Input(8), dlc.Dense(4)], seed=0)
    with pytest.raises(ValueError, match="not quantized from net"):
        dlc.quantize.compare(other, qnet, X)


def test_export_and_footprint_count_int8_weights(tmp_path):
    rng = np.random.default_rng(0)
    net = relu_net(20, [64, 32], 5, seed=0)
    X = rng.normal(size=(100, 20)).astype(np.float32)
    qnet = dlc.quantize(net, X)
    exported = dlc.export_c(qnet, tmp_path, name="qmodel")
    int8_bytes = 20 * 64 + 64 * 32 + 32 * 5
    int32_bytes = 3 * (64 + 32 + 5) * 4
    assert exported.weights_bytes >= int8_bytes + int32_bytes
    assert exported.weights_bytes < int8_bytes + int32_bytes + 256
    report = dlc.inspect(qnet)
    assert report.param_bytes_after == int8_bytes + int32_bytes
    assert report.param_bytes_before == 4 * (int8_bytes + 64 + 32 + 5)
    assert "static const int8_t" in exported.source.read_text()


@pytest.mark.parametrize("arg,value,error,match", [
    ("weights", "int4", ValueError, "weights"),
    ("activations", "int4", ValueError, "activations"),
    ("per_channel", "yes", TypeError, "per_channel"),
    ("calibration", "kl", ValueError, "calibration"),
    ("output", "int16", ValueError, "output"),
])
def test_bad_arguments_are_named(arg, value, error, match):
    net = relu_net(4, [], 2, seed=0)
    with pytest.raises(error, match=match):
        dlc.quantize(net, np.zeros((10, 4)), **{arg: value})


def test_bad_model_and_rows_are_named():
    net = relu_net(4, [], 2, seed=0)
    with pytest.raises(TypeError, match="net"):
        dlc.quantize("model", np.zeros((10, 4)))
    with pytest.raises(ValueError, match="calibration_X"):
        dlc.quantize(net, np.zeros((10, 5)))
    with pytest.raises(ValueError, match="calibration_X"):
        dlc.quantize(net, np.full((10, 4), np.nan))
    qnet = dlc.quantize(net, np.ones((10, 4)))
    assert isinstance(qnet, QuantizedModel)
    with pytest.raises(ValueError, match="inference only"):
        dlc.compile(qnet, mode="train")
    with pytest.raises(ValueError, match="compiled into its C"):
        dlc.compile(qnet).load_weights(qnet.graph)


@pytest.mark.parametrize("cc", ["gcc", "clang"])
@pytest.mark.parametrize("activations", ["int8", "int16"])
def test_exported_quantized_c_equals_interpreter(activations, cc, tmp_path):
    """The standalone export, built strict and under the sanitizers (portable flags: the
    plain C tile; natively: the AVX2 one), gives the interpreter's integers exactly."""
    rng = np.random.default_rng(5)
    net = relu_net(19, [45, 20], 6, seed=3)
    qnet = dlc.quantize(net, rng.normal(size=(300, 19)), activations=activations)
    exported = dlc.export_c(qnet, tmp_path / "out", name="model")   # the driver's name
    X = (rng.normal(size=(70, 19)) * 2).astype(np.float32)
    expected = qnet.predict(X)
    for flags, env in ((STRICT, None), (STRICT + ["-march=native"], None),
                       (SANITIZE, SANITIZER_ENV)):
        for got in predict_with_driver(exported, X, tmp_path, flags, env, cc):
            np.testing.assert_array_equal(got, expected)
