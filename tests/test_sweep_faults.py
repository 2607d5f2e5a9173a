"""Sweeps that lose nothing when workers die, stall or race: real ``capsweep -m`` processes.

Each test freezes or kills a worker at a moment it waits for (a trial RUNNING with
training started), never at a guessed time; tiny trials as in test_sweep.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from optuna.trial import TrialState

from capsweep.sweep import study as studies
from capsweep.sweep.study import HEARTBEAT_ATTR
from sweep_workers import (
    LONG_TRIALS,
    TRAINING_ATTR,
    children,
    end_worker,
    holds_a_lock,
    journal_of,
    load,
    pause_during_a_trial,
    run,
    runs,
    start_worker,
    sweep_command,
    tail,
    training_trials,
    wait_for_exit,
)

pytestmark = [pytest.mark.slow, pytest.mark.heavy]

THREE_POINTS = ["capacity.unfreeze=range(0,3)", "head.depth=choice(0)"]
WAITS_AT_MOST = 300.0  # seconds: only a hung worker reaches it
# A trial unmarked for this long is taken for dead; its owner marks it every quarter of it.
STALE_AFTER = 8.0


@pytest.fixture
def mlflow_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/mlflow.db"


def complete_points(outputs: Path, study: str) -> set[int]:
    trials = load(outputs, study).get_trials()
    return {t.params["capacity.unfreeze"] for t in trials if t.state == TrialState.COMPLETE}


def wait_until(
    condition: Callable[[], bool],
    what: str,
    log: Path,
    worker: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + WAITS_AT_MOST
    while not condition():
        if worker is not None and worker.poll() is not None:
            pytest.fail(f"the worker exited ({worker.returncode}) before {what}:\n{tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {WAITS_AT_MOST:.0f} s:\n{tail(log)}")
        time.sleep(0.2)


def test_a_trial_killed_at_the_last_grid_point_is_trained_when_resumed(
    tmp_path: Path, mlflow_uri: str
) -> None:
    outputs = tmp_path / "outputs"
    command = sweep_command(outputs, mlflow_uri, "last", *THREE_POINTS, *LONG_TRIALS)
    first = run([*command, "hydra.sweeper.n_trials=2"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    log = tmp_path / "last.log"
    process = start_worker(command, tmp_path, log)
    try:
        victim = pause_during_a_trial(process, outputs, "last", mlflow_uri, log)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        end_worker(process)
    assert victim.params["capacity.unfreeze"] not in complete_points(outputs, "last")

    resumed = run(command, tmp_path)

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert complete_points(outputs, "last") == {0, 1, 2}


def test_a_live_worker_whose_trial_is_slow_is_not_taken_for_dead(
    tmp_path: Path, mlflow_uri: str
) -> None:
    """A's trial trains in a joblib process that is frozen (a very long epoch) for longer
    than stale_after_seconds; A itself lives and marks it alive. B must leave it alone."""
    outputs = tmp_path / "outputs"
    command = sweep_command(
        outputs,
        mlflow_uri,
        "slow",
        *THREE_POINTS,
        *LONG_TRIALS,
        f"hydra.sweeper.stale_after_seconds={STALE_AFTER}",
    )
    log_a, log_b = tmp_path / "worker-a.log", tmp_path / "worker-b.log"
    worker_a = start_worker(
        [*command, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        tmp_path,
        log_a,
    )
    try:
        trainer, number = freeze_the_training_process(worker_a, outputs, "slow", mlflow_uri, log_a)
        frozen_at = time.time()  # the liveness marks' clock
        # B starts once the trial has had no epoch for longer than stale_after_seconds and
        # A has marked it alive since: only that mark tells B the trial is not dead.
        wait_until(
            lambda: liveness_mark(outputs, "slow", number) > frozen_at + STALE_AFTER,
            "a liveness mark of the frozen trial, stale_after_seconds after it froze",
            log_a,
            worker_a,
        )
        worker_b = start_worker(command, tmp_path, log_b)
        try:
            wait_until(
                lambda: len(complete_points(outputs, "slow")) == 2,
                "B's two trials",
                log_b,
                worker_b,
            )
            os.kill(trainer, signal.SIGCONT)
            wait_for_exit(worker_b, log_b, "worker B")
        finally:
            end_worker(worker_b)
        wait_for_exit(worker_a, log_a, "worker A")
    finally:
        end_worker(worker_a)

    trials = load(outputs, "slow").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert not any(studies.REQUEUED_ATTR in t.user_attrs for t in trials)


def liveness_mark(outputs: Path, study: str, number: int) -> float:
    """When trial ``number``'s owner last marked it alive (seconds since the epoch), or 0."""
    return float(load(outputs, study).get_trials()[number].user_attrs.get(HEARTBEAT_ATTR, 0.0))


