"""dlc.save / dlc.load: round trips, bit-identical resume, and refusal of bad files."""
import os

import numpy as np
import pytest

import dlc
from dlc.build import DEFAULT_FLAGS
from dlc.checkpoint import HEADER, CheckpointError, pack, unpack
from dlc.lower import lower
from helpers import randomize_batchnorm


def small_net(dtype="float64", seed=0):
    rng = np.random.default_rng(7)
    net = dlc.Sequential([
        dlc.Input(6),
        dlc.Normalize(mean=rng.normal(size=6), var=rng.uniform(0.5, 2, 6), name="norm"),
        dlc.Dense(9, init="xavier"), dlc.BatchNorm(eps=1e-3, momentum=0.8), dlc.LeakyReLU(0.1),
        dlc.Dropout(keep_prob=0.7), dlc.Dense(5, init="small", name="fc.out"), dlc.Tanh(),
        dlc.Dense(3), dlc.Softmax(),
    ], dtype=dtype, seed=seed)
    randomize_batchnorm(net, rng)
    return net


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_model_round_trip_is_exact(tmp_path, dtype):
    net = small_net(dtype)
    path = tmp_path / "model.dlc"
    dlc.save(net, path)
    loaded = dlc.load(path)
    assert isinstance(loaded, dlc.Model)
    for mode in ("inference", "train"):
        assert str(lower(loaded, mode)) == str(lower(net, mode))
    assert sorted(loaded.params) == sorted(net.params)
    for name, value in net.params.items():
        assert loaded.params[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded.params[name], value, err_msg=name)
    norm = loaded.layers[0]
    np.testing.assert_array_equal(norm.mean, net.layers[0].mean)
    assert norm.eps == net.layers[0].eps and loaded.seed == net.seed
    X = np.random.default_rng(0).normal(size=(20, 6))
    np.testing.assert_array_equal(dlc.compile(loaded).predict(X), dlc.compile(net).predict(X))
    assert [p for p in os.listdir(tmp_path)] == ["model.dlc"]   # no temporary file left


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "model.dlc"
    dlc.save(small_net(seed=1), path)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        dlc.save(small_net(seed=2), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.dlc"]


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.dlc"
    dlc.save(small_net(), path)
    return path


@pytest.mark.parametrize("keep", [0, 5, HEADER.size - 1, HEADER.size, HEADER.size + 100, -1])
def test_truncated_file_is_rejected(saved, keep):
    blob = saved.read_bytes()
    saved.write_bytes(blob[:keep] if keep >= 0 else blob[:-1])
    with pytest.raises(CheckpointError, match="truncated|not a dlc checkpoint"):
        dlc.load(saved)


@pytest.mark.parametrize("where", [HEADER.size, HEADER.size + 500, -10])
def test_altered_byte_is_rejected(saved, where):
    blob = bytearray(saved.read_bytes())
    blob[where] ^= 0x01
    saved.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="corrupt.*checksum"):
        dlc.load(saved)


def test_foreign_and_future_files_are_rejected(saved, tmp_path):
    npz = tmp_path / "weights.npz"
    np.savez(npz, W=np.ones(3))
    with pytest.raises(CheckpointError, match="not a dlc checkpoint"):
        dlc.load(npz)
    blob = bytearray(saved.read_bytes())
    blob[8:12] = (99).to_bytes(4, "big")
    saved.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="version 99 is not supported"):
        dlc.load(saved)


def test_save_refuses_other_objects(tmp_path):
    with pytest.raises(TypeError, match="dlc.Model or a trainer"):
        dlc.save({"W": np.ones(2)}, tmp_path / "x.dlc")


def test_a_well_formed_file_naming_code_outside_dlc_is_refused(saved):
    """The checksum only proves integrity: classes are looked up in dlc, nowhere else."""
    manifest, arrays = unpack(saved.read_bytes(), saved)
    manifest["model"]["layers"][1]["module"] = "os"
    manifest["model"]["layers"][1]["type"] = "system"
    saved.write_bytes(pack(manifest, arrays))
    with pytest.raises(CheckpointError, match="outside dlc"):
        dlc.load(saved)


