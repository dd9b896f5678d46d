"""The runner (C compiled once per dtype and flags, programs as data) against the
specialised build: the same bits on the zoo models for every optimizer, loss and flag set
compared, within the reference's tolerance on every training case; its inference equal to
the compiled library; and a search over widths and every hyperparameter that changes no
shape runs no compiler after the first configuration."""
import pickle
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import dlc
import dlc.build
from dlc import tune
from dlc.build import NATIVE_FLAGS
from dlc.library import compile_graph
from dlc.lower import lower
from dlc.passes import run_pipeline
from dlc.targets.runner import cases, generate_runner
from dlc.train import reference_trainer
from helpers import assert_matches, random_model
from test_train_c_vs_reference import (CASES, OPTIMIZERS, REGULARIZATION, assert_same_state,
                                       make_data, make_net)

LOSSES = ("cross_entropy", "binary_cross_entropy", "mse")


def zoo_net(loss="cross_entropy", dtype="float64", width=7, keep_prob=0.7, momentum=0.9):
    outputs, last = (2, dlc.Sigmoid()) if loss == "binary_cross_entropy" else (3, dlc.Softmax())
    return dlc.Sequential([dlc.Input(5), dlc.Normalize(np.full(5, 0.2), np.full(5, 1.5)),
                           dlc.Dense(width), dlc.BatchNorm(momentum=momentum), dlc.Tanh(),
                           dlc.Dropout(keep_prob), dlc.Dense(6), dlc.LeakyReLU(0.1),
                           dlc.Dense(4), dlc.ELU(0.5), dlc.Dense(outputs), last],
                          dtype=dtype, seed=3)


def zoo_data(loss, rows=45, outputs=3):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(rows, 5))
    if loss == "binary_cross_entropy":
        return X, rng.integers(0, 2, (rows, 2))
    if loss == "mse":
        return X, rng.normal(size=(rows, outputs))
    return X, rng.integers(0, outputs, rows)


def train_with(backend, loss, optimizer, flags, dtype="float64", **options):
    X, Y = zoo_data(loss)
    trainer = dlc.compile(zoo_net(loss, dtype), mode="train", loss=loss, optimizer=optimizer,
                          flags=flags, backend=backend, **options)
    history = trainer.fit(X, Y, epochs=2, batch_size=8, seed=5, progress=False)
    return trainer, history, trainer.evaluate(X, Y)


def assert_bit_identical(a, b):
    (ta, ha, ea), (tb, hb, eb) = a, b
    assert ta.step == tb.step > 0
    np.testing.assert_array_equal(ta.state, tb.state)
    assert ha["loss"] == hb["loss"] and ea == eb


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_runner_equals_the_specialised_build_bit_for_bit_per_optimizer(optimizer):
    options = dict(loss="cross_entropy", flags=("-O2",), l2=0.05)
    assert_bit_identical(train_with("runner", optimizer=OPTIMIZERS[optimizer](), **options),
                         train_with("c", optimizer=OPTIMIZERS[optimizer](), **options))


@pytest.mark.parametrize("loss", LOSSES)
def test_runner_equals_the_specialised_build_bit_for_bit_per_loss(loss):
    options = dict(loss=loss, flags=("-O2",), l1=0.01)
    assert_bit_identical(train_with("runner", optimizer=dlc.Adam(lr=0.01), **options),
                         train_with("c", optimizer=dlc.Adam(lr=0.01), **options))


@pytest.mark.parametrize("flags, dtype", [(("-O0",), "float64"), (NATIVE_FLAGS, "float64"),
                                          (NATIVE_FLAGS, "float32")])
def test_runner_equals_the_specialised_build_bit_for_bit_per_flag_set(flags, dtype):
    """-O3 -march=native with OpenMP (FMA contraction, vectors) and -O0; both dtypes."""
    options = dict(loss="cross_entropy", flags=flags, dtype=dtype, l2=0.01)
    assert_bit_identical(train_with("runner", optimizer=dlc.RMSProp(), **options),
                         train_with("c", optimizer=dlc.RMSProp(), **options))


@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_runner_equals_the_reference_on_every_training_case(case):
    """Every optimizer x regularization x dropout x batch norm x loss of the C-vs-reference
    file, with its tolerances: one runner build serves them all."""
    optimizer, reg, dropout, batchnorm, loss = case
    X, Y = make_data(loss, np.random.default_rng(1))
    trainers = []
    for make in (lambda net, **o: dlc.compile(net, mode="train", backend="runner",
                                              flags=("-O2",), **o), reference_trainer):
        net = make_net("float64", dropout, batchnorm, loss)
        trainer = make(net, loss=loss, optimizer=OPTIMIZERS[optimizer](),
                       **REGULARIZATION[reg])
        trainer.fit(X, Y, epochs=1, batch_size=4, seed=3, progress=False)
        trainers.append(trainer)
    assert_same_state(*trainers, "float64")


