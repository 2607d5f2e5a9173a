"""A signal that lands during a write is raised once the write is done, never in the middle."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import pytest

from capsweep.signals import (
    Terminated,
    handling_signals,
    raise_if_stop_requested,
    uninterrupted,
)


@pytest.fixture
def handlers() -> Iterator[None]:
    """capsweep's handlers for SIGINT and SIGTERM, the previous ones restored after."""
    with handling_signals():
        yield


@pytest.mark.usefixtures("handlers")
@pytest.mark.parametrize(
    ("number", "raised"), [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)]
)
def test_a_signal_during_a_write_is_raised_after_it(number: int, raised: type) -> None:
    done = []
    with pytest.raises(raised), uninterrupted():
        os.kill(os.getpid(), number)
        done.append("the rest of the write")
    assert done == ["the rest of the write"]


@pytest.mark.usefixtures("handlers")
def test_a_second_signal_during_a_write_is_raised_at_once() -> None:
    done = []
    with pytest.raises(Terminated), uninterrupted():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        done.append("not reached")
    assert done == []


@pytest.mark.usefixtures("handlers")
def test_a_held_signal_waits_for_the_outermost_write() -> None:
    done = []
    with pytest.raises(Terminated), uninterrupted():
        with uninterrupted():
            os.kill(os.getpid(), signal.SIGTERM)
        done.append("outer write finished")
    assert done == ["outer write finished"]


@pytest.mark.usefixtures("handlers")
def test_a_signal_outside_a_write_is_raised_at_once_and_not_held_for_later() -> None:
    with pytest.raises(Terminated):
        os.kill(os.getpid(), signal.SIGTERM)
    with uninterrupted():
        pass  # nothing pending: no stale signal surfaces here


@pytest.mark.usefixtures("handlers")
@pytest.mark.parametrize(
    ("number", "raised"), [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)]
)
def test_a_signal_whose_exception_was_lost_is_raised_at_the_next_check(
    number: int, raised: type
) -> None:
    """C code running a Python callback can swallow the handler's exception: training must
    still stop at the next epoch's end."""
    with contextlib.suppress(raised):  # the exception lost, as inside TensorFlow
        os.kill(os.getpid(), number)

    with pytest.raises(raised):
        raise_if_stop_requested()


def test_no_signal_lets_training_go_on() -> None:
    with handling_signals():
        raise_if_stop_requested()
