"""Per-epoch metrics written in batches, not one tracking write per epoch.

A tracking write costs tens of milliseconds (a SQLite transaction, or an HTTP request to
a server); a 30-epoch trial of a small head takes about as long to write its curve epoch
by epoch as to train. The first epoch is written at once (a run shows it is training),
then at most every ``every_seconds``, and whatever is left when training ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

# (step, {metric: value}) rows, written together.
MetricSteps = Sequence[tuple[int, Mapping[str, float]]]


class BufferedEpochMetrics:
    """An epoch listener that records ``names`` from each epoch's logs, in batches."""

    def __init__(
        self,
        write: Callable[[MetricSteps], None],
        names: Sequence[str],
        *,
        every_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write = write
        self.names = tuple(names)
        self.every_seconds = every_seconds
        self.clock = clock
        self.pending: list[tuple[int, dict[str, float]]] = []
        self.last_write: float | None = None

    def __call__(self, epoch: int, logs: dict[str, float]) -> None:
        self.pending.append((epoch, {k: float(v) for k, v in logs.items() if k in self.names}))
        if self.last_write is None or self.clock() - self.last_write >= self.every_seconds:
            self.flush()

    def flush(self) -> None:
        """Write what is pending (at the end of training, however it ended)."""
        if self.pending:
            self.write(self.pending)
            self.pending = []
        self.last_write = self.clock()
