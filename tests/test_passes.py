"""Inference passes: each checked for structure (nothing foldable left) and numbers (the
reference interpreter before vs after, float64, rtol 1e-12); the fold math on its own;
the memory plan for overlap and size."""
from dataclasses import dataclass

import numpy as np
import pytest

import dlc
from dlc import interpreter
from dlc.ir import BATCH, GraphBuilder, TensorType
from dlc.lower import lower
from dlc.ops import ACTIVATIONS, OPS, batchnorm, dense, normalize
from dlc.passes import INFERENCE_PIPELINE, run_pipeline
from dlc.passes.eliminate_dead import eliminate_dead
from dlc.passes.fold_batchnorm import fold_batchnorm, fold_batchnorm_params
from dlc.passes.fold_normalize import fold_normalize, fold_normalize_params
from dlc.passes.fuse_epilogue import fuse_epilogue
from dlc.passes.fuse_updates import fuse_updates
from dlc.passes.plan_memory import last_uses, plan_memory
from dlc.passes.remove_dropout import remove_dropout
from dlc.train import training_graph
from dlc.verify import VerifyError, verify
from helpers import assert_matches, random_model, randomize_batchnorm

SEEDS = range(16)
ELEMENTWISE = {"relu", "leaky_relu", "sigmoid", "tanh"}


def outputs(graph, X):
    return interpreter.run(graph, {next(iter(graph.inputs)): X})[0]


def assert_same_function(before, after, rng, batch=40):
    X = rng.normal(size=(batch, next(iter(before.inputs.values())).row_size)) * 2
    for got, expected in zip(outputs(after, X), outputs(before, X)):
        assert_matches(got, expected, np.float64, what="after vs before the pass",
                       scale=max(1.0, np.abs(expected).max()))


def random_graph(seed):
    rng = np.random.default_rng(seed)
    return lower(random_model(rng, "float64", max_width=60)), rng


def users(graph, ref):
    return graph.users().get(ref, []) + ([None] if ref in graph.outputs else [])


# ---------------------------------------------------------------- the fold math alone

