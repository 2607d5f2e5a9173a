"""Search spaces in the ``params:`` syntax of Hydra's Optuna sweeper, as Optuna distributions.

    capacity.unfreeze: range(0, 7)              # 0..6 (stop excluded, as in Hydra)
    head.depth: choice(0, 1, 2)
    trainer.learning_rate: tag(log, interval(1e-4, 1e-2))
    head.width: int(tag(log, interval(16, 256)))
    backbone: choice(small_resnet, mobilenetv2)  # a config group option

A value with no sweep syntax is a fixed override for every trial. Pure: no TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from hydra.errors import HydraException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from capsweep.errors import CapsweepConfigError


@dataclass(frozen=True)
class SearchSpace:
    """What a sweep varies, and what it fixes for every trial."""

    distributions: dict[str, BaseDistribution]
    fixed: dict[str, str]
    # Each name's value as written (``choice(0, 1)``, ``3``), for messages.
    written: dict[str, str] = field(default_factory=dict)
    # The fixed values as Python values (``null`` is None, ``[4,4]`` a list).
    fixed_values: dict[str, Any] = field(default_factory=dict)
    # The configurations to train, when the sweep lists them (hydra.sweeper.points)
    # rather than searching the product of its distributions.
    points: tuple[dict[str, Any], ...] = ()

    def signature(self) -> str:
        """A digest that changes when the searched distributions change."""
        payload = {name: distribution_to_json(d) for name, d in sorted(self.distributions.items())}
        payload["__fixed__"] = json.dumps(sorted(self.fixed.items()))
        if self.points:
            payload["__points__"] = json.dumps(self.points, sort_keys=True, default=str)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> dict[str, str]:
        return {name: distribution_to_json(d) for name, d in sorted(self.distributions.items())}

    def describe_short(self) -> str:
        """The searched names, as ``capacity.unfreeze × head.depth``."""
        return " \u00d7 ".join(sorted(self.distributions))

    def grid(self) -> dict[str, list[Any]]:
        """The finite choices of every parameter, for Optuna's GridSampler."""
        return {name: grid_choices(name, d) for name, d in self.distributions.items()}

    def finite(self) -> bool:
        """Whether the space has a finite number of configurations (listed, or every
        distribution a finite set)."""
        return bool(self.points) or finite(self.distributions)

    def grid_size(self) -> int:
        if self.points:
            return len(self.points)
        size = 1
        for choices in self.grid().values():
            size *= len(choices)
        return size


def distribution_from_override(
    override: Override, section: str = "params"
) -> BaseDistribution | None:
    """The Optuna distribution of one parsed override; ``None`` for a fixed value.

    ``section`` is the sweeper option the override came from, for messages.
    """
    if not override.is_sweep_override():
        return None
    value = override.value()
    key = override.get_key_element()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        for choice in choices:
            if not isinstance(choice, str | int | float | bool | type(None)):
                raise CapsweepConfigError(
                    f"hydra.sweeper.{section}.{key}",
                    choice,
                    "a choice must be a string, number, bool or null",
                )
        return CategoricalDistribution(choices)  # type: ignore[arg-type]  # checked above
    if isinstance(value, RangeSweep) and value.start is not None and value.stop is not None:
        start, stop, step = value.start, value.stop, value.step
        if any(isinstance(bound, float) for bound in (start, stop, step)):
            count = round((stop - start) / step)
            return FloatDistribution(float(start), start + (count - 1) * step, step=float(step))
        return IntDistribution(int(start), int(stop) - int(step), step=int(step))
    if isinstance(value, IntervalSweep) and value.start is not None and value.end is not None:
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise CapsweepConfigError(
        f"hydra.sweeper.{section}.{key}",
        override.get_value_element_as_str(),
        "is not a sweep capsweep understands",
        fix="use choice(...), range(...), interval(...), tag(log, interval(...)) or int(...)",
    )


def parse_search_space(
    params: Mapping[str, Any],
    arguments: list[str] | None = None,
    *,
    section: str = "params",
    require_search: bool = True,
) -> SearchSpace:
    """Parse ``hydra.sweeper.params`` plus command-line sweep overrides.

    Args:
        params: The sweeper option's mapping of keys to values as written.
        arguments: The command line's overrides.
        section: The sweeper option ``params`` came from (``params`` or ``nuisance``).
        require_search: Refuse a ``params`` space with nothing to search (False where
            the search comes from elsewhere: ``hydra.sweeper.points``).

    Raises:
        CapsweepConfigError: a value that does not parse, or (``params``, with
            ``require_search``) a search space with nothing to search.
    """
    lines = [f"{key}={value}" for key, value in params.items()] + list(arguments or [])
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except HydraException as error:
        raise CapsweepConfigError(
            f"hydra.sweeper.{section}",
            lines,
            f"does not parse ({error})",
            fix="see the params syntax in sweeps/capacity.yaml",
        ) from None
    distributions: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    written: dict[str, str] = {}
    fixed_values: dict[str, Any] = {}
    for override in parsed:
        name = override.get_key_element()
        written[name] = (override.input_line or "").partition("=")[2]
        distribution = distribution_from_override(override, section)
        if distribution is None:
            fixed[name] = override.get_value_element_as_str()
            fixed_values[name] = override.value()
            distributions.pop(name, None)
        else:
            distributions[name] = distribution
            fixed.pop(name, None)
            fixed_values.pop(name, None)
    if not distributions and section == "params" and require_search:
        raise empty_space_error(params)
    return SearchSpace(distributions, fixed, written, fixed_values)


def empty_space_error(params: Mapping[str, Any]) -> CapsweepConfigError:
    """The refusal of a sweep with nothing to search."""
    return CapsweepConfigError(
        "hydra.sweeper.params",
        dict(params),
        "the search space is empty",
        fix="add e.g. capacity.unfreeze: range(0, 4) to hydra.sweeper.params, list "
        "configurations in hydra.sweeper.points, or choose a sweep with sweep=<name>",
    )


def finite(distributions: Mapping[str, BaseDistribution]) -> bool:
    """Whether every distribution is a finite set of values."""
    try:
        for name, distribution in distributions.items():
            grid_choices(name, distribution)
    except CapsweepConfigError:
        return False
    return True


def grid_choices(name: str, distribution: BaseDistribution) -> list[Any]:
    """All values of a finite distribution; raise for a continuous one."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, IntDistribution) and not distribution.log:
        return list(range(distribution.low, distribution.high + 1, distribution.step))
    if isinstance(distribution, FloatDistribution) and distribution.step is not None:
        count = round((distribution.high - distribution.low) / distribution.step) + 1
        return [distribution.low + index * distribution.step for index in range(count)]
    raise CapsweepConfigError(
        f"hydra.sweeper.params.{name}",
        distribution_to_json(distribution),
        "the grid sampler needs a finite set of values",
        fix="use choice(...) or range(...), or another sampler (hydra.sweeper.sampler=tpe)",
    )


def override_value(value: Any) -> str:
    """Format a sampled value as a Hydra override value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
