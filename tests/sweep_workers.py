"""Helpers for tests that run ``capsweep -m`` workers as real subprocesses.

Tests that must catch a worker in the middle of a trial do not guess when that is: they
wait for the trial's own sign (RUNNING, with the worker's attribute that training has
started, in the study's storage), freeze the worker with SIGSTOP, and read the study again
while nothing can change it. They do not depend on the machine's speed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from capsweep.sweep import study as studies

BIN = Path(sys.executable).parent
TINY = [
    "backbone.weights=null",
    "backbone.input_size=8",
    "backbone.filters=[4,4,4]",
    "backbone.blocks_per_stage=1",
    "data.train_per_class=4",
    "data.val_size=50",
    "trainer.epochs=2",
    "tracking.log_artifacts=false",
    # One job per configuration, whatever the default sweep's repeats; the repeats test
    # sets its own (a later override wins).
    "hydra.sweeper.repeats=1",
]
# The plumbing tests run each configuration at the default rates; the tuning tests keep
# their sweep file's nuisance space (``sweep_command(..., tuned=True)``).
UNTUNED = ["hydra.sweeper.nuisance=null"]
GRID = ["capacity.unfreeze=range(0,2)", "head.depth=choice(0,1)"]
# For tests that catch a worker mid-trial: one job per trial (whatever the default sweep's
# repeats), long enough that the worker is caught in the trial it started, not after it.
LONG_TRIALS = [
    "trainer.epochs=30",
    "trainer.early_stopping_patience=null",
]
# Bounds that only a broken or hung worker reaches; a test fails loudly at them.
STARTS_TRAINING_WITHIN = 300.0  # seconds from launch to a trial's start of training
# Set by the job as training starts (with the pid of the process that trains).
TRAINING_ATTR = "capsweep.worker.0"
FINISHES_WITHIN = 400.0  # seconds for a worker to finish its sweep


def sweep_command(
    outputs: Path, uri: str, study: str, *extra: str, tuned: bool = False
) -> list[str]:
    return [
        str(BIN / "capsweep"),
        "-m",
        *TINY,
        *([] if tuned else UNTUNED),
        f"paths.outputs={outputs}",
        f"tracking.uri={uri}",
        f"tracking.experiment={study}",
        f"hydra.sweeper.study_name={study}",
        *extra,
    ]


def run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        command,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def load(outputs: Path, study: str) -> optuna.Study:
    storage = studies.open_storage(str(outputs / "optuna" / f"{study}.journal"))
    return optuna.load_study(study_name=study, storage=storage)


def journal_of(outputs: Path, study: str) -> Path:
    return outputs / "optuna" / f"{study}.journal"


def start_worker(command: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start ``capsweep -m`` unbuffered, its output in ``log`` (a file: never a pipe that
    fills up and blocks it), in its own session so ``os.killpg`` reaches all it starts."""
    with log.open("wb") as output:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no output)"


def end_worker(process: subprocess.Popen[bytes]) -> None:
    """Kill a worker's process group if it is still there, stopped or not, and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # SIGKILL ends a stopped process too
            os.killpg(process.pid, signal.SIGCONT)
        process.wait()


def wait_for_exit(process: subprocess.Popen[bytes], log: Path, name: str) -> None:
    try:
        process.wait(timeout=FINISHES_WITHIN)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} did not finish within {FINISHES_WITHIN:.0f} s:\n{tail(log)}")
    assert process.returncode == 0, f"{name} exited with {process.returncode}:\n{tail(log)}"


def training_trials(outputs: Path, study: str, pid: int) -> list[FrozenTrial]:
    """The RUNNING trials of worker ``pid`` that started training."""
    if not journal_of(outputs, study).exists():
        return []
    try:
        trials = load(outputs, study).get_trials()
    except KeyError:  # the journal is there, the study not yet
        return []
    return [
        t
        for t in trials
        if t.state == TrialState.RUNNING
        and TRAINING_ATTR in t.user_attrs
        and t.user_attrs.get(studies.OWNER_ATTR, {}).get("pid") == pid
    ]


def stop(process: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    """SIGSTOP a worker's process group; return once the worker has stopped."""
    os.killpg(process.pid, signal.SIGSTOP)
    while True:
        pid, status = os.waitpid(process.pid, os.WUNTRACED | os.WNOHANG)
        if pid and os.WIFSTOPPED(status):
            return
        if pid:  # it exited, and was reaped here: tell Popen
            process.returncode = os.waitstatus_to_exitcode(status)
            pytest.fail(
                f"the worker exited ({process.returncode}) instead of stopping:\n{tail(log)}"
            )
        if time.monotonic() > deadline:
            pytest.fail("the worker did not stop on SIGSTOP")
        time.sleep(0.01)


