"""The recommendation in words and as JSON: what was chosen, against what, and why."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from capsweep.select.records import ConfigSummary

TIMES = "\u00d7"  # the multiplication sign, as in "12 times fewer"


@dataclass(frozen=True)
class Recommendation:
    """The chosen configuration, the best one, and the rule that linked them."""

    chosen: ConfigSummary
    best: ConfigSummary
    tolerance: float
    tolerance_derivation: str
    threshold: float
    reason: str
    max_overfit_gap: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serializable account of the recommendation."""
        return {
            **_configuration(self.chosen),
            "best": _configuration(self.best),
            "tolerance": self.tolerance,
            "tolerance_derivation": self.tolerance_derivation,
            "threshold": self.threshold,
            "max_overfit_gap": self.max_overfit_gap,
            "reason": self.reason,
        }


def _configuration(summary: ConfigSummary) -> dict[str, Any]:
    representative = summary.trials()[summary.representative]
    return {
        "trial_numbers": list(dict.fromkeys(summary.trial_numbers)),
        "representative_trial": representative["number"],
        "representative_repeat": representative["repeat"],
        "representative_run_id": representative["run_id"],
        "trials": summary.trials(),
        "params": _plain(summary.params),
        "metrics": _plain(summary.metrics()),
    }


def _plain(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe values: NaN becomes null, numpy scalars and other objects become plain."""
    plain: dict[str, Any] = {}
    for name, value in mapping.items():
        if hasattr(value, "item"):  # numpy scalar
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif value is not None and not isinstance(value, bool | int | float | str):
            value = str(value)
        plain[name] = value
    return plain


def ratio(larger: float, smaller: float) -> str:
    if smaller <= 0:  # nothing trainable: no ratio to give
        return "far"
    ratio = larger / smaller
    digits = 0 if ratio >= 10 else 1 if ratio >= 1.1 else 2
    return f"{ratio:.{digits}f}{TIMES}"


def reason_sentence(
    chosen: ConfigSummary, best: ConfigSummary, tolerance: float, absolute: bool
) -> str:
    within = (
        f"within the absolute tolerance ({tolerance:.3f})"
        if absolute
        else f"within one standard error ({tolerance:.3f})"
    )
    if chosen.key == best.key:
        return (
            f"{best.label} is the best (val_accuracy {best.val_accuracy:.3f}) and itself the "
            f"smallest that performs well: no configuration {within} of it has fewer "
            "trainable parameters."
        )
    return (
        f"{chosen.label} has {ratio(best.trainable_params, chosen.trainable_params)} fewer "
        f"trainable parameters than the best ({best.label}: val_accuracy "
        f"{best.val_accuracy:.3f}) and its val_accuracy {chosen.val_accuracy:.3f} is "
        f"{within} of it."
    )
