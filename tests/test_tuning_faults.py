"""A tuned sweep survives its worker being killed, in the search or in the confirmation,
and two workers share one without training any configuration's work twice.

Workers are real ``capsweep -m`` subprocesses, caught while a job of the wanted kind trains
(read from the configurations' studies, not guessed from time) and killed with SIGKILL.
"""

from __future__ import annotations

import functools
import os
import signal
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from capsweep.sweep import study as studies
from capsweep.sweep import tuning
from sweep_workers import (
    LONG_TRIALS,
    children,
    end_worker,
    journal_of,
    pause_during_a_trial,
    run,
    start_worker,
    tuning_trials,
    wait_for_exit,
)
from test_tuning import CANDIDATES, REPEATS, tuned_command, tuned_sweep_file

pytestmark = [pytest.mark.slow, pytest.mark.heavy]


@pytest.fixture
def mlflow_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/mlflow.db"


def configuration_trials(outputs: Path, study: str) -> dict[str, list[FrozenTrial]]:
    """Every configuration's own trials, by the configuration's study name."""
    storage = studies.open_storage(str(journal_of(outputs, study)))
    return {
        name: optuna.load_study(study_name=name, storage=storage).get_trials()
        for name in optuna.get_all_study_names(storage)
        if name.startswith(f"{study}/")
    }


def assert_tuned_once(outputs: Path, study: str) -> None:
    """Each configuration: every run of every candidate complete exactly once (the first of
    each, the second of the best two), every confirmation too."""
    configurations = configuration_trials(outputs, study)
    assert len(configurations) == 2  # capacity.unfreeze 0 and 1
    for name, trials in configurations.items():
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        runs = Counter(
            (t.user_attrs[tuning.CANDIDATE_ATTR], t.user_attrs[tuning.ROUND_ATTR])
            for t in complete
            if t.user_attrs[tuning.ROLE_ATTR] == tuning.SEARCH
        )
        confirmations = Counter(
            t.user_attrs[tuning.REPEAT_ATTR]
            for t in complete
            if t.user_attrs[tuning.ROLE_ATTR] == tuning.CONFIRM
        )
        nothing_to_tune = name.endswith("capacity.unfreeze=0")
        expected = (
            {}
            if nothing_to_tune
            else {(candidate, run): 1 for candidate in range(CANDIDATES) for run in (0, 1)}
        )
        assert dict(runs) == expected, name
        assert dict(confirmations) == dict.fromkeys(range(REPEATS), 1), name
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def kill_during(tmp_path: Path, mlflow_uri: str, role: str) -> tuple[FrozenTrial, Path]:
    """Start a tuned sweep, SIGKILL it while a job of ``role`` trains; resume it to the end."""
    tuned_sweep_file(tmp_path / "conf", "killed")
    command = tuned_command(tmp_path, mlflow_uri, "killed", *LONG_TRIALS)
    outputs = tmp_path / "outputs"
    log = tmp_path / "worker.log"
    process = start_worker(command, tmp_path, log)
    try:
        find = functools.partial(tuning_trials, role=role)
        victim = pause_during_a_trial(process, outputs, "killed", mlflow_uri, log, find=find)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        end_worker(process)

    resumed = run(command, tmp_path)

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return victim, outputs


def the_victim(outputs: Path, victim: FrozenTrial) -> list[FrozenTrial]:
    """The trials in the victim's configuration study with the victim's values and role."""
    for trials in configuration_trials(outputs, "killed").values():
        if victim.number < len(trials) and trials[victim.number].datetime_start == (
            victim.datetime_start
        ):
            role = victim.user_attrs[tuning.ROLE_ATTR]
            run = victim.user_attrs.get(tuning.ROUND_ATTR)
            return [
                t
                for t in trials
                if t.params == victim.params
                and t.user_attrs[tuning.ROLE_ATTR] == role
                and t.user_attrs.get(tuning.ROUND_ATTR) == run
            ]
    raise AssertionError(f"no configuration study holds the victim {victim.number}")


def test_a_worker_killed_during_a_candidate_resumes_without_losing_or_repeating_work(
    tmp_path: Path, mlflow_uri: str
) -> None:
    victim, outputs = kill_during(tmp_path, mlflow_uri, tuning.SEARCH)

    assert_tuned_once(outputs, "killed")
    same = the_victim(outputs, victim)
    assert sorted(t.state.name for t in same) == ["COMPLETE", "FAIL"]
    (killed,) = [t for t in same if t.state == TrialState.FAIL]
    assert killed.user_attrs[tuning.KILLED_ATTR].startswith("its driver died")
    assert {r.info.status for r in children(mlflow_uri, "killed")} == {"FINISHED", "KILLED"}


def test_a_worker_killed_during_a_confirmation_resumes_without_retraining_the_candidates(
    tmp_path: Path, mlflow_uri: str
) -> None:
    victim, outputs = kill_during(tmp_path, mlflow_uri, tuning.CONFIRM)

    assert_tuned_once(outputs, "killed")
    for trials in configuration_trials(outputs, "killed").values():
        search = [t for t in trials if t.user_attrs[tuning.ROLE_ATTR] == tuning.SEARCH]
        assert all(t.state == TrialState.COMPLETE for t in search)  # none trained again
    same = the_victim(outputs, victim)
    repeat = victim.user_attrs[tuning.REPEAT_ATTR]
    assert sorted(t.state.name for t in same if t.user_attrs[tuning.REPEAT_ATTR] == repeat) == [
        "COMPLETE",
        "FAIL",
    ]


def test_two_workers_never_tune_or_confirm_a_configuration_twice(
    tmp_path: Path, mlflow_uri: str
) -> None:
    tuned_sweep_file(tmp_path / "conf", "pair")
    command = tuned_command(tmp_path, mlflow_uri, "pair")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    workers = [start_worker(command, tmp_path, log) for log in logs]
    try:
        for worker, log in zip(workers, logs, strict=True):
            wait_for_exit(worker, log, log.stem)
    finally:
        for worker in workers:
            end_worker(worker)

    assert_tuned_once(tmp_path / "outputs", "pair")
    sweep_trials = configuration_trials(tmp_path / "outputs", "pair")
    trained = sum(len(trials) for trials in sweep_trials.values())
    assert len(children(mlflow_uri, "pair")) == trained
