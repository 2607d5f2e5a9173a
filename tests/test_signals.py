"""A trial stopped by SIGTERM or Ctrl-C ends its MLflow run KILLED, never RUNNING.

Independent of the machine's speed and of output buffering: training is endless, and the
signal is sent once the trial itself shows that training is under way (its MLflow run is
RUNNING and has logged an epoch's loss), not when some line appears on a pipe.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

BIN = Path(sys.executable).parent
# Bounds that only a broken or hung child reaches; the test fails loudly at either.
TRAINING_STARTS_WITHIN = 300.0  # seconds from launch to the first logged epoch
EXITS_WITHIN = 120.0  # seconds from the signal to the process exit


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module, its tables created here, before any child runs:
    MLflow creates them on first use, and the polling below must not race a child to it."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    MlflowClient(uri).search_experiments()
    return uri


def tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no output)"


def running_run_with_a_logged_epoch(client: MlflowClient, experiment: str) -> str | None:
    """The id of the experiment's RUNNING run once it has logged the per-epoch ``loss``."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    for run in client.search_runs([found.experiment_id]):
        if run.info.status == "RUNNING" and client.get_metric_history(run.info.run_id, "loss"):
            return str(run.info.run_id)
    return None


def wait_until_training(
    process: subprocess.Popen[bytes], client: MlflowClient, experiment: str, log: Path
) -> str:
    """Poll the MLflow store until the child's run is training; fail loudly if it never is."""
    deadline = time.monotonic() + TRAINING_STARTS_WITHIN
    problem: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"capsweep exited with {process.returncode} before training got under way; "
                f"its output ends with:\n{tail(log)}"
            )
        try:
            run_id = running_run_with_a_logged_epoch(client, experiment)
        except Exception as error:  # the store may be busy or half-written; ask again
            problem = error
        else:
            if run_id is not None:
                return run_id
        time.sleep(0.5)
    pytest.fail(
        f"no RUNNING run of experiment {experiment!r} logged an epoch's loss within "
        f"{TRAINING_STARTS_WITHIN:.0f} s (last store error: {problem!r}); capsweep's output "
        f"ends with:\n{tail(log)}"
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_training_ends_the_run_killed(tmp_path: Path, uri: str, signum: int) -> None:
    outputs = tmp_path / "outputs"
    experiment = f"signal-{signum}"
    log = tmp_path / "capsweep.log"
    client = MlflowClient(uri)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(BIN / "capsweep"),
                "backbone.weights=null",
                "backbone.input_size=8",
                "backbone.filters=[4,4,4]",
                "backbone.blocks_per_stage=1",
                # Endless training: the signal lands during it however fast the machine is.
                "trainer.epochs=100000",
                "trainer.early_stopping_patience=null",
                "trainer.verbose=2",
                f"paths.outputs={outputs}",
                f"tracking.uri={uri}",
                f"tracking.experiment={experiment}",
            ],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=output,  # a file, never a pipe that can fill up and block the child
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # a signal meant for pytest never reaches it
        )
    try:
        run_id = wait_until_training(process, client, experiment, log)
        process.send_signal(signum)
        try:
            process.wait(timeout=EXITS_WITHIN)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"capsweep still running {EXITS_WITHIN:.0f} s after signal {signum}; its "
                f"output ends with:\n{tail(log)}"
            )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert process.returncode != 0, f"capsweep exited 0 after signal {signum}:\n{tail(log)}"
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    (run,) = client.search_runs([found.experiment_id])
    assert run.info.run_id == run_id
    assert run.info.status == "KILLED", tail(log)