@pytest.mark.parametrize("seed", range(6))
def test_runner_inference_equals_the_compiled_library(seed):
    """Random models (every layer kind, folded and fused by the pipeline), batches over
    several tiles: the runner's predict gives the library's bits."""
    rng = np.random.default_rng(seed)
    net = random_model(rng, dtype="float64" if seed % 2 else "float32", max_width=60)
    graph = run_pipeline(lower(net))
    X = rng.normal(size=(300, net.n_inputs)).astype(net.dtype)
    trainer = dlc.compile(net, mode="train", backend="runner", flags=("-O2",), loss="mse")
    expected = compile_graph(graph, flags=("-O2",)).predict(X)
    got = trainer.inference_model().predict(X)
    np.testing.assert_array_equal(got, expected)
    assert_matches(trainer.predict(X), dlc.reference(net).predict(X), net.dtype)


def test_every_kernel_template_has_a_case_and_a_program_names_only_cases():
    ops = {op for case in cases() for op, _ in case.ops}
    assert ops >= {name for name, op in dlc.ops.OPS.items() if not op.integer} | {"copy"}
    trainer = dlc.compile(zoo_net(), mode="train", backend="runner", flags=("-O2",))
    records = trainer.backend.records
    assert records.n_calls == len(trainer.backend.program.calls)
    assert set(records.ints[:, 0]) <= {case.id for case in cases()}


def test_a_bad_record_is_refused_not_run():
    trainer = dlc.compile(zoo_net(), mode="train", backend="runner", flags=("-O2",))
    X, Y = zoo_data("cross_entropy")
    trainer.backend.records.ints[0, 0] = len(cases())
    with pytest.raises(RuntimeError, match="failed with code"):
        trainer.fit(X, Y, epochs=1, progress=False)


def test_an_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="backend must be one of"):
        dlc.compile(zoo_net(), mode="train", backend="gcc")


def test_a_runner_trainer_pickles_and_continues_bit_for_bit():
    X, Y = zoo_data("cross_entropy")
    a = dlc.compile(zoo_net(), mode="train", backend="runner", flags=("-O2",))
    a.fit(X, Y, epochs=1, batch_size=8, seed=1, progress=False)
    b = pickle.loads(pickle.dumps(a))
    assert b.backend.name == "runner"
    for trainer in (a, b):
        trainer.fit(X, Y, epochs=1, batch_size=8, progress=False)
    np.testing.assert_array_equal(a.state, b.state)


# ---------------------------------------------------------------- no compiler per trial

SPACE = {
    "hidden": tune.IntLogUniform(4, 64),
    "layers": tune.IntUniform(1, 3),
    "lr": tune.LogUniform(1e-3, 0.3),
    "beta1": tune.OneMinusLogUniform(0.8, 0.99),
    "beta2": tune.OneMinusLogUniform(0.9, 0.9999),
    "eps": tune.LogUniform(1e-9, 1e-6),
    "l2": tune.LogUniform(1e-5, 1e-1),
    "l1": tune.LogUniform(1e-6, 1e-2),
    "keep_prob": tune.Uniform(0.5, 1.0),
    "momentum": tune.Uniform(0.8, 0.99),
    "decay": tune.Uniform(0.0, 1.0),
    "batch_size": tune.Choice([8, 16, 32]),
}


def runner_build(p):
    layers = [dlc.Input(6)]
    for _ in range(p["layers"]):
        layers += [dlc.Dense(p["hidden"]), dlc.BatchNorm(momentum=p["momentum"]), dlc.ReLU(),
                   dlc.Dropout(p["keep_prob"])]
    net = dlc.Sequential(layers + [dlc.Dense(3), dlc.Softmax()], seed=p.seed)
    optimizer = dlc.Adam(lr=p["lr"], beta1=p["beta1"], beta2=p["beta2"], eps=p["eps"],
                         schedule=dlc.InverseTimeDecay(decay_rate=p["decay"]))
    return dlc.compile(net, mode="train", backend="runner", optimizer=optimizer, l2=p["l2"],
                       l1=p["l1"], flags=("-O2",))


