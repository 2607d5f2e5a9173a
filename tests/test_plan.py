"""``capsweep-plan``: parameter counts per capacity setting, without data or training."""

from __future__ import annotations

from typing import Any

import pytest

from capsweep.cli import plan
from capsweep.model.capacity import backbone_units, is_batch_norm
from capsweep.model.capacity_plan import (
    plan_rows,
    planned_backbone,
    position_rows,
    unfreeze_settings,
)
from capsweep.settings import BackboneConfig, CapacityConfig, HeadConfig
from capsweep.settings.choices import Unit


@pytest.mark.parametrize(
    ("available", "expected"),
    [
        (0, [0]),
        (6, [0, 1, 2, 3, 4, 5, 6]),
        (12, list(range(13))),
        (16, [0, 1, 2, 4, 8, 16]),
        (20, [0, 1, 2, 4, 8, 16, 20]),
    ],
)
def test_unfreeze_settings_lists_every_count_when_few_else_powers_of_two(
    available: int, expected: list[int]
) -> None:
    assert unfreeze_settings(available) == expected


def test_plan_prints_the_seed_posts_resnet50_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    plan.main(
        [
            "backbone=resnet50",
            "backbone.weights=null",
            "backbone.input_size=224",
            "data.num_classes=4",
            "head.width=256",
        ]
    )

    printed = capsys.readouterr().out
    assert "23,587,712" in printed  # backbone parameters
    assert "8,196" in printed  # frozen backbone, pooling and Dense(4)
    assert "525,572" in printed  # frozen backbone, Dense(256) and Dense(4)


def test_plan_with_an_unknown_backbone_exits_2_naming_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        plan.main(["backbone.name=nope", "data.num_classes=4"])

    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("capsweep-plan: error: backbone.name='nope': Invalid value 'nope'")
    assert "expected one of [small_resnet, resnet50, resnet101, mobilenetv2" in error
    assert len(error.strip().splitlines()) == 1


def unit_parameters(backbone: Any, names: list[str]) -> int:
    """What training the layers ``names`` trains: their weights, BatchNorm's excepted."""
    layers = [backbone.get_layer(name) for name in names]
    return sum(layer.count_params() for layer in layers if not is_batch_norm(layer))


@pytest.fixture(scope="module")
def tiny_backbone() -> Any:
    """small_resnet at 8 px with one block per stage: 4 blocks (the stem and 3 stages)."""
    return planned_backbone(BackboneConfig(input_size=8, filters=[4, 8, 8], blocks_per_stage=1))


@pytest.mark.parametrize(("position", "index"), [("first", 0), ("last", -1), (1, 1)])
def test_plan_counts_one_unit_unfrozen_at_the_position_set(
    tiny_backbone: Any, position: Any, index: int
) -> None:
    units = backbone_units(tiny_backbone, Unit.block)
    capacity = CapacityConfig(position=position)

    rows, _ = plan_rows(tiny_backbone, capacity, HeadConfig(), num_classes=3)

    (one,) = [row for row in rows if row["unfreeze"] == 1 and row["head_depth"] == 0]
    assert one["trainable_backbone_params"] == unit_parameters(tiny_backbone, units[index])


def test_plan_leaves_out_counts_that_run_past_the_last_unit_from_a_start_index(
    tiny_backbone: Any,
) -> None:
    available = len(backbone_units(tiny_backbone, Unit.block))

    rows, _ = plan_rows(tiny_backbone, CapacityConfig(position=2), HeadConfig(), num_classes=3)

    assert {row["unfreeze"] for row in rows} == set(range(available - 2 + 1))


def test_plan_positions_list_each_start_with_its_own_units_parameters(
    tiny_backbone: Any,
) -> None:
    units = backbone_units(tiny_backbone, Unit.block)

    rows = position_rows(tiny_backbone, CapacityConfig(unfreeze=1))

    assert [row["units"] for row in rows] == [f"{i}–{i}" for i in range(len(units))]
    assert [row["trainable_backbone_params"] for row in rows] == [
        unit_parameters(tiny_backbone, names) for names in units
    ]
