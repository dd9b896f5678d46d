"""Data methodology around the compiler: splits, input normalisation, the dev/test
distribution check and image augmentation.

Arrays are ``(batch, features)`` like everywhere in dlc; labels may be integer
classes, one-hot rows or a single 0/1 column.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from .checks import as_array, as_real_array, check_int, check_positive, check_real, shown
from .dsl import Normalize

DEFAULT_RATIOS = (0.6, 0.2, 0.2)


# ---------------------------------------------------------------- splits

def split(X, Y, ratios=None, *, dev: int = None, test: int = None, seed: int = 0,
          stratify: bool = False):
    """Shuffle ``(X, Y)`` and cut it into train, dev and (optionally) test parts.

    Either ``ratios`` (two or three fractions summing to 1, default 0.6/0.2/0.2) or
    absolute sizes ``dev=`` and optionally ``test=`` (the rest is for training, as one
    does with big data).  Returns one ``(X, Y)`` pair per part, in the order train,
    dev[, test].  ``stratify=True`` keeps each class's share equal across the parts.
    """
    X, Y = _check_pair(X, Y)
    seed = check_int(seed, "split seed", low=0)
    sizes = part_sizes(len(X), ratios, dev, test)
    labels = class_labels(Y) if stratify else None
    parts = split_indices(len(X), sizes, seed, labels)
    return tuple((X[idx], Y[idx]) for idx in parts)


def part_sizes(n: int, ratios=None, dev: int = None, test: int = None) -> list:
    """The number of examples in each part (train first); every part gets at least one."""
    if ratios is not None and (dev is not None or test is not None):
        raise TypeError("split takes either ratios or absolute dev=/test= sizes, not both")
    if dev is not None or test is not None:
        sizes = [check_int(dev, "split dev=", low=1)]
        if test is not None:
            sizes.append(check_int(test, "split test=", low=1))
        train = n - sum(sizes)
        if train < 1:
            raise ValueError(f"split: dev + test = {sum(sizes)} leaves no training examples "
                             f"out of {n}")
        return [train] + sizes
    if ratios is not None and (isinstance(ratios, (str, bytes, dict))
                               or not isinstance(ratios, Iterable)):
        raise TypeError(f"split ratios must be a sequence of two or three fractions, "
                        f"got {shown(ratios)}")
    ratios = DEFAULT_RATIOS if ratios is None else tuple(check_positive(r, "split ratio")
                                                         for r in ratios)
    if len(ratios) not in (2, 3):
        raise ValueError(f"split ratios must be (train, dev) or (train, dev, test), got {ratios}")
    if abs(sum(ratios) - 1) > 1e-9:
        raise ValueError(f"split ratios must sum to 1, got {ratios}")
    sizes = [int(round(r * n)) for r in ratios[1:]]
    sizes = [n - sum(sizes)] + sizes
    if min(sizes) < 1:
        raise ValueError(f"split ratios {ratios} of {n} examples leave an empty part {sizes}")
    return sizes


def split_indices(n: int, sizes, seed: int = 0, labels=None) -> list:
    """Disjoint index arrays covering ``range(n)``, one per size, each shuffled.

    With ``labels``, examples are sorted by class and dealt to the parts in an
    interleaved pattern, so every class is shared out in the parts' proportions.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    if labels is not None:
        order = order[np.argsort(labels[order], kind="stable")]
        owner = interleaved_owners(sizes)
    else:
        owner = np.repeat(np.arange(len(sizes)), sizes)
    return [rng.permutation(order[owner == part]) for part in range(len(sizes))]


def interleaved_owners(sizes) -> np.ndarray:
    """A sequence of part numbers with ``sizes[p]`` copies of ``p``, evenly spread out."""
    times = np.concatenate([(np.arange(s) + 0.5) / s for s in sizes])
    parts = np.repeat(np.arange(len(sizes)), sizes)
    return parts[np.argsort(times, kind="stable")]


def class_labels(Y) -> np.ndarray:
    """Integer classes from integer labels, one-hot rows or a 0/1 column."""
    Y = np.asarray(Y)
    if Y.ndim == 2 and Y.shape[1] > 1:
        return np.argmax(Y, axis=1)
    Y = Y.reshape(len(Y))
    if np.issubdtype(Y.dtype, np.floating):
        if not np.array_equal(Y, np.round(Y)):
            raise ValueError("stratify needs class labels; Y holds non-integer values")
        return Y.astype(np.int64)
    return Y


