"""The objects alive before the first trial leave garbage collection, once: what later
trials leave behind is collected as before.

:func:`gc.freeze` is global to a process and pytest's own process may have frozen objects
already (an earlier trial run from the command line's entry), so each check runs in a
fresh interpreter, where nothing is frozen until capsweep freezes it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

PRELUDE = """
import gc, json, weakref
from capsweep.train.long_lived import freeze_long_lived_objects

class Cycle:
    def __init__(self):
        self.me = self

def tracked(obj):
    # gc.get_objects() lists the objects a collection walks; frozen ones are not among them.
    return any(found is obj for found in gc.get_objects())
"""


def in_a_fresh_process(body: str) -> dict[str, Any]:
    """Run ``body`` after :data:`PRELUDE` in a new interpreter; return what it printed."""
    script = PRELUDE + textwrap.dedent(body)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    seen: dict[str, Any] = json.loads(result.stdout)
    return seen


def test_objects_alive_before_the_first_call_leave_garbage_collection() -> None:
    seen = in_a_fresh_process(
        """
        long_lived = Cycle()
        before = {"frozen": gc.get_freeze_count(), "tracked": tracked(long_lived)}
        freeze_long_lived_objects()
        after = {"frozen": gc.get_freeze_count(), "tracked": tracked(long_lived)}
        print(json.dumps({"before": before, "after": after}))
        """
    )

    assert seen["before"] == {"frozen": 0, "tracked": True}
    assert seen["after"]["tracked"] is False
    assert seen["after"]["frozen"] > 0


def test_a_later_call_freezes_nothing_a_trial_made() -> None:
    seen = in_a_fresh_process(
        """
        freeze_long_lived_objects()
        frozen = gc.get_freeze_count()
        garbage = Cycle()  # a trial's garbage, made between two trials' calls
        alive = weakref.ref(garbage)
        freeze_long_lived_objects()
        del garbage
        gc.collect()
        print(json.dumps({"added": gc.get_freeze_count() - frozen, "collected": alive() is None}))
        """
    )

    assert seen == {"added": 0, "collected": True}
