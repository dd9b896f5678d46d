"""Graphs beyond a chain: dlc.Add, dlc.Concatenate, a value read by several layers and
models with several outputs, through the DSL, the passes, memory planning, the C
library, the export, training and ONNX.

Oracles: dlc.reference (the NumPy interpreter) for C; finite differences for the
gradients; PyTorch for the training steps of a residual MLP; onnxruntime for ONNX.
"""
import subprocess

import numpy as np
import pytest

import dlc
from dlc import interpreter
from dlc.lower import lower
from dlc.passes import run_pipeline
from dlc.passes.eliminate_dead import eliminate_dead
from dlc.passes.plan_memory import buffer_elements, last_uses, plan_memory
from dlc.train import compile_trainer, reference_trainer
from dlc.train.graph import cost_graph
from helpers import assert_matches
from test_autodiff import check_gradients
from test_export import STRICT, compile_c, predict_with_driver


def residual_net(dtype="float32", seed=0, final=dlc.Softmax):
    """x -> dense, tanh = h; batchnorm(h + relu(dense(h))); beside x; dense; final: a
    value read by two layers, a residual Add and a Concatenate.  (No batch norm right
    after a dense: that bias would have a gradient of exactly zero, all rounding noise.)"""
    x = dlc.Input(5)
    h = dlc.Tanh(name="act")(dlc.Dense(16, name="stem")(x))
    branch = dlc.Dense(16, name="inner")(h)
    r = dlc.BatchNorm(name="bn")(dlc.Add(name="residual")([h, dlc.ReLU()(branch)]))
    c = dlc.Concatenate(name="join")([r, dlc.Dropout(0.8)(dlc.Dense(3)(x))])
    out = dlc.Dense(4, name="head")(c)
    net = dlc.Model(x, final()(out) if final else out, dtype=dtype, seed=seed)
    randomize(net, seed)
    return net


def two_outputs(dtype="float32", seed=0):
    """A classifier head and a regression head on one trunk; the trunk is an output too."""
    x = dlc.Input(6)
    trunk = dlc.ReLU()(dlc.Dense(12)(x))
    a = dlc.LogSoftmax()(dlc.Dense(3)(trunk))
    b = dlc.Dense(2)(dlc.Add()([trunk, dlc.Dense(12)(trunk), dlc.Sigmoid()(trunk)]))
    net = dlc.Model(x, [a, b, trunk], dtype=dtype, seed=seed)
    randomize(net, seed)
    return net


def randomize(net, seed):
    rng = np.random.default_rng(seed)
    net.set_params({k: rng.uniform(0.5, 2, v.shape) if k.endswith(("gamma", "running_var"))
                    else rng.normal(size=v.shape) * 0.5 for k, v in net.params.items()})


def rows(net, n=300, seed=1):
    return (np.random.default_rng(seed).normal(size=(n, net.n_inputs)) * 2).astype(net.dtype)


# ---------------------------------------------------------------- the DSL

def test_merge_layers_check_their_inputs():
    x = dlc.Input(4)
    a, b = dlc.Dense(3, name="a")(x), dlc.Dense(5, name="b")(x)
    with pytest.raises(ValueError, match=r"layer 'sum' adds tensors of one width, got widths \[3, 5\]"):
        dlc.Add(name="sum")([a, b])
    assert dlc.Concatenate()([a, b, x]).features == 12
    with pytest.raises(TypeError, match="list of at least two dlc tensors"):
        dlc.Add()(a)
    with pytest.raises(TypeError, match="list of at least two dlc tensors"):
        dlc.Concatenate()([a])
    with pytest.raises(ValueError, match="reads the same tensor twice"):
        dlc.Add()([a, a])


def test_a_dropped_side_branch_is_an_error_naming_its_layer():
    x = dlc.Input(4)
    h = dlc.Dense(8, name="trunk")(x)
    kept = dlc.Dense(2, name="kept")(h)
    side = dlc.Dense(3, name="side")(h)        # noqa: F841  (held, never an output)
    with pytest.raises(ValueError, match="layer 'side' reads the output of layer 'trunk' "
                                         "but reaches none of the model's outputs"):
        dlc.Model(x, kept)
    net = dlc.Model(x, [kept, side])          # listed: supported
    assert net.output_widths == (2, 3)
    # A model ending at h is a sub-model: layers built on its output are not dropped.
    assert [layer.name for layer in dlc.Model(x, h).layers] == ["trunk"]
    # Once a model holds the side branch, another model may leave it out.
    assert [layer.name for layer in dlc.Model(x, kept).layers] == ["trunk", "kept"]


