"""dlc.tune: scales drawn uniformly in their own coordinate, boxes that nest around a known
optimum, successive halving that prunes exactly the worst, the same table on a process
pool and on a Dask cluster, resume, failures, constraints and every bad input.

The search loop is tested through ``run_search`` with synthetic trials (a known
objective in place of training); real trainers (a tiny 8-h-3 network, two widths, so
four C builds in all) test the rest."""
import csv
import json
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import dlc
from dlc import tune
from dlc.tune.search import Pool, run_search, rungs
from dlc.tune.trial import BuildResultError, Trial

P_MIN = 1e-3        # a correct sampler fails a KS test at this level one time in 1000


# ---------------------------------------------------------------- scales

def draws(scale, n=4000, seed=0):
    rng = np.random.default_rng(seed)
    return np.array([scale.sample(rng) for _ in range(n)])


@pytest.mark.parametrize("scale, coordinate, bounds", [
    (tune.Uniform(-2.0, 3.0), lambda x: x, (-2.0, 3.0)),
    (tune.LogUniform(1e-4, 1.0), np.log, (math.log(1e-4), 0.0)),
    (tune.OneMinusLogUniform(0.9, 0.999), lambda x: np.log(1 - x),
     (math.log(0.001), math.log(0.1))),
])
def test_continuous_scales_are_uniform_in_their_coordinate(scale, coordinate, bounds):
    x = draws(scale)
    assert x.min() >= scale.low and x.max() <= scale.high
    lo, hi = bounds
    assert stats.kstest(coordinate(x), stats.uniform(lo, hi - lo).cdf).pvalue > P_MIN


def test_log_uniform_is_not_uniform_in_the_value():
    """The KS test has the power to tell the scales apart."""
    x = draws(tune.LogUniform(1e-4, 1.0))
    assert stats.kstest(x, stats.uniform(1e-4, 1.0 - 1e-4).cdf).pvalue < 1e-12


def test_int_log_uniform_is_uniform_in_log():
    """k = floor(exp(u)), u uniform in [log low, log(high + 1)): spreading each k over its
    own [log k, log(k + 1)) gives back u's uniform distribution exactly."""
    scale = tune.IntLogUniform(16, 512)
    k = draws(scale)
    assert k.dtype.kind == "i" and k.min() >= 16 and k.max() <= 512
    jitter = np.random.default_rng(1).uniform(size=k.size)
    u = np.log(k) + jitter * (np.log(k + 1) - np.log(k))
    lo, hi = math.log(16), math.log(513)
    assert stats.kstest(u, stats.uniform(lo, hi - lo).cdf).pvalue > P_MIN
    assert stats.kstest(np.log(k), stats.uniform(lo, hi - lo).cdf).pvalue > P_MIN / 10


@pytest.mark.parametrize("scale, values", [
    (tune.Choice([64, 128, 256, 512]), [64, 128, 256, 512]),
    (tune.Choice(["relu", "tanh", "sigmoid"]), ["relu", "tanh", "sigmoid"]),
    (tune.IntUniform(1, 4), [1, 2, 3, 4]),
])
def test_discrete_scales_draw_every_value_equally_often(scale, values):
    x = list(draws(scale, n=3000))
    counts = [x.count(v) for v in values]
    assert sum(counts) == 3000
    assert stats.chisquare(counts).pvalue > P_MIN


def test_shrink_in_log_keeps_the_factor_and_nests():
    scale = tune.LogUniform(1e-4, 1.0)
    box = scale.shrunk([1e-3, 3e-3], 2e-3, 0.5)
    assert math.log(box.high / box.low) == pytest.approx(0.5 * math.log(1e4))
    assert scale.low <= box.low <= 1e-3 and 3e-3 <= box.high <= scale.high
    assert math.sqrt(box.low * box.high) == pytest.approx(math.sqrt(1e-3 * 3e-3))  # log centre
    edge = scale.shrunk([1.0], 1.0, 0.25)          # moved back inside the old box
    assert edge.high == pytest.approx(1.0) and edge.low == pytest.approx(10 ** -1)
    beta = tune.OneMinusLogUniform(0.9, 0.999).shrunk([0.99], 0.99, 0.5)
    assert math.log((1 - beta.low) / (1 - beta.high)) == pytest.approx(0.5 * math.log(100))
    assert beta.low < 0.99 < beta.high
    assert tune.Choice([1, 2, 3]).shrunk([3, 1], 3, 0.5).values == [1, 3]