def _check_pair(X, Y):
    X, Y = as_array(X, "split X"), as_array(Y, "split Y")
    if X.ndim < 1 or Y.ndim < 1 or len(X) != len(Y):
        raise ValueError(f"X and Y must have the same number of rows, got shapes "
                         f"{X.shape} and {Y.shape}")
    return X, Y


# ---------------------------------------------------------------- normalisation

def fit_normalize(X_train, eps: float = 1e-8, name: str = None) -> Normalize:
    """A ``dlc.Normalize`` layer with the training set's per-feature mean and variance.

    Put it first in the model: the compiled library and the exported C then take
    raw inputs.  Fit it on the training part only, never on dev or test data.
    A feature that is constant in the training set (say a border pixel that is
    always 0) gets variance 1, so it is only centred: dividing by sqrt(eps) would
    blow up any other value it takes in dev, test or augmented data by 1e4.
    """
    X = as_real_array(X_train, "fit_normalize X_train").astype(np.float64)
    if X.ndim != 2 or X.size == 0:
        raise ValueError(f"fit_normalize needs a 2-D (batch, features) training set "
                         f"X_train, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("fit_normalize: the training set X_train contains NaN or inf")
    constant = (X == X[0]).all(axis=0)
    var = np.where(constant, 1.0, X.var(axis=0))
    return Normalize(mean=X.mean(axis=0), var=var, eps=eps, name=name)


# ---------------------------------------------------------------- dev/test check

class DistributionShiftWarning(UserWarning):
    """Dev and test data look like they come from different distributions."""


@dataclass(frozen=True)
class DistributionCheck:
    """Per-feature gaps between two sets, in units of the features' pooled std."""
    mean_gap: np.ndarray      # |mean_a - mean_b| / std
    std_gap: np.ndarray       # |std_a - std_b| / std
    tolerance_mean: np.ndarray
    tolerance_std: np.ndarray

    @property
    def flagged(self) -> np.ndarray:
        """Indices of the features whose mean or spread differs beyond sampling noise."""
        bad = (self.mean_gap > self.tolerance_mean) | (self.std_gap > self.tolerance_std)
        return np.flatnonzero(bad)

    @property
    def same(self) -> bool:
        return self.flagged.size == 0

    def __str__(self) -> str:
        if self.same:
            return "dev and test look like the same distribution"
        worst = self.flagged[np.argsort(-np.maximum(self.mean_gap, self.std_gap)[self.flagged])]
        items = ", ".join(f"feature {j} (mean gap {self.mean_gap[j]:.2f} std, spread gap "
                          f"{self.std_gap[j]:.2f} std)" for j in worst[:3])
        return (f"dev and test look different in {self.flagged.size} feature(s): {items}; "
                f"dev and test should come from the same distribution (the data you expect "
                f"to see in use)")


def check_same_distribution(X_dev, X_test, min_effect: float = 0.1, alpha: float = 1e-3,
                            warn: bool = True) -> DistributionCheck:
    """Compare dev and test feature by feature; warn if they look different.

    A feature is flagged when its mean or standard deviation differs between the
    sets by more than ``min_effect`` pooled standard deviations AND by more than
    sampling noise explains (a two-sided z test at level ``alpha``, Bonferroni
    corrected over features; the std's noise accounts for the feature's kurtosis).
    """
    A = _feature_matrix(X_dev, "X_dev")
    B = _feature_matrix(X_test, "X_test")
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"X_dev has {A.shape[1]} features but X_test has {B.shape[1]}")
    both = np.concatenate([A, B])
    std = both.std(axis=0)
    varying = std > 0
    scale = np.where(varying, std, 1.0)
    centred = (both - both.mean(axis=0)) / scale
    kurtosis = np.where(varying, (centred ** 4).mean(axis=0), 1.0)
    mean_gap = np.abs(A.mean(axis=0) - B.mean(axis=0)) / scale
    std_gap = np.abs(A.std(axis=0) - B.std(axis=0)) / scale
    z = NormalDist().inv_cdf(1 - alpha / (4 * A.shape[1]))
    inverse_sizes = 1 / len(A) + 1 / len(B)
    noise_mean = np.sqrt(inverse_sizes)
    noise_std = np.sqrt(np.maximum(kurtosis - 1, 0) / 4 * inverse_sizes)
    never = np.where(varying, 0.0, np.inf)
    result = DistributionCheck(mean_gap, std_gap,
                               np.maximum(min_effect, z * noise_mean) + never,
                               np.maximum(min_effect, z * noise_std) + never)
    if warn and not result.same:
        warnings.warn(str(result), DistributionShiftWarning, stacklevel=2)
    return result


