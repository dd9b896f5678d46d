"""Bad input gets a clear error that names the layer, the expected and the actual value."""
import re

import numpy as np
import pytest

import dlc
from dlc.ir import BATCH, Graph, Node, TensorType
from dlc.lower import lower
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
    (lambda: dlc.Normalize(mean=[0, 0], var=[1, 0], eps=0), ValueError, r"Normalize eps must be positive where var is 0 \(var\[1\] is 0\), got eps 0.0"),
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


# ---------------------------------------------------------------- one contract for every argument
#
# Each row: the name the error must carry, a function of the argument's value, a valid
# value (exactly representable in float32, so np.float32 of it is the same number), the
# values out of range with the allowed range the message must state, and an outcome:
# what must come out identical when the value is given as a NumPy scalar.

from dataclasses import dataclass  # noqa: E402
from typing import Callable  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402

from dlc.checks import check_int, check_real  # noqa: E402
from dlc.train import reference_trainer  # noqa: E402

RNG = np.random.default_rng(7)
X_TRAIN = RNG.normal(size=(12, 4))
Y_TRAIN = np.arange(12) % 3


@dataclass
class Arg:
    what: str
    make: Callable
    valid: object
    out_of_range: tuple        # (value, range text the ValueError states)
    outcome: Callable = None   # the made object -> values compared with assert_array_equal
    optional: bool = False     # None is a valid value (the default)

    @property
    def integer(self) -> bool:
        return isinstance(self.valid, int)


def trained_state(net, epochs=2, **options):
    trainer = reference_trainer(net, **options)
    trainer.fit(X_TRAIN, Y_TRAIN, epochs=epochs, batch_size=5, seed=3, progress=False)
    return trainer


def layer_outcome(layer):
    """Inference outputs and the state after two reference training epochs of a net with
    ``layer`` after its first dense layer."""
    net = dlc.Sequential([dlc.Input(4), dlc.Dense(5), layer, dlc.Dense(3), dlc.Softmax()],
                         dtype="float64", seed=1)
    return [dlc.reference(net).predict(X_TRAIN), trained_state(net).state]


def net_outcome(net):
    return [dlc.reference(net).predict(np.ones((2, net.n_inputs)))]


def base_net():
    return dlc.Sequential([dlc.Input(4), dlc.Dense(5), dlc.Tanh(), dlc.Dense(3), dlc.Softmax()],
                          dtype="float64", seed=2)


def optimizer_outcome(optimizer):
    return [trained_state(base_net(), epochs=3, optimizer=optimizer).state]


def schedule_outcome(schedule):
    return [np.array([schedule(0.5, e) for e in range(6)])] + optimizer_outcome(
        dlc.SGD(lr=0.5, schedule=schedule))


def fit_outcome(**fit_args):
    trainer = reference_trainer(base_net())
    arguments = dict(epochs=2, batch_size=5, seed=3, progress=False)
    arguments.update(fit_args)
    trainer.fit(X_TRAIN, Y_TRAIN, **arguments)
    return [trainer.state]


def attributes(*names):
    return lambda obj: [np.array([getattr(obj, n) for n in names]),
                        np.array([type(getattr(obj, n)).__name__ for n in names])]


