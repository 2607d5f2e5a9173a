"""Keep the garbage collector off the objects a process holds for its whole life.

TensorFlow, Keras, MLflow and Optuna leave millions of objects behind their imports, and a
full collection walks all of them: the ``gc.collect()`` in ``keras.backend.clear_session()``
took 0.2 s before every trial, and Python's own full collections pause training as often.
Moved to the permanent generation (:func:`gc.freeze`) before the first trial, they are
skipped: the same collection took 0.01 s. What trials create is collected as before.

Everything alive at that moment is frozen, so only the command line's trial entry
(:func:`capsweep.cli.run.run_trial`) calls it, never code a notebook would call: there
it would keep the user's own garbage forever.
"""

from __future__ import annotations

import gc

_frozen = False


def freeze_long_lived_objects() -> None:
    """Collect once, then exempt every object alive now from later collections (once)."""
    global _frozen
    if _frozen:
        return
    gc.collect()
    gc.freeze()
    _frozen = True
