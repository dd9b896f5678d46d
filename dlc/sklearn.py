"""scikit-learn estimators whose epochs run in generated C, and scikit-learn MLPs as dlc models.

    from dlc.sklearn import MLPClassifier, MLPRegressor, from_sklearn

``MLPClassifier`` and ``MLPRegressor`` build a ``dlc.Sequential`` from their parameters,
train it with ``dlc.compile(net, mode="train")`` and predict through the compiled
inference library; ``net_`` is the trained dlc model, ready for ``dlc.export_c``.
``from_sklearn(mlp)`` turns a fitted ``sklearn.neural_network`` MLP into a dlc model
computing its ``predict_proba`` (classifier) or ``predict`` (regressor).

scikit-learn is an optional dependency of dlc: only this module imports it.
"""
from __future__ import annotations

import warnings
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import dsl, optim
from .api import compile as compile_model
from .callbacks import EarlyStopping
from .checks import check_fraction, check_positive, check_real
from .export import export_c
from .lower import lower
from .passes import run_pipeline
from .train import MAX_SEED

ACTIVATIONS = {"relu": dsl.ReLU, "leaky_relu": dsl.LeakyReLU, "tanh": dsl.Tanh,
               "logistic": dsl.Sigmoid, "identity": None}
OPTIMIZERS = ("adam", "sgd", "momentum", "rmsprop")
SCHEDULES = {"constant": None, "inverse_time": optim.InverseTimeDecay,
             "exponential": optim.ExponentialDecay, "sqrt": optim.SqrtDecay,
             "step": optim.StepDecay}
AUTO_BATCH = 200            # batch_size="auto" is min(200, n_samples), as in scikit-learn

# The one place for the estimator checks of scikit-learn these estimators are expected
# to fail, each with its reason (see expected_failed_checks).
FLOAT32_EXPECTED_FAILED_CHECKS = {
    "check_methods_subset_invariance":
        "in float32 a row predicted alone goes through the batch-1 kernel, which sums each "
        "dot product in eight chains, other batches in one: the last bits differ (about "
        "3e-7, above the check's atol of 1e-7); dtype='float64' passes",
}


def expected_failed_checks(estimator) -> dict:
    """check name -> why it fails, for ``parametrize_with_checks(...,
    expected_failed_checks=expected_failed_checks)``; scikit-learn 1.6 moved expected
    failures out of the estimator tags into that argument."""
    if np.dtype(estimator.dtype) == np.float32:
        return dict(FLOAT32_EXPECTED_FAILED_CHECKS)
    return {}


class _Runtime:
    """What a fitted estimator builds rather than stores: the trainer and the inference
    library.  Never pickled (``__getstate__`` keeps the trainer's state instead); one
    mutable holder, so predicting leaves the estimator's ``__dict__`` unchanged."""

    def __init__(self):
        self.trainer, self.model, self.model_stale = None, None, True


