"""Find the trials of dead workers and give their configurations back to the study.

A worker killed by SIGKILL, an out-of-memory killer or a lost node leaves its Optuna trial
RUNNING and its MLflow run RUNNING forever. Every ``capsweep -m`` on the study looks for
such trials when it starts and again while it sweeps: it fails them, ends their runs KILLED
and queues their parameters again.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from capsweep import tracking
from capsweep.sweep.study import (
    HEARTBEAT_ATTR,
    OWNER_ATTR,
    REQUEUED_ATTR,
    RUN_ID_PREFIX,
    enqueue_again,
    tell,
)

log = logging.getLogger(__name__)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(trial: FrozenTrial, *, stale_after: float, now: float | None = None) -> bool:
    """Whether a RUNNING trial's process is gone.

    On this host a trial whose owning process has exited is stale at once; elsewhere, a
    trial is stale when its liveness mark (refreshed by a thread of its owner, see
    :mod:`capsweep.sweep.liveness`) is older than ``stale_after``
    seconds.
    """
    if trial.state != TrialState.RUNNING:
        return False
    owner = trial.user_attrs.get(OWNER_ATTR) or {}
    local = owner.get("host") == socket.gethostname() and owner.get("pid") is not None
    if local and not _process_alive(int(owner["pid"])):
        return True
    now = time.time() if now is None else now
    started = trial.datetime_start.timestamp() if trial.datetime_start else now
    last_beat = float(trial.user_attrs.get(HEARTBEAT_ATTR, started))
    return now - last_beat > stale_after


def recover_stale_trials(
    study: optuna.Study,
    *,
    stale_after: float,
    tracking_uri: str,
    trials: Sequence[FrozenTrial] | None = None,
) -> list[FrozenTrial]:
    """Fail the RUNNING trials of dead workers, end their MLflow runs KILLED, queue them again.

    SIGKILL gives a worker no chance to end its own runs: they would stay RUNNING forever.
    Pass ``trials`` when the caller has read them already.
    """
    if trials is None:
        trials = study.get_trials(deepcopy=False)
    stale = [
        trial
        for trial in trials
        if trial.state == TrialState.RUNNING and is_stale(trial, stale_after=stale_after)
    ]
    recovered = []
    for trial in stale:
        # Queued before it is failed: a survivor killed in between leaves a copy queued
        # (and the stale trial for the next one), never a failed trial nobody retrains.
        queued = enqueue_again(study, trial, **{REQUEUED_ATTR: trial.number})
        if not tell(study, trial.number, state=TrialState.FAIL):
            continue  # another survivor got there first, and queued it again
        recovered.append(trial)
        log.warning(
            "Trial %d was left RUNNING by a dead worker (%s): marked FAIL%s",
            trial.number,
            trial.user_attrs.get(OWNER_ATTR),
            f", parameters {trial.params} queued again" if queued else "",
        )
        for key, run_id in trial.user_attrs.items():
            if key.startswith(RUN_ID_PREFIX):
                tracking.end_if_running(tracking_uri, str(run_id), "KILLED")
    return recovered