def test_model_outputs_are_checked():
    x = dlc.Input(4)
    a = dlc.Dense(2)(x)
    with pytest.raises(TypeError, match="Model outputs must be a dlc tensor or a list"):
        dlc.Model(x, [a, "b"])
    with pytest.raises(TypeError, match="Model outputs must be a dlc tensor or a list"):
        dlc.Model(x, [])
    with pytest.raises(ValueError, match="same tensor twice"):
        dlc.Model(x, [a, a])
    shared = dlc.Dense(3, name="shared")
    y = dlc.Add()([shared(x), dlc.Dense(3)(x)])
    with pytest.raises(ValueError, match="layer 'shared' is used twice"):
        dlc.Model(x, dlc.Add()([y, shared(x)]))


def test_lowering_keeps_the_wiring_and_a_chain_its_order():
    net = residual_net()
    graph = lower(net)
    ops = [n.op for n in graph.nodes]
    assert ops.count("add") == 1 and ops.count("concat") == 1
    add = next(n for n in graph.nodes if n.op == "add")
    tanh = next(n for n in graph.nodes if n.op == "tanh")
    assert tanh.out in add.inputs and len(graph.users()[tanh.out]) == 2
    chain = dlc.Sequential([dlc.Input(3), dlc.Dense(4), dlc.ReLU(), dlc.Dense(2)])
    assert [l.name for l in chain.layers] == ["dense1", "relu1", "dense2"]
    assert chain.wiring == ((-1,), (0,), (1,))


# ---------------------------------------------------------------- passes and memory

def test_passes_keep_every_output_and_refuse_unsafe_folds():
    net = two_outputs("float64")
    graph = lower(net)
    optimised = run_pipeline(graph)
    assert len(optimised.outputs) == 3
    X = rows(net)
    for got, expected in zip(interpreter.run(optimised, {"%x": X})[0],
                             interpreter.run(graph, {"%x": X})[0]):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert eliminate_dead(graph) is graph


@pytest.mark.parametrize("layer, op", [(dlc.BatchNorm, "batchnorm"), (dlc.ReLU, "relu")])
def test_a_dense_read_twice_folds_and_fuses_nothing(layer, op):
    x = dlc.Input(3)
    h = dlc.Dense(4)(x)
    net = dlc.Model(x, dlc.Add()([layer()(h), h]), dtype="float64")
    randomize(net, 3)
    optimised = run_pipeline(lower(net))
    assert op in [n.op for n in optimised.nodes]
    assert all(n.attrs["activation"] == "none" for n in optimised.nodes if n.op == "dense")
    X = rows(net)
    np.testing.assert_allclose(interpreter.run(optimised, {"%x": X})[0][0],
                               dlc.reference(net).predict(X), rtol=1e-12)


@pytest.mark.parametrize("make", [residual_net, two_outputs])
def test_memory_plan_never_overlaps_values_alive_together(make):
    """Each value's block holds from its node to its last reader (outputs to the end);
    two blocks alive at once are disjoint unless one is computed in place over the other."""
    for graph in (lower(make()), run_pipeline(lower(make()))):
        plan = plan_memory(graph, 64)
        last = last_uses(graph)
        spans = {}
        for i, node in enumerate(graph.nodes):
            start = plan.offsets[node.out]
            spans[node.out] = (i, last.get(node.out, i), start,
                               start + buffer_elements(node.type, 64))
        for a, (born_a, dies_a, lo_a, hi_a) in spans.items():
            for b, (born_b, dies_b, lo_b, hi_b) in spans.items():
                if a >= b or not (born_a <= dies_b and born_b <= dies_a):
                    continue
                overlap = lo_a < hi_b and lo_b < hi_a
                in_place = (dies_a == born_b or dies_b == born_a)
                assert not overlap or in_place, (a, b, spans[a], spans[b])


# ---------------------------------------------------------------- C against the reference

