"""One trial: validate the configuration, build the model, train it, record it in MLflow."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
from omegaconf import DictConfig, OmegaConf

from capsweep import tracking
from capsweep.backbones import architecture, build_backbone, check_input_size
from capsweep.capacity import CapacityReport
from capsweep.data import Dataset, check_data_config, load_dataset
from capsweep.errors import CapsweepConfigError, StopTraining, require_count
from capsweep.graph_memory import released_trial_graphs
from capsweep.heads import check_head
from capsweep.optim import make_optimizer
from capsweep.plots import close_figure, learning_curve
from capsweep.pretrain import ensure_source_weights
from capsweep.schema import CapsweepConfig
from capsweep.study import redact
from capsweep.training import EpochListener, TrialMetrics, fit_and_evaluate
from capsweep.transfer import TransferModel, build_transfer_model

log = logging.getLogger(__name__)

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class TrialOutcome:
    """How a trial ended: COMPLETE with metrics, or PRUNED at an epoch."""

    run_id: str
    state: str
    metrics: TrialMetrics | None = None
    pruned_at_epoch: int | None = None


def settings_from(cfg: DictConfig) -> CapsweepConfig:
    """Turn Hydra's composed config into the typed settings (validated by the schema)."""
    settings = OmegaConf.to_object(cfg)
    if not isinstance(settings, CapsweepConfig):
        raise TypeError(f"expected a config built on capsweep_schema, got {type(settings)}")
    return settings


def check_settings(settings: CapsweepConfig) -> None:
    """Raise on every value that can be checked before loading data or building models."""
    check_data_config(settings.data)
    architecture(settings.backbone.name)
    check_input_size(settings.backbone.name, settings.backbone.input_size)
    require_count("capacity.unfreeze", settings.capacity.unfreeze)
    head = settings.head
    check_head(head.depth, head.width, head.dropout, head.pooling)
    trainer = settings.trainer
    require_count("trainer.epochs", trainer.epochs, minimum=1)
    require_count("trainer.batch_size", trainer.batch_size, minimum=1)
    make_optimizer(trainer.optimizer, trainer.learning_rate)
    if not trainer.backbone_learning_rate > 0:
        raise CapsweepConfigError(
            "trainer.backbone_learning_rate",
            trainer.backbone_learning_rate,
            "must be positive",
            fix="e.g. 1e-4",
        )
    if settings.data.num_classes is not None:
        require_count("data.num_classes", settings.data.num_classes, minimum=2)


def resolve_weights(settings: CapsweepConfig) -> str | None:
    """The weights to load: ``imagenet``, ``None`` or a file (pretrained first for ``source``)."""
    weights = settings.backbone.weights
    if weights == "source":
        return str(ensure_source_weights(settings.backbone, settings.data, settings.paths.outputs))
    return weights


def prepare(settings: CapsweepConfig) -> tuple[Dataset, TransferModel]:
    """Load the data and build the model; raises before anything is recorded."""
    check_settings(settings)
    data = load_dataset(settings.data, settings.backbone.input_size)
    if settings.data.num_classes is not None and settings.data.num_classes != data.num_classes:
        raise CapsweepConfigError(
            "data.num_classes",
            settings.data.num_classes,
            f"but data={settings.data.name} has {data.num_classes} classes",
            fix="leave data.num_classes unset to infer it",
        )
    backbone = build_backbone(
        settings.backbone.name,
        settings.backbone.input_size,
        resolve_weights(settings),
        filters=settings.backbone.filters,
        blocks_per_stage=settings.backbone.blocks_per_stage,
    )
    transfer = build_transfer_model(
        backbone,
        architecture(settings.backbone.name).preprocessing,
        data.num_classes,
        settings.capacity,
        settings.head,
    )
    return data, transfer


def trial_tags(settings: CapsweepConfig) -> dict[str, Any]:
    return {
        "capsweep.backbone": settings.backbone.name,
        "capsweep.unfreeze": settings.capacity.unfreeze,
        "capsweep.unit": settings.capacity.unit.name,
        "capsweep.head_depth": settings.head.depth,
    }


