"""Shared test helpers: the one C-versus-reference comparison and random models."""
import numpy as np

import dlc

# The compilers every strict (-Werror) build of generated C is tested with.
COMPILERS = ("gcc", "clang")
# Tolerances for C against the NumPy reference, by dtype.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
ATOL = {np.float32: 1e-6, np.float64: 1e-13}


def assert_matches(actual, expected, dtype, what="C vs reference", scale=1.0):
    """assert_allclose with the dtype's tolerance; the message reports the max difference."""
    dtype = np.dtype(dtype).type
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    diff = np.max(np.abs(actual - expected)) if actual.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=ATOL[dtype] * scale,
                               err_msg=f"{what}: max abs difference {diff:.3g}")


def random_model(rng, dtype="float64", max_depth=6, max_width=300):
    """A random Sequential: depth 1-6, widths 1-300, random activations, BN and dropout."""
    n_in = int(rng.integers(1, max_width + 1))
    layers = [dlc.Input(n_in)]
    if rng.random() < 0.3:
        layers.append(dlc.Normalize(mean=rng.normal(size=n_in), var=rng.uniform(0.1, 4, n_in)))
    depth = int(rng.integers(1, max_depth + 1))
    for i in range(depth):
        layers.append(dlc.Dense(int(rng.integers(1, max_width + 1)),
                                init=str(rng.choice(["he", "xavier", "small"]))))
        if rng.random() < 0.4:
            layers.append(dlc.BatchNorm(eps=float(rng.choice([1e-5, 1e-3]))))
        if i < depth - 1 or rng.random() < 0.5:
            layers.append(random_activation(rng))
        if rng.random() < 0.3:
            layers.append(dlc.Dropout(keep_prob=float(rng.uniform(0.5, 1.0))))
    if rng.random() < 0.5:
        layers.append(dlc.Softmax())
    net = dlc.Sequential(layers, dtype=dtype, seed=int(rng.integers(1 << 30)))
    randomize_batchnorm(net, rng)
    return net


def random_activation(rng):
    kind = rng.choice(["relu", "leaky", "sigmoid", "tanh"])
    if kind == "leaky":
        return dlc.LeakyReLU(alpha=float(rng.uniform(0.01, 0.3)))
    return {"relu": dlc.ReLU, "sigmoid": dlc.Sigmoid, "tanh": dlc.Tanh}[kind]()


def randomize_batchnorm(net, rng):
    """Non-trivial running statistics and affine parameters, as after training."""
    updates = {}
    for name, value in net.params.items():
        if name.endswith(("running_mean", "beta")):
            updates[name] = rng.normal(size=value.shape)
        elif name.endswith(("running_var", "gamma")):
            updates[name] = rng.uniform(0.5, 2.0, size=value.shape)
    net.set_params(updates)