OPEN_POSITIVE, NON_NEGATIVE = "(0, inf)", "[0, inf)"
ARGS = [
    Arg("Input features", lambda v: dlc.Sequential([dlc.Input(v), dlc.Dense(2)]), 4,
        ((0, "a positive integer"), (-2, "a positive integer")), net_outcome),
    Arg("Dense units", lambda v: dlc.Sequential([dlc.Input(3), dlc.Dense(v)]), 3,
        ((0, "a positive integer"), (-1, "a positive integer")), net_outcome),
    Arg("Dense in_features", lambda v: dlc.Sequential([dlc.Input(4), dlc.Dense(2, in_features=v)]),
        4, ((0, "a positive integer"),), net_outcome, optional=True),
    Arg("Model seed", lambda v: dlc.Sequential([dlc.Input(3), dlc.Dense(2)], seed=v), 5,
        ((-1, "a non-negative integer"),), net_outcome),
    Arg("BatchNorm eps", lambda v: dlc.BatchNorm(eps=v), 2.0 ** -10,
        ((0, OPEN_POSITIVE), (-1e-5, OPEN_POSITIVE)), layer_outcome),
    Arg("BatchNorm momentum", lambda v: dlc.BatchNorm(momentum=v), 0.75,
        ((1.0, "[0, 1)"), (-0.1, "[0, 1)")), layer_outcome),
    Arg("Dropout keep_prob", lambda v: dlc.Dropout(keep_prob=v), 0.5,
        ((0, "(0, 1]"), (1.5, "(0, 1]"), (-0.1, "(0, 1]")), layer_outcome),
    Arg("Normalize eps", lambda v: dlc.Normalize(np.zeros(5), np.ones(5), eps=v), 2.0 ** -20,
        ((-1e-9, NON_NEGATIVE), (-1.0, NON_NEGATIVE)), layer_outcome),
    Arg("LeakyReLU alpha", lambda v: dlc.LeakyReLU(alpha=v), 0.125,
        ((-0.1, NON_NEGATIVE),), layer_outcome),
    Arg("SGD lr", lambda v: dlc.SGD(lr=v), 0.25, ((0, OPEN_POSITIVE), (-1, OPEN_POSITIVE)),
        optimizer_outcome),
    Arg("Momentum lr", lambda v: dlc.Momentum(lr=v), 0.25, ((0.0, OPEN_POSITIVE),),
        optimizer_outcome),
    Arg("Momentum beta", lambda v: dlc.Momentum(lr=0.25, beta=v), 0.75,
        ((1.0, "[0, 1)"), (-0.5, "[0, 1)")), optimizer_outcome),
    Arg("RMSProp lr", lambda v: dlc.RMSProp(lr=v), 0.015625, ((-0.1, OPEN_POSITIVE),),
        optimizer_outcome),
    Arg("RMSProp beta2", lambda v: dlc.RMSProp(beta2=v), 0.875, ((1.0, "[0, 1)"),),
        optimizer_outcome),
    Arg("RMSProp eps", lambda v: dlc.RMSProp(eps=v), 2.0 ** -24, ((0.0, OPEN_POSITIVE),),
        optimizer_outcome),
    Arg("Adam lr", lambda v: dlc.Adam(lr=v), 0.015625, ((0, OPEN_POSITIVE),), optimizer_outcome),
    Arg("Adam beta1", lambda v: dlc.Adam(beta1=v), 0.875, ((1, "[0, 1)"), (-0.1, "[0, 1)")),
        optimizer_outcome),
    Arg("Adam beta2", lambda v: dlc.Adam(beta2=v), 0.9375, ((1.5, "[0, 1)"),), optimizer_outcome),
    Arg("Adam eps", lambda v: dlc.Adam(eps=v), 2.0 ** -24, ((-1e-8, OPEN_POSITIVE),),
        optimizer_outcome),
    Arg("InverseTimeDecay decay_rate", lambda v: dlc.InverseTimeDecay(decay_rate=v), 0.5,
        ((-1, NON_NEGATIVE),), schedule_outcome),
    Arg("InverseTimeDecay interval", lambda v: dlc.InverseTimeDecay(interval=v), 2,
        ((0, "a positive integer"),), schedule_outcome),
    Arg("ExponentialDecay k", lambda v: dlc.ExponentialDecay(k=v), 0.75,
        ((0, "(0, 1]"), (1.25, "(0, 1]")), schedule_outcome),
    Arg("SqrtDecay k", lambda v: dlc.SqrtDecay(k=v), 0.5, ((0, OPEN_POSITIVE),),
        schedule_outcome),
    Arg("StepDecay factor", lambda v: dlc.StepDecay(factor=v), 0.5,
        ((0, "(0, 1]"), (2, "(0, 1]")), schedule_outcome),
    Arg("StepDecay every", lambda v: dlc.StepDecay(every=v), 2, ((0, "a positive integer"),),
        schedule_outcome),
    Arg("epochs", lambda v: fit_outcome(epochs=v), 2, ((-2, "a non-negative integer"),), list),
    Arg("batch_size", lambda v: fit_outcome(batch_size=v), 5,
        ((0, r"[1, 12] (at most the number of examples)"), (13, "[1, 12]")), list,
        optional=True),
    Arg("seed", lambda v: fit_outcome(seed=v), 3,
        ((-1, "[0, 16777215]"), (1 << 24, "[0, 16777215]")), list, optional=True),
    Arg("l2", lambda v: trained_state(base_net(), l2=v).state, 0.125, ((-1.0, NON_NEGATIVE),),
        lambda state: [state]),
    Arg("l1", lambda v: trained_state(base_net(), l1=v).state, 0.125, ((-0.5, NON_NEGATIVE),),
        lambda state: [state]),
    Arg("EarlyStopping patience", lambda v: dlc.EarlyStopping(patience=v), 3,
        ((0, "a positive integer"),), attributes("patience")),
    Arg("EarlyStopping min_delta", lambda v: dlc.EarlyStopping(min_delta=v), 0.25,
        ((-1, NON_NEGATIVE),), attributes("min_delta")),
    Arg("Checkpoint every", lambda v: dlc.callbacks.Checkpoint("unused.dlc", every=v), 2,
        ((0, "a positive integer"),), attributes("every")),
    Arg("ImageAugment shape", lambda v: dlc.data.ImageAugment((v, 2), shift=1), 2,
        ((0, "a positive integer"),),
        lambda aug: [aug(np.arange(8.0).reshape(2, 4), np.random.default_rng(0))]),
    Arg("ImageAugment crop_padding", lambda v: dlc.data.ImageAugment((2, 2), crop_padding=v), 1,
        ((-1, "a non-negative integer"),),
        lambda aug: [aug(np.arange(8.0).reshape(2, 4), np.random.default_rng(0))]),
    Arg("ImageAugment shift", lambda v: dlc.data.ImageAugment((2, 2), shift=v), 1,
        ((-1, "a non-negative integer"),),
        lambda aug: [aug(np.arange(8.0).reshape(2, 4), np.random.default_rng(0))]),
    Arg("ImageAugment noise", lambda v: dlc.data.ImageAugment((2, 2), noise=v), 0.5,
        ((-0.5, NON_NEGATIVE),),
        lambda aug: [aug(np.arange(8.0).reshape(2, 4), np.random.default_rng(0))]),
    Arg("split dev=", lambda v: dlc.data.split(X_TRAIN, Y_TRAIN, dev=v), 3,
        ((0, "a positive integer"),), lambda parts: [a for part in parts for a in part],
        optional=True),
    Arg("split test=", lambda v: dlc.data.split(X_TRAIN, Y_TRAIN, dev=2, test=v), 3,
        ((0, "a positive integer"),), lambda parts: [a for part in parts for a in part],
        optional=True),
    Arg("split seed", lambda v: dlc.data.split(X_TRAIN, Y_TRAIN, seed=v), 4,
        ((-1, "a non-negative integer"),), lambda parts: [a for part in parts for a in part]),
    Arg("tolerance", lambda v: dlc.diagnose(0.1, 0.2, tolerance=v, verbose=False), 0.25,
        ((-0.1, "[0, 1]"), (1.5, "[0, 1]")), lambda d: [np.array([d.avoidable_bias, d.variance]),
                                                       np.array([d.verdict])]),
    Arg("train_error", lambda v: dlc.diagnose(v, 0.5, verbose=False), 0.25, ((-0.5, "[0, 1]"),),
        lambda d: [np.array([d.train_error, d.variance])]),
]
# Entry points that build C: only their rejections run here (no compiler), their
# NumPy-scalar equivalence is test_compile_counts_take_numpy_integers.
C_ARGS = [
    Arg("threads", lambda v: dlc.compile(small_net(), threads=v), 2, ((0, "a positive integer"),)),
    Arg("threads", lambda v: dlc.compile(small_net(), mode="train", threads=v), 2,
        ((-1, "a positive integer"),)),
    Arg("tile_rows", lambda v: dlc.compile(small_net(), tile_rows=v), 4,
        ((0, "a positive integer"),)),
    # None: the export target's own rows per tile
    Arg("tile_rows", lambda v: dlc.export_c(small_net(), "unused", tile_rows=v), 4,
        ((-4, "a positive integer"),), optional=True),
    Arg("tile_rows", lambda v: dlc.inspect(small_net(), tile_rows=v), 4,
        ((0, "a positive integer"),), optional=True),
]

