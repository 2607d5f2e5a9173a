"""How far a configuration's val_accuracy could move: its standard error."""

from __future__ import annotations

import math

from capsweep.select.summaries import ConfigSummary


def wilson_half_width(p: float, n: float, z: float = 1.0) -> float:
    """Half the width of the Wilson score interval for a proportion ``p`` out of ``n``.

    ``z / (1 + z²/n) * sqrt(p(1 - p)/n + z²/(4n²))``; with ``z = 1`` that is
    ``sqrt(n p(1 - p) + 1/4) / (n + 1)``. It is positive for every ``p`` in [0, 1],
    including 0 and 1.
    """
    return z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))


def standard_error(summary: ConfigSummary) -> float:
    """The standard error of a configuration's val_accuracy.

    From the independent repeats (std / sqrt(n)) when there are several, but never less
    than the Wilson half-width of their n * n_val validation images. Otherwise from
    the one val_accuracy p and the validation split's size n_val, as the half-width of
    the Wilson score interval at z = 1 ("one Wilson standard error"). Not the binomial
    sqrt(p(1 - p) / n_val): that is 0 at p = 1 or 0, which would make a perfect single
    run look certain and shrink the tolerance to nothing, although 200 validation images
    cannot tell 1.00 from 0.995. The Wilson half-width keeps its coverage near those
    edges and at small n_val, and differs from the binomial error by at most
    1/(2(n_val + 1)) (0.01501 against 0.01500 at p = 0.9, n_val = 400; 0.0025 against 0
    at p = 1, n_val = 200).

    Raises:
        ValueError: One independent repeat and no n_val recorded.
    """
    if summary.n > 1 and summary.val_accuracy_std is not None:
        spread = summary.val_accuracy_std / math.sqrt(summary.n)
        if summary.n_val is None or not summary.n_val > 0:
            return spread
        # A few repeats can agree by chance (0.90, 0.90, 0.90): their spread says 0, yet
        # n repeats of n_val images cannot pin the mean closer than one Wilson error of
        # n * n_val images.
        return max(spread, wilson_half_width(summary.val_accuracy, summary.n * summary.n_val))
    if summary.n_val is None or not summary.n_val > 0:
        raise ValueError(
            f"cannot estimate the standard error of {summary.label}: it has {summary.n} "
            f"independent repeat and n_val={summary.n_val!r}; record n_val, train repeats, "
            "or give an absolute tolerance"
        )
    return wilson_half_width(summary.val_accuracy, summary.n_val)


def standard_error_or_none(summary: ConfigSummary) -> float | None:
    """:func:`standard_error`, or ``None`` where it cannot be estimated (for displays)."""
    try:
        return standard_error(summary)
    except ValueError:
        return None
