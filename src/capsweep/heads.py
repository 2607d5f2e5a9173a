"""Classifier heads put on top of a backbone's feature map."""

from __future__ import annotations

from typing import Any

import keras

from capsweep.errors import CapsweepConfigError, require_count
from capsweep.schema import HeadConfig

POOLINGS = ("avg", "max")


def check_head(depth: Any, width: Any, dropout: Any, pooling: str) -> None:
    """Raise if the head options cannot build a head."""
    require_count("head.depth", depth)
    require_count("head.width", width, minimum=1)
    if not 0.0 <= float(dropout) < 1.0:
        raise CapsweepConfigError("head.dropout", dropout, "must be in [0, 1)", fix="e.g. 0.2")
    if pooling not in POOLINGS:
        raise CapsweepConfigError("head.pooling", pooling, "unknown pooling", choices=POOLINGS)


def apply_head(features: Any, num_classes: int, head: HeadConfig) -> Any:
    """Pool ``features``, add ``head.depth`` hidden Dense layers and a softmax classifier.

    ``depth=0`` gives the seed post's head-only model: pooling and one Dense layer.
    """
    pool = (
        keras.layers.GlobalAveragePooling2D
        if head.pooling == "avg"
        else keras.layers.GlobalMaxPooling2D
    )
    x = pool(name="head_pool")(features)
    for index in range(1, head.depth + 1):
        x = keras.layers.Dense(head.width, activation=head.activation, name=f"head_dense_{index}")(
            x
        )
        if head.dropout:
            x = keras.layers.Dropout(head.dropout, name=f"head_dropout_{index}")(x)
    return keras.layers.Dense(num_classes, activation="softmax", name="classifier")(x)
