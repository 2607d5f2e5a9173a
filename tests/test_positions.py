"""capacity.position on every backbone capsweep ships: exactly the chosen blocks train, the
gradient reaches them through the frozen blocks after them, BatchNorm stays frozen, and
the feature cache cuts at the first unit that trains.

Backbones are built with random weights at 32 px, once per module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from capsweep.settings import CapacityConfig, HeadConfig, Unit

BACKBONES = ["small_resnet", "resnet50", "mobilenetv2", "efficientnetb0"]
# (unfreeze, position, the blocks that train as a function of how many there are)
RANGES: list[tuple[int, Any, Callable[[int], list[int]]]] = [
    (1, "first", lambda n: [0]),
    (1, "middle", lambda n: [(n - 1) // 2]),
    (1, "last", lambda n: [n - 1]),
    (2, 3, lambda n: [3, 4]),
]


def transfer(model: Any, unfreeze: int, position: Any) -> Any:
    from capsweep.model.transfer import build_transfer_model

    capacity = CapacityConfig(unfreeze=unfreeze, unit=Unit.block, position=position)
    return build_transfer_model(model, "unit", 3, capacity, HeadConfig(depth=0))


def blocks(model: Any) -> list[list[str]]:
    from capsweep.model.capacity import backbone_units

    return backbone_units(model, Unit.block)


def with_kernels(model: Any, names: set[str]) -> set[str]:
    """The layers among ``names`` that hold a kernel (convolutions, dense layers)."""
    return {
        name
        for name in names
        if any("kernel" in weight.path for weight in model.get_layer(name).weights)
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize(("unfreeze", "position", "chosen"), RANGES)
def test_exactly_the_chosen_blocks_train_with_batchnorm_frozen(
    random_backbone: Callable[[str], Any],
    name: str,
    unfreeze: int,
    position: Any,
    chosen: Callable[[int], list[int]],
) -> None:
    model = random_backbone(name)
    units = blocks(model)

    built = transfer(model, unfreeze, position)

    expected = {layer for index in chosen(len(units)) for layer in units[index]}
    trains = {layer.name for layer in model.layers if layer.trainable_weights}
    assert trains <= expected  # nothing outside the range
    assert with_kernels(model, expected) <= trains  # every convolution inside it
    assert not [n for n in trains if "BatchNormalization" in type(model.get_layer(n)).__name__]
    assert (built.unfrozen.start, built.unfrozen.requested) == (chosen(len(units))[0], unfreeze)


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKBONES)
def test_the_gradient_reaches_the_first_block_through_the_frozen_ones_after_it(
    random_backbone: Callable[[str], Any], name: str
) -> None:
    import keras
    import tensorflow as tf

    model = random_backbone(name)
    built = transfer(model, 1, "first")
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    labels = tf.constant([0, 1, 2, 0])

    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(labels, built.model(images))
    gradients = tape.gradient(loss, model.trainable_variables)

    assert model.trainable_variables, "nothing of the first block trains"
    assert all(gradient is not None for gradient in gradients)  # connected through the rest
    if name != "mobilenetv2":  # random weights saturate its ReLU6s: zero, though connected
        assert any(float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)


@pytest.mark.parametrize(("position", "cached"), [(2, True), ("middle", True), ("first", False)])
def test_the_feature_cache_cuts_before_the_first_unit_that_trains(
    trial_settings: Callable[..., Any], position: Any, cached: bool
) -> None:
    from test_feature_cache import trial

    settings = trial_settings(f"capacity.position={position}", "capacity.unfreeze=1")
    outcome_on, recorded, prepared = trial(settings)
    off, _, _ = trial(
        trial_settings(
            f"capacity.position={position}", "capacity.unfreeze=1", "cache.enabled=false"
        )
    )

    assert recorded.tags["capsweep.cache"] == ("on" if cached else "off")
    if cached:
        units = blocks(prepared.transfer.backbone)
        first = prepared.transfer.unfrozen.start
        assert recorded.tags["capsweep.cache_cut"] == units[first - 1][-1]
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(
                outcome_on.metrics.history[metric], off.metrics.history[metric], rtol=1e-4
            )
