"""Image data sets as in-memory arrays: scikit-learn's bundled digits and image folders.

Images are uint8 RGB arrays of shape (n, size, size, 3), labels int64 class indices.
capsweep's problems are small (that is the point), so everything fits in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from sklearn.model_selection import train_test_split

from capsweep.errors import CapsweepConfigError
from capsweep.schema import DataConfig

DATASETS = ("digits", "image_folder")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
MIN_IMAGES_PER_CLASS = 3


@dataclass(frozen=True)
class Split:
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Dataset:
    train: Split
    val: Split
    test: Split
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def check_data_config(data: DataConfig) -> None:
    """Raise on data options that are wrong before anything is loaded."""
    if data.name not in DATASETS:
        raise CapsweepConfigError(
            "data.name",
            data.name,
            "unknown data set",
            choices=DATASETS,
            fix="select one with data=<name>",
        )
    for key, fraction in (
        ("data.val_fraction", data.val_fraction),
        ("data.test_fraction", data.test_fraction),
    ):
        if not 0.0 < fraction < 1.0:
            raise CapsweepConfigError(key, fraction, "must be between 0 and 1", fix="e.g. 0.2")
    if data.val_fraction + data.test_fraction >= 1.0:
        raise CapsweepConfigError(
            "data.val_fraction",
            data.val_fraction,
            f"with data.test_fraction={data.test_fraction} leaves no training images",
        )
    if data.name == "image_folder" and not data.path:
        raise CapsweepConfigError(
            "data.path",
            data.path,
            "image_folder needs a directory",
            fix="set data.path=/path/to/images (one sub-folder per class)",
        )


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 images (n, h, w) or (n, h, w, 3) to (n, size, size, 3)."""
    resized = [
        np.asarray(
            Image.fromarray(image).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        )
        for image in images
    ]
    return np.stack(resized).astype(np.uint8)


def _digits(classes: Sequence[int], size: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    keep = np.isin(bunch.target, classes)
    pixels = np.rint(bunch.images[keep] * (255.0 / 16.0)).astype(np.uint8)
    remap = {digit: index for index, digit in enumerate(classes)}
    labels = np.array([remap[digit] for digit in bunch.target[keep]], dtype=np.int64)
    return resize_images(pixels, size), labels


def digits_source(data: DataConfig, size: int) -> Dataset:
    """The source task the default backbone is pretrained on (e.g. digits 0–4)."""
    images, labels = _digits(data.source_classes, size)
    train, val = _stratified(images, labels, data.val_fraction, data.split_seed)
    empty = Split(images[:0], labels[:0])
    return Dataset(train, val, empty, tuple(str(c) for c in data.source_classes))


def digits_target(data: DataConfig, size: int) -> Dataset:
    """The target task: few labelled images per class, a validation and a test split."""
    overlap = set(data.source_classes) & set(data.target_classes)
    if overlap:
        raise CapsweepConfigError(
            "data.target_classes",
            data.target_classes,
            f"shares classes {sorted(overlap)} with data.source_classes",
        )
    images, labels = _digits(data.target_classes, size)
    n_classes = len(data.target_classes)
    train_size = data.train_per_class * n_classes
    if train_size + data.val_size >= len(labels):
        raise CapsweepConfigError(
            "data.val_size",
            data.val_size,
            f"with data.train_per_class={data.train_per_class} leaves no test images "
            f"out of {len(labels)}",
        )
    rest_images, train_images, rest_labels, train_labels = train_test_split(
        images, labels, test_size=train_size, stratify=labels, random_state=data.split_seed
    )
    test_images, val_images, test_labels, val_labels = train_test_split(
        rest_images,
        rest_labels,
        test_size=data.val_size,
        stratify=rest_labels,
        random_state=data.split_seed,
    )
    return Dataset(
        Split(train_images, train_labels),
        Split(val_images, val_labels),
        Split(test_images, test_labels),
        tuple(str(c) for c in data.target_classes),
    )


def _stratified(
    images: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[Split, Split]:
    first_images, second_images, first_labels, second_labels = train_test_split(
        images, labels, test_size=fraction, stratify=labels, random_state=seed
    )
    return Split(first_images, first_labels), Split(second_images, second_labels)


def image_folder(data: DataConfig, size: int) -> Dataset:
    """Load ``data.path/<class>/<image>`` and split it, stratified and seeded."""
    root = Path(str(data.path)).expanduser()
    if not root.is_dir():
        raise CapsweepConfigError(
            "data.path",
            data.path,
            "is not a directory",
            fix="point data.path at a folder with one sub-folder of images per class",
        )
    files = _class_files(root)
    if not files:
        raise CapsweepConfigError(
            "data.path",
            data.path,
            "holds no class sub-folders with images",
            fix=f"put images ({', '.join(sorted(IMAGE_SUFFIXES))}) in one sub-folder per class",
        )
    if len(files) < 2:
        raise CapsweepConfigError(
            "data.path",
            data.path,
            f"has only one class with images ({next(iter(files))})",
            fix="a classifier needs at least two class sub-folders",
        )
    small = {name: len(found) for name, found in files.items() if len(found) < MIN_IMAGES_PER_CLASS}
    if small:
        raise CapsweepConfigError(
            "data.path",
            data.path,
            f"classes with fewer than {MIN_IMAGES_PER_CLASS} images: {small}",
            fix="add images so every class can appear in train, val and test",
        )
    if data.num_classes is not None and data.num_classes != len(files):
        raise CapsweepConfigError(
            "data.num_classes",
            data.num_classes,
            f"but {root} has {len(files)} classes",
            fix="leave data.num_classes unset to infer it",
        )
    images, labels = [], []
    for index, paths in enumerate(files.values()):
        for path in paths:
            images.append(_read_image(path, size))
            labels.append(index)
    array, targets = np.stack(images), np.array(labels, dtype=np.int64)
    rest, test = _stratified(array, targets, data.test_fraction, data.split_seed)
    val_share = data.val_fraction / (1.0 - data.test_fraction)
    train, val = _stratified(rest.images, rest.labels, val_share, data.split_seed)
    return Dataset(train, val, test, tuple(files))


def _class_files(root: Path) -> dict[str, list[Path]]:
    """The image files of each (non-hidden) sub-folder of ``root`` that holds any, sorted."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = {
        d.name: sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        for d in class_dirs
    }
    return {name: found for name, found in files.items() if found}


def _read_image(path: Path, size: int) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    except (UnidentifiedImageError, OSError) as error:
        raise CapsweepConfigError(
            "data.path",
            str(path),
            f"is not a readable image ({error})",
            fix="remove or replace the file",
        ) from None


def load_dataset(data: DataConfig, size: int) -> Dataset:
    """Load the configured target data set at ``size``² pixels."""
    check_data_config(data)
    if data.name == "digits":
        return digits_target(data, size)
    return image_folder(data, size)


def planned_num_classes(data: DataConfig) -> int:
    """The number of classes, without loading images (for ``capsweep-plan``)."""
    if data.num_classes is not None:
        return data.num_classes
    if data.name == "digits":
        return len(data.target_classes)
    root = Path(str(data.path or "")).expanduser()
    if data.path and root.is_dir():
        return len(_class_files(root))  # the classes image_folder() loads
    raise CapsweepConfigError(
        "data.num_classes",
        None,
        "is needed to plan without data",
        fix="pass data.num_classes=<n>",
    )
