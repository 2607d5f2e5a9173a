"""Block discovery on real keras.applications backbones and the small residual CNN."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from capsweep.model.blocks import cut_points, inbound_layers
from capsweep.settings import Unit
from capsweep.settings.choices import BACKBONES

# Residual blocks: ResNet50 3+4+6+3; MobileNetV2 the 10 inverted residuals with a skip;
# EfficientNetB0 its 16 MBConv blocks (each has a squeeze-excite branch).
BLOCK_COUNTS = {"resnet50": 16, "mobilenetv2": 10, "efficientnetb0": 16}
# The counts the settings check uses before building (capacity.position, unfreeze).
TABULATED = {str(name): spec.blocks for name, spec in BACKBONES.items() if spec.blocks}


def blocks_of(model: Any) -> list[list[str]]:
    from capsweep.model.capacity import backbone_units

    return backbone_units(model, Unit.block)


def non_input_layers(model: Any) -> list[str]:
    return [layer.name for layer in model.layers if type(layer).__name__ != "InputLayer"]


@pytest.mark.parametrize(("name", "count"), sorted(BLOCK_COUNTS.items()))
def test_block_count(random_backbone: Callable[[str], Any], name: str, count: int) -> None:
    assert len(blocks_of(random_backbone(name))) == count


@pytest.mark.slow
@pytest.mark.parametrize(("name", "count"), sorted(TABULATED.items()))
def test_the_tabulated_block_count_is_the_one_discovered(
    random_backbone: Callable[[str], Any], name: str, count: int
) -> None:
    assert len(blocks_of(random_backbone(name))) == count


@pytest.mark.parametrize("name", sorted(BLOCK_COUNTS))
def test_every_block_is_a_contiguous_run_of_layers(
    random_backbone: Callable[[str], Any], name: str
) -> None:
    model = random_backbone(name)
    position = {layer.name: index for index, layer in enumerate(model.layers)}

    for block in blocks_of(model):
        positions = [position[layer] for layer in block]
        assert positions == list(range(positions[0], positions[0] + len(block))), block


@pytest.mark.parametrize("name", sorted(BLOCK_COUNTS))
def test_blocks_cover_every_non_input_layer_exactly_once(
    random_backbone: Callable[[str], Any], name: str
) -> None:
    model = random_backbone(name)

    counts = Counter(layer for block in blocks_of(model) for layer in block)

    assert set(counts) == set(non_input_layers(model))
    assert set(counts.values()) == {1}


@pytest.mark.parametrize("name", sorted(BLOCK_COUNTS))
def test_every_block_ends_at_a_cut_point(random_backbone: Callable[[str], Any], name: str) -> None:
    model = random_backbone(name)
    order = [layer.name for layer in model.layers]
    is_cut = dict(zip(order, cut_points(order, inbound_layers(model)), strict=True))

    assert [block[-1] for block in blocks_of(model) if not is_cut[block[-1]]] == []


def test_last_resnet50_block_is_conv5_block3(random_backbone: Callable[[str], Any]) -> None:
    last = blocks_of(random_backbone("resnet50"))[-1]

    assert (last[0], last[-1]) == ("conv5_block3_1_conv", "conv5_block3_out")


def test_small_resnet_blocks_are_its_residual_blocks_with_the_stem_in_the_first() -> None:
    from capsweep.model.backbones import small_resnet

    blocks = blocks_of(small_resnet((16, 16, 3), filters=(4, 8, 8)))

    assert [block[-1] for block in blocks] == [
        f"stage{stage}_block{block}_out" for stage in (1, 2, 3) for block in (1, 2)
    ]
    assert blocks[0][0] == "stem_conv"


def test_inbound_layers_reads_every_edge_of_a_functional_model() -> None:
    import keras

    inputs = keras.Input((4, 4, 3), name="input")
    conv = keras.layers.Conv2D(3, 1, name="conv")(inputs)
    added = keras.layers.Add(name="add")([inputs, conv])
    outputs = keras.layers.Activation("relu", name="out")(added)

    graph = inbound_layers(keras.Model(inputs, outputs))

    assert graph == {"input": [], "conv": ["input"], "add": ["input", "conv"], "out": ["add"]}
