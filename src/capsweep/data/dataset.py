"""A data set split into train, validation and test, without copying images per split.

Images are uint8 RGB arrays of shape (n, size, size, 3), labels int64 class indices. A
split may hold its own images, or the row indices it draws from a shared source array (in
memory, or memory-mapped from the decoded-image cache), so that splitting copies no image.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from io import FileIO
from typing import Any, TypeGuard

import numpy as np
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Split:
    """The images and labels of one split.

    Args:
        source: the split's own images when ``rows`` is None; otherwise the shared array
            the split draws its images from (never copied by splitting).
        labels: the label of each of the split's images, in the split's order.
        rows: which rows of ``source`` the split holds, in the split's order, or None.
    """

    source: np.ndarray
    labels: np.ndarray
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def row_indices(self) -> np.ndarray:
        """The rows of ``source`` this split holds, in the split's order."""
        return np.arange(len(self.labels)) if self.rows is None else self.rows

    @property
    def images(self) -> np.ndarray:
        """The split's images as one array, in the split's order.

        Cost: with ``rows`` set, every access gathers a fresh copy of len(split) images
        (len × size² × 3 bytes), read from the file for a memory-mapped source. For large
        splits stream batches instead (``capsweep.train.inputs.batches``).
        """
        if self.rows is None:
            return self.source
        return gather(self.source, self.rows)


@dataclass(frozen=True)
class Dataset:
    train: Split
    val: Split
    test: Split
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def stratified(
    images: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[Split, Split]:
    """Split off ``fraction`` of the images, stratified by label and seeded (as copies)."""
    first_images, second_images, first_labels, second_labels = train_test_split(
        images, labels, test_size=fraction, stratify=labels, random_state=seed
    )
    return Split(first_images, first_labels), Split(second_images, second_labels)


def split_rows(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Split off ``fraction`` of ``split``, stratified and seeded, copying no image.

    Draws exactly what ``stratified`` draws for the same images, labels and seed (sklearn
    permutes positions from the count, the labels and the seed alone), in the same order;
    both parts keep pointing into ``split.source``.
    """
    positions = np.arange(len(split))
    first, second = train_test_split(
        positions, test_size=fraction, stratify=split.labels, random_state=seed
    )
    rows = split.row_indices
    return (
        Split(split.source, split.labels[first], rows[first]),
        Split(split.source, split.labels[second], rows[second]),
    )


def gather(source: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``source[rows]`` as a new array; a memory-mapped source is read with file reads.

    Fancy-indexing a memory map leaves every page it touched mapped into the process
    (counted in its resident memory until the kernel reclaims it); reading the rows from
    the file instead, in ascending row order, keeps the process at the size of the result.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if not _is_whole_file_map(source):
        return source[rows]
    out = np.empty((len(rows), *source.shape[1:]), dtype=source.dtype)
    row_bytes = source.dtype.itemsize * int(np.prod(source.shape[1:], dtype=np.int64))
    order = np.argsort(rows, kind="stable")
    with open(str(source.filename), "rb", buffering=0) as file:
        start = 0
        while start < len(order):
            # A run: consecutive file rows that land in consecutive output positions.
            end = start + 1
            while (
                end < len(order)
                and rows[order[end]] == rows[order[end - 1]] + 1
                and order[end] == order[end - 1] + 1
            ):
                end += 1
            file.seek(source.offset + int(rows[order[start]]) * row_bytes)
            first = int(order[start])
            _read_exactly(file, out[first : first + end - start])
            start = end
    return out


def _is_whole_file_map(source: np.ndarray) -> TypeGuard[np.memmap[Any, Any]]:
    # A memmap made by np.load/np.memmap has the mmap itself as base and ``offset`` at
    # its first row; a slice of one is a memmap too, but its ``offset`` is its parent's.
    return (
        isinstance(source, np.memmap)
        and isinstance(source.base, mmap.mmap)
        and source.filename is not None
        and source.flags.c_contiguous
    )


def _read_exactly(file: FileIO, target: np.ndarray) -> None:
    view = target.data.cast("B")
    done = 0
    while done < len(view):
        count = file.readinto(view[done:])
        if not count:
            raise OSError(f"{file.name} ends before the rows it should hold (truncated?)")
        done += count
