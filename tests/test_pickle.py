"""Pickling compiled models and trainers (what multiprocessing and Dask need): the C is
rebuilt from the build cache on unpickling, predictions are equal bit for bit and a
trainer continues training bit-identically, in this process or in another."""
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import dlc
from dlc.train import reference_trainer
from helpers import randomize_batchnorm

FLAGS = ("-O1",)
FIT = dict(batch_size=8, seed=4, progress=False)


def net(dtype="float64"):
    n = dlc.Sequential([dlc.Input(5), dlc.Dense(12), dlc.BatchNorm(), dlc.ReLU(),
                        dlc.Dropout(keep_prob=0.8), dlc.Dense(3), dlc.Softmax()],
                       dtype=dtype, seed=2)
    randomize_batchnorm(n, np.random.default_rng(1))
    return n


def data(rows=50, dtype="float64"):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(rows, 5)).astype(dtype)
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)


def trained(dtype="float64", epochs=2):
    t = dlc.compile(net(dtype), mode="train", l2=1e-3, flags=FLAGS,
                    optimizer=dlc.Adam(lr=0.01, schedule=dlc.SqrtDecay()))
    t.fit(*data(dtype=dtype), epochs=epochs, **FIT)
    return t


def assert_same_trainer(a, b):
    np.testing.assert_array_equal(a.state, b.state)
    assert (a.step, a.epoch, a.seed) == (b.step, b.epoch, b.seed)
    for name, value in a.net.params.items():
        np.testing.assert_array_equal(b.net.params[name], value, err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_compiled_model_pickles_with_its_weights(dtype):
    X, _ = data(dtype=dtype)
    model = dlc.compile(net(dtype), flags=FLAGS, threads=2)
    copy = pickle.loads(pickle.dumps(model))
    assert copy.ir == model.ir and copy.threads == 2
    np.testing.assert_array_equal(copy.predict(X), model.predict(X))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_pickled_trainer_continues_bit_identically(dtype):
    X, y = data(dtype=dtype)
    original = trained(dtype)
    copy = pickle.loads(pickle.dumps(original))
    assert_same_trainer(original, copy)
    assert copy.config["l2"] == 1e-3 and copy.backend.flags == FLAGS
    np.testing.assert_array_equal(copy.predict(X), original.predict(X))
    histories = [t.fit(X, y, epochs=2, **FIT)["loss"] for t in (original, copy)]
    assert histories[0] == histories[1]
    assert_same_trainer(original, copy)


def test_the_unpickled_trainer_trains_the_unpickled_model():
    original = trained()
    model, trainer = pickle.loads(pickle.dumps((original.net, original)))
    assert trainer.net is model and model is not original.net
    trainer.fit(*data(), epochs=1, **FIT)
    np.testing.assert_array_equal(model.params["dense1.W"], trainer.views["@dense1.W"])


def test_a_pickle_carries_weights_set_on_the_model():
    original = trained()
    weights = net().get_params()
    original.net.set_params(weights)
    copy = pickle.loads(pickle.dumps(original))
    for name, value in weights.items():
        np.testing.assert_array_equal(copy.state_dict()["params"][name], value, err_msg=name)


def test_a_reference_trainer_pickles():
    X, y = data(20)
    original = reference_trainer(net(), optimizer=dlc.Momentum(lr=0.05))
    original.fit(X, y, epochs=1, **FIT)
    copy = pickle.loads(pickle.dumps(original))
    for t in (original, copy):
        t.fit(X, y, epochs=1, **FIT)
    assert_same_trainer(original, copy)


def continue_training(trainer, X, y, epochs):
    """Run in a worker process: train on and send the trainer back."""
    history = trainer.fit(X, y, epochs=epochs, **FIT)
    return trainer, history["loss"], trainer.predict(X)


def test_a_trainer_trains_on_in_a_worker_process():
    """A fresh (spawned) interpreter rebuilds the C from the build cache and continues
    bit for bit; the trainer comes back through a pickle too."""
    X, y = data()
    original = trained()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        back, losses, predictions = pool.submit(continue_training, original, X, y, 2).result(
            timeout=300)
    expected = original.fit(X, y, epochs=2, **FIT)["loss"]
    assert losses == expected
    assert_same_trainer(original, back)
    np.testing.assert_array_equal(predictions, original.predict(X))
    assert back.fit(X, y, epochs=1, **FIT)["loss"] == original.fit(X, y, epochs=1, **FIT)["loss"]
