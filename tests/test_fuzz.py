"""Differential fuzzing of every path against the NumPy interpreter, on random models,
inputs, training configurations and export settings (tests/strategies.py).

Properties: the compiled library equals the interpreter, at any thread count bit for
bit; every inference pass preserves the interpreter's outputs; the export equals the
library; a training run in C equals the reference trainer epoch by epoch, whatever
its thread count, bit for bit, and resumes from a checkpoint bit for bit; save/load
round-trips a model bit for bit; generated models and a training run are clean under
AddressSanitizer and UBSan, and exported C under valgrind.

Builds cost about a second each, so the compiling properties take a small share of the
profile's examples (strategies.examples); the interpreter-only ones take many.  The
ci profile (tests/conftest.py) is derandomized; --hypothesis-profile=long runs 50 times
as many fresh examples.  Uses only the public API, dlc.passes and dlc.interpreter.
"""
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, seed, settings, strategies as st

import dlc
from dlc import interpreter
from dlc.passes import INFERENCE_PIPELINE
from dlc.train import reference_trainer
from strategies import (batches, build_model, config_model, examples, export_settings,
                        layer_stacks, models, train_options, training_configs)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Between programs that sum in other orders (vector lanes, folded batch norm): the
# dtype's rounding, grown by depth and width, relative to the largest output.
RTOL = {np.float32: 2e-4, np.float64: 1e-10}
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2"]
TRAIN_FLAGS = ("-O0",)          # the fastest build: the property compares, not times
# Five steps of float32 training agree to its precision; RMSProp and Adam divide small
# gradients by their own size, which carries rounding into a step (test_train_c_vs_reference).
TRAIN_RTOL = {np.float32: 1e-3, np.float64: 1e-9}


def interpret(graph, X):
    (y,), _ = interpreter.run(graph, {next(iter(graph.inputs)): X})
    return y


def assert_close(actual, expected, dtype, what):
    """Equal to the dtype's rounding, relative to the largest value of ``expected``."""
    dtype = np.dtype(dtype).type
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    diff = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    assert diff <= RTOL[dtype] * scale, (f"{what}: max abs difference {diff:.3g} > "
                                         f"{RTOL[dtype]:g} x {scale:.3g}")


def same_bits(a, b) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ---------------------------------------------------------------- inference

@settings(max_examples=examples(0.1))
@given(net=models(), data=st.data())
def test_library_equals_interpreter_at_any_thread_count(net, data):
    X = data.draw(batches(net.n_inputs, net.dtype))
    lib = dlc.compile(net)
    got = lib.predict(X)
    assert_close(got, dlc.reference(net).predict(X), net.dtype, "library vs interpreter")
    for threads in (2, 3):
        lib.threads = threads
        assert same_bits(lib.predict(X), got), f"{threads} threads changed the bits"


def prefixes(passes):
    return [passes[:i + 1] for i in range(len(passes))]


@settings(max_examples=examples(0.6))
@given(net=models(), data=st.data())
def test_every_pass_preserves_the_interpreters_outputs(net, data):
    """Each pass on its own and each prefix of the pipeline, run by the interpreter."""
    X = data.draw(batches(net.n_inputs, net.dtype, max_rows=200))
    graph = dlc.reference(net).graph
    expected = interpret(graph, X)
    for p in INFERENCE_PIPELINE:
        assert_close(interpret(p(graph), X), expected, net.dtype, p.__name__)
    for passes in prefixes(INFERENCE_PIPELINE):
        optimized = graph
        for p in passes:
            optimized = p(optimized)
        names = " -> ".join(p.__name__ for p in passes)
        assert_close(interpret(optimized, X), expected, net.dtype, names)


# ---------------------------------------------------------------- export

def predict_with_driver(exported, X, directory: Path, flags, cc="gcc", wrapper=()):
    """The export driver's three predictions (internal workspace, own workspace of exactly
    the stated size, row by row); the driver's stderr."""
    binary = directory / "driver"
    command = [cc, *flags, f"-I{exported.source.parent}", str(HERE / "c" / "export_driver.c"),
               str(exported.source), "-o", str(binary), "-lm"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr, f"{' '.join(command)}\n{done.stderr}"
    (directory / "x.bin").write_bytes(np.ascontiguousarray(X).tobytes())
    args = [*wrapper, str(binary), str(directory / "x.bin"), str(directory / "y.bin"),
            str(len(X)), *([str(exported.weights)] if exported.weights else [])]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stderr}"
    y = np.fromfile(directory / "y.bin", X.dtype)
    return y.reshape(3, len(X), exported.n_outputs), done.stderr