def freeze_the_training_process(
    worker: subprocess.Popen[bytes], outputs: Path, study: str, uri: str, log: Path
) -> tuple[int, int]:
    """SIGSTOP the process (not the sweeper) that trains worker's trial; return its pid and
    the trial's number."""
    database = Path(uri.removeprefix("sqlite:///"))
    deadline = time.monotonic() + WAITS_AT_MOST
    while True:
        caught = training_trials(outputs, study, worker.pid)
        if caught:
            trainer = int(caught[0].user_attrs[TRAINING_ATTR]["pid"])
            assert trainer != worker.pid, "the trial should train in a joblib process"
            os.kill(trainer, signal.SIGSTOP)
            wait_until(functools.partial(_stopped, trainer), "SIGSTOP", log)
            if not holds_a_lock(journal_of(outputs, study), database):
                return trainer, caught[0].number
            os.kill(trainer, signal.SIGCONT)
        if worker.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no trial started training in a joblib process:\n{tail(log)}")
        time.sleep(0.1)


def _stopped(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state in ("T", "t")


def test_the_survivor_retrains_the_trial_of_a_worker_killed_mid_sweep(
    tmp_path: Path, mlflow_uri: str
) -> None:
    outputs = tmp_path / "outputs"
    command = sweep_command(outputs, mlflow_uri, "survivor", *THREE_POINTS, *LONG_TRIALS)
    log_a, log_b = tmp_path / "worker-a.log", tmp_path / "worker-b.log"
    worker_a = start_worker(command, tmp_path, log_a)
    try:
        victim = pause_during_a_trial(worker_a, outputs, "survivor", mlflow_uri, log_a)
        worker_b = start_worker(command, tmp_path, log_b)
        try:
            # B trains the two other points, then waits for A's trial.
            wait_until(
                lambda: len(complete_points(outputs, "survivor")) == 2,
                "B's two trials",
                log_b,
                worker_b,
            )
            os.killpg(worker_a.pid, signal.SIGKILL)
            worker_a.wait()
            wait_for_exit(worker_b, log_b, "worker B")
        finally:
            end_worker(worker_b)
    finally:
        end_worker(worker_a)

    trials = load(outputs, "survivor").get_trials()
    assert complete_points(outputs, "survivor") == {0, 1, 2}
    assert trials[victim.number].state == TrialState.FAIL
    (retried,) = [t for t in trials if t.user_attrs.get(studies.REQUEUED_ATTR) == victim.number]
    assert retried.state == TrialState.COMPLETE
    assert retried.user_attrs[studies.OWNER_ATTR]["pid"] == worker_b.pid
    statuses = {
        r.data.tags["capsweep.trial_number"]: r.info.status
        for r in children(mlflow_uri, "survivor")
    }
    assert statuses[str(victim.number)] == "KILLED"


def test_a_worker_stopped_by_sigterm_gives_its_trial_back_at_once(
    tmp_path: Path, mlflow_uri: str
) -> None:
    """As on preemption of a job-array worker: no waiting for stale_after_seconds."""
    outputs = tmp_path / "outputs"
    command = sweep_command(outputs, mlflow_uri, "term", *THREE_POINTS, *LONG_TRIALS)
    log = tmp_path / "term.log"
    worker = start_worker(command, tmp_path, log)
    try:
        victim = pause_during_a_trial(worker, outputs, "term", mlflow_uri, log)
        os.killpg(worker.pid, signal.SIGTERM)
        os.killpg(worker.pid, signal.SIGCONT)
        worker.wait(timeout=120)
    finally:
        end_worker(worker)

    trials = load(outputs, "term").get_trials()
    assert trials[victim.number].state == TrialState.FAIL
    (copy,) = [t for t in trials if t.user_attrs.get(studies.REQUEUED_ATTR) == victim.number]
    assert copy.state == TrialState.WAITING
    assert studies.planned_params(copy) == victim.params
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    statuses = {
        r.data.tags.get("capsweep.role", "trial"): r.info.status for r in runs(mlflow_uri, "term")
    }
    assert statuses == {"trial": "KILLED", "sweep": "KILLED"}