# ---------------------------------------------------------------- synthetic trials

OPTIMUM = {"lr": 1e-2, "width": 64, "beta": 0.99, "keep": 0.7, "act": "tanh"}
SPACE = {"lr": tune.LogUniform(1e-5, 1.0), "width": tune.IntLogUniform(4, 1024),
         "beta": tune.OneMinusLogUniform(0.8, 0.9999), "keep": tune.Uniform(0.3, 1.0),
         "act": tune.Choice(["relu", "tanh", "sigmoid"])}


def objective(p) -> float:
    """Least, 0, at OPTIMUM."""
    return ((math.log10(p["lr"]) + 2) ** 2 + (math.log2(p["width"]) - 6) ** 2 / 4
            + (math.log10(1 - p["beta"]) + 2) ** 2 + 10 * (p["keep"] - 0.7) ** 2
            + (p["act"] != "tanh"))


def synthetic(shared, task, budget, state):
    """A trial whose dev error at epoch e is objective + 1/e; it may go on until
    task.epochs.  ``shared`` (when a list) records the trials it runs."""
    if isinstance(shared, list):
        shared.append((task.index, budget))
    trial = Trial(task.index, task.round, dict(task.params), task.seed)
    if task.params.get("explode", 0.0) > 0.8:
        raise KeyboardInterrupt
    base = objective(task.params) if "lr" in task.params else task.params["base"]
    trial.curve = [base + 1 / e for e in range(1, min(budget, task.epochs) + 1)]
    trial.dev_losses = list(trial.curve)
    trial.epochs = len(trial.curve)
    trial.dev_error = trial.dev_loss = min(trial.curve)
    trial.best_epoch = trial.epochs
    if trial.epochs >= task.epochs:
        trial.status = "ok"
        return trial, None
    return trial, "go on"


def synthetic_search(space, shared=None, threads=2, **options):
    options = dict(dict(trials=20, rounds=1, epochs=3, seed=0, halving=None, log=None,
                        resume=None, shrink=0.5, patience=None, constraints={},
                        progress=False), **options)
    with ThreadPoolExecutor(threads) as executor:
        return run_search(synthetic, Pool(executor), shared, space, **options)


def inside(value, outer) -> bool:
    if isinstance(outer, tune.Choice):
        return set(value.values) <= set(outer.values) if isinstance(value, tune.Choice) \
            else value in outer.values
    if isinstance(value, tune.Scale):
        return outer.low <= value.low and value.high <= outer.high
    return outer.low <= value <= outer.high


def test_coarse_to_fine_boxes_nest_around_the_optimum():
    result = synthetic_search(SPACE, trials=240, rounds=4, shrink=0.5)
    boxes = result.boxes
    assert len(boxes) == 4 and [t.round for t in result.trials] == \
        [r for r in range(4) for _ in range(60)]
    for r, box in enumerate(boxes):
        for name, scale in box.items():
            assert inside(OPTIMUM[name], scale), (r, name, scale)
            if r:
                assert inside(scale, boxes[r - 1][name]), (r, name)
        for t in result.trials:
            if t.round == r:
                assert all(inside(t.params[n], box[n]) for n in box), t
    a, b = boxes[0]["lr"].scale_bounds()
    c, d = boxes[3]["lr"].scale_bounds()
    assert d - c == pytest.approx(0.5 ** 3 * (b - a))
    assert boxes[3]["act"].values == ["tanh"]
    best = [min(t.dev_error for t in result.trials if t.round == r) for r in range(4)]
    assert best[3] < best[0]                    # the fine rounds find better points
    assert result.best.dev_error == min(t.dev_error for t in result.trials)


