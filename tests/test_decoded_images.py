"""Image folders decoded once into a cache entry, memory-mapped and split without copies."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import capsweep.data.decoding
from capsweep.data import Dataset, Split, load_dataset
from capsweep.data.dataset import gather
from capsweep.data.decoded import IMAGES, MANIFEST, OWNER, PARTIAL
from capsweep.errors import CapsweepConfigError
from capsweep.settings import DataConfig

CLASSES = ("ant", "bee", "cat")
PER_CLASS = 10
SIZE = 4


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """3 classes of 10 flat-colored PNGs: red tells the class, green the image number."""
    root = tmp_path / "images"
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for number in range(PER_CLASS):
            Image.new("RGB", (6, 6), (80 * label, 20 * number, 7)).save(
                root / name / f"{number:02d}.png"
            )
    return root


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "outputs" / "cache" / "images"


def load(folder: Path, cache: Path | None, split_seed: int = 0) -> Dataset:
    config = DataConfig(name="image_folder", path=str(folder), split_seed=split_seed)
    return load_dataset(config, SIZE, cache_dir=cache)


def entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if not p.name.startswith("."))


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    decoded: list[Path] = []
    real = capsweep.data.decoding.decode_image

    def counting(path: Path, size: int) -> np.ndarray:
        decoded.append(path)
        return real(path, size)

    monkeypatch.setattr(capsweep.data.decoding, "decode_image", counting)
    return decoded


def test_second_load_reads_the_entry_without_decoding(
    folder: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = count_decodes(monkeypatch)
    first = load(folder, cache)
    assert len(decoded) == 3 * PER_CLASS

    second = load(folder, cache)

    assert len(decoded) == 3 * PER_CLASS
    np.testing.assert_array_equal(first.train.images, second.train.images)


def test_cached_images_equal_images_decoded_in_memory(folder: Path, cache: Path) -> None:
    cached, in_memory = load(folder, cache), load(folder, None)

    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(cached, name).images, getattr(in_memory, name).images)


def test_entry_holds_a_manifest_naming_the_classes_and_count(folder: Path, cache: Path) -> None:
    import json

    load(folder, cache)

    (entry,) = entries(cache)
    manifest = json.loads((entry / MANIFEST).read_text())
    assert manifest["class_names"] == list(CLASSES)
    assert manifest["count"] == 3 * PER_CLASS
    assert manifest["shape"] == [3 * PER_CLASS, SIZE, SIZE, 3]
    assert manifest["key"] == entry.name


def test_changed_file_gives_a_new_entry(folder: Path, cache: Path) -> None:
    load(folder, cache)
    changed = folder / "bee" / "03.png"
    Image.new("RGB", (6, 6), (80, 255, 255)).save(changed)
    os.utime(changed, ns=(1_000_000_000, 1_000_000_000))

    data = load(folder, cache)

    assert len(entries(cache)) == 2
    everything = np.concatenate([data.train.images, data.val.images, data.test.images])
    assert (everything[..., 2] == 255).any()


def test_size_is_part_of_the_key(folder: Path, cache: Path) -> None:
    config = DataConfig(name="image_folder", path=str(folder))
    load_dataset(config, SIZE, cache_dir=cache)

    other = load_dataset(config, SIZE + 2, cache_dir=cache)

    assert len(entries(cache)) == 2
    assert other.train.images.shape[1:] == (SIZE + 2, SIZE + 2, 3)


def test_truncated_array_file_is_rebuilt(
    folder: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = load(folder, cache).train.images
    (entry,) = entries(cache)
    images = entry / IMAGES
    with open(images, "r+b") as file:
        file.truncate(images.stat().st_size - 10)
    decoded = count_decodes(monkeypatch)

    again = load(folder, cache)

    assert len(decoded) == 3 * PER_CLASS
    np.testing.assert_array_equal(again.train.images, expected)
    assert entries(cache) == [entry]
    assert not list(cache.glob(f"{PARTIAL}*"))


def test_exif_rotated_jpeg_loads_upright(tmp_path: Path, cache: Path) -> None:
    # Stored sideways (left red, right blue) with orientation 6 ("rotate 90° clockwise
    # to display"): upright, red is on top and blue at the bottom.
    stored = np.zeros((32, 32, 3), dtype=np.uint8)
    stored[:, :16] = (255, 0, 0)
    stored[:, 16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    for name in ("up", "down"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for number in range(5):
            Image.fromarray(stored).save(
                tmp_path / "photos" / name / f"{number}.jpg", exif=exif.tobytes(), quality=95
            )
    config = DataConfig(name="image_folder", path=str(tmp_path / "photos"))

    image = load_dataset(config, 8, cache_dir=cache).train.images[0].astype(int)

    assert image[0, :, 0].min() > 200 and image[0, :, 2].max() < 60  # top row red
    assert image[-1, :, 2].min() > 200 and image[-1, :, 0].max() < 60  # bottom row blue


def test_concurrent_producers_both_end_with_a_valid_entry(folder: Path, cache: Path) -> None:
    # Two processes decode the same folder at once (slowed so that they overlap), each
    # writing its own partial entry; one publishes, the other adopts or replaces it.
    go = folder.parent / "go"
    script = textwrap.dedent(
        f"""
        import hashlib, time
        from pathlib import Path
        import capsweep.data.decoding as decoding
        from capsweep.data import load_dataset
        from capsweep.settings import DataConfig

        real = decoding.decode_image
        decoded = []
        def slow(path, size):
            decoded.append(path)
            time.sleep(0.02)
            return real(path, size)
        decoding.decode_image = slow
        while not Path({str(go)!r}).exists():
            time.sleep(0.01)
        data = load_dataset(
            DataConfig(name="image_folder", path={str(folder)!r}), {SIZE},
            cache_dir=Path({str(cache)!r}),
        )
        print(len(decoded), hashlib.sha256(data.train.images.tobytes()).hexdigest())
        """
    )
    producers = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    go.touch()
    outputs = [producer.communicate(timeout=120)[0].strip() for producer in producers]

    assert [producer.returncode for producer in producers] == [0, 0]
    expected = load(folder, None).train.images
    import hashlib

    # Both read the right images, whichever decoded them: a producer that starts late may
    # find the other's entry published (decoding nothing), or race it (decoding all).
    digest = hashlib.sha256(expected.tobytes()).hexdigest()
    counts = [int(output.split()[0]) for output in outputs]
    assert [output.split()[1] for output in outputs] == [digest, digest]
    assert set(counts) <= {0, 3 * PER_CLASS} and 3 * PER_CLASS in counts
    assert len(entries(cache)) == 1
    assert not list(cache.glob(f"{PARTIAL}*"))


def test_killed_writers_partial_entry_is_not_trusted_and_is_removed(
    folder: Path, cache: Path
) -> None:
    # What a killed writer leaves: a partial folder (never the key itself) and its owner.
    import json
    import socket

    load(folder, cache)
    (entry,) = entries(cache)
    partial = cache / f"{PARTIAL}{entry.name}-killed"
    entry.rename(partial)
    (partial / IMAGES).write_bytes(b"half")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (partial / OWNER).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))

    data = load(folder, cache)

    assert entries(cache) == [entry]
    assert not partial.exists()
    assert len(data.train) == 18


def test_unreadable_image_names_the_file_and_leaves_no_entry(folder: Path, cache: Path) -> None:
    broken = folder / "bee" / "x.png"
    broken.write_text("not an image")

    with pytest.raises(CapsweepConfigError) as raised:
        load(folder, cache)

    assert (raised.value.key, raised.value.value) == ("data.path", str(broken))
    assert "is not a readable image" in str(raised.value)
    assert list(cache.iterdir()) == []


def identities(split: Split) -> list[tuple[int, int]]:
    """(class, image number) of each image of ``split``, in order, read from its colors."""
    return [(int(image[0, 0, 0]) // 80, int(image[0, 0, 1]) // 20) for image in split.images]


def test_every_split_holds_its_fraction_of_every_class(folder: Path, cache: Path) -> None:
    data = load(folder, cache, split_seed=5)

    # test_fraction and val_fraction are 0.2 of each class's 10 images.
    assert Counter(data.test.labels.tolist()) == {0: 2, 1: 2, 2: 2}
    assert Counter(data.val.labels.tolist()) == {0: 2, 1: 2, 2: 2}
    assert Counter(data.train.labels.tolist()) == {0: 6, 1: 6, 2: 6}


def test_the_splits_hold_every_image_once(folder: Path, cache: Path) -> None:
    data = load(folder, cache, split_seed=5)

    held = identities(data.train) + identities(data.val) + identities(data.test)
    assert sorted(held) == [(label, n) for label in range(len(CLASSES)) for n in range(PER_CLASS)]


def test_each_image_keeps_the_label_of_its_class_folder(folder: Path, cache: Path) -> None:
    data = load(folder, cache, split_seed=5)

    for name in ("train", "val", "test"):
        split = getattr(data, name)
        classes = [label for label, _ in identities(split)]
        assert split.labels.tolist() == classes, name


def test_the_same_split_seed_draws_the_same_splits(folder: Path, cache: Path) -> None:
    first, again = load(folder, cache, split_seed=5), load(folder, cache, split_seed=5)

    for name in ("train", "val", "test"):
        assert identities(getattr(first, name)) == identities(getattr(again, name)), name


def test_another_split_seed_redraws_training_and_validation_but_not_the_test_images(
    folder: Path, cache: Path
) -> None:
    one, other = load(folder, cache, split_seed=0), load(folder, cache, split_seed=5)

    assert sorted(identities(one.test)) == sorted(identities(other.test))
    assert sorted(identities(one.val)) != sorted(identities(other.val))


def test_splits_hold_rows_of_one_shared_memory_map(folder: Path, cache: Path) -> None:
    data = load(folder, cache)

    assert isinstance(data.train.source, np.memmap)
    assert data.train.source is data.val.source is data.test.source
    assert data.train.rows is not None and len(data.train.rows) == len(data.train) == 18


def test_gather_from_a_memory_map_equals_fancy_indexing(tmp_path: Path) -> None:
    path = tmp_path / "rows.npy"
    source = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(50, 2, 2, 3))
    source[:] = np.arange(50, dtype=np.uint8)[:, None, None, None]
    source.flush()
    mapped = np.load(path, mmap_mode="r")
    rows = np.array([7, 3, 4, 5, 49, 0, 0, 1, 2])

    np.testing.assert_array_equal(gather(mapped, rows), np.asarray(mapped)[rows])
