"""Helpers for tests on a real Slurm cluster: whether one answers, and Slurm's own word
(sacct) on how a job ended, waited for with a deadline only a hung cluster reaches."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
            "PREEMPTED", "BOOT_FAIL", "DEADLINE")  # fmt: skip


def slurm_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    result = subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30, check=False)
    return result.returncode == 0


def require_slurm() -> None:
    """Skip unless a cluster answers; in CI, fail instead (CI starts one)."""
    if not slurm_answers():
        if os.environ.get("CI"):
            pytest.fail("no Slurm cluster answers: .ci/run starts one with .ci/slurm-up.sh")
        pytest.skip("no Slurm cluster answers (start one with .ci/slurm-up.sh)")


def job_states(job_id: str) -> dict[str, str]:
    """``{job or array task id: state}`` of a job's allocations (not its steps), from sacct."""
    result = subprocess.run(
        ["sacct", "-j", job_id, "-X", "-n", "-P", "-o", "JobID,State"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    states = {}
    for line in result.stdout.splitlines():
        if "|" in line:
            job, state = line.split("|", 1)
            states[job.strip()] = state.strip()
    return states


def wait_for_job(job_id: str, count: int, within: float) -> dict[str, str]:
    """Wait until sacct shows ``count`` allocations of ``job_id``, all ended; return them."""
    deadline = time.monotonic() + within
    while True:
        states = job_states(job_id)
        if len(states) == count and all(s.startswith(TERMINAL) for s in states.values()):
            return states
        if time.monotonic() > deadline:
            pytest.fail(f"Slurm job {job_id} did not end within {within:.0f} s: {states}")
        time.sleep(1)
