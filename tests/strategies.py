"""Hypothesis strategies for random models, inputs, training configurations and export
settings, built on the public API only (dlc.*), so they outlive refactors of the
compiler's insides.

Widths over-represent the edges of the vector widths (multiples of 8 and 16, one less
and one more), where the kernels switch between full vectors, remainders and scalars.
Weights and inputs come from a NumPy generator seeded by a drawn integer: cheap to
draw, and a counterexample shrinks to a small seed.
"""
import numpy as np
from hypothesis import strategies as st

import dlc
from helpers import randomize_batchnorm

MAX_WIDTH = 512
EDGE_WIDTHS = sorted({w for step in (8, 16) for k in range(1, MAX_WIDTH // step + 1)
                      for w in (step * k - 1, step * k, step * k + 1) if 1 <= w <= MAX_WIDTH})
ACTIVATIONS = ("relu", "leaky_relu", "elu", "silu", "sigmoid", "tanh")
INITS = ("he", "xavier", "small")
DTYPES = ("float32", "float64")


def widths(max_width: int = MAX_WIDTH):
    """1..max_width, with the vector edges and the small widths drawn far more often
    than their share."""
    edges = [w for w in EDGE_WIDTHS if w <= max_width]
    return st.one_of(st.sampled_from(edges), st.integers(1, min(max_width, 20)),
                     st.integers(1, max_width))


def activation(kind: str, alpha: float = 0.01):
    if kind == "leaky_relu":
        return dlc.LeakyReLU(alpha=alpha)
    if kind == "elu":
        return dlc.ELU(alpha=10 * alpha)
    return {"relu": dlc.ReLU, "silu": dlc.SiLU, "sigmoid": dlc.Sigmoid, "tanh": dlc.Tanh}[kind]()


@st.composite
def layer_stacks(draw, max_depth: int = 8, max_width: int = MAX_WIDTH, dropout=True,
                 batchnorm=True, bn_after_linear=True, softmax=True):
    """(input width, [layer description, ...]): 1..max_depth dense layers, each followed
    by any of batch norm, an activation, dropout, normalize, a residual block
    (h + act(dense(h))) and a concatenation with the input; a leading normalize or
    batch norm; a softmax in the middle or at the end.  A description is a tuple (kind,
    options) so that a trainer and its reference get fresh layers of the same model.
    ``bn_after_linear=False`` puts batch norm only after a curved activation (see
    training_configs)."""
    n_in = draw(widths(max_width))
    layers, width = [], n_in
    if draw(st.booleans()):
        layers.append(("normalize", {}))
    if batchnorm and bn_after_linear and draw(st.integers(0, 5)) == 0:
        layers.append(("batchnorm", {}))
    depth = draw(st.integers(1, max_depth))
    for i in range(depth):
        width = draw(widths(max_width))
        layers.append(("dense", {"units": width, "init": draw(st.sampled_from(INITS))}))
        curved = False
        if batchnorm and bn_after_linear and draw(st.integers(0, 3)) == 0:
            layers.append(("batchnorm", {}))
        if i < depth - 1 or draw(st.booleans()):
            kind = draw(st.sampled_from(ACTIVATIONS))
            layers.append((kind, {"alpha": draw(st.sampled_from([0.01, 0.1, 0.3]))}))
            curved = kind in ("elu", "silu", "sigmoid", "tanh")
        if batchnorm and curved and draw(st.integers(0, 3)) == 0:
            layers.append(("batchnorm", {}))
        if dropout and draw(st.integers(0, 3)) == 0:
            layers.append(("dropout", {"keep_prob": draw(st.sampled_from([0.5, 0.7, 0.9, 1.0]))}))
        if draw(st.integers(0, 7)) == 0:
            layers.append(("normalize", {}))
        if softmax and i < depth - 1 and draw(st.integers(0, 9)) == 0:
            layers.append(("softmax", {}))
        if draw(st.integers(0, 4)) == 0:        # DAGs: h + act(dense(h)), [h, input]
            layers.append(("residual", {"activation": draw(st.sampled_from(ACTIVATIONS)),
                                        "init": draw(st.sampled_from(INITS))}))
        if draw(st.integers(0, 5)) == 0:
            layers.append(("concat_input", {}))
    if softmax and draw(st.booleans()):
        layers.append(("softmax", {}))
    return n_in, layers


def build_model(n_in: int, layers: list, dtype: str, seed: int) -> dlc.Model:
    """The model the descriptions of ``layer_stacks`` describe, with every normalize's
    statistics and every batch norm's parameters and running statistics drawn from
    ``seed`` (as after training)."""
    rng = np.random.default_rng(seed)
    x = dlc.Input(n_in)
    t, width = x, n_in
    for kind, options in layers:
        made = []
        if kind == "residual":      # t + act(dense(t)): t is read by two layers
            branch = activation(options["activation"])(
                dlc.Dense(width, init=options["init"])(t))
            t = dlc.Add()([t, branch])
            continue
        if kind == "concat_input":
            t = dlc.Concatenate()([t, x])
            width += n_in
            continue
        if kind == "dense":
            made.append(dlc.Dense(options["units"], init=options["init"]))
            width = options["units"]
        elif kind == "normalize":
            made.append(dlc.Normalize(mean=rng.normal(size=width),
                                      var=rng.uniform(0.2, 4.0, width)))
        elif kind == "batchnorm":
            made.append(dlc.BatchNorm(eps=float(rng.choice([1e-5, 1e-3])),
                                      momentum=float(rng.choice([0.0, 0.5, 0.9]))))
        elif kind == "dropout":
            made.append(dlc.Dropout(keep_prob=options["keep_prob"]))
        elif kind == "softmax":
            made.append(dlc.Softmax())
        else:
            made.append(activation(kind, options.get("alpha", 0.01)))
        t = made[0](t)
    net = dlc.Model(x, t, dtype=dtype, seed=seed % (1 << 31))
    randomize_batchnorm(net, rng)
    return net


@st.composite
def models(draw, dtype=None, **stack_options):
    """A random dlc model (see layer_stacks), float32 or float64."""
    n_in, layers = draw(layer_stacks(**stack_options))
    dtype = dtype or draw(st.sampled_from(DTYPES))
    return build_model(n_in, layers, dtype, draw(st.integers(0, 1 << 32)))


@st.composite
def batches(draw, n_inputs: int, dtype, max_rows: int = 1000):
    """Inputs of 1..max_rows rows (1 and the vector edges often), of a random scale."""
    rows = draw(st.one_of(st.sampled_from([1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65]),
                          st.integers(1, max_rows)).filter(lambda r: r <= max_rows))
    scale = draw(st.sampled_from([0.1, 1.0, 3.0, 10.0]))
    rng = np.random.default_rng(draw(st.integers(0, 1 << 32)))
    return (rng.normal(size=(rows, n_inputs)) * scale).astype(dtype)


# ---------------------------------------------------------------- training

LOSSES = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "mse": None}


