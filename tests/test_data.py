"""dlc.data: splits, normalisation fitted on the training part, the dev/test check, augmentation."""
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

import dlc
from dlc import data
from helpers import assert_matches


def labelled_ids(n, classes=4):
    """X holds each row's id (twice, as two features), Y a class derived from the id."""
    ids = np.arange(n)
    return np.stack([ids, ids * 10], axis=1), ids % classes


def check_disjoint_cover(parts, n):
    ids = np.concatenate([X[:, 0] for X, _ in parts])
    np.testing.assert_array_equal(np.sort(ids), np.arange(n))
    for X, Y in parts:
        np.testing.assert_array_equal(X[:, 1], X[:, 0] * 10)   # rows stay whole
        np.testing.assert_array_equal(Y, X[:, 0] % 4)            # labels stay with their rows


def test_split_by_ratios_is_disjoint_covering_and_seeded():
    X, Y = labelled_ids(1000)
    parts = data.split(X, Y, ratios=(0.6, 0.2, 0.2), seed=0)
    assert [len(X) for X, _ in parts] == [600, 200, 200]
    check_disjoint_cover(parts, 1000)
    again = data.split(X, Y, ratios=(0.6, 0.2, 0.2), seed=0)
    other = data.split(X, Y, ratios=(0.6, 0.2, 0.2), seed=1)
    for (a, _), (b, _), (c, _) in zip(parts, again, other):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    assert not np.array_equal(parts[0][0][:, 0], np.arange(600))  # shuffled, not sliced


def test_split_by_absolute_sizes_and_dev_only():
    X, Y = labelled_ids(1003)
    parts = data.split(X, Y, dev=100, test=50, seed=3)
    assert [len(X) for X, _ in parts] == [853, 100, 50]
    check_disjoint_cover(parts, 1003)
    train_dev = data.split(X, Y, dev=100, seed=3)
    assert [len(X) for X, _ in train_dev] == [903, 100]
    check_disjoint_cover(train_dev, 1003)
    by_ratio = data.split(X, Y, ratios=(0.75, 0.25))
    assert [len(X) for X, _ in by_ratio] == [752, 251]
    check_disjoint_cover(by_ratio, 1003)


@pytest.mark.parametrize("one_hot", [False, True])
def test_stratified_split_keeps_class_shares(one_hot):
    rng = np.random.default_rng(0)
    Y = rng.permutation(np.repeat(np.arange(4), [500, 300, 150, 50]))
    X = np.arange(len(Y))[:, None]
    labels = np.eye(4)[Y] if one_hot else Y
    parts = data.split(X, labels, ratios=(0.6, 0.2, 0.2), seed=5, stratify=True)
    assert [len(p[0]) for p in parts] == [600, 200, 200]
    np.testing.assert_array_equal(np.sort(np.concatenate([p[0][:, 0] for p in parts])),
                                  np.arange(1000))
    for (Xp, Yp), share in zip(parts, (0.6, 0.2, 0.2)):
        np.testing.assert_array_equal(Yp, labels[Xp[:, 0]])
        counts = np.bincount(data.class_labels(Yp), minlength=4)
        expected = np.array([500, 300, 150, 50]) * share
        assert np.abs(counts - expected).max() <= 1, (counts, expected)


@pytest.mark.parametrize("kwargs, message", [
    (dict(ratios=(0.5, 0.2, 0.2)), "sum to 1"),
    (dict(ratios=(0.5, 0.5, 0.0)), r"split ratio must be in \(0, inf\), got 0.0"),
    (dict(ratios=(1.0,)), "train, dev"),
    (dict(dev=60, test=40), "no training examples"),
    (dict(dev=0), "positive integer"),
    (dict(ratios=(0.8, 0.2), dev=10), "either ratios"),
])
def test_split_rejects_bad_sizes(kwargs, message):
    X, Y = labelled_ids(100)
    with pytest.raises((ValueError, TypeError), match=message):
        data.split(X, Y, **kwargs)


