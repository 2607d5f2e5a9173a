"""How many trials a sweep's pass asks of the study."""

from __future__ import annotations

from capsweep.sweep.loop import ask_count


def test_a_pass_asks_a_batch_when_the_study_wants_more() -> None:
    assert ask_count(batch_size=2, wanted=5, queued=0, listed=False) == 2


def test_a_pass_asks_no_more_than_the_study_wants() -> None:
    assert ask_count(batch_size=4, wanted=1, queued=0, listed=False) == 1


def test_a_listed_sweep_asks_no_more_than_are_queued() -> None:
    """A failed point still counts as wanted but is not queued again: asking past the queue
    would sample a configuration nobody listed."""
    assert ask_count(batch_size=2, wanted=2, queued=1, listed=True) == 1


def test_a_searched_sweep_may_ask_past_its_queue() -> None:
    assert ask_count(batch_size=2, wanted=2, queued=1, listed=False) == 2
