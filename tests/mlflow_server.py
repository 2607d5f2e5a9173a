"""A real ``mlflow server`` for tests whose trials write to MLflow from several processes
at once (MLflow on SQLite refuses them): started on a free port, stopped whole."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SERVER_START_SECONDS = 90  # only a broken server takes this long to answer /health


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class MlflowServer:
    process: subprocess.Popen[bytes]
    uri: str
    artifacts: Path

    def stop(self) -> None:
        """Kill the server and its workers (its own process group) at once."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def start_mlflow_server(folder: Path) -> MlflowServer:
    """``mlflow server`` on SQLite with proxied artifacts, once its /health answers."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    artifacts = folder / "artifacts"
    mlflow = Path(sys.executable).with_name("mlflow")
    process = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=(folder / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, killed whole by stop()
    )
    server = MlflowServer(process, f"http://127.0.0.1:{port}", artifacts)
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {(folder / 'server.log').read_text()}")
        try:
            with urllib.request.urlopen(f"{server.uri}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"mlflow server did not answer within {SERVER_START_SECONDS} s")
