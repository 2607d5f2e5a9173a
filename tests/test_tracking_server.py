"""A real ``mlflow server`` as ``tracking.uri``: trials recorded on it, and bounded waits
when it is down, slow or goes away mid-trial."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from capsweep import tracking
from capsweep.errors import CapsweepConfigError
from mlflow_server import MlflowServer, free_port, start_mlflow_server


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    folder = tmp_path / "server"
    folder.mkdir()
    server = start_mlflow_server(folder)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def restored_mlflow_http_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever these tests export or capsweep sets is undone afterwards."""
    for name in (tracking.TIMEOUT_ENV, tracking.RETRIES_ENV, tracking.BACKOFF_ENV):
        monkeypatch.delenv(name, raising=False)


def _settings(tiny_config: Callable[..., Any], uri: str, *overrides: str) -> Any:
    from capsweep.hydra_settings import load_settings

    return load_settings(tiny_config(f"tracking.uri={uri}", *overrides))


@pytest.mark.slow
def test_a_trial_is_recorded_on_a_tracking_server(
    tiny_config: Callable[..., Any], mlflow_server: MlflowServer
) -> None:
    from mlflow.tracking import MlflowClient

    from capsweep.cli.run import run_trial

    outcome = run_trial(_settings(tiny_config, mlflow_server.uri))

    client = MlflowClient(tracking_uri=mlflow_server.uri)
    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["backbone.name"] == "small_resnet"
    assert run.data.params["tracking.uri"] == mlflow_server.uri
    assert 0.0 <= run.data.metrics["val_accuracy"] <= 1.0
    artifacts = {item.path for item in client.list_artifacts(outcome.run_id)}
    assert {"config.yaml", "capacity_report.json", "learning_curve.png"} <= artifacts
    # Proxied through the server into its --artifacts-destination, not a local folder.
    assert list(mlflow_server.artifacts.rglob("config.yaml"))


@pytest.mark.slow
@pytest.mark.heavy
def test_a_trial_whose_server_goes_away_fails_with_the_reason_in_bounded_time(
    tiny_config: Callable[..., Any], mlflow_server: MlflowServer
) -> None:
    from capsweep.cli.run import run_trial

    killed_at: list[float] = []

    def kill_server(epoch: int, logs: dict[str, float]) -> None:
        if not killed_at:
            mlflow_server.stop()
            killed_at.append(time.monotonic())

    settings = _settings(tiny_config, mlflow_server.uri, "trainer.epochs=3")
    with pytest.raises(Exception) as failure:
        run_trial(settings, listeners=[kill_server])
    seconds = time.monotonic() - killed_at[0]
    print(f"failed {seconds:.1f} s after the server died: {str(failure.value)[:200]}")

    assert "127.0.0.1" in str(failure.value)  # names the server it could not reach
    assert "Connection refused" in str(failure.value) or "Max retries" in str(failure.value)
    # Defaults (3 retries, backoff 0, 2, 4 s + jitter): the failing call, then the
    # attempt to end the run, each ~6-9 s. MLflow's own defaults would take ~4 minutes each.
    assert seconds < 40, f"took {seconds:.1f} s to fail"


def test_a_dead_server_is_refused_at_start_in_one_line_naming_the_key_and_the_fix(
    tiny_config: Callable[..., Any], outputs: Path
) -> None:
    from capsweep.cli.app import train

    uri = f"http://someone:secret@127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(CapsweepConfigError) as refused:
        train(tiny_config(f"tracking.uri={uri}"))
    seconds = time.monotonic() - started

    message = str(refused.value)
    assert message.startswith("tracking.uri='http://someone:***@127.0.0.1:")
    assert "secret" not in message
    assert "\n" not in message
    assert "mlflow server" in message and "sqlite:///" in message
    assert seconds < 10, f"took {seconds:.1f} s"
    assert list(outputs.iterdir()) == []  # nothing trained, pretrained or recorded


def test_the_capsweep_command_exits_2_with_the_error_when_the_server_is_down(
    tmp_path: Path,
) -> None:
    capsweep = Path(sys.executable).with_name("capsweep")
    outputs = tmp_path / "outputs"
    result = subprocess.run(
        [
            str(capsweep),
            f"tracking.uri=http://127.0.0.1:{free_port()}",
            f"paths.outputs={outputs}",
            "backbone.weights=null",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("capsweep: error:")]
    assert len(errors) == 1 and "tracking.uri=" in errors[0], result.stderr
    assert not (outputs / "mlflow.db").exists()
    assert not (outputs / "pretrained").exists()


def test_a_server_that_never_answers_is_refused_after_its_timeouts() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(CapsweepConfigError, match="timed out"):
            tracking.check_reachable(uri, timeout=1, retries=1)
        seconds = time.monotonic() - started
    assert 2 <= seconds < 5, f"took {seconds:.1f} s"  # 2 tries of 1 s, 0.5 s apart


def test_a_local_store_needs_no_server(outputs: Path) -> None:
    tracking.check_reachable(f"sqlite:///{outputs}/mlflow.db", timeout=1)
    assert list(outputs.iterdir()) == []


def test_http_limits_come_from_settings_but_exported_values_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(tracking.TIMEOUT_ENV, "7")
    tracking.limit_http_requests(request_timeout=30, max_retries=3)
    assert os.environ[tracking.TIMEOUT_ENV] == "7"
    assert os.environ[tracking.RETRIES_ENV] == "3"
    tracking.limit_http_requests(request_timeout=20, max_retries=1)  # capsweep's own: updated
    assert os.environ[tracking.RETRIES_ENV] == "1"
    assert os.environ[tracking.TIMEOUT_ENV] == "7"


def test_mlflow_reads_the_limits_capsweep_sets() -> None:
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    tracking.limit_http_requests(request_timeout=12, max_retries=2)
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 12
    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 2


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("tracking.request_timeout=0", "must be >= 1"),
        ("tracking.max_retries=-1", "must be >= 0"),
        ("tracking.max_retries=11", "at most 10"),
    ],
)
def test_tracking_limits_are_checked_with_the_settings(
    tiny_config: Callable[..., Any], override: str, problem: str
) -> None:
    from capsweep.hydra_settings import load_settings

    with pytest.raises(CapsweepConfigError, match=problem):
        load_settings(tiny_config(override))
