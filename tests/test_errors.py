"""Bad input gets a clear error that names the layer, the expected and the actual value."""
import numpy as np
import pytest

import dlc
from dlc.ir import BATCH, Graph, Node, TensorType
from dlc.verify import VerifyError, verify


def small_net(dtype="float32"):
    return dlc.Sequential([dlc.Input(4), dlc.Dense(3, name="hidden"), dlc.ReLU(), dlc.Dense(2)],
                          dtype=dtype, seed=0)


@pytest.fixture(scope="module")
def lib():
    return dlc.compile(small_net())


@pytest.mark.parametrize("make, error, message", [
    (lambda: dlc.Dense(0), ValueError, "Dense units must be a positive integer, got 0"),
    (lambda: dlc.Dense(-3), ValueError, "Dense units must be a positive integer, got -3"),
    (lambda: dlc.Dense(2.5), TypeError, r"Dense units must be an integer, got 2.5 \(float\)"),
    (lambda: dlc.Dense(4, init="glorot"), ValueError, "unknown init 'glorot'"),
    (lambda: dlc.Input(0), ValueError, "Input features must be a positive integer, got 0"),
    (lambda: dlc.Dropout(keep_prob=0), ValueError, r"keep_prob must be in \(0, 1\], got 0"),
    (lambda: dlc.Dropout(keep_prob=1.5), ValueError, "keep_prob"),
    (lambda: dlc.Dropout(keep_prob=-0.1), ValueError, "keep_prob"),
    (lambda: dlc.BatchNorm(momentum=1.0), ValueError, "momentum"),
    (lambda: dlc.BatchNorm(eps=0), ValueError, "eps"),
    (lambda: dlc.Normalize(mean=[0, 0], var=[1]), ValueError, "mean has 2 values but var has 1"),
    (lambda: dlc.Normalize(mean=[0], var=[-1]), ValueError, "Normalize var must be >= 0 everywhere, got -1 at index 0"),
    (lambda: dlc.Normalize(mean=[np.nan], var=[1]), ValueError, r"Normalize mean contains NaN or inf \(first at index 0\)"),
    (lambda: dlc.Dense(3, name=""), TypeError, "non-empty string"),
])
def test_bad_layer_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_mismatched_layer_sizes_name_the_layer():
    with pytest.raises(ValueError, match=r"'fc2' expects 7 input features, but the layer before it gives 5"):
        dlc.Sequential([dlc.Input(3), dlc.Dense(5), dlc.Dense(2, in_features=7, name="fc2")])
    with pytest.raises(ValueError, match=r"'norm' has statistics for 2 features, but its input has 3"):
        dlc.Sequential([dlc.Input(3), dlc.Normalize([0, 0], [1, 1], name="norm")])


@pytest.mark.parametrize("dtype", ["float16", "int32", "complex64", "bogus"])
def test_unknown_dtype(dtype):
    with pytest.raises(TypeError, match="dtype"):
        small_net(dtype)


def test_model_construction_errors():
    with pytest.raises(TypeError, match="first element"):
        dlc.Sequential([dlc.Dense(3)])
    with pytest.raises(TypeError, match="not a dlc layer"):
        dlc.Sequential([dlc.Input(3), "relu"])
    with pytest.raises(ValueError, match="no layers"):
        dlc.Sequential([dlc.Input(3)])
    with pytest.raises(ValueError, match="two layers are named 'a'"):
        dlc.Sequential([dlc.Input(3), dlc.Dense(3, name="a"), dlc.Dense(3, name="a")])
    shared = dlc.Dense(3)
    with pytest.raises(ValueError, match="used twice"):
        dlc.Sequential([dlc.Input(3), shared, shared])
    x, other = dlc.Input(3), dlc.Input(3)
    with pytest.raises(ValueError, match="not computed from the given inputs"):
        dlc.Model(x, dlc.Dense(2)(other))
    with pytest.raises(TypeError, match="dlc tensor"):
        dlc.Dense(2)(np.zeros(3))


def test_set_params_errors():
    net = small_net()
    with pytest.raises(KeyError, match="unknown parameter 'hidden.V'"):
        net.set_params({"hidden.V": np.zeros(3)})
    with pytest.raises(ValueError, match=r"'hidden.W' should have shape \(4, 3\), got \(3, 4\)"):
        net.set_params({"hidden.W": np.zeros((3, 4))})
    with pytest.raises(ValueError, match="NaN or inf"):
        net.set_params({"hidden.b": [0, np.nan, 0]})
    with pytest.raises(TypeError, match="real numbers"):
        net.set_params({"hidden.b": np.array(["a", "b", "c"])})
    before = net.get_params()
    with pytest.raises(ValueError):
        net.set_params({"hidden.b": np.ones(3), "dense1.b": np.ones(5)})
    np.testing.assert_array_equal(net.params["hidden.b"], before["hidden.b"])  # all or nothing


