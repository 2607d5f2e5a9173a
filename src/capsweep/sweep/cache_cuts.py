"""Which cuts a sweep's trials will need, so the first trial to miss the feature cache
computes the features of every one in a single forward pass.

A trial's cut depends on the first backbone unit it trains: the last ``capacity.unfreeze``
units' (``capacity.position=last``), or those of a range starting at a given unit. The
sweeper hands every job ``cache.cuts`` (the unfreeze counts of last-unit settings) and
``cache.starts`` (the start indices of the others). Pure: reads the search space.
"""

from __future__ import annotations

from typing import Any

from capsweep.errors import CapsweepConfigError
from capsweep.settings.unit_range import FIRST, LAST, MIDDLE
from capsweep.sweep.search_space import SearchSpace, grid_choices

UNFREEZE, POSITION = "capacity.unfreeze", "capacity.position"


def cache_overrides(space: SearchSpace, unfreeze: int, position: Any) -> list[str]:
    """``cache.cuts=[...]`` and ``cache.starts=[...]`` for the settings the sweep explores.

    Args:
        space: The sweep's search space.
        unfreeze: ``capacity.unfreeze`` where the sweep neither sweeps nor fixes it.
        position: ``capacity.position`` likewise.

    Returns:
        Nothing when the sweep sets these keys itself, explores a continuous range of
        counts, or trains one setting of units only.
    """
    if {"cache.cuts", "cache.starts"} & set(space.fixed):
        return []
    if UNFREEZE not in space.distributions and POSITION not in space.distributions:
        return []
    counts = _values(space, UNFREEZE, unfreeze)
    positions = _values(space, POSITION, position)
    if counts is None or positions is None:  # a continuous range: no finite set of cuts
        return []
    cuts = sorted({int(count) for count in counts}) if LAST in positions else []
    starts = sorted({0 if p == FIRST else int(p) for p in positions if p not in (LAST, MIDDLE)})
    overrides = []
    if cuts:
        overrides.append(f"cache.cuts=[{','.join(map(str, cuts))}]")
    if starts:
        overrides.append(f"cache.starts=[{','.join(map(str, starts))}]")
    return overrides


def _values(space: SearchSpace, name: str, default: Any) -> list[Any] | None:
    """A key's values in the sweep: its choices, its fixed value, or ``default``."""
    if name in space.distributions:
        try:
            return grid_choices(name, space.distributions[name])
        except CapsweepConfigError:
            return None
    return [space.fixed_values.get(name, default)]
