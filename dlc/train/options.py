"""The entry points of training: the options of ``compile(net, mode="train", ...)``
checked, and a Trainer made of them, with the C backend (``compile_trainer``) or the
reference interpreter (``reference_trainer``, the oracle)."""
from __future__ import annotations

import contextlib
import contextvars
import inspect

from ..build import DEFAULT_FLAGS
from ..checks import check_real, check_threads
from ..dsl import Model
from ..optim import Adam, Optimizer
from .graph import training_graph
from .trainer import BACKENDS, Trainer

DEFAULT_BACKEND = "c"
# The backend of compile(mode="train") when none is named: "c", or what a caller such as
# dlc.tune's trials chose for the builds it runs (see default_backend).
_backend = contextvars.ContextVar("dlc_train_backend", default=DEFAULT_BACKEND)


@contextlib.contextmanager
def default_backend(name: str):
    """Within the block, ``compile(net, mode="train")`` without ``backend=`` uses ``name``
    (in this thread or task only)."""
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {name!r}")
    token = _backend.set(name)
    try:
        yield
    finally:
        _backend.reset(token)


def make_trainer(net: Model, cc=None, flags=DEFAULT_FLAGS, loss: str = "cross_entropy",
                 optimizer: Optimizer = None, l2: float = 0.0, l1: float = 0.0,
                 regularize=None, threads: int = 1, backend: str = DEFAULT_BACKEND) -> Trainer:
    if not isinstance(net, Model):
        raise TypeError(f"expected a dlc.Model, got {type(net).__name__}")
    threads = check_threads(threads)
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    optimizer = Adam() if optimizer is None else optimizer
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be dlc.SGD, Momentum, RMSProp or Adam, got {optimizer!r}")
    l2, l1 = check_real(l2, "l2", low=0.0), check_real(l1, "l1", low=0.0)
    if regularize is not None and not isinstance(regularize, str):
        regularize = list(regularize)
    config = dict(loss=loss, optimizer=optimizer, l2=l2, l1=l1, regularize=regularize)
    return Trainer(net, training_graph(net, **config), config, backend, cc=cc, flags=flags,
                   threads=threads)


def compile_trainer(net: Model, cc=None, flags=DEFAULT_FLAGS, backend: str = None,
                    **options) -> Trainer:
    """``dlc.compile(net, mode="train", loss=..., optimizer=..., l2=..., l1=...,
    regularize=..., threads=..., backend=...)``: a Trainer whose epochs run in C, the
    training step rendered and compiled for this model (``backend="c"``) or the training
    program run as data by the runner, compiled once per dtype and flags
    (``backend="runner"``: no compiler run for a new shape or hyperparameter).  Without
    ``backend``, "c" unless a ``default_backend`` block says otherwise."""
    check_train_options(options)
    return make_trainer(net, cc=cc, flags=flags, **options,
                        backend=_backend.get() if backend is None else backend)


def reference_trainer(net: Model, **options) -> Trainer:
    """The same Trainer running the training graph in the NumPy interpreter: the oracle."""
    return make_trainer(net, **options, backend="reference")


def train_option_names() -> list:
    """The keyword options of ``compile(net, mode="train", ...)``."""
    names = list(inspect.signature(make_trainer).parameters)
    return [name for name in names if name != "net"]


def check_train_options(options: dict) -> None:
    unknown = sorted(set(options) - set(train_option_names()))
    if unknown:
        hint = (" (the learning rate belongs to the optimizer: optimizer=dlc.Adam(lr=...); "
                "batch_size and epochs are arguments of fit)"
                if {"lr", "learning_rate", "batch_size", "epochs"} & set(unknown) else "")
        raise TypeError(f"unknown training option(s) {unknown} for compile(net, "
                        f"mode='train'); the options are {train_option_names()}{hint}")