@pytest.mark.parametrize("batch", [1, 7, 300])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("final", [dlc.Softmax, dlc.LogSoftmax, None])
def test_residual_and_concat_c_equals_reference(final, dtype, batch):
    net = residual_net(dtype, final=final)
    X = rows(net, batch)
    assert_matches(dlc.compile(net).predict(X), dlc.reference(net).predict(X), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_several_outputs_predict_a_tuple_in_c_and_the_reference(dtype):
    net = two_outputs(dtype)
    X = rows(net)
    got, expected = dlc.compile(net).predict(X), dlc.reference(net).predict(X)
    assert isinstance(got, tuple) and isinstance(expected, tuple)
    assert [y.shape for y in got] == [(300, 3), (300, 2), (300, 12)]
    for k, (a, b) in enumerate(zip(got, expected)):
        assert_matches(a, b, dtype, f"output {k}")


def test_several_outputs_export_side_by_side(tmp_path):
    net = two_outputs("float32")
    exported = dlc.export_c(net, tmp_path / "out", name="model")
    assert exported.n_outputs == 3 + 2 + 12
    X = rows(net, 150)
    expected = np.concatenate(dlc.reference(net).predict(X), axis=1)
    for y in predict_with_driver(exported, X, tmp_path, STRICT):
        assert_matches(y, expected, np.float32, "export_c")


OUTPUTS_DRIVER = """
#include <stdio.h>
#include <stdlib.h>
#include "model.h"

/* x.bin -> y0.bin, y1.bin, y2.bin through model_predict_outputs, with its own workspace
 * and with the internal one. */
int main(int argc, char **argv)
{
    if (argc != 3) {
        return 1;
    }
    size_t rows = (size_t)atoi(argv[2]);
    static const size_t widths[3] = {MODEL_OUTPUT_0_WIDTH, MODEL_OUTPUT_1_WIDTH,
                                     MODEL_OUTPUT_2_WIDTH};
    model_real *x = malloc(rows * MODEL_N_INPUTS * sizeof(model_real)), *y[3];
    void *workspace = malloc(MODEL_WORKSPACE_BYTES);
    FILE *f = fopen(argv[1], "rb");
    if (!x || !workspace || !f || fread(x, sizeof(model_real), rows * MODEL_N_INPUTS, f)
            != rows * MODEL_N_INPUTS) {
        return 2;
    }
    fclose(f);
    for (int k = 0; k < 3; k++) {
        y[k] = malloc(2 * rows * widths[k] * sizeof(model_real));
    }
    if (model_predict_outputs(x, y[0], y[1], y[2], rows, workspace) != MODEL_OK
            || model_predict_outputs(x, y[0] + rows * widths[0], y[1] + rows * widths[1],
                                     y[2] + rows * widths[2], rows, NULL) != MODEL_OK
            || model_predict_outputs(x, NULL, y[1], y[2], rows, NULL) != MODEL_ERR_NULL) {
        return 3;
    }
    for (int k = 0; k < 3; k++) {
        char name[16];
        snprintf(name, sizeof name, "y%d.bin", k);
        f = fopen(name, "wb");
        fwrite(y[k], sizeof(model_real), 2 * rows * widths[k], f);
        fclose(f);
        free(y[k]);
    }
    free(x);
    free(workspace);
    return 0;
}
"""


def test_several_outputs_export_one_pointer_each(tmp_path):
    net = two_outputs("float32")
    exported = dlc.export_c(net, tmp_path / "out", name="model")
    (tmp_path / "driver.c").write_text(OUTPUTS_DRIVER)
    binary = compile_c([tmp_path / "driver.c", exported.source], tmp_path / "driver", STRICT,
                       exported.source.parent)
    X = rows(net, 300)        # more rows than a tile
    (tmp_path / "x.bin").write_bytes(X.tobytes())
    done = subprocess.run([str(binary), str(tmp_path / "x.bin"), str(len(X))], cwd=tmp_path)
    assert done.returncode == 0
    for k, expected in enumerate(dlc.reference(net).predict(X)):
        got = np.fromfile(tmp_path / f"y{k}.bin", np.float32).reshape(2, len(X), -1)
        for copy in got:
            assert_matches(copy, expected, np.float32, f"output {k}")


# ---------------------------------------------------------------- training

def test_residual_gradients_match_finite_differences():
    net = residual_net("float64", final=None)
    graph = cost_graph(net, "mse")
    rng = np.random.default_rng(4)
    X = rng.normal(size=(9, 5))
    inputs = {"%x": X, "%y": rng.normal(size=(9, 4)), "%m": np.array(9.0),
              "%lr": np.array(0.1), "%step": np.array(1.0), "%seed": np.array(3.0)}
    grads = check_gradients(graph, inputs)
    assert {"@stem.W", "@inner.W", "@inner.b", "@head.W", "@bn.gamma"} <= set(grads)


# (final layer, loss): a log-softmax head is trained by its own gradient kernel under MSE.
DAG_TRAINING = [(dlc.Softmax, "cross_entropy"), (dlc.LogSoftmax, "mse")]


@pytest.mark.parametrize("final, loss", DAG_TRAINING)
@pytest.mark.parametrize("optimizer", [lambda: dlc.SGD(lr=0.05),
                                       lambda: dlc.Momentum(lr=0.05, beta=0.9)])
def test_residual_training_c_equals_the_reference_backend(optimizer, final, loss):
    rng = np.random.default_rng(2)
    X, labels = rng.normal(size=(37, 5)), rng.integers(0, 4, 37)
    Y = labels if loss == "cross_entropy" else np.eye(4)[labels]
    trainers = []
    for make, options in ((compile_trainer, {"flags": ("-O2",)}), (reference_trainer, {})):
        trainer = make(residual_net("float64", final=final), optimizer=optimizer(), loss=loss,
                       **options)
        trainer.fit(X, Y, epochs=3, batch_size=8, seed=4, progress=False)
        trainers.append(trainer)
    c, ref = trainers
    assert c.step == ref.step == 15
    for name, expected in ref.views.items():
        np.testing.assert_allclose(c.views[name], expected, rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def test_residual_training_equals_pytorch():
    """Full-batch SGD on the MSE of a residual MLP with a concatenation: the same weights
    as PyTorch after 5 steps."""
    torch = pytest.importorskip("torch")
    x = dlc.Input(5)
    h = dlc.Tanh()(dlc.Dense(8, name="fc1")(x))
    r = dlc.Add()([h, dlc.Dense(8, name="fc2")(h)])
    out = dlc.Dense(2, name="fc3")(dlc.Concatenate()([r, x]))
    net = dlc.Model(x, out, dtype="float64", seed=1)
    start = net.get_params()
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(16, 5)), rng.normal(size=(16, 2))
    trainer = dlc.compile(net, mode="train", loss="mse", optimizer=dlc.SGD(lr=0.1))
    trainer.fit(X, Y, epochs=5, batch_size=16, progress=False)

    p = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    tx, ty = torch.tensor(X), torch.tensor(Y)
    for _ in range(5):
        h = torch.tanh(tx @ p["fc1.W"] + p["fc1.b"])
        r = h + (h @ p["fc2.W"] + p["fc2.b"])
        pred = torch.cat([r, tx], dim=1) @ p["fc3.W"] + p["fc3.b"]
        loss = torch.nn.functional.mse_loss(pred, ty)
        grads = torch.autograd.grad(loss, list(p.values()))
        with torch.no_grad():
            for value, grad in zip(p.values(), grads):
                value -= 0.1 * grad
    trained = trainer.net.get_params() if hasattr(trainer, "net") else net.get_params()
    for name, value in p.items():
        np.testing.assert_allclose(trained[name], value.detach().numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=name)


def test_training_several_outputs_is_a_clear_error():
    with pytest.raises(ValueError, match="the model has 3 outputs; dlc trains a model with "
                                         "one output"):
        dlc.compile(two_outputs(), mode="train")


def test_a_dag_model_saves_and_loads(tmp_path):
    net = two_outputs("float64")
    dlc.save(net, tmp_path / "net.dlc")
    loaded = dlc.load(tmp_path / "net.dlc")
    assert str(lower(loaded)) == str(lower(net))
    X = rows(net)
    for a, b in zip(dlc.reference(loaded).predict(X), dlc.reference(net).predict(X)):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- ONNX

def run_ort(model, X):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})


