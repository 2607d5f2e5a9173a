"""Signals: SIGTERM (Slurm's scancel, kill) ends a trial like Ctrl-C does."""

from __future__ import annotations

import contextlib
import signal
from typing import Any


class Terminated(BaseException):
    """SIGTERM arrived; raised like KeyboardInterrupt so runs end KILLED, not RUNNING."""


def raise_on_sigterm() -> None:
    """Turn SIGTERM into :class:`Terminated` in the main thread of this process."""

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(f"signal {signum}")

    with contextlib.suppress(ValueError):  # not the main thread: leave the default
        signal.signal(signal.SIGTERM, handler)
