"""Local workers each claim a GPU of their own, in real processes (no GPU is needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from capsweep.sweep import devices

CLAIM = """
import sys, time
from pathlib import Path
from capsweep.sweep.devices import claim_gpu
print(claim_gpu([0, 1], Path(sys.argv[1])), flush=True)
time.sleep(float(sys.argv[2]))
"""


def claim_in_process(folder: Path, hold_seconds: float) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if k != devices.VISIBLE}
    return subprocess.Popen(
        [sys.executable, "-c", CLAIM, str(folder), str(hold_seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


def test_two_live_workers_see_different_gpus(tmp_path: Path) -> None:
    first = claim_in_process(tmp_path, 30)
    try:
        assert first_line(first) == "0"
        second = claim_in_process(tmp_path, 0)
        assert first_line(second) == "1"
        second.wait(timeout=60)
    finally:
        first.kill()
        first.wait()


def test_a_gpu_is_free_again_once_its_worker_is_gone(tmp_path: Path) -> None:
    gone = claim_in_process(tmp_path, 0)
    assert first_line(gone) == "0"
    gone.wait(timeout=60)
    assert first_line(claim_in_process(tmp_path, 0)) == "0"


def test_more_workers_than_gpus_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    holders = [claim_in_process(tmp_path, 30) for _ in range(2)]
    try:
        assert sorted(first_line(h) for h in holders) == ["0", "1"]
        third = claim_in_process(tmp_path, 0)
        third.wait(timeout=60)
        assert third.stderr is not None
        assert "hydra.launcher.n_jobs" in third.stderr.read()
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()


def test_a_device_list_set_from_outside_bounds_the_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(devices.VISIBLE, "1,3")
    monkeypatch.setattr(devices, "_held", None)

    assert devices.claim_gpu([0, 1], tmp_path) == "1"
    assert os.environ[devices.VISIBLE] == "1"


def test_a_device_list_that_names_none_of_the_gpus_is_refused_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(devices.VISIBLE, "2,3")
    monkeypatch.setattr(devices, "_held", None)

    with pytest.raises(RuntimeError) as raised:
        devices.claim_gpu([0, 1], tmp_path)

    assert "hydra.sweeper.gpus=[0, 1] names none of the GPUs" in str(raised.value)
    assert "CUDA_VISIBLE_DEVICES='2,3'" in str(raised.value)
    assert not list(tmp_path.iterdir())


def test_a_slurm_job_given_its_gpus_has_locks_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(devices.VISIBLE, "0")  # Slurm numbers a job's GPUs from 0
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    in_job = devices.slots_folder()
    monkeypatch.delenv("SLURM_JOB_ID")

    assert in_job != devices.slots_folder()
    assert in_job.name.endswith("-job4242")


def test_slurm_jobs_without_a_device_list_share_the_hosts_locks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Array tasks on one node see the host's GPU ids: they must see each other's claims."""
    monkeypatch.delenv(devices.VISIBLE, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    first = devices.slots_folder()
    monkeypatch.setenv("SLURM_JOB_ID", "4243")

    assert devices.slots_folder() == first