BAD_INT_TYPES = ["3", None, True, 2.0, 2.5, np.float64(3.0), [2], float("nan")]
BAD_REAL_TYPES = ["0.5", None, True, np.True_, [0.5], 1j, b"1"]
NON_FINITE = [float("nan"), float("inf"), -float("inf"), np.float32("nan"), np.float64("-inf")]


def arg_id(arg):
    return arg.what.replace(" ", "_")


def bad_type_cases():
    for arg in ARGS + C_ARGS:
        for bad in BAD_INT_TYPES if arg.integer else BAD_REAL_TYPES:
            if bad is None and arg.optional:
                continue
            yield pytest.param(arg, bad, id=f"{arg_id(arg)}-{bad!r}")


def bad_value_cases():
    for arg in ARGS + C_ARGS:
        for bad, allowed in arg.out_of_range:
            yield pytest.param(arg, bad, allowed, id=f"{arg_id(arg)}-{bad!r}")
            if isinstance(bad, int) and not isinstance(bad, bool):
                yield pytest.param(arg, np.int64(bad), allowed, id=f"{arg_id(arg)}-np.int64({bad})")
        if not arg.integer:
            for bad in NON_FINITE:
                yield pytest.param(arg, bad, "finite", id=f"{arg_id(arg)}-{bad!r}")


