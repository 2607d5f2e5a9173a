"""Which units a capacity setting trains, from its count and position: pure, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from capsweep.errors import CapsweepConfigError
from capsweep.select import params_label
from capsweep.settings.unit_range import range_label, unit_range


@pytest.mark.parametrize(
    ("unfreeze", "position", "expected"),
    [
        (2, "last", range(4, 6)),
        (1, "first", range(0, 1)),
        (1, "middle", range(2, 3)),
        (2, "middle", range(2, 4)),
        (1, 2, range(2, 3)),
        (6, "first", range(0, 6)),
        (6, "last", range(0, 6)),
        (0, "last", range(6, 6)),
        (0, 3, range(3, 3)),
        (0, 9, range(6, 6)),
    ],
)
def test_the_units_a_setting_trains(unfreeze: int, position: Any, expected: range) -> None:
    assert unit_range(6, unfreeze, position) == expected


def test_a_range_past_the_last_unit_is_refused_naming_the_positions_that_fit() -> None:
    with pytest.raises(CapsweepConfigError) as raised:
        unit_range(6, 2, 5, backbone="small_resnet", unit="block")

    assert str(raised.value) == (
        "capacity.position=5: with capacity.unfreeze=2 needs units 5–6, but small_resnet "
        "has 6 units of kind block (0–5); use capacity.position between 0 and 4, first, middle "
        "or last"
    )


def test_more_units_than_the_backbone_has_are_refused_naming_the_maximum() -> None:
    with pytest.raises(CapsweepConfigError) as raised:
        unit_range(6, 7, "first", backbone="small_resnet", unit="block")

    assert str(raised.value) == (
        "capacity.unfreeze=7: small_resnet has only 6 units of kind block; use "
        "capacity.unfreeze between 0 and 6"
    )


@pytest.mark.parametrize("position", ["end", -1, 1.5, True])
def test_a_position_that_is_no_place_is_refused(position: Any) -> None:
    with pytest.raises(CapsweepConfigError, match="is not where the unfrozen units start"):
        unit_range(6, 1, position)


@pytest.mark.parametrize(
    ("unfreeze", "position", "label"),
    [
        (2, "last", "last 2"),
        (1, "first", "units 0–0"),
        (2, 3, "units 3–4"),
        (0, 2, "none unfrozen"),
    ],
)
def test_a_range_reads_as_units_or_the_last_ones(unfreeze: int, position: Any, label: str) -> None:
    assert range_label(unfreeze, position) == label


def test_a_configuration_with_a_position_is_labelled_by_its_range() -> None:
    params = {"capacity.position": 2, "capacity.unfreeze": 1, "head.depth": 0}

    assert params_label(params) == "units 2–2, depth=0"


def test_a_configuration_without_a_position_keeps_its_unfreeze_count() -> None:
    assert params_label({"capacity.unfreeze": 1, "head.depth": 0}) == "unfreeze=1, depth=0"