def test_a_search_over_widths_and_hyperparameters_runs_no_compiler_after_the_first(
        monkeypatch, tmp_path):
    """With an empty build cache the first configuration builds the runner; then the C
    compiler is made to fail, and eight more configurations (every width, depth and
    non-shape hyperparameter drawn afresh, evaluation and batch-1 latency included) all
    train."""
    monkeypatch.setenv("DLC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(dlc.build, "_loaded", {})       # nothing built in this process either
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(120, 6)), rng.integers(0, 3, 120)
    compiles = []
    real_compiler = dlc.build.run_compiler
    monkeypatch.setattr(dlc.build, "run_compiler",
                        lambda command: compiles.append(command) or real_compiler(command))
    with ThreadPoolExecutor(1) as pool:
        first = tune.search(runner_build, SPACE, train=(X[:80], Y[:80]), dev=(X[80:], Y[80:]),
                            trials=1, rounds=1, epochs=2, seed=1, executor=pool)
    assert first.best.status == "ok" and compiles

    def no_compiler(command):
        raise AssertionError(f"the C compiler ran: {command}")
    monkeypatch.setattr(dlc.build, "run_compiler", no_compiler)
    with ThreadPoolExecutor(1) as pool:
        result = tune.search(runner_build, SPACE, train=(X[:80], Y[:80]), dev=(X[80:], Y[80:]),
                             trials=8, rounds=2, epochs=2, seed=2, executor=pool)
    assert [t.status for t in result.trials] == ["ok"] * 8, [t.error for t in result.trials]
    assert len({(t.params["hidden"], t.params["layers"]) for t in result.trials}) >= 6
    assert all(t.latency_us > 0 and t.dev_error is not None for t in result.trials)
    assert result.best_trainer().backend.name == "runner"


def plain_build(p):
    """A build that names no backend: the search's default decides."""
    net = dlc.Sequential([dlc.Input(6), dlc.Dense(p["hidden"]), dlc.ReLU(), dlc.Dense(3),
                          dlc.Softmax()], seed=p.seed)
    return dlc.compile(net, mode="train", optimizer=dlc.Adam(lr=p["lr"]), flags=("-O2",))


def test_search_trials_default_to_the_runner_and_compile_keeps_the_specialised_build():
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(60, 6)), rng.integers(0, 3, 60)
    space = {"hidden": tune.IntLogUniform(4, 16), "lr": tune.LogUniform(1e-3, 1e-1)}
    with ThreadPoolExecutor(1) as pool:
        result = tune.search(plain_build, space, train=(X[:40], Y[:40]), dev=(X[40:], Y[40:]),
                             trials=2, rounds=1, epochs=1, seed=0, executor=pool)
    assert result.best_trainer().backend.name == "runner"
    assert plain_build(tune.space.Params({"hidden": 4, "lr": 0.01}, 0, 0)).backend.name == "c"
    with dlc.train.default_backend("runner"):
        assert plain_build(tune.space.Params({"hidden": 4, "lr": 0.01}, 0, 0)).backend.name \
            == "runner"
    with pytest.raises(ValueError, match="backend must be"):
        tune.search(plain_build, space, train=(X, Y), dev=(X, Y), backend="gcc")


def test_runner_predicts_from_several_python_threads_at_once():
    trainer = dlc.compile(zoo_net(), mode="train", backend="runner", flags=("-O2",))
    model = trainer.inference_model()
    rng = np.random.default_rng(4)
    batches = [rng.normal(size=(int(n), 5)) for n in rng.integers(1, 600, 16)]
    expected = [model.predict(X) for X in batches]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda X: [model.predict(X) for _ in range(5)][-1], batches))
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("cc", ["gcc", "clang"])
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_runner_source_compiles_under_the_strict_flags(cc, dtype, tmp_path):
    if shutil.which(cc) is None:
        pytest.fail(f"{cc} is not installed")
    _, source, parts = generate_runner(dtype)
    for i, text in enumerate((source, *parts)):
        unit = tmp_path / f"runner{i}.c"
        unit.write_text(text)
        done = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
                               "-fsyntax-only", str(unit)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_a_saved_runner_trainer_loads_on_the_runner_and_resumes_bit_for_bit(tmp_path):
    X, Y = zoo_data("cross_entropy")
    a = dlc.compile(zoo_net(), mode="train", backend="runner", flags=("-O2",),
                    optimizer=dlc.Momentum(lr=0.05))
    a.fit(X, Y, epochs=1, batch_size=8, seed=2, progress=False)
    dlc.save(a, tmp_path / "runner.dlc")
    b = dlc.load(tmp_path / "runner.dlc")
    assert b.backend.name == "runner"
    for trainer in (a, b):
        trainer.fit(X, Y, epochs=1, batch_size=8, progress=False)
    np.testing.assert_array_equal(a.state, b.state)
