"""The recommendation in words and as JSON: what was chosen, against what, and why."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from capsweep.select.holdout import HoldoutCheck
from capsweep.select.nuisance import AtEdge
from capsweep.select.summaries import ConfigSummary, params_label
from capsweep.select.uncertainty import standard_error_or_none
from capsweep.settings.choices import RepeatOver

TIMES = "\u00d7"  # the multiplication sign, as in "12 times fewer"
ALSO_WITHIN_NAMED = 3  # how many other configurations within the tolerance a reason names
REPEAT_OVER = {
    RepeatOver.seed: "the seed",
    RepeatOver.split: "the training/validation split",
    RepeatOver.both: "the seed and the training/validation split",
}


@dataclass(frozen=True)
class Recommendation:
    """The chosen configuration, the best one, and the rule that linked them.

    Args:
        chosen: The pick: the fewest trainable params within the tolerance of the best.
        best: The candidate with the highest mean val_accuracy.
        tolerance: How far below the best val_accuracy still counted as good.
        tolerance_derivation: Where ``tolerance`` came from, in words.
        threshold: ``best.val_accuracy - tolerance``.
        reason: Every sentence below in one paragraph: why the pick, what else the data
            cannot separate from it, how repeats varied, the caveat and the test check.
        max_overfit_gap: The overfit filter the candidates passed, ``None`` for none.
        candidates: The keys (:func:`config_key`) of the configurations the rule
            considered: those passing ``max_overfit_gap``.
        also_within: The other candidates within the tolerance, best first, leaving out
            the pick and the best (which the reason names anyway).
        caveat: Why the pick may not be trustworthy (it or the best rests on a single
            run), or ``None``.
        test_accuracy_check: The pick's test accuracy against the best's.
        repeat_over: What the repeats varied: ``"seed"``, ``"split"``, ``"both"`` or
            ``None`` (not said).
        at_edges: The configurations whose chosen nuisance value lies at an edge of its
            search range.
        fixed: The training hyperparameters held fixed for every configuration.
    """

    chosen: ConfigSummary
    best: ConfigSummary
    tolerance: float
    tolerance_derivation: str
    threshold: float
    reason: str
    max_overfit_gap: float | None = None
    candidates: tuple[str, ...] = ()
    also_within: tuple[ConfigSummary, ...] = ()
    caveat: str | None = None
    test_accuracy_check: HoldoutCheck | None = None
    repeat_over: str | None = None
    at_edges: tuple[AtEdge, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serializable account of the recommendation."""
        check = self.test_accuracy_check
        return {
            **_configuration(self.chosen),
            "best": _configuration(self.best),
            "tolerance": self.tolerance,
            "tolerance_derivation": self.tolerance_derivation,
            "threshold": self.threshold,
            "max_overfit_gap": self.max_overfit_gap,
            "candidates": [json.loads(key) for key in self.candidates],
            "also_within": [_brief(summary) for summary in self.also_within],
            "caveat": self.caveat,
            "test_accuracy_check": None if check is None else _plain(check.as_dict()),
            "repeat_over": self.repeat_over,
            "at_edges": [
                {"params": _plain(e.summary.params), "key": e.key, "value": e.value, "side": e.side}
                for e in self.at_edges
            ],
            "fixed": _plain(self.fixed),
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
        "metrics": _plain({**summary.metrics(), "standard_error": standard_error_or_none(summary)}),
        "other_states": dict(summary.other_states),
        "tuning": _tuning(summary),
    }


def _tuning(summary: ConfigSummary) -> dict[str, Any] | None:
    tuning = summary.tuning
    if tuning is None:
        return None
    return {
        "chosen": _plain(tuning.chosen),
        "tried": tuning.tried,
        "selection_val_accuracy": tuning.selection,
        "candidates": [
            {
                "values": _plain(c.values),
                "round": c.round,
                "state": c.state,
                "val_accuracy": c.val_accuracy,
            }
            for c in tuning.candidates
        ],
    }


def _brief(summary: ConfigSummary) -> dict[str, Any]:
    return {
        "label": summary.label,
        "params": _plain(summary.params),
        **_plain(
            {
                "val_accuracy": summary.val_accuracy,
                "standard_error": standard_error_or_none(summary),
                "n": summary.n,
                "trainable_params": summary.trainable_params,
            }
        ),
        "trial_numbers": list(dict.fromkeys(summary.trial_numbers)),
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


def tuned_sentence(chosen: ConfigSummary, best: ConfigSummary) -> str | None:
    """At which tuned values the pick and the best were compared, or ``None`` untuned."""
    parts = []
    for role, summary in (("the pick", chosen), ("the best", best)):
        tuning = summary.tuning
        if tuning is None or (role == "the best" and best.key == chosen.key):
            continue
        values = params_label(tuning.chosen) if tuning.chosen else "nothing to tune"
        parts.append(f"{role} at {values} (best of {tuning.tried} tried)")
    if not parts:
        return None
    return (
        "Each configuration was compared at its own tuned values, confirmed on fresh seeds: "
        + "; ".join(parts)
        + "."
    )


def reason_sentence(
    chosen: ConfigSummary, best: ConfigSummary, tolerance: float, measure: str
) -> str:
    """Why the pick: its size against the best's, and the tolerance it is within.

    Args:
        measure: What the tolerance is, e.g. ``"one Wilson standard error"`` or
            ``"the absolute tolerance"``.
    """
    within = f"within {measure} ({tolerance:.3f})"
    if chosen.key == best.key:
        # Each configuration had its own tolerance: none is quoted for all of them.
        return (
            f"{best.label} is the best (val_accuracy {best.val_accuracy:.3f}) and itself the "
            f"smallest that performs well: no configuration with fewer trainable parameters "
            f"is within {measure} of it."
        )
    return (
        f"{chosen.label} has {ratio(best.trainable_params, chosen.trainable_params)} fewer "
        f"trainable parameters than the best ({best.label}: val_accuracy "
        f"{best.val_accuracy:.3f}) and its val_accuracy {chosen.val_accuracy:.3f} is "
        f"{within} of it."
    )


def accuracy_text(summary: ConfigSummary) -> str:
    """Mean val_accuracy ± its standard error (of the repeats, or the Wilson half-width)."""
    error = standard_error_or_none(summary)
    shown = f"{summary.val_accuracy:.3f}"
    return shown if error is None else f"{shown} ± {error:.3f}"


def considered(
    summaries: Sequence[ConfigSummary], recommendation: Recommendation | None
) -> list[ConfigSummary]:
    """The configurations the recommendation chose from (all of them without one)."""
    if recommendation is None or not recommendation.candidates:
        return list(summaries)
    keys = set(recommendation.candidates)
    return [summary for summary in summaries if summary.key in keys]


def also_within_sentence(others: Sequence[ConfigSummary]) -> str | None:
    """The other configurations within the tolerance, at most three named, or ``None``."""
    if not others:
        return None
    named = [f"{s.label} ({accuracy_text(s)})" for s in others[:ALSO_WITHIN_NAMED]]
    rest = len(others) - len(named)
    listed = "; ".join(named) + (f"; and {rest} more" if rest else "")
    return (
        f"Also within the tolerance of the best: {listed}; the pick is only the smallest of "
        "these, not clearly the most accurate."
    )


def repeat_over_sentence(repeat_over: str | None) -> str | None:
    """What the repeats varied, or ``None`` when not said."""
    if repeat_over is None:
        return None
    return f"Repeats varied {REPEAT_OVER[RepeatOver(repeat_over)]}."
