"""The digits task under an input-level shift: fixed corrupted images, and target images
the pretraining never saw when the target classes are the source classes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from capsweep.data.corruptions import corrupt
from capsweep.data.digits import digits_source, digits_target
from capsweep.errors import CapsweepConfigError
from capsweep.settings import DataConfig, check_settings
from capsweep.settings.choices import Corruption
from capsweep.settings.schema import CapsweepConfig

SAME_CLASSES = {"target_classes": [0, 1, 2, 3, 4]}


def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3)).astype(np.uint8)


@pytest.mark.parametrize("kind", [c for c in Corruption if c is not Corruption.none])
def test_a_corruption_is_the_same_every_time_and_changes_the_images(kind: Corruption) -> None:
    once, again = corrupt(images(), kind), corrupt(images(), kind)

    np.testing.assert_array_equal(once, again)
    assert once.shape == images().shape and once.dtype == np.uint8
    assert not np.array_equal(once, images())


def test_no_corruption_leaves_the_images_as_they_are() -> None:
    np.testing.assert_array_equal(corrupt(images(), Corruption.none), images())


def test_invert_turns_strokes_dark_on_light() -> None:
    np.testing.assert_array_equal(corrupt(images(), Corruption.invert), 255 - images())


def test_contrast_squeezes_the_range_around_mid_grey() -> None:
    squeezed = corrupt(np.array([[[[0, 255, 128]]]], dtype=np.uint8), Corruption.contrast)

    assert squeezed.tolist() == [[[[89, 166, 128]]]]  # 127.5 ± 127.5 * 0.3, rounded


def test_blur_lowers_the_differences_between_neighbouring_pixels() -> None:
    blurred = corrupt(images(), Corruption.blur).astype(float)

    assert (
        np.abs(np.diff(blurred, axis=1)).mean()
        < np.abs(np.diff(images().astype(float), axis=1)).mean() / 2
    )


def test_the_target_task_on_the_source_classes_uses_images_the_pretraining_never_saw() -> None:
    data = DataConfig(**SAME_CLASSES, val_size=100)
    source = digits_source(data, 8, seed=0)
    target = digits_target(data, 8)  # no corruption: the images themselves are compared

    seen = {image.tobytes() for split in (source.train, source.val) for image in split.images}
    used = [
        image.tobytes()
        for split in (target.train, target.val, target.test)
        for image in split.images
    ]
    assert len(used) > 400
    assert not seen.intersection(used)


def test_the_same_classes_without_a_corruption_are_refused() -> None:
    settings = CapsweepConfig(data=DataConfig(**SAME_CLASSES))

    with pytest.raises(CapsweepConfigError) as raised:
        check_settings(settings)

    assert str(raised.value).startswith("data.target_classes=[0, 1, 2, 3, 4]: shares classes")
    assert "data.corruption=invert|noise|blur|contrast" in str(raised.value)


def test_the_same_classes_under_a_corruption_are_accepted() -> None:
    data = DataConfig(**SAME_CLASSES, corruption=Corruption.invert)

    check_settings(dataclasses.replace(CapsweepConfig(), data=data))


def test_holding_images_out_is_part_of_the_pretrained_weights_key(tmp_path: object) -> None:
    from capsweep.settings import BackboneConfig
    from capsweep.train.pretrain import source_weights_path

    default = source_weights_path(BackboneConfig(), DataConfig(), "outputs")
    shifted = source_weights_path(
        BackboneConfig(), DataConfig(**SAME_CLASSES, corruption=Corruption.noise), "outputs"
    )
    noise_free = source_weights_path(
        BackboneConfig(), DataConfig(**SAME_CLASSES, corruption=Corruption.invert), "outputs"
    )

    assert default != shifted
    assert shifted == noise_free  # the corruption changes no pretraining
