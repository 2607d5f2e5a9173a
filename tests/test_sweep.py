"""``capsweep -m`` for real: subprocesses, a journal-file study, MLflow on SQLite.

Each sweep trains a tiny configuration (8-pixel digits, 2 epochs, random weights), so
these tests check the plumbing between Hydra, Optuna and MLflow, not accuracy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

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
    "trainer.verbose=0",
    "tracking.log_artifacts=false",
]
GRID = ["capacity.unfreeze=range(0,2)", "head.depth=choice(0,1)"]


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module (creating one costs seconds); experiments keep
    the tests apart."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


def sweep_command(outputs: Path, uri: str, study: str, *extra: str) -> list[str]:
    return [
        str(BIN / "capsweep"),
        "-m",
        *TINY,
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


def runs(uri: str, experiment: str) -> list[Any]:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return list(client.search_runs([found.experiment_id])) if found else []


def children(uri: str, experiment: str) -> list[Any]:
    return [r for r in runs(uri, experiment) if r.data.tags.get("capsweep.role") != "sweep"]


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str) -> dict[str, Any]:
    """A finished 4-trial grid sweep (2 unfreeze counts x 2 head depths)."""
    cwd = tmp_path_factory.mktemp("grid")
    outputs = cwd / "outputs"
    command = sweep_command(outputs, mlflow_uri, "grid", *GRID)
    result = run(command, cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return {"cwd": cwd, "outputs": outputs, "command": command, "result": result}


def test_sweep_completes_every_grid_point(grid_sweep: dict[str, Any]) -> None:
    trials = load(grid_sweep["outputs"], "grid").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    points = {(t.params["capacity.unfreeze"], t.params["head.depth"]) for t in trials}
    assert points == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_sweep_nests_one_child_run_per_trial_under_one_parent(
    grid_sweep: dict[str, Any], mlflow_uri: str
) -> None:
    all_runs = runs(mlflow_uri, "grid")
    parents = [r for r in all_runs if r.data.tags.get("capsweep.role") == "sweep"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags["capsweep.study"] == "grid"
    assert parent.data.tags["capsweep.storage"].endswith("grid.journal")
    kids = children(mlflow_uri, "grid")
    assert len(kids) == 4
    assert {r.data.tags["mlflow.parentRunId"] for r in kids} == {parent.info.run_id}
    assert {r.info.status for r in kids} == {"FINISHED"}
    numbers = sorted(int(r.data.tags["capsweep.trial_number"]) for r in kids)
    assert numbers == [0, 1, 2, 3]
    study = load(grid_sweep["outputs"], "grid")
    assert study.user_attrs[studies.PARENT_RUN_ATTR] == parent.info.run_id


def test_sweep_tags_the_recommended_child_and_logs_the_summary(
    grid_sweep: dict[str, Any], mlflow_uri: str
) -> None:
    recommended = [
        r for r in children(mlflow_uri, "grid") if r.data.tags.get("capsweep.recommended") == "true"
    ]
    assert len(recommended) == 1
    parent = next(r for r in runs(mlflow_uri, "grid") if r.data.tags.get("capsweep.role"))
    logged = {
        a.path for a in MlflowClient(mlflow_uri).list_artifacts(parent.info.run_id, "summary")
    }
    assert logged == {"summary/trials.csv", "summary/pareto.png", "summary/recommendation.json"}
    report_dirs = list((grid_sweep["outputs"] / "multirun").glob("*/*/report"))
    assert len(report_dirs) == 1
    assert {p.name for p in report_dirs[0].iterdir()} >= {
        "trials.csv",
        "pareto.png",
        "recommendation.json",
    }


def test_report_command_finds_the_study_with_the_sweep_overrides(
    grid_sweep: dict[str, Any], mlflow_uri: str
) -> None:
    outputs = grid_sweep["outputs"]
    result = run(
        [
            str(BIN / "capsweep-report"),
            f"paths.outputs={outputs}",
            f"tracking.uri={mlflow_uri}",
            "hydra.sweeper.study_name=grid",
        ],
        grid_sweep["cwd"],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = outputs / "reports" / "grid"
    assert str(folder / "recommendation.json") in result.stdout.replace("\n", "")
    import json

    chosen = json.loads((folder / "recommendation.json").read_text())
    assert chosen["representative_trial"] in range(4)
    assert "trainable parameters" in chosen["reason"]


def test_rerunning_a_finished_sweep_trains_nothing_more(grid_sweep: dict[str, Any]) -> None:
    result = run(grid_sweep["command"], grid_sweep["cwd"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed" in result.stderr + result.stdout
    assert len(load(grid_sweep["outputs"], "grid").get_trials()) == 4


def test_resuming_with_another_search_space_is_refused(grid_sweep: dict[str, Any]) -> None:
    command = [*grid_sweep["command"][:-1], "head.depth=choice(0,1,2)"]
    result = run(command, grid_sweep["cwd"])
    assert result.returncode != 0
    assert "cannot be resumed with another one" in result.stderr
    assert len(load(grid_sweep["outputs"], "grid").get_trials()) == 4


@pytest.mark.slow
def test_sweep_killed_midway_resumes_and_retries_the_killed_trial(
    tmp_path: Path, mlflow_uri: str
) -> None:
    outputs = tmp_path / "outputs"
    command = sweep_command(
        outputs,
        mlflow_uri,
        "killed",
        "capacity.unfreeze=range(0,3)",
        "head.depth=choice(0)",
        "trainer.epochs=30",
    )
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=environment,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
        journal = outputs / "optuna" / "killed.journal"
        if not journal.exists():
            continue
        for trial in load(outputs, "killed").get_trials():
            if trial.state == TrialState.RUNNING and studies.HEARTBEAT_ATTR in trial.user_attrs:
                victim = trial
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert victim is not None, "no trial started training before the deadline"

    result = run(command, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = load(outputs, "killed").get_trials()
    assert trials[victim.number].state == TrialState.FAIL
    retried = [t for t in trials if t.user_attrs.get(studies.REQUEUED_ATTR) == victim.number]
    assert len(retried) == 1
    assert retried[0].state == TrialState.COMPLETE
    assert retried[0].params == victim.params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    statuses = {
        r.data.tags.get("capsweep.trial_number"): r.info.status
        for r in children(mlflow_uri, "killed")
    }
    assert "RUNNING" not in statuses.values()
    assert statuses[str(victim.number)] == "KILLED"


@pytest.mark.slow
def test_trial_in_a_worker_process_is_pruned_through_the_storage(
    tmp_path: Path, mlflow_uri: str
) -> None:
    outputs = tmp_path / "outputs"
    command = sweep_command(
        outputs,
        mlflow_uri,
        "pruned",
        *GRID,
        "trainer.epochs=4",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.pruner=threshold",
        # Any val_accuracy is below 1.1: every trial is told to stop after its 2nd epoch.
        "hydra.sweeper.pruner_options={lower:1.1,n_warmup_steps:1}",
    )
    result = run(command, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = load(outputs, "pruned").get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    for trial in trials:
        asker = trial.user_attrs[studies.OWNER_ATTR]["pid"]
        trainer = trial.user_attrs["capsweep.worker.0"]["pid"]
        assert asker != trainer  # trained in a joblib worker, told PRUNED by the sweeper
        assert trial.intermediate_values == {
            0: pytest.approx(trial.intermediate_values[0]),
            1: pytest.approx(trial.intermediate_values[1]),
        }
    kids = children(mlflow_uri, "pruned")
    assert {r.info.status for r in kids} == {"FINISHED"}
    assert {r.data.tags["capsweep.state"] for r in kids} == {"PRUNED"}
    assert {r.data.tags["capsweep.pruned_at_epoch"] for r in kids} == {"1"}


@pytest.mark.slow
def test_two_workers_share_one_study_without_exceeding_n_trials(
    tmp_path: Path, mlflow_uri: str
) -> None:
    outputs = tmp_path / "outputs"
    command = sweep_command(outputs, mlflow_uri, "shared", *GRID, "hydra.sweeper.n_trials=3")
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    workers = [
        subprocess.Popen(
            command,
            cwd=tmp_path,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    errors = [worker.communicate(timeout=600)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], errors
    trials = load(outputs, "shared").get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    points = [(t.params["capacity.unfreeze"], t.params["head.depth"]) for t in complete]
    assert len(set(points)) == 3  # no grid point trained twice
    owners = {t.user_attrs[studies.OWNER_ATTR]["pid"] for t in complete}
    assert len(owners) == 2  # both workers trained
    parents = {r.data.tags["mlflow.parentRunId"] for r in children(mlflow_uri, "shared")}
    assert len(parents) == 1


@pytest.mark.slow
def test_repeats_train_each_configuration_with_different_seeds(
    tmp_path: Path, mlflow_uri: str
) -> None:
    outputs = tmp_path / "outputs"
    command = sweep_command(
        outputs,
        mlflow_uri,
        "repeats",
        "capacity.unfreeze=choice(1)",
        "head.depth=choice(0)",
        "hydra.sweeper.repeats=2",
    )
    result = run(command, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (trial,) = load(outputs, "repeats").get_trials()
    first = trial.user_attrs[studies.METRICS_ATTR.format(repeat=0)]["val_accuracy"]
    second = trial.user_attrs[studies.METRICS_ATTR.format(repeat=1)]["val_accuracy"]
    assert trial.value == pytest.approx((first + second) / 2)
    kids = children(mlflow_uri, "repeats")
    assert sorted(r.data.params["trainer.seed"] for r in kids) == ["0", "1"]
    assert sorted(r.data.tags["capsweep.repeat"] for r in kids) == ["0", "1"]
    recommendation = next((outputs / "multirun").glob("*/*/report/recommendation.json"))
    import json

    assert json.loads(recommendation.read_text())["metrics"]["n"] == 2


@pytest.mark.slow
def test_multi_objective_sweep_tells_both_objectives(tmp_path: Path, mlflow_uri: str) -> None:
    outputs = tmp_path / "outputs"
    command = sweep_command(
        outputs,
        mlflow_uri,
        "front",
        "sweep=capacity_tpe",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.seed=0",
        "capacity.unfreeze=range(0,3)",
    )
    result = run(command, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(outputs, "front")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    finished = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert finished
    for trial in finished:
        metrics = trial.user_attrs[studies.METRICS_ATTR.format(repeat=0)]
        assert trial.values == [metrics["val_accuracy"], metrics["trainable_params"]]
    assert {t.state for t in study.get_trials()} <= {TrialState.COMPLETE, TrialState.PRUNED}
