"""Bias/variance diagnosis: compare training and dev error with a baseline.

avoidable bias = train error - baseline error (e.g. human-level error)
variance       = dev error - train error
A gap above ``tolerance`` (default two percentage points) is "high".
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

from .checks import check_fraction

VERDICTS = ("high_bias", "high_variance", "high_bias_and_variance", "ok")

BIAS_REMEDIES = ("train a bigger network (more units or layers)",
                 "train longer or with a better optimizer (Adam, a tuned learning rate)")
VARIANCE_REMEDIES = ("get more training data (or augment it)",
                     "regularize: L2 weight decay, dropout, data augmentation",
                     "stop early on the dev metric")


@dataclass(frozen=True)
class Diagnosis:
    verdict: str
    train_error: float
    dev_error: float
    baseline_error: float
    avoidable_bias: float
    variance: float
    remedies: tuple

    def __str__(self) -> str:
        lines = [f"train error {self.train_error:.2%}, dev error {self.dev_error:.2%}, "
                 f"baseline {self.baseline_error:.2%}",
                 f"avoidable bias {self.avoidable_bias:+.2%}, variance {self.variance:+.2%}"
                 f" -> {self.verdict}"]
        lines += [f"  - {remedy}" for remedy in self.remedies]
        return "\n".join(lines)


def diagnose(train_error, dev_error=None, baseline_error: float = 0.0, *,
             tolerance: float = 0.02, epoch: int = None, verbose: bool = True) -> Diagnosis:
    """Diagnose from error rates (fractions in [0, 1]), or from a fit history.

    ``diagnose(0.01, 0.11)`` gives ``"high_variance"``.  ``diagnose(history)`` reads
    the errors of the last epoch (or of ``epoch``) from the history's logs: the
    training error from "train_accuracy" (added by ``dlc.callbacks.TrainMetrics``) or
    "accuracy", the dev error from "dev_accuracy".  Prints the result unless
    ``verbose=False``.
    """
    if dev_error is None:
        train_error, dev_error = errors_from_history(train_error, epoch)
    elif epoch is not None:
        raise TypeError("epoch= only applies when diagnosing a history")
    train_error = _fraction(train_error, "train_error")
    dev_error = _fraction(dev_error, "dev_error")
    baseline_error = _fraction(baseline_error, "baseline_error")
    tolerance = check_fraction(tolerance, "tolerance")
    bias, variance = train_error - baseline_error, dev_error - train_error
    high_bias, high_variance = bias > tolerance, variance > tolerance
    verdict = {(True, True): "high_bias_and_variance", (True, False): "high_bias",
               (False, True): "high_variance", (False, False): "ok"}[high_bias, high_variance]
    remedies = (BIAS_REMEDIES if high_bias else ()) + (VARIANCE_REMEDIES if high_variance else ())
    if verdict == "ok":
        remedies = ("nothing to fix: check the test error once, then ship",)
    result = Diagnosis(verdict, train_error, dev_error, baseline_error, bias, variance, remedies)
    if verbose:
        print(result)
    return result


def errors_from_history(history, epoch: int = None) -> tuple:
    """(train error, dev error) at ``epoch`` (default: the last one) of a fit history."""
    logs_list = getattr(history, "epochs", None)
    if logs_list is None:
        raise TypeError(f"diagnose takes (train_error, dev_error) or a fit history, "
                        f"got {type(history).__name__} alone")
    if not logs_list:
        raise ValueError("diagnose: the history has no epochs")
    if epoch is None:
        logs = logs_list[-1]
    else:
        matches = [logs for logs in logs_list if logs.get("epoch") == epoch]
        if not matches:
            raise ValueError(f"diagnose: epoch {epoch} is not in the history "
                             f"(epochs {[logs.get('epoch') for logs in logs_list]})")
        logs = matches[-1]
    train_key = next((k for k in ("train_accuracy", "accuracy") if k in logs), None)
    if train_key is None or "dev_accuracy" not in logs:
        raise ValueError(f"diagnose needs training and dev accuracy in the history, found "
                         f"{sorted(logs)}; fit with dev=(X_dev, Y_dev) and "
                         f"callbacks=[dlc.callbacks.TrainMetrics(X_train, Y_train)]")
    return 1 - logs[train_key], 1 - logs["dev_accuracy"]


def _fraction(value, what: str) -> float:
    percent = isinstance(value, Real) and not isinstance(value, bool) and 1 < value <= 100
    note = f"errors are fractions: did you mean {value / 100:g}?" if percent else ""
    return check_fraction(value, what, note=note)
