"""MLflow: one run per trial, ended FAILED or KILLED when the trial does not finish.

All MLflow access goes through this module, with an explicit ``MlflowClient`` (no
process-global active run), so trials in one process or many stay independent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from capsweep.signals import Terminated, uninterrupted

log = logging.getLogger(__name__)

# MLflow announces its schema set-up at INFO on every new store; nothing to act on.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)

PARENT_TAG = "mlflow.parentRunId"
_BATCH = 100  # MLflow's limit of params per log_batch call


def _prepare_local_store(uri: str) -> Path | None:
    """Create the folder of a SQLite store; return where its artifacts should go."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    return (database.parent / "mlartifacts").resolve()


def client_for(uri: str) -> MlflowClient:
    _prepare_local_store(uri)
    return MlflowClient(tracking_uri=uri)


def experiment_id(client: MlflowClient, uri: str, name: str) -> str:
    """Return the id of experiment ``name``, creating it (once, even under a race)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    artifacts = _prepare_local_store(uri)
    try:
        return str(
            client.create_experiment(
                name, artifact_location=artifacts.as_uri() if artifacts else None
            )
        )
    except MlflowException:
        # Another process created it between our look-up and create (mlflow #4123).
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def flatten(config: Mapping[Any, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested config into ``{"backbone.name": "resnet50", ...}`` MLflow params."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = str(value)
    return flat


def git_commit() -> str:
    """The checked-out commit of the working directory, or ``unknown``."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


class TrialRun:
    """An open MLflow run with capsweep's logging helpers."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def log_params(self, params: Mapping[str, str]) -> None:
        items = [Param(key, value[:6000]) for key, value in params.items()]
        for start in range(0, len(items), _BATCH):
            with uninterrupted():
                self.client.log_batch(self.run_id, params=items[start : start + _BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        with uninterrupted():
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        import time

        now = int(time.time() * 1000)
        with uninterrupted():
            self.client.log_batch(
                self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()]
            )

    def log_text(self, text: str, artifact_file: str) -> None:
        with uninterrupted():
            self.client.log_text(self.run_id, text, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        with uninterrupted():
            self.client.log_figure(self.run_id, figure, artifact_file)


@contextlib.contextmanager
def trial_run(
    uri: str,
    experiment: str,
    *,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
    on_created: Callable[[str], None] | None = None,
) -> Iterator[TrialRun]:
    """Open a run; end it FINISHED, FAILED (exception) or KILLED (SIGINT/SIGTERM).

    ``parent_run_id`` nests the run under a parent made by any process or host;
    ``on_created`` is told the run id as soon as the run exists (before anything else is
    logged), so that a worker killed at any later point leaves a run others can end.
    """
    client = client_for(uri)
    all_tags = {"capsweep.host": socket.gethostname(), "capsweep.git_commit": git_commit()}
    all_tags.update(tags or {})
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    experiment_key = experiment_id(client, uri, experiment)
    run_id = _started(
        client,
        lambda: (
            client.create_run(
                experiment_key, run_name=run_name, tags={k: str(v) for k, v in all_tags.items()}
            ).info.run_id
        ),
        on_created,
    )
    with _ended_by_outcome(client, run_id):
        yield TrialRun(client, run_id)


def create_parent_run(uri: str, experiment: str, *, study_name: str, storage: str) -> str:
    """Create a study's parent run; children nest under it from any process or host.

    It holds the sweep's summary, logged as trials finish; :func:`sweep_run` keeps it
    RUNNING while a sweep works on the study.
    """
    client = client_for(uri)
    run = client.create_run(
        experiment_id(client, uri, experiment),
        run_name=f"sweep-{study_name}",
        tags={
            "capsweep.role": "sweep",
            "capsweep.study": study_name,
            "capsweep.storage": storage,
            "capsweep.host": socket.gethostname(),
            "capsweep.git_commit": git_commit(),
        },
    )
    return str(run.info.run_id)


@contextlib.contextmanager
def sweep_run(uri: str, run_id: str, *, others_at_work: Callable[[], bool]) -> Iterator[None]:
    """Keep a study's parent run RUNNING while this sweep works on the study.

    It ends FAILED when the sweep raises, KILLED on Ctrl-C or SIGTERM, and FINISHED when
    the sweep is done, unless ``others_at_work()`` says other workers still have trials
    under way: the last one to finish ends it.
    """
    client = client_for(uri)
    if client.get_run(run_id).info.status != "RUNNING":  # resumed

        def resume() -> str:
            client.update_run(run_id, status="RUNNING")
            return run_id

        _started(client, resume)
    with _ended_by_outcome(client, run_id, others_at_work=others_at_work):
        yield


def _started(
    client: MlflowClient,
    start: Callable[[], str],
    on_started: Callable[[str], None] | None = None,
) -> str:
    """Start a run (create it, or mark it RUNNING) whole; a signal that arrived meanwhile
    ends it KILLED before it is raised, so it is never left RUNNING."""
    run_id: str | None = None
    try:
        with uninterrupted():
            run_id = start()
            if on_started is not None:
                on_started(run_id)
    except (KeyboardInterrupt, Terminated):
        if run_id is not None:
            with uninterrupted():
                client.set_terminated(run_id, "KILLED")
        raise
    return run_id


@contextlib.contextmanager
def _ended_by_outcome(
    client: MlflowClient, run_id: str, *, others_at_work: Callable[[], bool] = lambda: False
) -> Iterator[None]:
    """End the run KILLED on SIGINT/SIGTERM, FAILED on an exception, else FINISHED; each
    write is done whole, whatever signal arrives meanwhile.

    While ``others_at_work()`` (other workers of a shared sweep) the run is left RUNNING
    and only tagged with how this process ended: the last one to finish ends it.
    """
    try:
        yield
    except (KeyboardInterrupt, Terminated):
        _end(client, run_id, "KILLED", others_at_work)
        raise
    except BaseException:
        _end(client, run_id, "FAILED", others_at_work)
        raise
    _end(client, run_id, "FINISHED", others_at_work)


def _end(
    client: MlflowClient, run_id: str, status: str, others_at_work: Callable[[], bool]
) -> None:
    try:
        shared = others_at_work()
    except Exception:  # e.g. the study storage is what failed: end the run all the same
        shared = False
    with uninterrupted():
        if shared:
            worker = f"{socket.gethostname()}-{os.getpid()}"
            client.set_tag(run_id, f"capsweep.worker_ended.{worker}", status)
        else:
            client.set_terminated(run_id, status)


def end_if_running(uri: str, run_id: str, status: str) -> None:
    """End a run a dead process left RUNNING (SIGKILL gives it no chance to end itself)."""
    client = client_for(uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return
    if run.info.status == "RUNNING":
        client.set_terminated(run_id, status)
        client.set_tag(run_id, "capsweep.state", status)
