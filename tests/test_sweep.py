"""``capsweep -m`` for real: subprocesses, a journal-file study, MLflow on SQLite.

Each sweep trains a tiny configuration (8-pixel digits, 2 epochs, random weights), so
these tests check the plumbing between Hydra, Optuna and MLflow, not accuracy. Workers are
caught mid-trial without guessing when (see ``sweep_workers``).
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from capsweep.sweep import study as studies
from sweep_workers import (
    BIN,
    GRID,
    LONG_TRIALS,
    children,
    end_worker,
    load,
    pause_during_a_trial,
    run,
    runs,
    start_worker,
    sweep_command,
    wait_for_exit,
)


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module (creating one costs seconds); experiments keep
    the tests apart."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


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


def test_the_parent_run_spans_the_sweep_and_ends_finished(
    grid_sweep: dict[str, Any], mlflow_uri: str
) -> None:
    parent = next(r for r in runs(mlflow_uri, "grid") if r.data.tags.get("capsweep.role"))
    kids = children(mlflow_uri, "grid")

    assert parent.info.status == "FINISHED"
    assert parent.info.start_time <= min(r.info.start_time for r in kids)
    assert parent.info.end_time >= max(r.info.end_time for r in kids)


def test_the_console_shows_a_line_per_trial_and_the_outcome(grid_sweep: dict[str, Any]) -> None:
    console = grid_sweep["result"].stdout + grid_sweep["result"].stderr
    per_trial = [line for line in console.splitlines() if line.startswith("[")]
    trial_lines = [line for line in per_trial if " trial " in line]

    assert [line.split()[0] for line in trial_lines] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert all("COMPLETE" in line and "trainable params" in line for line in trial_lines)
    assert "Recommendation: " in console
    assert "MLflow: mlflow ui --backend-store-uri sqlite:///" in console
    assert "training on CPU" in console or "training on GPU" in console


@pytest.mark.parametrize(
    "noise",
    ["trial.storage=", "Launching 1 jobs", "oneDNN", "cuInit", "Epoch 1/", "absl::InitializeLog"],
)
def test_the_console_leaves_out_internal_overrides_and_start_up_noise(
    grid_sweep: dict[str, Any], noise: str
) -> None:
    assert noise not in grid_sweep["result"].stdout + grid_sweep["result"].stderr


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
    assert logged == {
        "summary/trials.csv",
        "summary/unfinished.csv",
        "summary/pareto.png",
        "summary/recommendation.json",
    }
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
    # One run per grid point (repeats=1): the chosen configuration's best run is its only one.
    (run_of_chosen,) = [
        t for t in load(outputs, "grid").get_trials() if t.params == chosen["params"]
    ]
    assert chosen["representative_trial"] == run_of_chosen.number
    (recorded,) = [
        r
        for r in children(mlflow_uri, "grid")
        if r.data.tags["capsweep.trial_number"] == str(run_of_chosen.number)
    ]
    assert chosen["representative_run_id"] == recorded.info.run_id
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
@pytest.mark.heavy
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
        *LONG_TRIALS,
    )
    log = tmp_path / "killed.log"
    process = start_worker(command, tmp_path, log)
    try:
        # Caught mid-trial and stopped, so the trial is still RUNNING when SIGKILL lands.
        victim = pause_during_a_trial(process, outputs, "killed", mlflow_uri, log)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        end_worker(process)
    assert process.returncode == -signal.SIGKILL

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
        "hydra.launcher.n_jobs=2",  # a worker process even for one job at a time
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
    kids = children(mlflow_uri, "pruned")
    client = MlflowClient(mlflow_uri)
    for kid in kids:
        trial = trials[int(kid.data.tags["capsweep.trial_number"])]
        recorded = client.get_metric_history(kid.info.run_id, "val_accuracy")
        # Reported from the worker at epochs 0 and 1 (its val_accuracy), then told to stop.
        assert trial.intermediate_values == {
            point.step: pytest.approx(point.value) for point in recorded
        }
        assert sorted(trial.intermediate_values) == [0, 1]
    assert {r.info.status for r in kids} == {"FINISHED"}
    assert {r.data.tags["capsweep.state"] for r in kids} == {"PRUNED"}
    assert {r.data.tags["capsweep.pruned_at_epoch"] for r in kids} == {"1"}


@pytest.mark.slow
@pytest.mark.heavy
def test_two_workers_share_one_study_without_exceeding_n_trials(
    tmp_path: Path, mlflow_uri: str
) -> None:
    """Worker A is stopped in its first trial; B, started then, trains the others.

    B sees A's trial RUNNING and its process alive, so it leaves it alone and trains the
    other n_trials - 1 grid points; A, resumed, finishes its trial and asks no more. With
    Hydra's basic launcher a trial runs in its sweeper's own process, so stopping A stops
    its trial.
    """
    n_trials = 3
    outputs = tmp_path / "outputs"
    command = sweep_command(
        outputs, mlflow_uri, "shared", *GRID, f"hydra.sweeper.n_trials={n_trials}", *LONG_TRIALS
    )
    log_a, log_b = tmp_path / "worker-a.log", tmp_path / "worker-b.log"
    worker_a = start_worker(command, tmp_path, log_a)
    try:
        paused = pause_during_a_trial(worker_a, outputs, "shared", mlflow_uri, log_a)
        assert [t.number for t in load(outputs, "shared").get_trials()] == [paused.number], (
            "worker A finished a trial before it was paused: make LONG_TRIALS longer"
        )
        # B does its share and leaves, not waiting for the frozen A (see test_sweep_faults
        # for a worker that waits and takes over).
        worker_b = start_worker([*command, "hydra.sweeper.wait_for_others=false"], tmp_path, log_b)
        try:
            wait_for_exit(worker_b, log_b, "worker B (worker A stopped)")
        finally:
            end_worker(worker_b)
        os.killpg(worker_a.pid, signal.SIGCONT)
        wait_for_exit(worker_a, log_a, "worker A (resumed)")
    finally:
        end_worker(worker_a)

    trials = load(outputs, "shared").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * n_trials
    points = [(t.params["capacity.unfreeze"], t.params["head.depth"]) for t in trials]
    assert len(set(points)) == n_trials  # no grid point trained twice
    owners = [t.user_attrs[studies.OWNER_ATTR]["pid"] for t in trials]
    assert Counter(owners) == {worker_a.pid: 1, worker_b.pid: n_trials - 1}
    assert trials[paused.number].user_attrs[studies.OWNER_ATTR]["pid"] == worker_a.pid
    # Trained where it was asked: in the sweeper's own process (basic launcher).
    assert [t.user_attrs["capsweep.worker.0"]["pid"] for t in trials] == owners
    parents = [r for r in runs(mlflow_uri, "shared") if r.data.tags.get("capsweep.role")]
    assert len(parents) == 1
    kids = children(mlflow_uri, "shared")
    assert len(kids) == n_trials
    assert {r.data.tags["mlflow.parentRunId"] for r in kids} == {parents[0].info.run_id}
    assert {r.info.status for r in kids} == {"FINISHED"}


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
    # repeat_over=both (the default) also redraws the training/validation images.
    assert sorted(r.data.params["data.split_seed"] for r in kids) == ["0", "1"]
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
    trials = study.get_trials()
    # 2 epochs are within the dominance pruner's n_warmup_epochs=3 (sweeps/capacity_tpe.yaml):
    # no trial can be pruned, so every one completes.
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    for trial in trials:
        metrics = trial.user_attrs[studies.METRICS_ATTR.format(repeat=0)]
        assert trial.values == [metrics["val_accuracy"], metrics["trainable_params"]]


@pytest.mark.slow
def test_a_pruned_configuration_trains_none_of_its_other_repeats(
    tmp_path: Path, mlflow_uri: str
) -> None:
    outputs = tmp_path / "outputs"
    command = sweep_command(
        outputs,
        mlflow_uri,
        "pruned-repeats",
        *GRID,
        "trainer.epochs=4",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.repeats=3",
        "hydra.sweeper.pruner=threshold",
        # Any val_accuracy is below 1.1: every first repeat is told to stop.
        "hydra.sweeper.pruner_options={lower:1.1,n_warmup_steps:1}",
    )
    result = run(command, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = load(outputs, "pruned-repeats").get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    kids = children(mlflow_uri, "pruned-repeats")
    assert sorted(r.data.tags["capsweep.repeat"] for r in kids) == ["0", "0"]
