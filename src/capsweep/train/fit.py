"""Fit a transfer model and measure it: accuracy on every split, gap, and compute time."""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from capsweep.data import Dataset
from capsweep.data.dataset import Split
from capsweep.model.transfer import TransferModel
from capsweep.settings import TrainerConfig
from capsweep.signals import raise_if_stop_requested
from capsweep.train.compiled_models import hand_back, trained_model
from capsweep.train.inputs import (
    PREFETCH_BATCHES,
    batches,
    indexed_batches,
    without_autotuning,
)

# Called after each epoch with (epoch, logs); may raise to stop the trial (e.g. pruning).
EpochListener = Callable[[int, dict[str, float]], None]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrialMetrics:
    """What one trial measured; the names are the MLflow metric names."""

    val_accuracy: float
    train_accuracy: float
    test_accuracy: float
    overfit_gap: float
    trainable_params: int
    non_trainable_params: int
    total_params: int
    fit_seconds: float
    seconds_per_epoch: float
    samples_per_second: float
    epochs_run: int
    n_val: int
    history: dict[str, list[float]] = field(default_factory=dict)
    # Where the rest of a trial's time went (seconds): tracing (the first training
    # step), per-epoch validation, the final evaluation, compiling, computing cached
    # features, and (added by the trial) loading data and building the model.
    # Recorded as metrics, but not objectives: they vary from run to run.
    timings: dict[str, float] = field(default_factory=dict)
    # How the trained model was compiled: whether XLA compiled its steps, and whether it
    # was an earlier trial's model of the same architecture (no new tracing).
    xla: bool = False
    model_reused: bool = False

    def scalars(self) -> dict[str, float]:
        """The final metrics, without the per-epoch history, the extra timings and how the
        model was compiled."""
        left_out = ("history", "timings", "xla", "model_reused")
        return {k: float(v) for k, v in vars(self).items() if k not in left_out}


# Evaluation runs in inference mode (BatchNorm on moving statistics, no dropout), where
# the batch size changes no prediction: larger batches mean fewer, cheaper steps.
EVALUATION_BATCH_SIZE = 256

# One line per epoch goes to this logger; capsweep's Hydra config sends it to the job's
# log file only, so a sweep's console stays one line per trial.
epoch_log = logging.getLogger("capsweep.epochs")


class EpochLog(keras.callbacks.Callback):
    """Log each epoch's metrics as one line (Keras' own output may be off)."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = " - ".join(f"{key}: {float(value):.4f}" for key, value in (logs or {}).items())
        epoch_log.info("epoch %d/%d - %s", epoch + 1, self.epochs, values)


class _Listeners(keras.callbacks.Callback):
    def __init__(self, listeners: Sequence[EpochListener]) -> None:
        super().__init__()
        self.listeners = listeners

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = {key: float(value) for key, value in (logs or {}).items()}
        for listener in self.listeners:
            listener(epoch, values)


class _StopOnSignal(keras.callbacks.Callback):
    """End training at an epoch's end once SIGINT/SIGTERM arrived, even if the exception
    its handler raised was lost in C code (:func:`capsweep.signals.raise_if_stop_requested`)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        raise_if_stop_requested()


class _EpochTimer(keras.callbacks.Callback):
    """Time each epoch's training apart from its validation, with epoch-level hooks only.

    A per-step hook would make Keras wait for the device after every step (it turns off
    its asynchronous callback dispatch), stalling a GPU between steps. The first epoch
    also pays for tracing (and XLA compiling) the train step: that cost is estimated as
    how much longer it took than the median later epoch.
    """

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[float] = []
        self.validation_seconds = 0.0
        self._started = 0.0
        self._in_epoch = False

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()
        self._in_epoch = True

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._end_training()
        self._started = time.perf_counter()

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        self.validation_seconds += time.perf_counter() - self._started

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._end_training()  # an epoch without validation

    def _end_training(self) -> None:
        if self._in_epoch:
            self.epochs.append(time.perf_counter() - self._started)
            self._in_epoch = False

    @property
    def trace_seconds(self) -> float:
        if len(self.epochs) < 2:
            return 0.0
        return max(0.0, self.epochs[0] - statistics.median(self.epochs[1:]))

    @property
    def train_seconds(self) -> float:
        return sum(self.epochs) - self.trace_seconds