def test_halving_prunes_the_worst_at_each_rung():
    space = {"base": tune.Uniform(0.0, 1.0)}
    runs = []
    result = synthetic_search(space, shared=runs, trials=18, rounds=2, epochs=9,
                              halving=dict(min_epochs=1, factor=3))
    assert rungs(dict(min_epochs=1, factor=3), 9) == [1, 3, 9]
    for r in range(2):
        mine = sorted((t for t in result.trials if t.round == r), key=lambda t: t.params["base"])
        assert [t.status for t in mine] == ["ok"] + ["pruned"] * 8
        assert [t.epochs for t in mine] == [9, 3, 3] + [1] * 6
        assert mine[0].dev_error == pytest.approx(mine[0].params["base"] + 1 / 9)
    assert sorted(b for _, b in runs) == [1] * 18 + [3] * 6 + [9] * 2


def test_the_longest_trials_are_submitted_first_and_the_table_is_the_same():
    space = {"base": tune.Uniform(0.0, 1.0), "hidden": tune.IntLogUniform(1, 300),
             "batch_size": tune.Choice([1, 1000])}
    runs = []
    result = synthetic_search(space, shared=runs, threads=1, trials=12, epochs=2)
    hidden = {t.index: t.params["hidden"] for t in result.trials}
    submitted = [hidden[index] for index, _ in runs]
    assert submitted == sorted(hidden.values(), reverse=True) != list(hidden.values())
    assert result.table() == synthetic_search(space, threads=2, trials=12, epochs=2).table()


def test_resume_skips_finished_trials_and_gives_the_same_result(tmp_path):
    log = tmp_path / "search.jsonl"
    options = dict(trials=12, rounds=2, epochs=9, halving=dict(min_epochs=1, factor=3))
    space = {"base": tune.Uniform(0.0, 1.0)}
    full = synthetic_search(space, log=log, **options)
    lines = log.read_text().splitlines()
    assert len(lines) == 12 and sorted(json.loads(l)["index"] for l in lines) == list(range(12))
    kept = [json.loads(l) for l in lines[:7]]
    part = tmp_path / "part.jsonl"
    part.write_text("".join(json.dumps(k) + "\n" for k in kept) + '{"index": 3, "trunc')
    runs = []
    again = synthetic_search(space, shared=runs, log=part, resume=part, **options)
    assert again.table() == full.table()
    assert {i for i, _ in runs} == set(range(12)) - {k["index"] for k in kept}
    assert len(read_jsonl(part)) == 12
    with pytest.raises(ValueError, match="another search"):
        synthetic_search(space, resume=log, **dict(options, seed=1))


def read_jsonl(path):
    return [json.loads(l) for l in path.read_text().splitlines() if l.endswith("}")]


def test_ctrl_c_returns_the_finished_trials(tmp_path):
    space = {"base": tune.Uniform(0.0, 1.0),
             "explode": tune.Uniform(0.0, 1.0)}
    log = tmp_path / "s.jsonl"
    result = synthetic_search(space, threads=1, trials=40, log=log)
    first = next(i for i, t in enumerate(synthetic_points(space, 40)) if t["explode"] > 0.8)
    assert result.interrupted and [t.index for t in result.trials] == list(range(first))
    assert [r["index"] for r in read_jsonl(log)] == list(range(first))


def synthetic_points(space, n):
    from dlc.tune.space import sample_points
    return sample_points(space, n, np.random.default_rng([0, 0]))


def test_table_csv_and_plot(tmp_path):
    result = synthetic_search(SPACE, trials=30, rounds=3)
    rows = result.table()
    assert len(rows) == 30 and set(SPACE) <= set(rows[0])
    with open(result.to_csv(tmp_path / "t.csv")) as f:
        back = list(csv.DictReader(f))
    assert [float(r["dev_error"]) for r in back] == [r["dev_error"] for r in rows]
    assert [r["act"] for r in back] == [r["act"] for r in rows]
    path = tune.plot(result, tmp_path / "search.png")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- real trainers

