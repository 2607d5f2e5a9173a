"""Fit a transfer model and measure it: accuracy on every split, gap, and compute time."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras

from capsweep.data import Dataset
from capsweep.model.optimizers import SplitLearningRate, make_optimizer
from capsweep.model.transfer import TransferModel
from capsweep.settings import TrainerConfig

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

    def scalars(self) -> dict[str, float]:
        """The final metrics, without the per-epoch history."""
        return {k: float(v) for k, v in vars(self).items() if k != "history"}


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


def compile_model(transfer: TransferModel, trainer: TrainerConfig) -> None:
    """Compile with the head's learning rate, and a lower one for unfrozen backbone layers."""
    head = make_optimizer(trainer.optimizer, trainer.learning_rate)
    backbone_paths = [variable.path for variable in transfer.backbone.trainable_variables]
    optimizer: keras.optimizers.Optimizer = head
    if backbone_paths:
        optimizer = SplitLearningRate(
            head, make_optimizer(trainer.optimizer, trainer.backbone_learning_rate), backbone_paths
        )
    transfer.model.compile(
        optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )


def fit_and_evaluate(
    transfer: TransferModel,
    data: Dataset,
    trainer: TrainerConfig,
    listeners: Sequence[EpochListener] = (),
) -> TrialMetrics:
    """Train ``transfer`` on ``data.train``, select on ``data.val``, and evaluate every split.

    Accuracies are measured after training in inference mode (dropout off, BatchNorm on
    moving statistics), with the best epoch's weights restored when early stopping is on;
    train_accuracy is therefore not Keras' running mean over a training epoch.

    Raises:
        TrainingDiverged: the loss became NaN or infinite.
    """
    compile_model(transfer, trainer)
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.TerminateOnNaN(),
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
    history = transfer.model.fit(
        data.train.images,
        data.train.labels,
        validation_data=(data.val.images, data.val.labels),
        # Inference mode: the batch size changes no prediction, only how many steps.
        validation_batch_size=EVALUATION_BATCH_SIZE,
        epochs=trainer.epochs,
        batch_size=trainer.batch_size,
        callbacks=callbacks,
        verbose=2 if trainer.verbose is None else trainer.verbose,
    ).history
    fit_seconds = time.perf_counter() - started
    losses = history.get("loss", [])
    if any(not math.isfinite(loss) for loss in losses):
        raise TrainingDiverged(
            f"the loss became {losses[-1]} at epoch {len(losses)}; lower "
            f"trainer.learning_rate={trainer.learning_rate}"
        )
    accuracy = {
        name: _accuracy(transfer.model, split.images, split.labels, EVALUATION_BATCH_SIZE)
        for name, split in (("train", data.train), ("val", data.val), ("test", data.test))
    }
    epochs_run = len(losses)
    report = transfer.report
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
        samples_per_second=len(data.train) * epochs_run / fit_seconds if fit_seconds else 0.0,
        epochs_run=epochs_run,
        n_val=len(data.val),
        history={key: [float(v) for v in values] for key, values in history.items()},
    )


def _accuracy(model: keras.Model, images: Any, labels: Any, batch_size: int) -> float:
    if len(labels) == 0:
        return float("nan")
    _, accuracy = model.evaluate(images, labels, batch_size=batch_size, verbose=0)
    return float(accuracy)
