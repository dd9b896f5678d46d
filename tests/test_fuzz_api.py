"""Bad input into every public entry point: arbitrary objects, dtypes, shapes, NaN and
inf, huge values, empty arrays and wrong types.  The property: a correct result (the
interpreter's), or a ValueError/TypeError raised by dlc whose message names the
argument; never a crash, a hang, or an error out of NumPy's or cffi's insides."""
import tempfile
import traceback
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as npst

import dlc
from dlc.train import reference_trainer
from strategies import examples

PACKAGE = Path(dlc.__file__).resolve().parent
N_IN, N_OUT = 3, 2


# ---------------------------------------------------------------- strategies

def scalars():
    return st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                     st.floats(allow_nan=True, allow_infinity=True), st.complex_numbers(),
                     st.text(max_size=4), st.binary(max_size=4),
                     st.sampled_from([np.float32(2.5), np.int64(3), np.nan, object(), ..., "he",
                                      float("inf"), 1e308, -1e308, 1e39, 0, -0.0, 2**63]))


def dtypes():
    return st.one_of(npst.floating_dtypes(), npst.integer_dtypes(), npst.boolean_dtypes(),
                     npst.complex_number_dtypes(), npst.datetime64_dtypes(),
                     npst.unicode_string_dtypes(max_len=3), st.just(np.dtype(object)))


def arrays(max_dims=3, max_side=5, width=None):
    """Arrays of any dtype and shape (empty ones included), with NaN, inf and huge values;
    ``width`` makes 2-D arrays of that many columns common."""
    shapes = npst.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side)
    if width is not None:
        shapes = st.one_of(shapes, st.tuples(st.integers(0, 6), st.just(width)))
    return npst.arrays(dtypes(), shapes)


def anything(width=None):
    """Any argument a user might pass: scalars, arrays, nested lists (ragged too),
    dicts and junk objects."""
    lists = st.recursive(st.one_of(st.floats(allow_nan=True), st.integers(-5, 5), st.text(max_size=2)),
                         lambda inner: st.lists(inner, max_size=4), max_leaves=12)
    return st.one_of(scalars(), arrays(width=width), lists,
                     st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
                     st.builds(lambda a: a.T, arrays(width=width)),       # non-contiguous
                     st.builds(lambda a: a.astype(np.float32), npst.arrays(
                         np.float64, st.tuples(st.integers(1, 6), st.just(width or 3)),
                         elements=st.floats(-1e39, 1e39))))


# ---------------------------------------------------------------- the property

def rejects_clearly(call, names):
    """Runs ``call``; None if it returned, else checks it raised a ValueError/TypeError
    from dlc's own code whose message has one of ``names``, and returns it."""
    try:
        return call(), None
    except (ValueError, TypeError) as exc:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        assert Path(frame.filename).resolve().is_relative_to(PACKAGE), (
            f"{type(exc).__name__} from outside dlc ({frame.filename}:{frame.lineno}): {exc}")
        assert any(name in str(exc) for name in names), (
            f"the message does not name the argument ({names}): {exc}")
        return None, exc


def valid_batch(X, width) -> bool:
    """Whether ``X`` is a batch predict must accept: 2-D, ``width`` columns, rows, real
    and finite in the model's dtype (float32 here)."""
    try:
        a = np.asarray(X)
    except Exception:
        return False
    if a.dtype == object or a.ndim != 2 or a.shape[1] != width or a.shape[0] == 0:
        return False
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(a.astype(np.float32)).all())


def small_net(dtype="float32"):
    return dlc.Sequential([dlc.Input(N_IN), dlc.Dense(4), dlc.BatchNorm(), dlc.Tanh(),
                           dlc.Dropout(0.8), dlc.Dense(N_OUT), dlc.Softmax()], dtype=dtype, seed=3)


@pytest.fixture(scope="module")
def library():
    return dlc.compile(small_net())


# ---------------------------------------------------------------- inference

@settings(max_examples=examples(1.0))
@given(X=anything(width=N_IN))
def test_predict_takes_any_object(library, X):
    got, error = rejects_clearly(lambda: library.predict(X), ["X"])
    ref, ref_error = rejects_clearly(lambda: dlc.reference(small_net()).predict(X), ["X"])
    assert (error is None) == valid_batch(X, N_IN) == (ref_error is None), (error, ref_error)
    if error is None:
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- training

def good_rows(width):
    return npst.arrays(np.float64, st.tuples(st.integers(1, 6), st.just(width)),
                       elements=st.floats(-10, 10))


@settings(max_examples=examples(0.5))
@given(X=st.one_of(good_rows(N_IN), anything(width=N_IN)),
       Y=st.one_of(anything(width=N_OUT), st.just(np.arange(4) % 2)),
       batch_size=st.one_of(st.none(), st.integers(-2, 8), scalars()),
       epochs=st.one_of(st.integers(-2, 2), scalars()))
