"""dlc.sklearn: estimators that train in C, checked by scikit-learn's own estimator checks
and against the dlc reference; from_sklearn against scikit-learn's MLPs as the oracle."""
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import (GridSearchCV, HalvingRandomSearchCV, cross_val_score,
                                     train_test_split)
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import dlc
from dlc.sklearn import MLPClassifier, MLPRegressor, expected_failed_checks
from helpers import assert_matches

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@parametrize_with_checks([MLPClassifier(), MLPRegressor()],
                         expected_failed_checks=expected_failed_checks)
def test_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=120, n_features=4, noise=0.1, random_state=0)
    return X, y / y.std()


# ---------------------------------------------------------------- estimators vs dlc

def test_classifier_outputs_are_the_dlc_models(iris):
    X, y = iris
    clf = MLPClassifier((8,), max_iter=30, random_state=0).fit(X, y)
    reference = dlc.reference(clf.net_).predict(X)
    assert_matches(clf.predict_proba(X), reference, np.float32, "predict_proba vs reference")
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[reference.argmax(axis=1)])
    assert clf.n_features_in_ == 4 and list(clf.classes_) == [0, 1, 2]
    assert len(clf.loss_curve_) == clf.n_iter_ == 30
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_classifier_keeps_its_labels(iris):
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])
    clf = MLPClassifier((8,), max_iter=30, random_state=0).fit(X, names[y])
    numeric = MLPClassifier((8,), max_iter=30, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, names)
    np.testing.assert_array_equal(clf.predict(X), names[numeric.predict(X)])


def test_regressor_outputs_are_the_dlc_models(regression):
    X, y = regression
    reg = MLPRegressor((8,), max_iter=40, random_state=0).fit(X, y)
    assert_matches(reg.predict(X), dlc.reference(reg.net_).predict(X)[:, 0], np.float32)
    column = MLPRegressor((8,), max_iter=40, random_state=0).fit(X, y.reshape(-1, 1))
    np.testing.assert_array_equal(column.predict(X), reg.predict(X).reshape(-1, 1))


def test_layers_follow_the_parameters(iris):
    X, y = iris
    clf = MLPClassifier((8, 6), activation="tanh", batch_norm=True, keep_prob=0.9,
                        optimizer="momentum", momentum=0.8, learning_rate=0.05,
                        schedule=dlc.StepDecay(0.5, every=5), alpha=0.0, l1=1e-4,
                        batch_size=16, max_iter=10, random_state=0).fit(X, y)
    kinds = [type(layer).__name__ for layer in clf.net_.layers]
    assert kinds == ["Dense", "BatchNorm", "Tanh", "Dropout"] * 2 + ["Dense", "Softmax"]
    assert_matches(clf.predict_proba(X), dlc.reference(clf.net_).predict(X), np.float32)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_partial_fit_epochs_equal_fit(iris):
    X, y = iris
    options = dict(hidden_layer_sizes=(8,), random_state=3, n_iter_no_change=100)
    fitted = MLPClassifier(max_iter=3, **options).fit(X, y)
    partial = MLPClassifier(**options)
    for _ in range(3):
        partial.partial_fit(X, y, classes=[0, 1, 2])
    assert partial.n_iter_ == 3
    np.testing.assert_array_equal(partial.loss_curve_, fitted.loss_curve_)
    np.testing.assert_array_equal(partial.predict_proba(X), fitted.predict_proba(X))


def test_partial_fit_needs_classes_first(iris):
    X, y = iris
    with pytest.raises(ValueError, match="classes"):
        MLPClassifier((8,)).partial_fit(X, y)


def test_pickle_keeps_weights_and_optimizer_state(iris):
    X, y = iris
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)      # resumes with the Adam moments and step count it was saved with
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(copy.loss_curve_, clf.loss_curve_)


UNPICKLE = """
import pickle, sys, numpy as np
with open(sys.argv[1], "rb") as f:
    clf = pickle.load(f)
np.save(sys.argv[2], clf.predict_proba(np.load(sys.argv[3])))
"""


def test_unpickled_in_another_process_predicts_the_same(iris, tmp_path):
    X, y = iris
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, y)
    (tmp_path / "clf.pkl").write_bytes(pickle.dumps(clf))
    np.save(tmp_path / "X.npy", X)
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", UNPICKLE, tmp_path / "clf.pkl", tmp_path / "P.npy",
                    tmp_path / "X.npy"], env=env, check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "P.npy"), clf.predict_proba(X))


def test_early_stopping_restores_the_best_epoch(iris):
    X, y = iris
    clf = MLPClassifier((8,), early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
                        learning_rate=0.05, max_iter=200, random_state=0).fit(X, y)
    curve = clf.validation_loss_curve_
    assert len(curve) < 200
    assert clf.n_iter_ == int(np.argmin(curve)) + 1
    assert len(curve) - clf.n_iter_ == 3


def test_refit_starts_new_curves(iris):
    X, y = iris
    clf = MLPClassifier((8,), early_stopping=True, n_iter_no_change=2, max_iter=20,
                        random_state=0).fit(X, y)
    first = len(clf.validation_loss_curve_)
    clf.fit(X, y)
    assert len(clf.validation_loss_curve_) == len(clf.loss_curve_) == first
    clf.set_params(early_stopping=False).fit(X, y)
    assert not hasattr(clf, "validation_loss_curve_")


