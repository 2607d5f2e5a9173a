"""Streaming a split into training: shuffled per epoch, seeded, every image once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from capsweep.data import Split
from capsweep.data.dataset import split_rows
from capsweep.train.inputs import batches

COUNT = 120  # image i is filled with the value i, its label is i % 3


@pytest.fixture
def mapped_split(tmp_path: Path) -> Split:
    """A training split drawn from a memory-mapped (COUNT, 2, 2, 3) uint8 array file."""
    path = tmp_path / "images.npy"
    images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(COUNT, 2, 2, 3))
    images[:] = np.arange(COUNT, dtype=np.uint8)[:, None, None, None]
    images.flush()
    labels = np.arange(COUNT, dtype=np.int64) % 3
    train, _ = split_rows(Split(np.load(path, mmap_mode="r"), labels), 0.25, seed=0)
    return train


def epoch(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The image ids (their fill value) and labels of one pass, in order."""
    ids, labels = [], []
    for images, batch_labels in dataset:
        assert images.dtype == tf.uint8
        ids.append(images.numpy()[:, 0, 0, 0].astype(int))
        labels.append(batch_labels.numpy())
    return np.concatenate(ids), np.concatenate(labels)


def test_one_epoch_yields_every_training_image_exactly_once(mapped_split: Split) -> None:
    ids, labels = epoch(batches(mapped_split, batch_size=16, seed=0))

    assert sorted(ids.tolist()) == sorted(mapped_split.row_indices.tolist())
    np.testing.assert_array_equal(labels, ids % 3)  # each image keeps its own label


def test_the_same_seed_gives_the_same_order(mapped_split: Split) -> None:
    first, _ = epoch(batches(mapped_split, batch_size=16, seed=7))
    again, _ = epoch(batches(mapped_split, batch_size=16, seed=7))
    other, _ = epoch(batches(mapped_split, batch_size=16, seed=8))

    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_every_epoch_is_shuffled_anew(mapped_split: Split) -> None:
    dataset = batches(mapped_split, batch_size=16, seed=0)

    first, _ = epoch(dataset)
    second, _ = epoch(dataset)

    assert sorted(first.tolist()) == sorted(second.tolist())
    assert not np.array_equal(first, second)


def test_batches_are_read_in_row_order(mapped_split: Split) -> None:
    for images, _ in batches(mapped_split, batch_size=16, seed=0):
        ids = images.numpy()[:, 0, 0, 0].astype(int)
        assert ids.tolist() == sorted(ids.tolist())


def test_without_a_seed_batches_take_the_split_in_its_order(mapped_split: Split) -> None:
    ids, _ = epoch(batches(mapped_split, batch_size=32))

    rows = mapped_split.row_indices
    for start in range(0, len(rows), 32):
        assert sorted(ids[start : start + 32]) == sorted(rows[start : start + 32])


def test_batches_have_a_static_image_shape_and_the_batch_size(mapped_split: Split) -> None:
    dataset = batches(mapped_split, batch_size=16, seed=0)

    assert dataset.element_spec[0].shape.as_list() == [None, 2, 2, 3]
    sizes = [len(labels) for _, labels in dataset]
    assert sizes == [16] * (len(mapped_split) // 16) + [len(mapped_split) % 16]


def test_keras_fits_and_evaluates_on_the_stream_of_an_in_memory_split() -> None:
    import keras

    images = np.repeat(np.arange(3, dtype=np.uint8) * 100, 10)[:, None, None, None]
    split = Split(np.broadcast_to(images, (30, 2, 2, 3)).copy(), np.repeat(np.arange(3), 10))
    model = keras.Sequential(
        [keras.Input((2, 2, 3)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    history = model.fit(batches(split, batch_size=8, seed=0), epochs=2, shuffle=False, verbose=0)
    loss = model.evaluate(batches(split, batch_size=16), verbose=0)

    assert len(history.history["loss"]) == 2 and np.isfinite(loss)


def test_evaluation_batches_of_features_keep_the_split_order(mapped_split: Split) -> None:
    from capsweep.train.fit import evaluation_batches

    features = np.arange(len(mapped_split), dtype=np.float32)[:, None] * 10
    pairs = [(f.numpy(), y.numpy()) for f, y in evaluation_batches(features, mapped_split)]
    assert np.array_equal(np.concatenate([f for f, _ in pairs])[:, 0], features[:, 0])
    assert np.array_equal(np.concatenate([y for _, y in pairs]), mapped_split.labels)


def test_evaluation_batches_of_images_hold_every_image_of_the_split_with_its_label(
    mapped_split: Split,
) -> None:
    from capsweep.train.fit import evaluation_batches

    ids, labels = epoch(evaluation_batches(None, mapped_split))
    assert sorted(ids) == sorted(mapped_split.row_indices)
    assert np.array_equal(labels, ids % 3)


@pytest.fixture
def memory_split(mapped_split: Split) -> Split:
    """The same split with its images held in memory (gathered by TensorFlow ops)."""
    return Split(np.array(mapped_split.source), mapped_split.labels, mapped_split.rows)


def test_in_memory_and_memory_mapped_images_stream_the_same_batches(
    mapped_split: Split, memory_split: Split
) -> None:
    from_file = batches(mapped_split, batch_size=7, seed=3).repeat(2)
    from_memory = batches(memory_split, batch_size=7, seed=3).repeat(2)

    for (a, a_labels), (b, b_labels) in zip(from_file, from_memory, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(a_labels.numpy(), b_labels.numpy())


@pytest.mark.parametrize("source", ["mapped_split", "memory_split"])
def test_batches_run_without_tf_datas_autotuning_thread(
    source: str, request: pytest.FixtureRequest
) -> None:
    # Its thread made destroying an iterator wait seconds after training (see inputs.py).
    dataset = batches(request.getfixturevalue(source), batch_size=7, seed=0)

    assert dataset.options().autotune.enabled is False
