"""The objects alive before the first trial leave garbage collection, once: what later
trials leave behind is collected as before."""

from __future__ import annotations

import gc
import weakref

from capsweep.train.long_lived import freeze_long_lived_objects


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_objects_alive_before_the_first_trial_are_frozen() -> None:
    freeze_long_lived_objects()
    assert gc.get_freeze_count() > 0


def test_a_later_call_freezes_nothing_a_trial_made() -> None:
    freeze_long_lived_objects()
    frozen = gc.get_freeze_count()
    cycle = _Cycle()  # a trial's garbage, made between two trials' calls
    alive = weakref.ref(cycle)
    freeze_long_lived_objects()
    del cycle
    gc.collect()
    assert gc.get_freeze_count() == frozen
    assert alive() is None