def test_convergence_warning_at_max_iter(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        MLPClassifier((8,), max_iter=2, random_state=0).fit(X, y)


@pytest.mark.parametrize("param, value", [
    ("activation", "bogus"), ("hidden_layer_sizes", (8, 0)), ("optimizer", "adagrad"),
    ("keep_prob", 0.0), ("learning_rate", -1.0), ("beta_1", 1.0), ("batch_size", 0),
    ("max_iter", 0), ("schedule", "cosine"), ("dtype", "int8"), ("alpha", -1.0),
    ("validation_fraction", 1.0)])
def test_bad_parameter_names_itself(iris, param, value):
    X, y = iris
    with pytest.raises(ValueError, match=param):
        MLPClassifier((8,)).set_params(**{param: value}).fit(X, y)


def test_export_c_of_a_fitted_estimator(iris, tmp_path):
    X, y = iris
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, y)
    exported = clf.export_c(tmp_path, name="iris")
    assert exported.header.is_file() and exported.source.is_file()
    assert (exported.n_inputs, exported.n_outputs) == (4, 3)


# ---------------------------------------------------------------- inside scikit-learn tools

def test_pipeline_and_cross_val_score(iris):
    X, y = iris
    pipe = make_pipeline(StandardScaler(), MLPClassifier((8,), learning_rate=0.01,
                                                         batch_size=16, max_iter=50,
                                                         random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)      # measured: 0.98, 0.94, 0.96
    assert scores.shape == (3,) and scores.min() > 0.9


def test_grid_search(iris):
    X, y = iris
    search = GridSearchCV(MLPClassifier((8,), max_iter=30, random_state=0),
                          {"learning_rate": [1e-3, 1e-2], "batch_size": [16, 64]}, cv=3)
    search.fit(X, y)
    assert set(search.best_params_) == {"learning_rate", "batch_size"}
    assert search.best_score_ > 0.8


def test_halving_search_over_max_iter(iris):
    X, y = iris
    search = HalvingRandomSearchCV(MLPClassifier((8,), random_state=0),
                                   {"learning_rate": [1e-3, 3e-3, 1e-2, 3e-2]},
                                   resource="max_iter", min_resources=5, max_resources=40,
                                   n_candidates=4, cv=3, random_state=0)
    search.fit(X, y)
    assert search.n_resources_[0] == 5
    assert search.best_estimator_.max_iter == search.n_resources_[-1]


# ---------------------------------------------------------------- against scikit-learn's MLP

def test_digits_accuracy_near_sklearns():
    """Same architecture, epochs, optimizer and L2; dlc's own init (He normal, scikit-learn
    uses Glorot uniform) and float32.  Measured: dlc 96.9%, scikit-learn 96.4%."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16, y, random_state=0)
    options = dict(hidden_layer_sizes=(32,), max_iter=100, random_state=0)
    ours = MLPClassifier(**options).fit(X_train, y_train).score(X_test, y_test)
    theirs = SkMLPClassifier(**options).fit(X_train, y_train).score(X_test, y_test)
    assert ours >= theirs - 0.02, (ours, theirs)


def sklearn_mlps():
    """Small fitted scikit-learn MLPs of every output kind and hidden activation."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    y3 = rng.integers(0, 3, 60)
    multilabel = (X[:, :3] > 0).astype(int)
    fits = [("softmax-relu", SkMLPClassifier((7, 6), "relu"), y3),
            ("binary-tanh", SkMLPClassifier((7,), "tanh"), y3 % 2),
            ("multilabel-logistic", SkMLPClassifier((7,), "logistic"), multilabel),
            ("regressor-identity", SkMLPRegressor(loss="squared_error",
                                                  hidden_layer_sizes=(7,),
                                                  activation="identity"), X[:, 0]),
            ("regressor-2-outputs", SkMLPRegressor(loss="squared_error", hidden_layer_sizes=(7,),
                                                   activation="relu"), X[:, :2] * 3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, mlp, target in fits:
            mlp.set_params(max_iter=30, random_state=0).fit(X, target)
    return X, [(name, mlp) for name, mlp, _ in fits]


X_SK, SKLEARN_MLPS = sklearn_mlps()


def sklearn_outputs(mlp, X):
    if isinstance(mlp, SkMLPClassifier):
        return mlp.predict_proba(X)
    return mlp.predict(X).reshape(X.shape[0], -1)


@pytest.mark.parametrize("name, mlp", SKLEARN_MLPS, ids=[n for n, _ in SKLEARN_MLPS])
def test_from_sklearn_float64_reference_equals_sklearn(name, mlp):
    net = dlc.from_sklearn(mlp, dtype="float64")
    # atol: scikit-learn's binary 1 - p loses the digits of p near 1 (one ulp of 1)
    np.testing.assert_allclose(dlc.reference(net).predict(X_SK), sklearn_outputs(mlp, X_SK),
                               rtol=1e-12, atol=2e-16)


C_CASES = [case for case in SKLEARN_MLPS if case[0] in
           ("softmax-relu", "binary-tanh", "regressor-2-outputs")]     # a build each


@pytest.mark.parametrize("name, mlp", C_CASES, ids=[n for n, _ in C_CASES])
def test_from_sklearn_float32_c_equals_sklearn(name, mlp, tmp_path):
    net = dlc.from_sklearn(mlp)
    got = dlc.compile(net).predict(X_SK)
    assert_matches(got, dlc.reference(net).predict(X_SK), np.float32)
    # float32 weights and inputs: relative rounding of 6e-8 through a few layers
    np.testing.assert_allclose(got, sklearn_outputs(mlp, X_SK), rtol=1e-5, atol=1e-6)
    exported = dlc.export_c(net, tmp_path, name="mlp")
    assert exported.n_inputs == 5 and exported.n_outputs == got.shape[1]


def test_from_sklearn_refuses_other_models():
    with pytest.raises(TypeError, match="MLPClassifier or MLPRegressor"):
        dlc.from_sklearn(StandardScaler())