def _feature_matrix(X, what: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"{what} must be a 2-D array with at least 2 rows, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{what} contains NaN or inf")
    return X


# ---------------------------------------------------------------- augmentation

class ImageAugment:
    """Random, label-preserving changes to flattened images, for ``fit(augment=...)``.

    ``shape`` is the image shape, ``(H, W)`` or ``(H, W, C)`` (channels last), and the
    rows of ``X`` are the flattened images.  Each call draws fresh changes from the
    ``rng`` it is given (the trainer seeds it per epoch), so runs are reproducible:
      - ``flip``: mirror left-right with probability 1/2 (only for data where a mirror
        image keeps its label: not digits or letters);
      - ``crop_padding=p``: pad with zeros by ``p`` and crop a random window of the
        original size (a shift by up to ``p`` pixels, filled with zeros);
      - ``shift=s``: move by up to ``s`` pixels, repeating the edge pixels;
      - ``noise``: add Gaussian noise with this standard deviation (in input units).
    The trainer applies it to training batches only, never to dev or test data.
    """

    def __init__(self, shape, flip: bool = False, crop_padding: int = 0, shift: int = 0,
                 noise: float = 0.0):
        shape = tuple(check_int(d, "ImageAugment shape", low=1) for d in shape)
        if len(shape) not in (2, 3):
            raise ValueError(f"ImageAugment shape must be (H, W) or (H, W, C), got {shape}")
        self.shape = shape if len(shape) == 3 else shape + (1,)
        self.flip = bool(flip)
        self.crop_padding = check_int(crop_padding, "ImageAugment crop_padding", low=0)
        self.shift = check_int(shift, "ImageAugment shift", low=0)
        self.noise = check_real(noise, "ImageAugment noise", low=0.0)

    @property
    def features(self) -> int:
        return int(np.prod(self.shape))

    def __call__(self, X, rng: np.random.Generator) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.features:
            raise ValueError(f"ImageAugment for images of shape {self.shape} expects X of shape "
                             f"(batch, {self.features}), got {X.shape}")
        images = X.reshape((len(X),) + self.shape)
        if self.flip:
            mirrored = rng.random(len(X)) < 0.5
            images = np.where(mirrored[:, None, None, None], images[:, :, ::-1], images)
        if self.crop_padding:
            images = translate(images, *self._offsets(rng, self.crop_padding, len(X)),
                               mode="constant")
        if self.shift:
            images = translate(images, *self._offsets(rng, self.shift, len(X)), mode="edge")
        out = images.reshape(X.shape).astype(X.dtype, copy=True)
        if self.noise:
            out += rng.normal(0.0, self.noise, out.shape).astype(X.dtype)
        return out

    @staticmethod
    def _offsets(rng, reach: int, n: int):
        return rng.integers(-reach, reach + 1, size=(2, n))

    def __repr__(self) -> str:
        return (f"ImageAugment(shape={self.shape}, flip={self.flip}, crop_padding="
                f"{self.crop_padding}, shift={self.shift}, noise={self.noise})")


def translate(images: np.ndarray, dy: np.ndarray, dx: np.ndarray, mode: str) -> np.ndarray:
    """Move each image (N, H, W, C) by its own (dy, dx) pixels; ``mode`` fills the border
    as ``np.pad`` does ("constant" zeros, "edge" repeats the border)."""
    n, height, width = images.shape[:3]
    reach = int(max(np.abs(dy).max(initial=0), np.abs(dx).max(initial=0)))
    padded = np.pad(images, ((0, 0), (reach, reach), (reach, reach), (0, 0)), mode=mode)
    rows = np.arange(height)[None, :] + reach - dy[:, None]
    cols = np.arange(width)[None, :] + reach - dx[:, None]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
