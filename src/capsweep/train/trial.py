"""One trial: build the model for a capacity setting, train it, and record what it measured.

A trial records through a :class:`Recorder` (an MLflow run in practice, see
:mod:`capsweep.tracking`), so this module knows no tracking library. The settings arrive
checked by :func:`capsweep.settings.check_settings`; only what needs the built model
(units available to unfreeze) is checked here, in :func:`prepare_trial`, before the caller
opens a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

from capsweep.data import Dataset, load_dataset
from capsweep.errors import CapsweepConfigError, StopTraining
from capsweep.model.backbones import build_configured_backbone, preprocessing_mode
from capsweep.model.capacity import CapacityReport, units_to_unfreeze
from capsweep.model.split import trainable_suffix
from capsweep.model.transfer import TransferModel, build_transfer_model
from capsweep.settings import CapsweepConfig
from capsweep.settings.choices import SOURCE_WEIGHTS, TrainingProtocol
from capsweep.train.backbone_reuse import trial_backbone
from capsweep.train.compiled_models import architecture_of
from capsweep.train.curves import learning_curve
from capsweep.train.epoch_metrics import BufferedEpochMetrics, MetricSteps
from capsweep.train.feature_cache import cache_off_reason, open_store, trial_features
from capsweep.train.fit import EpochListener, FitInputs, TrialMetrics, fit_and_evaluate
from capsweep.train.graph_memory import released_trial_graphs
from capsweep.train.linear_probe import linear_probe, output_cut
from capsweep.train.precision import dtype_policy, require_device_for
from capsweep.train.pretrain import ensure_source_weights, source_weights_path

log = logging.getLogger(__name__)

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
# Tells the head's random stream from the trial's (see head_seed).
HEAD_STREAM = 1
# TensorFlow's public API can turn deterministic ops on but not tell whether they are on.
_deterministic_ops = False


class Recorder(Protocol):
    """Where a trial records its inputs and results (an MLflow run, for capsweep)."""

    run_id: str

    def log_params(self, params: Mapping[str, str]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None: ...

    def log_metric_steps(self, steps: MetricSteps) -> None: ...

    def set_tags(self, tags: Mapping[str, Any]) -> None: ...

    def log_text(self, text: str, artifact_file: str) -> None: ...

    def log_figure(self, figure: Any, artifact_file: str) -> None: ...


@dataclass
class TrialOutcome:
    """How a trial ended: COMPLETE with metrics, or PRUNED at an epoch."""

    run_id: str
    state: str
    metrics: TrialMetrics | None = None
    pruned_at_epoch: int | None = None


@dataclass
class PreparedTrial:
    """The data and the built model of one trial, ready to train."""

    data: Dataset
    transfer: TransferModel
    # Whether TensorFlow's ops run deterministically (it may be on from an earlier trial).
    deterministic_ops: bool = False
    # Seconds spent loading the data (data_seconds) and building the model
    # (build_seconds); pretraining excluded. Recorded with the trial's other timings.
    timings: dict[str, float] = field(default_factory=dict)
    # Whether the backbone is the previous trial's, its weights put back (backbone_reuse).
    backbone_reused: bool = False


@contextlib.contextmanager
def trial_session() -> Iterator[None]:
    """Give back the graphs a trial registered once it ends.

    Trials that run one after another in one process must not accumulate graphs.
    """
    with released_trial_graphs():
        yield


def seed_everything(seed: int) -> None:
    """A fresh Keras session with every generator seeded (Python, NumPy, TensorFlow, Keras).

    Called right before a trial builds its model, after any pretraining, so a trial's
    result depends on its seed alone and not on what ran before it in the process.
    """
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)


def head_seed(seed: int) -> int:
    """The seed of the layers a trial adds to the backbone, derived from the trial's seed."""
    return int(np.random.SeedSequence([seed, HEAD_STREAM]).generate_state(1)[0])


def use_deterministic_ops(deterministic: bool) -> bool:
    """Make TensorFlow's ops deterministic when asked; return whether they now are.

    Asked once, they stay deterministic for the process (TensorFlow's switch is global),
    so a later trial that did not ask is deterministic too: callers record the returned
    state, not the setting.
    """
    global _deterministic_ops
    if deterministic and not _deterministic_ops:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        _deterministic_ops = True
    return _deterministic_ops


