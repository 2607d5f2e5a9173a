"""The dominance pruner and stale-trial recovery, on synthetic studies (no training)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from capsweep.errors import CapsweepConfigError
from capsweep.sweep import recovery
from capsweep.sweep import study as studies
from capsweep.sweep.pruning import DominancePruner, is_dominated, make_pruner


@pytest.mark.parametrize(
    ("value", "epoch", "trainable", "expected"),
    [
        (0.50, 1, 1_000, True),  # a smaller trial had 0.60 at epoch 1: 0.10 better
        (0.58, 1, 1_000, False),  # only 0.02 better: within the margin
        (0.50, 1, 50, False),  # the better trial is larger than this one
        (0.50, 5, 1_000, False),  # the smaller trial never reached epoch 5
    ],
)
def test_is_dominated(value: float, epoch: int, trainable: int, expected: bool) -> None:
    finished = [(100, [0.40, 0.60, 0.70])]
    assert is_dominated(value, epoch, trainable, finished, margin=0.05) is expected


def _finished_trial(trainable: int, curve: list[float]) -> optuna.trial.FrozenTrial:
    return create_trial(
        values=[curve[-1], float(trainable)],
        params={"capacity.unfreeze": 1},
        distributions={"capacity.unfreeze": IntDistribution(0, 6)},
        user_attrs={studies.TRAINABLE_ATTR: trainable, studies.CURVE_ATTR: curve},
    )


def test_dominance_pruner_reads_other_trials_from_the_study() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(_finished_trial(100, [0.40, 0.60, 0.70, 0.80]))
    pruner = DominancePruner(margin=0.05, n_warmup_epochs=1)
    assert pruner.should_stop(study, [0.30, 0.40], trainable=5_000)
    assert not pruner.should_stop(study, [0.30, 0.58], trainable=5_000)
    assert not pruner.should_stop(study, [0.30, 0.40], trainable=50)


def test_dominance_pruner_waits_for_the_warmup_epochs() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(_finished_trial(100, [0.90, 0.90, 0.90]))
    pruner = DominancePruner(margin=0.05, n_warmup_epochs=2)
    assert not pruner.should_stop(study, [0.10, 0.10], trainable=5_000)
    assert pruner.should_stop(study, [0.10, 0.10, 0.10], trainable=5_000)


def test_unknown_pruner_lists_the_choices() -> None:
    with pytest.raises(CapsweepConfigError, match=r"unknown pruner.*dominance"):
        make_pruner("medain", {})


def test_pruner_options_that_do_not_fit_are_refused() -> None:
    with pytest.raises(CapsweepConfigError, match="pruner_options"):
        make_pruner("median", {"n_warmup_epochs": 3})


# The recovered trials below never opened an MLflow run, so no store is touched.
NO_RUNS = "sqlite:///unused/mlflow.db"


def _running_trial(study: optuna.Study, owner: dict[str, object]) -> optuna.Trial:
    trial = study.ask({"capacity.unfreeze": IntDistribution(0, 6)})
    trial.set_user_attr(studies.OWNER_ATTR, owner)
    return trial


def test_trial_of_a_dead_local_process_is_failed_and_requeued(tmp_path) -> None:
    storage = studies.open_storage(str(tmp_path / "journal.log"))
    study = optuna.create_study(storage=storage, study_name="s")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    trial = _running_trial(study, {"host": socket.gethostname(), "pid": int(dead.stdout)})
    stale = recovery.recover_stale_trials(study, stale_after=3600, tracking_uri=NO_RUNS)
    assert [t.number for t in stale] == [trial.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[trial.number] == TrialState.FAIL
    retried = study.ask({"capacity.unfreeze": IntDistribution(0, 6)})
    assert retried.params == trial.params
    assert retried.user_attrs[studies.REQUEUED_ATTR] == trial.number


def test_trial_of_a_live_process_is_left_running(tmp_path) -> None:
    storage = studies.open_storage(str(tmp_path / "journal.log"))
    study = optuna.create_study(storage=storage, study_name="s")
    _running_trial(study, {"host": socket.gethostname(), "pid": os.getpid()})
    assert recovery.recover_stale_trials(study, stale_after=3600, tracking_uri=NO_RUNS) == []


def test_trial_on_another_host_is_stale_only_after_its_heartbeat_stops(tmp_path) -> None:
    storage = studies.open_storage(str(tmp_path / "journal.log"))
    study = optuna.create_study(storage=storage, study_name="s")
    trial = _running_trial(study, {"host": "elsewhere", "pid": 1})
    frozen = study.get_trials()[0]
    beat = frozen.datetime_start.timestamp()
    trial.set_user_attr(studies.HEARTBEAT_ATTR, beat)
    frozen = study.get_trials()[0]
    assert not recovery.is_stale(frozen, stale_after=60, now=beat + 30)
    assert recovery.is_stale(frozen, stale_after=60, now=beat + 90)


def test_storage_password_is_redacted() -> None:
    url = "postgresql://capsweep:secret@db.example:5432/capsweep"
    assert studies.redact(url) == "postgresql://capsweep:***@db.example:5432/capsweep"


@pytest.mark.parametrize(("pruner_name", "pruned"), [(None, False), ("median", True)])
def test_no_pruner_means_none_not_optunas_median_default(
    pruner_name: str | None, pruned: bool
) -> None:
    from capsweep.sweep.pruning import study_pruner

    study = optuna.create_study(
        direction="maximize", pruner=study_pruner(make_pruner(pruner_name, {}))
    )
    for _ in range(6):  # more than MedianPruner's 5 start-up trials
        finished = study.ask()
        for step in range(3):
            finished.report(0.9, step)
        study.tell(finished, 0.9)
    laggard = study.ask()
    for step in range(3):
        laggard.report(0.1, step)
    assert bool(laggard.should_prune()) is pruned


def test_dominance_pruning_reaches_a_trial_trained_in_another_process(tmp_path) -> None:
    journal = str(tmp_path / "journal.log")
    study = optuna.create_study(
        storage=studies.open_storage(journal),
        study_name="front",
        directions=["maximize", "minimize"],
    )
    study.add_trial(_finished_trial(100, [0.40, 0.60, 0.70, 0.80]))
    trial = study.ask({"capacity.unfreeze": IntDistribution(0, 6)})
    # The worker side, as a Slurm job or joblib process runs it: storage, trial number,
    # pruner options: nothing else is shared.
    worker = (
        "from capsweep.sweep import study as studies\n"
        "from capsweep.sweep.pruning import EpochReporter, TrialPruned, make_pruner\n"
        f"storage = studies.open_storage({journal!r})\n"
        "pruner = make_pruner('dominance', {'margin': 0.05, 'n_warmup_epochs': 1})\n"
        f"trial = studies.trial_handle(storage, 'front', {trial.number}, pruner=pruner)\n"
        "reporter = EpochReporter(trial, multi_objective=True, report=True)\n"
        "reporter.started(5000)\n"
        "try:\n"
        "    for epoch, value in enumerate([0.30, 0.40, 0.50, 0.60]):\n"
        "        reporter(epoch, {'val_accuracy': value})\n"
        "except TrialPruned as pruned:\n"
        "    print('pruned at', pruned.epoch)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", worker], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "pruned at 1"
    frozen = study.get_trials()[trial.number]
    assert frozen.user_attrs[studies.CURVE_ATTR] == [0.30, 0.40]
    assert frozen.user_attrs[studies.TRAINABLE_ATTR] == 5000
