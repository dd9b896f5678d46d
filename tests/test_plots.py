"""Learning curves: the plotted series are the history's numbers; the PNG is written;
matplotlib stays optional."""
import subprocess
import sys

import numpy as np
import pytest

import dlc
from dlc.plots import learning_curves

LOGS = [{"epoch": e, "loss": 1.0 / e, "lr": 1e-3, "train_loss": 0.9 / e,
         "train_accuracy": 1 - 0.3 / e, "dev_loss": 1.2 / e + 0.01 * e,
         "dev_accuracy": 1 - 0.35 / e} for e in range(1, 13)]


class History:
    epochs = LOGS


def test_curves_are_the_logged_costs_and_errors():
    epochs, panels = learning_curves(History())
    np.testing.assert_array_equal(epochs, np.arange(1, 13))
    np.testing.assert_allclose(panels["cost"]["dev cost"], [1.2 / e + 0.01 * e for e in epochs],
                               rtol=1e-15)
    np.testing.assert_allclose(panels["error"]["train error"], 0.3 / epochs, rtol=1e-12)
    np.testing.assert_allclose(panels["error"]["dev error"], 0.35 / epochs, rtol=1e-12)
    assert sorted(panels["cost"]) == ["dev cost", "train cost", "train cost (during the epoch)"]
    assert "train error (during the epoch)" not in panels["error"]   # not logged


def test_plot_history_writes_a_png(tmp_path):
    import matplotlib.image
    path = dlc.plot_history(History(), tmp_path / "curves" / "digits.png", title="t",
                            best_epoch=7)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (400, 1000)
    assert pixels[..., :3].std() > 0.05     # not a blank canvas


def test_empty_history_is_an_error(tmp_path):
    class Empty:
        epochs = []
    with pytest.raises(ValueError, match="no epochs"):
        dlc.plot_history(Empty(), tmp_path / "x.png")


def test_importing_dlc_does_not_import_matplotlib_or_sklearn():
    code = ("import sys, dlc; "
            "print(sorted(m for m in ('matplotlib', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