def digits_subset(n=400):
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    return X[:n], y[:n]


def digits_trainer(dtype, optimizer, flags=("-O1",)):
    X, _ = digits_subset()
    net = dlc.Sequential([dlc.Input(64), dlc.data.fit_normalize(X),
                          dlc.Dense(24), dlc.BatchNorm(), dlc.ReLU(), dlc.Dropout(keep_prob=0.8),
                          dlc.Dense(10), dlc.Softmax()], dtype=dtype, seed=3)
    return dlc.compile(net, mode="train", loss="cross_entropy", optimizer=optimizer, l2=1e-3,
                       flags=flags)


def assert_same_state(a, b, where="state"):
    """Nested dicts of arrays and scalars, equal bit for bit."""
    if isinstance(a, dict):
        assert sorted(a) == sorted(b), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == np.asarray(b).dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert type(a) is type(b) and a == b, where


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", [
    lambda: dlc.Adam(lr=3e-3),
    lambda: dlc.Momentum(lr=0.05, beta=0.9, schedule=dlc.optim.InverseTimeDecay(0.5)),
], ids=["adam", "momentum-decay"])
def test_resumed_training_is_bit_identical(tmp_path, dtype, optimizer):
    check_resume(tmp_path, lambda: digits_trainer(dtype, optimizer()))


def test_resumed_training_is_bit_identical_with_the_default_native_flags(tmp_path):
    """-O3 -march=native (FMA, OpenMP): the checkpoint keeps the flags it was built with."""
    check_resume(tmp_path, lambda: digits_trainer("float32", dlc.Adam(lr=3e-3),
                                                  flags=DEFAULT_FLAGS))


def check_resume(tmp_path, make_trainer):
    """6 epochs straight == 3 epochs, save, load, 3 more epochs: bit for bit."""
    X, y = digits_subset()
    options = dict(batch_size=32, seed=5, progress=False,
                   augment=dlc.data.ImageAugment((8, 8), crop_padding=1))
    straight = make_trainer()
    straight_history = straight.fit(X, y, epochs=6, **options)
    first = make_trainer()
    first.fit(X, y, epochs=3, **options)
    path = tmp_path / "trainer.dlc"
    dlc.save(first, path)
    resumed = dlc.load(path)
    assert type(resumed) is type(first) and resumed.epoch == 3
    assert_same_state(resumed.state_dict(), first.state_dict())
    history = resumed.fit(X, y, epochs=3, **options)
    assert resumed.epoch == straight.epoch == 6
    assert_same_state(resumed.state_dict(), straight.state_dict())
    for name, value in straight.net.params.items():
        np.testing.assert_array_equal(resumed.net.params[name], value, err_msg=name)
    assert history["loss"] == straight_history["loss"][3:]


def test_load_takes_a_flag_preset(tmp_path):
    X, y = digits_subset(64)
    saved = digits_trainer("float32", dlc.Adam(lr=3e-3))
    saved.fit(X, y, epochs=1, batch_size=16, progress=False)
    dlc.save(saved, tmp_path / "t.dlc")
    by_name = dlc.load(tmp_path / "t.dlc", flags="portable")
    by_list = dlc.load(tmp_path / "t.dlc", flags=["-O2"])
    assert by_name.backend.flags == by_list.backend.flags == ("-O2",)
    for t in (by_name, by_list):
        t.fit(X, y, epochs=2, batch_size=16, progress=False)
    assert_same_state(by_name.state_dict(), by_list.state_dict())


def test_a_trainer_with_a_python_schedule_cannot_be_saved(tmp_path):
    trainer = digits_trainer("float64", dlc.SGD(lr=0.1, schedule=lambda lr0, epoch: lr0))
    with pytest.raises(TypeError, match="callable"):
        dlc.save(trainer, tmp_path / "t.dlc")
    assert not (tmp_path / "t.dlc").exists()