def blobs(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.random.default_rng(7).standard_normal((3, 8)) * 2
    return (centres[y] + rng.standard_normal((n, 8))).astype(np.float32), y


TRAIN, DEV = blobs(150, 1), blobs(60, 2)
TINY = {"lr": tune.LogUniform(1e-3, 0.3), "hidden": tune.Choice([4, 8]),
        "batch_size": tune.Choice([16, 32])}


def tiny_build(p):
    net = dlc.Sequential([dlc.Input(8), dlc.Dense(p["hidden"]), dlc.ReLU(), dlc.Dense(3),
                          dlc.Softmax()], seed=p.seed)
    return dlc.compile(net, mode="train", optimizer=dlc.Adam(lr=p["lr"]))


def regression_build(p):
    """SGD on a linear model: lr 10 diverges to inf within a few epochs."""
    if p["lr"] == 0.5:
        raise ValueError("this build refuses lr 0.5")
    net = dlc.Sequential([dlc.Input(8), dlc.Dense(1)], seed=p.seed)
    return dlc.compile(net, mode="train", loss="mse", optimizer=dlc.SGD(lr=p["lr"]))


def timeless(table):
    return [{k: v for k, v in row.items() if k not in ("seconds", "latency_us")}
            for row in table]


@pytest.fixture(scope="module")
def local_result():
    return tune.search(tiny_build, TINY, train=TRAIN, dev=DEV, trials=6, rounds=2, epochs=4,
                       seed=3, halving=dict(min_epochs=2, factor=2), patience=3)


def test_local_search_trains_real_trainers(local_result):
    result = local_result
    assert [t.index for t in result.trials] == list(range(6))
    assert {t.status for t in result.trials} <= {"ok", "pruned"}
    assert sum(t.status == "pruned" for t in result.trials) == 2     # one per round of 3
    for t in result.trials:
        h = t.params["hidden"]
        assert t.param_bytes == 4 * (8 * h + h + 3 * h + 3)          # W1, b1, W2, b2
        assert t.workspace_bytes == dlc.inspect(tiny_net(h)).workspace_bytes
        assert t.latency_us > 0 and t.seconds > 0
        assert t.dev_error == min(t.curve) and len(t.curve) == t.epochs
    best = result.best
    trainer = result.best_trainer()                 # retrained here, to its best epoch
    metrics = trainer.evaluate(*DEV)
    assert 1 - metrics["accuracy"] == best.dev_error
    assert metrics["loss"] == pytest.approx(best.dev_loss, rel=1e-12)
    assert 1 - trainer.evaluate(*TRAIN)["accuracy"] == best.train_error


def test_early_stopping_ends_a_trial_patience_epochs_after_its_best():
    """lr 0.3 on 150 points: the dev error stops improving well within 60 epochs."""
    result = tune.search(tiny_build, {"lr": tune.Choice([0.3]), "hidden": tune.Choice([8])},
                         train=TRAIN, dev=DEV, trials=1, rounds=1, epochs=60, seed=0, patience=2,
                         executor=ThreadPoolExecutor(1), progress=False)
    t = result.best
    assert t.status == "ok" and t.epochs < 60, "no early stop: the test lost its premise"
    keys = list(zip(t.curve, t.dev_losses))
    assert t.best_epoch == t.epochs - 2                     # stopped 2 epochs after it
    assert all(k >= keys[t.best_epoch - 1] for k in keys[t.best_epoch:])
    assert all(k > keys[t.best_epoch - 1] for k in keys[:t.best_epoch - 1])  # first best
    assert (t.dev_error, t.dev_loss) == min(keys)


def tiny_net(h):
    return dlc.Sequential([dlc.Input(8), dlc.Dense(h), dlc.ReLU(), dlc.Dense(3), dlc.Softmax()])


def test_dask_cluster_gives_the_local_table(local_result):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        result = tune.search(tiny_build, TINY, train=TRAIN, dev=DEV, trials=6, rounds=2,
                             epochs=4, seed=3, halving=dict(min_epochs=2, factor=2),
                             patience=3, executor=client)
    assert timeless(result.table()) == timeless(local_result.table())
    assert result.boxes == local_result.boxes


def test_the_default_pool_forks_only_a_process_of_one_thread():
    code = ("import sys, threading, time; sys.path.insert(0, sys.argv[1]); import test_tune as t; "
            "from dlc.tune import Params; from dlc.tune.search import fork_is_safe; "
            "trainer = t.tiny_build(Params(dict(hidden=4, lr=0.1))); alone = fork_is_safe(trainer); trainer.threads = 2; "
            "threaded = fork_is_safe(trainer); trainer.threads = 1; "
            "threading.Thread(target=time.sleep, args=(2,)).start(); "
            "print(alone, threaded, fork_is_safe(trainer), fork_is_safe(None))")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)],
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(sys.platform.startswith("linux"))] + ["False"] * 3


