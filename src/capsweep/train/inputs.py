"""Stream a split into training as batches gathered from its (memory-mapped) images.

Only the batches in flight are in memory, however large the split: each batch's rows are
read from the split's source in ascending order (nearby rows, nearby bytes on disk).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from capsweep.data.dataset import Split, gather


def parallel_batches() -> int:
    """Batches gathered at once: half the CPUs this process may run on (at least 2, at most
    8), leaving the rest to the training steps."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(max(2, (usable or 2) // 2), 8)


# Fixed, not tf.data.AUTOTUNE: the autotuned pipeline took up to 18 s to tear down when
# fit() returned (a 47 s MobileNetV2 trial, profiled), for no faster steps. Batches are
# gathered in parallel by half the CPUs, and two are kept ready ahead of the step.
PARALLEL_BATCHES = parallel_batches()
PREFETCH_BATCHES = 2


def batches(
    split: Split, *, batch_size: int, seed: int | None = None, drop_remainder: bool = False
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of (uint8 images, int64 labels) batches of ``split``.

    Args:
        split: the images to stream; a split that holds row indices into a memory-mapped
            source is read batch by batch, never materialised.
        batch_size: images per batch (the last batch may be smaller).
        seed: shuffle with this seed, anew on every pass (epoch); the same seed gives the
            same sequence of epochs. None keeps the split's order (for evaluation).
        drop_remainder: leave out each pass's last, short batch (whole batches only: one
            shape for XLA).

    Returns:
        A dataset Keras' ``fit``/``evaluate`` take directly; every pass over it yields each
        image of ``split`` exactly once. Images within a batch come in row order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, but got {batch_size=}")
    source, rows, labels = split.source, split.row_indices, split.labels
    image_shape = tuple(int(side) for side in source.shape[1:])

    def load(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        picked = rows[positions]
        order = np.argsort(picked, kind="stable")
        return gather(source, picked[order]), labels[positions[order]].astype(np.int64)

    def load_batch(positions: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        images, batch_labels = tf.numpy_function(
            load, [positions], (tf.as_dtype(source.dtype), tf.int64), stateful=False
        )
        images.set_shape((None, *image_shape))
        batch_labels.set_shape((None,))
        return images, batch_labels

    positions = tf.data.Dataset.range(len(split))
    if seed is not None:
        positions = positions.shuffle(max(1, len(split)), seed=seed, reshuffle_each_iteration=True)
    return (
        positions.batch(batch_size, drop_remainder=drop_remainder)
        .map(load_batch, num_parallel_calls=PARALLEL_BATCHES, deterministic=True)
        .prefetch(PREFETCH_BATCHES)
    )
