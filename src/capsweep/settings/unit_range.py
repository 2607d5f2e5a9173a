"""Which of a backbone's units a capacity setting trains: ``capacity.unfreeze`` units from
``capacity.position`` (``last``: the last ones; ``first``; ``middle``: centred, the earlier
of two middles; or a start index, 0 = the first).

Pure: the model's freezing, the feature cache's cut, the plan and the labels of reports all
read the range from here, and the settings check refuses an impossible one before
TensorFlow loads where the backbone's unit count is known without building it.
"""

from __future__ import annotations

from typing import Any

from capsweep.errors import CapsweepConfigError, require_count

LAST, FIRST, MIDDLE = "last", "first", "middle"
POSITIONS = (LAST, FIRST, MIDDLE, "<start index>")


def check_position(position: Any) -> None:
    """Refuse a ``capacity.position`` that is not ``last``, ``first``, ``middle`` or an index."""
    if position in (LAST, FIRST, MIDDLE):
        return
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise CapsweepConfigError(
            "capacity.position",
            position,
            "is not where the unfrozen units start",
            choices=POSITIONS,
            fix="e.g. capacity.position=first, or capacity.position=2 for the third unit",
        )


def unit_range(
    available: int, unfreeze: int, position: Any, *, backbone: str = "the backbone", unit: str = ""
) -> range:
    """The indices (0 = the first unit) of the units a setting trains.

    Args:
        available: How many units the backbone has.
        unfreeze: How many it trains.
        position: ``last``, ``first``, ``middle`` or the index of the first one.
        backbone: Its name, for messages.
        unit: The kind of unit, for messages.

    Raises:
        CapsweepConfigError: ``unfreeze`` exceeds ``available``, or the range would run past
            the last unit; the message names the counts and positions that fit.
    """
    require_count("capacity.unfreeze", unfreeze)
    check_position(position)
    kind = f" of kind {unit}" if unit else ""
    if unfreeze > available:
        raise CapsweepConfigError(
            "capacity.unfreeze",
            unfreeze,
            f"{backbone} has only {available} units{kind}",
            fix=f"use capacity.unfreeze between 0 and {available}",
        )
    start = start_index(available, unfreeze, position)
    if unfreeze == 0:  # nothing trains: a position past the end refuses nothing
        start = min(start, available)
    if start + unfreeze > available:
        raise CapsweepConfigError(
            "capacity.position",
            position,
            f"with capacity.unfreeze={unfreeze} needs units {start}–{start + unfreeze - 1}, "
            f"but {backbone} has {available} units{kind} (0–{available - 1})",
            fix=f"use capacity.position between 0 and {available - unfreeze}, first, middle "
            "or last",
        )
    return range(start, start + unfreeze)


def start_index(available: int, unfreeze: int, position: Any) -> int:
    """The index of the first unit a setting trains (it may run past the last unit)."""
    if position == LAST:
        return available - unfreeze
    if position == FIRST:
        return 0
    if position == MIDDLE:
        return max(available - unfreeze, 0) // 2
    return int(position)


def range_label(unfreeze: Any, position: Any) -> str:
    """``last 2``, ``units 0–0`` or ``units 2–3``: what a setting trains, in words."""
    if unfreeze == 0:
        return "none unfrozen"
    if position == LAST:
        return f"last {unfreeze}"
    if position == MIDDLE:
        return f"middle {unfreeze}"
    start = 0 if position == FIRST else position
    if isinstance(start, int) and isinstance(unfreeze, int):
        return f"units {start}–{start + unfreeze - 1}"
    return f"{unfreeze} from {position}"
