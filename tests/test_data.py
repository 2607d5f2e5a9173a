"""Data sets: an image folder and the bundled digits, split stratified and seeded."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from capsweep.data import Dataset, digits_source, digits_target, load_dataset
from capsweep.errors import CapsweepConfigError
from capsweep.settings import DataConfig

CLASSES = ("ant", "bee", "cat")
PER_CLASS = 10
SIZE = 4


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """3 classes of 10 flat-colored PNGs: red tells the class, green the image number.

    The "bee" images are RGBA, so loading must convert to RGB; "ant" also holds a text file.
    """
    root = tmp_path / "images"
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for number in range(PER_CLASS):
            color = (80 * label, 20 * number, 7)
            image = Image.new("RGB", (6, 6), color)
            if name == "bee":
                image = image.convert("RGBA")
            image.save(root / name / f"{number:02d}.png")
    (root / "ant" / "notes.txt").write_text("not an image, and not named like one")
    return root


def load(folder: Path, split_seed: int = 0, test_seed: int = 0) -> Dataset:
    config = DataConfig(
        name="image_folder", path=str(folder), split_seed=split_seed, test_seed=test_seed
    )
    return load_dataset(config, SIZE)


def identities(images: np.ndarray) -> list[tuple[int, int]]:
    """(class from red, number from green) of each flat-colored image."""
    return [(int(image[0, 0, 0]) // 80, int(image[0, 0, 1]) // 20) for image in images]


def splits(data: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        "train": (data.train.images, data.train.labels),
        "val": (data.val.images, data.val.labels),
        "test": (data.test.images, data.test.labels),
    }


def test_image_folder_classes_are_its_sub_folders_in_sorted_order(folder: Path) -> None:
    assert load(folder).class_names == CLASSES


def test_image_folder_labels_match_the_folder_each_image_came_from(folder: Path) -> None:
    for images, labels in splits(load(folder)).values():
        assert [label for label, _ in identities(images)] == labels.tolist()


def test_image_folder_images_are_resized_uint8_rgb(folder: Path) -> None:
    for images, _ in splits(load(folder)).values():
        assert images.shape[1:] == (SIZE, SIZE, 3)
        assert images.dtype == np.uint8


def test_image_folder_puts_every_image_in_exactly_one_split(folder: Path) -> None:
    seen = [item for images, _ in splits(load(folder)).values() for item in identities(images)]

    assert sorted(seen) == [(label, n) for label in range(len(CLASSES)) for n in range(PER_CLASS)]


def test_image_folder_split_is_stratified_with_every_class_in_every_split(folder: Path) -> None:
    counts = {name: Counter(labels.tolist()) for name, (_, labels) in splits(load(folder)).items()}

    # 20% of 30 images to test (2 per class), 20% of 30 to validation (2 per class).
    assert counts == {
        "train": {0: 6, 1: 6, 2: 6},
        "val": {0: 2, 1: 2, 2: 2},
        "test": {0: 2, 1: 2, 2: 2},
    }


def test_image_folder_split_is_reproducible_with_the_same_seed(folder: Path) -> None:
    first, second = load(folder, split_seed=3), load(folder, split_seed=3)

    for (images, labels), (again, labels_again) in zip(
        splits(first).values(), splits(second).values(), strict=True
    ):
        np.testing.assert_array_equal(images, again)
        np.testing.assert_array_equal(labels, labels_again)


def test_image_folder_split_seed_redraws_train_and_validation(folder: Path) -> None:
    first, other = load(folder, split_seed=0), load(folder, split_seed=1)

    assert sorted(identities(first.val.images)) != sorted(identities(other.val.images))


def test_image_folder_test_split_stays_when_the_split_seed_changes(folder: Path) -> None:
    first, other = load(folder, split_seed=0), load(folder, split_seed=1)

    assert sorted(identities(first.test.images)) == sorted(identities(other.test.images))


def test_image_folder_test_split_follows_the_test_seed(folder: Path) -> None:
    first, other = load(folder, test_seed=0), load(folder, test_seed=1)

    assert sorted(identities(first.test.images)) != sorted(identities(other.test.images))


def test_image_folder_with_fewer_classes_than_data_num_classes_is_refused(folder: Path) -> None:
    config = DataConfig(name="image_folder", path=str(folder), num_classes=4)

    with pytest.raises(CapsweepConfigError, match=r"data.num_classes=4: but .* has 3 classes"):
        load_dataset(config, SIZE)


def test_image_folder_class_with_too_few_images_is_refused(folder: Path) -> None:
    for path in sorted((folder / "cat").iterdir())[2:]:
        path.unlink()

    with pytest.raises(CapsweepConfigError, match=r"fewer than 3 images: \{'cat': 2\}"):
        load(folder)


# digits


def test_digits_target_has_train_per_class_labelled_images_of_each_class() -> None:
    config = DataConfig(train_per_class=7, val_size=100)

    data = digits_target(config, 8)

    assert Counter(data.train.labels.tolist()) == {label: 7 for label in range(5)}
    assert len(data.val) == 100
    assert data.class_names == ("5", "6", "7", "8", "9")


def test_digits_target_test_split_stays_when_the_split_seed_changes() -> None:
    first = digits_target(DataConfig(split_seed=0), 8)
    other = digits_target(DataConfig(split_seed=1), 8)

    np.testing.assert_array_equal(first.test.images, other.test.images)
    assert not np.array_equal(first.train.images, other.train.images)


def test_digits_target_splits_partition_the_target_images() -> None:
    from sklearn.datasets import load_digits

    data = digits_target(DataConfig(), 8)

    target_images = int(np.isin(load_digits().target, [5, 6, 7, 8, 9]).sum())
    assert len(data.train) + len(data.val) + len(data.test) == target_images


def test_digits_source_holds_only_the_source_classes() -> None:
    data = digits_source(DataConfig(), 8, seed=0)

    assert data.class_names == ("0", "1", "2", "3", "4")
    assert set(data.train.labels.tolist()) == set(data.val.labels.tolist()) == set(range(5))


def test_digits_source_and_target_classes_must_not_overlap() -> None:
    from capsweep.settings.validate import check_data

    config = DataConfig(source_classes=[0, 1, 2], target_classes=[2, 3])

    with pytest.raises(CapsweepConfigError, match=r"data.target_classes=\[2, 3\]: shares classes"):
        check_data(config)


def test_planned_class_count_is_the_count_image_folder_loads(folder: Path) -> None:
    from capsweep.data import planned_num_classes

    (folder / "empty_class").mkdir()
    config = DataConfig(name="image_folder", path=str(folder))

    assert planned_num_classes(config) == load_dataset(config, SIZE).num_classes == 3
