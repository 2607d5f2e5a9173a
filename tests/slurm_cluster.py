"""Helpers for tests on a real Slurm cluster: whether one answers, the controller's word
(squeue) on jobs still queued or running, and the accounting's (sacct) on how a job ended,
waited for with a deadline only a hung cluster reaches.

sacct lags behind the controller (slurmdbd learns of a job seconds later) and shows a
job array's pending tasks as one record (``12_[0-1]``) until they start: ask squeue about
jobs that have not ended.

Where services are required (``.ci/run`` exports CAPSWEEP_REQUIRE_SERVICES=1; a ``CI``
variable counts too, see ``required_services``), a cluster that does not answer fails the
tests marked ``slurm`` instead of skipping them."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from required_services import services_required

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
            "PREEMPTED", "BOOT_FAIL", "DEADLINE")  # fmt: skip


def slurm_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    result = subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30, check=False)
    return result.returncode == 0


def require_slurm() -> None:
    """Skip unless a cluster answers; where services are required (CI), fail instead."""
    if not slurm_answers():
        if services_required():
            pytest.fail(
                "no Slurm cluster answers (sinfo), and the services are required here: "
                ".ci/run starts one with .ci/slurm-up.sh"
            )
        pytest.skip("no Slurm cluster answers (start one with .ci/slurm-up.sh)")


def node_cpus() -> int:
    """CPUs of the cluster's (one) node."""
    result = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True,
                            timeout=30, check=True)  # fmt: skip
    return int(result.stdout.split()[0].rstrip("+"))


def queue_states(job_id: str) -> dict[str, str]:
    """``{job or array task id: state}`` of a job's allocations still in the controller's
    queue (pending or running), one entry per array task."""
    result = subprocess.run(
        ["squeue", "-h", "-r", "-j", job_id, "-o", "%i|%T"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return _states(result.stdout)


def wait_for_pending(job_ids: list[str], within: float) -> str:
    """The first of ``job_ids`` the controller shows PENDING, waited for."""
    deadline = time.monotonic() + within
    while True:
        pending = [job for job in job_ids if "PENDING" in queue_states(job).values()]
        if pending:
            return pending[0]
        if time.monotonic() > deadline:
            states = {job: queue_states(job) for job in job_ids}
            pytest.fail(f"none of the Slurm jobs {job_ids} pending within {within:.0f} s: {states}")
        time.sleep(0.5)


def job_states(job_id: str) -> dict[str, str]:
    """``{job or array task id: state}`` of a job's allocations (not its steps), from sacct."""
    result = subprocess.run(
        ["sacct", "-j", job_id, "-X", "-n", "-P", "-o", "JobID,State"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return _states(result.stdout)


def _states(table: str) -> dict[str, str]:
    states = {}
    for line in table.splitlines():
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
