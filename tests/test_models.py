"""Whole networks: C equals the reference; the reference equals PyTorch; the two DSL forms agree."""
import numpy as np
import pytest
import torch

import dlc
from dlc.lower import lower
from helpers import assert_matches, random_model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", range(12))
def test_random_network_c_equals_reference(seed, dtype):
    rng = np.random.default_rng(seed)
    net = random_model(rng, dtype)
    X = rng.normal(size=(int(rng.choice([1, 7, 64, 1000])), net.n_inputs)) * 2
    expected = dlc.reference(net).predict(X)
    got = dlc.compile(net).predict(X)
    assert_matches(got, expected, dtype, scale=max(1.0, np.abs(expected).max()))


def example_net(dtype="float64", seed=0):
    rng = np.random.default_rng(42)
    mu, var = rng.normal(size=64), rng.uniform(0.5, 2, 64)
    return dlc.Sequential([
        dlc.Input(64),
        dlc.Normalize(mean=mu, var=var),
        dlc.Dense(32, init="he"), dlc.BatchNorm(), dlc.ReLU(), dlc.Dropout(keep_prob=0.8),
        dlc.Dense(16, init="xavier"), dlc.Tanh(),
        dlc.Dense(10), dlc.Softmax(),
    ], dtype=dtype, seed=seed)


def test_functional_and_sequential_lower_to_the_same_ir():
    rng = np.random.default_rng(42)
    mu, var = rng.normal(size=64), rng.uniform(0.5, 2, 64)
    x = dlc.Input(64)
    h = dlc.Normalize(mean=mu, var=var)(x)
    h = dlc.Dense(32, init="he")(h)
    h = dlc.BatchNorm()(h)
    h = dlc.ReLU()(h)
    h = dlc.Dropout(keep_prob=0.8)(h)
    h = dlc.Dense(16, init="xavier")(h)
    h = dlc.Tanh()(h)
    h = dlc.Dense(10)(h)
    y = dlc.Softmax()(h)
    functional = dlc.Model(x, y, dtype="float64", seed=0)
    sequential = example_net()
    assert str(lower(functional)) == str(lower(sequential))
    for name, value in sequential.get_params().items():
        np.testing.assert_array_equal(functional.params[name], value)


def test_ir_text_is_readable_and_stable():
    text = str(lower(example_net()))
    assert "%1 : f64[B,32] = dense(%0, @dense1.W, @dense1.b, activation=none, alpha=0.0)  # dense1" in text
    assert text == str(lower(example_net()))


def test_init_statistics():
    """He: variance 2/n_in, Xavier: 1/n_in, small: 0.01 x normal; biases zero; seeded."""
    n_in = 400
    net = dlc.Sequential([dlc.Input(n_in), dlc.Dense(500, init="he"), dlc.Dense(500, init="xavier"),
                          dlc.Dense(500, init="small")], dtype="float64", seed=3)
    assert abs(net.params["dense1.W"].var() / (2 / n_in) - 1) < 0.02
    assert abs(net.params["dense2.W"].var() / (1 / 500) - 1) < 0.02
    assert abs(net.params["dense3.W"].std() / 0.01 - 1) < 0.02
    assert not net.params["dense1.b"].any()
    again = dlc.Sequential([dlc.Input(n_in), dlc.Dense(500, init="he"), dlc.Dense(500, init="xavier"),
                            dlc.Dense(500, init="small")], dtype="float64", seed=3)
    np.testing.assert_array_equal(again.params["dense3.W"], net.params["dense3.W"])


def test_params_round_trip_and_compiled_library_uses_them():
    net = example_net()
    params = net.get_params()
    params["dense3.b"] = np.arange(10.0)
    net.set_params(params)
    np.testing.assert_array_equal(net.get_params()["dense3.b"], np.arange(10.0))
    X = np.random.default_rng(1).normal(size=(5, 64))
    assert_matches(dlc.compile(net).predict(X), dlc.reference(net).predict(X), np.float64)