def schedules():
    return st.one_of(
        st.none(),
        st.builds(dlc.InverseTimeDecay, decay_rate=st.sampled_from([0.5, 1.0]),
                  interval=st.integers(1, 2)),
        st.builds(dlc.ExponentialDecay, k=st.sampled_from([0.5, 0.9])),
        st.builds(dlc.SqrtDecay, k=st.sampled_from([0.5, 1.0])),
        st.builds(dlc.StepDecay, factor=st.sampled_from([0.5, 0.1]), every=st.integers(1, 2)))


def optimizers(schedule, adaptive: bool = True):
    plain = [
        st.builds(dlc.SGD, lr=st.sampled_from([0.01, 0.1]), schedule=st.just(schedule)),
        st.builds(dlc.Momentum, lr=st.sampled_from([0.01, 0.1]),
                  beta=st.sampled_from([0.5, 0.9]), schedule=st.just(schedule))]
    if not adaptive:
        return st.one_of(plain)
    return st.one_of(
        *plain,
        st.builds(dlc.RMSProp, lr=st.sampled_from([0.001, 0.01]),
                  beta2=st.sampled_from([0.9, 0.999]), schedule=st.just(schedule)),
        st.builds(dlc.Adam, lr=st.sampled_from([0.001, 0.01]),
                  beta1=st.sampled_from([0.8, 0.9]), beta2=st.sampled_from([0.9, 0.999]),
                  schedule=st.just(schedule)))


