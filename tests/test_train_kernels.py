"""The fast paths of the training kernels against the reference interpreter: batch norm
over several feature blocks, dropout masks at several keep probabilities, Adam's fused
update, and the trainer's threads option (the same bits whatever the thread count)."""
import numpy as np
import pytest

import dlc
from dlc.build import OPENMP_FLAG
from dlc.train import compile_trainer, reference_trainer

FLAGS = ("-O2",)
RTOL, ATOL = 1e-10, 1e-12       # float64: C and the reference agree to rounding


def wide_net(features, keep_prob=None, batchnorm=True, dtype="float64"):
    """More features than one block of the row-wise kernels (256), the last block partial."""
    layers = [dlc.Input(5), dlc.Dense(features), dlc.Tanh()]
    layers += [dlc.BatchNorm(momentum=0.8)] if batchnorm else []
    layers += [dlc.Dropout(keep_prob=keep_prob)] if keep_prob else []
    layers += [dlc.Dense(features), dlc.Normalize(mean=np.full(features, 0.1),
                                                   var=np.linspace(0.5, 2.0, features)),
               dlc.LeakyReLU(alpha=0.1), dlc.Dense(3), dlc.Softmax()]
    return dlc.Sequential(layers, dtype=dtype, seed=5)


def train_both(make_net, optimizer, rows=21, batch_size=8):
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(rows, 5)), rng.integers(0, 3, rows)
    trainers = []
    for make, options in ((compile_trainer, {"flags": FLAGS}), (reference_trainer, {})):
        trainer = make(make_net(), optimizer=optimizer(), **options)
        trainer.fit(X, Y, epochs=2, batch_size=batch_size, seed=4, progress=False)
        trainers.append(trainer)
    return trainers


def assert_same_state(c, ref):
    assert c.step == ref.step
    for name, expected in ref.views.items():
        np.testing.assert_allclose(c.views[name], expected, rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("features", [256, 300, 530])
def test_batchnorm_over_several_feature_blocks_matches_the_reference(features):
    c, ref = train_both(lambda: wide_net(features), lambda: dlc.SGD(lr=0.05))
    assert_same_state(c, ref)


@pytest.mark.parametrize("keep_prob", [0.5, 0.8, 0.3, 1.0])
def test_dropout_masks_match_the_reference(keep_prob):
    """0.5 puts the threshold exactly on a representable uniform; 1.0 keeps everything."""
    c, ref = train_both(lambda: wide_net(40, keep_prob, batchnorm=False),
                        lambda: dlc.SGD(lr=0.05))
    assert_same_state(c, ref)


@pytest.mark.parametrize("optimizer, fused, unfused", [
    (lambda: dlc.Adam(lr=0.01), "dlc_adam_update(", ("dlc_adam_step(", "dlc_ewma_sq(")),
    (lambda: dlc.Momentum(lr=0.05, beta=0.9), "dlc_momentum_update(", ("dlc_sgd_step(",)),
    (lambda: dlc.RMSProp(lr=0.01), "dlc_rmsprop_update(", ("dlc_rmsprop_step(", "dlc_ewma_sq(")),
])
def test_optimizer_update_is_one_fused_pass_per_parameter_and_matches_the_reference(
        optimizer, fused, unfused):
    make = lambda: wide_net(300, 0.8)          # noqa: E731
    c, ref = train_both(make, optimizer)
    assert_same_state(c, ref)
    trainable = [ref for ref, param in c.graph.params.items() if param.trainable]
    step = c.c_source.split("static void train_step(")[1]
    assert step.count(fused) == len(trainable) >= 8
    assert not any(call in step for call in unfused)


def test_threads_give_the_same_bits_as_one_thread():
    """Big enough for the matrix multiplies, the Adam updates and the dropout masks
    (128 x 512 values) to split across threads."""
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(320, 5)), rng.integers(0, 3, 320)
    states = []
    for threads in (1, 2, 3):
        trainer = dlc.compile(wide_net(512, 0.8), mode="train", flags=("-O2", OPENMP_FLAG),
                              optimizer=dlc.Adam(lr=1e-3), threads=threads)
        assert trainer.threads == threads
        assert trainer.backend.lib.dlc_set_threads(threads) == threads    # OpenMP is on
        trainer.fit(X, Y, epochs=1, batch_size=128, seed=1, progress=False)
        states.append(trainer.state.copy())
    for state in states[1:]:
        np.testing.assert_array_equal(state, states[0])
    ref = reference_trainer(wide_net(512, 0.8), optimizer=dlc.Adam(lr=1e-3))
    ref.fit(X, Y, epochs=1, batch_size=128, seed=1, progress=False)
    np.testing.assert_allclose(states[0], ref.state, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("threads, error, message", [
    (0, ValueError, "threads must be a positive integer, got 0"),
    (-1, ValueError, "threads must be a positive integer, got -1"),
    (1.5, TypeError, r"threads must be an integer, got 1.5 \(float\)"),
    (True, TypeError, r"threads must be an integer, got True \(bool\)"),
    ("2", TypeError, r"threads must be an integer, got '2' \(str\)"),
])
def test_bad_threads_are_rejected(threads, error, message):
    with pytest.raises(error, match=message):
        dlc.compile(wide_net(8), mode="train", flags=FLAGS, threads=threads)
    trainer = dlc.compile(wide_net(8), mode="train", flags=FLAGS)
    with pytest.raises(error, match=message):
        trainer.threads = threads
    assert trainer.threads == 1
