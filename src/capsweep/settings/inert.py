"""Which settings have no effect in a configuration: what tuning them there would waste.

A sweep tunes its nuisance hyperparameters (the learning rates) separately inside every
configuration it compares; one that cannot change what a configuration trains is not
searched there. Pure: reads settings, knows nothing of TensorFlow or Optuna.
"""

from __future__ import annotations

from collections.abc import Callable

from capsweep.settings.schema import CapsweepConfig

# key -> (the configurations it has no effect in, the reason in words)
_RULES: dict[str, tuple[Callable[[CapsweepConfig], bool], str]] = {
    "trainer.backbone_learning_rate": (
        lambda settings: settings.capacity.unfreeze == 0,
        "nothing of the backbone trains (capacity.unfreeze=0)",
    ),
    "head.width": (
        lambda settings: settings.head.depth == 0,
        "the head has no hidden layer (head.depth=0)",
    ),
    "head.dropout": (
        lambda settings: settings.head.depth == 0,
        "the head has no hidden layer to drop out of (head.depth=0)",
    ),
    "head.activation": (
        lambda settings: settings.head.depth == 0,
        "the head has no hidden layer (head.depth=0)",
    ),
}


def inert_keys(settings: CapsweepConfig) -> dict[str, str]:
    """The keys whose value cannot change what ``settings`` trains, each with the reason.

    Keys without a rule count as having an effect.
    """
    return {key: reason for key, (inert, reason) in _RULES.items() if inert(settings)}
