"""Classifier heads put on top of a backbone's feature map."""

from __future__ import annotations

from typing import Any

import keras

from capsweep.settings import HeadConfig
from capsweep.settings.choices import Pooling


def apply_head(features: Any, num_classes: int, head: HeadConfig) -> Any:
    """Pool ``features``, add ``head.depth`` hidden Dense layers and a softmax classifier.

    ``depth=0`` gives the seed post's head-only model: pooling and one Dense layer.
    """
    pool = (
        keras.layers.GlobalAveragePooling2D
        if head.pooling == Pooling.avg
        else keras.layers.GlobalMaxPooling2D
    )
    x = pool(name="head_pool")(features)
    for index in range(1, head.depth + 1):
        x = keras.layers.Dense(head.width, activation=head.activation, name=f"head_dense_{index}")(
            x
        )
        if head.dropout:
            x = keras.layers.Dropout(head.dropout, name=f"head_dropout_{index}")(x)
    # float32 under a mixed-precision policy too: a softmax in float16/bfloat16 loses
    # the small probabilities the loss needs (Keras' mixed-precision guide).
    return keras.layers.Dense(
        num_classes, activation="softmax", name="classifier", dtype="float32"
    )(x)