def resolve_weights(settings: CapsweepConfig) -> str | None:
    """The weights to load: ``imagenet``, ``None`` or a file (pretrained first for ``source``)."""
    backbone = settings.backbone
    if backbone.weights != SOURCE_WEIGHTS:
        return backbone.weights
    if not source_weights_path(backbone, settings.data, settings.paths.outputs).is_file():
        # Pretraining takes a minute: refuse a count of units the backbone lacks before it.
        random_init = build_configured_backbone(backbone, None)
        capacity = settings.capacity
        units_to_unfreeze(
            random_init,
            capacity.unfreeze,
            capacity.unit,
            position=capacity.position,
            train_bn=capacity.train_bn,
        )
    return str(ensure_source_weights(backbone, settings.data, settings.paths.outputs))


def prepare_trial(settings: CapsweepConfig) -> PreparedTrial:
    """Load the data and build the model; raises before anything is recorded.

    The model is valid until the next trial of the process is prepared: that trial may
    reuse its backbone (:mod:`capsweep.train.backbone_reuse`).
    """
    require_device_for(settings.trainer.mixed_precision)
    deterministic = use_deterministic_ops(settings.trainer.deterministic)  # before pretraining
    # An image folder is decoded once into outputs/cache/images and memory-mapped after.
    images_cache = Path(settings.paths.outputs) / "cache" / "images"
    started = time.perf_counter()
    data = load_dataset(settings.data, settings.backbone.input_size, cache_dir=images_cache)
    if settings.data.num_classes is not None and settings.data.num_classes != data.num_classes:
        raise CapsweepConfigError(
            "data.num_classes",
            settings.data.num_classes,
            f"but data={settings.data.name} has {data.num_classes} classes",
            fix="leave data.num_classes unset to infer it",
        )
    data_seconds = time.perf_counter() - started
    weights = resolve_weights(settings)  # may pretrain, which draws random numbers
    started = time.perf_counter()
    seed_everything(settings.trainer.seed)  # also resets Keras' dtype policy to float32
    with dtype_policy(settings.trainer.mixed_precision):
        backbone, reused = trial_backbone(
            settings.backbone, weights, train_bn=settings.capacity.train_bn
        )
        # Building a backbone draws random numbers and reusing one draws none: the head
        # (and augmentation) layers draw from a stream of their own.
        keras.utils.set_random_seed(head_seed(settings.trainer.seed))
        transfer = build_transfer_model(
            backbone,
            preprocessing_mode(settings.backbone.name),
            data.num_classes,
            settings.capacity,
            settings.head,
            settings.data.augment,
        )
    timings = {"data_seconds": data_seconds, "build_seconds": time.perf_counter() - started}
    return PreparedTrial(data, transfer, deterministic, timings, backbone_reused=reused)


@dataclass(frozen=True)
class CachePlan:
    """How a trial gets its training inputs: images, or cached features and a suffix."""

    inputs: FitInputs | None
    tags: dict[str, str]
    # Seconds spent computing features for the cache (0 on a hit or with the cache off).
    feature_seconds: float = 0.0


def plan_inputs(prepared: PreparedTrial, settings: CapsweepConfig) -> CachePlan:
    """Train on cached features when the trial can (see :func:`cache_off_reason`).

    A miss computes and stores the features, charged to this trial as feature_seconds.
    """
    transfer = prepared.transfer
    reason = (
        cache_off_reason(transfer, settings.capacity, settings.data.augment)
        if settings.cache.enabled
        else "cache.enabled=false"
    )
    if reason is not None:
        built = architecture_of(settings, prepared.data.num_classes, "images", "")
        whole = FitInputs(transfer.model, architecture=built)
        return CachePlan(whole, {"capsweep.cache": "off", "capsweep.cache_reason": reason})
    lp_ft = settings.trainer.protocol == TrainingProtocol.lp_ft
    features = trial_features(
        transfer,
        prepared.data,
        settings.cache,
        open_store(settings.cache, settings.paths.outputs),
        capacity=settings.capacity,
        preprocessing=preprocessing_mode(settings.backbone.name),
        input_size=settings.backbone.input_size,
        also=[output_cut(transfer)] if lp_ft else [],  # the probe's, in the same pass
    )
    suffix = trainable_suffix(transfer.model, transfer.backbone, features.cut)
    tags = {
        "capsweep.cache": "on",
        "capsweep.cache_hit": str(features.hit).lower(),
        "capsweep.cache_cut": features.cut,
    }
    inputs = FitInputs(
        suffix,
        features.train,
        features.val,
        features.test,
        architecture=architecture_of(settings, prepared.data.num_classes, "features", features.cut),
    )
    return CachePlan(inputs, tags, features.seconds)


