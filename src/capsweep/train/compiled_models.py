"""Compile a trial's model, or hand it the one an earlier trial of the process compiled and
traced for the same architecture, its weights and optimizer state set as new.

Keras traces a model's train and test steps the first time it fits and evaluates a new
model: 0.3-1.8 s a model here, as much as the training steps of a small trial. The trials
of a sweep that run one after another in one process — a configuration's learning-rate
candidates and repeats above all — train models of one architecture. The last few
compiled models are kept; a trial whose model has the same architecture (the same layer
configurations, trainable flags, dtype policy, optimizer and XLA setting) takes the kept
one instead of compiling its own:

* every variable — weights and the random generators' states — is set to the trial's own
  freshly built model's, so it starts exactly where a new model would (bit-identical:
  ``tests/test_model_reuse.py``);
* the optimizer's variables are set back to their values when it was built, and the
  learning rates, held in variables, to the trial's: a new rate retraces nothing.

After training, the trial's own model is set to the trained weights, so callers of
:func:`capsweep.train.trial.train_trial` find their model trained either way.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from capsweep.model.optimizers import SplitLearningRate, make_optimizer
from capsweep.model.transfer import TransferModel
from capsweep.settings import CapsweepConfig, TrainerConfig, as_plain_dict
from capsweep.train.precision import with_loss_scaling

# Architectures kept per process: a trial's fine-tuned model and, with lp_ft, its probe.
KEPT_MODELS = 4


@dataclass
class _Kept:
    model: keras.Model
    # The optimizer's variables as built, before any step.
    optimizer_start: list[np.ndarray]


_kept: OrderedDict[Hashable, _Kept] = OrderedDict()


def compile_model(
    transfer: TransferModel, trainer: TrainerConfig, *, model: keras.Model | None = None
) -> None:
    """Compile with the head's learning rate, and a lower one for unfrozen backbone layers.

    Args:
        transfer: The transfer model; its backbone's trainable variables get the lower rate.
        trainer: The optimizer settings, loss scaling (``mixed_float16``) and XLA.
        model: The model to compile, when not ``transfer.model`` (a trainable suffix that
            shares its layers).
    """
    head = make_optimizer(trainer.optimizer, trainer.learning_rate)
    backbone_paths = [variable.path for variable in transfer.backbone.trainable_variables]
    optimizer: keras.optimizers.Optimizer = head
    if backbone_paths:
        optimizer = SplitLearningRate(
            head, make_optimizer(trainer.optimizer, trainer.backbone_learning_rate), backbone_paths
        )
    (model or transfer.model).compile(
        optimizer=with_loss_scaling(optimizer, trainer.mixed_precision),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=trainer.jit_compile,
    )


def set_learning_rates(optimizer: Any, *, head: float, backbone: float) -> None:
    """Set a compiled model's learning rates in place (they are variables: no retrace)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # under loss scaling
    if isinstance(inner, SplitLearningRate):
        inner.head_optimizer.learning_rate = head
        inner.backbone_optimizer.learning_rate = backbone
    else:
        inner.learning_rate = head