def test_fit_and_evaluate_take_any_object(X, Y, batch_size, epochs):
    """Only small epoch counts are drawn as integers: a huge one is a valid, long run."""
    if isinstance(epochs, (int, np.integer)) and not isinstance(epochs, bool) and epochs > 2:
        epochs = 2
    trainer = reference_trainer(small_net("float64"), optimizer=dlc.SGD(lr=0.1))
    history, error = rejects_clearly(
        lambda: trainer.fit(X, Y, epochs=epochs, batch_size=batch_size, progress=False),
        ["X", "Y", "batch_size", "epochs", "label", "target"])
    if error is None:
        assert all(np.isfinite(history["loss"]))
    metrics, error = rejects_clearly(lambda: trainer.evaluate(X, Y),
                                     ["X", "Y", "label", "target"])
    if error is None:
        assert np.isfinite(metrics["loss"])


@settings(max_examples=examples(0.1))
@given(X=st.one_of(anything(width=N_IN)), data=st.data())
def test_c_trainer_takes_what_the_reference_takes(X, data):
    """The C trainer accepts exactly the inputs the reference trainer does, and ends in
    the same state."""
    Y = data.draw(st.one_of(st.just(None), anything(width=N_OUT)))
    if Y is None:
        Y = np.arange(len(X)) % N_OUT if isinstance(X, np.ndarray) and X.ndim >= 1 else X
    states = []
    for make in (dlc.compile, reference_trainer):
        options = dict(mode="train") if make is dlc.compile else {}
        trainer = make(small_net("float64"), optimizer=dlc.SGD(lr=0.1), **options)
        _, error = rejects_clearly(lambda: trainer.fit(X, Y, epochs=1, batch_size=1,
                                                       progress=False), ["X", "Y", "label"])
        states.append(None if error else trainer.state_dict()["params"])
    assert (states[0] is None) == (states[1] is None)
    if states[0] is not None:
        for name in states[1]:
            np.testing.assert_allclose(states[0][name], states[1][name], rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- data helpers

@settings(max_examples=examples(0.5))
@given(X=anything(), Y=anything(),
       ratios=st.one_of(st.none(), st.lists(st.one_of(st.floats(-1, 2), st.just(np.nan)), max_size=4),
                        scalars()),
       seed=st.one_of(st.integers(0, 3), scalars()), stratify=st.booleans())
def test_split_takes_any_object(X, Y, ratios, seed, stratify):
    parts, error = rejects_clearly(
        lambda: dlc.data.split(X, Y, ratios, seed=seed, stratify=stratify),
        ["X", "Y", "ratio", "seed", "label", "stratif", "part"])
    if error is None:
        X, Y = np.asarray(X), np.asarray(Y)
        assert sum(len(px) for px, _ in parts) == len(X)
        for px, py in parts:
            assert len(px) == len(py)


@settings(max_examples=examples(0.5))
@given(X=anything(), eps=st.one_of(st.just(1e-8), scalars()))
def test_fit_normalize_takes_any_object(X, eps):
    layer, error = rejects_clearly(lambda: dlc.data.fit_normalize(X, eps=eps),
                                   ["X_train", "eps"])
    if error is None:
        a = np.asarray(X, dtype=np.float64)
        np.testing.assert_allclose(layer.mean, a.mean(axis=0))


# ---------------------------------------------------------------- layers, compile, export

LAYERS = [
    (lambda v: dlc.Dense(v), ["units"]),
    (lambda v: dlc.Dense(3, init=v), ["init"]),
    (lambda v: dlc.Dense(3, name=v), ["name"]),
    (lambda v: dlc.Dense(3, in_features=v), ["in_features"]),
    (lambda v: dlc.BatchNorm(eps=v), ["eps"]),
    (lambda v: dlc.BatchNorm(momentum=v), ["momentum"]),
    (lambda v: dlc.Dropout(keep_prob=v), ["keep_prob"]),
    (lambda v: dlc.LeakyReLU(alpha=v), ["alpha"]),
    (lambda v: dlc.Normalize(mean=v, var=np.ones(np.size(v) if not callable(v) else 1)),
     ["mean", "var"]),
    (lambda v: dlc.Normalize(mean=np.zeros(2), var=v), ["var", "mean"]),
    (lambda v: dlc.Normalize(mean=np.zeros(2), var=np.ones(2), eps=v), ["eps"]),
    (lambda v: dlc.Input(v), ["features"]),
    (lambda v: dlc.Sequential([dlc.Input(2), dlc.Dense(2)], dtype=v), ["dtype"]),
    (lambda v: dlc.Sequential([dlc.Input(2), dlc.Dense(2)], seed=v), ["seed"]),
    (lambda v: dlc.Sequential(v), ["layer", "Sequential", "Input"]),
]


@settings(max_examples=examples(1.0))
@given(which=st.integers(0, len(LAYERS) - 1), value=anything())
def test_layers_take_any_object(which, value):
    make, names = LAYERS[which]
    rejects_clearly(lambda: make(value), names)


@settings(max_examples=examples(0.3))
@given(which=st.sampled_from(["mode", "threads", "flags", "tile_rows", "net"]),
       value=anything())
def test_compile_takes_any_object(library, which, value):
    """Only rejections are compared: a valid value of mode, threads or tile_rows is one
    of a few builds, which the fuzz and build tests cover."""
    net = small_net()
    args = {"net": net}
    if which == "mode":
        valid = value in ("inference", "train") if isinstance(value, str) else False
    elif which == "threads":
        valid = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1
    elif which == "tile_rows":
        valid = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1
    elif which == "flags":      # a preset, or any list of strings (the compiler's business)
        valid = (value in ("native", "portable") if isinstance(value, str) else
                 isinstance(value, (list, tuple)) and all(isinstance(f, str) for f in value))
    else:
        valid = isinstance(value, dlc.Model)
    if valid:
        return
    args[which] = value
    call_net = args.pop("net")
    rejects_clearly(lambda: dlc.compile(call_net, **args),
                    [which, "Model", "flag", "compiler", "preset"])


@settings(max_examples=examples(0.3))
@given(which=st.sampled_from(["name", "weights", "tile_rows", "directory", "net"]),
       value=anything())
def test_export_takes_any_object(which, value):
    args = {"name": "model"}
    with tempfile.TemporaryDirectory() as tmp:
        net, directory = small_net(), Path(tmp) / "out"
        if which == "net":
            net = value
        elif which == "directory":
            directory = value
            if isinstance(value, (str, bytes)):
                return          # a path relative to the working directory: a valid call
        else:
            args[which] = value
        exported, error = rejects_clearly(lambda: dlc.export_c(net, directory, **args),
                                          [which, "Model", "path"])
        if error is None:
            assert exported.source.exists() and exported.header.exists()


@settings(max_examples=examples(0.3))
@given(obj=anything(), content=st.binary(max_size=64))
def test_save_and_load_take_any_object(obj, content):
    with tempfile.TemporaryDirectory() as tmp:
        rejects_clearly(lambda: dlc.save(obj, Path(tmp) / "x.dlc"), ["dlc.save", "Model"])
        (Path(tmp) / "junk.dlc").write_bytes(content)
        rejects_clearly(lambda: dlc.load(Path(tmp) / "junk.dlc"), ["junk.dlc"])
        if not isinstance(obj, (str, bytes)):      # else a path in the working directory
            rejects_clearly(lambda: dlc.load(obj), ["path"])


# ---------------------------------------------------------------- regressions
# Each counterexample the properties above found, kept as an explicit test.  Before the
# fix each raised from NumPy or the standard library with a message naming no argument
# (or, for dlc.load(3), read file descriptor 3).

def ragged_fit():
    trainer = reference_trainer(small_net("float64"))
    return trainer.fit(np.zeros((2, N_IN)), [[1], [1, 0]], progress=False)


REGRESSIONS = {
    "predict of ragged rows": (lambda: dlc.reference(small_net()).predict([[], 0.0]), "X"),
    "fit with ragged targets": (ragged_fit, "Y"),
    "Dense init of a dict": (lambda: dlc.Dense(3, init={}), "init"),
    "Normalize mean of ragged rows": (lambda: dlc.Normalize(mean=[[1], [2, 3]], var=[1]),
                                      "Normalize mean"),
    "export_c into directory None": (lambda: dlc.export_c(small_net(), None), "directory"),
    "fit_normalize of an object": (lambda: dlc.data.fit_normalize(object()), "X_train"),
    "fit_normalize of a string": (lambda: dlc.data.fit_normalize(""), "X_train"),
    "fit_normalize of None": (lambda: dlc.data.fit_normalize(None), "X_train"),
    "fit_normalize of no features": (lambda: dlc.data.fit_normalize(np.zeros((1, 0))),
                                     "X_train"),
    "split of ragged rows": (lambda: dlc.data.split([[1], [1, 2]], [0, 1]), "split X"),
    "split ratios False": (lambda: dlc.data.split(np.zeros(5), np.zeros(5), False), "ratios"),
    "compile mode of an array": (lambda: dlc.compile(small_net(), mode=np.ones(3)), "mode"),
    "compile flags of a dict": (lambda: dlc.compile(small_net(), flags={"-O0": 0}), "flags"),
    "load of an int": (lambda: dlc.load(3), "path"),
    "Sequential of None": (lambda: dlc.Sequential(None), "Sequential"),
    "save to an int": (lambda: dlc.save(small_net(), 3), "path"),
}


@pytest.mark.parametrize("case", sorted(REGRESSIONS))
def test_counterexamples_found_by_fuzzing_are_rejected_clearly(case):
    call, name = REGRESSIONS[case]
    result, error = rejects_clearly(call, [name])
    assert error is not None, f"{case} returned {result!r}"
