"""scikit-learn's bundled handwritten digits (offline): a source task and a target task."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image
from sklearn.model_selection import train_test_split

from capsweep.data.corruptions import corrupt
from capsweep.data.dataset import Dataset, Split, stratified
from capsweep.errors import CapsweepConfigError
from capsweep.settings import DataConfig


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 images (n, h, w) or (n, h, w, 3) to (n, size, size, 3)."""
    resized = [
        np.asarray(
            Image.fromarray(image).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        )
        for image in images
    ]
    return np.stack(resized).astype(np.uint8)


def _digits(
    classes: Sequence[int], size: int, *, keep: Callable[[int, int], bool] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The digits of ``classes`` at ``size``², labelled 0..len(classes) - 1.

    ``keep(digit, index)`` picks which images of a digit to use (``index`` counts that
    digit's images in scikit-learn's order); all by default.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    seen: dict[int, int] = {}
    chosen = []
    for digit in bunch.target:
        index = seen.get(int(digit), 0)
        seen[int(digit)] = index + 1
        chosen.append(int(digit) in classes and (keep is None or keep(int(digit), index)))
    mask = np.array(chosen, dtype=bool)
    pixels = np.rint(bunch.images[mask] * (255.0 / 16.0)).astype(np.uint8)
    remap = {digit: index for index, digit in enumerate(classes)}
    labels = np.array([remap[digit] for digit in bunch.target[mask]], dtype=np.int64)
    return resize_images(pixels, size), labels


def held_out(data: DataConfig) -> frozenset[int]:
    """The source classes the target task also uses: their images are shared out, even
    ones (in each digit's order) to the pretraining, odd ones to the target task, so the
    backbone never sees a target image."""
    return frozenset(data.source_classes) & frozenset(data.target_classes)


def digits_source(data: DataConfig, size: int, seed: int) -> Dataset:
    """The source task the default backbone is pretrained on (e.g. digits 0–4).

    Split by the pretraining's own ``seed``, so the pretrained weights do not change when
    repeats of a sweep vary the target task's split. Of a class the target task also uses
    (:func:`held_out`), only the even-numbered images.
    """
    shared = held_out(data)
    images, labels = _digits(
        data.source_classes, size, keep=lambda digit, index: digit not in shared or index % 2 == 0
    )
    train, val = stratified(images, labels, data.val_fraction, seed)
    empty = Split(images[:0], labels[:0])
    return Dataset(train, val, empty, tuple(str(c) for c in data.source_classes))


def digits_target(data: DataConfig, size: int) -> Dataset:
    """The target task: few labelled images per class, a validation and a test split.

    The test images are drawn first with ``data.test_seed`` and stay the same whatever
    ``data.split_seed`` draws for training and validation from the rest. Every image
    carries ``data.corruption`` (:func:`corrupt`).
    """
    shared = held_out(data)
    images, labels = _digits(
        data.target_classes, size, keep=lambda digit, index: digit not in shared or index % 2 == 1
    )
    images = corrupt(images, data.corruption)
    n_classes = len(data.target_classes)
    train_size = data.train_per_class * n_classes
    test_size = len(labels) - train_size - data.val_size
    if test_size <= 0:
        raise CapsweepConfigError(
            "data.val_size",
            data.val_size,
            f"with data.train_per_class={data.train_per_class} leaves no test images "
            f"out of {len(labels)}",
            fix="lower data.val_size or data.train_per_class",
        )
    rest_images, test_images, rest_labels, test_labels = train_test_split(
        images, labels, test_size=test_size, stratify=labels, random_state=data.test_seed
    )
    val_images, train_images, val_labels, train_labels = train_test_split(
        rest_images,
        rest_labels,
        test_size=train_size,
        stratify=rest_labels,
        random_state=data.split_seed,
    )
    return Dataset(
        Split(train_images, train_labels),
        Split(val_images, val_labels),
        Split(test_images, test_labels),
        tuple(str(c) for c in data.target_classes),
    )