@st.composite
def training_configs(draw, max_width: int = 40, max_depth: int = 4, max_rows: int = 60):
    """A whole training run: the model's layers, dtype, loss, optimizer and schedule,
    L1/L2, data, batch size (often leaving a partial last batch), epochs, seed and the
    thread count.  Batch norm follows only a curved activation: right after a dense
    layer (or another layer linear in the batch) the bias before it has an exactly zero
    gradient, which rounding turns into noise that RMSProp and Adam blow up to a full
    step, a difference between two correct programs.  For the same reason RMSProp and
    Adam train in float64 only: a float32 gradient that cancels to rounding noise (batch
    norm over two rows makes one, as the fuzzer found) becomes a whole step of either
    sign, while the steps of SGD and Momentum keep rounding noise as small as it is."""
    loss = draw(st.sampled_from(sorted(LOSSES)))
    n_in, layers = draw(layer_stacks(max_depth=max_depth, max_width=max_width,
                                     bn_after_linear=False, softmax=False))
    n_out = draw(st.integers(2 if loss == "cross_entropy" else 1, 6))
    layers.append(("dense", {"units": n_out, "init": draw(st.sampled_from(INITS))}))
    if LOSSES[loss]:
        layers.append((LOSSES[loss], {}))
    elif draw(st.booleans()):
        layers.append((draw(st.sampled_from(["sigmoid", "tanh", "softmax"])), {}))
    dtype = draw(st.sampled_from(DTYPES))
    optimizer = draw(optimizers(draw(schedules()), adaptive=dtype == "float64"))
    rows = draw(st.integers(1, max_rows))
    batch_size = draw(st.one_of(st.integers(1, rows), st.just(rows)))
    data_seed = draw(st.integers(0, 1 << 32))
    l2 = draw(st.sampled_from([0.0, 0.0, 0.01, 0.3]))
    l1 = draw(st.sampled_from([0.0, 0.0, 0.01]))
    return dict(
        n_in=n_in, layers=layers, dtype=dtype, model_seed=draw(st.integers(0, 1 << 32)),
        loss=loss, optimizer=optimizer, l2=l2, l1=l1,
        data=training_data(loss, n_in, n_out, rows, data_seed, dtype),
        batch_size=batch_size, epochs=draw(st.integers(1, 3)),
        seed=draw(st.integers(0, (1 << 24) - 1)), threads=draw(st.integers(1, 3)))


def training_data(loss: str, n_in: int, n_out: int, rows: int, seed: int, dtype):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, n_in)).astype(dtype)
    if loss == "cross_entropy":
        return X, rng.integers(0, n_out, rows)
    if loss == "binary_cross_entropy":
        return X, rng.integers(0, 2, (rows, n_out)).astype(dtype)
    return X, rng.uniform(-1, 1, (rows, n_out)).astype(dtype)


def config_model(config: dict) -> dlc.Model:
    """A fresh model of a training configuration (each trainer gets its own)."""
    return build_model(config["n_in"], config["layers"], config["dtype"], config["model_seed"])


def train_options(config: dict) -> dict:
    return dict(loss=config["loss"], optimizer=config["optimizer"], l2=config["l2"],
                l1=config["l1"])


# ---------------------------------------------------------------- export

def export_settings():
    """Keyword arguments of dlc.export_c besides the model and directory."""
    return st.fixed_dictionaries({"weights": st.sampled_from(["embedded", "file"]),
                                  "tile_rows": st.sampled_from([1, 3, 8, 16, 64])})


# ---------------------------------------------------------------- budgets

def examples(share: float) -> int:
    """``share`` of the loaded profile's max_examples (at least 1): the ci profile
    keeps the builds few, --hypothesis-profile=long multiplies every test alike."""
    from hypothesis import settings
    return max(1, round(settings.default.max_examples * share))
