"""``capsweep-plan``: parameter counts per capacity setting, without data or training."""

from __future__ import annotations

import pytest

from capsweep.cli import plan
from capsweep.model.capacity_plan import unfreeze_settings


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
