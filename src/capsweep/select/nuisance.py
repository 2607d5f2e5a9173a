"""What the recommendation says about tuning: chosen values at the edge of their range, and
the hyperparameters that stayed fixed.

The Tuning Playbook's checks: a best value in the outer tenth of its search range may lie
outside it (widen the range that way and tune again), and every hyperparameter neither
compared nor tuned is a caveat on the conclusion. Pure, like the rest of selection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from capsweep.select.summaries import ConfigSummary

# A chosen value this close to an end of its range (as a fraction of the range, on the
# range's own scale) is "at the edge".
EDGE = 0.1
EDGES_NAMED = 3  # how many configurations at an edge the sentence names


@dataclass(frozen=True)
class NuisanceRange:
    """The range a nuisance hyperparameter was searched in.

    Args:
        low: Its lowest value.
        high: Its highest value.
        log: Whether it was searched on a log scale.
        choices: The values of a ``choice(...)``, in order; ``None`` for a range.
    """

    low: float
    high: float
    log: bool = False
    choices: tuple[Any, ...] | None = None

    def position(self, value: Any) -> float | None:
        """Where ``value`` lies in the range, 0 at the low end and 1 at the high end."""
        if self.choices is not None:
            if value not in self.choices or len(self.choices) < 2:
                return None
            return self.choices.index(value) / (len(self.choices) - 1)
        if self.high <= self.low:
            return None
        if self.log and self.low > 0 and float(value) > 0:
            span = math.log(self.high) - math.log(self.low)
            return (math.log(float(value)) - math.log(self.low)) / span
        return (float(value) - self.low) / (self.high - self.low)

    def side(self, value: Any) -> str | None:
        """``"low"`` or ``"high"`` when ``value`` is in the outer tenth of the range."""
        position = self.position(value)
        if position is None:
            return None
        if self.choices is not None:  # a choice's edge is its first or last value
            return "low" if position == 0 else "high" if position == 1 else None
        return "low" if position <= EDGE else "high" if position >= 1 - EDGE else None


@dataclass(frozen=True)
class AtEdge:
    """A configuration whose chosen value of ``key`` lies at one end of its range."""

    summary: ConfigSummary
    key: str
    value: Any
    side: str  # low | high


def at_edges(
    summaries: Sequence[ConfigSummary], ranges: Mapping[str, NuisanceRange]
) -> list[AtEdge]:
    """Every configuration and key whose chosen value lies in the outer tenth of its range."""
    found = []
    for summary in summaries:
        chosen = summary.tuning.chosen if summary.tuning else {}
        for key, value in sorted(chosen.items()):
            side = ranges[key].side(value) if key in ranges else None
            if side is not None:
                found.append(AtEdge(summary, key, value, side))
    return found


def edge_sentence(edges: Sequence[AtEdge], ranges: Mapping[str, NuisanceRange]) -> str | None:
    """What the recommendation says of chosen values at an edge, or ``None`` for none."""
    if not edges:
        return None
    named = [
        f"{edge.summary.label} ({_short(edge.key)}={_value(edge.value)}, "
        f"{_widen(edge, ranges[edge.key])})"
        for edge in edges[:EDGES_NAMED]
    ]
    rest = len(edges) - len(named)
    return (
        "The chosen value lies at the edge of its search range for "
        + "; ".join(named)
        + (f"; and {rest} more" if rest else "")
        + ": its best may lie outside the range, so widen it that way and tune again."
    )


def fixed_sentence(fixed: Mapping[str, Any]) -> str | None:
    """The hyperparameters neither compared nor tuned, as caveats; ``None`` for none."""
    if not fixed:
        return None
    listed = ", ".join(f"{key}={_value(value)}" for key, value in fixed.items())
    return f"Held fixed for every configuration, each a caveat on this comparison: {listed}."


def _widen(edge: AtEdge, searched: NuisanceRange) -> str:
    if edge.side == "low":
        return f"at the low end: widen below {_value(searched.low)}"
    return f"at the high end: widen above {_value(searched.high)}"


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