@settings(max_examples=examples(0.04))
@given(net=models(max_width=160, max_depth=5), options=export_settings(), data=st.data())
def test_export_equals_the_library(net, options, data):
    X = data.draw(batches(net.n_inputs, net.dtype, max_rows=300))
    library = dlc.compile(net).predict(X)
    with tempfile.TemporaryDirectory() as tmp:
        exported = dlc.export_c(net, Path(tmp) / "out", name="model", **options)
        (internal, own, row_by_row), _ = predict_with_driver(exported, X, Path(tmp), STRICT)
    assert same_bits(internal, own)
    assert_close(internal, library, net.dtype, "export vs library")
    assert_close(row_by_row, library, net.dtype, "export row by row vs library")


# ---------------------------------------------------------------- training

def fit_epoch(trainer, config):
    X, Y = config["data"]
    return trainer.fit(X, Y, epochs=1, batch_size=config["batch_size"], seed=config["seed"],
                       progress=False)["loss"][0]


def assert_states_close(c, ref, dtype, what):
    c_state, ref_state = c.state_dict(), ref.state_dict()
    assert c_state["step"] == ref_state["step"]
    for part in ("params", "optimizer"):
        for name, expected in ref_state[part].items():
            got = c_state[part][name]
            scale = max(1.0, float(np.max(np.abs(expected))))
            diff = float(np.max(np.abs(got - expected)))
            assert diff <= TRAIN_RTOL[np.dtype(dtype).type] * scale, (
                f"{what}, {part} {name}: max abs difference {diff:.3g} (scale {scale:.3g})")


def assert_same_state(a, b, what):
    sa, sb = a.state_dict(), b.state_dict()
    assert (sa["step"], sa["epoch"]) == (sb["step"], sb["epoch"]), what
    for part in ("params", "optimizer"):
        for name in sa[part]:
            assert same_bits(sa[part][name], sb[part][name]), f"{what}: {part} {name}"


@settings(max_examples=examples(0.12))
@given(config=training_configs())
def test_c_training_equals_the_reference_epoch_by_epoch(config):
    """Each epoch's state (weights, optimizer moments, running statistics) and loss in C
    equal the reference's; another thread count gives the same bits; a checkpoint taken
    mid-training resumes bit for bit."""
    options = train_options(config)
    c = dlc.compile(config_model(config), mode="train", flags=TRAIN_FLAGS, **options)
    ref = reference_trainer(config_model(config), **options)
    other = dlc.compile(config_model(config), mode="train", flags=TRAIN_FLAGS,
                        threads=config["threads"], **options)
    for epoch in range(config["epochs"]):
        c_loss, ref_loss = fit_epoch(c, config), fit_epoch(ref, config)
        assert_states_close(c, ref, config["dtype"], f"epoch {epoch}")
        assert abs(c_loss - ref_loss) <= TRAIN_RTOL[np.dtype(config["dtype"]).type] * max(
            1.0, abs(ref_loss)), f"epoch {epoch}: loss {c_loss} vs {ref_loss}"
        fit_epoch(other, config)
        assert_same_state(c, other, f"{config['threads']} threads, epoch {epoch}")
    with tempfile.TemporaryDirectory() as tmp:
        dlc.save(c, Path(tmp) / "trainer.dlc")
        resumed = dlc.load(Path(tmp) / "trainer.dlc", flags=TRAIN_FLAGS)
    assert_same_state(resumed, c, "loaded trainer")
    fit_epoch(resumed, config), fit_epoch(c, config)
    assert_same_state(resumed, c, "trainer resumed from its checkpoint")


# ---------------------------------------------------------------- save/load

@settings(max_examples=examples(0.5))
@given(net=models(), data=st.data())
def test_save_load_round_trips_a_model_bit_for_bit(net, data):
    X = data.draw(batches(net.n_inputs, net.dtype, max_rows=50))
    with tempfile.TemporaryDirectory() as tmp:
        dlc.save(net, Path(tmp) / "model.dlc")
        loaded = dlc.load(Path(tmp) / "model.dlc")
    assert loaded.dtype == net.dtype and sorted(loaded.params) == sorted(net.params)
    for name, value in net.params.items():
        assert same_bits(loaded.params[name], value), name
    assert dlc.reference(loaded).graph.__str__() == dlc.reference(net).graph.__str__()
    assert same_bits(dlc.reference(loaded).predict(X), dlc.reference(net).predict(X))


# ---------------------------------------------------------------- sanitizers, valgrind

def drawn(strategy, n: int, at: int) -> list:
    """``n`` examples of ``strategy``, the same on every run (the seed ``at``)."""
    found = []

    @seed(at)
    @settings(max_examples=n, database=None, derandomize=False)
    @given(strategy)
    def collect(example):
        found.append(example)

    collect()
    return found[:n]


