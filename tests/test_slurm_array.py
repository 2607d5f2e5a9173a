"""scripts/capsweep-workers.sbatch on a real cluster: a job array of workers, each a
``capsweep -m`` with the basic launcher, sharing one study in PostgreSQL and recording in
MLflow on PostgreSQL.

Needs a Slurm cluster and a PostgreSQL server (CI starts both: .ci/slurm-up.sh,
.ci/postgres-up.sh); skipped without them, failed in CI. The password reaches the workers
only from the environment: ``${oc.env:CAPSWEEP_DB_PASSWORD}`` in the study's URL and
PGPASSWORD for MLflow's store.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from capsweep.sweep import study as studies
from postgres_server import postgres_server
from slurm_cluster import require_slurm, wait_for_job
from sweep_workers import BIN, GRID, TINY, UNTUNED

pytestmark = [pytest.mark.slurm, pytest.mark.postgres, pytest.mark.slow, pytest.mark.heavy]
SCRIPT = Path(__file__).parents[1] / "scripts" / "capsweep-workers.sbatch"
WORKERS = 2
N_TRIALS = 4  # the 2 x 2 GRID
FINISHES_WITHIN = 600.0  # seconds for the array to end; only a hung cluster reaches it


def test_a_job_array_of_workers_fills_one_study(tmp_path: Path) -> None:
    require_slurm()
    server = postgres_server()
    password = os.environ["PGPASSWORD"]
    study = f"array-{uuid.uuid4().hex[:8]}"
    storage = (
        f"postgresql://{server.username}:${{oc.env:CAPSWEEP_DB_PASSWORD}}@{server.host}:"
        f"{server.port}/{server.database}"
    )
    tracking = server.set(database=f"{server.database}_mlflow").render_as_string()
    environment = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CAPSWEEP_STORAGE": storage,
        "CAPSWEEP_DB_PASSWORD": password,
        "CAPSWEEP_TRACKING_URI": tracking,
        "CAPSWEEP_STUDY": study,
        "CAPSWEEP_EXPERIMENT": study,
        "CAPSWEEP_DIR": str(tmp_path),
        "CAPSWEEP_CMD": str(BIN / "capsweep"),
        "CAPSWEEP_OUTPUTS": str(tmp_path / "outputs"),
    }
    submitted = subprocess.run(
        ["sbatch", "--parsable", f"--array=0-{WORKERS - 1}", "--cpus-per-task=1",
         "--partition=debug", f"--output={tmp_path}/worker-%a.out", str(SCRIPT),
         *TINY, *UNTUNED, *GRID, "trainer.epochs=5", "trainer.verbose=0",
         "hydra.sweeper.sampler=grid", f"hydra.sweeper.n_trials={N_TRIALS}"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip().split(";")[0]
    states = wait_for_job(job, WORKERS, FINISHES_WITHIN)
    logs = "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}"
        for log in sorted(tmp_path.glob("worker-*.out"))
    )
    assert set(states.values()) == {"COMPLETED"}, f"{states}\n{logs}"

    resolved = server.set(password=password).render_as_string(hide_password=False)
    trials = optuna.load_study(
        study_name=study, storage=studies.open_storage(resolved)
    ).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == N_TRIALS, logs
    assert len({tuple(sorted(t.params.items())) for t in complete}) == N_TRIALS  # none twice
    owners = [t.user_attrs[studies.OWNER_ATTR] for t in complete]
    tasks = Counter(owner["slurm_array_task_id"] for owner in owners)
    assert set(tasks) <= {str(task) for task in range(WORKERS)}
    assert len(tasks) >= 2, f"every trial came from one array task: {tasks}\n{logs}"
    assert len({owner["slurm_job_id"] for owner in owners}) == len(tasks)

    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("capsweep.role") == "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    trial_runs = [r for r in runs if r.data.tags.get("capsweep.role") != "sweep"]
    assert {r.data.tags.get("mlflow.parentRunId") for r in trial_runs} == {parents[0].info.run_id}
    assert sorted(int(r.data.tags["capsweep.trial_number"]) for r in trial_runs) == sorted(
        t.number for t in complete
    )
    assert {r.info.status for r in trial_runs} == {"FINISHED"}
    assert {r.info.run_id for r in trial_runs} == {
        t.user_attrs[studies.RUN_ID_ATTR.format(repeat=0)] for t in complete
    }
