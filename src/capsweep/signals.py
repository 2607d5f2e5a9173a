"""Signals: SIGTERM (Slurm's scancel, kill) ends a trial like Ctrl-C does, never mid-write.

An interruption raised in the middle of an MLflow write leaves SQLite's write lock held by
the interrupted connection, so ending the run KILLED then fails ("database is locked") and
the run stays RUNNING. Writes therefore run :func:`uninterrupted`: a signal that arrives
during one is raised as soon as the write is done.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class Terminated(BaseException):
    """SIGTERM arrived; raised like KeyboardInterrupt so runs end KILLED, not RUNNING."""


_depth = 0  # how many uninterrupted() blocks the main thread is in
_pending: BaseException | None = None


def _interruption(signum: int) -> BaseException:
    if signum == signal.SIGINT:
        return KeyboardInterrupt()
    return Terminated(f"signal {signum}")


def _handler(signum: int, frame: Any) -> None:
    global _pending
    if _depth and _pending is None:
        _pending = _interruption(signum)  # raised when the write is done
        return
    # Outside a write, or a second signal while one is held: stop now.
    _pending = None
    raise _interruption(signum)


def install_signal_handlers() -> None:
    """Turn SIGTERM into :class:`Terminated` and SIGINT into KeyboardInterrupt, held while a
    write is under way (a second signal is not held), in the main thread of this process."""
    with contextlib.suppress(ValueError):  # not the main thread: leave the defaults
        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold SIGINT/SIGTERM (once installed) until the block is done, then raise them.

    Signals reach the main thread only: elsewhere the block runs as it is.
    """
    global _depth, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _pending is not None:
            pending, _pending = _pending, None
            raise pending
