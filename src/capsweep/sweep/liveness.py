"""Tell other workers that a trial's owner is alive, from a thread, whatever the trial does.

A RUNNING trial whose liveness mark is older than ``stale_after_seconds`` is taken for the
trial of a dead worker (:mod:`capsweep.sweep.recovery`). A mark refreshed only between
epochs would let a long epoch, a job waiting in a Slurm queue or a slow start look like
death; this thread refreshes it every ``interval`` seconds for as long as the owner lives.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage

from capsweep.sweep.study import HEARTBEAT_ATTR

log = logging.getLogger(__name__)

# Beats per stale period: a mark is never older than a quarter of it while the owner lives.
BEATS_PER_STALE_PERIOD = 4
LONGEST_INTERVAL = 60.0
JOIN_GRACE = 10.0  # seconds a last beat may take when the block ends


def beat_interval(stale_after: float) -> float:
    """Seconds between two liveness marks, for trials declared dead after ``stale_after``."""
    return min(max(stale_after / BEATS_PER_STALE_PERIOD, 0.1), LONGEST_INTERVAL)


def trial_ids(storage: BaseStorage, study_name: str, numbers: Iterable[int]) -> list[int]:
    """The storage's ids of trials ``numbers`` of a study."""
    study_id = storage.get_study_id_from_name(study_name)
    return [storage.get_trial_id_from_study_id_trial_number(study_id, n) for n in numbers]


def mark_alive(storage: BaseStorage, trial_id: int) -> bool:
    """Refresh one trial's liveness mark; ``False`` once the trial is finished (by anyone)."""
    try:
        storage.set_trial_user_attr(trial_id, HEARTBEAT_ATTR, time.time())
    except UpdateFinishedTrialError:
        return False
    return True


@contextlib.contextmanager
def heartbeat(storage: BaseStorage, trial_ids: Iterable[int], *, interval: float) -> Iterator[None]:
    """Mark ``trial_ids`` alive now and every ``interval`` seconds until the block ends.

    A trial that gets finished meanwhile (by its owner, or by a worker that took it for
    dead) drops out; a storage error is logged and the next beat tried, so a blip in the
    database never ends a trial.
    """
    alive = list(trial_ids)
    stop = threading.Event()

    def beat_once() -> None:
        for trial_id in list(alive):
            try:
                if not mark_alive(storage, trial_id):
                    alive.remove(trial_id)
            except Exception as error:  # the storage is briefly unreachable, say
                log.warning("Liveness mark of trial id %d not written: %s", trial_id, error)

    def beat() -> None:
        while alive and not stop.wait(interval):
            beat_once()

    beat_once()

    thread = threading.Thread(target=beat, name="capsweep-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        # A beat stuck on an unreachable storage must not hold the sweep (daemon thread).
        thread.join(timeout=interval + JOIN_GRACE)
