"""A stop signal whose exception comes up replaced by another is still read as a stop.

Python raises a signal handler's exception at the next bytecode, which may be inside a
callback that C code runs (TensorFlow's, CPython's own list code); such C code can lose it
and raise ``SystemError: ... bad argument to internal function`` instead. Seen on the real
Slurm: a scancelled trial was recorded as failed with that text, not as stopped. Here the
replacement is made by hand, right after the real handler raised.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from capsweep import tracking
from capsweep.signals import (
    SUBMITIT_JOB_ENV,
    JobTerminated,
    Terminated,
    handling_signals,
    job_signals,
)

REPLACED = "Objects/listobject.c:338: bad argument to internal function"


def sigterm_lost_in_c_code() -> None:
    """Receive SIGTERM, and let its exception be replaced as C code would."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)
    except Terminated:
        raise SystemError(REPLACED) from None
    pytest.fail("the handler did not raise")


@pytest.fixture
def in_submitit_job(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv(SUBMITIT_JOB_ENV, str(tmp_path))
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)  # job_signals leaves SIGTERM ignored


@pytest.mark.usefixtures("in_submitit_job")
def test_a_job_whose_sigterm_surfaced_as_another_error_ends_terminated() -> None:
    with pytest.raises(JobTerminated, match=r"SIGTERM.*SystemError"), job_signals():
        sigterm_lost_in_c_code()


@pytest.mark.usefixtures("in_submitit_job")
def test_a_job_that_fails_without_a_signal_keeps_its_error() -> None:
    with pytest.raises(SystemError, match="bad argument"), job_signals():
        raise SystemError(REPLACED)


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")


def the_run_status(client: MlflowClient) -> str:
    (run,) = client.search_runs([client.get_experiment_by_name("lost").experiment_id])
    return str(run.info.status)


def test_a_run_stopped_by_a_signal_that_surfaced_as_another_error_ends_killed(
    client: MlflowClient,
) -> None:
    with (
        handling_signals(),
        pytest.raises(SystemError),
        tracking.trial_run(client.tracking_uri, "lost"),
    ):
        sigterm_lost_in_c_code()
    assert the_run_status(client) == "KILLED"


def test_a_run_that_fails_without_a_signal_ends_failed(client: MlflowClient) -> None:
    with (
        handling_signals(),
        pytest.raises(SystemError),
        tracking.trial_run(client.tracking_uri, "lost"),
    ):
        raise SystemError(REPLACED)
    assert the_run_status(client) == "FAILED"


def test_a_stop_signal_is_forgotten_when_the_handlers_are_put_back(
    client: MlflowClient,
) -> None:
    with handling_signals(), pytest.raises(SystemError):
        sigterm_lost_in_c_code()
    with (
        handling_signals(),
        pytest.raises(ValueError),
        tracking.trial_run(client.tracking_uri, "lost"),
    ):
        raise ValueError("a later, ordinary failure")
    assert the_run_status(client) == "FAILED"
