"""Where capsweep's shipped configuration lives: in the wheel, or in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    bundled = _PACKAGE / name  # a wheel carries conf/ and sweeps/ inside the package
    if bundled.is_dir():
        return bundled
    return _PACKAGE.parents[1] / name  # an editable install runs from the checkout


CONF_DIR = _shipped("conf")
SWEEPS_DIR = _shipped("sweeps")
