"""Objects alive before the first trial leave garbage collection; a trial's garbage does not."""

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


def test_garbage_cycles_made_after_the_freeze_are_still_collected() -> None:
    freeze_long_lived_objects()
    cycle = _Cycle()
    alive = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert alive() is None
