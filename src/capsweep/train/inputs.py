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


# Arrays up to this size are gathered by TensorFlow ops from a copy pinned to the CPU: no
# Python, hence no GIL, per batch (a 30-epoch trial on 32-pixel digits spent ~1 s waiting
# on it). Larger arrays and memory-mapped ones are gathered by NumPy, a batch at a time.
IN_GRAPH_BYTES = 256 * 2**20


def indexed_batches(
    source: np.ndarray,
    index: np.ndarray,
    order_key: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    seed: int | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of ``(source[index[p]], labels[p])`` over positions ``p`` of a split.

    Positions are shuffled per pass with ``seed`` (kept in order for ``None``); within a
    batch they come in ascending ``order_key``, so that the images of a batch and the
    cached features of the same images come in the same order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, but got {batch_size=}")
    item_shape = tuple(int(side) for side in source.shape[1:])
    labels = np.asarray(labels, dtype=np.int64)
    positions = tf.data.Dataset.range(len(labels))
    if seed is not None:
        positions = positions.shuffle(max(1, len(labels)), seed=seed, reshuffle_each_iteration=True)
    if getattr(source, "filename", None) is None and source.nbytes <= IN_GRAPH_BYTES:
        with tf.device("/CPU:0"):
            values, rows, keys, targets = (
                tf.constant(np.asarray(array)) for array in (source, index, order_key, labels)
            )

        def load_batch(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            ordered = tf.gather(batch, tf.argsort(tf.gather(keys, batch), stable=True))
            return tf.gather(values, tf.gather(rows, ordered)), tf.gather(targets, ordered)

    else:

        def load(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            ordered = batch[np.argsort(order_key[batch], kind="stable")]
            return gather(source, index[ordered]), labels[ordered]

        def load_batch(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            items, batch_labels = tf.numpy_function(
                load, [batch], (tf.as_dtype(source.dtype), tf.int64), stateful=False
            )
            items.set_shape((None, *item_shape))
            batch_labels.set_shape((None,))
            return items, batch_labels

    return without_autotuning(
        positions.batch(batch_size, drop_remainder=drop_remainder)
        .map(load_batch, num_parallel_calls=PARALLEL_BATCHES, deterministic=True)
        .prefetch(PREFETCH_BATCHES)
    )


def without_autotuning(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` without tf.data's autotuning thread.

    With autotuning on (tf.data's default, whatever the parallelism), every iterator starts
    a background thread that models the pipeline and sleeps between rounds; destroying the
    iterator waits for that thread to wake. That wait was the 3-20 s stall after training
    in one trial in two or three (a native stack of the main thread showed it in
    ``UnboundedThreadPool::LogicalThreadWrapper`` below ``IteratorResource``'s destructor).
    The parallelism here is fixed, so autotuning has nothing to tune.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


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
        image of ``split`` exactly once (but a dropped remainder). Images within a batch
        come in row order.
    """
    rows = np.asarray(split.row_indices)
    return indexed_batches(
        split.source,
        rows,
        rows,
        split.labels,
        batch_size=batch_size,
        seed=seed,
        drop_remainder=drop_remainder,
    )
