"""A sweep over a list of configurations rather than a product of ranges.

``hydra.sweeper.points`` lists the configurations to compare, each a mapping of keys to
values, for comparisons no grid expresses — the first, a middle and the last block
unfrozen, plus all of them::

    points:
      - {capacity.position: first, capacity.unfreeze: 1}
      - {capacity.position: middle, capacity.unfreeze: 1}
      - {capacity.position: last, capacity.unfreeze: 1}
      - {capacity.position: first, capacity.unfreeze: 6}

Each point is queued in the study when it is created and trained once (with its repeats
and nuisance tuning); the study's distributions are each key's values across the points.
Pure: no TensorFlow, no storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution

from capsweep.errors import CapsweepConfigError
from capsweep.sweep.search_space import SearchSpace

KEY = "hydra.sweeper.points"


def with_points(space: SearchSpace, written: Any) -> SearchSpace:
    """``space`` with the points of ``hydra.sweeper.points`` as its searched values.

    Raises:
        CapsweepConfigError: points that are not mappings of plain values, points that name
            different keys, a key that ``params`` also sweeps, or a point listed twice.
    """
    points = OmegaConf.to_container(written) if OmegaConf.is_config(written) else written
    if points is None:
        return space
    if not isinstance(points, list) or not points:
        raise CapsweepConfigError(
            KEY, points, "must be a list of configurations", fix="e.g. [{head.depth: 0}]"
        )
    keys = None
    for point in points:
        _check_point(point, keys)
        keys = set(point)
    assert keys is not None  # points is not empty
    swept = keys & set(space.distributions)
    if swept:
        raise CapsweepConfigError(
            KEY,
            sorted(swept),
            "is also swept in hydra.sweeper.params: a key is either listed in the points or "
            "swept, not both",
            fix="move its values into the points, or remove it from them",
        )
    unique = {tuple(sorted((k, str(v)) for k, v in point.items())) for point in points}
    if len(unique) < len(points):
        raise CapsweepConfigError(KEY, points, "lists a configuration twice")
    distributions = dict(space.distributions)
    for key in sorted(keys):
        values = list(dict.fromkeys(point[key] for point in points))
        distributions[key] = CategoricalDistribution(values)
    return replace(
        space,
        distributions=distributions,
        points=tuple(dict(point) for point in points),
        fixed={k: v for k, v in space.fixed.items() if k not in keys},
        fixed_values={k: v for k, v in space.fixed_values.items() if k not in keys},
    )


def _check_point(point: Any, keys: set[str] | None) -> None:
    if not isinstance(point, Mapping) or not point:
        raise CapsweepConfigError(
            KEY, point, "is not a configuration (a mapping of keys to values)"
        )
    for key, value in point.items():
        if not isinstance(value, str | int | float | bool | type(None)):
            raise CapsweepConfigError(
                f"{KEY}[...].{key}", value, "must be a string, number, bool or null"
            )
    if keys is not None and set(point) != keys:
        raise CapsweepConfigError(
            KEY,
            point,
            f"names the keys {sorted(point)}, another point {sorted(keys)}: every point must "
            "set the same keys",
        )
