"""How far a configuration's val_accuracy could move: its standard error."""

from __future__ import annotations

import math

from capsweep.select.records import ConfigSummary


def standard_error(summary: ConfigSummary) -> float:
    """The standard error of a configuration's val_accuracy.

    From the repeats (std / sqrt(n)) when there are several; otherwise binomial,
    sqrt(p(1 - p) / n_val), from the one val_accuracy p and the validation split's size.

    Raises:
        ValueError: One repeat and no n_val recorded.
    """
    if summary.n > 1 and summary.val_accuracy_std is not None:
        return summary.val_accuracy_std / math.sqrt(summary.n)
    if summary.n_val is None or not summary.n_val > 0:
        raise ValueError(
            f"cannot estimate the standard error of {summary.label}: it has {summary.n} "
            f"completed repeat and n_val={summary.n_val!r}; record n_val, train repeats, "
            "or give an absolute tolerance"
        )
    p = summary.val_accuracy
    return math.sqrt(p * (1 - p) / summary.n_val)
