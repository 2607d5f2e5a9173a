"""The feature cache on disk: entries checked before use, written safely, capped by LRU.

No TensorFlow: NumPy arrays stand for features.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from capsweep.data.dataset import Split
from capsweep.train.feature_keys import FeatureKey, image_pool
from capsweep.train.feature_store import FeatureStore


def key(cut: str = "stage3_block1_out") -> FeatureKey:
    return FeatureKey("small_resnet", "arch", "weights", "unit", 32, "data", cut, "float32")


def features(seed: int = 0, rows: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 4, 4, 8)).astype("float32")


def test_a_saved_entry_loads_memory_mapped_with_the_same_values(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, max_bytes=10**9)
    store.save(key(), features())

    loaded = store.load(key())

    assert isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(loaded, features())


def test_a_truncated_entry_is_reported_absent_and_removed(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, max_bytes=10**9)
    store.save(key(), features())
    (data,) = tmp_path.glob("*.npy")
    data.write_bytes(data.read_bytes()[:-100])

    assert store.load(key()) is None
    assert not list(tmp_path.glob("*.npy")) and not list(tmp_path.glob("*.json"))


def test_an_entry_whose_values_changed_is_not_used(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, max_bytes=10**9)
    store.save(key(), features())
    (data,) = tmp_path.glob("*.npy")
    damaged = bytearray(data.read_bytes())
    damaged[-1] ^= 0xFF  # same size, one value changed
    data.write_bytes(bytes(damaged))

    assert store.load(key()) is None


def test_an_entry_whose_manifest_disagrees_on_shape_is_not_used(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, max_bytes=10**9)
    store.save(key(), features())
    (manifest,) = tmp_path.glob("*.json")
    content = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**content, "shape": [25, 8, 4, 8]}))

    assert store.load(key()) is None


def test_a_damaged_entry_is_rebuilt_by_the_next_save(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, max_bytes=10**9)
    store.save(key(), features())
    (data,) = tmp_path.glob("*.npy")
    data.write_bytes(data.read_bytes()[:64])
    assert store.load(key()) is None

    store.save(key(), features())

    np.testing.assert_array_equal(store.load(key()), features())


def used(store: FeatureStore, cut: str, seconds_ago: float) -> None:
    """Mark entry ``cut`` as last used ``seconds_ago`` (the store reads its manifest's mtime):
    an order set, not one left to the file system's timestamp resolution."""
    when = time.time() - seconds_ago
    os.utime(store.root / f"{key(cut).digest()}.json", (when, when))


def test_the_least_recently_used_entry_goes_first_beyond_the_cap(tmp_path: Path) -> None:
    size = features().nbytes + 200  # an entry's file: values and the .npy header
    store = FeatureStore(tmp_path, max_bytes=3 * size)
    for cut, seconds_ago in (("a", 300), ("b", 200), ("c", 100)):
        store.save(key(cut), features())
        used(store, cut, seconds_ago)
    store.load(key("a"))  # a read makes "a" the most recently used

    store.save(key("d"), features())

    assert [store.load(key(cut)) is not None for cut in "abcd"] == [True, False, True, True]


def test_entries_beyond_the_cap_never_include_the_one_just_written(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, max_bytes=10)  # smaller than any entry

    store.save(key(), features())

    assert store.load(key()) is not None


def test_clear_older_than_keeps_recently_used_entries(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, max_bytes=10**9)
    store.save(key("old"), features())
    store.save(key("new"), features())
    (old,) = [entry for entry in store.entries() if entry.key["cut"] == "old"]
    long_ago = time.time() - 7200
    os.utime(tmp_path / f"{old.digest}.json", (long_ago, long_ago))

    removed = store.clear(older_than_seconds=3600)

    assert removed == [old.digest]
    assert [entry.key["cut"] for entry in store.entries()] == ["new"]


PRODUCER = """
import sys, time
import numpy as np
from capsweep.train.feature_keys import FeatureKey
from capsweep.train.feature_store import FeatureStore

root, start = sys.argv[1], float(sys.argv[2])
key = FeatureKey("small_resnet", "arch", "weights", "unit", 32, "data", "cut", "float32")
values = np.random.default_rng(0).standard_normal((2000, 8, 8, 16)).astype("float32")
while time.time() < start:
    pass
for _ in range(5):
    FeatureStore(root, max_bytes=10**9).save(key, values)
"""


def test_two_processes_producing_one_entry_at_once_leave_a_valid_entry(tmp_path: Path) -> None:
    start = time.time() + 3.0  # both have imported NumPy by then
    producers = [
        subprocess.Popen([sys.executable, "-c", PRODUCER, str(tmp_path), str(start)])
        for _ in range(2)
    ]
    assert [producer.wait(timeout=120) for producer in producers] == [0, 0]

    expected = np.random.default_rng(0).standard_normal((2000, 8, 8, 16)).astype("float32")
    stored = FeatureStore(tmp_path, max_bytes=10**9).load(
        FeatureKey("small_resnet", "arch", "weights", "unit", 32, "data", "cut", "float32")
    )
    assert stored is not None
    np.testing.assert_array_equal(stored, expected)
    assert not list(tmp_path.glob(".tmp-*"))


def digit_like(seed: int) -> tuple[list[Split], np.ndarray, np.ndarray]:
    """Three splits of 30 distinct images, drawn by ``seed`` from the same pool."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (30, 4, 4, 3)).astype("uint8")
    labels = np.arange(30) % 3
    order = np.random.default_rng(seed).permutation(30)
    parts = np.split(order, [10, 20])
    return [Split(images, labels[part], part) for part in parts], images, labels


def test_redrawing_the_split_keeps_the_data_fingerprint() -> None:
    first, _, _ = digit_like(seed=0)
    second, _, _ = digit_like(seed=1)

    assert image_pool(first).fingerprint == image_pool(second).fingerprint


def test_a_changed_label_changes_the_data_fingerprint() -> None:
    splits, images, labels = digit_like(seed=0)
    relabelled = labels.copy()
    relabelled[0] = (relabelled[0] + 1) % 3
    changed = [Split(images, relabelled[split.rows], split.rows) for split in splits]

    assert image_pool(splits).fingerprint != image_pool(changed).fingerprint


@pytest.mark.parametrize("seed", [0, 1])
def test_each_split_finds_the_feature_row_of_its_own_images(seed: int) -> None:
    splits, _, _ = digit_like(seed)
    pool = image_pool(splits)
    # "Features" that are the images themselves, one row per distinct image.
    rows = np.stack([splits[split].images[position] for split, position in pool.first])

    for split, split_rows in zip(splits, pool.split_rows, strict=True):
        np.testing.assert_array_equal(rows[split_rows], split.images)