def train_trial(
    prepared: PreparedTrial,
    settings: CapsweepConfig,
    recorder: Recorder,
    *,
    listeners: Sequence[EpochListener] = (),
    on_started: Callable[[str, CapacityReport], None] | None = None,
    title: str | None = None,
) -> TrialOutcome:
    """Train a prepared trial, recording per-epoch metrics, results and artifacts.

    Args:
        prepared: What :func:`prepare_trial` built.
        settings: The trial's settings (trainer options, what to log).
        recorder: Where to record; the caller has logged the inputs and ends the run.
        listeners: Called after each epoch; one may raise StopTraining to end the trial
            early, which is then recorded as PRUNED.
        on_started: Called with the run id and the capacity report before training.
        title: The learning curve's title.
    """
    transfer = prepared.transfer
    recorder.log_text(json.dumps(transfer.report.as_dict(), indent=2), "capacity_report.json")
    recorder.log_metrics({"available_units": transfer.report.available_units})
    if on_started is not None:
        on_started(recorder.run_id, transfer.report)

    log_epoch = BufferedEpochMetrics(recorder.log_metric_steps, EPOCH_METRICS)
    started = time.perf_counter()
    with dtype_policy(settings.trainer.mixed_precision):  # the suffix model, when cached
        plan = plan_inputs(prepared, settings)
    # Cache lookups, the feature pass on a miss (also in feature_seconds), the suffix.
    inputs_seconds = time.perf_counter() - started
    recorder.set_tags(plan.tags)
    trainer, probe = settings.trainer, None
    if trainer.protocol == TrainingProtocol.lp_ft and transfer.backbone.trainable_variables:
        with dtype_policy(trainer.mixed_precision):
            probe = linear_probe(transfer, prepared.data, settings)
        recorder.log_metrics(probe.metrics())
        recorder.set_tags({"capsweep.probe_reused": str(probe.reused)})
        # The second stage: head and units together, at the units' (lower) rate.
        trainer = dataclasses.replace(trainer, learning_rate=trainer.backbone_learning_rate)
    try:
        metrics = fit_and_evaluate(
            transfer,
            prepared.data,
            trainer,
            [log_epoch, *listeners],
            inputs=plan.inputs,
        )
    except StopTraining as stop:
        log_epoch.flush()
        recorder.set_tags({"capsweep.state": "PRUNED", "capsweep.pruned_at_epoch": stop.epoch})
        log.info("Trial stopped early: %s (run %s)", stop, recorder.run_id)
        return TrialOutcome(run_id=recorder.run_id, state="PRUNED", pruned_at_epoch=stop.epoch)
    except BaseException:
        # The curve up to a failure (out of memory, a signal) is what explains it: keep it,
        # unless writing is what failed.
        with contextlib.suppress(Exception):
            log_epoch.flush()
        raise
    log_epoch.flush()
    # Step after the last epoch, so the final metrics (best-epoch weights, inference mode)
    # show as the latest val_accuracy rather than the last epoch's value.
    metrics.timings["feature_seconds"] = plan.feature_seconds
    metrics.timings["inputs_seconds"] = inputs_seconds
    metrics.timings.update(prepared.timings)
    recorder.log_metrics({**metrics.scalars(), **metrics.timings}, step=metrics.epochs_run)
    if settings.tracking.log_artifacts:
        recorder.log_text(model_summary(transfer.model), "model_summary.txt")
        figure = learning_curve(metrics.history, title=title or settings.backbone.name)
        recorder.log_figure(figure, "learning_curve.png")
    # Whether XLA compiled the steps (trainer.jit_compile=auto is Keras' choice per
    # device), and whether an earlier trial's compiled model of this architecture trained.
    recorder.set_tags(
        {
            "capsweep.state": "COMPLETE",
            "capsweep.xla": str(metrics.xla),
            "capsweep.model_reused": str(metrics.model_reused),
        }
    )
    log.info(
        "val_accuracy=%.3f train_accuracy=%.3f test_accuracy=%.3f trainable_params=%d "
        "fit_seconds=%.1f (run %s)",
        metrics.val_accuracy,
        metrics.train_accuracy,
        metrics.test_accuracy,
        metrics.trainable_params,
        metrics.fit_seconds,
        recorder.run_id,
    )
    return TrialOutcome(run_id=recorder.run_id, state="COMPLETE", metrics=metrics)


def model_summary(model: keras.Model) -> str:
    buffer = io.StringIO()
    model.summary(print_fn=lambda line, **_: buffer.write(line + "\n"), expand_nested=False)
    return buffer.getvalue()
