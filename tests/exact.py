"""Comparisons of trained numbers that are exact where capsweep promises exactness.

On a CPU, TensorFlow's kernels are deterministic for these models: the same seed and
inputs give the same numbers to the last bit, and tests compare them exactly. A GPU's
kernels (cuDNN's convolutions, atomics in reductions) are not deterministic unless
``trainer.deterministic=true``: where a GPU is visible, the same comparisons allow a
relative 1e-5.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

GPU_TOLERANCE = 1e-5


@cache
def gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def assert_same(actual: Any, expected: Any, what: str = "") -> None:
    """``actual == expected``, to the last bit on a CPU (to 1e-5 where a GPU trains).

    Mappings and sequences are compared item by item.
    """
    if not gpu_visible():
        assert actual == expected, what
    elif isinstance(expected, dict):
        assert actual.keys() == expected.keys(), what
        for key, value in expected.items():
            assert_same(actual[key], value, f"{what}.{key}")
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected), what
        for index, value in enumerate(expected):
            assert_same(actual[index], value, f"{what}[{index}]")
    else:
        assert actual == pytest.approx(expected, rel=GPU_TOLERANCE), what
