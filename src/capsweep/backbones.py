"""Backbones by name: keras.applications architectures and a small residual CNN.

Each backbone is a functional ``keras.Model`` without its classifier, taking images that
its own preprocessing layer (part of the transfer model) has already normalized.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from capsweep.errors import CapsweepConfigError


@dataclass(frozen=True)
class Architecture:
    """How to build one backbone family and feed it images."""

    # (input_shape, weights, **options); options are backbone.filters/blocks_per_stage,
    # which only small_resnet uses.
    build: Callable[..., keras.Model]
    preprocessing: str  # a mode of ImagePreprocessing
    min_input_size: int


def _application(constructor: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
    def build(input_shape: tuple[int, int, int], weights: str | None, **_: Any) -> keras.Model:
        return constructor(include_top=False, weights=weights, input_shape=input_shape)

    return build


def small_resnet(
    input_shape: tuple[int, int, int],
    *,
    filters: tuple[int, ...] = (16, 32, 64),
    blocks_per_stage: int = 2,
    bn_momentum: float = 0.9,
) -> keras.Model:
    """A small residual CNN that trains in a minute on a CPU.

    BatchNorm momentum is 0.9 (not Keras' 0.99) so that its moving statistics catch up
    within a short pretraining and the network is accurate in inference mode.
    """
    inputs = keras.Input(input_shape, name="input")
    x = keras.layers.Conv2D(filters[0], 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=bn_momentum, name="stem_bn")(x)
    x = keras.layers.Activation("relu", name="stem_relu")(x)
    for stage, stage_filters in enumerate(filters, start=1):
        for block in range(1, blocks_per_stage + 1):
            prefix = f"stage{stage}_block{block}"
            strides = 2 if stage > 1 and block == 1 else 1
            shortcut = x
            if strides > 1 or x.shape[-1] != stage_filters:
                shortcut = keras.layers.Conv2D(
                    stage_filters, 1, strides=strides, use_bias=False, name=f"{prefix}_0_conv"
                )(x)
                shortcut = keras.layers.BatchNormalization(
                    momentum=bn_momentum, name=f"{prefix}_0_bn"
                )(shortcut)
            y = keras.layers.Conv2D(
                stage_filters,
                3,
                strides=strides,
                padding="same",
                use_bias=False,
                name=f"{prefix}_1_conv",
            )(x)
            y = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{prefix}_1_bn")(y)
            y = keras.layers.Activation("relu", name=f"{prefix}_1_relu")(y)
            y = keras.layers.Conv2D(
                stage_filters, 3, padding="same", use_bias=False, name=f"{prefix}_2_conv"
            )(y)
            y = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{prefix}_2_bn")(y)
            x = keras.layers.Add(name=f"{prefix}_add")([shortcut, y])
            x = keras.layers.Activation("relu", name=f"{prefix}_out")(x)
    return keras.Model(inputs, x, name="small_resnet")


ARCHITECTURES: dict[str, Architecture] = {
    "small_resnet": Architecture(
        build=lambda shape, _weights, **options: small_resnet(shape, **options),
        preprocessing="unit",
        min_input_size=8,
    ),
    "resnet50": Architecture(_application(keras.applications.ResNet50), "caffe", 32),
    "resnet101": Architecture(_application(keras.applications.ResNet101), "caffe", 32),
    "mobilenetv2": Architecture(_application(keras.applications.MobileNetV2), "tf", 32),
    # EfficientNet rescales and normalizes inside the application itself.
    "efficientnetb0": Architecture(_application(keras.applications.EfficientNetB0), "none", 32),
    "efficientnetb1": Architecture(_application(keras.applications.EfficientNetB1), "none", 32),
}

# Where keras.utils.get_file caches downloads (KERAS_HOME, else ~/.keras).
KERAS_CACHE = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def architecture(name: str) -> Architecture:
    """Look up a backbone by name, or raise naming the choices."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise CapsweepConfigError(
            "backbone.name",
            name,
            "unknown backbone",
            choices=sorted(ARCHITECTURES),
            fix="select one with backbone=<name>",
        ) from None


def check_input_size(name: str, input_size: Any) -> int:
    """Return ``input_size`` if ``name`` can take square images of that side."""
    minimum = architecture(name).min_input_size
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < minimum:
        raise CapsweepConfigError(
            "backbone.input_size",
            input_size,
            f"{name} needs square images of at least {minimum} pixels",
            fix=f"set backbone.input_size={max(minimum, 32)} or larger",
        )
    return input_size


def build_backbone(
    name: str,
    input_size: int,
    weights: str | None,
    *,
    filters: Sequence[int] | None = None,
    blocks_per_stage: int | None = None,
) -> keras.Model:
    """Build backbone ``name`` for ``input_size``² RGB images, with ``weights`` loaded.

    Args:
        name: A key of :data:`ARCHITECTURES`.
        input_size: Side of the square input, in pixels.
        weights: ``"imagenet"``, ``None`` (random initialization) or a weights file.
        filters: small_resnet only: filters per stage (``backbone.filters``).
        blocks_per_stage: small_resnet only: residual blocks per stage.

    Raises:
        CapsweepConfigError: unknown name, input too small, weights missing, unreachable or
            not fitting the architecture.
    """
    arch = architecture(name)
    check_input_size(name, input_size)
    shape = (input_size, input_size, 3)
    options: dict[str, Any] = {}
    if filters is not None:
        options["filters"] = tuple(filters)
    if blocks_per_stage is not None:
        options["blocks_per_stage"] = blocks_per_stage
    if weights is None:
        return arch.build(shape, None, **options)
    if weights == "imagenet":
        return _build_imagenet(name, arch, shape)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise CapsweepConfigError(
            "backbone.weights",
            weights,
            "no such weights file",
            fix="give the path of a Keras weights file, imagenet, or null for random weights",
        )
    model = arch.build(shape, None, **options)
    try:
        model.load_weights(str(path))
    except (ValueError, OSError, KeyError) as error:
        raise CapsweepConfigError(
            "backbone.weights",
            weights,
            f"does not fit backbone {name} at input size {input_size} ({error})",
            fix="use weights saved from the same architecture and backbone options",
        ) from None
    return model


def _build_imagenet(name: str, arch: Architecture, shape: tuple[int, int, int]) -> keras.Model:
    if name == "small_resnet":
        raise CapsweepConfigError(
            "backbone.weights",
            "imagenet",
            "small_resnet has no ImageNet weights",
            fix="use backbone.weights=source, a weights file, or null",
        )
    try:
        return arch.build(shape, "imagenet")
    except Exception as error:  # keras.utils.get_file raises plain Exception offline
        if "fetch failure" not in str(error) and "URL" not in str(error):
            raise
        raise CapsweepConfigError(
            "backbone.weights",
            "imagenet",
            f"could not download the ImageNet weights of {name} ({error})",
            fix=(
                f"Keras caches them under {KERAS_CACHE / 'models'}; copy the file there, or "
                "download it elsewhere and set backbone.weights=/path/to/weights.h5"
            ),
        ) from None
