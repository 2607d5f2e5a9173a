"""LP-FT's first stage: train the head alone on the frozen backbone (a linear probe).

``trainer.protocol=lp_ft`` (Kumar et al., "Fine-Tuning can Distort Pretrained Features",
ICLR 2022; the two stages of Keras' transfer-learning guide) trains the head on the
backbone's output first, at ``trainer.learning_rate``, and only then the head and the
unfrozen units together. The probe trains the transfer model's own head layers in place,
so the second stage starts from it.

On cached features the probe costs a head's training steps alone, and it does not depend
on how many units the second stage unfreezes: the trained head is kept in the process,
keyed by everything that determines it (the features, the split, the head, the training
settings), and handed to every later trial that would train the same probe — a sweep's
unfreeze counts and backbone learning-rate candidates share one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from capsweep.data import Dataset
from capsweep.model.backbones import preprocessing_mode
from capsweep.model.split import trainable_suffix
from capsweep.model.transfer import TransferModel
from capsweep.settings import CapsweepConfig, as_plain_dict
from capsweep.train.compiled_models import architecture_of
from capsweep.train.feature_cache import open_store, trial_features
from capsweep.train.fit import FitInputs, fit_and_evaluate

# Trained probes kept per process.
KEPT_PROBES = 16
_kept: OrderedDict[str, tuple[list[np.ndarray], ProbeResult]] = OrderedDict()


@dataclass(frozen=True)
class ProbeResult:
    """How the probe ended: its val_accuracy, epochs, seconds, and whether it was kept."""

    val_accuracy: float
    epochs: int
    seconds: float
    reused: bool = False

    def metrics(self) -> dict[str, float]:
        return {
            "probe_val_accuracy": self.val_accuracy,
            "probe_epochs": float(self.epochs),
            "probe_seconds": self.seconds,
        }


def output_cut(transfer: TransferModel) -> str:
    """The layer whose features a probe trains on: the backbone's output."""
    return str(transfer.backbone.layers[-1].name)


def linear_probe(transfer: TransferModel, data: Dataset, settings: CapsweepConfig) -> ProbeResult:
    """Train ``transfer``'s head on the frozen backbone, in place; return how it went.

    On cached features when the trial may use them (:func:`capsweep.train.trial.plan_inputs`
    decides), else on images with every backbone layer frozen for the stage.
    """
    started = time.perf_counter()
    if settings.cache.enabled and not settings.data.augment:
        features = trial_features(
            transfer,
            data,
            settings.cache,
            open_store(settings.cache, settings.paths.outputs),
            capacity=settings.capacity,
            preprocessing=preprocessing_mode(settings.backbone.name),
            input_size=settings.backbone.input_size,
            cut=output_cut(transfer),
        )
        probe = trainable_suffix(transfer.model, transfer.backbone, features.cut)
        key = _key(features.key, data, settings)
        if key in _kept:
            values, result = _kept[key]
            _kept.move_to_end(key)
            for variable, value in zip(probe.variables, values, strict=True):
                variable.assign(value)
            return ProbeResult(result.val_accuracy, result.epochs, 0.0, reused=True)
        built = architecture_of(settings, data.num_classes, "probe", features.cut, capacity=False)
        inputs = FitInputs(probe, features.train, features.val, features.test, built)
        metrics = fit_and_evaluate(transfer, data, settings.trainer, inputs=inputs)
        result = ProbeResult(
            metrics.val_accuracy, metrics.epochs_run, time.perf_counter() - started
        )
        _kept[key] = ([np.array(v) for v in probe.variables], result)
        while len(_kept) > KEPT_PROBES:
            _kept.popitem(last=False)
        return result
    with frozen_backbone(transfer):  # the flags hold for this fit only: keep no model
        metrics = fit_and_evaluate(
            transfer, data, settings.trainer, inputs=FitInputs(transfer.model, reuse=False)
        )
    return ProbeResult(metrics.val_accuracy, metrics.epochs_run, time.perf_counter() - started)


@contextlib.contextmanager
def frozen_backbone(transfer: TransferModel) -> Iterator[None]:
    """Freeze every backbone layer while the block runs; put each layer's flag back after."""
    layers = [transfer.backbone, *transfer.backbone.layers]
    flags = [layer.trainable for layer in layers]
    transfer.backbone.trainable = False
    try:
        yield
    finally:
        for layer, flag in zip(layers, flags, strict=True):
            layer.trainable = flag


def forget_kept_probes() -> None:
    """Train every later probe anew (tests)."""
    _kept.clear()


def _key(features: str, data: Dataset, settings: CapsweepConfig) -> str:
    """Everything a probe's result depends on, besides the features' own key."""
    trainer = as_plain_dict(settings.trainer)
    for unused in ("backbone_learning_rate", "verbose", "protocol"):
        trainer.pop(unused)
    payload: dict[str, Any] = {
        "features": features,
        "train": _digest(data.train.row_indices),
        "val": _digest(data.val.row_indices),
        "classes": data.num_classes,
        "head": as_plain_dict(settings.head),
        "trainer": trainer,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _digest(rows: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(rows).tobytes(), digest_size=16).hexdigest()
