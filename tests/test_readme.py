"""Every Python snippet of the README runs as written.

The snippets run in order in one namespace, in a scratch directory, after a prelude
that supplies the data they name (digits, split 60/20/20, its normalisation statistics,
and a PyTorch network for the ONNX snippet).  The model the training snippet leaves
behind is checked against the reference, so a snippet that runs but trains badly fails.
"""
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import dlc
from helpers import assert_matches

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def prelude() -> dict:
    X, Y = load_digits(return_X_y=True)
    (X_train, Y_train), (X_dev, Y_dev), _ = dlc.data.split(X, Y, seed=0, stratify=True)
    torch.manual_seed(0)
    torch_net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                    torch.nn.Linear(32, 10), torch.nn.Softmax(dim=1))
    return dict(X=X, Y=Y, X_train=X_train, Y_train=Y_train, X_dev=X_dev, Y_dev=Y_dev,
                mu=X_train.mean(axis=0), var=X_train.var(axis=0), torch_net=torch_net)


def test_readme_has_python_snippets():
    assert len(python_blocks(README.read_text())) >= 4


def test_readme_snippets_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # snippets write model/, out/ and run.dlc
    namespace = prelude()
    X_dev, Y_dev = namespace["X_dev"], namespace["Y_dev"]
    trained = None
    for i, block in enumerate(python_blocks(README.read_text())):
        try:
            exec(compile(block, f"README.md python block {i}", "exec"), namespace)
        except Exception as exc:         # name the snippet that failed
            pytest.fail(f"README python block {i} failed: {type(exc).__name__}: {exc}\n{block}")
        if trained is None and "trainer.fit(X_train" in block:
            trained = namespace["net"]
    assert trained is not None, "the README lost its training snippet"
    net = trained
    probs = dlc.compile(net).predict(X_dev)
    assert_matches(probs, dlc.reference(net).predict(X_dev), np.float32)
    assert np.mean(probs.argmax(axis=1) == Y_dev) >= 0.9
