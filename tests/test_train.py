"""The trainer: learning real data, resuming bit for bit, writing weights back into the
model, schedules, mini-batching, callbacks, and clear errors on bad input."""
import numpy as np
import pytest

import dlc
from dlc.train import compile_trainer, reference_trainer
from helpers import COMPILERS

FLAGS = ("-O1",)


def small_net(dtype="float64", dropout=False, batchnorm=False, seed=0):
    layers = [dlc.Input(4), dlc.Dense(8), dlc.Tanh()]
    layers += [dlc.BatchNorm()] if batchnorm else []
    layers += [dlc.Dropout(keep_prob=0.7)] if dropout else []
    layers += [dlc.Dense(3), dlc.Softmax()]
    return dlc.Sequential(layers, dtype=dtype, seed=seed)


def small_data(rows=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 4))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)


def trainer(net=None, **options):
    options.setdefault("optimizer", dlc.Adam(lr=0.01))
    return dlc.compile(net or small_net(), mode="train", flags=FLAGS, **options)


# ---------------------------------------------------------------- learning

def test_digits_reach_97_percent():
    """Accuracy only: the speed of training is measured in benchmarks/."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25,
                                                        random_state=0, stratify=y)
    net = dlc.Sequential([dlc.Input(64), dlc.Dense(128), dlc.ReLU(), dlc.Dense(10),
                          dlc.Softmax()], seed=0)
    t = dlc.compile(net, mode="train", loss="cross_entropy", optimizer=dlc.Adam(lr=3e-3),
                    l2=1e-3)
    history = t.fit(X_train, y_train, epochs=30, batch_size=32, seed=0, progress=False)
    result = t.evaluate(X_test, y_test)
    assert result["accuracy"] >= 0.97, result
    assert history["loss"][-1] < history["loss"][0] / 10
    # net now holds the trained weights: the inference library agrees with evaluate
    predictions = dlc.compile(net).predict(X_test).argmax(axis=1)
    assert (predictions == y_test).mean() == result["accuracy"]


def test_cost_includes_the_penalty():
    """The logged cost is loss + lambda/(2m) sum ||W||^2; with a full batch and SGD at a
    tiny learning rate it matches the penalty computed from the initial weights."""
    X, y = small_data()
    losses = {}
    for l2 in (0.0, 3.0):
        net = small_net()
        W = [net.params["dense1.W"], net.params["dense2.W"]]
        penalty = l2 / (2 * len(X)) * sum((w ** 2).sum() for w in W)
        t = trainer(net, optimizer=dlc.SGD(lr=1e-12), l2=l2)
        losses[l2] = t.fit(X, y, epochs=1, batch_size=len(X), progress=False)["loss"][0] - penalty
    np.testing.assert_allclose(losses[3.0], losses[0.0], rtol=1e-9)


def test_regularize_chooses_the_penalised_parameters():
    """By default only dense weights are penalised; regularize= names others too."""
    X, y = small_data()
    costs = {}
    for regularize in (None, ["dense1.W", "dense2.W"], ["dense1.W", "dense1.b", "dense2.W"]):
        net = small_net()
        net.set_params({"dense1.b": np.full(8, 0.5)})
        t = trainer(net, optimizer=dlc.SGD(lr=1e-12), l1=2.0, regularize=regularize)
        costs[str(regularize)] = t.fit(X, y, epochs=1, batch_size=30, progress=False)["loss"][0]
    assert costs["None"] == costs["['dense1.W', 'dense2.W']"]
    np.testing.assert_allclose(costs["['dense1.W', 'dense1.b', 'dense2.W']"] - costs["None"],
                               2.0 / 30 * 8 * 0.5, rtol=1e-9)


# ---------------------------------------------------------------- dropout masks

def test_rng_is_splitmix64():
    """Element i of a stream is SplitMix64's output i from state ``key``: known answers
    for state 0 (0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F)."""
    from dlc import rng
    bits = rng.mix(np.arange(1, 4, dtype=np.uint64) * rng.GOLDEN)
    assert [int(b) for b in bits] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4,
                                      0x06C45D188009454F]
    np.testing.assert_array_equal(rng.uniform(np.uint64(0), 3), (bits >> np.uint64(11)) / 2.0 ** 53)


def test_dropout_keeps_units_with_keep_prob_and_scales_them():
    from dlc import rng
    x = np.ones((200, 50))
    y = rng.dropout(x, seed=1, step=2, keep_prob=0.7, stream=3)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_array_equal(y[kept], 1 / 0.7)
    assert abs(y.mean() - 1) < 0.02                       # inverted: expectation preserved
    again = rng.dropout(x, seed=1, step=2, keep_prob=0.7, stream=3)
    np.testing.assert_array_equal(y, again)
    for other in (dict(seed=2, step=2, stream=3), dict(seed=1, step=3, stream=3),
                  dict(seed=1, step=2, stream=4)):
        assert (rng.dropout(x, keep_prob=0.7, **other) != y).mean() > 0.3


def test_dropout_only_while_training():
    """Inference (evaluate, predict, dlc.compile) never drops units."""
    net = small_net(dropout=True)
    t = trainer(net)
    X, _ = small_data()
    np.testing.assert_allclose(t.predict(X), dlc.reference(small_net()).predict(X), rtol=1e-12)


# ---------------------------------------------------------------- state and resume

@pytest.mark.parametrize("optimizer", [lambda: dlc.Adam(lr=0.01, schedule=dlc.SqrtDecay()),
                                       lambda: dlc.Momentum(lr=0.05)])
def test_resume_from_state_dict_is_bit_identical(optimizer):
    X, y = small_data(37)
    whole = trainer(small_net(dropout=True, batchnorm=True), optimizer=optimizer())
    whole.fit(X, y, epochs=4, batch_size=8, seed=5, progress=False)

    first = trainer(small_net(dropout=True, batchnorm=True), optimizer=optimizer())
    first.fit(X, y, epochs=2, batch_size=8, seed=5, progress=False)
    state = first.state_dict()
    resumed = trainer(small_net(dropout=True, batchnorm=True, seed=99), optimizer=optimizer())
    resumed.load_state_dict(state)
    assert (resumed.epoch, resumed.step, resumed.seed) == (2, 10, 5)
    resumed.fit(X, y, epochs=2, batch_size=8, progress=False)     # seed restored too

    for group in ("params", "optimizer"):
        for name, value in whole.state_dict()[group].items():
            np.testing.assert_array_equal(resumed.state_dict()[group][name], value, err_msg=name)
    assert resumed.step == whole.step == 20


def test_state_dict_holds_copies_of_plain_values():
    t = trainer(small_net(batchnorm=True))
    t.fit(*small_data(), epochs=1, batch_size=10, progress=False)
    state = t.state_dict()
    arrays = list(state["params"].values()) + list(state["optimizer"].values())
    assert all(isinstance(a, np.ndarray) for a in arrays)
    assert all(isinstance(state[k], int) for k in ("step", "epoch", "seed"))
    assert set(state["params"]) == set(t.net.params)
    assert set(state["optimizer"]) == {f"{n}:{s}" for n in ("dense1.W", "dense1.b", "dense2.W",
                                                            "dense2.b", "batchnorm1.gamma",
                                                            "batchnorm1.beta") for s in "ms"}
    before = t.views["@dense1.W"].copy()
    state["params"]["dense1.W"][...] = 0
    np.testing.assert_array_equal(t.views["@dense1.W"], before)


def test_load_state_dict_rejects_wrong_shapes_before_changing_anything():
    t = trainer()
    state = t.state_dict()
    state["params"]["dense1.W"] = np.zeros((2, 2))
    before = t.state.copy()
    with pytest.raises(ValueError, match="dense1.W"):
        t.load_state_dict(state)
    np.testing.assert_array_equal(t.state, before)


def test_weights_and_running_statistics_are_written_back_every_epoch():
    net = small_net(batchnorm=True)
    t = trainer(net)
    X, y = small_data()
    seen = []
    t.fit(X, y, epochs=3, batch_size=7, progress=False,
          callbacks=[type("Spy", (), {"on_epoch_end": lambda self, tr, e, logs:
                                      seen.append(tr.net.get_params())})()])
    assert len(seen) == 3
    assert not np.array_equal(seen[0]["dense1.W"], seen[1]["dense1.W"])
    assert not np.array_equal(seen[0]["batchnorm1.running_var"], np.ones(8))
    for name, value in net.get_params().items():
        np.testing.assert_array_equal(value, t.views["@" + name])
    np.testing.assert_allclose(dlc.compile(net).predict(X), t.predict(X), rtol=1e-12)


def test_fit_continues_the_epoch_count():
    t = trainer(optimizer=dlc.SGD(lr=0.1, schedule=dlc.ExponentialDecay(k=0.5)))
    X, y = small_data()
    t.fit(X, y, epochs=2, batch_size=10, progress=False)
    history = t.fit(X, y, epochs=2, batch_size=10, progress=False)
    assert t.epoch == 4 and t.step == 12
    assert history["epoch"] == [3, 4]
    assert history["lr"] == [0.1 * 0.5 ** 2, 0.1 * 0.5 ** 3]


# ---------------------------------------------------------------- mini-batches and schedules

@pytest.mark.parametrize("batch_size,drop_last,steps", [(1, False, 30), (30, False, 1),
                                                        (7, False, 5), (7, True, 4)])
def test_mini_batch_sizes_match_the_reference(batch_size, drop_last, steps):
    """Stochastic, batch and mini-batch gradient descent, with the last partial batch
    used or dropped: C and reference agree and take the expected number of steps."""
    X, y = small_data()
    results = []
    for make in (compile_trainer, reference_trainer):
        options = dict(flags=FLAGS) if make is compile_trainer else {}
        t = make(small_net(dropout=True, batchnorm=True), optimizer=dlc.Adam(lr=0.01), l1=0.01,
                 **options)
        history = t.fit(X, y, epochs=2, batch_size=batch_size, drop_last=drop_last, seed=2,
                        progress=False)
        results.append((t, history))
    (c, hc), (ref, hr) = results
    assert c.step == ref.step == 2 * steps
    np.testing.assert_allclose(hc["loss"], hr["loss"], rtol=1e-10)
    for name, value in ref.views.items():
        np.testing.assert_allclose(c.views[name], value, rtol=1e-10, atol=1e-12, err_msg=name)


def test_each_epoch_shuffles_afresh_from_the_seed():
    """The order of epoch e is default_rng([seed, e]).permutation: with batch_size 1 and
    SGD, training equals one reference step per example in that order."""
    X, y = small_data(12)
    a = trainer(optimizer=dlc.SGD(lr=0.05))
    a.fit(X, y, epochs=2, batch_size=1, seed=4, progress=False)
    c = reference_trainer(small_net(), optimizer=dlc.SGD(lr=0.05))
    for epoch in range(2):
        for i in np.random.default_rng([4, epoch]).permutation(len(X)):
            c.fit(X[i:i + 1], y[i:i + 1], epochs=1, batch_size=1, progress=False)
    np.testing.assert_allclose(a.net.params["dense1.W"], c.net.params["dense1.W"], rtol=1e-12)
    other = trainer(optimizer=dlc.SGD(lr=0.05))
    other.fit(X, y, epochs=2, batch_size=1, seed=5, progress=False)
    assert not np.allclose(a.net.params["dense1.W"], other.net.params["dense1.W"])


@pytest.mark.parametrize("schedule,expected", [
    (dlc.InverseTimeDecay(decay_rate=1.0), lambda e: 0.2 / (1 + e)),
    (dlc.InverseTimeDecay(decay_rate=0.5, interval=2), lambda e: 0.2 / (1 + 0.5 * (e // 2))),
    (dlc.ExponentialDecay(k=0.9), lambda e: 0.2 * 0.9 ** e),
    (dlc.SqrtDecay(k=0.5), lambda e: 0.2 * 0.5 / np.sqrt(e + 1)),
    (dlc.StepDecay(factor=0.1, every=2), lambda e: 0.2 * 0.1 ** (e // 2)),
    (lambda lr0, epoch: lr0 / (epoch + 2), lambda e: 0.2 / (e + 2)),
])
def test_learning_rate_schedules(schedule, expected):
    t = trainer(optimizer=dlc.SGD(lr=0.2, schedule=schedule))
    history = t.fit(*small_data(), epochs=5, batch_size=10, progress=False)
    np.testing.assert_allclose(history["lr"], [expected(e) for e in range(5)], rtol=1e-15)


def test_schedule_changes_the_update_like_the_reference():
    X, y = small_data()
    runs = []
    for make in (compile_trainer, reference_trainer):
        options = dict(flags=FLAGS) if make is compile_trainer else {}
        t = make(small_net(), optimizer=dlc.RMSProp(lr=0.01, schedule=dlc.StepDecay(0.1, 1)),
                 **options)
        t.fit(X, y, epochs=3, batch_size=10, progress=False)
        runs.append(t.net.params["dense1.W"])
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-10)


# ---------------------------------------------------------------- fit options

def test_dev_metrics_callbacks_and_early_stop():
    X, y = small_data(40)
    calls = []

    class StopAtTwo:
        def on_epoch_end(self, trainer, epoch, logs):
            calls.append(("epoch", epoch, sorted(logs)))
            return epoch == 2

        def on_train_end(self, trainer, history):
            calls.append(("end", len(history)))

    t = trainer()
    history = t.fit(X[:30], y[:30], epochs=5, batch_size=10, dev=(X[30:], y[30:]),
                    callbacks=[StopAtTwo()], progress=False)
    assert len(history) == 2 and t.epoch == 2
    assert calls[-1] == ("end", 2)
    assert calls[0][2] == ["dev_accuracy", "dev_loss", "epoch", "loss", "lr",
                           "samples_per_second"]
    expected = t.evaluate(X[30:], y[30:])
    assert history.epochs[-1]["dev_loss"] == expected["loss"]
    probabilities = t.predict(X[30:])
    np.testing.assert_allclose(expected["loss"],
                               -np.log(probabilities[np.arange(10), y[30:]]).mean(), rtol=1e-12)


def test_evaluation_reuses_one_library_with_each_epochs_weights():
    """The inference C is the same every epoch: the trainer builds it once and loads the
    new (folded) weights; its predictions equal a fresh compile's and the reference's."""
    X, y = small_data(40)
    t = trainer(small_net(batchnorm=True))
    t.fit(X, y, epochs=1, batch_size=10, dev=(X, y), progress=False)
    library = t.backend._inference
    for _ in range(2):
        before = t.predict(X)
        t.fit(X, y, epochs=1, batch_size=10, dev=(X, y), progress=False)
        after = t.predict(X)
        assert t.backend._inference is library
        assert not np.allclose(after, before)
        np.testing.assert_array_equal(after, dlc.compile(t.net, flags=FLAGS).predict(X))
        np.testing.assert_allclose(after, dlc.reference(t.net).predict(X), rtol=1e-10)


def test_load_weights_refuses_another_models_graph():
    from dlc.lower import lower
    from dlc.passes import run_pipeline
    model = dlc.compile(small_net(), flags=FLAGS)
    other = run_pipeline(lower(small_net(batchnorm=True)))
    with pytest.raises(ValueError, match="this model's IR"):
        model.load_weights(other)


def test_augment_gets_a_fresh_seeded_rng_each_epoch():
    seen = []

    def augment(X, rng):
        seen.append(rng.integers(1 << 30))
        return X + rng.normal(scale=0.01, size=X.shape)

    t = trainer()
    t.fit(*small_data(), epochs=2, batch_size=10, seed=6, augment=augment, progress=False)
    assert seen == [np.random.default_rng([6, e, 1]).integers(1 << 30) for e in range(2)]


def test_progress_bar_reports_to_stderr(capsys):
    trainer().fit(*small_data(), epochs=2, batch_size=10, progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "loss" in err


def test_labels_may_be_one_hot_or_integers():
    X, y = small_data()
    a, b = trainer(), trainer()
    a.fit(X, y, epochs=1, batch_size=10, progress=False)
    b.fit(X, np.eye(3)[y], epochs=1, batch_size=10, progress=False)
    np.testing.assert_array_equal(a.state, b.state)


def test_binary_cross_entropy_and_mse_train():
    X, y = small_data(60)
    binary = dlc.Sequential([dlc.Input(4), dlc.Dense(8), dlc.Tanh(), dlc.Dense(1),
                             dlc.Sigmoid()], dtype="float64")
    t = trainer(binary, loss="binary_cross_entropy", optimizer=dlc.Adam(lr=0.05))
    target = (y > 0).astype(float)
    t.fit(X, target, epochs=40, batch_size=10, progress=False)
    assert t.evaluate(X, target)["accuracy"] > 0.9
    regression = dlc.Sequential([dlc.Input(4), dlc.Dense(8), dlc.Tanh(), dlc.Dense(1)],
                                dtype="float64")
    t = trainer(regression, loss="mse", optimizer=dlc.Adam(lr=0.05))
    history = t.fit(X, X[:, :1] * 0.5, epochs=40, batch_size=10, progress=False)
    assert history["loss"][-1] < history["loss"][0] / 20
    assert "accuracy" not in t.evaluate(X, X[:, :1])      # regression metrics instead


def test_mse_evaluate_reports_regression_metrics_like_scikit_learn():
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
    X, _ = small_data(50)
    for n_out in (1, 3):
        net = dlc.Sequential([dlc.Input(4), dlc.Dense(8), dlc.Tanh(), dlc.Dense(n_out)],
                             dtype="float64")
        t = trainer(net, loss="mse")
        Y = X[:, :n_out] * 0.5 + X[:, 1:1 + n_out] ** 2
        history = t.fit(X, Y if n_out > 1 else Y[:, 0], epochs=3, batch_size=10,
                        dev=(X, Y), progress=False)
        metrics = t.evaluate(X, Y)
        P = t.predict(X)
        expected = {"loss": mean_squared_error(Y, P), "mse": mean_squared_error(Y, P),
                    "rmse": np.sqrt(mean_squared_error(Y, P)),
                    "mae": mean_absolute_error(Y, P), "r2": r2_score(Y, P)}
        if n_out > 1:
            expected["accuracy"] = np.mean(P.argmax(axis=1) == Y.argmax(axis=1))
        assert sorted(metrics) == sorted(expected)
        for key, value in expected.items():
            np.testing.assert_allclose(metrics[key], value, rtol=1e-12, err_msg=key)
        assert history.epochs[-1]["dev_r2"] == metrics["r2"]
    constant = np.ones((50, 3))       # r2 of a constant column: scikit-learn's convention
    np.testing.assert_allclose(t.evaluate(X, constant)["r2"], r2_score(constant, P),
                               rtol=1e-12)


# ---------------------------------------------------------------- the model's weights

def test_fit_starts_from_weights_set_on_the_model():
    """Pretrained weights set on the model after compile: evaluate, fit and state_dict
    all use them, exactly as a trainer compiled from those weights would."""
    X, y = small_data()
    pretrained = small_net(seed=5).get_params()
    net = small_net(seed=0)
    t = trainer(net)
    net.set_params(pretrained)
    fresh = trainer(small_net(seed=5))
    assert t.evaluate(X, y) == fresh.evaluate(X, y)
    for a in (t, fresh):
        a.fit(X, y, epochs=2, batch_size=10, seed=1, progress=False)
    np.testing.assert_array_equal(t.state, fresh.state)
    for name, value in fresh.net.params.items():
        np.testing.assert_array_equal(net.params[name], value, err_msg=name)


def test_set_params_on_a_live_trainer_keeps_its_optimizer_state():
    X, y = small_data()
    t = trainer(small_net(seed=0))
    t.fit(X, y, epochs=1, batch_size=10, progress=False)
    state = t.state_dict()
    pretrained = small_net(seed=5).get_params()
    t.net.set_params(pretrained)
    state["params"] = pretrained
    assert_same_arrays(t.state_dict()["params"], pretrained)
    other = trainer(small_net(seed=9))
    other.load_state_dict(state)
    for a in (t, other):
        a.fit(X, y, epochs=2, batch_size=10, progress=False)
    np.testing.assert_array_equal(t.state, other.state)


def assert_same_arrays(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# ---------------------------------------------------------------- options

@pytest.mark.parametrize("preset,flags", [("portable", ("-O2",)),
                                          ("native", ("-O3", "-march=native", "-fopenmp"))])
def test_flag_presets_train_like_their_flags(preset, flags):
    X, y = small_data()
    by_name = dlc.compile(small_net(), mode="train", flags=preset)
    by_list = dlc.compile(small_net(), mode="train", flags=list(flags))
    assert by_name.backend.flags == by_list.backend.flags == flags
    for t in (by_name, by_list):
        t.fit(X, y, epochs=2, batch_size=10, progress=False)
    np.testing.assert_array_equal(by_name.state, by_list.state)
    np.testing.assert_array_equal(by_name.predict(X), by_list.predict(X))


def test_bad_flags_are_named():
    with pytest.raises(ValueError, match="unknown flag preset 'fast'"):
        dlc.compile(small_net(), mode="train", flags="fast")
    with pytest.raises(TypeError, match="flags must be"):
        dlc.compile(small_net(), mode="train", flags=3)


def test_default_batch_size_is_clipped_to_small_data():
    X, y = small_data(20)
    clipped, full = trainer(), trainer()
    history = clipped.fit(X, y, epochs=2, progress=False)       # 64 > 20 rows
    full_history = full.fit(X, y, epochs=2, batch_size=20, progress=False)
    assert clipped.step == 2 and history["loss"] == full_history["loss"]
    np.testing.assert_array_equal(clipped.state, full.state)
    with pytest.raises(ValueError, match=r"use batch_size=20 for full-batch training, or "
                                         r"leave it out.*got 21$"):
        trainer().fit(X, y, batch_size=21, progress=False)


@pytest.mark.parametrize("option", ["lr", "batch_size", "momentum"])
def test_unknown_train_options_list_the_valid_ones(option):
    with pytest.raises(TypeError, match=rf"unknown training option\(s\) \['{option}'\].*"
                                        r"\['cc', 'flags', 'loss', 'optimizer', 'l2', 'l1', "
                                        r"'regularize', 'threads', 'backend'\]"):
        dlc.compile(small_net(), mode="train", **{option: 0.1})
    with pytest.raises(TypeError, match=r"optimizer=dlc.Adam\(lr=...\)"):
        dlc.compile(small_net(), mode="train", lr=0.1)


def test_a_single_callback_needs_no_list():
    X, y = small_data()
    seen = []

    class Spy:
        def on_epoch_end(self, trainer, epoch, logs):
            seen.append(epoch)

    trainer().fit(X, y, epochs=2, batch_size=10, callbacks=Spy(), progress=False)
    assert seen == [1, 2]
    for bad, message in ((3, r"callbacks must be a callback or a list of callbacks, got 3"),
                         ([Spy(), "x"], r"callbacks\[1\] is 'x'")):
        with pytest.raises(TypeError, match=message):
            trainer().fit(X, y, epochs=1, batch_size=10, callbacks=bad, progress=False)


# ---------------------------------------------------------------- errors

def untouched(t):
    return t.step == 0 and t.epoch == 0 and np.array_equal(
        t.views["@dense1.W"], t.graph.params["@dense1.W"].value)


@pytest.mark.parametrize("change,message", [
    (dict(Y=np.array([0, 1, 3] * 10)), r"label 3 at row 2.*\[0, 3\)"),
    (dict(Y=np.array([0, -1, 2] * 10)), r"label -1"),
    (dict(Y=np.zeros((30, 4))), r"4 columns.*3 outputs"),
    (dict(Y=np.zeros(29, int)), r"30 rows"),
    (dict(batch_size=0), r"batch_size must be an integer in \[1, 30\] \(at most the number of examples\), got 0"),
    (dict(batch_size=31), r"got 31"),
    (dict(X=np.full((30, 4), np.nan)), r"X contains NaN"),
    (dict(Y=np.where(np.arange(30) == 4, np.nan, 0.0)),
     r"Y contains NaN or inf \(first at row 4\)"),
    (dict(Y=np.full(30, 0.5)), r"labels must be integers, got 0.5 at row 0"),
    (dict(X=np.zeros((30, 5))), r"5 features per row, the model expects 4"),
    (dict(seed=-1), r"seed must be an integer in \[0, 16777215\], got -1"),
    (dict(epochs=-2), r"epochs must be a non-negative integer"),
    (dict(dev=(np.zeros((3, 4)), np.array([0, 1, 5]))), r"dev Y has label 5"),
])
def test_bad_fit_input_is_rejected_before_any_c_runs(change, message):
    X, y = small_data()
    t = trainer()
    arguments = dict(X=X, Y=y, epochs=1, batch_size=10, progress=False)
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        t.fit(**arguments)
    assert untouched(t)


@pytest.mark.parametrize("make,message", [
    (lambda: dlc.SGD(lr=0), r"SGD lr must be in \(0, inf\), got 0.0"),
    (lambda: dlc.Adam(lr=-1e-3), r"Adam lr"),
    (lambda: dlc.Momentum(lr=0.1, beta=1.0), r"Momentum beta must be in \[0, 1\), got 1.0"),
    (lambda: dlc.Adam(beta1=-0.1), r"Adam beta1"),
    (lambda: dlc.Adam(beta2=1.5), r"Adam beta2"),
    (lambda: dlc.RMSProp(beta2=float("nan")), r"RMSProp beta2 must be a finite number"),
    (lambda: dlc.RMSProp(eps=0), r"RMSProp eps"),
    (lambda: dlc.SGD(lr=0.1, schedule=3), r"schedule must be"),
    (lambda: dlc.StepDecay(every=0), r"StepDecay every must be a positive integer, got 0"),
    (lambda: dlc.InverseTimeDecay(decay_rate=-1), r"decay_rate must be in \[0, inf\), got -1.0"),
    (lambda: dlc.ExponentialDecay(k=0), r"ExponentialDecay k must be in \(0, 1\], got 0.0"),
])
def test_bad_optimizer_settings(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


@pytest.mark.parametrize("options,message", [
    (dict(loss="hinge"), r"unknown loss 'hinge'"),
    (dict(loss="binary_cross_entropy"), r"end with a Sigmoid layer.*softmax1"),
    (dict(l2=-1.0), r"l2 must be in"),
    (dict(regularize=["dense1.X"]), r"'dense1.X' is not a trainable parameter"),
    (dict(optimizer="adam"), r"optimizer must be"),
])
def test_bad_compile_options(options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        trainer(**options)


def test_dropout_on_the_input_is_rejected():
    net = dlc.Sequential([dlc.Input(4), dlc.Dropout(0.5), dlc.Dense(3), dlc.Softmax()])
    with pytest.raises(ValueError, match="dropout1.*network input"):
        trainer(net)


def test_schedule_giving_a_bad_rate_stops_before_the_epoch():
    t = trainer(optimizer=dlc.SGD(lr=0.1, schedule=lambda lr0, e: lr0 - 0.1 * e))
    with pytest.raises(ValueError, match=r"gave for epoch 1 must be in \(0, inf\), got 0.0"):
        t.fit(*small_data(), epochs=3, batch_size=10, progress=False)
    assert t.epoch == 1


def test_divergence_stops_fit_naming_the_epoch_and_keeps_the_last_finite_weights():
    X, y = small_data(32)
    net = dlc.Sequential([dlc.Input(4), dlc.Dense(8), dlc.ReLU(), dlc.Dense(3), dlc.Softmax()],
                         dtype="float64")
    t = trainer(net, optimizer=dlc.SGD(lr=0.1, schedule=lambda lr0, e: lr0 if e == 0 else 1e300))
    t.fit(X, y, epochs=1, batch_size=8, progress=False)
    after_first = t.state.copy()
    with pytest.raises(FloatingPointError, match="diverged in epoch 2.*after epoch 1"):
        t.fit(X, y, epochs=3, batch_size=8, progress=False)
    np.testing.assert_array_equal(t.state, after_first)
    for name, value in t.net.get_params().items():
        np.testing.assert_array_equal(value, t.views["@" + name])
    assert t.epoch == 1 and t.step == 4


# ---------------------------------------------------------------- generated C

HOSTILE = 'x */ system("rm -rf ~"); /*\n#include <evil.h>\n??/ \\'
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2"]


@pytest.mark.parametrize("cc", COMPILERS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_c_compiles_strictly_and_names_layers(tmp_path, dtype, cc):
    import subprocess
    from dlc.targets.trainer import generate_train_module
    from dlc.train import training_graph
    net = dlc.Sequential([dlc.Input(4), dlc.Normalize(np.zeros(4), np.ones(4)),
                          dlc.Dense(6, name=HOSTILE), dlc.Tanh(), dlc.BatchNorm(name="bn"),
                          dlc.Dropout(0.5), dlc.Dense(5), dlc.LeakyReLU(0.1), dlc.Dense(3),
                          dlc.Sigmoid()], dtype=dtype)
    graph = training_graph(net, "binary_cross_entropy", dlc.Adam(), l2=0.1, l1=0.1)
    _, source, _ = generate_train_module(graph)
    c_file = tmp_path / "train.c"
    c_file.write_text(source)
    done = subprocess.run([cc, *STRICT, "-c", str(c_file), "-o", str(tmp_path / "t.o")],
                          capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr, done.stderr
    code = subprocess.run(["cc", "-fpreprocessed", "-E", str(c_file)], capture_output=True,
                          text=True, check=True).stdout
    assert "system" not in code and "evil" not in code and "??/" not in source
    assert "/* bn: " in source and "/* loss: " in source and "Generated by dlc" in source


HARNESS = r'''
#include "train.c"
#include <stdio.h>
#include <stdlib.h>

/* Reads exactly `bytes` bytes into a buffer of exactly that size (so the sanitizer
 * catches any access past it). */
static void *load(const char *path, size_t bytes)
{
    FILE *f = fopen(path, "rb");
    void *buffer = malloc(bytes);
    if (!f || !buffer || fread(buffer, 1, bytes, f) != bytes) {
        exit(2);
    }
    fclose(f);
    return buffer;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        return 2;
    }
    size_t n_rows = (size_t)atol(argv[1]), n_order = (size_t)atol(argv[2]);
    size_t batch = (size_t)atol(argv[3]);
    dlc_real *state = load("state.bin", dlc_state_elements() * sizeof(dlc_real));
    dlc_real *X = load("x.bin", n_rows * N_INPUTS * sizeof(dlc_real));
    dlc_real *Y = load("y.bin", n_rows * N_OUTPUTS * sizeof(dlc_real));
    int64_t *order = load("order.bin", n_order * sizeof(int64_t));
    dlc_real *work = malloc(dlc_work_elements(batch) * sizeof(dlc_real));
    double loss_sum = 0;
    int64_t steps;
    int status = dlc_train_epoch(state, work, X, Y, n_rows, order, n_order, batch,
                                 atof(argv[4]), atof(argv[5]), atol(argv[6]), &loss_sum, &steps);
    FILE *out = fopen(argv[7], "wb");
    fwrite(state, sizeof(dlc_real), dlc_state_elements(), out);
    fclose(out);
    printf("%d %.17g %lld\n", status, loss_sum, (long long)steps);
    free(state); free(X); free(Y); free(order); free(work);
    return 0;
}
'''
SANITIZE = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g",
            "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


@pytest.mark.parametrize("cc", COMPILERS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_epoch_under_sanitizers_matches_the_library(tmp_path, dtype, cc):
    """The epoch entry point with exactly sized buffers under AddressSanitizer and UBSan:
    no access out of bounds, and the same state as the cffi library."""
    import subprocess
    net = dlc.Sequential([dlc.Input(4), dlc.Dense(6), dlc.Tanh(), dlc.BatchNorm(),
                          dlc.Dropout(0.6), dlc.Dense(3), dlc.Softmax()], dtype=dtype)
    t = trainer(net, optimizer=dlc.Adam(lr=0.01), l2=0.1)
    X, y = small_data(23)
    T = np.eye(3, dtype=dtype)[y]
    X = X.astype(dtype)
    order = np.random.default_rng(1).permutation(23).astype(np.int64)
    for name, array in (("state", t.state), ("x", X), ("y", T), ("order", order)):
        array.tofile(tmp_path / f"{name}.bin")
    (tmp_path / "train.c").write_text(t.c_source)
    (tmp_path / "main.c").write_text(HARNESS)
    subprocess.run([cc, *SANITIZE, "main.c", "-o", "train", "-lm"], cwd=tmp_path, check=True,
                   capture_output=True)
    done = subprocess.run(["./train", "23", "23", "5", "0.01", "7", "3", "out.bin"],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={"ASAN_OPTIONS": "detect_leaks=0"})
    assert done.returncode == 0, done.stderr
    status, loss_sum, steps = done.stdout.split()
    assert (int(status), int(steps)) == (0, 5)
    expected = t.backend.run_epoch(t.state, X, T, order, 5, 0.01, 7, 3)
    np.testing.assert_allclose(float(loss_sum), expected[0], rtol=1e-5)
    np.testing.assert_allclose(np.fromfile(tmp_path / "out.bin", dtype), t.state,
                               rtol=1e-4 if dtype == "float32" else 1e-10, atol=1e-6)
