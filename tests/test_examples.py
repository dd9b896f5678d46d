"""The demos' claims as tests: digits >= 97% test accuracy and the exported C program
predicts exactly what Python predicts; breast cancer >= 95%."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.diagnose import VERDICTS
from helpers import assert_matches

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_demo(tmp_path, capsys):
    before = sorted(p.name for p in (EXAMPLES / "embed_c").iterdir())
    result = load_example("digits").main(["--out", str(tmp_path), "--no-progress"])
    printed = capsys.readouterr().out

    assert result["test_accuracy"] >= 0.97
    assert f"test accuracy: {result['test_accuracy']:.2%}" in printed
    assert result["diagnosis"].verdict in VERDICTS and result["diagnosis"].verdict in printed

    X_test, y_test = result["test_set"]
    reference = dlc.reference(result["net"]).predict(X_test)
    assert_matches(result["python_probs"], reference, np.float32, "compiled vs reference")
    np.testing.assert_array_equal(result["c_classes"], result["python_probs"].argmax(axis=1))
    assert_matches(result["c_probs"], result["python_probs"], np.float32, "C program vs Python")
    assert np.mean(result["c_classes"] == y_test) == pytest.approx(result["test_accuracy"])
    assert "the same classes as Python" in printed
    assert f"its accuracy {result['test_accuracy']:.2%}" in printed

    assert result["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["plot"].parent == tmp_path
    assert sorted(p.name for p in (EXAMPLES / "embed_c").iterdir()) == before  # built elsewhere
    history, best = result["history"], result["best_epoch"]
    dev_losses = history["dev_loss"]
    assert history["epoch"][int(np.argmin(dev_losses))] == best and "weights restored" in printed
    dev_now = result["trainer"].evaluate(*result["dev_set"])["loss"]
    assert dev_now == pytest.approx(min(dev_losses), rel=1e-12)


def test_breast_cancer_demo(capsys):
    result = load_example("breast_cancer").main(["--no-progress"])
    assert result["test_accuracy"] >= 0.95
    assert result["compiled_accuracy"] == pytest.approx(result["test_accuracy"])
    assert f"test accuracy: {result['test_accuracy']:.2%}" in capsys.readouterr().out


def test_from_pytorch_demo(tmp_path, capsys):
    """PyTorch -> ONNX -> dlc -> C program: the compiled library and the C program
    print onnxruntime's probabilities."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    result = load_example("from_pytorch").main(["--out", str(tmp_path), "--epochs", "3"])
    printed = capsys.readouterr().out
    assert_matches(result["compiled_probs"], result["onnx_probs"], np.float32, "compiled vs ORT")
    assert_matches(result["c_probs"], result["onnx_probs"], np.float32, "C program vs ORT")
    assert result["accuracy"] >= 0.9 and f"test accuracy {result['accuracy']:.2%}" in printed
    assert type(result["net"].layers[0]).__name__ == "Normalize"
    assert sum(type(layer).__name__ == "Add" for layer in result["net"].layers) == 1


def test_tune_digits_demo(tmp_path, capsys):
    """A quick search (3 trials, one per round, 2 epochs, threads); the best one's test
    accuracy is the reference interpreter's on its trained weights."""
    result = load_example("tune_digits").main(["--out", str(tmp_path), "--trials", "3",
                                               "--epochs", "2", "--executor", "threads",
                                               "--no-progress"])
    printed = capsys.readouterr().out
    search = result["result"]
    assert len(search.trials) == 3 and len(search.boxes) == 3
    assert f"best: trial {search.best.index}" in printed
    X_test, y_test = result["test_set"]
    reference = dlc.reference(result["trainer"].net).predict(X_test)
    assert_matches(result["trainer"].predict(X_test), reference, np.float32, "tuned vs reference")
    assert result["test_accuracy"] == pytest.approx(np.mean(reference.argmax(axis=1) == y_test))
    assert f"{result['test_accuracy']:.2%}" in printed
    assert result["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(result["table"].read_text().splitlines()) == 4


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "from_pytorch", "tune_digits"])
def test_examples_run_as_scripts(name):
    out = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--help"],
                         capture_output=True, text=True, check=True)
    assert "usage:" in out.stdout and "--seed" in out.stdout


@pytest.mark.parametrize("name, dtype", [("tiny_net", "float32"), ("Wide2", "float64")])
def test_embed_c_builds_any_exported_name(tmp_path, name, dtype):
    net = dlc.Sequential([dlc.Input(5), dlc.Dense(7), dlc.Tanh(), dlc.Dense(3), dlc.Softmax()],
                         dtype=dtype, seed=3)
    dlc.export_c(net, tmp_path / "model", name=name)
    subprocess.run(["make", "--no-print-directory", "-s", "-C", str(EXAMPLES / "embed_c"),
                    f"MODEL_DIR={tmp_path / 'model'}", f"NAME={name}",
                    f"BUILD_DIR={tmp_path / 'build'}"], check=True)
    X = np.random.default_rng(0).standard_normal((70, 5))
    rows = tmp_path / "rows.txt"
    np.savetxt(rows, X, fmt="%.17g")
    out = subprocess.run([str(tmp_path / "build" / "predict"), str(rows)], check=True,
                         capture_output=True, text=True).stdout
    table = np.loadtxt(out.splitlines(), ndmin=2)
    expected = dlc.reference(net).predict(X.astype(dtype))
    np.testing.assert_array_equal(table[:, 0], expected.argmax(axis=1))
    assert_matches(table[:, 1:], expected, np.dtype(dtype), f"embed_c {name}")
