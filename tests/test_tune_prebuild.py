"""dlc.tune.prebuild and ``dlc prebuild``: the runner built once into an empty cache, after
which neither a second prebuild nor a runner trainer runs the compiler; and the search's
data, shipped to a process pool's workers as a file read once per worker, pickles as its
path and reads back equal."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import dlc
import dlc.build
from dlc import tune
from dlc.tune.trial import SharedData


def test_prebuild_builds_the_runner_once_and_trainers_build_nothing(monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    monkeypatch.setenv("DLC_CACHE_DIR", str(cache))
    monkeypatch.setattr(dlc.build, "_loaded", {})
    compiles = []
    real_compiler = dlc.build.run_compiler
    monkeypatch.setattr(dlc.build, "run_compiler",
                        lambda command: compiles.append(command) or real_compiler(command))
    seconds = tune.prebuild("float32")
    assert list(seconds) == ["f32"] and seconds["f32"] > 0
    links = [c for c in compiles if "-shared" in c]
    assert len(links) == 1 and len(compiles) > 2          # several units, one module

    def no_compiler(command):
        raise AssertionError(f"the C compiler ran: {command}")
    monkeypatch.setattr(dlc.build, "run_compiler", no_compiler)
    monkeypatch.setattr(dlc.build, "_loaded", {})       # as a new process: from the cache
    tune.prebuild("float32")
    net = dlc.Sequential([dlc.Input(4), dlc.Dense(5), dlc.ReLU(), dlc.Dense(3), dlc.Softmax()],
                         dtype="float32", seed=1)
    trainer = dlc.compile(net, mode="train", backend="runner")
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    trainer.fit(X, Y, epochs=2, batch_size=8, dev=(X, Y), progress=False)
    assert np.isfinite(trainer.evaluate(X, Y)["loss"])

    env = dict(os.environ, DLC_CACHE_DIR=str(cache))
    done = subprocess.run([sys.executable, "-m", "dlc", "prebuild", "--dtype", "float32"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "already in the cache" in done.stdout and "f32" in done.stdout


def test_prebuild_names_a_bad_dtype():
    with pytest.raises(TypeError, match="float32"):
        tune.prebuild("int8")
    with pytest.raises(ValueError, match="flag preset"):
        tune.prebuild("float32", flags="fastest")


def test_shared_data_pickles_as_its_path_and_reads_back_equal(tmp_path):
    rng = np.random.default_rng(2)
    data = (rng.normal(size=(500, 30)).astype(np.float32), rng.integers(0, 3, 500),
            rng.normal(size=(50, 30)), rng.integers(0, 3, 50))
    shared = SharedData(data, str(tmp_path))
    sent = pickle.dumps(shared)
    assert len(sent) < 1000 < data[0].nbytes
    for got, expected in zip(pickle.loads(sent).arrays(), data):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