def test_split_rejects_mismatched_rows():
    with pytest.raises(ValueError, match="same number of rows"):
        data.split(np.zeros((10, 2)), np.zeros(9))


def test_normalize_is_fitted_on_the_training_part_only():
    rng = np.random.default_rng(1)
    X = rng.normal(3.0, 2.0, size=(500, 6)) * np.arange(1, 7)
    Y = rng.integers(0, 3, 500)
    (Xtr, _), (Xdev, _), (Xte, _) = data.split(X, Y, seed=0)
    layer = data.fit_normalize(Xtr)
    np.testing.assert_allclose(layer.mean, Xtr.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.var, Xtr.var(axis=0), rtol=1e-12)
    assert layer.eps == 1e-8
    assert not np.allclose(layer.mean, X.mean(axis=0), rtol=1e-6)   # not the full data's


def test_a_feature_constant_in_training_is_only_centred():
    """Dividing by sqrt(0 + 1e-8) would turn an unseen value 1 into 1e4."""
    Xtr = np.array([[0.0, 1.0, 5.0], [0.0, 3.0, 5.0], [0.0, 2.0, 5.0]])
    layer = data.fit_normalize(Xtr)
    np.testing.assert_array_equal(layer.var, [1.0, 2.0 / 3.0, 1.0])
    np.testing.assert_array_equal(layer.mean, [0.0, 2.0, 5.0])
    net = dlc.Sequential([dlc.Input(3), layer], dtype="float64")
    got = dlc.reference(net).predict(np.array([[1.0, 2.0, 4.0]]))
    np.testing.assert_allclose(got, [[1.0, 0.0, -1.0]], rtol=1e-8)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normalize_layer_first_lets_compiled_code_take_raw_inputs(dtype):
    rng = np.random.default_rng(2)
    Xtr = rng.normal(50.0, 7.0, size=(300, 5)) * np.array([1, 10, 0.1, 3, 100])
    def layers():
        return [dlc.Dense(8), dlc.Tanh(), dlc.Dense(3), dlc.Softmax()]
    net = dlc.Sequential([dlc.Input(5), data.fit_normalize(Xtr)] + layers(), dtype=dtype, seed=4)
    plain = dlc.Sequential([dlc.Input(5)] + layers(), dtype=dtype, seed=5)
    plain.set_params({name: value for name, value in net.params.items() if name in plain.params})
    X = rng.normal(50.0, 7.0, size=(40, 5)) * np.array([1, 10, 0.1, 3, 100])
    by_hand = (X - Xtr.mean(axis=0)) / np.sqrt(Xtr.var(axis=0) + 1e-8)
    expected = dlc.reference(plain).predict(by_hand)
    assert_matches(dlc.compile(net).predict(X), expected, dtype, "raw input through Normalize",
                   scale=10.0)


def test_dev_and_test_from_one_distribution_pass_the_check():
    X, Y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for seed in range(10):
            _, (Xdev, _), (Xte, _) = data.split(X, Y, seed=seed)
            result = data.check_same_distribution(Xdev, Xte)
            assert result.same and result.flagged.size == 0


@pytest.mark.parametrize("change", ["shift mean", "scale spread"])
def test_dev_and_test_from_different_distributions_warn(change):
    rng = np.random.default_rng(3)
    Xdev, Xte = rng.normal(size=(400, 20)), rng.normal(size=(400, 20))
    if change == "shift mean":
        Xte[:, 7] += 0.5
    else:
        Xte[:, 7] *= 1.6
    with pytest.warns(data.DistributionShiftWarning, match="feature 7"):
        result = data.check_same_distribution(Xdev, Xte)
    np.testing.assert_array_equal(result.flagged, [7])