def architecture_key(model: keras.Model, trainer: TrainerConfig) -> Hashable:
    """What must match for a kept model to stand in for ``model``: its layers' configs
    and trainable flags, dtype policies, and how it is compiled (optimizer, scaling, XLA)."""
    layers = [
        (layer.name, layer.trainable, _config(layer), str(getattr(layer, "dtype_policy", "")))
        for layer in _all_layers(model)
    ]
    text = json.dumps(
        {
            "model": model.get_config(),
            "layers": layers,
            "optimizer": str(trainer.optimizer),
            "mixed_precision": str(trainer.mixed_precision),
            "jit_compile": str(trainer.jit_compile),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def architecture_of(
    settings: CapsweepConfig, classes: int, inputs: str, cut: str, *, capacity: bool = True
) -> str:
    """What a trial's trained model is made of, from the settings that build it: the
    backbone (but not its weights), what trains (left out for a model of head layers
    only, ``capacity=False``), the head, the classes, the augmentation, the dtype policy,
    and where it starts (images, or the features at ``cut``)."""
    backbone = as_plain_dict(settings.backbone)
    for unused in ("weights", "pretrain", "allow_unsafe_h5"):
        backbone.pop(unused)
    return json.dumps(
        {
            "inputs": inputs,
            "cut": cut,
            "backbone": backbone,
            "capacity": as_plain_dict(settings.capacity) if capacity else None,
            "head": as_plain_dict(settings.head),
            "classes": classes,
            "augment": [str(a) for a in settings.data.augment],
            "policy": str(settings.trainer.mixed_precision),
        },
        sort_keys=True,
        default=str,
    )


def trained_model(
    transfer: TransferModel,
    trainer: TrainerConfig,
    *,
    model: keras.Model | None = None,
    architecture: Hashable | None = None,
    reuse: bool = True,
) -> tuple[keras.Model, bool]:
    """The compiled model a trial trains: a kept one of the same architecture, set up as
    ``model`` (default ``transfer.model``) is, or ``model`` itself, compiled.

    Args:
        architecture: What ``model`` is made of, from the settings that built it; ``None``
            reads it from the model's layer configs (a fifth of a second for a small
            model). Either way a kept model stands in only if its variables have the
            same paths, shapes and dtypes.
        reuse: ``False``: compile ``model`` and neither take nor keep a kept one.

    Returns:
        The model to fit and evaluate, and whether it is a kept one (no new tracing).
    """
    fresh = model or transfer.model
    if not reuse:
        _compile(transfer, trainer, fresh)
        return fresh, False
    key = (
        architecture_key(fresh, trainer)
        if architecture is None
        else (
            architecture,
            str(trainer.optimizer),
            str(trainer.mixed_precision),
            str(trainer.jit_compile),
        )
    )
    kept = _kept.get(key)
    if kept is not None and _same_variables(kept.model, fresh):
        _kept.move_to_end(key)
        for target, source in zip(kept.model.variables, fresh.variables, strict=True):
            target.assign(source)
        optimizer = kept.model.optimizer
        for variable, start in zip(optimizer.variables, kept.optimizer_start, strict=True):
            variable.assign(start)
        set_learning_rates(
            optimizer, head=trainer.learning_rate, backbone=trainer.backbone_learning_rate
        )
        return kept.model, True
    _compile(transfer, trainer, fresh)
    _kept[key] = _Kept(fresh, [np.array(v) for v in fresh.optimizer.variables])
    while len(_kept) > KEPT_MODELS:
        _kept.popitem(last=False)
    return fresh, False


def _compile(transfer: TransferModel, trainer: TrainerConfig, model: keras.Model) -> None:
    """Compile ``model`` anew; a kept entry holding it no longer holds what it was kept as
    (its optimizer and traced steps are replaced), so it is forgotten."""
    for stale in [key for key, kept in _kept.items() if kept.model is model]:
        del _kept[stale]
    compile_model(transfer, trainer, model=model)
    model.optimizer.build(model.trainable_variables)


def hand_back(trained: keras.Model, own: keras.Model) -> None:
    """Set a trial's own model to the kept model it trained in its stead."""
    for target, source in zip(own.variables, trained.variables, strict=True):
        target.assign(source)


def forget_kept_models() -> None:
    """Compile every later trial's model anew (tests; freeing memory)."""
    _kept.clear()


def _same_variables(kept: keras.Model, fresh: keras.Model) -> bool:
    pairs = zip(kept.variables, fresh.variables, strict=False)
    return len(kept.variables) == len(fresh.variables) and all(
        a.path == b.path and tuple(a.shape) == tuple(b.shape) and a.dtype == b.dtype
        for a, b in pairs
    )


def _all_layers(model: keras.Model) -> list[Any]:
    layers = []
    for layer in model.layers:
        layers.append(layer)
        if isinstance(layer, keras.Model):
            layers.extend(_all_layers(layer))
    return layers


def _config(layer: Any) -> Any:
    try:
        return layer.get_config()
    except NotImplementedError:
        return type(layer).__name__
