"""The held-out check: does the pick's test accuracy stay within the tolerance of the best's?"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from capsweep.select.summaries import ConfigSummary


@dataclass(frozen=True)
class HoldoutCheck:
    """The pick's and the best's mean test_accuracy, side by side.

    The pick was chosen on val_accuracy; the test set has not been looked at. Its check is
    one-sided, like the pick rule: the pick holds up when its test accuracy is at most
    ``tolerance`` below the best's (higher is fine).

    Args:
        chosen: The pick's mean test_accuracy, ``None`` when not recorded.
        best: The best configuration's mean test_accuracy, ``None`` when not recorded.
        tolerance: The tolerance the pick rule used on val_accuracy.
        same: Whether the pick is the best configuration itself.
    """

    chosen: float | None
    best: float | None
    tolerance: float
    same: bool = False

    @property
    def difference(self) -> float | None:
        """The pick's test accuracy minus the best's, ``None`` when either is missing."""
        if self.chosen is None or self.best is None:
            return None
        return self.chosen - self.best

    @property
    def within(self) -> bool | None:
        """Whether the pick's test accuracy is within the tolerance of the best's."""
        difference = self.difference
        if difference is None:
            return None
        # isclose: a difference of exactly -tolerance must count as within despite rounding.
        return difference >= -self.tolerance or math.isclose(
            difference, -self.tolerance, abs_tol=1e-12
        )

    def sentence(self) -> str:
        """The check in words."""
        if self.chosen is None or self.best is None:
            missing = "the pick" if self.chosen is None else "the best"
            if self.chosen is None and self.best is None and not self.same:
                missing = "the pick and the best"
            return f"Test accuracy was not recorded for {missing}: no check on the test set."
        if self.same:
            return f"Test accuracy of the pick (the best itself): {self.chosen:.3f}."
        verdict = (
            "within the tolerance of the best"
            if self.within
            else "not within the tolerance of the best: the pick may not hold up on unseen data"
        )
        return (
            f"Test accuracy: the pick {self.chosen:.3f}, the best {self.best:.3f} (difference "
            f"{self.difference:+.3f}, tolerance {self.tolerance:.3f}), {verdict}."
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe: chosen, best, difference, tolerance and within (``None`` if unknown)."""
        return {
            "chosen": self.chosen,
            "best": self.best,
            "difference": self.difference,
            "tolerance": self.tolerance,
            "within": self.within,
        }


def check_test_accuracy(
    chosen: ConfigSummary, best: ConfigSummary, tolerance: float
) -> HoldoutCheck:
    """Compare the pick's mean test_accuracy with the best's."""
    return HoldoutCheck(
        chosen=chosen.test_accuracy,
        best=best.test_accuracy,
        tolerance=tolerance,
        same=chosen.key == best.key,
    )
