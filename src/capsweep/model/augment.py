"""Random image augmentation inside the model: active while training, a no-op otherwise."""

from __future__ import annotations

from collections.abc import Sequence

import keras

# data.augment names and the Keras preprocessing layer each one adds.
TRANSLATE_FRACTION = 0.1
ROTATION_FRACTION = 0.1


def augmentation_layers(names: Sequence[str]) -> list[keras.layers.Layer]:
    """The layers for ``names`` (flip, translate, rotation), in that order.

    Keras' random preprocessing layers change images only when called with
    ``training=True``, so evaluation and a saved model see the images unchanged.

    Raises:
        ValueError: an unknown name (the settings check refuses it earlier).
    """
    makers = {
        "flip": lambda: keras.layers.RandomFlip("horizontal", name="augment_flip"),
        "translate": lambda: keras.layers.RandomTranslation(
            TRANSLATE_FRACTION, TRANSLATE_FRACTION, fill_mode="nearest", name="augment_translate"
        ),
        "rotation": lambda: keras.layers.RandomRotation(
            ROTATION_FRACTION, fill_mode="nearest", name="augment_rotation"
        ),
    }
    unknown = [name for name in names if name not in makers]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown}; choose from {sorted(makers)}")
    return [makers[name]() for name in makers if name in names]
