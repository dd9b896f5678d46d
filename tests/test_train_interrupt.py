"""Interrupting fit: an exception inside an epoch (Ctrl-C included) leaves the trainer and
its model exactly at the end of the last completed epoch, resuming repeats uninterrupted
training bit for bit, and a real SIGINT is noticed within a small part of a long epoch."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dlc

FLAGS = ("-O1",)
FIT = dict(batch_size=4, seed=3, progress=False)


def net():
    return dlc.Sequential([dlc.Input(4), dlc.Dense(8), dlc.Tanh(), dlc.BatchNorm(),
                           dlc.Dropout(keep_prob=0.7), dlc.Dense(3), dlc.Softmax()],
                          dtype="float64")


def data(rows=40):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 4))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)


def trainer():
    return dlc.compile(net(), mode="train", optimizer=dlc.Adam(lr=0.01), flags=FLAGS)


def snapshot(t) -> dict:
    return {"state": t.state.copy(), "counters": (t.step, t.epoch, t.seed),
            "net": t.net.get_params()}


def assert_at(t, expected: dict):
    """The trainer's state block, counters and model weights are those of ``expected``."""
    np.testing.assert_array_equal(t.state, expected["state"])
    assert (t.step, t.epoch, t.seed) == expected["counters"]
    assert sorted(t.net.params) == sorted(expected["net"])
    for name, value in expected["net"].items():
        np.testing.assert_array_equal(t.net.params[name], value, err_msg=name)


@pytest.fixture(scope="module")
def straight():
    """Three uninterrupted epochs, and the trainer after each."""
    X, y = data()
    t = trainer()
    after, losses = [snapshot(t)], []
    for _ in range(3):
        losses += t.fit(X, y, epochs=1, **FIT)["loss"]
        after.append(snapshot(t))
    return after, losses


def test_an_exception_in_the_middle_of_the_epoch_loop_rolls_the_epoch_back(straight,
                                                                          monkeypatch):
    after, losses = straight
    X, y = data()
    t = trainer()
    t.fit(X, y, epochs=1, **FIT)
    t._chunk_rows = 1       # one mini-batch in the next call, then 2, 4, ...: 10 need 4 calls
    real, calls = t.backend.run_epoch, []

    def interrupted(*args):
        calls.append(args[3].size)
        result = real(*args)        # the C has updated the state block
        if len(calls) == 2:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(t.backend, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        t.fit(X, y, epochs=2, **FIT)
    assert calls == [4, 8], "interrupted after 3 of the epoch's 10 mini-batches"
    assert_at(t, after[1])
    monkeypatch.undo()
    history = t.fit(X, y, epochs=2, **FIT)
    assert_at(t, after[3])
    assert history["loss"] == losses[1:]


def test_an_interrupt_in_augment_keeps_the_completed_epochs(straight):
    after, losses = straight
    X, y = data()
    t = trainer()
    epochs_seen = []

    def augment(X, rng):
        epochs_seen.append(t.epoch)
        if len(epochs_seen) == 3:
            raise KeyboardInterrupt
        return X

    with pytest.raises(KeyboardInterrupt):
        t.fit(X, y, epochs=3, augment=augment, **FIT)
    assert_at(t, after[2])
    assert t.fit(X, y, epochs=1, **FIT)["loss"] == losses[2:]
    assert_at(t, after[3])


def test_an_interrupt_in_a_callback_comes_after_its_epoch(straight):
    after, _ = straight
    X, y = data()
    t = trainer()

    class Interrupt:
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        t.fit(X, y, epochs=3, callbacks=[Interrupt()], **FIT)
    assert_at(t, after[2])


SIGINT_SCRIPT = textwrap.dedent("""
    import json, os, signal, threading, time
    import numpy as np
    import dlc

    net = dlc.Sequential([dlc.Input(64), dlc.Dense(256), dlc.ReLU(), dlc.Dense(256),
                          dlc.ReLU(), dlc.Dense(10), dlc.Softmax()])
    t = dlc.compile(net, mode="train", flags={flags!r})
    rng = np.random.default_rng(0)
    X = rng.normal(size=({rows}, 64)).astype(np.float32)
    y = rng.integers(0, 10, {rows})
    t.fit(X[:640], y[:640], epochs=1, batch_size=64, progress=False)     # builds, warms up
    before = {{"state": t.state.copy(), "net": net.get_params(), "counters": (t.step, t.epoch)}}
    sent = []

    def interrupt():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Timer({delay}, interrupt).start()
    start = time.perf_counter()
    try:
        t.fit(X, y, epochs=1, batch_size=64, progress=False)
        outcome = "finished"
    except KeyboardInterrupt:
        outcome = "interrupted"
    noticed = time.perf_counter()
    print(json.dumps({{
        "outcome": outcome, "latency": noticed - sent[0], "ran": noticed - start,
        "state_kept": bool(np.array_equal(t.state, before["state"])),
        "counters_kept": (t.step, t.epoch) == before["counters"],
        "net_kept": all(np.array_equal(net.params[n], v) for n, v in before["net"].items()),
    }}))
""")

LATENCY_BOUND = 0.5     # seconds; the epoch interrupted takes several seconds


def test_a_real_sigint_during_a_long_epoch_is_noticed_within_half_a_second():
    """SIGINT from a timer thread 0.3 s into an epoch of 50k rows (a 64-256-256-10 net:
    several seconds at -O1): KeyboardInterrupt within LATENCY_BOUND, the epoch undone.
    Runs in a child process, whose main thread is the one a signal interrupts."""
    script = SIGINT_SCRIPT.format(flags=FLAGS, rows=50_000, delay=0.3)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcome"] == "interrupted", result
    assert result["latency"] < LATENCY_BOUND, result
    assert result["state_kept"] and result["counters_kept"] and result["net_kept"], result
