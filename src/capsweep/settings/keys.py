"""The dotted keys the settings schema has, and the error for one it does not have.

Hydra's ``+key=value`` adds a key past the schema's struct check, and
``OmegaConf.to_object`` then drops it without a word: ``+trainer.epoch=5`` would train
with the default epochs. Callers check composed configs against these keys instead.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from capsweep.errors import CapsweepConfigError
from capsweep.settings.schema import CapsweepConfig


@cache
def schema_keys(schema: type = CapsweepConfig) -> frozenset[str]:
    """Every dotted key of ``schema``: its sections (``trainer``) and values (``trainer.seed``)."""
    keys: set[str] = set()
    hints = typing.get_type_hints(schema)
    for item in dataclasses.fields(schema):
        keys.add(item.name)
        hint = hints[item.name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            keys.update(f"{item.name}.{key}" for key in schema_keys(hint))
    return frozenset(keys)


def unknown_keys(tree: Mapping[str, Any], schema: type = CapsweepConfig) -> list[str]:
    """The dotted keys of a plain config tree that ``schema`` does not have."""
    known = schema_keys(schema)
    return [key for key in _walk(tree, "", known) if key not in known]


def _walk(tree: Mapping[str, Any], prefix: str, known: frozenset[str]) -> Iterator[str]:
    for name, value in tree.items():
        key = f"{prefix}{name}"
        yield key
        # Descend into the schema's sections only: a free-form value (pruner_options)
        # may hold any keys.
        if isinstance(value, Mapping) and any(k.startswith(key + ".") for k in known):
            yield from _walk(value, key + ".", known)


def unknown_key_error(key: str, value: Any) -> CapsweepConfigError:
    """The error for ``key=value`` when the schema has no ``key``, with likely meant keys."""
    close = difflib.get_close_matches(key, sorted(schema_keys()), n=3)
    return CapsweepConfigError(
        key,
        value,
        "is not a key of capsweep's configuration",
        fix=f"did you mean {' or '.join(close)}?" if close else "see capsweep --cfg job",
    )