SANITIZE = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all"]
UNDER_SANITIZERS = """
import os, pickle, sys
os.environ.pop("LD_PRELOAD")        # the compiler is not to run under the sanitizers
sys.path.insert(0, sys.argv[3])
import numpy as np, dlc
from strategies import build_model, config_model, train_options
job = pickle.loads(open(sys.argv[1], "rb").read())
out = {}
for i, (stack, dtype, seed, X) in enumerate(job["models"]):
    out[f"model{i}"] = dlc.compile(build_model(*stack, dtype, seed), flags=job["flags"]).predict(X)
for i, config in enumerate(job["configs"]):
    trainer = dlc.compile(config_model(config), mode="train", flags=job["flags"],
                          threads=config["threads"], **train_options(config))
    X, Y = config["data"]
    trainer.fit(X, Y, epochs=config["epochs"], batch_size=config["batch_size"],
                seed=config["seed"], progress=False)
    out[f"trainer{i}"] = trainer.state_dict()
open(sys.argv[2], "wb").write(pickle.dumps(out))
"""


def sanitizer_runtime() -> str:
    found = [subprocess.run(["gcc", f"-print-file-name=lib{name}.so"], capture_output=True,
                            text=True).stdout.strip() for name in ("asan", "ubsan")]
    return ":".join(found)


def test_generated_models_and_training_are_clean_under_sanitizers(tmp_path):
    """Two drawn models and a training run, built with -fsanitize=address,undefined
    and run in a Python with the sanitizers' runtime preloaded: no report, and the
    interpreter's results."""
    stacks = drawn(st.tuples(layer_stacks(max_width=70, max_depth=4),
                             st.sampled_from(["float32", "float64"]),
                             st.integers(0, 1 << 30)), 2, at=17)
    rng = np.random.default_rng(0)
    jobs = [(stack, dtype, s, rng.normal(size=(int(rng.integers(1, 40)), stack[0])).astype(dtype))
            for stack, dtype, s in stacks]
    configs = drawn(training_configs(max_width=24, max_depth=3, max_rows=30), 1, at=18)
    (tmp_path / "job.pkl").write_bytes(pickle.dumps(
        {"models": jobs, "configs": configs, "flags": SANITIZE}))
    env = dict(os.environ, LD_PRELOAD=sanitizer_runtime(), ASAN_OPTIONS="detect_leaks=0",
               UBSAN_OPTIONS="print_stacktrace=1", DLC_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", UNDER_SANITIZERS, str(tmp_path / "job.pkl"),
                           str(tmp_path / "out.pkl"), str(HERE)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "runtime error" not in done.stderr and "AddressSanitizer" not in done.stderr
    out = pickle.loads((tmp_path / "out.pkl").read_bytes())
    for i, (stack, dtype, s, X) in enumerate(jobs):
        net = build_model(*stack, dtype, s)
        assert_close(out[f"model{i}"], dlc.reference(net).predict(X), dtype, f"model {i}")
    for i, config in enumerate(configs):
        ref = reference_trainer(config_model(config), **train_options(config))
        X, Y = config["data"]
        ref.fit(X, Y, epochs=config["epochs"], batch_size=config["batch_size"],
                seed=config["seed"], progress=False)
        expected = ref.state_dict()
        for name, value in expected["params"].items():
            scale = max(1.0, float(np.max(np.abs(value))))
            diff = float(np.max(np.abs(out[f"trainer{i}"]["params"][name] - value)))
            assert diff <= TRAIN_RTOL[np.dtype(config["dtype"]).type] * scale, (i, name, diff)


def test_exported_generated_models_are_clean_under_valgrind(tmp_path):
    """valgrind comes from the system packages (.ci/run installs it)."""
    drawn_models = drawn(st.tuples(models(max_width=48, max_depth=3), export_settings()), 2, at=19)
    for i, (net, options) in enumerate(drawn_models):
        directory = tmp_path / f"m{i}"
        directory.mkdir()
        exported = dlc.export_c(net, directory / "out", name="model", **options)
        X = np.random.default_rng(i).normal(size=(13, net.n_inputs)).astype(net.dtype)
        (internal, own, row_by_row), report = predict_with_driver(
            exported, X, directory, STRICT[:-1] + ["-O1", "-g", "-gdwarf-4"],
            wrapper=["valgrind", "--error-exitcode=99", "--leak-check=full",
                     "--errors-for-leak-kinds=definite"])
        assert "ERROR SUMMARY: 0 errors" in report, report
        expected = dlc.reference(net).predict(X)
        for got in (internal, own, row_by_row):
            assert_close(got, expected, net.dtype, f"model {i} under valgrind")