def test_fold_batchnorm_params_equals_dense_then_batchnorm():
    rng = np.random.default_rng(0)
    W, b, X = rng.normal(size=(7, 5)), rng.normal(size=5), rng.normal(size=(30, 7))
    gamma, beta = rng.uniform(0.5, 2, 5), rng.normal(size=5)
    mean, var = rng.normal(size=5), rng.uniform(0.1, 3, 5)
    originals = [a.copy() for a in (W, b, gamma, beta, mean, var)]
    W2, b2 = fold_batchnorm_params(W, b, gamma, beta, mean, var, 1e-3)
    expected = batchnorm(dense(X, W, b), gamma, beta, mean, var, 1e-3)
    np.testing.assert_allclose(dense(X, W2, b2), expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(W2, W * gamma / np.sqrt(var + 1e-3), rtol=1e-15)
    for before, after in zip(originals, (W, b, gamma, beta, mean, var)):
        np.testing.assert_array_equal(before, after)       # inputs are never mutated


def test_fold_normalize_params_equals_normalize_then_dense():
    rng = np.random.default_rng(1)
    W, b, X = rng.normal(size=(6, 4)), rng.normal(size=4), rng.normal(size=(30, 6))
    mean, var = rng.normal(size=6), rng.uniform(0.1, 3, 6)
    W2, b2 = fold_normalize_params(W, b, mean, var, 1e-8)
    np.testing.assert_allclose(dense(X, W2, b2), dense(normalize(X, mean, var, 1e-8), W, b),
                               rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(W2, W / np.sqrt(var + 1e-8)[:, None], rtol=1e-15)


@pytest.mark.parametrize("fold", [fold_batchnorm_params, fold_normalize_params])
def test_fold_math_keeps_float32(fold):
    rng = np.random.default_rng(2)
    W, b = rng.normal(size=(3, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    stats = [np.ones(3, np.float32)] * (4 if fold is fold_batchnorm_params else 2)
    W2, b2 = fold(W, b, *stats, 1e-5)
    assert W2.dtype == b2.dtype == np.float32


# ---------------------------------------------------------------- each pass on random models

@pytest.mark.parametrize("seed", SEEDS)
def test_remove_dropout(seed):
    graph, rng = random_graph(seed)
    after = verify(remove_dropout(graph))
    assert not [n for n in after.nodes if n.op == "dropout"]
    assert len(after.nodes) == len([n for n in graph.nodes if n.op != "dropout"])
    assert_same_function(graph, after, rng)


@pytest.mark.parametrize("seed", SEEDS)
def test_fold_normalize(seed):
    graph, rng = random_graph(seed)
    after = verify(fold_normalize(graph))
    for node in after.nodes:
        if node.op == "normalize":
            assert [u.op if u else None for u in users(after, node.out)] != ["dense"]
    assert sum(n.op == "normalize" for n in after.nodes) == 0     # always first, before a Dense
    assert_same_function(graph, after, rng)


@pytest.mark.parametrize("seed", SEEDS)
def test_fold_batchnorm(seed):
    graph, rng = random_graph(seed)
    after = verify(fold_batchnorm(graph))
    producers = after.producers()
    assert not [n for n in after.nodes if n.op == "batchnorm"
                and producers.get(n.inputs[0]) is not None
                and producers[n.inputs[0]].op == "dense"]
    assert sum(n.op == "batchnorm" for n in after.nodes) == 0     # the DSL puts BN after Dense
    assert_same_function(graph, after, rng)


@pytest.mark.parametrize("seed", SEEDS)
def test_fuse_epilogue(seed):
    graph, rng = random_graph(seed)
    after = verify(fuse_epilogue(graph))
    producers = after.producers()
    for node in after.nodes:
        if node.op in ELEMENTWISE and node.inputs[0] in producers:
            made_by = producers[node.inputs[0]]
            assert made_by.op != "dense" or made_by.attrs["activation"] != "none"
    assert_same_function(graph, after, rng)


@pytest.mark.parametrize("seed", SEEDS)
def test_pipeline_leaves_only_dense_and_softmax(seed):
    graph, rng = random_graph(seed)
    after = run_pipeline(graph)
    n_dense = sum(n.op == "dense" for n in graph.nodes)
    assert [n.op for n in after.nodes if n.op != "softmax"] == ["dense"] * n_dense
    assert set(after.params) == {r for n in after.nodes for r in n.inputs if r.startswith("@")}
    assert_same_function(graph, after, rng)


def test_pipeline_replaces_constants_and_never_mutates_them():
    graph, _ = random_graph(3)
    snapshot = {ref: (p.value, p.value.copy()) for ref, p in graph.params.items()}
    run_pipeline(graph)
    for ref, (array, copy) in snapshot.items():
        assert graph.params[ref].value is array
        np.testing.assert_array_equal(array, copy)


def test_pipeline_verifies_after_every_pass():
    graph, _ = random_graph(0)
    broken = lambda g: g.replace(outputs=("%nowhere",))
    with pytest.raises(VerifyError, match="nowhere"):
        run_pipeline(graph, (remove_dropout, broken, eliminate_dead))


# ---------------------------------------------------------------- preconditions

def builder(n=6):
    b = GraphBuilder()
    return b, b.input("x", TensorType((BATCH, n), "f64"))


def add_dense(b, x, n_in, n_out, rng, **attrs):
    W = b.param(f"W{len(b.params)}", rng.normal(size=(n_in, n_out)))
    bias = b.param(f"b{len(b.params)}", rng.normal(size=n_out))
    return b.add("dense", x, W, bias, **attrs)


def add_batchnorm(b, x, n, rng):
    values = (rng.uniform(0.5, 2, n), rng.normal(size=n), rng.normal(size=n),
              rng.uniform(0.5, 2, n))
    params = [b.param(f"bn{len(b.params)}", v) for v in values]
    return b.add("batchnorm", x, *params, eps=1e-5)


def add_normalize(b, x, n, rng):
    mean, var = b.param(f"mean{len(b.params)}", rng.normal(size=n)), \
        b.param(f"var{len(b.params)}", rng.uniform(0.5, 2, n))
    return b.add("normalize", x, mean, var, eps=1e-8)


# ---------------------------------------------------------------- random graphs, refusals too

FOLD_SEEDS = range(60)


def random_fold_graph(seed):
    """A random inference chain built op by op (the DSL always puts a batch norm straight
    after a Dense and a Normalize first, so every fold there succeeds): batch norms and
    normalizes after anything, dense layers with and without an activation, and values
    given a second reader (a tanh, or the value itself as an extra graph output)."""
    rng = np.random.default_rng(seed)
    width = int(rng.integers(1, 7))
    b, x = builder(width)
    extra = []
    kind = None
    for _ in range(int(rng.integers(2, 8))):
        after_dense = rng.choice(["batchnorm", "relu", None]) if kind == "dense" else None
        kind = after_dense or rng.choice(["dense", "activated dense", "batchnorm", "normalize",
                                          "relu"])
        if kind in ("dense", "activated dense"):
            attrs = {"activation": str(rng.choice(["relu", "tanh"]))} if kind != "dense" else {}
            n_out = int(rng.integers(1, 7))
            x, width = add_dense(b, x, width, n_out, rng, **attrs), n_out
        elif kind == "batchnorm":
            x = add_batchnorm(b, x, width, rng)
        elif kind == "normalize":
            x = add_normalize(b, x, width, rng)
        else:
            x = b.add("relu", x)
        if rng.random() < 0.3:
            extra.append(x if rng.random() < 0.5 else b.add("tanh", x))
    return b.build(list(dict.fromkeys([x] + extra))), rng


def batchnorm_verdict(graph, bn) -> str:
    """Whether fold_batchnorm may fold ``bn`` into the node before it, and if not, why."""
    dense = graph.producers().get(bn.inputs[0])
    if dense is None or dense.op != "dense":
        return "not after a dense"
    if dense.attrs["activation"] != "none":
        return "after an activated dense"
    if users(graph, dense.out) != [bn]:
        return "the dense has another reader"
    return "folds"


def normalize_verdict(graph, norm) -> str:
    """Whether fold_normalize may fold ``norm`` into the node reading it, and if not, why."""
    readers = users(graph, norm.out)
    if len(readers) != 1:
        return "several readers"
    if readers[0] is None or readers[0].op != "dense":
        return "not read by a dense"
    return "folds"


def epilogue_verdict(graph, dense) -> str:
    """Whether fuse_epilogue may fuse the activation reading ``dense``, and if not, why."""
    if dense.attrs["activation"] != "none":
        return "already activated"
    readers = users(graph, dense.out)
    if len(readers) != 1:
        return "several readers"
    if readers[0] is None or readers[0].op not in ACTIVATIONS:
        return "not read by an activation"
    return "folds"


@dataclass(frozen=True)
class Fold:
    examined: str           # the op whose nodes the verdict judges
    absorbed: frozenset     # the ops whose nodes the pass removes
    verdict: object         # (graph, node) -> "folds" or the reason it may not
    refusals: frozenset


FOLDS = {
    fold_batchnorm: Fold("batchnorm", frozenset({"batchnorm"}), batchnorm_verdict, frozenset(
        {"not after a dense", "after an activated dense", "the dense has another reader"})),
    fold_normalize: Fold("normalize", frozenset({"normalize"}), normalize_verdict,
                         frozenset({"several readers", "not read by a dense"})),
    fuse_epilogue: Fold("dense", frozenset(ACTIVATIONS), epilogue_verdict, frozenset(
        {"already activated", "several readers", "not read by an activation"})),
}


def verdicts(graph, fold) -> list:
    rule = FOLDS[fold]
    return [rule.verdict(graph, node) for node in graph.nodes if node.op == rule.examined]


@pytest.mark.parametrize("fold", FOLDS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("seed", FOLD_SEEDS)
def test_folds_on_random_graphs_fold_what_they_may_and_leave_the_rest(fold, seed):
    """A graph with nothing foldable comes back as it is; otherwise nothing foldable is
    left, each fold removing one node; the function is the same."""
    graph, rng = random_fold_graph(seed)
    after = verify(fold(graph))
    if "folds" not in verdicts(graph, fold):
        assert after is graph
    assert "folds" not in verdicts(after, fold)
    absorbed = lambda g: sum(n.op in FOLDS[fold].absorbed for n in g.nodes)    # noqa: E731
    assert len(graph.nodes) - len(after.nodes) == absorbed(graph) - absorbed(after)
    assert_same_function(graph, after, rng)


@pytest.mark.parametrize("fold", FOLDS, ids=lambda f: f.__name__)
def test_random_fold_graphs_reach_every_refusal(fold):
    """The random graphs above meet every reason to refuse a fold, several times each,
    and graphs where nothing at all may fold."""
    found = [verdicts(random_fold_graph(seed)[0], fold) for seed in FOLD_SEEDS]
    counts = {}
    for verdict in (v for graph in found for v in graph):
        counts[verdict] = counts.get(verdict, 0) + 1
    assert set(counts) == FOLDS[fold].refusals | {"folds"} and min(counts.values()) >= 3, counts
    assert sum(bool(graph) and "folds" not in graph for graph in found) >= 3


def test_dense_with_another_user_is_not_folded():
    rng = np.random.default_rng(0)
    b, x = builder()
    d = add_dense(b, x, 6, 4, rng)
    bn = add_batchnorm(b, d, 4, rng)
    r = b.add("relu", d)
    for graph in (b.build([bn, r]), b.build([bn, d])):
        assert fold_batchnorm(graph) is graph
        after = run_pipeline(graph)
        assert sum(n.op == "batchnorm" for n in after.nodes) == 1
        assert_same_function(graph, after, rng)


def test_batchnorm_without_dense_before_stays_as_scale_and_shift():
    rng = np.random.default_rng(1)
    net = dlc.Sequential([dlc.Input(5), dlc.BatchNorm(), dlc.Dense(3), dlc.ReLU(), dlc.BatchNorm()],
                         dtype="float64")
    randomize_batchnorm(net, rng)
    graph = lower(net)
    after = run_pipeline(graph)
    assert [n.op for n in after.nodes] == ["batchnorm", "dense", "batchnorm"]
    assert after.nodes[1].attrs["activation"] == "relu"
    assert_same_function(graph, after, rng)
    X = rng.normal(size=(70, 5))
    assert_matches(dlc.compile(net).predict(X), dlc.reference(net).predict(X), np.float64)


def test_batchnorm_after_an_activated_dense_is_not_folded():
    rng = np.random.default_rng(2)
    b, x = builder()
    bn = add_batchnorm(b, add_dense(b, x, 6, 4, rng, activation="tanh"), 4, rng)
    graph = b.build([bn])
    assert fold_batchnorm(graph) is graph


def test_normalize_folds_only_into_a_sole_dense_reader():
    rng = np.random.default_rng(3)
    b, x = builder()
    mean, var = b.param("mean", rng.normal(size=6)), b.param("var", rng.uniform(0.5, 2, 6))
    n1 = b.add("normalize", x, mean, var, eps=1e-8)
    two_readers = b.build([add_dense(b, n1, 6, 3, rng), b.add("tanh", n1)])
    assert fold_normalize(two_readers) is two_readers
    b, x = builder()
    mean, var = b.param("mean", rng.normal(size=6)), b.param("var", rng.uniform(0.5, 2, 6))
    not_dense = b.build([b.add("relu", b.add("normalize", x, mean, var, eps=1e-8))])
    assert fold_normalize(not_dense) is not_dense
    net = dlc.Sequential([dlc.Input(6), dlc.Normalize(rng.normal(size=6), rng.uniform(.5, 2, 6)),
                          dlc.Dropout(0.5), dlc.Dense(3)], dtype="float64")
    graph = lower(net)
    after = run_pipeline(graph)           # dropout goes first, then the normalize folds
    assert [n.op for n in after.nodes] == ["dense"]
    assert_same_function(graph, after, rng)


def test_fuse_skips_shared_dense_outputs():
    rng = np.random.default_rng(4)
    b, x = builder()
    d = add_dense(b, x, 6, 4, rng)
    graph = b.build([b.add("relu", d), d])
    assert fuse_epilogue(graph) is graph


@pytest.mark.parametrize("activation", sorted(set(ACTIVATIONS) - {"none"}))
def test_every_activation_fuses(activation):
    rng = np.random.default_rng(5)
    b, x = builder()
    attrs = {"alpha": 0.2} if ACTIVATIONS[activation].attrs else {}
    graph = b.build([b.add(activation, add_dense(b, x, 6, 4, rng), **attrs)])
    after = verify(fuse_epilogue(graph))
    assert [(n.op, n.attrs["activation"]) for n in after.nodes] == [("dense", activation)]
    assert_same_function(graph, after, rng)


def test_eliminate_dead_drops_unused_nodes_and_params_but_keeps_updates():
    rng = np.random.default_rng(6)
    b, x = builder()
    live = add_dense(b, x, 6, 4, rng)
    add_dense(b, x, 6, 5, rng)                       # computed, never read
    b.param("unused", np.zeros(3))
    counter, step = b.param("counter", np.zeros(4)), b.param("step", np.ones(4))
    graph = b.build([live], updates=[(counter, step)])
    after = verify(eliminate_dead(graph))
    assert [n.out for n in after.nodes] == [live]
    assert set(after.params) == {"@W0", "@b1", counter, step}
    assert after.updates == graph.updates
    assert eliminate_dead(after) is after
    assert_same_function(graph, after, rng)


def test_compile_runs_the_pipeline_by_default():
    net = dlc.Sequential([dlc.Input(8), dlc.Dense(6), dlc.BatchNorm(), dlc.ReLU(),
                          dlc.Dropout(0.5), dlc.Dense(3)], dtype="float64")
    randomize_batchnorm(net, np.random.default_rng(7))
    assert [n.op for n in dlc.compile(net).graph.nodes] == ["dense", "dense"]
    assert len(dlc.compile(net, passes=()).graph.nodes) == 5
    assert INFERENCE_PIPELINE


# ---------------------------------------------------------------- memory planning

def check_plan(graph, plan, rows):
    """No two values alive at once overlap, except a result written in place over an
    operand that dies at that node, by a kernel that works in place."""
    index = {n.out: i for i, n in enumerate(graph.nodes)}
    last = last_uses(graph)
    nodes = graph.producers()
    spans = {}
    for ref, offset in plan.offsets.items():
        t = nodes[ref].type
        spans[ref] = (offset, offset + t.row_size * rows, index[ref], last.get(ref, index[ref]))
        assert offset + t.row_size * rows <= plan.size
    refs = sorted(spans)
    for i, u in enumerate(refs):
        for v in refs[i + 1:]:
            (a0, a1, ad, al), (b0, b1, bd, bl) = spans[u], spans[v]
            if a1 <= b0 or b1 <= a0 or al < bd or bl < ad:
                continue
            first, second = (u, v) if ad < bd else (v, u)
            node = nodes[second]
            assert (OPS[node.op].kernel.in_place and node.inputs[0] == first
                    and last[first] == index[second] and spans[first][:2] == spans[second][:2]), \
                f"{u} and {v} overlap while both alive"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("optimised", [False, True])
def test_memory_plan_never_overlaps_live_values(seed, optimised):
    graph, _ = random_graph(seed)
    graph = run_pipeline(graph) if optimised else graph
    for rows in (1, 64):
        check_plan(graph, plan_memory(graph, rows), rows)


def test_elementwise_chains_run_in_place():
    rng = np.random.default_rng(8)
    b, x = builder()
    h = add_dense(b, x, 6, 32, rng, activation="relu")
    for op in ("tanh", "sigmoid", "relu"):
        h = b.add(op, h)
    h = add_batchnorm(b, h, 32, rng)
    graph = b.build([add_dense(b, h, 32, 2, rng)])
    plan = plan_memory(graph, 1, exclude={graph.outputs[0]})
    assert len(set(plan.offsets.values())) == 1 and plan.size == 32
    check_plan(graph, plan, 1)


def test_in_place_code_equals_reference():
    rng = np.random.default_rng(9)
    net = dlc.Sequential([dlc.Input(10), dlc.BatchNorm(), dlc.Tanh(), dlc.Sigmoid(),
                          dlc.Normalize(rng.normal(size=10), rng.uniform(.5, 2, 10)),
                          dlc.LeakyReLU(0.2), dlc.Softmax()], dtype="float64")
    randomize_batchnorm(net, rng)
    X = rng.normal(size=(130, 10)) * 3
    assert_matches(dlc.compile(net).predict(X), dlc.reference(net).predict(X), np.float64)


def test_784_256_256_10_arena_holds_two_activations_per_row():
    net = dlc.Sequential([dlc.Input(784), dlc.Dense(256), dlc.BatchNorm(), dlc.ReLU(),
                          dlc.Dropout(0.8), dlc.Dense(256), dlc.BatchNorm(), dlc.ReLU(),
                          dlc.Dropout(0.8), dlc.Dense(10), dlc.Softmax()])
    report = dlc.inspect(net)
    assert report.arena_values_per_row <= 2 * 256
    assert report.arena_bytes == report.arena_values_per_row * report.tile_rows * 4


# ---------------------------------------------------------------- dlc.inspect

def test_inspect_reports_ir_and_summary():
    rng = np.random.default_rng(10)
    net = dlc.Sequential([dlc.Input(12), dlc.Normalize(rng.normal(size=12), np.ones(12)),
                          dlc.Dense(8), dlc.BatchNorm(), dlc.ReLU(), dlc.Dropout(0.5),
                          dlc.Dense(4), dlc.Softmax()], dtype="float32")
    report = dlc.inspect(net)
    assert report.before == str(lower(net))
    assert report.after == str(run_pipeline(lower(net)))
    assert report.ops_removed == {"batchnorm": 1, "dropout": 1, "normalize": 1, "relu": 1,
                                  "softmax": 1}
    assert report.param_bytes_before == sum(v.nbytes for v in net.params.values())
    assert report.param_bytes_after == 4 * (12 * 8 + 8 + 8 * 4 + 4)
    assert report.code_bytes is None
    text = str(report)
    assert str(lower(net)) in text and report.after in text
    assert ("ops: 7 -> 2 (removed 1 batchnorm, 1 dropout, 1 normalize, 1 relu, 1 softmax)"
            in text)
    assert f"parameter bytes: {report.param_bytes_before} -> {report.param_bytes_after}" in text
    with pytest.raises(TypeError, match="dlc.Model"):
        dlc.inspect(lower(net))


# ---------------------------------------------------------------- optimizer fusion

FUSED_OPTIMIZERS = {
    "momentum": (lambda: dlc.Momentum(lr=0.1, beta=0.8), "momentum_update"),
    "rmsprop": (lambda: dlc.RMSProp(lr=0.01, beta2=0.9), "rmsprop_update"),
    "adam": (lambda: dlc.Adam(lr=0.01, beta1=0.8, beta2=0.95), "adam_update"),
}


def fusion_net():
    return dlc.Sequential([dlc.Input(5), dlc.Dense(7), dlc.BatchNorm(), dlc.Tanh(),
                           dlc.Dense(3), dlc.Softmax()], dtype="float64", seed=2)


@pytest.mark.parametrize("optimizer", sorted(FUSED_OPTIMIZERS))
def test_fuse_updates_gives_the_unfused_numbers_in_the_interpreter(optimizer):
    """Three steps of the fused and the unfused training graph in the interpreter: the
    same parameters, moments and running statistics, bit for bit; one fused node per
    trainable parameter, printed in the IR text with all its results."""
    make, fused_op = FUSED_OPTIMIZERS[optimizer]
    unfused = training_graph(fusion_net(), "cross_entropy", make(), l2=0.1, fuse=False)
    fused = fuse_updates(unfused)
    assert verify(fused) is fused and fuse_updates(fused) is fused
    trainable = [ref for ref, p in fused.params.items() if p.trainable]
    nodes = [n for n in fused.nodes if n.op == fused_op]
    assert sorted(n.inputs[0] for n in nodes) == sorted(trainable)
    assert not {n.op for n in fused.nodes} & {"ewma_sq", "rmsprop_step", "adam_step"}
    text = str(fused)
    assert all(f"{', '.join(n.outs)} : {n.type} = {fused_op}(" in text for n in nodes)
    rng = np.random.default_rng(0)
    results = []
    for graph in (unfused, fused):
        params = {}
        for step in range(1, 4):
            X, Y = rng.normal(size=(6, 5)), np.eye(3)[rng.integers(0, 3, 6)]
            inputs = {"%x": X, "%y": Y, "%m": np.array(6.0), "%lr": np.array(0.1),
                      "%step": np.array(float(step)), "%seed": np.array(1.0)}
            _, updates = interpreter.run(graph, inputs, params)
            params.update(updates)
        results.append(params)
        rng = np.random.default_rng(0)
    assert results[0].keys() == results[1].keys() and len(results[0]) > len(trainable)
    for ref, value in results[0].items():
        np.testing.assert_array_equal(results[1][ref], value, err_msg=ref)


def test_fuse_updates_leaves_moments_read_elsewhere_alone():
    """A moment that another node reads too is not fused away."""
    unfused = training_graph(fusion_net(), "cross_entropy", dlc.Momentum(), fuse=False)
    ewma = next(n for n in unfused.nodes if n.op == "ewma" and ":v" in n.inputs[0])
    b = GraphBuilder.extending(unfused)
    extra = b.add("add", ewma.out, ewma.out)
    graph = verify(b.build([*unfused.outputs, extra], unfused.updates))
    fused = fuse_updates(graph)
    assert ewma.out in fused.producers() and fused.producers()[ewma.out].op == "ewma"


def test_verify_rejects_a_wrong_number_of_results():
    graph = training_graph(fusion_net(), "cross_entropy", dlc.Adam())
    node = next(n for n in graph.nodes if n.op == "adam_update")
    bad = [n if n is not node else n.__class__(n.out, n.op, n.inputs, n.attrs, n.type,
                                               n.layer, more=n.more[:1])
           for n in graph.nodes]
    with pytest.raises(VerifyError, match="2 results, the op has 3"):
        verify(graph.replace(nodes=bad))
