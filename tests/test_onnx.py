"""ONNX import and export against onnx's checker, onnxruntime and PyTorch's two exporters.

Oracles: onnxruntime runs every exported or imported graph; dlc.reference is the
NumPy oracle on dlc's side.  float32 agreement is rtol 1e-5 (helpers.assert_matches);
float64 against onnxruntime is rtol 1e-9 (its kernels sum in another order).
"""
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import dlc  # noqa: E402
from dlc.lower import lower  # noqa: E402
from helpers import assert_matches  # noqa: E402
from test_export import STRICT, predict_with_driver  # noqa: E402


def run_ort(model, X):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})[0]


def assert_close_to_ort(actual, expected, dtype, what):
    if np.dtype(dtype) == np.float32:
        assert_matches(actual, expected, np.float32, what)
    else:
        np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12, err_msg=what)


def same_ir(a, b) -> bool:
    return (str(lower(a)) == str(lower(b)) and a.params.keys() == b.params.keys()
            and all(np.array_equal(a.params[k], b.params[k]) for k in a.params))


def typical_model(seed, dtype, leaky=True):
    """A trained-looking chain with the hyperparameters people write (0.01, 1e-5, 0.8)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 30))
    layers = [dlc.Input(n), dlc.Normalize(rng.normal(size=n), rng.uniform(0.1, 4, n))]
    activations = [dlc.ReLU, dlc.Sigmoid, dlc.Tanh] + ([lambda: dlc.LeakyReLU(0.2)] if leaky else [])
    for _ in range(int(rng.integers(1, 4))):
        layers.append(dlc.Dense(int(rng.integers(1, 30))))
        if rng.random() < 0.6:
            layers.append(dlc.BatchNorm(eps=float(rng.choice([1e-5, 1e-3])),
                                        momentum=float(rng.choice([0.9, 0.99]))))
        layers.append(activations[int(rng.integers(len(activations)))]())
        if rng.random() < 0.5:
            layers.append(dlc.Dropout(float(rng.choice([0.5, 0.8]))))
    layers.append(dlc.Softmax())
    net = dlc.Sequential(layers, dtype=dtype, seed=seed)
    net.set_params({k: rng.uniform(0.5, 2, v.shape) if k.endswith(("gamma", "running_var"))
                    else rng.normal(size=v.shape)
                    for k, v in net.params.items() if "." in k and not k.startswith("normal")})
    return net


def inputs(n_features, dtype, rows=200, seed=0):
    return np.random.default_rng(seed).normal(size=(rows, n_features)).astype(dtype)


# ---------------------------------------------------------------- export

@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_export_runs_in_onnxruntime_and_imports_back_to_the_same_ir(seed, dtype):
    net = typical_model(seed, dtype, leaky=dtype == "float32")  # ORT has no double LeakyRelu
    X = inputs(net.n_inputs, dtype)
    expected = dlc.reference(net).predict(X)
    for opset in (9, 13, 17, 21) if dtype == "float32" else (17, 21):
        model = dlc.to_onnx(net, opset=opset)
        assert_close_to_ort(run_ort(model, X), expected, dtype, f"opset {opset}")
        assert same_ir(dlc.from_onnx(model), net), f"opset {opset}"
        folded = dlc.to_onnx(net, opset=opset, folded=True)
        assert {n.op_type for n in folded.graph.node} <= {"Gemm", "Relu", "Sigmoid", "Tanh",
                                                         "LeakyRelu", "Softmax"}
        assert_close_to_ort(run_ort(folded, X), dlc.compile(net).predict(X), dtype,
                            f"folded, opset {opset}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_elu_and_silu_export_run_in_onnxruntime(dtype):
    """Elu round-trips to the same IR (onnxruntime runs it in float32 only); SiLU, which
    ONNX lacks, goes out as x Sigmoid(x)."""
    elu = dlc.Sequential([dlc.Input(5), dlc.Dense(7), dlc.ELU(alpha=0.6), dlc.Dense(3)],
                         dtype=dtype, seed=1)
    silu = dlc.Sequential([dlc.Input(5), dlc.Dense(7), dlc.SiLU(), dlc.Dense(3)],
                          dtype=dtype, seed=2)
    X = inputs(5, dtype) * 3
    for net in (elu, silu) if dtype == "float32" else (silu,):
        for folded in (False, True):
            model = dlc.to_onnx(net, opset=17, folded=folded)
            assert_close_to_ort(run_ort(model, X), dlc.reference(net).predict(X), dtype,
                                f"{net.layers[1].kind}, folded {folded}")
    assert "Elu" in {n.op_type for n in dlc.to_onnx(elu).graph.node}
    assert same_ir(dlc.from_onnx(dlc.to_onnx(elu, opset=17)), elu)


def test_every_opset_up_to_the_installed_onnx_exports_and_imports_back():
    net = typical_model(2, "float32")
    for opset in range(9, onnx.defs.onnx_opset_version() + 1):
        assert same_ir(dlc.from_onnx(dlc.to_onnx(net, opset=opset)), net), f"opset {opset}"


def test_a_fixed_batch_dimension_is_dlc_batch():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [7, 4], [7, 4])
    X = inputs(4, np.float32, rows=1000)
    np.testing.assert_array_equal(dlc.reference(dlc.from_onnx(model)).predict(X),
                                  np.maximum(X, 0))
    np.testing.assert_array_equal(dlc.from_onnx(model).n_inputs, 4)
    assert_matches(dlc.reference(dlc.from_onnx(model)).predict(X[:7]), run_ort(model, X[:7]),
                   np.float32, "fixed batch vs ORT")


def test_export_writes_a_file_that_passes_the_full_checker(tmp_path):
    net = typical_model(1, "float32")
    model = dlc.to_onnx(net, tmp_path / "net.onnx")
    loaded = onnx.load(str(tmp_path / "net.onnx"))
    onnx.checker.check_model(loaded, full_check=True)
    assert loaded == model
    assert [d.dim_param for d in loaded.graph.input[0].type.tensor_type.shape.dim][0] == "batch"
    assert same_ir(dlc.from_onnx(tmp_path / "net.onnx"), net)
    assert same_ir(dlc.from_onnx(model.SerializeToString()), net)


def test_a_model_trained_with_fit_exports_equal_to_dlc():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    y = (X[:, :3] @ rng.normal(size=(3, 3))).argmax(axis=1)
    net = dlc.Sequential([dlc.Input(8), dlc.Dense(16), dlc.BatchNorm(), dlc.ReLU(),
                          dlc.Dropout(0.8), dlc.Dense(3), dlc.Softmax()], seed=2)
    trainer = dlc.compile(net, mode="train", loss="cross_entropy", optimizer=dlc.Adam(lr=1e-2))
    trainer.fit(X, y, epochs=5, batch_size=32, progress=False)
    model = dlc.to_onnx(net)
    assert_matches(run_ort(model, X), dlc.reference(net).predict(X), np.float32, "trained")
    assert_matches(run_ort(model, X), dlc.compile(net).predict(X), np.float32, "trained, C")
    assert same_ir(dlc.from_onnx(model), net)


def test_export_rejects_bad_arguments():
    net = typical_model(0, "float32")
    with pytest.raises(TypeError, match="dlc.Model"):
        dlc.to_onnx("not a model")
    for opset in (8, 10_000, "17", True):
        with pytest.raises(ValueError, match="opset"):
            dlc.to_onnx(net, opset=opset)


# ---------------------------------------------------------------- import of hand-made graphs

def make_model(nodes, x_shape, y_shape, inits=(), opset=17, functions=(), elem=TensorProto.FLOAT):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", elem, x_shape)],
                              [helper.make_tensor_value_info("y", elem, y_shape)],
                              [numpy_helper.from_array(np.asarray(v, np.float32), k)
                               for k, v in inits])
    opsets = [helper.make_opsetid("", opset)] + (
        [helper.make_opsetid("local", 1)] if functions else [])
    return helper.make_model(graph, opset_imports=opsets, functions=list(functions),
                             ir_version=helper.find_min_ir_version_for(opsets[:1]))


def assert_imports_like_ort(model, n_features, rows=1000):
    net = dlc.from_onnx(model)
    X = inputs(n_features, np.float32, rows)
    expected = run_ort(model, X.reshape((rows,) + tuple(
        d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:])))
    expected = expected.reshape(rows, -1)
    assert_matches(dlc.reference(net).predict(X), expected, np.float32, "reference vs ORT")
    assert_matches(dlc.compile(net).predict(X), expected, np.float32, "C vs ORT")
    return net


def test_preprocessing_sub_div_becomes_a_normalize():
    mean, std = np.arange(4.0), np.array([1.0, 2.0, 0.5, 4.0])
    model = make_model([helper.make_node("Sub", ["x", "mean"], ["c"]),
                        helper.make_node("Div", ["c", "std"], ["y"])],
                       ["N", 4], ["N", 4], [("mean", mean), ("std", std)])
    net = assert_imports_like_ort(model, 4)
    assert [type(l).__name__ for l in net.layers] == ["Normalize"]
    np.testing.assert_allclose(net.params["normalize1.mean"], mean, rtol=1e-7)
    np.testing.assert_allclose(net.params["normalize1.var"], std ** 2, rtol=1e-7)


def test_matmul_then_add_is_one_dense_and_scales_fold_into_it():
    rng = np.random.default_rng(0)
    W, b, c = rng.normal(size=(5, 3)), rng.normal(size=3), np.array([-2.0, 0.5, 3.0])
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["h"], name="fc"),
                        helper.make_node("Add", ["h", "b"], ["hb"]),
                        helper.make_node("Mul", ["hb", "c"], ["y"])],
                       ["N", 5], ["N", 3], [("W", W), ("b", b), ("c", c)])
    net = assert_imports_like_ort(model, 5)
    assert [type(l).__name__ for l in net.layers] == ["Dense"] and net.layers[0].name == "fc"


def test_a_negative_scale_before_a_dense_folds_forward_and_alone_is_a_diagonal_dense():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(3, 2))
    model = make_model([helper.make_node("Relu", ["x"], ["r"]),
                        helper.make_node("Mul", ["r", "c"], ["m"]),
                        helper.make_node("Gemm", ["m", "W"], ["y"])],
                       ["N", 3], ["N", 2], [("c", [-1.0, 2.0, -3.0]), ("W", W)])
    net = assert_imports_like_ort(model, 3)
    assert [type(l).__name__ for l in net.layers] == ["ReLU", "Dense"]
    alone = make_model([helper.make_node("Mul", ["x", "c"], ["y"])], ["N", 3], ["N", 3],
                       [("c", [-1.0, 2.0, -3.0])])
    assert [type(l).__name__ for l in assert_imports_like_ort(alone, 3).layers] == ["Dense"]


@pytest.mark.parametrize("lo, hi", [(0.0, 6.0), (-1.0, None), (None, 0.5), (0.0, None)])
def test_clip_is_relus_between_affine_maps(lo, hi):
    names = ["x", "lo" if lo is not None else "", "hi" if hi is not None else ""]
    inits = [(k, np.float32(v)) for k, v in (("lo", lo), ("hi", hi)) if v is not None]
    model = make_model([helper.make_node("Gemm", ["x", "W"], ["h"]),
                        helper.make_node("Clip", ["h"] + names[1:], ["y"])],
                       ["N", 4], ["N", 4], [("W", 3 * np.eye(4))] + inits)
    net = assert_imports_like_ort(model, 4)
    if (lo, hi) == (0.0, None):
        assert [type(l).__name__ for l in net.layers] == ["Dense", "ReLU"]


def test_softmax_axis_follows_the_opset_semantics():
    """Before opset 13 Softmax(axis=1) of (N, 2, 3) is over the 6 values of a row; from 13
    it is over axis 1 alone, which is not a softmax of each row."""
    nodes = [helper.make_node("Softmax", ["x"], ["y"], axis=1)]
    old = make_model(nodes, ["N", 2, 3], ["N", 2, 3], opset=11)
    assert [type(l).__name__ for l in assert_imports_like_ort(old, 6).layers] == ["Softmax"]
    with pytest.raises(ValueError, match="not a softmax over each row"):
        dlc.from_onnx(make_model(nodes, ["N", 2, 3], ["N", 2, 3], opset=13))
    last = make_model([helper.make_node("Softmax", ["x"], ["y"])], ["N", 1, 5], ["N", 1, 5])
    assert_imports_like_ort(last, 5)


def test_reshape_flatten_squeeze_unsqueeze_keep_the_batch():
    W = np.random.default_rng(2).normal(size=(6, 2))
    model = make_model([
        helper.make_node("Unsqueeze", ["x", "ax1"], ["u"]),         # (N, 1, 2, 3)
        helper.make_node("Squeeze", ["u", "ax1"], ["s"]),           # (N, 2, 3)
        helper.make_node("Relu", ["s"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["f"]),         # (N, 3, 2)
        helper.make_node("Flatten", ["f"], ["g"]),                  # (N, 6)
        helper.make_node("Gemm", ["g", "W"], ["y"])],
        ["N", 2, 3], ["N", 2],
        [("ax1", np.array([1])), ("shape", np.array([0, 3, 2])), ("W", W)])
    for init in model.graph.initializer[:2]:
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.int64),
                                              init.name))
    net = assert_imports_like_ort(model, 6)
    assert [type(l).__name__ for l in net.layers] == ["ReLU", "Dense"]


def test_local_functions_are_inlined():
    body = [helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Sigmoid", ["r"], ["b"])]
    function = helper.make_function("local", "ReluSigmoid", ["a"], ["b"], body,
                                    [helper.make_opsetid("", 17)])
    model = make_model([helper.make_node("ReluSigmoid", ["x"], ["y"], domain="local")],
                       ["N", 3], ["N", 3], functions=[function])
    net = assert_imports_like_ort(model, 3)
    assert [type(l).__name__ for l in net.layers] == ["ReLU", "Sigmoid"]


def test_an_identity_graph_imports_as_an_exact_identity():
    model = make_model([helper.make_node("Identity", ["x"], ["y"])], ["N", 3], ["N", 3])
    X = inputs(3, np.float32)
    np.testing.assert_array_equal(dlc.compile(dlc.from_onnx(model)).predict(X), X)


# ---------------------------------------------------------------- errors

def test_one_error_lists_every_unsupported_node_and_loose_shape():
    model = make_model([helper.make_node("Relu", ["x"], ["a"], name="ok"),
                        helper.make_node("Cos", ["a"], ["b"], name="first_bad"),
                        helper.make_node("Sin", ["b"], ["c"], name="sine"),
                        helper.make_node("MyOp", ["c"], ["y"], name="custom", domain="acme")],
                       ["N", 3], ["N", 3])
    model.opset_import.append(helper.make_opsetid("acme", 1))
    with pytest.raises(ValueError) as info:
        dlc.from_onnx(model)
    message = str(info.value)
    assert "3 problem(s)" in message
    assert "'first_bad' (Cos, domain 'ai.onnx'): unsupported op" in message
    assert "'custom' (MyOp, domain 'acme'): unsupported op" in message
    assert "'sine' (Sin, domain 'ai.onnx'): unsupported op" in message
    assert "'ok'" not in message


def test_non_static_shapes_are_listed():
    model = make_model([helper.make_node("Relu", ["x"], ["r"]),
                        helper.make_node("Cos", ["r"], ["y"], name="cos")],
                       ["N", "F"], ["N", "F"])
    with pytest.raises(ValueError) as info:
        dlc.from_onnx(model)
    assert "input 'x' has shape (N, F): every dimension after the batch must be static" \
        in str(info.value)
    assert "'cos' (Cos, domain 'ai.onnx'): unsupported op" in str(info.value)
    assert "value 'r' has shape (N, F): dimension(s) [1] are not static" in str(info.value)
    reshape = make_model([helper.make_node("Relu", ["x"], ["r"], name="r"),
                          helper.make_node("Reshape", ["r", "s"], ["y"], name="bad")],
                         ["N", 4], ["N", 2, 2], [("s", np.array([2, -1]))])
    reshape.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.array([2, -1]), "s"))
    with pytest.raises(ValueError, match=r"'bad' \(Reshape.*keep the batch first"):
        dlc.from_onnx(reshape)


def test_an_op_of_two_computed_values_other_than_add_or_concat_is_listed():
    W = np.eye(3)
    model = make_model([helper.make_node("Gemm", ["x", "W"], ["h"], name="fc"),
                        helper.make_node("Relu", ["h"], ["r"], name="act"),
                        helper.make_node("Mul", ["r", "h"], ["y"], name="product")],
                       ["N", 3], ["N", 3], [("W", W)])
    with pytest.raises(ValueError) as info:
        dlc.from_onnx(model)
    assert "'product' (Mul, domain 'ai.onnx'): reads 2 computed values" in str(info.value)


def test_bad_arguments_and_models_are_rejected(tmp_path):
    with pytest.raises(TypeError, match="model must be a path"):
        dlc.from_onnx(42)
    with pytest.raises(ValueError, match="model: no ONNX file"):
        dlc.from_onnx(tmp_path / "missing.onnx")
    ints = make_model([helper.make_node("Relu", ["x"], ["y"])], ["N", 3], ["N", 3],
                      elem=TensorProto.INT32)
    with pytest.raises(ValueError, match="INT32; dlc runs float32 or float64"):
        dlc.from_onnx(ints)
    newest = onnx.defs.onnx_opset_version()
    future = make_model([helper.make_node("Relu", ["x"], ["y"])], ["N", 3], ["N", 3])
    future.opset_import[0].version = newest + 1
    with pytest.raises(ValueError, match=f"opset {newest + 1} is newer"):
        dlc.from_onnx(future)
    two_inputs = make_model([helper.make_node("Add", ["x", "z"], ["y"])], ["N", 3], ["N", 3])
    two_inputs.graph.input.append(helper.make_tensor_value_info("z", TensorProto.FLOAT,
                                                                ["N", 3]))
    with pytest.raises(ValueError, match="one input and at least one output"):
        dlc.from_onnx(two_inputs)


# ---------------------------------------------------------------- PyTorch round trips

torch = pytest.importorskip("torch")


class ResidualMLP(torch.nn.Module):
    """x -> Linear, BatchNorm1d, ReLU = h -> h + Dropout(LeakyReLU(Linear(h))) -> Linear,
    Softmax: the relu's output feeds two nodes, and an Add joins two computed values."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.BatchNorm1d(32),
                                        torch.nn.ReLU())
        self.branch = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.LeakyReLU(0.1),
                                          torch.nn.Dropout(0.2))
        self.head = torch.nn.Sequential(torch.nn.Linear(32, 4), torch.nn.Softmax(dim=1))

    def forward(self, x):
        h = self.stem(x)
        return self.head(h + self.branch(h))


