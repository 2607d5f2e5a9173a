"""Backbones by name, their options and weights files, and the preprocessing layer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig

from capsweep.errors import CapsweepConfigError


def conv_filters(model: object, names: list[str]) -> list[int]:
    return [model.get_layer(name).filters for name in names]  # type: ignore[attr-defined]


def test_small_resnet_is_built_with_the_configured_filters_and_blocks() -> None:
    from capsweep.model.backbones import build_backbone

    model = build_backbone("small_resnet", 16, None, filters=[4, 8, 12], blocks_per_stage=1)

    assert conv_filters(model, ["stem_conv", "stage1_block1_1_conv"]) == [4, 4]
    assert conv_filters(model, ["stage2_block1_1_conv", "stage3_block1_1_conv"]) == [8, 12]
    assert not any(layer.name.startswith("stage1_block2") for layer in model.layers)


def test_a_trial_builds_small_resnet_with_the_configured_filters(
    compose: Callable[..., DictConfig], tmp_path: Path
) -> None:
    from capsweep.hydra_settings import settings_from
    from capsweep.train.trial import prepare_trial

    settings = settings_from(
        compose(
            "backbone.weights=null",
            "backbone.input_size=16",
            "backbone.filters=[4,8,8]",
            f"paths.outputs={tmp_path}",
        )
    )

    transfer = prepare_trial(settings).transfer

    assert transfer.backbone.get_layer("stem_conv").filters == 4


def test_weights_saved_from_a_backbone_load_into_a_fresh_build(tmp_path: Path) -> None:
    import keras

    from capsweep.model.backbones import build_backbone

    keras.utils.set_random_seed(1)
    saved = build_backbone("small_resnet", 8, None, filters=[2, 4, 4])
    path = tmp_path / "saved.weights.h5"
    saved.save_weights(str(path))
    keras.utils.set_random_seed(2)

    loaded = build_backbone("small_resnet", 8, str(path), filters=[2, 4, 4])

    for before, after in zip(saved.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


def test_small_resnet_has_no_imagenet_weights() -> None:
    from capsweep.model.backbones import build_backbone

    with pytest.raises(CapsweepConfigError, match="small_resnet has no ImageNet weights"):
        build_backbone("small_resnet", 8, "imagenet")


@pytest.mark.parametrize("size", [7, 8.0, True, "32"])
def test_input_size_must_be_a_whole_number_at_least_the_minimum(size: object) -> None:
    from capsweep.settings.validate import check_input_size

    with pytest.raises(CapsweepConfigError, match="small_resnet needs square images of at least 8"):
        check_input_size("small_resnet", size)


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_preprocessing_matches_keras_preprocess_input(mode: str) -> None:
    from keras.applications.imagenet_utils import preprocess_input

    from capsweep.model.layers import ImagePreprocessing

    images = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3)).astype("float32")

    ours = np.asarray(ImagePreprocessing(mode)(images))

    np.testing.assert_allclose(ours, preprocess_input(images.copy(), mode=mode), rtol=1e-5)


def test_preprocessing_layer_survives_a_saved_model_round_trip(tmp_path: Path) -> None:
    import keras

    from capsweep.model.layers import ImagePreprocessing

    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, ImagePreprocessing("unit", name="preprocessing")(inputs))
    model.save(tmp_path / "model.keras")

    loaded = keras.saving.load_model(tmp_path / "model.keras")

    assert loaded.get_layer("preprocessing").mode == "unit"
    np.testing.assert_allclose(loaded(np.full((1, 4, 4, 3), 255.0)), 1.0)