@pytest.mark.parametrize("X, error, message", [
    (np.zeros(4), ValueError, r"2-D array \(batch, 4\), got shape \(4,\); for one example use X.reshape\(1, -1\)"),
    (np.zeros((2, 4, 1)), ValueError, r"got shape \(2, 4, 1\)"),
    (np.zeros((2, 5)), ValueError, "5 features per row, the model expects 4"),
    (np.zeros((0, 4)), ValueError, "empty batch"),
    (np.array([["a"] * 4]), TypeError, "real numbers"),
    (np.zeros((2, 4), complex), TypeError, "real numbers"),
    (np.array([[0, 1, np.nan, 0]]), ValueError, "NaN or inf"),
    (np.array([[0, 1, 0, 0], [0, np.inf, 0, 0]]), ValueError, "NaN or inf .first at row 1"),
])
def test_predict_rejects_bad_input(lib, X, error, message):
    with pytest.raises(error, match=message):
        lib.predict(X)
    with pytest.raises(error, match=message):
        dlc.reference(small_net()).predict(X)


def test_predict_converts_dtype_and_layout(lib):
    net = small_net()
    X64 = np.random.default_rng(0).normal(size=(9, 8))[:, ::2]   # float64, not contiguous
    assert not X64.flags.c_contiguous
    expected = dlc.reference(net).predict(X64.astype(np.float32))
    np.testing.assert_allclose(lib.predict(X64), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lib.predict(X64.tolist()), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lib.predict(np.asfortranarray(X64)), expected, rtol=1e-5, atol=1e-6)


def test_compile_rejects_non_models():
    with pytest.raises(TypeError, match="expected a dlc.Model"):
        dlc.compile([dlc.Dense(3)])
    with pytest.raises(ValueError, match="unknown mode"):
        dlc.compile(small_net(), mode="fast")


def test_verifier_rejects_malformed_graphs():
    t = TensorType((BATCH, 4), "f64")
    w = np.zeros((4, 3))
    from dlc.ir import Param
    good = dict(inputs={"%x": t}, params={"@W": Param(w), "@b": Param(np.zeros(3))})

    def graph(*nodes, outputs=("%0",)):
        return Graph(nodes=nodes, outputs=outputs, **good)

    dense = Node("%0", "dense", ("%x", "@W", "@b"), {"activation": "none", "alpha": 0.0},
                 TensorType((BATCH, 3), "f64"))
    verify(graph(dense))
    with pytest.raises(VerifyError, match="unknown op"):
        verify(graph(Node("%0", "conv", ("%x",), {}, t)))
    with pytest.raises(VerifyError, match=r"uses \['%9'\] before definition"):
        verify(graph(Node("%0", "relu", ("%9",), {}, t)))
    with pytest.raises(VerifyError, match="declared type f64.B,4., shape rule gives f64.B,3."):
        verify(graph(Node("%0", "dense", dense.inputs, dense.attrs, t)))
    with pytest.raises(VerifyError, match="has no attribute"):
        verify(graph(Node("%0", "relu", ("%x",), {"alpha": 1.0}, t)))
    with pytest.raises(VerifyError, match="needs attribute 'keep_prob'"):
        verify(graph(Node("%0", "dropout", ("%x",), {}, t)))
    with pytest.raises(VerifyError, match="defined twice"):
        verify(graph(dense, dense))
    with pytest.raises(VerifyError, match="output %7 is not defined"):
        verify(graph(dense, outputs=("%7",)))
    with pytest.raises(VerifyError, match=r"weights should have shape \(4, units\)"):
        verify(graph(Node("%0", "dense", ("%x", "@b", "@b"), dense.attrs, t)))


def test_predict_takes_byte_swapped_and_read_only_input(lib):
    X = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    expected = dlc.reference(small_net()).predict(X)
    swapped = X.astype(X.dtype.newbyteorder())
    readonly = X.copy()
    readonly.flags.writeable = False
    for variant in (swapped, readonly):
        np.testing.assert_allclose(lib.predict(variant), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_finiteness_check_at_the_edges(dtype):
    """C checks the input on its bits: the largest finite values and denormals pass,
    every NaN and infinity is caught (and the row named)."""
    lib = dlc.compile(small_net(dtype))
    info = np.finfo(dtype)
    edges = np.array([[info.max, -info.max, info.smallest_subnormal, -0.0]], dtype)
    np.testing.assert_allclose(lib.predict(edges), dlc.reference(small_net(dtype)).predict(edges),
                               rtol=1e-5)
    for bad in (np.inf, -np.inf, np.nan, -np.nan):
        X = np.zeros((3, 4), dtype)
        X[2, 3] = bad
        with pytest.raises(ValueError, match="first at row 2"):
            lib.predict(X)


def test_fast_call_refuses_entries_without_addresses(lib):
    """The C entry of predict never calls through something that is not an address."""
    X = np.ones((2, 4), np.float32)
    lib.predict(X)
    fast, entry, workspace = lib._fastcall, lib._entry, lib._local.workspace
    with pytest.raises(ValueError, match="no function address"):
        fast.predict((0,) + entry[1:], X, workspace)
    with pytest.raises(TypeError):
        fast.predict(("not an address",) + entry[1:], X, workspace)
    with pytest.raises(TypeError, match="predict.entry, x, workspace"):
        fast.predict(entry[:3], X, workspace)
    assert fast.predict(entry, X.astype(np.float64), workspace) is None    # not a fit