def test_reference_equals_pytorch():
    """An independent judge for the forward pass: the same weights in torch.nn."""
    net = example_net()
    rng = np.random.default_rng(7)
    net.set_params({"batchnorm1.running_mean": rng.normal(size=32),
                    "batchnorm1.running_var": rng.uniform(0.5, 2, 32),
                    "batchnorm1.gamma": rng.uniform(0.5, 2, 32), "batchnorm1.beta": rng.normal(size=32)})
    p = {k: torch.tensor(v) for k, v in net.get_params().items()}
    bn = torch.nn.BatchNorm1d(32, eps=1e-5, dtype=torch.float64).eval()
    with torch.no_grad():
        bn.weight.copy_(p["batchnorm1.gamma"]); bn.bias.copy_(p["batchnorm1.beta"])
        bn.running_mean.copy_(p["batchnorm1.running_mean"]); bn.running_var.copy_(p["batchnorm1.running_var"])
    X = rng.normal(size=(50, 64))
    with torch.no_grad():
        h = (torch.tensor(X) - p["normalize1.mean"]) / torch.sqrt(p["normalize1.var"] + 1e-8)
        h = torch.relu(bn(h @ p["dense1.W"] + p["dense1.b"]))
        h = torch.tanh(h @ p["dense2.W"] + p["dense2.b"])
        y = torch.softmax(h @ p["dense3.W"] + p["dense3.b"], dim=1).numpy()
    np.testing.assert_allclose(dlc.reference(net).predict(X), y, rtol=1e-12, atol=1e-15)


def test_binary_classifier_with_sigmoid_output():
    net = dlc.Sequential([dlc.Input(5), dlc.Dense(8), dlc.ReLU(), dlc.Dense(1), dlc.Sigmoid()],
                         dtype="float32", seed=1)
    X = np.random.default_rng(0).normal(size=(33, 5)) * 10
    got = dlc.compile(net).predict(X)
    assert got.shape == (33, 1) and ((got >= 0) & (got <= 1)).all()
    assert_matches(got, dlc.reference(net).predict(X), np.float32)


def test_one_library_serves_every_batch_size():
    net = example_net("float32")
    lib, ref = dlc.compile(net), dlc.reference(net)
    X = np.random.default_rng(2).normal(size=(300, 64)).astype(np.float32)
    full = lib.predict(X)
    for batch in (1, 63, 64, 65, 129):
        assert_matches(lib.predict(X[:batch]), full[:batch], np.float32)
    assert_matches(full, ref.predict(X), np.float32)


def test_predict_while_another_thread_changes_the_thread_count():
    """predict is one C call holding an entry and the workspaces sized for it: a thread
    count changed under running predicts (more blocks, new workspaces) never pairs the new
    entry with an old, smaller workspace."""
    import threading
    net = example_net("float32")
    lib, ref = dlc.compile(net), dlc.reference(net)
    rng = np.random.default_rng(4)
    batches = [rng.normal(size=(n, 64)).astype(np.float32) for n in (1, 17, 300)]
    expected = [ref.predict(X) for X in batches]
    stop, failures = threading.Event(), []

    def predict_all():
        while not stop.is_set():
            for X, want in zip(batches, expected):
                got = lib.predict(X)
                if not np.allclose(got, want, rtol=1e-4, atol=1e-6):
                    failures.append(np.abs(got - want).max())
    workers = [threading.Thread(target=predict_all) for _ in range(3)]
    for worker in workers:
        worker.start()
    for threads in (2, 1, 4, 1, 3) * 4:
        lib.threads = threads
    stop.set()
    for worker in workers:
        worker.join()
    assert failures == []
    assert lib.threads == 3 and lib.predict(batches[0]).shape == (1, 10)
    assert_matches(lib.predict(batches[2].tolist()), expected[2], np.float32)


def test_concurrent_predicts_from_python_threads():
    """Each Python thread gets its own workspace; batches of 16 rows and more run with the
    GIL released, so calls really overlap."""
    from concurrent.futures import ThreadPoolExecutor
    net = example_net("float32")
    lib, ref = dlc.compile(net, threads=2), dlc.reference(net)
    rng = np.random.default_rng(3)
    batches = [rng.normal(size=(n, 64)).astype(np.float32) for n in (1, 15, 16, 200) * 6]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda X: [lib.predict(X) for _ in range(20)], batches))
    for X, runs in zip(batches, results):
        expected = ref.predict(X)
        for got in runs:
            assert_matches(got, expected, np.float32)
