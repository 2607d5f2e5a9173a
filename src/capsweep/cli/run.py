"""One trial recorded as one MLflow run: the train part wired to the tracking edge."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from capsweep import tracking
from capsweep.model.capacity import CapacityReport
from capsweep.redaction import redact_url
from capsweep.settings import CapsweepConfig, as_plain_dict
from capsweep.train.fit import EpochListener
from capsweep.train.trial import TrialOutcome, prepare_trial, train_trial, trial_session


def trial_tags(settings: CapsweepConfig) -> dict[str, Any]:
    return {
        "capsweep.backbone": settings.backbone.name,
        "capsweep.unfreeze": settings.capacity.unfreeze,
        "capsweep.unit": settings.capacity.unit.name,
        "capsweep.head_depth": settings.head.depth,
    }


def loggable_config(settings: CapsweepConfig) -> dict[str, Any]:
    """The settings as plain values, with the passwords of the storage and tracking URLs hidden."""
    config = as_plain_dict(settings)
    for section, key in (("trial", "storage"), ("tracking", "uri")):
        if config[section][key]:
            config[section][key] = redact_url(config[section][key])
    return config


def run_trial(
    settings: CapsweepConfig,
    *,
    parent_run_id: str | None = None,
    listeners: Sequence[EpochListener] = (),
    extra_tags: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    on_run_created: Callable[[str], None] | None = None,
    on_started: Callable[[str, CapacityReport], None] | None = None,
) -> TrialOutcome:
    """Build, train and evaluate one capacity setting, recorded as one MLflow run.

    The settings must have passed :func:`capsweep.settings.check_settings`. Everything that
    can fail on input (data, weights, units to unfreeze) fails before the run is opened.

    Args:
        settings: The trial's checked settings.
        parent_run_id: MLflow run to nest this trial's run under (a sweep's parent run).
        listeners: Called after each epoch; one may raise StopTraining to end the trial
            early, which is then recorded as PRUNED (the run itself ends FINISHED).
        extra_tags: More tags for the run.
        run_name: The MLflow run name.
        on_run_created: Told the MLflow run id as soon as the run exists.
        on_started: Called with the MLflow run id and the capacity report once the run
            is open, before training.
    """
    with trial_session():
        prepared = prepare_trial(settings)
        config = loggable_config(settings)
        with tracking.trial_run(
            settings.tracking.uri,
            settings.tracking.experiment,
            run_name=run_name,
            tags={
                **trial_tags(settings),
                "capsweep.deterministic_ops": prepared.deterministic_ops,
                **(extra_tags or {}),
            },
            parent_run_id=parent_run_id,
            on_created=on_run_created,
        ) as run:
            run.log_params(tracking.flatten(config))
            run.log_text(yaml.safe_dump(config, sort_keys=False), "config.yaml")
            return train_trial(
                prepared,
                settings,
                run,
                listeners=listeners,
                on_started=on_started,
                title=run_name or settings.backbone.name,
            )
