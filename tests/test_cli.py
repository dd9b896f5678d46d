"""The dlc command line, driven through subprocess as a user would, against the Python API."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.inspect import inspect as inspect_model
from dlc.train import reference_trainer

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["inspect", "export", "compile", "predict", "bench", "demo", "cache", "cache info",
            "cache clear", "cache prune", "from-onnx", "to-onnx"]


def run(*args, cache=None, check=True):
    """``python -m dlc ARGS`` with this checkout's dlc; the session's cache unless given."""
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if cache is not None:
        env["DLC_CACHE_DIR"] = str(cache)
    done = subprocess.run([sys.executable, "-m", "dlc", *map(str, args)], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def small_net(dtype="float32"):
    net = dlc.Sequential([dlc.Input(4), dlc.Dense(8), dlc.BatchNorm(), dlc.ReLU(),
                          dlc.Dense(3), dlc.Softmax()], dtype=dtype, seed=1)
    rng = np.random.default_rng(2)
    net.set_params({"batchnorm1.running_mean": rng.normal(size=8),
                    "batchnorm1.running_var": rng.uniform(0.5, 2, 8)})
    return net


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "model.dlc"
    dlc.save(small_net(), path)
    return path


@pytest.fixture(scope="module")
def rows():
    return np.random.default_rng(0).normal(size=(7, 4))


def test_version():
    assert run("--version").stdout.strip() == f"dlc, version {dlc.__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_examples(command):
    out = run(*command.split(), "--help").stdout
    assert out.startswith(f"Usage: dlc {command}") and "Examples:" in out


def test_console_script_entry_point():
    tomllib = pytest.importorskip("tomllib")       # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["dlc"] == "dlc.cli:main"
    assert any(dep.startswith("click") for dep in project["dependencies"])


def test_inspect_prints_the_ir_and_the_sizes(model):
    out = run("inspect", model).stdout
    report = inspect_model(dlc.load(model), code_size=True)
    assert f"# before\n{report.before}\n# after\n{report.after}\n" in out
    for line in report.summary_lines():
        assert line in out
    assert all(layer.name in out for layer in dlc.load(model).layers)


@pytest.mark.parametrize("target", ["cortex-m4", "generic"])
def test_inspect_target_prints_the_measured_footprint(model, target):
    out = run("inspect", "--no-ir", "--no-code-size", model, "--target", target).stdout
    footprint = inspect_model(dlc.load(model), target=target).footprint
    assert f"{target}: flash bytes: {footprint.flash} (" in out
    assert f"{target}: RAM bytes: {footprint.ram} (" in out
    assert f"{target}: stack bytes: {footprint.stack}" in out
    for line in footprint.summary_lines():
        assert f"{target}: {line}" in out


def test_inspect_unknown_target_is_a_usage_error(model):
    done = run("inspect", model, "--target", "avr", check=False)
    assert done.returncode == 2 and "--target" in done.stderr and "'avr'" in done.stderr


def test_inspect_reads_a_trainer_checkpoint(tmp_path):
    trainer = reference_trainer(small_net(), loss="cross_entropy")     # no C build needed
    path = tmp_path / "trainer.dlc"
    dlc.save(trainer, path)
    out = run("inspect", "--no-ir", "--no-code-size", path).stdout
    assert "# before" not in out and "parameter bytes" in out


def test_export_writes_what_export_c_writes(model, tmp_path):
    run("export", model, "-o", tmp_path / "cli", "--name", "iris", "--weights", "file")
    dlc.export_c(dlc.load(model), tmp_path / "api", name="iris", weights="file")
    for name in ("iris.h", "iris.c", "iris.weights"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "api" / name).read_bytes()


def test_export_for_a_target_writes_what_export_c_writes(model, tmp_path):
    out = run("export", model, "-o", tmp_path / "cli", "--name", "iris",
              "--target", "cortex-m4").stdout
    exported = dlc.export_c(dlc.load(model), tmp_path / "api", name="iris", target="cortex-m4")
    header = (tmp_path / "cli" / "iris.h").read_text()
    assert header == exported.header.read_text().replace(str(tmp_path / "api"),
                                                         str(tmp_path / "cli"))
    assert (tmp_path / "cli" / "iris.c").read_text() == exported.source.read_text()
    assert f"#define IRIS_STACK_BYTES {exported.footprint.stack}\n" in header
    assert f"cortex-m4: stack bytes: {exported.footprint.stack}" in out


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_predict_equals_the_compiled_model(model, rows, tmp_path, suffix):
    path = tmp_path / f"rows{suffix}"
    if suffix == ".npy":
        np.save(path, rows)
    else:
        np.savetxt(path, rows, delimiter=",", header="a,b,c,d", comments="")
        rows = np.loadtxt(path, delimiter=",", skiprows=1)
    expected = dlc.compile(dlc.load(model)).predict(rows)
    printed = np.loadtxt(run("predict", model, path).stdout.splitlines(), delimiter=",")
    np.testing.assert_array_equal(printed.astype(np.float32), expected)   # %.9g round-trips
    classes = run("predict", model, path, "--classes").stdout.split()
    np.testing.assert_array_equal(np.array(classes, int), expected.argmax(axis=1))
    run("predict", model, path, "-o", tmp_path / "out.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


def test_bench_reports_each_batch_size(model):
    done = run("bench", model, "--batch", "1,16", "--repeat", "3")
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["batch", "latency", "samples/s"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "16"]
    assert done.stderr == ""        # no progress bar when stderr is not a terminal


def test_compile_then_cache_info_and_clear(model, tmp_path):
    cache = tmp_path / "cache"
    assert "built" in run("compile", model, cache=cache).stdout
    assert "already in the cache" in run("compile", model, cache=cache).stdout
    info = run("cache", "info", cache=cache).stdout
    assert f"cache directory: {cache}" in info
    modules = int(info.split("compiled modules: ")[1].split()[0])
    assert modules == 2             # the model's library and the fast-call module
    (cache / "notes.txt").write_text("not dlc's")
    cleared = run("cache", "clear", cache=cache).stdout
    assert cleared.startswith("removed ")
    assert sorted(p.name for p in cache.iterdir()) == ["notes.txt"]
    assert "compiled modules: 0 (0 bytes)" in run("cache", "info", cache=cache).stdout


@pytest.mark.parametrize("args, code, message", [
    (["inspect", "missing.dlc"], 2, "does not exist"),
    (["inspect", "MODEL", "--bogus"], 2, "No such option"),
    (["nonsense"], 2, "No such command"),
    (["predict", "MODEL", "ROWS", "--threads", "0"], 2, "--threads"),
    (["bench", "MODEL", "--batch", "1,x"], 2, "--batch"),
    (["export", "MODEL", "-o", "out", "--name", "int"], 2, "C keyword"),
    (["export", "MODEL", "-o", "out", "--target", "z80"], 2,
     "unknown export target 'z80'; known targets: host, generic, cortex-m0"),
    (["inspect", "ROWS"], 1, "is not a dlc checkpoint"),
    (["predict", "MODEL", "WIDE"], 1, "has 5 features per row, the model expects 4"),
])
def test_errors_are_one_line_with_an_exit_code(model, tmp_path, args, code, message):
    np.save(tmp_path / "rows.npy", np.zeros((2, 4)))
    np.save(tmp_path / "wide.npy", np.zeros((2, 5)))
    names = {"MODEL": model, "ROWS": tmp_path / "rows.npy", "WIDE": tmp_path / "wide.npy"}
    done = run(*[names.get(a, a) for a in args], check=False)
    assert done.returncode == code, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    if code == 1:
        assert len(done.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback(model, tmp_path):
    np.save(tmp_path / "wide.npy", np.zeros((2, 5)))
    done = run("--debug", "predict", model, tmp_path / "wide.npy", check=False)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ValueError: X has 5 features" in done.stderr


def test_demo_runs_the_digits_example(tmp_path):
    done = run("demo", "--epochs", "2", "--out", tmp_path)
    assert "test accuracy:" in done.stdout and "the same classes as Python" in done.stdout
    assert (tmp_path / "digits_c" / "digits.c").is_file()


def test_to_onnx_then_from_onnx_round_trips_through_onnxruntime(model, rows, tmp_path):
    import onnxruntime
    onnx_file, back = tmp_path / "model.onnx", tmp_path / "back.dlc"
    assert "wrote" in run("to-onnx", model, "-o", onnx_file).stdout
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    net = dlc.load(model)
    X = rows.astype(np.float32)
    expected = dlc.reference(net).predict(X)
    (got,) = session.run(None, {session.get_inputs()[0].name: X})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert "3 outputs" in run("from-onnx", onnx_file, "-o", back).stdout
    np.testing.assert_allclose(dlc.reference(dlc.load(back)).predict(X), expected,
                               rtol=1e-5, atol=1e-6)


def test_from_onnx_of_an_unsupported_model_is_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    done = run("from-onnx", bad, "-o", tmp_path / "x.dlc", check=False)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("Error:")
