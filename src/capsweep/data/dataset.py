"""A data set as in-memory arrays, split into train, validation and test.

Images are uint8 RGB arrays of shape (n, size, size, 3), labels int64 class indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split


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


def stratified(
    images: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[Split, Split]:
    """Split off ``fraction`` of the images, stratified by label and seeded."""
    first_images, second_images, first_labels, second_labels = train_test_split(
        images, labels, test_size=fraction, stratify=labels, random_state=seed
    )
    return Split(first_images, first_labels), Split(second_images, second_labels)
