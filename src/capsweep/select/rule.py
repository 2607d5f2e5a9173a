"""The pick rule: the smallest configuration whose val_accuracy is close enough to the best.

Pure: works on configuration summaries, reads no files and imports no training, tracking
or study library, so a report answers in a second on a laptop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from capsweep.errors import CapsweepConfigError
from capsweep.select.explain import Recommendation, reason_sentence
from capsweep.select.records import ConfigSummary, rank_key
from capsweep.select.uncertainty import standard_error


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


def recommend(
    summaries: Iterable[ConfigSummary],
    *,
    tolerance: float | None = None,
    max_overfit_gap: float | None = None,
) -> Recommendation:
    """Recommend the configuration with the fewest trainable params that performs well.

    Candidates are the configurations with ``overfit_gap <= max_overfit_gap`` (all, if it is
    ``None``). The best is the candidate with the highest mean val_accuracy; the chosen one
    has the fewest trainable params among candidates within ``tolerance`` of the best
    (ties: higher val_accuracy).

    Args:
        summaries: What :func:`summarize` returned.
        tolerance: How far below the best val_accuracy still counts as good; by default
            one standard error of the best (:func:`standard_error`).
        max_overfit_gap: Drop configurations whose train - val accuracy gap exceeds this.

    Raises:
        ValueError: No completed configuration, none passes ``max_overfit_gap``, a
            ``tolerance`` that is negative or not finite, or no standard error is known.
    """
    pool = list(summaries)
    if not pool:
        raise ValueError(
            "no completed trial to recommend from: every trial is PRUNED, FAIL, RUNNING or "
            "WAITING; wait for the sweep to finish or check why its trials failed"
        )
    candidates = _within_gap(pool, max_overfit_gap)
    best = min(candidates, key=rank_key)
    if tolerance is None:
        used = standard_error(best)
        derivation = (
            f"one standard error of the best, from {best.n} repeats"
            if best.n > 1
            else f"one binomial standard error of the best, n_val={best.n_val:g}"
        )
    else:
        used = _check_number("tolerance", tolerance, minimum=0.0)
        derivation = "absolute tolerance"
    threshold = best.val_accuracy - used
    # isclose: "0.86 is within 0.02 of 0.88" must hold despite float rounding.
    good = [
        s
        for s in candidates
        if s.val_accuracy >= threshold or math.isclose(s.val_accuracy, threshold, abs_tol=1e-12)
    ]
    chosen = min(good, key=lambda s: (s.trainable_params, -s.val_accuracy, s.key))
    return Recommendation(
        chosen=chosen,
        best=best,
        tolerance=used,
        tolerance_derivation=derivation,
        threshold=threshold,
        reason=reason_sentence(chosen, best, used, absolute=tolerance is not None),
        max_overfit_gap=None if max_overfit_gap is None else float(max_overfit_gap),
    )