def test_a_forked_default_pool_gives_the_local_table(local_result):
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import test_tune as t; "
            "from dlc import tune; search = sys.modules['dlc.tune.search']; methods = []; "
            "pool = search.local_pool; search.local_pool = lambda *a: methods.append(a[2]) "
            "or pool(*a); r = tune.search(t.tiny_build, t.TINY, train=t.TRAIN, dev=t.DEV, "
            "trials=6, rounds=2, epochs=4, seed=3, halving=dict(min_epochs=2, factor=2), "
            "patience=3); print(json.dumps([methods, t.timeless(r.table())]))")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)],
                         capture_output=True, text=True, check=True).stdout
    forked, table = json.loads(out)
    assert forked == [sys.platform.startswith("linux")]
    assert table == json.loads(json.dumps(timeless(local_result.table())))


def test_failures_are_recorded_and_the_search_goes_on(tmp_path):
    space = {"lr": tune.Choice([1e-3, 10.0, 0.5])}
    X, y = TRAIN
    Y = X @ np.linspace(-1, 1, 8).astype(np.float32)
    Xd, yd = DEV
    Yd = Xd @ np.linspace(-1, 1, 8).astype(np.float32)
    with ThreadPoolExecutor(2) as pool:
        result = tune.search(regression_build, space, train=(X, Y), dev=(Xd, Yd), trials=9,
                             rounds=1, epochs=30, executor=pool, log=tmp_path / "s.jsonl")
    assert len(result.trials) == 9
    for t in result.trials:
        lr = t.params["lr"]
        if lr == 1e-3:
            assert t.status == "ok" and t.epochs == 30 and t.error is None
        elif lr == 10.0:
            assert t.status == "failed" and "diverged" in t.error and t.epochs < 30
        else:
            assert t.status == "failed" and t.error == "ValueError: this build refuses lr 0.5"
            assert t.epochs == 0
    assert result.best.params["lr"] == 1e-3
    assert len(read_jsonl(tmp_path / "s.jsonl")) == 9


def test_constraints_fail_violators_before_training():
    stdout = sys.stdout         # builds in threads once left a swallowing sys.stdout behind
    with ThreadPoolExecutor(2) as pool:
        result = tune.search(tiny_build, TINY, train=TRAIN, dev=DEV, trials=6, rounds=1,
                             epochs=2, executor=pool, max_param_bytes=300)
        slow = tune.search(tiny_build, TINY, train=TRAIN, dev=DEV, trials=2, rounds=1,
                           epochs=2, executor=pool, max_latency_us=1e-3)
    assert {t.params["hidden"] for t in result.trials} == {4, 8}
    for t in result.trials:
        if t.params["hidden"] == 8:            # 396 parameter bytes
            assert t.status == "failed" and t.epochs == 0 and t.curve == []
            assert t.error == "param bytes 396 > max_param_bytes=300.0"
        else:                                  # 204
            assert t.status == "ok" and t.epochs == 2
    assert all(t.status == "failed" and "max_latency_us" in t.error and t.epochs == 0
               for t in slow.trials)
    assert sys.stdout is stdout


