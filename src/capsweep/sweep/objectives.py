"""What a sweep optimizes: metric names paired with directions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from capsweep.errors import CapsweepConfigError
from capsweep.sweep.study import OBJECTIVE_METRICS

DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Objectives:
    names: list[str]
    directions: list[str]

    @property
    def multi(self) -> bool:
        return len(self.names) > 1


def as_list(value: Any) -> list[Any]:
    """A scalar as a one-item list; a list (or ListConfig, tuple) as a list."""
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def parse_objectives(objectives: Any, direction: Any) -> Objectives:
    """Pair objective metric names with directions, or raise naming the bad value."""
    names = [str(name) for name in as_list(objectives)]
    directions = [str(d) for d in as_list(direction)]
    for name in names:
        if name not in OBJECTIVE_METRICS:
            raise CapsweepConfigError(
                "hydra.sweeper.objectives", name, "unknown metric", choices=OBJECTIVE_METRICS
            )
    for item in directions:
        if item not in DIRECTIONS:
            raise CapsweepConfigError(
                "hydra.sweeper.direction", item, "unknown direction", choices=DIRECTIONS
            )
    if len(names) != len(directions):
        raise CapsweepConfigError(
            "hydra.sweeper.direction",
            directions,
            f"gives {len(directions)} direction(s) for {len(names)} objective(s) {names}",
            fix="give one direction per objective, e.g. direction=[maximize,minimize]",
        )
    return Objectives(names, directions)
