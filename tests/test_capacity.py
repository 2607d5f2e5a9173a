"""Freezing and parameter accounting on ResNet50: the seed post's numbers and the units.

ResNet50 is built once for this module (random weights, 224 px). Every test that changes
its trainable flags goes through ``unfreeze_units``, which resets all of them first.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest

from capsweep.settings import CapacityConfig, HeadConfig, Unit

NUM_CLASSES = 4


@pytest.fixture(scope="module")
def resnet50() -> Any:
    from capsweep.model.backbones import build_backbone

    return build_backbone("resnet50", 224, None)


def transfer_model(backbone: Any, capacity: CapacityConfig, head: HeadConfig) -> Any:
    from capsweep.model.transfer import build_transfer_model

    return build_transfer_model(backbone, "caffe", NUM_CLASSES, capacity, head)


def size(weights: Any) -> int:
    return sum(math.prod(weight.shape) for weight in weights)


def is_batch_norm(layer: Any) -> bool:
    return type(layer).__name__ == "BatchNormalization"


# the seed post's numbers


def test_resnet50_backbone_has_175_layers_and_23_587_712_params(resnet50: Any) -> None:
    assert len(resnet50.layers) == 175
    assert resnet50.count_params() == 23_587_712


def test_frozen_resnet50_with_pooling_and_a_classifier_trains_8_196_params(resnet50: Any) -> None:
    transfer = transfer_model(resnet50, CapacityConfig(unfreeze=0), HeadConfig(depth=0))

    # GlobalAveragePooling2D -> Dense(4): 2048 * 4 weights + 4 biases.
    assert transfer.report.trainable_params == 8_196
    assert transfer.report.backbone_params == 23_587_712


def test_frozen_resnet50_with_a_256_unit_hidden_layer_trains_525_572_params(
    resnet50: Any,
) -> None:
    transfer = transfer_model(resnet50, CapacityConfig(unfreeze=0), HeadConfig(depth=1, width=256))

    # Dense(256): 2048 * 256 + 256, then Dense(4): 256 * 4 + 4.
    assert transfer.report.trainable_params == 525_572


# units


def test_unfreezing_the_last_two_layers_trains_nothing_and_names_the_smallest_count_that_does(
    resnet50: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="capsweep.capacity"):
        transfer = transfer_model(
            resnet50, CapacityConfig(unfreeze=2, unit=Unit.layer), HeadConfig(depth=0)
        )

    assert transfer.report.trainable_backbone_params == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "conv5_block3_add, conv5_block3_out" in warnings[0]
    assert "capacity.unfreeze=4 is the smallest layer count that trains weights" in warnings[0]


def test_unfreezing_the_last_four_layers_trains_the_last_convolution_without_a_warning(
    resnet50: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="capsweep.capacity"):
        transfer = transfer_model(
            resnet50, CapacityConfig(unfreeze=4, unit=Unit.layer), HeadConfig(depth=0)
        )

    # conv5_block3_3_conv: a 1x1 convolution from 512 to 2048 channels, with biases.
    assert transfer.report.trainable_backbone_params == 512 * 2048 + 2048
    assert caplog.records == []


def test_weighted_layer_units_never_select_batch_norm_when_train_bn_is_false(
    resnet50: Any,
) -> None:
    from capsweep.model.capacity import unfreeze_units

    unfrozen = unfreeze_units(resnet50, 30, Unit.weighted_layer, train_bn=False)

    assert len(unfrozen.layers) == 30
    assert [name for name in unfrozen.layers if is_batch_norm(resnet50.get_layer(name))] == []
    assert unfrozen.layers[-1] == "conv5_block3_3_conv"


def test_weighted_layer_units_include_batch_norm_when_train_bn_is_true(resnet50: Any) -> None:
    from capsweep.model.capacity import unfreeze_units

    unfrozen = unfreeze_units(resnet50, 1, Unit.weighted_layer, train_bn=True)

    assert unfrozen.layers == ("conv5_block3_3_bn",)
    assert resnet50.get_layer("conv5_block3_3_bn").trainable


@pytest.mark.parametrize("train_bn", [False, True])
def test_batch_norm_in_unfrozen_blocks_trains_only_with_train_bn(
    resnet50: Any, train_bn: bool
) -> None:
    from capsweep.model.capacity import unfreeze_units

    unfrozen = unfreeze_units(resnet50, 2, Unit.block, train_bn=train_bn)
    layers = [resnet50.get_layer(name) for name in unfrozen.layers]

    batch_norms = [layer for layer in layers if is_batch_norm(layer)]
    convolutions = [layer for layer in layers if type(layer).__name__ == "Conv2D"]
    assert len(batch_norms) == len(convolutions) == 6  # 3 per bottleneck block
    assert {layer.trainable for layer in batch_norms} == {train_bn}
    assert {layer.trainable for layer in convolutions} == {True}


def test_unfreezing_resets_what_an_earlier_setting_unfroze(resnet50: Any) -> None:
    from capsweep.model.capacity import unfreeze_units

    unfreeze_units(resnet50, 16, Unit.block)
    unfreeze_units(resnet50, 1, Unit.block)

    trained = {layer.name for layer in resnet50.layers if layer.trainable_weights}
    assert trained == {f"conv5_block3_{index}_conv" for index in (1, 2, 3)}


# accounting


SETTINGS = [
    (CapacityConfig(unfreeze=0), HeadConfig(depth=0)),
    (CapacityConfig(unfreeze=1), HeadConfig(depth=1, width=64)),
    (CapacityConfig(unfreeze=3, train_bn=True), HeadConfig(depth=2, width=32)),
    (CapacityConfig(unfreeze=16), HeadConfig(depth=1, width=16)),
    (CapacityConfig(unfreeze=5, unit=Unit.weighted_layer, train_bn=True), HeadConfig(depth=0)),
    (CapacityConfig(unfreeze=9, unit=Unit.layer), HeadConfig(depth=1, width=8)),
]
SETTING_IDS = [
    "head_only",
    "one_block",
    "three_blocks_train_bn",
    "all_blocks",
    "weighted_layers_train_bn",
    "layers",
]


@pytest.mark.parametrize(("capacity", "head"), SETTINGS, ids=SETTING_IDS)
def test_report_counts_exactly_the_model_trainable_weights(
    resnet50: Any, capacity: CapacityConfig, head: HeadConfig
) -> None:
    transfer = transfer_model(resnet50, capacity, head)

    assert transfer.report.trainable_params == size(transfer.model.trainable_weights)
    assert transfer.report.trainable_backbone_params == size(resnet50.trainable_weights)
    assert transfer.report.non_trainable_params == size(transfer.model.non_trainable_weights)


@pytest.mark.parametrize(("capacity", "head"), SETTINGS, ids=SETTING_IDS)
def test_report_total_equals_the_model_parameter_count(
    resnet50: Any, capacity: CapacityConfig, head: HeadConfig
) -> None:
    transfer = transfer_model(resnet50, capacity, head)

    assert transfer.report.total_params == transfer.model.count_params()