@pytest.mark.parametrize("arg, bad", bad_type_cases())
def test_a_wrong_type_is_a_type_error_naming_the_argument(arg, bad):
    with pytest.raises(TypeError) as caught:
        arg.make(bad)
    message = str(caught.value)
    assert message.startswith(arg.what + " must be "), message
    expected = "an integer" if arg.integer else "a real number"
    assert f"{arg.what} must be {expected}, got " in message
    assert (type(bad).__name__ if bad is not None else "None") in message


@pytest.mark.parametrize("arg, bad, allowed", bad_value_cases())
def test_a_wrong_value_is_a_value_error_naming_argument_range_and_value(arg, bad, allowed):
    with pytest.raises(ValueError) as caught:
        arg.make(bad)
    message = str(caught.value)
    assert message.startswith(arg.what + " must be "), message
    assert allowed in message
    shown = bad.item() if isinstance(bad, np.generic) else bad
    assert message.endswith(f"got {float(shown)!r}" if not arg.integer else f"got {shown!r}")


def numpy_versions(value):
    if isinstance(value, int):
        return [np.int64(value), np.int32(value), np.uint16(value), np.int8(value)]
    return [np.float64(value), np.float32(value)]


@pytest.mark.parametrize("arg", [pytest.param(a, id=arg_id(a)) for a in ARGS])
def test_numpy_scalars_are_accepted_and_give_identical_results(arg):
    expected = arg.outcome(arg.make(arg.valid))
    for value in numpy_versions(arg.valid):
        assert value == arg.valid               # the table's values are exact in float32
        actual = arg.outcome(arg.make(value))
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            np.testing.assert_array_equal(a, e, err_msg=f"{arg.what}={value!r}")


def test_compile_counts_take_numpy_integers():
    X = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
    expected = dlc.compile(small_net(), threads=2, tile_rows=4).predict(X)
    lib = dlc.compile(small_net(), threads=np.int64(2), tile_rows=np.int32(4))
    assert type(lib.threads) is int
    np.testing.assert_array_equal(lib.predict(X), expected)
    np.testing.assert_array_equal(expected, dlc.compile(small_net()).predict(X))


