"""The pick rule: the smallest configuration whose val_accuracy is close enough to the best.

Pure: works on configuration summaries, reads no files and imports no training, tracking
or study library, so a report answers in a second on a laptop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from capsweep.errors import CapsweepConfigError
from capsweep.select.caveat import single_run_caveat
from capsweep.select.explain import (
    Recommendation,
    also_within_sentence,
    reason_sentence,
    repeat_over_sentence,
    tuned_sentence,
)
from capsweep.select.holdout import check_test_accuracy
from capsweep.select.nuisance import NuisanceRange, at_edges, edge_sentence, fixed_sentence
from capsweep.select.summaries import ConfigSummary, rank_key
from capsweep.select.uncertainty import standard_error
from capsweep.settings.choices import RepeatOver
from capsweep.settings.validate import member


def _check_number(key: str, value: float, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CapsweepConfigError(key, value, "must be a finite number", fix=f"e.g. {key}=0.02")
    if minimum is not None and value < minimum:
        raise CapsweepConfigError(key, value, f"must be >= {minimum}", fix=f"e.g. {key}=0.02")
    return float(value)


def _within_gap(pool: list[ConfigSummary], max_overfit_gap: float | None) -> list[ConfigSummary]:
    """The configurations whose overfit_gap is known and at most ``max_overfit_gap``."""
    if max_overfit_gap is None:
        return pool
    limit = _check_number("max_overfit_gap", max_overfit_gap)
    passing = [s for s in pool if s.overfit_gap is not None and s.overfit_gap <= limit]
    if passing:
        return passing
    gaps = sorted((s.overfit_gap, s.label) for s in pool if s.overfit_gap is not None)
    if not gaps:
        raise CapsweepConfigError(
            "max_overfit_gap",
            limit,
            "no completed trial recorded overfit_gap",
            fix="leave max_overfit_gap unset",
        )
    smallest, label = gaps[0]
    raise CapsweepConfigError(
        "max_overfit_gap",
        limit,
        f"no configuration passes; the smallest overfit_gap seen is {smallest:.3f} ({label})",
        fix=f"raise max_overfit_gap to {smallest:.3f} or more, or leave it unset",
    )


def _check_repeat_over(repeat_over: str | None) -> RepeatOver | None:
    if repeat_over is None:
        return None
    return member(
        "repeat_over",
        repeat_over,
        RepeatOver,
        "is not a kind of repeat",
        fix="say what the repeats varied, or leave it unset",
    )


def _tolerances(
    best: ConfigSummary, candidates: list[ConfigSummary], tolerance: float | None
) -> tuple[dict[str, float], str, str]:
    """Each candidate's tolerance below the best, its derivation, and its name in the reason.

    By default a candidate counts as good when its mean is within one standard error of
    its difference from the best, sqrt(SE_best² + SE_candidate²): both means are noisy,
    so the yardstick is the noise of the comparison, not the best's alone.
    """
    if tolerance is not None:
        used = _check_number("tolerance", tolerance, minimum=0.0)
        return (
            dict.fromkeys((s.key for s in candidates), used),
            "absolute tolerance",
            ("the absolute tolerance"),
        )
    best_error = standard_error(best)
    tolerances = {s.key: math.hypot(best_error, standard_error(s)) for s in candidates}
    if best.n > 1:
        derivation = (
            "one standard error of each configuration's difference from the best, "
            f"sqrt(SE_best² + SE²), from repeats ({best.n} for the best)"
        )
        return tolerances, derivation, "one standard error of the difference"
    derivation = (
        "one standard error of each configuration's difference from the best, "
        "sqrt(SE_best² + SE²), single runs' SE the Wilson score half-width (z=1), "
        f"n_val={best.n_val:g}"
    )
    return tolerances, derivation, "one Wilson standard error of the difference"


def recommend(
    summaries: Iterable[ConfigSummary],
    *,
    tolerance: float | None = None,
    max_overfit_gap: float | None = None,
    repeat_over: str | None = None,
    ranges: Mapping[str, NuisanceRange] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> Recommendation:
    """Recommend the configuration with the fewest trainable params that performs well.

    Candidates are the configurations with ``overfit_gap <= max_overfit_gap`` (all, if it is
    ``None``). The best is the candidate with the highest mean val_accuracy; the chosen one
    has the fewest trainable params among candidates within their tolerance of the best
    (ties: higher val_accuracy).

    The reason also names the other candidates within the tolerance (the data do not
    separate the pick from them), says what the repeats varied, warns when the pick or
    the best rests on a single run, and compares their test accuracies.

    Args:
        summaries: What :func:`summarize` returned.
        tolerance: How far below the best val_accuracy still counts as good; by default,
            for each configuration, one standard error of its difference from the best,
            sqrt(SE_best² + SE²) (:func:`standard_error`: from the repeats, or the Wilson
            half-width for a single run).
        max_overfit_gap: Drop configurations whose train - val accuracy gap exceeds this.
        repeat_over: What the repeats varied: ``"seed"``, ``"split"`` or ``"both"``;
            ``None`` says nothing about it.
        ranges: The search range of each nuisance hyperparameter tuned inside the
            configurations: a chosen value at an edge of its range is named, with the
            way to widen it.
        fixed: The training hyperparameters neither compared nor tuned, with their
            values: named as the comparison's caveats.

    Raises:
        ValueError: No completed configuration, none passes ``max_overfit_gap``, a
            ``tolerance`` that is negative or not finite, an unknown ``repeat_over``, or
            no standard error is known.
    """
    pool = list(summaries)
    if not pool:
        raise ValueError(
            "no completed trial to recommend from: every trial is PRUNED, FAIL, RUNNING or "
            "WAITING; wait for the sweep to finish or check why its trials failed"
        )
    over = _check_repeat_over(repeat_over)
    candidates = _within_gap(pool, max_overfit_gap)
    best = min(candidates, key=rank_key)
    tolerances, derivation, measure = _tolerances(best, candidates, tolerance)

    def within(summary: ConfigSummary) -> bool:
        floor = best.val_accuracy - tolerances[summary.key]
        # isclose: "0.86 is within 0.02 of 0.88" must hold despite float rounding.
        return summary.val_accuracy >= floor or math.isclose(
            summary.val_accuracy, floor, abs_tol=1e-12
        )

    good = [s for s in candidates if within(s)]
    chosen = min(good, key=lambda s: (s.trainable_params, -s.val_accuracy, s.key))
    used = tolerances[chosen.key]  # the pick's yardstick (the best's own, for the best)
    threshold = best.val_accuracy - used
    also_within = tuple(
        sorted((s for s in good if s.key not in (chosen.key, best.key)), key=rank_key)
    )
    caveat = single_run_caveat(chosen, best, pool, over)
    check = check_test_accuracy(chosen, best, used)
    edges = tuple(at_edges(pool, ranges or {}))
    sentences = [
        reason_sentence(chosen, best, used, measure),
        tuned_sentence(chosen, best),
        also_within_sentence(also_within),
        repeat_over_sentence(over),
        caveat,
        check.sentence(),
        edge_sentence(edges, ranges or {}),
        fixed_sentence(fixed or {}),
    ]
    return Recommendation(
        chosen=chosen,
        best=best,
        tolerance=used,
        tolerance_derivation=derivation,
        threshold=threshold,
        reason=" ".join(sentence for sentence in sentences if sentence),
        max_overfit_gap=None if max_overfit_gap is None else float(max_overfit_gap),
        candidates=tuple(s.key for s in candidates),
        also_within=also_within,
        caveat=caveat,
        test_accuracy_check=check,
        repeat_over=over,
        at_edges=edges,
        fixed=dict(fixed or {}),
    )