class _StopOnNonFiniteLoss(keras.callbacks.Callback):
    """End training after an epoch whose loss is NaN or infinite (checked per epoch, not per
    step as Keras' TerminateOnNaN does, which would stall a GPU between steps)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True


def feature_batches(
    features: Any, split: Split, batch_size: int, seed: int, *, drop_remainder: bool = False
) -> Any:
    """Batches of a split's cached ``features`` in the order :func:`batches` gives its images.

    The same seeded permutation of positions per epoch, and within a batch the same order
    (by the split's rows in its image source), so that training on features follows the
    trajectory of training on the images the features were computed from. Batches are
    gathered from the host's array, never put on a device whole.
    """
    return indexed_batches(
        features,
        np.arange(len(split)),
        np.asarray(split.row_indices),
        split.labels,
        batch_size=batch_size,
        seed=seed,
        drop_remainder=drop_remainder,
    )


@dataclass(frozen=True)
class FitInputs:
    """What a model trains and is evaluated on: images, or cached features of them.

    ``model`` takes ``train``/``val``/``test`` inputs and shares its layers with the
    transfer model (it is the transfer model itself for images). A split's inputs None:
    stream the split's images (:func:`capsweep.train.inputs.batches`). ``architecture``
    says what ``model`` is made of, from the settings that built it, so that a compiled
    model of the same architecture kept from an earlier trial can stand in for it
    (:mod:`capsweep.train.compiled_models`); ``None``: read from the model's config.
    ``reuse=False``: compile ``model`` itself and keep nothing (a model trained with its
    trainable flags changed only for this fit, as LP-FT's probe on images is).
    """

    model: keras.Model
    train: Any = None
    val: Any = None
    test: Any = None
    architecture: Hashable | None = None
    reuse: bool = True


def evaluation_batches(features: Any, split: Split) -> Any:
    """Batches of a split for ``evaluate`` (and validation in ``fit``), every row once.

    ``features`` None: the split's images, streamed (each batch read in row order, see
    :func:`capsweep.train.inputs.batches`); otherwise the features in the split's order.
    A ``tf.data`` dataset, not arrays: Keras re-slices arrays into a new dataset on every
    call, which cost a 30-epoch trial ~1.5 s of validation on 200 images; the same batches
    as a dataset cost a third of it.
    """
    import tensorflow as tf

    if features is None:
        return batches(split, batch_size=EVALUATION_BATCH_SIZE)
    labels = split.labels.astype("int64")
    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    return without_autotuning(dataset.batch(EVALUATION_BATCH_SIZE).prefetch(PREFETCH_BATCHES))


def fit_and_evaluate(
    transfer: TransferModel,
    data: Dataset,
    trainer: TrainerConfig,
    listeners: Sequence[EpochListener] = (),
    *,
    inputs: FitInputs | None = None,
) -> TrialMetrics:
    """Train ``transfer`` on ``data.train``, select on ``data.val``, and evaluate every split.

    Accuracies are measured after training in inference mode (dropout off, BatchNorm on
    moving statistics), with the best epoch's weights restored when early stopping is on;
    train_accuracy is therefore not Keras' running mean over a training epoch.

    Args:
        transfer: The model to train.
        data: The splits (their labels, and their images unless ``inputs`` says otherwise).
        trainer: Training settings.
        listeners: Called after each epoch; one may raise to stop the trial.
        inputs: Train a model that shares ``transfer``'s layers on other inputs (the
            trainable suffix on cached features); default: ``transfer.model`` on images.

    Raises:
        TrainingDiverged: the loss became NaN or infinite.
    """
    inputs = inputs or FitInputs(transfer.model)
    started = time.perf_counter()
    model, reused = trained_model(
        transfer, trainer, model=inputs.model, architecture=inputs.architecture, reuse=inputs.reuse
    )
    compile_seconds = time.perf_counter() - started
    # Under XLA every batch shape compiles anew: a short last batch would compile inside
    # the training loop, so XLA trains on whole batches only (the remainder of each
    # shuffled epoch left out). Without XLA every image is used each epoch.
    whole = bool(model.jit_compile)
    if inputs.train is None:
        train_batches = batches(
            data.train, batch_size=trainer.batch_size, seed=trainer.seed, drop_remainder=whole
        )
    else:
        train_batches = feature_batches(
            inputs.train, data.train, trainer.batch_size, trainer.seed, drop_remainder=whole
        )
    steps = len(data.train) / trainer.batch_size
    steps_per_epoch = max(1, math.floor(steps)) if whole else math.ceil(steps)
    timer = _EpochTimer()
    callbacks: list[keras.callbacks.Callback] = [
        timer,
        _StopOnSignal(),
        _StopOnNonFiniteLoss(),
        EpochLog(trainer.epochs),
    ]
    if trainer.early_stopping_patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy",
                mode="max",
                patience=trainer.early_stopping_patience,
                restore_best_weights=True,
            )
        )
    callbacks.append(_Listeners(listeners))
    started = time.perf_counter()
    history = model.fit(
        # All epochs from one iterator: a new tf.data iterator per epoch stalled some
        # epochs' first step by up to a second. Each pass reshuffles (seeded), as before.
        # Finite, so that the iterator is done when training is: tearing down an endless
        # one, mid-prefetch, took seconds.
        train_batches.repeat(trainer.epochs),
        steps_per_epoch=steps_per_epoch,
        validation_data=evaluation_batches(inputs.val, data.val),
        epochs=trainer.epochs,
        shuffle=False,  # the batches come shuffled, seeded (see capsweep.train.inputs)
        callbacks=callbacks,
        verbose=2 if trainer.verbose is None else trainer.verbose,
    ).history
    fit_wall_seconds = time.perf_counter() - started
    losses = history.get("loss", [])
    if any(not math.isfinite(loss) for loss in losses):
        raise TrainingDiverged(
            f"the loss became {losses[-1]} at epoch {len(losses)}; lower "
            + divergence_suspects(
                trainer, backbone_trains=bool(transfer.backbone.trainable_variables)
            )
        )
    started = time.perf_counter()
    accuracy = {
        name: _accuracy(model, split_inputs, split)
        for name, split_inputs, split in (
            ("train", inputs.train, data.train),
            ("val", inputs.val, data.val),
            ("test", inputs.test, data.test),
        )
    }
    evaluate_seconds = time.perf_counter() - started
    if reused:  # the trial's own model ends trained, as if it had trained itself
        hand_back(model, inputs.model)
    epochs_run = len(losses)
    report = transfer.report
    # Training steps only: tracing (the first step) and validation are timed apart.
    fit_seconds = timer.train_seconds
    timed_samples = len(data.train) * epochs_run
    return TrialMetrics(
        val_accuracy=accuracy["val"],
        train_accuracy=accuracy["train"],
        test_accuracy=accuracy["test"],
        overfit_gap=accuracy["train"] - accuracy["val"],
        trainable_params=report.trainable_params,
        non_trainable_params=report.non_trainable_params,
        total_params=report.total_params,
        fit_seconds=fit_seconds,
        seconds_per_epoch=fit_seconds / max(epochs_run, 1),
        samples_per_second=timed_samples / fit_seconds if fit_seconds else 0.0,
        epochs_run=epochs_run,
        n_val=len(data.val),
        history={key: [float(v) for v in values] for key, values in history.items()},
        timings={
            "trace_seconds": timer.trace_seconds,
            "validation_seconds": timer.validation_seconds,
            "evaluate_seconds": evaluate_seconds,
            "fit_wall_seconds": fit_wall_seconds,
            "compile_seconds": compile_seconds,
        },
        xla=bool(model.jit_compile),
        model_reused=reused,
    )


def divergence_suspects(trainer: TrainerConfig, *, backbone_trains: bool) -> str:
    """The learning rates that drove the training that diverged, as settings to lower."""
    rates = [f"trainer.learning_rate={trainer.learning_rate:g} (the head's)"]
    if backbone_trains:
        rates.append(
            f"trainer.backbone_learning_rate={trainer.backbone_learning_rate:g} "
            "(the unfrozen backbone units')"
        )
    return " or ".join(rates)


def _accuracy(model: keras.Model, features: Any, split: Split) -> float:
    if len(split) == 0:
        return float("nan")
    _, accuracy = model.evaluate(evaluation_batches(features, split), verbose=0)
    return float(accuracy)