def test_integral_floats_are_not_counts():
    """One rule for every count: 32.0 is a TypeError (scikit-learn's rule), with a hint."""
    t = reference_trainer(small_net(), loss="mse")
    X, Y = np.zeros((40, 4)), np.zeros((40, 2))
    for option in ("epochs", "batch_size", "seed"):
        arguments = dict(epochs=1, batch_size=8, seed=0, progress=False)
        arguments[option] = 32.0
        with pytest.raises(TypeError, match=rf"^{option} must be an integer, got 32.0 "
                                            rf"\(float\); pass 32$"):
            t.fit(X, Y, **arguments)
    with pytest.raises(TypeError, match=r"Dense units must be an integer, got 32.0 \(float\)"):
        dlc.Dense(32.0)


# ---------------------------------------------------------------- the validators themselves

@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(-10, 10), st.floats(0, 10),
       st.booleans(), st.booleans())
def test_check_real_is_the_interval_it_states(value, low, width, low_open, high_open):
    high = low + width
    inside = (np.isfinite(value) and (low < value if low_open else low <= value)
              and (value < high if high_open else value <= high))
    for given_as in (value, np.float64(value)):
        if inside:
            assert check_real(given_as, "v", low, high, low_open=low_open,
                              high_open=high_open) == value
            continue
        with pytest.raises(ValueError, match="^v must be "):
            check_real(given_as, "v", low, high, low_open=low_open, high_open=high_open)


@settings(max_examples=200, deadline=None)
@given(st.integers(-2**70, 2**70), st.integers(-50, 50), st.integers(0, 100))
def test_check_int_is_the_range_it_states(value, low, width):
    high = low + width
    numpy_forms = [np.int64(value)] if -2**63 <= value < 2**63 else []
    for given_as in [value] + numpy_forms:
        if low <= value <= high:
            result = check_int(given_as, "n", low, high)
            assert result == value and type(result) is int
        else:
            with pytest.raises(ValueError, match=rf"^n must be an integer in \[{low}, {high}\], "
                                                 rf"got {value}$"):
                check_int(given_as, "n", low, high)


# ---------------------------------------------------------------- arrays and their dtype

def test_normalize_statistics_are_checked_as_arrays():
    with pytest.raises(TypeError, match="Normalize mean must hold real numbers, got dtype <U1"):
        dlc.Normalize(mean=["a"], var=[1])
    with pytest.raises(TypeError, match="Normalize var must hold real numbers, got dtype object"):
        dlc.Normalize(mean=[0], var=None)
    with pytest.raises(ValueError, match=r"Normalize var contains NaN or inf \(first at index 1\)"):
        dlc.Normalize(mean=[0, 0], var=[1, np.inf])
    with pytest.raises(ValueError, match="Normalize mean is empty"):
        dlc.Normalize(mean=[], var=[])
    ok = dlc.Normalize(mean=np.float32([1, 2]), var=np.int64([1, 4]))
    assert ok.mean.dtype == ok.var.dtype == np.float64


def test_normalize_eps_nan_no_longer_reaches_predict():
    """The defect: eps=-1 or nan was accepted and predict returned NaN."""
    for eps in (-1, float("nan")):
        with pytest.raises(ValueError, match="Normalize eps"):
            dlc.Sequential([dlc.Input(2), dlc.Normalize([0, 0], [1, 1], eps=eps), dlc.Dense(2)])


@pytest.mark.parametrize("where, message", [
    ((3, 2), r"^X row 3 column 2 holds 1e\+39, which overflows float32 \(largest finite 3.40282e\+38\)$"),
    ((0, 0), r"^X row 0 column 0 holds -1e\+39, which overflows float32"),
])
def test_a_finite_float64_that_overflows_float32_is_reported_as_such(lib, where, message):
    X = np.zeros((5, 4))
    X[where] = 1e39 if where != (0, 0) else -1e39
    with pytest.raises(ValueError, match=message):
        lib.predict(X)
    with pytest.raises(ValueError, match=message):
        dlc.reference(small_net()).predict(X)
    X[4, 1] = np.nan                 # NaN and inf keep their message
    X[where] = 0
    with pytest.raises(ValueError, match=r"X contains NaN or inf \(first at row 4\)"):
        lib.predict(X)


