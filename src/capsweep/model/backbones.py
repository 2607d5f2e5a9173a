"""Backbones by name: keras.applications architectures and a small residual CNN.

Each backbone is a functional ``keras.Model`` without its classifier, taking images that
its own preprocessing layer (part of the transfer model) has already normalized.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras

from capsweep.errors import CapsweepConfigError
from capsweep.settings import BackboneConfig
from capsweep.settings.choices import IMAGENET_WEIGHTS
from capsweep.settings.validate import backbone_spec, check_input_size, check_weights
from capsweep.settings.weights_file import KERAS_SUFFIX


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


# Where keras.utils.get_file caches downloads (KERAS_HOME, else ~/.keras).
KERAS_CACHE = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def preprocessing_mode(name: str) -> str:
    """The ImagePreprocessing mode backbone ``name`` expects its images in."""
    return backbone_spec(name).preprocessing


def build_backbone(
    name: str,
    input_size: int,
    weights: str | None,
    *,
    filters: Sequence[int] | None = None,
    blocks_per_stage: int | None = None,
    allow_unsafe_h5: bool = False,
) -> keras.Model:
    """Build backbone ``name`` for ``input_size``² RGB images, with ``weights`` loaded.

    Args:
        name: A key of :data:`capsweep.settings.choices.BACKBONES`.
        input_size: Side of the square input, in pixels.
        weights: ``"imagenet"``, ``None`` (random initialization) or a weights file.
        filters: small_resnet only: filters per stage (``backbone.filters``).
        blocks_per_stage: small_resnet only: residual blocks per stage.
        allow_unsafe_h5: Accept a legacy ``.h5`` file holding a whole model.

    Raises:
        CapsweepConfigError: unknown name, input too small, weights missing, unreachable,
            truncated, unsafe to load or not fitting the architecture.
    """
    spec = backbone_spec(name)
    check_input_size(name, input_size)
    check_weights(name, weights, allow_unsafe_h5=allow_unsafe_h5)
    shape = (input_size, input_size, 3)
    options: dict[str, Any] = {}
    if filters is not None:
        options["filters"] = tuple(filters)
    if blocks_per_stage is not None:
        options["blocks_per_stage"] = blocks_per_stage

    def build(weights: str | None) -> keras.Model:
        if spec.application is None:
            return small_resnet(shape, **options)
        constructor = getattr(keras.applications, spec.application)
        return constructor(include_top=False, weights=weights, input_shape=shape)

    if weights is None:
        return build(None)
    if weights == IMAGENET_WEIGHTS:
        return _build_imagenet(name, build)
    model = build(None)
    try:
        load_weights_file(model, weights)
    except (ValueError, OSError, KeyError, TypeError) as error:
        raise CapsweepConfigError(
            "backbone.weights",
            weights,
            f"does not fit backbone {name} at input size {input_size} ({_first_line(error)})",
            fix="use weights saved from the same architecture and backbone options",
        ) from None
    return model


def load_weights_file(model: keras.Model, weights: str) -> None:
    """Load a checked weights file (:func:`check_weights`) into ``model``.

    A ``.keras`` file holds a whole model: it is loaded with ``safe_mode=True`` (always;
    code in its config, such as a ``Lambda`` layer, is refused), and its weights are
    copied from the model itself or from its nested layer named like ``model``. Weights
    files (``.weights.h5``, legacy ``.h5``) are read as weights only: no config of theirs
    is deserialized.
    """
    path = str(Path(weights).expanduser())
    if not path.lower().endswith(KERAS_SUFFIX):
        model.load_weights(path)
        return
    try:
        saved = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, TypeError, ... for what it refuses
        raise CapsweepConfigError(
            "backbone.weights",
            weights,
            f"Keras could not load this model in safe mode ({_first_line(error)})",
            fix="save the backbone's weights alone (model.save_weights('x.weights.h5'))",
        ) from None
    candidates = [saved, *(layer for layer in saved.layers if layer.name == model.name)]
    for candidate in candidates:
        if _same_shapes(candidate.weights, model.weights):
            model.set_weights(candidate.get_weights())
            return
    raise ValueError(
        f"the model in the file ({saved.name}) neither is nor contains a layer "
        f"{model.name!r} with the same weight shapes"
    )


def _same_shapes(left: Sequence[Any], right: Sequence[Any]) -> bool:
    return len(left) == len(right) and all(
        tuple(a.shape) == tuple(b.shape) for a, b in zip(left, right, strict=True)
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _build_imagenet(name: str, build: Callable[[str | None], keras.Model]) -> keras.Model:
    try:
        return build(IMAGENET_WEIGHTS)
    except Exception as error:  # keras.utils.get_file raises plain Exception offline
        if "fetch failure" not in str(error) and "URL" not in str(error):
            raise
        raise CapsweepConfigError(
            "backbone.weights",
            IMAGENET_WEIGHTS,
            f"could not download the ImageNet weights of {name} ({error})",
            fix=(
                f"Keras caches them under {KERAS_CACHE / 'models'}; copy the file there, or "
                "download it elsewhere and set backbone.weights=/path/to/weights.h5"
            ),
        ) from None


def build_configured_backbone(backbone: BackboneConfig, weights: str | None) -> keras.Model:
    """:func:`build_backbone` for the ``backbone`` settings, with ``weights`` loaded."""
    return build_backbone(
        backbone.name,
        backbone.input_size,
        weights,
        filters=backbone.filters,
        blocks_per_stage=backbone.blocks_per_stage,
        allow_unsafe_h5=backbone.allow_unsafe_h5,
    )
