"""From PyTorch to a C program: train in PyTorch, export ONNX, import into dlc, export C.

    pip install '.[demo,onnx]' torch onnxscript && python examples/from_pytorch.py [--out out/]

On scikit-learn's bundled 8x8 digits: a residual PyTorch MLP whose first module is the
input normalisation (x - mean) / std, with a block h + Dropout(LeakyReLU(Linear(h)))
(a DAG: h feeds two nodes, an Add joins them), is trained for a few epochs, exported with
``torch.onnx.export`` (the TorchScript exporter, or ``--dynamo``), imported with
``dlc.from_onnx`` (the normalisation becomes a dlc Normalize), compiled and checked
against onnxruntime, exported as plain C, built into examples/embed_c's program and
run on the test set; its probabilities equal onnxruntime's.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

import dlc

EMBED_C = Path(__file__).resolve().parent / "embed_c"


def load_digits(seed: int):
    from sklearn.datasets import load_digits as bundled
    X, y = bundled(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(X))
    X, y = X[order].astype(np.float32), y[order]
    n_train = int(0.8 * len(X))
    return (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:])


def torch_mlp(X_train, seed: int):
    import torch

    class Standardize(torch.nn.Module):
        def __init__(self, mean, std):
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean))
            self.register_buffer("std", torch.tensor(std))

        def forward(self, x):
            return (x - self.mean) / self.std

    class Residual(torch.nn.Module):
        """h + block(h): the residual connection."""
        def __init__(self, block):
            super().__init__()
            self.block = block

        def forward(self, h):
            return h + self.block(h)

    torch.manual_seed(seed)
    return torch.nn.Sequential(
        Standardize(X_train.mean(axis=0), X_train.std(axis=0) + 1e-3),
        torch.nn.Linear(64, 64), torch.nn.BatchNorm1d(64), torch.nn.ReLU(),
        Residual(torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.LeakyReLU(0.1),
                                     torch.nn.Dropout(0.2))),
        torch.nn.Linear(64, 10), torch.nn.Softmax(dim=1))


def train_torch(net, X, y, epochs: int, seed: int):
    import torch
    X, y = torch.tensor(X), torch.tensor(y)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    batches = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))
    net.train()
    for _ in range(epochs):
        for rows in batches.split(64):
            optimizer.zero_grad()
            loss = torch.nn.functional.nll_loss(torch.log(net(X[rows]) + 1e-9), y[rows])
            loss.backward()
            optimizer.step()
    return net.eval()


def export_onnx(net, path: Path, dynamo: bool) -> Path:
    import torch
    example = torch.zeros(2, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(net, (example,), str(path), dynamo=True, input_names=["x"],
                              dynamic_shapes=({0: torch.export.Dim("batch")},))
        else:
            torch.onnx.export(net, (example,), str(path), dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "batch"}})
    return path


def onnxruntime_predict(path: Path, X) -> np.ndarray:
    import onnxruntime
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": X})[0]


def run_c_program(net, X, out_dir: Path) -> np.ndarray:
    """Export ``net``, build examples/embed_c against it, run it on ``X``: the printed
    probabilities, one row per example."""
    model_dir, build_dir = out_dir / "from_pytorch_c", out_dir / "from_pytorch_c" / "build"
    dlc.export_c(net, model_dir, name="digits")
    (build_dir / "predict").unlink(missing_ok=True)
    subprocess.run(["make", "--no-print-directory", "-s", "-C", str(EMBED_C),
                    f"MODEL_DIR={model_dir.resolve()}", f"BUILD_DIR={build_dir.resolve()}"],
                   check=True)
    rows = model_dir / "test_rows.txt"
    np.savetxt(rows, X, fmt="%.9g")
    done = subprocess.run([str(build_dir / "predict"), str(rows)], check=True,
                          capture_output=True, text=True)
    return np.loadtxt(done.stdout.splitlines(), ndmin=2)[:, 1:]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="out", help="directory for the ONNX file and the "
                        "C export (default: out/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dynamo", action="store_true",
                        help="export with torch.onnx.export(dynamo=True)")
    args = parser.parse_args(argv)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if shutil.which(os.environ.get("CC", "cc")) is None or shutil.which("make") is None:
        sys.exit("this demo needs a C compiler (cc or $CC) and make on the PATH")

    (X_train, y_train), (X_test, y_test) = load_digits(args.seed)
    torch_net = train_torch(torch_mlp(X_train, args.seed), X_train, y_train, args.epochs,
                            args.seed)
    path = export_onnx(torch_net, out_dir / "digits.onnx", args.dynamo)
    print(f"PyTorch MLP trained {args.epochs} epochs, exported to {path} "
          f"({'dynamo' if args.dynamo else 'TorchScript'} exporter)")

    net = dlc.from_onnx(path)
    print(f"imported: {net}")
    expected = onnxruntime_predict(path, X_test)
    compiled = dlc.compile(net).predict(X_test)
    print(f"dlc's compiled library vs onnxruntime on {len(X_test)} test images: "
          f"max difference {np.abs(compiled - expected).max():.1e}")

    c_probs = run_c_program(net, X_test, out_dir)
    accuracy = float(np.mean(c_probs.argmax(axis=1) == y_test))
    print(f"C program {EMBED_C.name}/predict: max difference from onnxruntime "
          f"{np.abs(c_probs - expected).max():.1e}; test accuracy {accuracy:.2%}")
    return {"net": net, "onnx_probs": expected, "compiled_probs": compiled,
            "c_probs": c_probs, "test_set": (X_test, y_test), "accuracy": accuracy}


if __name__ == "__main__":
    main()
