"""Splitting a transfer model at its cut: prefix + suffix predict what the whole model does."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from capsweep.model.split import cut_index, replace_tensors
from capsweep.settings import CapacityConfig, HeadConfig, Unit

SETTINGS = [
    (0, Unit.block),
    (1, Unit.block),
    (2, Unit.block),
    (2, Unit.weighted_layer),
]


def transfer_model(name: str, unfreeze: int, unit: Unit) -> Any:
    import keras

    from capsweep.model.backbones import build_backbone
    from capsweep.model.transfer import build_transfer_model

    keras.utils.set_random_seed(0)
    filters = [4, 8, 8] if name == "small_resnet" else None
    backbone = build_backbone(name, 32, None, filters=filters)
    head = HeadConfig(depth=1, width=8, dropout=0.2)
    return build_transfer_model(backbone, "unit", 3, CapacityConfig(unfreeze, unit), head)


def images(size: int = 32) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (6, size, size, 3)).astype("float32")


def predict(model: Any, inputs: Any) -> Any:
    """Inference-mode outputs, eagerly (tracing a predict function per model is slower here)."""
    outputs = model(inputs, training=False)
    return [np.asarray(o) for o in outputs] if isinstance(outputs, list) else np.asarray(outputs)


@pytest.mark.parametrize("backbone", ["small_resnet", "mobilenetv2"])
@pytest.mark.parametrize(("unfreeze", "unit"), SETTINGS)
def test_prefix_then_suffix_predicts_what_the_whole_model_predicts(
    backbone: str, unfreeze: int, unit: Unit
) -> None:
    from capsweep.model.split import feature_extractor, find_cut, trainable_suffix

    transfer = transfer_model(backbone, unfreeze, unit)
    cut = find_cut(transfer.backbone)
    (features,) = predict(feature_extractor(transfer.model, transfer.backbone, [cut]), images())
    suffix = trainable_suffix(transfer.model, transfer.backbone, cut)

    np.testing.assert_allclose(
        predict(suffix, features),
        predict(transfer.model, images()),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize(("unfreeze", "unit"), SETTINGS)
def test_the_suffix_trains_exactly_the_whole_models_trainable_weights(
    unfreeze: int, unit: Unit
) -> None:
    from capsweep.model.split import find_cut, trainable_suffix

    transfer = transfer_model("small_resnet", unfreeze, unit)
    suffix = trainable_suffix(transfer.model, transfer.backbone, find_cut(transfer.backbone))

    assert {id(v) for v in suffix.trainable_weights} == {
        id(v) for v in transfer.model.trainable_weights
    }


def test_nothing_unfrozen_cuts_at_the_backbone_output() -> None:
    from capsweep.model.split import find_cut

    transfer = transfer_model("small_resnet", 0, Unit.block)

    assert find_cut(transfer.backbone) == transfer.backbone.layers[-1].name


def test_one_unfrozen_block_cuts_at_the_end_of_the_block_before_it() -> None:
    from capsweep.model.split import find_cut

    transfer = transfer_model("small_resnet", 1, Unit.block)

    assert find_cut(transfer.backbone) == "stage3_block1_out"


@pytest.mark.parametrize(("unfreeze", "unit"), SETTINGS)
def test_planned_cut_agrees_with_the_cut_of_the_frozen_model(unfreeze: int, unit: Unit) -> None:
    from capsweep.model.split import find_cut, planned_cut

    transfer = transfer_model("small_resnet", 0, Unit.block)
    frozen_as_asked = transfer_model("small_resnet", unfreeze, unit)

    assert planned_cut(transfer.backbone, unfreeze, unit) == find_cut(frozen_as_asked.backbone)


def test_one_forward_pass_yields_the_features_of_several_cuts() -> None:
    from capsweep.model.split import feature_extractor, planned_cut

    transfer = transfer_model("small_resnet", 0, Unit.block)
    cuts = [planned_cut(transfer.backbone, count, Unit.block) for count in (0, 1, 2)]
    outputs = predict(feature_extractor(transfer.model, transfer.backbone, cuts), images())

    for cut, features in zip(cuts, outputs, strict=True):
        (alone,) = predict(feature_extractor(transfer.model, transfer.backbone, [cut]), images())
        np.testing.assert_allclose(features, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("is_cut", "trains", "expected"),
    [
        ([True, True, True], [False, False, False], 2),  # nothing trains: the output
        ([True, False, True, True], [False, False, False, True], 2),
        ([True, False, False, True], [False, False, True, True], 0),  # only the input
        ([True, True, True], [False, True, True], 0),
    ],
)
def test_cut_index_is_the_last_cut_point_before_the_first_trained_layer(
    is_cut: list[bool], trains: list[bool], expected: int
) -> None:
    assert cut_index(is_cut, trains) == expected


def test_replace_tensors_refuses_a_tensor_from_before_the_cut() -> None:
    recorded = {"class_name": "__keras_tensor__", "config": {"keras_history": ["early", 0, 0]}}

    with pytest.raises(ValueError, match="before the cut"):
        replace_tensors([recorded], {("cut", 0): ["x"]}, "late")


def test_a_memory_mapped_image_file_is_hashed_once_per_version(tmp_path: Any) -> None:
    import os

    from capsweep.train import feature_keys

    path = tmp_path / "images.npy"
    np.save(path, np.arange(4 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 3))
    mapped = np.load(path, mmap_mode="r")

    first = feature_keys.source_hashes(mapped)
    assert first is not None
    np.testing.assert_array_equal(first, feature_keys.image_hashes(mapped))
    assert feature_keys.source_hashes(mapped) is first  # not hashed again
    os.utime(path, ns=(1, 1))  # another version of the file
    assert feature_keys.source_hashes(np.load(path, mmap_mode="r")) is not first
    assert feature_keys.source_hashes(np.arange(3)) is None  # in memory: hashed as used
