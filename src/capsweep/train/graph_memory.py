"""Give back the TensorFlow graphs a finished trial leaves registered.

Every Keras optimizer step traced on the TensorFlow backend all-reduces gradients through
the default distribution strategy, which registers a fresh custom gradient in TensorFlow's
global gradient registry. Those entries hold the traced graphs, so trials run one after
another in one process (Hydra's basic launcher) grew by ~16 MB each, even after
``keras.backend.clear_session()``. TensorFlow has no public API for this registry: its
private use is kept to this one module, and ``tests/test_graph_memory.py`` fails loudly if
an upgrade moves it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_PREFIX = "CustomGradient-"


def _gradient_registry() -> dict[str, Any]:
    from tensorflow.python.framework import ops  # private: see the module docstring

    registry: dict[str, Any] = ops._gradient_registry._registry
    return registry


@contextlib.contextmanager
def released_trial_graphs() -> Iterator[None]:
    """Drop the custom gradients registered while the block ran, once it is done.

    Only use it around work whose models are discarded afterwards (a trial): the dropped
    gradients belong to graphs nothing will differentiate again.
    """
    registry = _gradient_registry()
    before = set(registry)
    try:
        yield
    finally:
        for name in set(registry) - before:
            if name.startswith(_PREFIX):
                del registry[name]
