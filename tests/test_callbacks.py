"""Callbacks with the real trainer: early stopping restores the best epoch, TrainMetrics
logs the inference-mode training metrics, augmentation never touches dev data."""
import numpy as np
import pytest
from sklearn.datasets import load_digits

import dlc
from dlc import data
from dlc.callbacks import Checkpoint, EarlyStopping, TrainMetrics

FLAGS = ("-O1",)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return data.split(X[:600], y[:600], ratios=(0.5, 0.5), seed=0, stratify=True)


def make_trainer(train_set, lr=3e-2, dtype="float64"):
    net = dlc.Sequential([dlc.Input(64), data.fit_normalize(train_set[0]),
                          dlc.Dense(32), dlc.BatchNorm(), dlc.ReLU(), dlc.Dropout(keep_prob=0.7),
                          dlc.Dense(10), dlc.Softmax()], dtype=dtype, seed=1)
    return dlc.compile(net, mode="train", loss="cross_entropy", optimizer=dlc.Adam(lr=lr),
                       flags=FLAGS)


class Recorder:
    """Keeps every epoch's logs, parameters and freshly evaluated dev metrics."""

    def __init__(self, dev_set=None):
        self.dev_set, self.logs, self.params, self.dev = dev_set, [], [], []

    def on_epoch_end(self, trainer, epoch, logs):
        self.logs.append(dict(logs))
        self.params.append(trainer.net.get_params())
        if self.dev_set is not None:
            self.dev.append(trainer.evaluate(*self.dev_set))


@pytest.mark.parametrize("monitor", ["dev_loss", "dev_accuracy"])
def test_early_stopping_restores_the_best_epochs_weights(digits, monitor):
    train_set, dev_set = digits
    trainer = make_trainer(train_set)
    recorder = Recorder()
    stopper = EarlyStopping(monitor=monitor, patience=3)
    history = trainer.fit(*train_set, epochs=60, batch_size=16, seed=0, dev=dev_set,
                          callbacks=[recorder, stopper], progress=False)
    values = np.array([logs[monitor] for logs in history.epochs])
    best = int(np.argmin(values) if monitor == "dev_loss" else np.argmax(values))
    assert len(history.epochs) == best + 1 + 3, "stops after `patience` epochs without progress"
    assert stopper.best_epoch == history.epochs[best]["epoch"]
    assert stopper.stopped_epoch == history.epochs[-1]["epoch"]
    assert stopper.best == values[best]
    for name, value in recorder.params[best].items():
        np.testing.assert_array_equal(trainer.net.params[name], value, err_msg=name)
    assert not all(np.array_equal(recorder.params[-1][n], v)
                   for n, v in recorder.params[best].items())
    again = trainer.evaluate(*dev_set)
    key = monitor.replace("dev_", "")
    assert again[key] == pytest.approx(history.epochs[best][monitor], rel=1e-12)


def test_without_restore_the_last_weights_stay(digits):
    train_set, dev_set = digits
    trainer = make_trainer(train_set)
    recorder = Recorder()
    trainer.fit(*train_set, epochs=60, batch_size=16, seed=0, dev=dev_set, progress=False,
                callbacks=[recorder, EarlyStopping(patience=2, restore_best=False)])
    for name, value in recorder.params[-1].items():
        np.testing.assert_array_equal(trainer.net.params[name], value)


def test_an_early_stopping_reused_for_a_second_fit_starts_afresh(digits):
    """The second fit with the same EarlyStopping runs, stops and restores exactly as with
    a new one: nothing of the first fit's best epoch or patience count carries over."""
    train_set, dev_set = digits
    options = dict(epochs=60, batch_size=16, seed=0, dev=dev_set, progress=False)
    reused, fresh = make_trainer(train_set), make_trainer(train_set)
    stopper = EarlyStopping(patience=2)
    for t in (reused, fresh):
        t.fit(*train_set, callbacks=[EarlyStopping(patience=2)] if t is fresh else stopper,
              **options)
    start = reused.epoch
    again = reused.fit(*train_set, callbacks=stopper, **options)
    new = EarlyStopping(patience=2)
    expected = fresh.fit(*train_set, callbacks=[new], **options)
    assert len(again) == len(expected) > 2
    assert (stopper.best_epoch, stopper.stopped_epoch) == (new.best_epoch, new.stopped_epoch)
    assert stopper.best_epoch > start           # an epoch of the second fit
    np.testing.assert_array_equal(reused.state, fresh.state)