def test_tiny_differences_in_big_data_are_not_flagged():
    rng = np.random.default_rng(4)
    Xdev, Xte = rng.normal(size=(200_000, 3)), rng.normal(size=(200_000, 3)) + 0.03
    result = data.check_same_distribution(Xdev, Xte, warn=False)
    assert result.same
    assert 0.02 < result.mean_gap.max() < 0.04   # measurable, but below min_effect 0.1


def image_batch(n, shape=(8, 8), seed=0):
    X, _ = load_digits(return_X_y=True)
    if shape == (8, 8):
        return X[:n].astype(np.float32)
    rng = np.random.default_rng(seed)
    return rng.random((n, int(np.prod(shape)))).astype(np.float32)


def translated(image, dy, dx, fill):
    """``image`` (H, W, C) moved by (dy, dx) pixels, border filled as np.pad's ``fill`` mode."""
    h, w = image.shape[:2]
    out = np.empty_like(image)
    for i in range(h):
        for j in range(w):
            si, sj = i - dy, j - dx
            if fill == "edge":
                out[i, j] = image[min(max(si, 0), h - 1), min(max(sj, 0), w - 1)]
            else:
                out[i, j] = image[si, sj] if 0 <= si < h and 0 <= sj < w else 0
    return out


@pytest.mark.parametrize("kind, shape", [("crop_padding", (8, 8)), ("shift", (8, 8)),
                                         ("crop_padding", (6, 5, 3)), ("shift", (6, 5, 3))])
def test_translations_move_each_image_within_reach(kind, shape):
    X = image_batch(40, shape)
    aug = data.ImageAugment(shape, **{kind: 2})
    out = aug(X, np.random.default_rng(0))
    full = shape if len(shape) == 3 else shape + (1,)
    fill = "edge" if kind == "shift" else "constant"
    moved = 0
    for row_in, row_out in zip(X, out):
        image, result = row_in.reshape(full), row_out.reshape(full)
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(translated(image, dy, dx, fill), result)]
        assert matches, "an augmented row is not a translation of its own input row"
        moved += (0, 0) not in matches
    assert moved > 20   # each image stays put with probability 1/25


def test_flip_mirrors_about_half_the_images_and_noise_has_the_asked_std():
    X = image_batch(400, (6, 5, 3))
    out = data.ImageAugment((6, 5, 3), flip=True)(X, np.random.default_rng(1))
    images, results = X.reshape(-1, 6, 5, 3), out.reshape(-1, 6, 5, 3)
    mirrored = np.array([np.array_equal(r, i[:, ::-1]) for i, r in zip(images, results)])
    kept = np.array([np.array_equal(r, i) for i, r in zip(images, results)])
    assert (mirrored | kept).all() and 150 < mirrored.sum() < 250
    noisy = data.ImageAugment((8, 8), noise=0.5)(np.zeros((500, 64)), np.random.default_rng(2))
    assert abs(noisy.std() - 0.5) < 0.01 and abs(noisy.mean()) < 0.01


def test_augmentation_is_seeded_fresh_per_rng_and_leaves_its_input_alone():
    X = image_batch(50)
    before = X.copy()
    aug = data.ImageAugment((8, 8), crop_padding=1, shift=1, noise=0.3, flip=True)
    first = aug(X, np.random.default_rng([0, 1, 1]))
    np.testing.assert_array_equal(first, aug(X, np.random.default_rng([0, 1, 1])))
    assert not np.array_equal(first, aug(X, np.random.default_rng([0, 2, 1])))
    np.testing.assert_array_equal(X, before)
    assert first.shape == X.shape and first.dtype == X.dtype


def test_augmentation_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"\(batch, 64\)"):
        data.ImageAugment((8, 8), shift=1)(np.zeros((3, 63)), np.random.default_rng(0))
    with pytest.raises(ValueError, match="shape"):
        data.ImageAugment((8,))
    with pytest.raises(ValueError, match="shift"):
        data.ImageAugment((8, 8), shift=-1)
    with pytest.raises(ValueError, match="noise"):
        data.ImageAugment((8, 8), noise=float("nan"))
