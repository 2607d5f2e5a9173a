"""Signals: SIGTERM (Slurm's scancel, kill) ends a trial like Ctrl-C does, never mid-write.

An interruption raised in the middle of an MLflow write leaves SQLite's write lock held by
the interrupted connection, so ending the run KILLED then fails ("database is locked") and
the run stays RUNNING. Writes therefore run :func:`uninterrupted`: a signal that arrives
during one is raised as soon as the write is done.

Inside a Slurm job started by submitit (``hydra/launcher=submitit_slurm``) the process is
submitit's, not ``capsweep``'s: submitit sets SIGTERM to be logged and ignored ("Bypassing
signal SIGTERM"), so a cancelled or preempted job would train on until Slurm's SIGKILL,
leaving its MLflow run RUNNING and no result for the sweeper. :func:`job_signals` takes
SIGTERM back for the trial and turns it into :class:`JobTerminated`, an ordinary exception
that Hydra and submitit hand back to the sweeper as the job's result.

The exception a handler raises does not always reach the code above: raised while C code
(TensorFlow's, say) runs a Python callback, it can be lost and replaced by a
``SystemError`` ("bad argument to internal function"). So the handler also records that a
stop signal arrived (:func:`stop_requested`), and runs and jobs that end with any error
after one are ended as stopped, not as failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any


class Terminated(BaseException):
    """SIGTERM arrived; raised like KeyboardInterrupt so runs end KILLED, not RUNNING."""


class JobTerminated(Exception):
    """A trial's batch job was stopped by SIGTERM (scancel, preemption) and its run ended
    KILLED. An ordinary exception, unlike :class:`Terminated`, so that the job still returns
    a result: the sweeper reads it as "interrupted, train this configuration again"."""


# Set by submitit in the process that runs a job (submitit.core.submission.process_job).
SUBMITIT_JOB_ENV = "SUBMITIT_FOLDER"


_depth = 0  # how many uninterrupted() blocks the main thread is in
_pending: BaseException | None = None
_stop_signal: int | None = None  # the first SIGINT/SIGTERM since the handlers were installed


def _interruption(signum: int) -> BaseException:
    if signum == signal.SIGINT:
        return KeyboardInterrupt()
    return Terminated(f"signal {signum}")


def _handler(signum: int, frame: Any) -> None:
    global _pending, _stop_signal
    if _stop_signal is None:
        _stop_signal = signum
    if _depth and _pending is None:
        _pending = _interruption(signum)  # raised when the write is done
        return
    # Outside a write, or a second signal while one is held: stop now.
    _pending = None
    raise _interruption(signum)


def install_signal_handlers() -> None:
    """Turn SIGTERM into :class:`Terminated` and SIGINT into KeyboardInterrupt, held while a
    write is under way (a second signal is not held), in the main thread of this process."""
    global _stop_signal
    _stop_signal = None
    with contextlib.suppress(ValueError):  # not the main thread: leave the defaults
        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)


@contextlib.contextmanager
def handling_signals() -> Iterator[None]:
    """:func:`install_signal_handlers` for a block: the previous handlers are put back and
    any stop signal received is forgotten when it ends (for tests, and embedding)."""
    global _stop_signal
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    install_signal_handlers()
    try:
        yield
    finally:
        _stop_signal = None
        for number, handler in previous.items():
            signal.signal(number, handler)


def stop_requested() -> int | None:
    """The SIGINT or SIGTERM that arrived since :func:`install_signal_handlers`, if any.

    An error raised after one is the stop's doing, whatever its type: see the module's
    documentation.
    """
    return _stop_signal


def raise_if_stop_requested() -> None:
    """Raise the interruption of a stop signal whose exception never surfaced.

    Raised while C code runs, the handler's exception can be lost altogether and training
    would go on; a check at each epoch's end stops it there instead.
    """
    if _stop_signal is not None:
        raise _interruption(_stop_signal)


def in_submitit_job() -> bool:
    """Whether this process is a job started by submitit (Hydra's submitit launchers)."""
    return SUBMITIT_JOB_ENV in os.environ


@contextlib.contextmanager
def job_signals() -> Iterator[None]:
    """In a submitit job, let SIGTERM stop the trial and end the job with a result.

    submitit has set SIGTERM to be ignored; this installs capsweep's handlers instead, so
    the trial's run ends KILLED, and raises :class:`JobTerminated` in place of
    :class:`Terminated`. Further SIGTERMs are then ignored, so that the job can write its
    result before Slurm's SIGKILL (``KillWait`` seconds later). Elsewhere (the sweeper's own
    process, a joblib worker) it changes nothing.
    """
    if not in_submitit_job():
        yield
        return
    install_signal_handlers()
    try:
        yield
    except BaseException as error:
        if not isinstance(error, Terminated) and stop_requested() != signal.SIGTERM:
            raise
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise JobTerminated(
            f"the job was stopped by SIGTERM ({_describe(error)}): cancelled or preempted"
        ) from None


def _describe(error: BaseException) -> str:
    if isinstance(error, Terminated):
        return str(error)
    return f"signal {signal.SIGTERM.value}, surfacing as {type(error).__name__}: {error}"


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
