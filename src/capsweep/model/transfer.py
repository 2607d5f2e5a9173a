"""Assemble a transfer model: preprocessing, a (partly) frozen backbone and a head."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras

from capsweep.model.augment import augmentation_layers
from capsweep.model.capacity import CapacityReport, Unfrozen, capacity_report, unfreeze_units
from capsweep.model.heads import apply_head
from capsweep.model.layers import ImagePreprocessing
from capsweep.settings import CapacityConfig, HeadConfig


@dataclass
class TransferModel:
    """A compiled-ready transfer model and its capacity accounting."""

    model: keras.Model
    backbone: keras.Model
    unfrozen: Unfrozen
    report: CapacityReport


def _param_count(weights: Any) -> int:
    return sum(int(keras.ops.size(weight)) for weight in weights)


def build_transfer_model(
    backbone: keras.Model,
    preprocessing: str,
    num_classes: int,
    capacity: CapacityConfig,
    head: HeadConfig,
    augment: Sequence[str] = (),
) -> TransferModel:
    """Freeze ``backbone`` to ``capacity``, and put preprocessing and a head around it.

    The backbone is called with ``training=False`` unless ``capacity.train_bn``, so its
    BatchNorm layers use their moving statistics even while the head trains. ``augment``
    names random augmentations (``data.augment``) applied before the backbone, in
    training only.
    """
    unfrozen = unfreeze_units(
        backbone,
        capacity.unfreeze,
        capacity.unit,
        position=capacity.position,
        train_bn=capacity.train_bn,
    )
    inputs = keras.Input(backbone.input_shape[1:], name="image")
    x = ImagePreprocessing(preprocessing, name="preprocessing")(inputs)
    for layer in augmentation_layers(augment):
        x = layer(x)
    x = backbone(x, training=None if capacity.train_bn else False)
    outputs = apply_head(x, num_classes, head)
    model = keras.Model(inputs, outputs, name=f"{backbone.name}_transfer")
    head_weights = [w for layer in model.layers if layer is not backbone for w in layer.weights]
    head_trainable = [
        w for layer in model.layers if layer is not backbone for w in layer.trainable_weights
    ]
    report = capacity_report(
        backbone, _param_count(head_trainable), _param_count(head_weights), unfrozen
    )
    return TransferModel(model=model, backbone=backbone, unfrozen=unfrozen, report=report)


def head_parameters(
    feature_shape: tuple[int, ...], num_classes: int, head: HeadConfig
) -> tuple[int, int]:
    """Trainable and total parameters of a head on features of ``feature_shape``."""
    features = keras.Input(feature_shape)
    outputs = apply_head(features, num_classes, head)
    model = keras.Model(features, outputs)
    return _param_count(model.trainable_weights), _param_count(model.weights)
