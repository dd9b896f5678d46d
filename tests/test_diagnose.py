"""Bias/variance diagnosis on the textbook cases, from numbers and from a fit history."""
import pytest

import dlc
from dlc.diagnose import BIAS_REMEDIES, VARIANCE_REMEDIES


@pytest.mark.parametrize("train, dev, verdict", [
    (0.01, 0.11, "high_variance"),
    (0.15, 0.16, "high_bias"),
    (0.15, 0.30, "high_bias_and_variance"),
    (0.005, 0.01, "ok"),
])
def test_textbook_cases(train, dev, verdict, capsys):
    result = dlc.diagnose(train, dev)
    assert result.verdict == verdict
    assert result.avoidable_bias == pytest.approx(train - 0.0, abs=1e-15)
    assert result.variance == pytest.approx(dev - train, abs=1e-15)
    printed = capsys.readouterr().out
    assert verdict in printed
    bias_advice = BIAS_REMEDIES[0] in printed
    variance_advice = VARIANCE_REMEDIES[1] in printed
    assert bias_advice == ("bias" in verdict)
    assert variance_advice == ("variance" in verdict)


def test_baseline_turns_bias_into_unavoidable_error():
    """15% train error is fine when even humans make 14%."""
    result = dlc.diagnose(0.15, 0.16, baseline_error=0.14, verbose=False)
    assert result.verdict == "ok"
    assert result.avoidable_bias == pytest.approx(0.01)
    assert dlc.diagnose(0.15, 0.30, baseline_error=0.14, verbose=False).verdict == "high_variance"


def test_tolerance_is_the_threshold():
    assert dlc.diagnose(0.01, 0.04, verbose=False).verdict == "high_variance"
    assert dlc.diagnose(0.01, 0.04, tolerance=0.05, verbose=False).verdict == "ok"


class History:
    def __init__(self, epochs):
        self.epochs = epochs


def test_from_a_history_reads_the_chosen_epoch():
    history = History([{"epoch": 1, "train_accuracy": 0.80, "dev_accuracy": 0.79},
                       {"epoch": 2, "train_accuracy": 0.99, "dev_accuracy": 0.89}])
    last = dlc.diagnose(history, verbose=False)
    assert last.verdict == "high_variance"
    assert last.train_error == pytest.approx(0.01) and last.dev_error == pytest.approx(0.11)
    first = dlc.diagnose(history, epoch=1, verbose=False)
    assert first.verdict == "high_bias" and first.train_error == pytest.approx(0.20)


def test_history_without_accuracies_gets_a_clear_error():
    with pytest.raises(ValueError, match="dev=.*TrainMetrics"):
        dlc.diagnose(History([{"epoch": 1, "loss": 0.3}]))
    with pytest.raises(ValueError, match="epoch 5 is not in the history"):
        dlc.diagnose(History([{"epoch": 1, "accuracy": 0.9, "dev_accuracy": 0.9}]), epoch=5)


@pytest.mark.parametrize("args, error, message", [
    ((11, 0.2), ValueError, "did you mean 0.11"),
    ((0.1, -0.1), ValueError, r"dev_error must be in \[0, 1\]"),
    ((0.1, "0.2"), TypeError, r"dev_error must be a real number, got .0.2. \(str\)"),
    ((0.1,), TypeError, "history"),
])
def test_bad_arguments(args, error, message):
    with pytest.raises(error, match=message):
        dlc.diagnose(*args)
