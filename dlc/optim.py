"""Optimizers and learning-rate schedules.

An optimizer appends its update to the training graph: for each trainable
parameter it adds its state (velocities, squared averages) as non-trainable
parameters and emits update ops (``ewma``, ``sgd_step``, ...), so the C backend
and the reference run the same update.  A schedule maps (lr0, epoch) to the
learning rate of that epoch (epochs count from 0); the trainer evaluates it once
per epoch and feeds the result to the graph as the scalar input ``%lr``.
"""
from __future__ import annotations

import math

from .checks import check_fraction, check_int, check_positive, check_real


def check_lr(lr, owner: str) -> float:
    return check_positive(lr, f"{owner} lr")


def check_beta(beta, what: str) -> float:
    """An EWMA weight in [0, 1): 1 would never move."""
    return check_fraction(beta, what, high_open=True)


# ---------------------------------------------------------------- schedules

class Schedule:
    """Base class: ``schedule(lr0, epoch) -> lr``."""

    def __call__(self, lr0: float, epoch: int) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    def __call__(self, lr0, epoch):
        return lr0


class InverseTimeDecay(Schedule):
    """lr0 / (1 + decay_rate * floor(epoch / interval)); interval > 1 makes it a staircase."""

    def __init__(self, decay_rate: float = 1.0, interval: int = 1):
        self.decay_rate = check_real(decay_rate, "InverseTimeDecay decay_rate", low=0.0)
        self.interval = check_int(interval, "InverseTimeDecay interval", low=1)

    def __call__(self, lr0, epoch):
        return lr0 / (1 + self.decay_rate * (epoch // self.interval))


class ExponentialDecay(Schedule):
    """lr0 * k ** epoch."""

    def __init__(self, k: float = 0.95):
        self.k = check_fraction(k, "ExponentialDecay k", low_open=True)

    def __call__(self, lr0, epoch):
        return lr0 * self.k ** epoch


class SqrtDecay(Schedule):
    """lr0 * k / sqrt(epoch + 1) (the epoch number counted from 1)."""

    def __init__(self, k: float = 1.0):
        self.k = check_positive(k, "SqrtDecay k")

    def __call__(self, lr0, epoch):
        return lr0 * self.k / math.sqrt(epoch + 1)


class StepDecay(Schedule):
    """lr0 * factor ** floor(epoch / every): drops by ``factor`` every ``every`` epochs."""

    def __init__(self, factor: float = 0.5, every: int = 10):
        self.factor = check_fraction(factor, "StepDecay factor", low_open=True)
        self.every = check_int(every, "StepDecay every", low=1)

    def __call__(self, lr0, epoch):
        return lr0 * self.factor ** (epoch // self.every)


def check_schedule(schedule):
    if schedule is None:
        return Constant()
    if not callable(schedule):
        raise TypeError(f"schedule must be a dlc schedule or a callable (lr0, epoch) -> lr, "
                        f"got {schedule!r}")
    return schedule


def learning_rate(optimizer, epoch: int) -> float:
    """The optimizer's learning rate for ``epoch``, checked to be finite and positive."""
    return check_positive(optimizer.schedule(optimizer.lr, epoch),
                          f"the learning rate the schedule {optimizer.schedule!r} gave for "
                          f"epoch {epoch}")


# ---------------------------------------------------------------- optimizers

class Optimizer:
    slots = ()        # names of the per-parameter state arrays

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def slot_ref(self, param_ref: str, slot: str) -> str:
        return f"{param_ref}:{slot}"

    def add_slots(self, b, param_ref: str, info) -> dict:
        value = b.params[param_ref].value
        return {slot: b.param(self.slot_ref(param_ref, slot)[1:], value * 0, trainable=False,
                              layer=info.layer)
                for slot in self.slots}

    def emit(self, b, param_ref: str, grad: str, lr: str, step: str) -> None:
        """Append the update of ``param_ref`` (and of its state) to the builder."""
        param = b.params[param_ref]
        slots = self.add_slots(b, param_ref, param)
        for target, value in self.updates(b, param_ref, grad, slots, lr, step, param.layer):
            b.update(target, value)


class SGD(Optimizer):
    """W -= lr dW."""

    def __init__(self, lr: float = 0.01, schedule=None):
        self.lr = check_lr(lr, "SGD")
        self.schedule = check_schedule(schedule)

    def updates(self, b, W, g, slots, lr, step, layer):
        return [(W, b.add("sgd_step", W, g, lr, layer=layer))]


class Momentum(Optimizer):
    """v = beta v + (1 - beta) dW; W -= lr v (the exponentially weighted average form)."""
    slots = ("v",)

    def __init__(self, lr: float = 0.01, beta: float = 0.9, schedule=None):
        self.lr = check_lr(lr, "Momentum")
        self.beta = check_beta(beta, "Momentum beta")
        self.schedule = check_schedule(schedule)

    def updates(self, b, W, g, slots, lr, step, layer):
        v = b.add("ewma", slots["v"], g, layer=layer, beta=self.beta)
        return [(slots["v"], v), (W, b.add("sgd_step", W, v, lr, layer=layer))]


class RMSProp(Optimizer):
    """s = beta2 s + (1 - beta2) dW^2; W -= lr dW / (sqrt(s) + eps)."""
    slots = ("s",)

    def __init__(self, lr: float = 0.001, beta2: float = 0.999, eps: float = 1e-8,
                 schedule=None):
        self.lr = check_lr(lr, "RMSProp")
        self.beta2 = check_beta(beta2, "RMSProp beta2")
        self.eps = check_positive(eps, "RMSProp eps")
        self.schedule = check_schedule(schedule)

    def updates(self, b, W, g, slots, lr, step, layer):
        s = b.add("ewma_sq", slots["s"], g, layer=layer, beta=self.beta2)
        return [(slots["s"], s), (W, b.add("rmsprop_step", W, g, s, lr, layer=layer,
                                           eps=self.eps))]


class Adam(Optimizer):
    """Kingma & Ba: m and s as EWMAs of dW and dW^2, bias-corrected by 1 - beta^t;
    W -= lr m_hat / (sqrt(s_hat) + eps)."""
    slots = ("m", "s")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, schedule=None):
        self.lr = check_lr(lr, "Adam")
        self.beta1 = check_beta(beta1, "Adam beta1")
        self.beta2 = check_beta(beta2, "Adam beta2")
        self.eps = check_positive(eps, "Adam eps")
        self.schedule = check_schedule(schedule)

    def updates(self, b, W, g, slots, lr, step, layer):
        m = b.add("ewma", slots["m"], g, layer=layer, beta=self.beta1)
        s = b.add("ewma_sq", slots["s"], g, layer=layer, beta=self.beta2)
        return [(slots["m"], m), (slots["s"], s),
                (W, b.add("adam_step", W, m, s, lr, step, layer=layer, beta1=self.beta1,
                          beta2=self.beta2, eps=self.eps))]