def run_trial(
    cfg: DictConfig,
    *,
    parent_run_id: str | None = None,
    listeners: Sequence[EpochListener] = (),
    extra_tags: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    on_started: Callable[[str, CapacityReport], None] | None = None,
) -> TrialOutcome:
    """Train and evaluate the configuration ``cfg`` once, recorded as one MLflow run.

    Args:
        cfg: The composed configuration.
        parent_run_id: MLflow run to nest this trial's run under (a sweep's parent run).
        listeners: Called after each epoch; one may raise StopTraining to end the trial
            early, which is then recorded as PRUNED (the run itself ends FINISHED).
        extra_tags: More tags for the run.
        run_name: The MLflow run name.
        on_started: Called with the MLflow run id and the capacity report once the run
            is open, before training.
    """
    settings = settings_from(cfg)
    keras.backend.clear_session()  # trials in one process must not accumulate graphs
    keras.utils.set_random_seed(settings.trainer.seed)
    with released_trial_graphs():
        data, transfer = prepare(settings)
        tags = {**trial_tags(settings), **(extra_tags or {})}
        with tracking.trial_run(
            settings.tracking.uri,
            settings.tracking.experiment,
            run_name=run_name,
            tags=tags,
            parent_run_id=parent_run_id,
        ) as run:
            _log_inputs(run, cfg, transfer)
            if on_started is not None:
                on_started(run.run_id, transfer.report)

            def log_epoch(epoch: int, logs: dict[str, float]) -> None:
                run.log_metrics({k: v for k, v in logs.items() if k in EPOCH_METRICS}, step=epoch)

            try:
                metrics = fit_and_evaluate(
                    transfer, data, settings.trainer, [log_epoch, *listeners]
                )
            except StopTraining as stop:
                run.set_tags({"capsweep.state": "PRUNED", "capsweep.pruned_at_epoch": stop.epoch})
                log.info("Trial stopped early: %s (MLflow run %s)", stop, run.run_id)
                return TrialOutcome(run_id=run.run_id, state="PRUNED", pruned_at_epoch=stop.epoch)
            _log_results(run, settings, transfer, metrics, title=run_name or settings.backbone.name)
            return TrialOutcome(run_id=run.run_id, state="COMPLETE", metrics=metrics)


def _log_inputs(run: tracking.TrialRun, cfg: DictConfig, transfer: TransferModel) -> None:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    params = tracking.flatten(resolved if isinstance(resolved, dict) else {})
    if params.get("trial.storage") not in (None, "None"):
        params["trial.storage"] = redact(params["trial.storage"])
    run.log_params(params)
    run.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
    run.log_text(json.dumps(transfer.report.as_dict(), indent=2), "capacity_report.json")
    run.log_metrics({"available_units": transfer.report.available_units})


def _log_results(
    run: tracking.TrialRun,
    settings: CapsweepConfig,
    transfer: TransferModel,
    metrics: TrialMetrics,
    *,
    title: str,
) -> None:
    # Step after the last epoch, so MLflow shows these (best-epoch weights, inference
    # mode) as the latest val_accuracy rather than the last epoch's value.
    run.log_metrics(metrics.scalars(), step=metrics.epochs_run)
    if settings.tracking.log_artifacts:
        run.log_text(model_summary(transfer.model), "model_summary.txt")
        figure = learning_curve(metrics.history, title=title)
        run.log_figure(figure, "learning_curve.png")
        close_figure(figure)
    run.set_tags({"capsweep.state": "COMPLETE"})
    log.info(
        "val_accuracy=%.3f train_accuracy=%.3f test_accuracy=%.3f trainable_params=%d "
        "fit_seconds=%.1f (MLflow run %s)",
        metrics.val_accuracy,
        metrics.train_accuracy,
        metrics.test_accuracy,
        metrics.trainable_params,
        metrics.fit_seconds,
        run.run_id,
    )


def model_summary(model: keras.Model) -> str:
    buffer = io.StringIO()
    model.summary(print_fn=lambda line, **_: buffer.write(line + "\n"), expand_nested=False)
    return buffer.getvalue()
