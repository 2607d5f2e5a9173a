"""Handing trials between workers through the study: given back, dropped, kept alive.

Real Optuna studies on the journal file storage; no training.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from capsweep.sweep import recovery
from capsweep.sweep import study as studies
from capsweep.sweep.liveness import heartbeat, trial_ids

SPACE = {"capacity.unfreeze": IntDistribution(0, 2)}
GRID = {"capacity.unfreeze": [0, 1, 2]}
NO_RUNS = "sqlite:///unused.db"  # no trial here has an MLflow run to end


def journal_study(
    tmp_path: Path, sampler: optuna.samplers.BaseSampler | None = None
) -> optuna.Study:
    storage = studies.open_storage(str(tmp_path / "study.journal"))
    return optuna.create_study(storage=storage, study_name="s", sampler=sampler)


def frozen(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    return study.get_trials(deepcopy=False)[number]


def test_a_failed_trial_given_back_is_queued_though_optuna_would_skip_it(tmp_path: Path) -> None:
    study = journal_study(tmp_path)
    surplus = study.ask(SPACE)
    study.tell(surplus, state=TrialState.FAIL)

    assert studies.enqueue_again(study, frozen(study, surplus.number))

    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [studies.planned_params(t) for t in waiting] == [surplus.params]


def test_parameters_a_live_trial_holds_are_not_queued_twice(tmp_path: Path) -> None:
    study = journal_study(tmp_path)
    lost = study.ask(SPACE)
    study.tell(lost, state=TrialState.FAIL)
    study.enqueue_trial(lost.params)  # already given back once

    assert not studies.enqueue_again(study, frozen(study, lost.number))
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1


def test_a_late_result_for_a_trial_another_worker_failed_is_dropped(tmp_path: Path) -> None:
    study = journal_study(tmp_path)
    trial = study.ask(SPACE)
    study.tell(trial.number, state=TrialState.FAIL)  # another worker took it for dead

    assert not studies.tell(study, trial, values=[0.9])
    assert frozen(study, trial.number).state == TrialState.FAIL


def test_a_queued_grid_trial_is_told_though_it_has_no_grid_point(tmp_path: Path) -> None:
    """GridSampler's after_trial looks up a grid id a queued trial lacks (a KeyError)."""
    study = journal_study(tmp_path, optuna.samplers.GridSampler(GRID, seed=0))
    killed = study.ask(SPACE)
    study.tell(killed, state=TrialState.FAIL)
    studies.enqueue_again(study, frozen(study, killed.number))
    retried = study.ask(SPACE)  # the queued parameters
    study.ask(SPACE)  # another grid point, under way: one point is left unvisited

    assert studies.tell(study, retried, values=[0.5])
    assert frozen(study, retried.number).state == TrialState.COMPLETE
    assert frozen(study, retried.number).params == killed.params


def test_the_same_grid_point_drawn_twice_is_found(tmp_path: Path) -> None:
    study = journal_study(tmp_path)
    first = study.ask(SPACE)
    study.enqueue_trial(first.params)
    second = study.ask(SPACE)

    current = study.get_trials(deepcopy=False)
    assert studies.duplicate_of(current, frozen(study, second.number)) == first.number
    assert studies.duplicate_of(current, frozen(study, first.number)) is None


def test_a_copy_queued_while_its_original_still_runs_is_no_duplicate(tmp_path: Path) -> None:
    """A trial is queued again before the one it replaces is failed: a worker that asks the
    copy in between must train it, not drop it as a duplicate of its own original."""
    study = journal_study(tmp_path)
    original = study.ask(SPACE)
    studies.enqueue_again(
        study, frozen(study, original.number), **{studies.REQUEUED_ATTR: original.number}
    )
    copy = study.ask(SPACE)

    current = study.get_trials(deepcopy=False)
    assert frozen(study, original.number).state == TrialState.RUNNING
    assert copy.params == original.params
    assert studies.duplicate_of(current, frozen(study, copy.number)) is None


def test_the_liveness_thread_marks_a_trial_while_it_runs(tmp_path: Path) -> None:
    study = journal_study(tmp_path)
    trial = study.ask(SPACE)
    storage = studies.open_storage(str(tmp_path / "study.journal"))
    (trial_id,) = trial_ids(storage, "s", [trial.number])
    marks: list[float] = []
    deadline = time.monotonic() + 60  # only a thread that never beats again reaches it
    with heartbeat(storage, [trial_id], interval=0.05):
        while len(marks) < 3:
            mark = frozen(study, trial.number).user_attrs.get(studies.HEARTBEAT_ATTR)
            if mark is not None and (not marks or mark != marks[-1]):
                marks.append(mark)
            assert time.monotonic() < deadline, f"the mark stopped moving: {marks}"
            time.sleep(0.02)
    assert marks == sorted(marks)


def test_the_liveness_thread_stops_marking_a_finished_trial(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    study = journal_study(tmp_path)
    trial = study.ask(SPACE)
    storage = studies.open_storage(str(tmp_path / "study.journal"))
    with heartbeat(storage, trial_ids(storage, "s", [trial.number]), interval=0.05):
        study.tell(trial, values=[0.5])  # finished while the thread beats
        deadline = time.monotonic() + 30
        while any(t.name == "capsweep-heartbeat" for t in threading.enumerate()):
            assert time.monotonic() < deadline, "the thread kept marking a finished trial"
            time.sleep(0.05)
    assert frozen(study, trial.number).state == TrialState.COMPLETE
    assert "not written" not in caplog.text


def dead_workers_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """A RUNNING trial whose owner, on this host, is a process that has exited."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    trial = study.ask(SPACE)
    owner = {"host": socket.gethostname(), "pid": int(gone.stdout)}
    trial.set_user_attr(studies.OWNER_ATTR, owner)
    return frozen(study, trial.number)


def test_two_survivors_recover_one_dead_workers_trial_once(tmp_path: Path) -> None:
    first = journal_study(tmp_path)
    lost = dead_workers_trial(first)
    second = optuna.load_study(
        study_name="s", storage=studies.open_storage(str(tmp_path / "study.journal"))
    )
    stale = [t for t in second.get_trials() if t.state == TrialState.RUNNING]

    assert [
        t.number for t in recovery.recover_stale_trials(first, stale_after=60, tracking_uri=NO_RUNS)
    ] == [lost.number]
    # The second survivor saw the trial RUNNING too, a moment before.
    assert not studies.tell(second, stale[0].number, state=TrialState.FAIL)
    assert recovery.recover_stale_trials(second, stale_after=60, tracking_uri=NO_RUNS) == []
    waiting = first.get_trials(states=(TrialState.WAITING,))
    assert [studies.planned_params(t) for t in waiting] == [lost.params]


def test_a_configuration_lost_again_and_again_is_not_queued_forever(tmp_path: Path) -> None:
    study = journal_study(tmp_path)
    lost = study.ask(SPACE)
    study.tell(lost, state=TrialState.FAIL)
    for _ in range(studies.MAX_REQUEUES):
        assert studies.enqueue_again(
            study, frozen(study, lost.number), **{studies.REQUEUED_ATTR: lost.number}
        )
        lost = study.ask(SPACE)  # the copy, lost too
        study.tell(lost, state=TrialState.FAIL)

    assert not studies.enqueue_again(
        study, frozen(study, lost.number), **{studies.REQUEUED_ATTR: lost.number}
    )


def test_workers_joining_a_study_draw_their_own_sampler_seeds() -> None:
    code = "from capsweep.sweep.loop import worker_seed; print(worker_seed(7))"
    seeds = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(3)
    }
    assert len(seeds) == 3
