"""Runs predict and fit of the test models on a thread with a small stack; a child process
of tests/test_stack.py, so that a stack overflow fails the test instead of killing pytest.

    python small_stack.py STACK_KIB MODEL

MODEL names one of test_export.MODELS.  Each call on the small stack must give the same
bits as on the main thread, for 1, 2 and 3 threads."""
import sys
import threading

import numpy as np

import dlc
from test_export import MODELS

ROWS = 300          # enough rows for the packed matrix multiply
THREADS = (1, 2, 3)


def on_small_stack(kib, function, *args):
    """function(*args) on a new thread with a stack of ``kib`` KiB."""
    result, old = [], threading.stack_size(kib * 1024)
    try:
        thread = threading.Thread(target=lambda: result.append(function(*args)))
        thread.start()
        thread.join()
    finally:
        threading.stack_size(old)
    assert result, "the call on the small stack raised"
    return result[0]


def loss_for(net):
    """Cross-entropy for a network ending in softmax, else the squared error; None when it
    has no parameters to train."""
    if not net.params:
        return None
    return "cross_entropy" if isinstance(net.layers[-1], dlc.Softmax) else "mse"


def fit(net, loss, threads, X, Y):
    """(losses, final state) of two epochs in mini-batches that take the packed path."""
    trainer = dlc.compile(net, mode="train", loss=loss, optimizer=dlc.Adam(lr=0.01),
                          threads=threads)
    history = trainer.fit(X, Y, epochs=2, batch_size=100, seed=1, progress=False)
    return np.array(history["loss"]), trainer.state.copy()


def check_predict(kib, name, dtype, rng):
    net = MODELS[name](dtype)
    X = (rng.normal(size=(ROWS, net.n_inputs)) * 2).astype(dtype)
    model = dlc.compile(net)
    for threads in THREADS:
        model.threads = threads
        expected = model.predict(X)
        got = on_small_stack(kib, model.predict, X)
        np.testing.assert_array_equal(got, expected, err_msg=f"{name} {dtype} predict")


def check_fit(kib, name, dtype, rng):
    loss = loss_for(MODELS[name](dtype))
    if loss is None:
        return
    n_inputs, n_outputs = MODELS[name](dtype).n_inputs, MODELS[name](dtype).n_outputs
    X = rng.normal(size=(ROWS, n_inputs)).astype(dtype)
    Y = (rng.integers(n_outputs, size=ROWS) if loss == "cross_entropy"
         else rng.normal(size=(ROWS, n_outputs)))
    for threads in THREADS:
        expected = fit(MODELS[name](dtype), loss, threads, X, Y)
        got = on_small_stack(kib, fit, MODELS[name](dtype), loss, threads, X, Y)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} {dtype} fit")


def main(kib, name):
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):
        check_predict(kib, name, dtype, rng)
    check_fit(kib, name, "float32", rng)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