def holds_a_lock(journal: Path, database: Path) -> bool:
    """Whether a stopped worker holds the journal's lock or a lock on the MLflow database.

    Stopped like that it would block every other process: Optuna breaks a journal lock
    held 30 s behind the holder's back, and MLflow gives up on a locked database after 20 s.
    """
    if os.path.lexists(f"{journal}.lock"):  # Optuna's JournalFileSymlinkLock
        return True
    connection = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")  # fails while another connection holds a lock
        connection.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        connection.close()


def tuning_trials(outputs: Path, study: str, pid: int, role: str) -> list[FrozenTrial]:
    """The RUNNING trials of worker ``pid`` that started training, in the study's
    configurations' own studies (nuisance tuning), of ``role`` (search or confirm)."""
    if not journal_of(outputs, study).exists():
        return []
    storage = studies.open_storage(str(journal_of(outputs, study)))
    found = []
    for name in optuna.get_all_study_names(storage):
        if not name.startswith(f"{study}/"):
            continue
        for trial in optuna.load_study(study_name=name, storage=storage).get_trials():
            attrs = trial.user_attrs
            if (
                trial.state == TrialState.RUNNING
                and TRAINING_ATTR in attrs
                and attrs.get("capsweep.role") == role
                and attrs.get(studies.OWNER_ATTR, {}).get("pid") == pid
            ):
                found.append(trial)
    return found


def pause_during_a_trial(
    process: subprocess.Popen[bytes],
    outputs: Path,
    study: str,
    uri: str,
    log: Path,
    *,
    find: Callable[[Path, str, int], list[FrozenTrial]] = training_trials,
) -> FrozenTrial:
    """Stop the worker while it trains a trial and holds no lock; return that trial.

    Waits for the trial's own sign (RUNNING, training started, in the journal), stops the
    worker, then reads the journal again: a stopped worker cannot change it, so the trial
    returned stays RUNNING for as long as the worker stays stopped. If the worker moved
    on in between, or was stopped holding a lock, it is resumed and caught again.
    """
    deadline = time.monotonic() + STARTS_TRAINING_WITHIN
    database = Path(uri.removeprefix("sqlite:///"))
    while True:
        while not find(outputs, study, process.pid):
            if process.poll() is not None:
                pytest.fail(
                    f"the worker exited ({process.returncode}) before a trial started "
                    f"training:\n{tail(log)}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no trial started training within {STARTS_TRAINING_WITHIN:.0f} s:\n{tail(log)}"
                )
            time.sleep(0.2)
        stop(process, log, deadline)
        caught = find(outputs, study, process.pid)
        if len(caught) > 1:
            pytest.fail(f"one worker trains {len(caught)} trials at once: {caught}")
        if caught and not holds_a_lock(journal_of(outputs, study), database):
            return caught[0]
        os.killpg(process.pid, signal.SIGCONT)
        time.sleep(0.05)  # let it finish the write in progress


def runs(uri: str, experiment: str) -> list[Any]:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return list(client.search_runs([found.experiment_id])) if found else []


def children(uri: str, experiment: str) -> list[Any]:
    return [r for r in runs(uri, experiment) if r.data.tags.get("capsweep.role") != "sweep"]