def test_overflowing_targets_and_parameters_are_reported():
    net = dlc.Sequential([dlc.Input(4), dlc.Dense(1)])
    trainer = reference_trainer(net, loss="mse")
    Y = np.zeros(6)
    Y[5] = 3e38 * 10
    with pytest.raises(ValueError, match="Y row 5 column 0 holds 3e\\+39, which overflows float32"):
        trainer.fit(np.zeros((6, 4)), Y, progress=False)
    W = np.zeros((4, 1))
    W[2, 0] = 1e300
    with pytest.raises(ValueError, match=r"parameter 'dense1.W' row 2 column 0 holds 1e\+300"):
        net.set_params({"dense1.W": W})
    np.testing.assert_array_equal(net.params["dense1.W"], dlc.Sequential(
        [dlc.Input(4), dlc.Dense(1)]).params["dense1.W"])      # unchanged


def test_set_params_copies_the_callers_array():
    net = small_net("float64")
    b = np.ones(3)
    net.set_params({"hidden.b": b})
    b[0] = 5
    assert net.params["hidden.b"][0] == 1


# ---------------------------------------------------------------- files: build cache, checkpoints

@pytest.fixture
def fresh_build(monkeypatch):
    """A model no test has built in this process, so compiling it must reach the cache."""
    from dlc import build
    monkeypatch.setattr(build, "_loaded", {})
    return dlc.Sequential([dlc.Input(3), dlc.Dense(29), dlc.Sigmoid()])