def test_optuna_objective_reports_every_epoch_and_prunes():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {"lr": tune.LogUniform(1e-3, 0.3), "hidden": tune.Choice([4, 8])}
    objective = tune.optuna_objective(tiny_build, TRAIN, DEV, epochs=3, space=space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=2)
    for trial in study.trials:
        p = trial.params
        trainer = tiny_build(tune.Params(p, seed=trial.number))
        errors = [1 - e for e in trainer.fit(*TRAIN, epochs=3, dev=DEV)["dev_accuracy"]]
        assert list(trial.intermediate_values.values()) == errors
        assert trial.value == min(errors)
    pruned = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    pruned.optimize(objective, n_trials=1)
    assert pruned.trials[0].state == optuna.trial.TrialState.PRUNED
    assert len(pruned.trials[0].intermediate_values) == 1


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("make, error, match", [
    (lambda: tune.Uniform(1.0, 1.0), ValueError, "low < high"),
    (lambda: tune.Uniform(2.0, 1.0), ValueError, "low < high"),
    (lambda: tune.LogUniform(0.0, 1.0), ValueError, "0 < low"),
    (lambda: tune.LogUniform(-1.0, 1.0), ValueError, "0 < low"),
    (lambda: tune.IntLogUniform(0, 8), ValueError, "0 < low"),
    (lambda: tune.IntUniform(3, 3), ValueError, "low < high"),
    (lambda: tune.IntUniform(1.5, 3), TypeError, "IntUniform low must be an integer"),
    (lambda: tune.Uniform("a", 1.0), TypeError, "Uniform low must be a real"),
    (lambda: tune.Uniform(0.0, float("nan")), ValueError, "finite"),
    (lambda: tune.OneMinusLogUniform(0.9, 1.0), ValueError, "OneMinusLogUniform high"),
    (lambda: tune.Choice([]), ValueError, "at least one value"),
    (lambda: tune.Choice([1, 1]), ValueError, "distinct"),
    (lambda: tune.Choice("abc"), TypeError, "list of values"),
])
def test_bad_scales(make, error, match):
    with pytest.raises(error, match=match):
        make()


def build_reading_a_missing_name(p):
    return p["units"]


def not_a_trainer(p):
    return dlc.Sequential([dlc.Input(8), dlc.Dense(3)])


def check_bad(error, match, build=tiny_build, space=TINY, executor="threads", **options):
    options = dict(dict(train=TRAIN, dev=DEV, trials=2, rounds=1, epochs=1), **options)
    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(error, match=match):
            tune.search(build, space, executor=pool if executor == "threads" else executor,
                        **options)


@pytest.mark.parametrize("options, error, match", [
    (dict(space={}), ValueError, "space is empty"),
    (dict(space=[("lr", tune.Uniform(0, 1))]), TypeError, "space must be a dict"),
    (dict(space={"lr": (0, 1)}), TypeError, r"space\['lr'\] must be one of"),
    (dict(space={"batch_size": tune.Choice([0.5])}), ValueError, "batch_size.*count"),
    (dict(trials=0), ValueError, "trials must be a positive integer"),
    (dict(trials=2, rounds=3), ValueError, "rounds must be an integer in"),
    (dict(epochs=1.0), TypeError, "epochs must be an integer"),
    (dict(shrink=0.0), ValueError, "shrink must be in"),
    (dict(shrink=1.5), ValueError, "shrink must be in"),
    (dict(patience=0), ValueError, "patience"),
    (dict(halving=3), TypeError, "halving must be None or dict"),
    (dict(halving=dict(min_epochs=1, eta=3)), TypeError, "unknown.*eta"),
    (dict(halving=dict(factor=3)), ValueError, "needs min_epochs"),
    (dict(halving=dict(min_epochs=1, factor=1)), ValueError, "halving factor"),
    (dict(max_param_bytes=-1), ValueError, "max_param_bytes"),
    (dict(train=TRAIN[0]), TypeError, "train must be a pair"),
    (dict(dev=(DEV[0], DEV[1][:3])), ValueError, "dev must be"),
    (dict(executor="cluster"), TypeError, "executor must be"),
    (dict(build=build_reading_a_missing_name), ValueError, "'units', which is not in the space"),
    (dict(build=not_a_trainer), BuildResultError, "must return a trainer"),
    (dict(build=lambda p: None, executor=None), TypeError, "build must be picklable"),
    (dict(build=3), TypeError, "build must be a function"),
])
def test_bad_searches(options, error, match):
    check_bad(error, match, **options)


def test_import_loads_no_executor_or_plotting_library():
    code = ("import sys, dlc, dlc.tune; print([m for m in ('dask', 'distributed', 'optuna', "
            "'matplotlib', 'torch', 'sklearn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
