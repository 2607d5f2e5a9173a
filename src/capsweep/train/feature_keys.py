"""What a cached feature array is the features of: fingerprints and the entry key.

Pure NumPy and hashlib, no TensorFlow. A data set is fingerprinted by its images and labels
regardless of how they are split: its distinct images, in the order of their hashes, are the
rows of the cached features, and each split finds its rows by its images' hashes. Repeats
that redraw the train/validation split therefore reuse the same entry, and so does a data
set loaded again (in another process, or decoded anew).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from capsweep.data.dataset import Split


def image_hashes(images: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """A 64-bit hash of each image's bytes (its shape and dtype included), as uint64.

    Args:
        images: An array of images (may be memory-mapped: rows are read one at a time).
        rows: Which rows to hash, in this order; None for all of them.
    """
    header = f"{images.shape[1:]}{images.dtype}".encode()
    indices = range(len(images)) if rows is None else rows
    return np.array(
        [
            int.from_bytes(
                hashlib.blake2b(
                    header + np.ascontiguousarray(images[int(row)]).tobytes(), digest_size=8
                ).digest(),
                "big",
            )
            for row in indices
        ],
        dtype=np.uint64,
    )


@dataclass(frozen=True)
class ImagePool:
    """The distinct images of a data set, and where each split's images are among them.

    Attributes:
        first: For each feature row (distinct image, in hash order), the (split, position)
            of one image with that content.
        split_rows: For each split, the feature row of each of its images.
        fingerprint: The data set's fingerprint (its images and labels, however split).
    """

    first: list[tuple[int, int]]
    split_rows: list[np.ndarray]
    fingerprint: str


# Per-row hashes of memory-mapped image files, by (file, size, modification time, shape):
# a sweep's trials read one decoded folder again and again, and would hash it every time.
_file_hashes: dict[tuple[Any, ...], np.ndarray] = {}


def source_hashes(source: np.ndarray) -> np.ndarray | None:
    """The hashes of every row of a memory-mapped ``source``, computed once per process and
    file version; ``None`` for an in-memory array (built anew per trial: hashed as used)."""
    filename = getattr(source, "filename", None)
    if filename is None:
        return None
    stat = os.stat(filename)
    key = (str(filename), stat.st_size, stat.st_mtime_ns, source.shape, str(source.dtype))
    if key not in _file_hashes:
        _file_hashes.clear()  # one folder at a time is what a sweep reads
        _file_hashes[key] = image_hashes(source)
    return _file_hashes[key]


def image_pool(splits: Sequence[Split]) -> ImagePool:
    """Fingerprint the images and labels of ``splits`` as one pool, whatever the split."""
    all_hashes = []
    for split in splits:
        whole = source_hashes(split.source)
        rows = np.asarray(split.row_indices, dtype=np.int64)
        hashes = image_hashes(split.source, rows) if whole is None else whole[rows]
        all_hashes.append(hashes)
    flat = np.concatenate(all_hashes) if all_hashes else np.zeros(0, np.uint64)
    labels = np.concatenate([np.asarray(split.labels, np.int64) for split in splits])
    where = [
        (index, position)
        for index, hashes in enumerate(all_hashes)
        for position in range(len(hashes))
    ]
    order = np.lexsort((labels, flat))
    digest = hashlib.blake2b(digest_size=16)
    for split in splits[:1]:
        digest.update(f"{split.source.shape[1:]}{split.source.dtype}".encode())
    digest.update(flat[order].tobytes())
    digest.update(labels[order].tobytes())
    distinct, first_index = np.unique(flat, return_index=True)
    return ImagePool(
        first=[where[index] for index in first_index],
        split_rows=[np.searchsorted(distinct, hashes) for hashes in all_hashes],
        fingerprint=digest.hexdigest(),
    )


def weights_fingerprint(arrays: Iterable[np.ndarray]) -> str:
    """A hash of weight values (e.g. every variable of a backbone, in order)."""
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        value = np.ascontiguousarray(array)
        digest.update(f"{value.shape}{value.dtype}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def config_fingerprint(config: Any) -> str:
    """A hash of an architecture config (``backbone.get_config()``), ``trainable`` flags aside.

    Which layers train changes no feature before the cut (the cut itself is in the key).
    """
    text = json.dumps(_without_trainable(config), sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _without_trainable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_trainable(v) for k, v in value.items() if k != "trainable"}
    if isinstance(value, list | tuple):
        return [_without_trainable(item) for item in value]
    return value


@dataclass(frozen=True)
class FeatureKey:
    """Everything cached features depend on; equal keys mean interchangeable features."""

    backbone: str
    architecture: str
    weights: str
    preprocessing: str
    input_size: int
    dataset: str
    cut: str
    dtype: str

    def digest(self) -> str:
        """A file-name-safe hash of the key."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    def summary(self) -> str:
        """A short human description for listings."""
        return (
            f"{self.backbone}@{self.input_size}px cut={self.cut} {self.dtype} "
            f"weights={self.weights[:8]} data={self.dataset[:8]}"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