def unusable_cache_dirs(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    return {"a file": (a_file, "it exists and is not a directory"),
            "under a file": (a_file / "cache", r"cannot be created \(Not a directory\)")}


@pytest.mark.parametrize("case", ["a file", "under a file"])
def test_an_unusable_cache_dir_is_one_error_naming_the_variable(tmp_path, monkeypatch,
                                                                fresh_build, case):
    from dlc.build import BuildError, CacheDirError, cache_dir
    from dlc.render import template_cache
    path, problem = unusable_cache_dirs(tmp_path)[case]
    monkeypatch.setenv("DLC_CACHE_DIR", str(path))
    expected = (rf"^dlc cannot use '{re.escape(str(path))}' \(from \$DLC_CACHE_DIR\) as its "
                rf"build cache: .*{problem}; point DLC_CACHE_DIR at a writable directory$")
    with pytest.raises(CacheDirError, match=expected) as caught:
        dlc.compile(fresh_build)
    assert isinstance(caught.value, BuildError) and isinstance(caught.value, OSError)
    assert caught.value.__context__ is None          # no chained traceback from mkdir
    with pytest.raises(CacheDirError, match=expected):
        cache_dir()
    assert template_cache() is None          # rendering still works without the cache


def test_a_read_only_cache_dir_is_reported(tmp_path, monkeypatch):
    from dlc import build
    monkeypatch.setenv("DLC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(build.os, "access", lambda path, mode: False)   # root ignores modes
    with pytest.raises(build.CacheDirError, match="the directory is not writable"):
        build.cache_dir()


def test_the_default_cache_dir_names_where_it_comes_from(tmp_path, monkeypatch):
    from dlc.build import CacheDirError, cache_dir
    path, _ = unusable_cache_dirs(tmp_path)["a file"]
    monkeypatch.delenv("DLC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(path))
    with pytest.raises(CacheDirError, match=r"\(from \$XDG_CACHE_HOME/dlc\)"):
        cache_dir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "dlc" and cache_dir().is_dir()


def test_saving_into_a_missing_directory_names_it(tmp_path):
    net = small_net()
    target = tmp_path / "runs" / "net.dlc"
    with pytest.raises(FileNotFoundError) as caught:
        dlc.save(net, target)
    assert str(caught.value) == (f"[Errno 2] cannot save to {str(target)!r}: the directory "
                                 f"{str(tmp_path / 'runs')!r} does not exist")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(NotADirectoryError, match="'a-file' is not a directory|a-file' is not"):
        dlc.save(net, tmp_path / "a-file" / "net.dlc")
    with pytest.raises(IsADirectoryError, match="it is a directory; give a file name"):
        dlc.save(net, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]     # no temporary left


# ---------------------------------------------------------------- Input names and summary()

def test_the_input_name_is_kept():
    net = dlc.Sequential([dlc.Input(4, name="pixels"), dlc.Dense(3), dlc.Softmax()])
    assert net.input_name == "pixels"
    assert str(lower(net)).splitlines()[0] == "graph(%x : f32[B,4] 'pixels') {"
    assert net.summary().splitlines()[3].split()[:2] == ["pixels", "input"]
    train_ir = str(lower(net, "train"))
    assert "%x : f32[B,4] 'pixels'" in train_ir
    assert reference_trainer(net).graph.labels == {"%x": "pixels"}
    unnamed = dlc.Sequential([dlc.Input(4), dlc.Dense(3), dlc.Softmax()])
    assert str(lower(unnamed)).splitlines()[0] == "graph(%x : f32[B,4]) {"   # unchanged IR text
    X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(dlc.compile(net).predict(X), dlc.reference(net).predict(X),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="Input name must be a non-empty string, got 3"):
        dlc.Input(4, name=3)


def test_the_input_name_survives_a_checkpoint(tmp_path):
    net = dlc.Sequential([dlc.Input(4, name="pixels"), dlc.Dense(3)], dtype="float64")
    dlc.save(net, tmp_path / "net.dlc")
    loaded = dlc.load(tmp_path / "net.dlc")
    assert loaded.input_name == "pixels" and str(lower(loaded)) == str(lower(net))


def summary_rows(text):
    """The layer rows of a summary table (between its two rules)."""
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"-"}]
    return [line.split() for line in lines[rules[0] + 1:rules[1]]], lines[rules[1] + 1:]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_summary_counts_match_the_parameters(seed, dtype):
    from helpers import random_model
    net = random_model(np.random.default_rng(seed), dtype=dtype, max_width=40)
    params = net.get_params()
    rows, totals = summary_rows(net.summary())
    assert [row[0] for row in rows] == ["input"] + [layer.name for layer in net.layers]
    graph = lower(net)
    widths = {node.layer: node.type.shape[1] for node in graph.nodes}      # last node per layer
    assert rows[0][2:4] == ["(B,", f"{net.n_inputs})"]
    for row, layer in zip(rows[1:], net.layers):
        names = [n for n in params if n.startswith(layer.name + ".")]
        trainable = [n for n in names if graph.params["@" + n].trainable]
        assert row[1] == layer.kind
        assert row[2:4] == ["(B,", f"{widths[layer.name]})"]
        assert int(row[4].replace(",", "")) == sum(params[n].size for n in names)
        assert int(row[5].replace(",", "")) == sum(params[n].size for n in trainable)
    total = sum(p.size for p in params.values())
    trainable = sum(p.size for n, p in params.items() if graph.params["@" + n].trainable)
    itemsize = np.dtype(dtype).itemsize
    assert totals == [f"Total params: {total:,} ({total * itemsize:,} bytes as {dtype})",
                      f"Trainable params: {trainable:,}",
                      f"Non-trainable params: {total - trainable:,}"]


def test_summary_reads_like_keras():
    net = dlc.Sequential([dlc.Input(4, name="pixels"), dlc.Dense(32, name="hidden"),
                          dlc.BatchNorm(), dlc.ReLU(), dlc.Dense(10), dlc.Softmax()])
    assert net.summary() == "\n".join([
        "Sequential (float32): 4 inputs -> 10 outputs",
        "Layer       Kind       Output shape  Params  Trainable",
        "------------------------------------------------------",
        "pixels      input      (B, 4)             0          0",
        "hidden      dense      (B, 32)          160        160",
        "batchnorm1  batchnorm  (B, 32)          128         64",
        "relu1       relu       (B, 32)            0          0",
        "dense1      dense      (B, 10)          330        330",
        "softmax1    softmax    (B, 10)            0          0",
        "------------------------------------------------------",
        "Total params: 618 (2,472 bytes as float32)",
        "Trainable params: 554",
        "Non-trainable params: 64"])
