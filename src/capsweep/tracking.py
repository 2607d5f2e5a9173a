"""MLflow: one run per trial, ended FAILED or KILLED when the trial does not finish.

All MLflow access goes through this module, with an explicit ``MlflowClient`` (no
process-global active run), so trials in one process or many stay independent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from capsweep.errors import CapsweepConfigError
from capsweep.redaction import redact_text, redact_url
from capsweep.signals import Terminated, stop_requested, uninterrupted

log = logging.getLogger(__name__)

# MLflow announces its schema set-up at INFO on every new store; nothing to act on.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)

PARENT_TAG = "mlflow.parentRunId"
FAILURE_TAG = "capsweep.failure"  # the exception type, or a kind such as "oom"
ERROR_TAG = "capsweep.error"  # the first line of its message
_BATCH = 100  # MLflow's limit of params per log_batch call
_METRICS_BATCH = 1000  # and of metrics

# MLflow reads these on every request; values capsweep set (not the user) may be updated.
TIMEOUT_ENV = "MLFLOW_HTTP_REQUEST_TIMEOUT"
RETRIES_ENV = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
BACKOFF_ENV = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
_set_here: dict[str, str] = {}


def limit_http_requests(*, request_timeout: int, max_retries: int) -> None:
    """Bound how long MLflow waits on a tracking server, unless the user exported limits.

    MLflow's defaults (120 s per request, 7 retries with exponential backoff) keep a trial
    waiting ~4 minutes per call on a dead server. These apply to every client built
    afterwards in this process (MLflow reads them per request). Backoff between retries:
    0, 2, 4, ... s.
    """
    wanted = {
        TIMEOUT_ENV: str(request_timeout),
        RETRIES_ENV: str(max_retries),
        BACKOFF_ENV: "1",
    }
    for name, value in wanted.items():
        current = os.environ.get(name)
        if current is not None and _set_here.get(name) != current:
            continue  # exported by the user: theirs wins
        os.environ[name] = value
        _set_here[name] = value


def is_server(uri: str) -> bool:
    """Whether ``uri`` names a tracking server (http/https) rather than a local store."""
    return uri.lower().startswith(("http://", "https://"))


def check_reachable(uri: str, *, timeout: float, retries: int = 2) -> None:
    """Raise a one-line :class:`CapsweepConfigError` unless the tracking server answers.

    Asks the server's ``/health`` (any HTTP answer below 500 counts: a server that wants a
    login is up); a local store (``sqlite:///...``) needs no check. Tries ``1 + retries``
    times, ``timeout`` seconds each, 0.5, 1, 2, ... s apart. Call it before anything is
    trained or written.
    """
    if not is_server(uri):
        return
    health = _health_url(uri)
    problem = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(0.5 * 2 ** (attempt - 1))
        problem = _ask_health(health, timeout)
        if not problem:
            return
    raise CapsweepConfigError(
        "tracking.uri",
        redact_url(uri),
        f"no MLflow tracking server answers at {health} ({problem}; {retries + 1} tries, "
        f"{timeout:g} s each)",
        fix="start it (mlflow server --host HOST --port PORT ...), check the address and "
        "the network, or record locally with tracking.uri=sqlite:///outputs/mlflow.db",
    )


def _health_url(uri: str) -> str:
    """``<server>/health`` with no credentials in it."""
    parts = urllib.parse.urlsplit(uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", "")
    )


def _ask_health(url: str, timeout: float) -> str:
    """Empty when the server answered; else why not, in one line."""
    context = None
    if url.startswith("https://"):
        if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            context = ssl._create_unverified_context()  # as MLflow does with this variable
        else:
            context = ssl.create_default_context(
                cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None
            )
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context):
            return ""
    except urllib.error.HTTPError as error:
        return "" if error.code < 500 else f"HTTP {error.code} {error.reason}"
    except urllib.error.URLError as error:
        return _one_line(error.reason)
    except (OSError, ValueError) as error:  # timeouts, resets, a malformed address
        return _one_line(error)


def _one_line(reason: object) -> str:
    text = str(reason).strip()
    name = type(reason).__name__ if isinstance(reason, BaseException) else ""
    line = text.splitlines()[0] if text else ""
    return f"{name}: {line}" if name and line else (line or name or "no answer")


def prepare_tracking(uri: str, *, request_timeout: int, max_retries: int) -> None:
    """:func:`limit_http_requests`, then :func:`check_reachable`: call once before a run."""
    limit_http_requests(request_timeout=request_timeout, max_retries=max_retries)
    check_reachable(uri, timeout=request_timeout, retries=min(max_retries, 2))


def failure_tags(error: BaseException) -> dict[str, str]:
    """``capsweep.failure`` (the exception type) and ``capsweep.error`` (its first line)."""
    text = str(error).strip()
    return {
        FAILURE_TAG: type(error).__name__,
        ERROR_TAG: (text.splitlines()[0] if text else type(error).__name__)[:5000],
    }


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
        now = int(time.time() * 1000)
        with uninterrupted():
            self.client.log_batch(
                self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()]
            )

    def log_metric_steps(self, steps: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        """Several steps of metrics in as few writes as MLflow allows."""
        now = int(time.time() * 1000)
        rows = [Metric(k, float(v), now, step) for step, values in steps for k, v in values.items()]
        for start in range(0, len(rows), _METRICS_BATCH):
            with uninterrupted():
                self.client.log_batch(self.run_id, metrics=rows[start : start + _METRICS_BATCH])

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
    describe_failure: Callable[[BaseException], Mapping[str, str]] = failure_tags,
) -> Iterator[TrialRun]:
    """Open a run; end it FINISHED, FAILED (exception) or KILLED (SIGINT/SIGTERM).

    ``parent_run_id`` nests the run under a parent made by any process or host;
    ``on_created`` is told the run id as soon as the run exists (before anything else is
    logged), so that a worker killed at any later point leaves a run others can end.
    A FAILED run is tagged ``capsweep.state=FAIL`` and with ``describe_failure(error)``
    (by default :func:`failure_tags`), so reports can say why it failed.
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

    def describe(error: BaseException) -> Mapping[str, str]:
        return {"capsweep.state": "FAIL", **describe_failure(error)}

    with _ended_by_outcome(client, run_id, describe_failure=describe):
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
    client: MlflowClient,
    run_id: str,
    *,
    others_at_work: Callable[[], bool] = lambda: False,
    describe_failure: Callable[[BaseException], Mapping[str, str]] = failure_tags,
) -> Iterator[None]:
    """End the run KILLED on SIGINT/SIGTERM, FAILED on an exception, else FINISHED; each
    write is done whole, whatever signal arrives meanwhile.

    A FAILED run is first tagged with ``describe_failure(error)``. When the failure
    is the tracking server itself, ending the run fails too: that is logged and the
    original error raised, within the bounded retries of :func:`limit_http_requests`.

    While ``others_at_work()`` (other workers of a shared sweep) the run is left RUNNING
    and only tagged with how this process ended: the last one to finish ends it.
    """
    try:
        yield
    except BaseException as error:
        # After SIGINT/SIGTERM any error is the stop's: the handler's exception can come up
        # replaced by another when it was raised inside C code (see capsweep.signals).
        if isinstance(error, (KeyboardInterrupt, Terminated)) or stop_requested() is not None:
            _end_despite(client, run_id, "KILLED", others_at_work, {})
        else:
            _end_despite(client, run_id, "FAILED", others_at_work, describe_failure(error))
        raise
    _end(client, run_id, "FINISHED", others_at_work)


def _end_despite(
    client: MlflowClient,
    run_id: str,
    status: str,
    others_at_work: Callable[[], bool],
    tags: Mapping[str, str],
) -> None:
    """Tag and end a run while an error is on its way up: never hide that error."""
    try:
        if tags:
            with uninterrupted():
                client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        _end(client, run_id, status, others_at_work)
    except Exception as error:
        log.warning(
            "Could not end MLflow run %s as %s: %s",
            run_id,
            status,
            redact_text(_one_line(error), client.tracking_uri),
        )


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
