"""Child processes: capsweep's commands and this package's own workers, each logged."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# The commands installed beside this interpreter (capsweep, capsweep-report).
BIN = Path(sys.executable).parent
# The folder ``python -m benchmarks.sweep_speed`` runs from: workers run from it too.
REPOSITORY = Path(__file__).resolve().parents[2]


def run_logged(command: list[str], log: Path, label: str) -> tuple[int, float, float]:
    """Run ``command`` with its output in ``log``; print its exit and wall time, and the
    log's tail when it failed.

    Returns:
        The exit code, and when it started and ended (``time.time()``).
    """
    started = time.time()
    with log.open("w") as console:
        finished = subprocess.run(
            command, stdout=console, stderr=subprocess.STDOUT, check=False, cwd=REPOSITORY
        )
    ended = time.time()
    print(f"[{label}] exit {finished.returncode} after {ended - started:.1f} s", flush=True)
    if finished.returncode != 0:
        print("".join(log.read_text().splitlines(keepends=True)[-30:]), file=sys.stderr)
    return finished.returncode, started, ended


def worker_command(job: str, spec: dict[str, Any]) -> list[str]:
    """The command that runs ``job`` (``tuner``, ``calibrate``) on ``spec`` in a fresh process."""
    return [
        sys.executable,
        "-m",
        "benchmarks.sweep_speed",
        "--worker",
        json.dumps({**spec, "job": job}),
    ]
