"""Trials run one after another in one process give their TensorFlow graphs back."""

from __future__ import annotations

import gc
from collections.abc import Callable

import keras
import numpy as np

from capsweep.train.graph_memory import _gradient_registry, released_trial_graphs


def _fit_a_tiny_model() -> None:
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(np.zeros((8, 4)), np.zeros(8), epochs=1, verbose=0)


def _live_graphs() -> int:
    gc.collect()
    return sum(1 for item in gc.get_objects() if type(item).__name__ == "FuncGraph")


def _graphs_left_by(run: Callable[[], None]) -> int:
    before = _live_graphs()
    run()
    return _live_graphs() - before


def test_tensorflow_still_keeps_a_fit_s_graphs_alive_without_release() -> None:
    # The upstream leak this module works around; when TensorFlow fixes it this test
    # fails, and released_trial_graphs can go.
    _fit_a_tiny_model()  # warm-up: one-off graphs of the first fit
    assert _graphs_left_by(_fit_a_tiny_model) > 0


def test_released_trial_graphs_gives_them_back() -> None:
    _fit_a_tiny_model()

    def released_fit() -> None:
        with released_trial_graphs():
            _fit_a_tiny_model()

    assert _graphs_left_by(released_fit) == 0


def test_only_gradients_registered_inside_the_block_are_dropped() -> None:
    registry = _gradient_registry()
    before = set(registry)
    with released_trial_graphs():
        _fit_a_tiny_model()
    assert set(registry) == before
