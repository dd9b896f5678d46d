"""Generated C under the flags users add (-O0 .. -O3, -Os, -ffast-math, -Ofast, its parts
-fassociative-math and -ffp-contract=fast, with and without -march=native) equals the
NumPy reference: the exported C, the inference library and the trainer.  And non-finite
values (overflowed logits, NaN and inf through every activation) come out of the C
library and the export as the reference computes them.

Tolerances: inference uses the project's float32/float64 ones (tests/helpers.py; float32
rtol 1e-5 is 84 ulp, while the float32 exp is within 2.3 ulp under every set below and
libm's or libmvec's tanh and exp within 4; the reordered sums are the ones a blocked
matrix multiply already does); training the 5-step tolerance of
tests/test_train_c_vs_reference.py, whose model, data and steps it reuses.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import dlc
from dlc.passes import INFERENCE_PIPELINE
from dlc.train import compile_trainer, reference_trainer
from helpers import assert_matches
from test_export import STRICT, bn_dropout_normalize, every_activation, inputs_for
from test_export import predict_with_driver
from test_train_c_vs_reference import ATOL, BATCH, RTOL, make_data, make_net

BASE_FLAGS = {
    "O0": ("-O0",), "O1": ("-O1",), "O2": ("-O2",), "O3": ("-O3",), "Os": ("-Os",),
    "O3-fast-math": ("-O3", "-ffast-math"), "Ofast": ("-Ofast",),
    "O2-associative-math": ("-O2", "-fassociative-math", "-fno-signed-zeros",
                            "-fno-trapping-math"),
    "O2-fp-contract-fast": ("-O2", "-ffp-contract=fast"),
}
FLAG_SETS = {**BASE_FLAGS,
             **{f"{name}-native": flags + ("-march=native",) for name, flags in BASE_FLAGS.items()}}
FAST_MATH = ("-O3", "-ffast-math", "-march=native")
WARNINGS = [f for f in STRICT if f != "-O2"]      # the export compiles cleanly under each set
EXPORT_MODELS = {"every_activation": every_activation, "bn_dropout_normalize": bn_dropout_normalize}


def check_classifier(got, expected, dtype, what):
    """Probabilities within the dtype's tolerance and the same top class, except in rows
    where the reference's two most likely classes are within that tolerance of a tie."""
    assert_matches(got, expected, dtype, what=what)
    top_two = np.sort(expected, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 1e-4
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(got.argmax(axis=1)[clear], expected.argmax(axis=1)[clear],
                                  err_msg=f"{what}: top class")


@pytest.mark.parametrize("flags", sorted(FLAG_SETS))
@pytest.mark.parametrize("model", sorted(EXPORT_MODELS))
def test_exported_c_equals_reference_under_common_flags(model, flags, tmp_path):
    """150 rows: groups of 8 on their side with -march=native, 6 rows left over."""
    net = EXPORT_MODELS[model]("float32")
    exported = dlc.export_c(net, tmp_path / "out", name="model")
    X = inputs_for(net)
    expected = dlc.reference(net).predict(X)
    internal, own, row_by_row = predict_with_driver(exported, X, tmp_path,
                                                    WARNINGS + list(FLAG_SETS[flags]))
    check_classifier(internal, expected, np.float32, f"{model} exported C, {flags}")
    np.testing.assert_array_equal(own, internal)
    check_classifier(row_by_row, expected, np.float32, f"{model} one row at a time, {flags}")


@pytest.mark.parametrize("cc", ["gcc", "clang"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exported_c_under_fast_math_with_either_compiler(dtype, cc, tmp_path):
    net = every_activation(dtype)
    exported = dlc.export_c(net, tmp_path / "out", name="model")
    X = inputs_for(net)
    expected = dlc.reference(net).predict(X)
    for flags in (FAST_MATH, ("-Ofast",)):
        got = predict_with_driver(exported, X, tmp_path, WARNINGS + list(flags), cc=cc)
        for predictions in got:
            check_classifier(predictions, expected, dtype, f"{cc} {' '.join(flags)}")


@pytest.mark.parametrize("flags", sorted(FLAG_SETS))
def test_library_equals_reference_under_common_flags(flags):
    net = every_activation("float32")
    X = inputs_for(net)
    got = dlc.compile(net, flags=list(FLAG_SETS[flags])).predict(X)
    check_classifier(got, dlc.reference(net).predict(X), np.float32, f"library, {flags}")


def five_steps(make, flags=None):
    """5 steps of Adam with l2 on tests/test_train_c_vs_reference.py's model (every
    activation and its gradient, dropout and batch norm) with the cross-entropy loss."""
    X, Y = make_data("cross_entropy", np.random.default_rng(1))
    net = make_net("float32", True, True, "cross_entropy")
    options = dict(loss="cross_entropy", optimizer=dlc.Adam(lr=0.01), l2=0.3)
    if flags is not None:
        options["flags"] = list(flags)
    trainer = make(net, **options)
    history = trainer.fit(X, Y, epochs=1, batch_size=BATCH, seed=3, progress=False)
    return trainer, history


@pytest.fixture(scope="module")
def reference_steps():
    return five_steps(reference_trainer)


@pytest.mark.parametrize("flags", sorted(FLAG_SETS))
def test_trainer_equals_reference_under_common_flags(flags, reference_steps):
    c, c_history = five_steps(compile_trainer, FLAG_SETS[flags])
    ref, ref_history = reference_steps
    assert c.step == ref.step == 5
    for name, expected in ref.views.items():
        got = c.views[name]
        np.testing.assert_allclose(got, expected, rtol=RTOL["float32"], atol=ATOL["float32"],
                                   err_msg=f"{name}: max abs difference "
                                           f"{np.max(np.abs(got - expected)):.3g}")
    np.testing.assert_allclose(c_history["loss"], ref_history["loss"], rtol=RTOL["float32"])


@pytest.mark.parametrize("flags", [FAST_MATH, ("-Ofast",)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_divergence_is_detected_under_fast_math(dtype, flags):
    """-ffinite-math-only folds isfinite(cost) to 1: the trainer's test is on the bits."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(32, 4)), rng.integers(0, 3, 32)
    net = dlc.Sequential([dlc.Input(4), dlc.Dense(8), dlc.ReLU(), dlc.Dense(3), dlc.Softmax()],
                         dtype=dtype)
    huge = float(np.finfo(dtype).max)
    t = dlc.compile(net, mode="train", flags=list(flags),
                    optimizer=dlc.SGD(lr=0.1, schedule=lambda lr0, e: lr0 if e == 0 else huge))
    t.fit(X, y, epochs=1, batch_size=8, progress=False)
    after_first = t.state.copy()
    with pytest.raises(FloatingPointError, match="diverged in epoch 2.*after epoch 1"):
        t.fit(X, y, epochs=3, batch_size=8, progress=False)
    np.testing.assert_array_equal(t.state, after_first)


# ---------------------------------------------------------------- non-finite values
# Weights near the largest float make finite inputs overflow inside the network.  Every
# activation follows NumPy on what comes out (dlc/ops.py, ACTIVATIONS): NaN stays NaN,
# +-inf go to their limits; softmax of a row holding NaN or +inf, or all -inf, is NaN.

def hidden_weights(dtype):
    """Dense(3 -> 3) = diag(big, big, 1): inputs of 4 overflow to +-inf (a product that
    overflows is inf, fused or not), 0.1 gives large finite values, the third stays small."""
    return np.diag(np.array([np.finfo(dtype).max, np.finfo(dtype).max, 1], dtype))


def activation_weights(n_out, dtype):
    """Dense(3 -> n_out), columns j % 5: inf - inf is NaN in every order and with FMA (one
    product of two finite values never is), so rows of OVERFLOW_INPUTS give NaN, +inf and
    -inf, small and large finite values."""
    pattern = np.array([[1, 1, 0], [1, 0.5, 0], [-1, -1, 0], [1, 1, 2], [1, 1, -3]], dtype).T
    return np.tile(pattern, (1, -(-n_out // 5)))[:, :n_out]


OVERFLOW_INPUTS = [[4, -4, 0], [4, 0, 0], [0, 0, 0.5], [0.1, 0, 0]]


def softmax_weights(n_out, dtype):
    """Dense(3 -> 4) logits: rows of SOFTMAX_INPUTS give NaN (inf - inf; NaN softmax),
    all +inf (NaN), -inf but the last (0, 0, 0, 1), all -inf (NaN) and large finite ones
    whose exps underflow (1, 0, 0, 0)."""
    big = np.finfo(dtype).max
    return np.array([[1, 0.5, 0.25, 0.125], [1, 0.5, 0.25, 0.125], [-big, -big, -big, 1]],
                    dtype)


SOFTMAX_INPUTS = [[4, -4, 0], [4, 0, 0], [0, 0, 4], [-4, -4, 0], [1e-3, 0, 0]]

NON_FINITE_MODELS = {
    # Dense + ReLU and Dense + LeakyReLU run in the matrix multiply's epilogue (after the
    # passes), Dense + Sigmoid in dlc_dense, Tanh and the last ReLU on their own.
    "relu": (lambda: [dlc.Dense(20), dlc.ReLU()], OVERFLOW_INPUTS, activation_weights),
    "leaky_tanh_relu": (lambda: [dlc.Dense(20), dlc.LeakyReLU(alpha=0.1), dlc.Tanh(),
                                 dlc.ReLU()], OVERFLOW_INPUTS, activation_weights),
    "sigmoid": (lambda: [dlc.Dense(20), dlc.Sigmoid()], OVERFLOW_INPUTS, activation_weights),
    # Dense + ELU and Dense + SiLU in dlc_dense after the product; a SiLU on its own.
    "elu_silu": (lambda: [dlc.Dense(20), dlc.ELU(alpha=0.5), dlc.SiLU()], OVERFLOW_INPUTS,
                 activation_weights),
    "silu": (lambda: [dlc.Dense(20), dlc.SiLU()], OVERFLOW_INPUTS, activation_weights),
    "softmax": (lambda: [dlc.Dense(4), dlc.Softmax()], SOFTMAX_INPUTS, softmax_weights),
}


def non_finite_case(model, dtype, rows):
    make_layers, inputs, weights = NON_FINITE_MODELS[model]
    net = dlc.Sequential([dlc.Input(3), dlc.Dense(3), *make_layers()], dtype=dtype)
    n_out = net.params["dense2.b"].size
    net.set_params({"dense1.W": hidden_weights(dtype), "dense2.W": weights(n_out, dtype)})
    X = np.array([inputs[i % len(inputs)] for i in range(rows)], dtype)
    with np.errstate(all="ignore"):
        expected = dlc.reference(net).predict(X)
    return net, X, expected


def assert_same_non_finite(got, expected, dtype, what):
    """NaN where the reference has NaN, the same infinities, finite values within the
    dtype's tolerance (float32's exp gives 0 below ln(FLT_MIN), where exp is denormal)."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=f"{what}: NaN")
    finite = ~np.isnan(expected)
    np.testing.assert_array_equal(got[np.isinf(expected)], expected[np.isinf(expected)],
                                  err_msg=f"{what}: inf")
    finite &= np.isfinite(expected)
    assert_matches(got[finite], expected[finite], dtype, what=what)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("model", sorted(NON_FINITE_MODELS))
def test_reference_has_the_non_finite_values_the_case_needs(model, dtype):
    """The cases really put NaN and inf through each activation."""
    net, X, expected = non_finite_case(model, dtype, rows=len(NON_FINITE_MODELS[model][1]))
    assert np.isnan(expected).any() and np.isfinite(expected).any()
    if model == "relu":      # relu(NaN) = NaN, relu(inf) = inf, relu(-inf) = 0
        assert np.isinf(expected).any() and (expected == 0).any()
    if model == "sigmoid":   # sigmoid(+-inf) = 1, 0
        assert (expected == 1).any() and (expected == 0).any()
    if model == "silu":      # silu(inf) = inf, silu(-inf) = 0
        assert np.isinf(expected).any() and (expected == 0).any()
    if model == "elu_silu":  # elu(-inf) = -0.5, silu(-0.5) < 0
        assert np.isclose(expected, -0.5 / (1 + np.exp(0.5)), rtol=1e-6).any()
    if model == "softmax":   # NaN rows; rows of exact 0s and a 1
        np.testing.assert_array_equal(np.isnan(expected).all(axis=1), [1, 1, 0, 1, 0])
        np.testing.assert_array_equal(expected[[2, 4]], [[0, 0, 0, 1], [1, 0, 0, 0]])


@pytest.mark.parametrize("flags", [("-O2",), FAST_MATH])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("model", sorted(NON_FINITE_MODELS))
def test_non_finite_values_in_library_and_export_as_in_reference(model, dtype, flags,
                                                                 tmp_path):
    """1 row (the unpacked small-batch product) and 40 (packed; groups of 8 rows with
    healthy and NaN rows side by side in softmax); the library with the passes (fused
    epilogues, dense + softmax) and without (each activation on its own; for Dense +
    Sigmoid the same kernels); the host export and the generic one (the plain kernels)."""
    without_passes = [] if model == "sigmoid" else [()]
    for rows in (1, 40):
        net, X, expected = non_finite_case(model, dtype, rows)
        for passes in [INFERENCE_PIPELINE, *without_passes]:
            got = dlc.compile(net, flags=list(flags), passes=passes).predict(X)
            assert_same_non_finite(got, expected, dtype,
                                   f"library, {len(passes)} passes, {rows} rows")
        for target in ("host", "generic"):
            exported = dlc.export_c(net, tmp_path / target, name="model", target=target)
            for got, how in zip(predict_with_driver(exported, X, tmp_path,
                                                    WARNINGS + list(flags)),
                                ("internal workspace", "own workspace", "row by row")):
                assert_same_non_finite(got, expected, dtype,
                                       f"{target} export, {how}, {rows} rows")


SUBNORMALS_AFTER_LOADING = """
import sys
import numpy as np
import dlc
net = dlc.Sequential([dlc.Input(4), dlc.Dense(3), dlc.Softmax()], seed=0)
tiny = np.float32(np.finfo(np.float32).smallest_subnormal)
before = float(tiny * np.float32(3))
model = dlc.compile(net, cc=sys.argv[1], flags=sys.argv[2:])
model.predict(np.ones((2, 4), np.float32))
print(before, float(tiny * np.float32(3)))
"""


@pytest.mark.parametrize("cc", ["gcc", "clang"])
@pytest.mark.parametrize("flags", ["O3-fast-math", "Ofast"])
def test_loading_a_fast_math_library_keeps_the_process_subnormals(cc, flags, tmp_path):
    """Linked with -ffast-math, a shared object brings crtfastmath.o, which sets the CPU to
    flush subnormals to zero for the whole process: NumPy's results would change after a
    dlc.compile.  In a fresh process, so a failure cannot leak into the others' tests."""
    env = dict(os.environ, DLC_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", SUBNORMALS_AFTER_LOADING, cc,
                           *FLAG_SETS[flags]], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    before, after = map(float, done.stdout.split())
    assert before == after == 3 * float(np.finfo(np.float32).smallest_subnormal)