class Scripted:
    """A stand-in trainer whose "state" is the epoch it was saved at."""

    def __init__(self):
        self.epoch, self.restored = 0, None

    def state_dict(self):
        return {"epoch": self.epoch}

    def load_state_dict(self, state):
        self.restored = state["epoch"]


@pytest.mark.parametrize("values, min_delta, patience, best, stop", [
    ([1.0, 0.9, 0.895, 0.89, 0.95, 0.7], 0.02, 2, 2, 4),    # 0.895, 0.89: not 0.02 better
    ([1.0, 0.9, 0.895, 0.89, 0.95, 0.7], 0.0, 2, 6, None),  # each strictly better counts
    ([1.0, 0.9, 0.895, 0.89, 0.95, 0.7], 0.0, 1, 4, 5),
    ([3.0, 3.0, 3.0], 0.0, 2, 1, 3),                         # equal is no improvement
])
def test_patience_and_min_delta(values, min_delta, patience, best, stop):
    trainer, stopper = Scripted(), EarlyStopping("dev_loss", patience, min_delta)
    for epoch, value in enumerate(values, 1):
        trainer.epoch = epoch
        if stopper.on_epoch_end(trainer, epoch, {"epoch": epoch, "dev_loss": value}):
            break
    stopper.on_train_end(trainer, None)
    assert (stopper.best_epoch, stopper.stopped_epoch, trainer.restored) == (best, stop, best)


def test_early_stopping_bad_arguments_and_missing_metric(digits):
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="min_delta"):
        EarlyStopping(min_delta=-1)
    with pytest.raises(ValueError, match="mode="):
        EarlyStopping(monitor="dev_f1")
    train_set, _ = digits
    with pytest.raises(ValueError, match="dev_loss.*fit\\(dev="):
        make_trainer(train_set).fit(*train_set, epochs=2, batch_size=32, progress=False,
                                    callbacks=[EarlyStopping()])


def test_train_metrics_are_inference_mode_metrics_on_the_training_set(digits):
    train_set, dev_set = digits
    trainer = make_trainer(train_set)
    recorder = Recorder(dev_set=train_set)
    history = trainer.fit(*train_set, epochs=3, batch_size=32, seed=0,
                          callbacks=[TrainMetrics(*train_set), recorder], progress=False)
    for logs, fresh in zip(recorder.logs, recorder.dev):
        assert logs["train_loss"] == fresh["loss"]
        assert logs["train_accuracy"] == fresh["accuracy"]
    assert len(history.epochs) == 3


def test_augmentation_only_sees_training_data_and_dev_metrics_are_clean(digits):
    train_set, dev_set = digits
    calls, noises = [], []

    def augment(X, rng):
        calls.append(X.copy())
        noises.append(rng.normal(0, 1.0, X.shape))
        return X + noises[-1]

    trainer = make_trainer(train_set)
    recorder = Recorder(dev_set)
    history = trainer.fit(*train_set, epochs=3, batch_size=32, seed=0, dev=dev_set,
                          augment=augment, callbacks=[recorder], progress=False)
    assert len(calls) == 3
    for X in calls:
        np.testing.assert_array_equal(np.sort(X, axis=0), np.sort(train_set[0], axis=0))
    for logs, fresh in zip(history.epochs, recorder.dev):
        assert logs["dev_loss"] == pytest.approx(fresh["loss"], rel=1e-12)
        assert logs["dev_accuracy"] == fresh["accuracy"]
    assert not np.array_equal(noises[0], noises[1]), "fresh changes every epoch"
    first_run = noises[:]
    make_trainer(train_set).fit(*train_set, epochs=3, batch_size=32, seed=0, augment=augment,
                                progress=False)
    for a, b in zip(first_run, noises[3:]):
        np.testing.assert_array_equal(a, b)      # seeded: the same seed, the same changes


def test_checkpoint_callback_saves_a_resumable_trainer(digits, tmp_path):
    train_set, _ = digits
    trainer = make_trainer(train_set)
    path = tmp_path / "run.dlc"
    trainer.fit(*train_set, epochs=4, batch_size=32, seed=0, progress=False,
                callbacks=[Checkpoint(path, every=2)])
    resumed = dlc.load(path)
    assert resumed.epoch == trainer.epoch == 4
    for name, value in trainer.net.params.items():
        np.testing.assert_array_equal(resumed.net.params[name], value, err_msg=name)