class _BaseMLP(BaseEstimator):
    _loss = None

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, batch_norm=False,
                 keep_prob=1.0, optimizer="adam", learning_rate=0.001, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, momentum=0.9, schedule=None, alpha=0.0001,
                 l1=0.0, batch_size="auto", max_iter=200, tol=1e-4, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, random_state=None,
                 threads=1, dtype="float32", verbose=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.batch_norm = batch_norm
        self.keep_prob = keep_prob
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.momentum = momentum
        self.schedule = schedule
        self.alpha = alpha
        self.l1 = l1
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.threads = threads
        self.dtype = dtype
        self.verbose = verbose

    # ------------------------------------------------------------ scikit-learn API

    def fit(self, X, y):
        """Train a new network for up to ``max_iter`` epochs (fewer when it converges)."""
        X, y = self._validate(X, y, reset=True)
        self._check_params()
        targets = self._start(X, y)
        rng = check_random_state(self.random_state)
        self._new_network(X.shape[1], targets.shape[1], rng)
        dev = None
        if self.early_stopping:
            X, targets, dev = self._split_validation(X, targets, rng)
        self._train(X, targets, self.max_iter, dev)
        return self

    def partial_fit(self, X, y, **kwargs):
        """One epoch over ``(X, y)``, continuing from the current weights and optimizer
        state (a new network at the first call)."""
        first = not hasattr(self, "net_")
        X, y = self._validate(X, y, reset=first)
        if first:
            self._check_params()
            targets = self._start(X, y, **kwargs)
            self._new_network(X.shape[1], targets.shape[1],
                              check_random_state(self.random_state))
        else:
            targets = self._targets(y, **kwargs)
        self._train(X, targets, 1, None, converge=False)
        return self

    def export_c(self, directory, name: str = "model", **options):
        """``dlc.export_c`` of the trained network (``net_``): standalone C99 whose
        ``name``_predict computes ``predict_proba`` (classifier) or ``predict``."""
        check_is_fitted(self)
        return export_c(self.net_, directory, name, **options)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "net_")

    def __getstate__(self):
        state = dict(super().__getstate__())
        runtime = state.pop("_runtime", None)
        if runtime is not None and runtime.trainer is not None:
            state["_trainer_state"] = runtime.trainer.state_dict()
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if hasattr(self, "net_"):
            self._runtime = _Runtime()

    # ------------------------------------------------------------ building and training

    def _validate(self, X, y, reset: bool):
        return validate_data(self, X, y, reset=reset, dtype=(np.float64, np.float32),
                             multi_output=isinstance(self, RegressorMixin),
                             y_numeric=isinstance(self, RegressorMixin))

    def _new_network(self, n_inputs: int, n_outputs: int, rng) -> None:
        self.net_ = self._network(n_inputs, n_outputs, int(rng.randint(MAX_SEED)))
        self._fit_seed = int(rng.randint(MAX_SEED))
        self.loss_curve_ = []
        self.n_iter_ = 0
        self._runtime = _Runtime()
        for stale in ("_trainer_state", "validation_loss_curve_"):
            self.__dict__.pop(stale, None)

    def _network(self, n_inputs: int, n_outputs: int, seed: int) -> dsl.Model:
        activation = ACTIVATIONS[self.activation]
        init = "he" if self.activation in ("relu", "leaky_relu") else "xavier"
        layers = [dsl.Input(n_inputs)]
        for units in self._hidden_sizes():
            layers.append(dsl.Dense(units, init=init))
            if self.batch_norm:
                layers.append(dsl.BatchNorm())
            if activation is not None:
                layers.append(activation())
            if self.keep_prob < 1:
                layers.append(dsl.Dropout(keep_prob=float(self.keep_prob)))
        layers.append(dsl.Dense(n_outputs, init="xavier"))
        layers.extend(self._output_layers())
        return dsl.Sequential(layers, dtype=self.dtype, seed=seed)

    def _output_layers(self) -> list:
        return []

    def _trainer(self):
        runtime = self._runtime
        if runtime.trainer is None:
            runtime.trainer = compile_model(
                self.net_, mode="train", loss=self._loss, optimizer=self._optimizer(),
                l2=float(self.alpha), l1=float(self.l1), threads=self.threads)
            state = self.__dict__.pop("_trainer_state", None)
            if state is not None:
                runtime.trainer.load_state_dict(state)
        runtime.trainer.threads = self.threads
        return runtime.trainer

    def _optimizer(self) -> optim.Optimizer:
        lr, schedule = float(self.learning_rate), self._schedule()
        if self.optimizer == "adam":
            return optim.Adam(lr, beta1=self.beta_1, beta2=self.beta_2, eps=self.epsilon,
                              schedule=schedule)
        if self.optimizer == "rmsprop":
            return optim.RMSProp(lr, beta2=self.beta_2, eps=self.epsilon, schedule=schedule)
        if self.optimizer == "momentum":
            return optim.Momentum(lr, beta=self.momentum, schedule=schedule)
        return optim.SGD(lr, schedule=schedule)

    def _schedule(self):
        if isinstance(self.schedule, str):
            kind = SCHEDULES[self.schedule]
            return None if kind is None else kind()
        return self.schedule

    def _batch_size(self, n_rows: int) -> int:
        if self.batch_size == "auto":
            return min(AUTO_BATCH, n_rows)
        if self.batch_size > n_rows:
            warnings.warn(f"batch_size {self.batch_size} is larger than the {n_rows} samples; "
                          f"it is clipped to {n_rows}", UserWarning, stacklevel=4)
        return min(int(self.batch_size), n_rows)

    def _split_validation(self, X, targets, rng):
        stratify = targets.argmax(axis=1) if isinstance(self, ClassifierMixin) else None
        try:
            X, X_dev, targets, T_dev = train_test_split(
                X, targets, test_size=self.validation_fraction, stratify=stratify,
                random_state=rng.randint(MAX_SEED))
        except ValueError as exc:
            raise ValueError(f"early_stopping cannot hold out validation_fraction="
                             f"{self.validation_fraction} of {X.shape[0]} samples: {exc}") from None
        return X, targets, (X_dev, T_dev)

    def _train(self, X, targets, epochs: int, dev, converge: bool = True) -> None:
        trainer = self._trainer()
        callbacks = []
        if converge:
            callbacks.append(EarlyStopping(
                monitor="dev_loss" if dev is not None else "loss",
                patience=self.n_iter_no_change, min_delta=float(self.tol),
                restore_best=dev is not None))
        before = trainer.epoch
        try:
            history = trainer.fit(X, targets, epochs=epochs, batch_size=self._batch_size(len(X)),
                                  seed=self._fit_seed, dev=dev, callbacks=callbacks,
                                  progress=bool(self.verbose))
        finally:
            self._runtime.model_stale = True
        self.loss_curve_ = self.loss_curve_ + history["loss"]
        if dev is not None:
            self.validation_loss_curve_ = getattr(self, "validation_loss_curve_", []) \
                + history["dev_loss"]
        self.n_iter_ = trainer.epoch
        if converge and trainer.epoch - before >= epochs and callbacks[0].stopped_epoch is None:
            warnings.warn(f"{type(self).__name__} stopped at max_iter={self.max_iter} epochs "
                          f"before the loss converged (tol={self.tol})", ConvergenceWarning,
                          stacklevel=3)

    def _outputs(self, X) -> np.ndarray:
        """The network's outputs for ``X`` through the compiled inference library."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        runtime = self._runtime
        if runtime.model is None:
            runtime.model = compile_model(self.net_, threads=self.threads)
        elif runtime.model_stale:
            runtime.model.load_weights(run_pipeline(lower(self.net_)))
        runtime.model_stale = False
        runtime.model.threads = self.threads
        return runtime.model.predict(X).astype(np.float64)

    # ------------------------------------------------------------ parameters

    def _hidden_sizes(self) -> tuple:
        sizes = self.hidden_layer_sizes
        return (sizes,) if isinstance(sizes, Integral) else tuple(sizes)

    def _check_params(self) -> None:
        """Every parameter checked at fit (scikit-learn wants __init__ and set_params
        to accept anything), each error naming the parameter."""
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, (str, bool)) or not (isinstance(sizes, Integral)
                                                  or hasattr(sizes, "__iter__")):
            raise ValueError(f"hidden_layer_sizes must be an int or a sequence of ints, "
                             f"got {sizes!r}")
        for units in self._hidden_sizes():
            _positive_int(units, "hidden_layer_sizes entries")
        _choice(self.activation, "activation", ACTIVATIONS)
        _choice(self.optimizer, "optimizer", OPTIMIZERS)
        if not isinstance(self.batch_norm, (bool, np.bool_)):
            raise ValueError(f"batch_norm must be True or False, got {self.batch_norm!r}")
        check_fraction(self.keep_prob, "keep_prob", low_open=True)
        check_positive(self.learning_rate, "learning_rate")
        for name in ("beta_1", "beta_2", "momentum"):
            check_fraction(getattr(self, name), name, high_open=True)
        check_positive(self.epsilon, "epsilon")
        if isinstance(self.schedule, str):
            _choice(self.schedule, "schedule", SCHEDULES)
        elif self.schedule is not None and not callable(self.schedule):
            raise ValueError(f"schedule must be None, one of {sorted(SCHEDULES)}, a dlc "
                             f"schedule or a callable (lr0, epoch) -> lr, got {self.schedule!r}")
        for name in ("alpha", "l1", "tol"):
            check_real(getattr(self, name), name, low=0.0)
        if self.batch_size != "auto":
            _positive_int(self.batch_size, "batch_size")
        for name in ("max_iter", "n_iter_no_change", "threads"):
            _positive_int(getattr(self, name), name)
        check_fraction(self.validation_fraction, "validation_fraction", low_open=True,
                       high_open=True)
        if self.dtype not in ("float32", "float64", np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multi-layer perceptron classifier trained in generated C (softmax outputs,
    cross-entropy loss).

    Parameters follow ``sklearn.neural_network.MLPClassifier`` where they exist:
    ``hidden_layer_sizes``, ``activation`` ("relu", "leaky_relu", "tanh", "logistic",
    "identity"), ``alpha`` (the L2 penalty), ``batch_size``, ``max_iter`` (epochs),
    ``tol``, ``early_stopping``, ``validation_fraction``, ``n_iter_no_change``,
    ``beta_1``, ``beta_2``, ``epsilon``, ``momentum``, ``random_state``, ``verbose``;
    and dlc's own: ``batch_norm`` (a BatchNorm after every hidden Dense),
    ``keep_prob`` (Dropout after every hidden activation when < 1), ``optimizer``
    ("adam", "sgd", "momentum", "rmsprop"), ``learning_rate`` (its initial value),
    ``schedule`` (None, "inverse_time", "exponential", "sqrt", "step" or a dlc
    schedule), ``l1``, ``threads`` and ``dtype`` ("float32" or "float64").

    Training stops when the training loss (or, with ``early_stopping``, the validation
    loss, whose best weights are then restored) has not improved by ``tol`` for
    ``n_iter_no_change`` epochs.  Attributes: ``classes_``, ``n_features_in_``,
    ``feature_names_in_`` (for named columns), ``loss_curve_`` (the training cost of each
    epoch, the penalty included), ``validation_loss_curve_`` (with early stopping),
    ``n_iter_`` and ``net_``, the trained ``dlc.Model``.
    """
    _loss = "cross_entropy"

    def predict_proba(self, X) -> np.ndarray:
        return self._outputs(X)

    def predict_log_proba(self, X) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        P = self.predict_proba(X)     # first: it raises NotFittedError before classes_ would
        return self.classes_[P.argmax(axis=1)]

    def _output_layers(self) -> list:
        return [dsl.Softmax()]

    def _start(self, X, y, classes=None) -> np.ndarray:
        check_classification_targets(y)
        self.classes_ = np.unique(y if classes is None else np.asarray(classes))
        if self.classes_.size < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes in y, "
                             f"got 1 class: {self.classes_[0]!r}")
        return self._targets(y)

    def _targets(self, y, classes=None) -> np.ndarray:
        check_classification_targets(y)
        if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes {np.unique(classes)!r} differ from the classes of the "
                             f"first partial_fit, {self.classes_!r}")
        index = np.searchsorted(self.classes_, y)
        unknown = (index >= self.classes_.size) | (self.classes_[np.minimum(
            index, self.classes_.size - 1)] != y)
        if unknown.any():
            raise ValueError(f"y has label {y[unknown][0]!r}, not one of the classes "
                             f"{self.classes_!r}")
        T = np.zeros((y.shape[0], self.classes_.size), np.float64)
        T[np.arange(y.shape[0]), index] = 1
        return T

    def partial_fit(self, X, y, classes=None):
        """One epoch, continuing; the first call needs ``classes``, every label to expect."""
        if classes is None and not hasattr(self, "net_"):
            raise ValueError("classes must be given at the first call to partial_fit")
        return super().partial_fit(X, y, classes=classes)


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multi-layer perceptron regressor trained in generated C (linear outputs, mean
    squared error); one output per column of ``y``.  Parameters and attributes as
    ``MLPClassifier``'s, without ``classes_``."""
    _loss = "mse"

    def predict(self, X) -> np.ndarray:
        Y = self._outputs(X)
        return Y[:, 0] if self._y_vector else Y

    def _start(self, X, y) -> np.ndarray:
        self._y_vector = y.ndim == 1
        return self._targets(y)

    def _targets(self, y) -> np.ndarray:
        T = np.asarray(y, np.float64)
        return T.reshape(-1, 1) if T.ndim == 1 else T

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def _positive_int(value, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _choice(value, what: str, options) -> None:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{what} must be one of {sorted(options)}, got {value!r}")


# ---------------------------------------------------------------- scikit-learn MLPs to dlc

SKLEARN_ACTIVATIONS = {"relu": dsl.ReLU, "tanh": dsl.Tanh, "logistic": dsl.Sigmoid,
                       "identity": None}


def from_sklearn(mlp, dtype="float32") -> dsl.Model:
    """A dlc model computing a fitted ``sklearn.neural_network`` MLP: for an
    ``MLPClassifier`` its ``predict_proba`` (a binary one as two columns, through a
    softmax of the logits (0, z), which equals (1 - sigmoid(z), sigmoid(z))), for an
    ``MLPRegressor`` its ``predict`` (one column per output)."""
    from sklearn.neural_network import MLPClassifier as SkClassifier, MLPRegressor as SkRegressor
    if not isinstance(mlp, (SkClassifier, SkRegressor)):
        raise TypeError(f"from_sklearn takes a fitted sklearn.neural_network.MLPClassifier or "
                        f"MLPRegressor, got {type(mlp).__name__}")
    check_is_fitted(mlp)
    weights = [np.asarray(W, np.float64) for W in mlp.coefs_]
    biases = [np.asarray(b, np.float64) for b in mlp.intercepts_]
    output, last = _sklearn_output(mlp)
    if output == "binary":
        weights[-1] = np.hstack([np.zeros_like(weights[-1]), weights[-1]])
        biases[-1] = np.concatenate([np.zeros_like(biases[-1]), biases[-1]])
    activation = SKLEARN_ACTIVATIONS[mlp.activation]
    layers = [dsl.Input(weights[0].shape[0])]
    for i, W in enumerate(weights):
        layers.append(dsl.Dense(W.shape[1], name=f"dense{i + 1}"))
        hidden = i < len(weights) - 1
        if hidden and activation is not None:
            layers.append(activation())
        elif not hidden and last is not None:
            layers.append(last())
    net = dsl.Sequential(layers, dtype=dtype)
    net.set_params({name: value for i, (W, b) in enumerate(zip(weights, biases))
                    for name, value in ((f"dense{i + 1}.W", W), (f"dense{i + 1}.b", b))})
    return net


def _sklearn_output(mlp):
    """(how the output is read, the final dlc layer) for the fitted MLP's out_activation_."""
    kind = mlp.out_activation_
    if kind == "softmax":
        return "softmax", dsl.Softmax
    if kind == "identity":
        return "identity", None
    if kind == "logistic":
        # one logistic output is a binary classifier; several, a multilabel one
        return ("binary", dsl.Softmax) if mlp.n_outputs_ == 1 else ("multilabel", dsl.Sigmoid)
    raise ValueError(f"from_sklearn: unsupported out_activation_ {kind!r}")