@pytest.mark.parametrize("make", [residual_net, two_outputs,
                                  lambda: residual_net(final=dlc.LogSoftmax)])
@pytest.mark.parametrize("opset", [11, 17])
def test_dag_exports_to_onnxruntime_and_imports_back_to_the_same_ir(make, opset):
    net = make()
    X = rows(net)
    expected = dlc.reference(net).predict(X)
    expected = list(expected) if isinstance(expected, tuple) else [expected]
    for folded in (False, True):
        model = dlc.to_onnx(net, opset=opset, folded=folded)
        for k, (got, want) in enumerate(zip(run_ort(model, X), expected)):
            assert_matches(got, want, np.float32, f"onnxruntime output {k}")
    back = dlc.from_onnx(dlc.to_onnx(net, opset=opset))
    assert str(lower(back)) == str(lower(net))
    assert all(np.array_equal(back.params[k], v) for k, v in net.params.items())


def test_a_three_way_merge_is_one_onnx_node_and_comes_back_as_one_layer():
    net = two_outputs()
    model = dlc.to_onnx(net)
    assert [n.op_type for n in model.graph.node].count("Sum") == 1
    assert sum(isinstance(layer, dlc.Add) for layer in dlc.from_onnx(model).layers) == 1


def onnx_graph(nodes, x_shape, y_shapes, inits=(), opset=17):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info(f"y{k}" if len(y_shapes) > 1 else "y",
                                       TensorProto.FLOAT, shape)
         for k, shape in enumerate(y_shapes)],
        [numpy_helper.from_array(np.asarray(v, np.float32), name) for name, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("opset", [11, 13])
def test_log_softmax_follows_the_opset_semantics(opset):
    """Before 13, axis=1 of (N, 2, 3) takes the log-softmax over all 6 features of a row;
    from 13 the default axis -1 of (N, 1, 6) is the same row."""
    from onnx import helper
    shape = ["N", 2, 3] if opset < 13 else ["N", 1, 6]
    model = onnx_graph([helper.make_node("LogSoftmax", ["x"], ["y"], name="ls",
                                         **({"axis": 1} if opset < 13 else {}))],
                       shape, [shape], opset=opset)
    net = dlc.from_onnx(model)
    assert [type(layer).__name__ for layer in net.layers] == ["LogSoftmax"]
    X = np.random.default_rng(0).normal(size=(50, *shape[1:])).astype(np.float32) * 30
    expected = run_ort(model, X)[0].reshape(50, -1)
    assert_matches(dlc.compile(net).predict(X.reshape(50, -1)), expected, np.float32)


def test_gemm_trans_a_on_a_static_input_is_one_example():
    from onnx import helper
    rng = np.random.default_rng(0)
    B, C = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    model = onnx_graph([helper.make_node("Gemm", ["x", "B", "C"], ["y"], transA=1,
                                         alpha=0.5, beta=2.0)],
                       [4, 5], [[5, 3]], [("B", B), ("C", C)])
    net = dlc.from_onnx(model)
    assert net.n_inputs == 20 and net.n_outputs == 15
    A = rng.normal(size=(4, 5)).astype(np.float32)
    expected = run_ort(model, A)[0]
    assert_matches(dlc.compile(net).predict(A.reshape(1, -1)), expected.reshape(1, -1),
                   np.float32)
    symbolic = onnx_graph([helper.make_node("Gemm", ["x", "B"], ["y"], transA=1)],
                          ["N", 5], [[5, 3]], [("B", B)])
    with pytest.raises(ValueError, match="transA=1 puts the batch on A's second axis"):
        dlc.from_onnx(symbolic)


def test_an_imported_residual_graph_with_two_outputs_equals_onnxruntime():
    """h = relu(x W); outputs h + x W2 (two computed values) and Concat([h, x]); the
    dense that feeds a Mul and the Add keeps its weights (no fold of the Mul into it)."""
    from onnx import helper
    rng = np.random.default_rng(1)
    W, W2 = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    model = onnx_graph(
        [helper.make_node("MatMul", ["x", "W"], ["m"], name="fc"),
         helper.make_node("Mul", ["m", "two"], ["m2"], name="scale"),
         helper.make_node("Relu", ["m2"], ["h"], name="act"),
         helper.make_node("Gemm", ["x", "W2"], ["g"], name="skip"),
         helper.make_node("Add", ["h", "g"], ["s"], name="residual"),
         helper.make_node("Add", ["s", "m"], ["y0"], name="again"),
         helper.make_node("Concat", ["h", "x"], ["y1"], name="join", axis=1)],
        ["N", 4], [["N", 4], ["N", 8]], [("W", W), ("W2", W2), ("two", np.full(4, -2.0))])
    net = dlc.from_onnx(model)
    X = rng.normal(size=(1000, 4)).astype(np.float32)
    expected = run_ort(model, X)
    for k, (got, want) in enumerate(zip(dlc.compile(net).predict(X), expected)):
        assert_matches(got, want, np.float32, f"output {k}")