def torch_mlp(residual=False):
    torch.manual_seed(0)
    net = ResidualMLP() if residual else torch.nn.Sequential(
        torch.nn.Linear(12, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(),
        torch.nn.Linear(32, 16), torch.nn.LeakyReLU(0.1), torch.nn.Dropout(0.2),
        torch.nn.Linear(16, 4), torch.nn.Softmax(dim=1))
    rng = np.random.default_rng(0)
    X = torch.tensor(rng.normal(size=(256, 12)), dtype=torch.float32)
    y = (X[:, :4] * 2 + X[:, 4:8]).argmax(dim=1)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(20):
        optimizer.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(net(X) + 1e-9), y)
        loss.backward()
        optimizer.step()
    return net.eval(), X.numpy(), y.numpy()


def export_torch(net, path, dynamo):
    x = torch.zeros(2, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(net, (x,), str(path), dynamo=True, input_names=["x"],
                              dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
        else:
            torch.onnx.export(net, (x,), str(path), dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "batch"}})
    return onnx.load(str(path))


@pytest.fixture(scope="module", params=["chain", "residual"])
def trained_torch(request):
    return torch_mlp(residual=request.param == "residual")


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_pytorch_mlp_through_onnx_equals_onnxruntime(dynamo, trained_torch, tmp_path):
    net, X_train, y_train = trained_torch
    model = export_torch(net, tmp_path / "mlp.onnx", dynamo)
    X = inputs(12, np.float32, rows=1000, seed=3)
    expected = run_ort(model, X)
    with torch.no_grad():
        assert_matches(expected, net(torch.tensor(X)).numpy(), np.float32, "ORT vs torch")
    imported = dlc.from_onnx(tmp_path / "mlp.onnx")
    if isinstance(net, ResidualMLP):
        assert sum(isinstance(layer, dlc.Add) for layer in imported.layers) == 1
    assert_matches(dlc.reference(imported).predict(X), expected, np.float32, "reference")
    assert_matches(dlc.compile(imported).predict(X), expected, np.float32, "compiled C")
    exported = dlc.export_c(imported, tmp_path / "c", name="model")
    internal, _, row_by_row = predict_with_driver(exported, X, tmp_path, STRICT)
    assert_matches(internal, expected, np.float32, "export_c")
    assert_matches(row_by_row, expected, np.float32, "export_c, one row at a time")
    assert same_ir(dlc.from_onnx(dlc.to_onnx(imported)), imported)

    trainer = dlc.compile(imported, mode="train", loss="cross_entropy",
                          optimizer=dlc.Adam(lr=1e-3))
    before = trainer.evaluate(X_train, y_train)["loss"]
    trainer.fit(X_train, y_train, epochs=5, batch_size=32, progress=False)
    after = trainer.evaluate(X_train, y_train)["loss"]
    assert after < before
    assert_matches(dlc.compile(imported).predict(X), dlc.reference(imported).predict(X),
                   np.float32, "fine-tuned, C vs reference")
