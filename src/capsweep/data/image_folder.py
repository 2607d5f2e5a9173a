"""Your own images: one sub-folder per class, split stratified and seeded.

Decoded once into a cache entry (``capsweep.data.decoded``) when given a cache folder, or
into one in-memory array otherwise; the splits index into it and copy no image.
"""

from __future__ import annotations

from pathlib import Path

from capsweep.data.dataset import Dataset, Split, split_rows
from capsweep.data.decoded import cached_images, folder_labels
from capsweep.data.decoding import decode_into_memory
from capsweep.errors import CapsweepConfigError
from capsweep.settings import DataConfig

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
MIN_IMAGES_PER_CLASS = 3


def image_folder(data: DataConfig, size: int, *, cache_dir: Path | None = None) -> Dataset:
    """Load ``data.path/<class>/<image>`` and split it, stratified and seeded.

    Args:
        data: the data settings (path, fractions, seeds).
        size: the side in pixels every image is resized to.
        cache_dir: where decoded images are kept between loads (e.g.
            ``<outputs>/cache/images``); None decodes into memory on every load.
    """
    root = Path(str(data.path)).expanduser()
    if not root.is_dir():
        raise CapsweepConfigError(
            "data.path",
            data.path,
            "is not a directory",
            fix="point data.path at a folder with one sub-folder of images per class",
        )
    files = class_files(root)
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
    paths = [path for found in files.values() for path in found]
    if cache_dir is None:
        images = decode_into_memory(paths, size)
    else:
        images = cached_images(root, files, size, cache_dir)
    everything = Split(images, folder_labels(files))
    # The test split is drawn with its own seed: repeats that vary data.split_seed
    # resample training and validation images only.
    rest, test = split_rows(everything, data.test_fraction, data.test_seed)
    val_share = data.val_fraction / (1.0 - data.test_fraction)
    train, val = split_rows(rest, val_share, data.split_seed)
    return Dataset(train, val, test, tuple(files))


def class_files(root: Path) -> dict[str, list[Path]]:
    """The image files of each (non-hidden) sub-folder of ``root`` that holds any, sorted."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = {
        d.name: sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        for d in class_dirs
    }
    return {name: found for name, found in files.items() if found}
