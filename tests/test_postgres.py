"""Several workers on one study in PostgreSQL, as on a cluster: real server, real processes.

Skipped where no server is configured; CI starts one (.ci/postgres-up.sh, which exports
CAPSWEEP_TEST_POSTGRES, a URL without a password, and libpq's PGPASSWORD) and fails here
when it is missing. The password reaches capsweep only from the environment: through
``${oc.env:...}`` in the Optuna storage URL and through PGPASSWORD for MLflow's store.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import psycopg
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from capsweep.sweep import study as studies
from postgres_server import postgres_server
from sweep_workers import start_worker, sweep_command, tail, wait_for_exit

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.heavy]

WORKERS = 3
GRID = ["capacity.unfreeze=range(0,3)", "head.depth=choice(0,1)"]  # 6 points


@pytest.fixture(scope="module")
def shared_sweep(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three ``capsweep -m`` processes started together on one grid study."""
    server = postgres_server()
    password = os.environ["PGPASSWORD"]
    study = f"pg-{uuid.uuid4().hex[:8]}"
    cwd = tmp_path_factory.mktemp("postgres")
    outputs = cwd / "outputs"
    # As a user writes it: the password stays an interpolation until a process resolves it.
    # A schema of its own, empty: the workers start together on a new database, and all
    # create Optuna's tables at once.
    schema = "capsweep_" + study.replace("-", "_")
    with psycopg.connect(server.render_as_string(), autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    storage = (
        f"postgresql://{server.username}:${{oc.env:CAPSWEEP_DB_PASSWORD}}@{server.host}:"
        f"{server.port}/{server.database}?options=-csearch_path%3D{schema}"
    )
    tracking = server.set(database=f"{server.database}_mlflow").render_as_string()
    command = sweep_command(
        outputs,
        tracking,
        study,
        *GRID,
        f"hydra.sweeper.storage='{storage}'",
        "hydra.sweeper.sampler=grid",
    )
    os.environ["CAPSWEEP_DB_PASSWORD"] = password  # read by the workers' ${oc.env:...}
    logs = [cwd / f"worker-{index}.log" for index in range(WORKERS)]
    workers = [start_worker(command, cwd, log) for log in logs]
    for index, (worker, log) in enumerate(zip(workers, logs, strict=True)):
        wait_for_exit(worker, log, f"worker {index}")
    resolved = storage.replace("${oc.env:CAPSWEEP_DB_PASSWORD}", password)
    return {
        "study": optuna.load_study(study_name=study, storage=studies.open_storage(resolved)),
        "tracking": tracking,
        "experiment": study,
        "outputs": outputs,
        "logs": logs,
        "password": password,
        "pids": {worker.pid for worker in workers},
    }


def test_workers_finish_exactly_n_trials_with_no_grid_point_twice(
    shared_sweep: dict[str, Any],
) -> None:
    trials = shared_sweep["study"].get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6
    points = Counter((t.params["capacity.unfreeze"], t.params["head.depth"]) for t in complete)
    assert max(points.values()) == 1
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.FAIL}
    # Every FAIL is a surplus ask or a draw of a point another worker had: nothing trained.
    for trial in trials:
        if trial.state == TrialState.FAIL:
            attrs = trial.user_attrs
            assert attrs.get(studies.SURPLUS_ATTR) or studies.DUPLICATE_ATTR in attrs, attrs


def test_every_worker_took_part(shared_sweep: dict[str, Any]) -> None:
    owners = {
        t.user_attrs[studies.OWNER_ATTR]["pid"]
        for t in shared_sweep["study"].get_trials()
        if t.state == TrialState.COMPLETE
    }
    assert owners <= shared_sweep["pids"]
    assert len(owners) >= 2, "the workers ran one after another, not together"


def test_one_mlflow_child_run_per_trial_under_one_parent(shared_sweep: dict[str, Any]) -> None:
    client = MlflowClient(shared_sweep["tracking"])
    experiment = client.get_experiment_by_name(shared_sweep["experiment"])
    found = client.search_runs([experiment.experiment_id])
    parents = [r for r in found if r.data.tags.get("capsweep.role") == "sweep"]
    kids = [r for r in found if r.data.tags.get("capsweep.role") != "sweep"]
    assert len(parents) == 1
    assert parents[0].info.status == "FINISHED"
    assert len(kids) == 6
    assert {r.data.tags["mlflow.parentRunId"] for r in kids} == {parents[0].info.run_id}
    assert sorted(int(r.data.tags["capsweep.trial_number"]) for r in kids) == sorted(
        t.number for t in shared_sweep["study"].get_trials() if t.state == TrialState.COMPLETE
    )


def test_the_password_is_written_nowhere(shared_sweep: dict[str, Any]) -> None:
    """Not in Hydra's job folders, logs, report files, MLflow params, tags or artifacts."""
    password = shared_sweep["password"]
    leaks = [
        str(path)
        for path in Path(shared_sweep["outputs"]).rglob("*")
        if path.is_file() and password.encode() in path.read_bytes()
    ]
    leaks += [str(log) for log in shared_sweep["logs"] if password in tail(log, 10**9)]
    client = MlflowClient(shared_sweep["tracking"])
    experiment = client.get_experiment_by_name(shared_sweep["experiment"])
    for found in client.search_runs([experiment.experiment_id]):
        recorded = {**found.data.params, **found.data.tags}
        leaks += [f"run {found.info.run_id}: {k}" for k, v in recorded.items() if password in v]
        storage = found.data.params.get("trial.storage") or found.data.tags.get("capsweep.storage")
        if storage:
            assert "***" in storage or "${" in storage
    assert not leaks
    jobs = list(Path(shared_sweep["outputs"]).rglob(".hydra/overrides.yaml"))
    assert jobs, "no job folder to look into"


def test_local_workers_each_train_on_a_gpu_of_their_own(tmp_path: Path) -> None:
    """hydra/launcher=joblib with two processes and two GPU ids: each process claims one
    (no GPU is needed to see the assignment each trial records)."""
    server = postgres_server()
    experiment = f"gpus-{uuid.uuid4().hex[:8]}"
    tracking = server.set(database=f"{server.database}_mlflow").render_as_string()
    outputs = tmp_path / "outputs"
    command = sweep_command(
        outputs,
        tracking,
        experiment,
        *GRID,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.gpus=[0,1]",
    )
    environment = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    result = subprocess.run(
        command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    storage = studies.open_storage(str(outputs / "optuna" / f"{experiment}.journal"))
    trials = optuna.load_study(study_name=experiment, storage=storage).get_trials()
    workers = [t.user_attrs["capsweep.worker.0"] for t in trials if t.state == TrialState.COMPLETE]
    assert len(workers) == 4
    device_of = {}
    for worker in workers:
        assert (
            device_of.setdefault(worker["pid"], worker["cuda_visible_devices"])
            == (worker["cuda_visible_devices"])
        ), "a worker process changed GPU"
    assert sorted(device_of.values()) == ["0", "1"], device_of
    job_logs = "".join(log.read_text() for log in (outputs / "multirun").rglob("*.log"))
    assert "TensorFlow started before a GPU was claimed" not in job_logs
