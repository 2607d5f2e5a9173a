"""The one error type capsweep raises for input a user can fix."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class CapsweepConfigError(ValueError):
    """A configuration value or an input file that capsweep cannot use.

    The message names the config key, the value received, what would be accepted and,
    where there is one, the fix. It is raised before anything is trained or written.
    """

    def __init__(
        self,
        key: str,
        value: Any,
        problem: str,
        *,
        choices: Iterable[Any] | None = None,
        fix: str | None = None,
    ) -> None:
        self.key = key
        self.value = value
        parts = [f"{key}={value!r}: {problem}"]
        if choices is not None:
            parts.append("choose one of: " + ", ".join(str(choice) for choice in choices))
        if fix:
            parts.append(fix)
        super().__init__("; ".join(parts))


def require_count(key: str, value: Any, *, minimum: int = 0) -> int:
    """Return ``value`` as an int, or raise if it is not a whole number >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise CapsweepConfigError(key, value, "must be a whole number", fix=f"e.g. {key}=1")
    if value < minimum:
        raise CapsweepConfigError(
            key, value, f"must be >= {minimum}", fix=f"e.g. {key}={max(minimum, 1)}"
        )
    return value


class StopTraining(Exception):
    """Raised by an epoch listener to end a trial early; the trial is recorded as pruned."""

    def __init__(self, epoch: int, message: str) -> None:
        super().__init__(message)
        self.epoch = epoch
