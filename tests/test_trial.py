"""One tiny trial end to end, recorded in a temporary MLflow SQLite store.

The trial (random-weight small_resnet on 16-pixel digits, 2 epochs) runs once for the
module; each test checks one thing about what it recorded.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig

EPOCHS = 2


@dataclass(frozen=True)
class Recorded:
    cfg: DictConfig
    outcome: Any
    client: Any
    run: Any
    artifacts: Path
    commit: str  # the commit checked out where the trial ran


def a_checkout(folder: Path) -> str:
    """Make ``folder`` a git checkout of one commit; return the commit's hash."""
    folder.mkdir()
    identity = ["-c", "user.name=capsweep", "-c", "user.email=tests@capsweep.invalid"]
    for command in (["init", "-q"], [*identity, "commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *command], cwd=folder, check=True, capture_output=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=folder, check=True, capture_output=True, text=True
    )
    return head.stdout.strip()


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory, compose: Callable[..., DictConfig]
) -> Recorded:
    from mlflow.tracking import MlflowClient

    from capsweep.cli.run import run_trial
    from capsweep.hydra_settings import load_settings

    outputs = tmp_path_factory.mktemp("trial_outputs")
    uri = f"sqlite:///{outputs}/mlflow.db"
    cfg = compose(
        "backbone=small_resnet",
        "backbone.weights=null",
        "backbone.input_size=16",
        "data=digits",
        "data.train_per_class=5",
        "data.val_size=50",
        f"trainer.epochs={EPOCHS}",
        "trainer.verbose=0",
        "capacity.unfreeze=1",
        "head.depth=1",
        "head.width=8",
        f"paths.outputs={outputs}",
        f"tracking.uri={uri}",
    )
    checkout = tmp_path_factory.mktemp("project") / "checkout"
    commit = a_checkout(checkout)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(checkout)  # run from a checkout whose commit is known
        outcome = run_trial(load_settings(cfg))
    client = MlflowClient(tracking_uri=uri)
    artifacts = tmp_path_factory.mktemp("downloaded")
    client.download_artifacts(outcome.run_id, "", str(artifacts))
    return Recorded(cfg, outcome, client, client.get_run(outcome.run_id), artifacts, commit)


def test_trial_run_ends_finished(recorded: Recorded) -> None:
    assert recorded.run.info.status == "FINISHED"


@pytest.mark.parametrize(
    "metric",
    [
        "val_accuracy",
        "train_accuracy",
        "overfit_gap",
        "test_accuracy",
        "trainable_params",
        "non_trainable_params",
        "total_params",
        "fit_seconds",
        "seconds_per_epoch",
        "samples_per_second",
    ],
)
def test_trial_records_metric(recorded: Recorded, metric: str) -> None:
    value = recorded.run.data.metrics[metric]

    assert math.isfinite(value)


def test_overfit_gap_is_train_minus_val_accuracy(recorded: Recorded) -> None:
    metrics = recorded.run.data.metrics

    assert metrics["overfit_gap"] == pytest.approx(
        metrics["train_accuracy"] - metrics["val_accuracy"], abs=1e-9
    )


def test_accuracies_are_fractions(recorded: Recorded) -> None:
    metrics = recorded.run.data.metrics

    for name in ("val_accuracy", "train_accuracy", "test_accuracy"):
        assert 0.0 <= metrics[name] <= 1.0, name


def test_recorded_parameter_counts_match_a_fresh_build_of_the_same_settings(
    recorded: Recorded,
) -> None:
    from capsweep.hydra_settings import settings_from
    from capsweep.model.backbones import build_backbone, preprocessing_mode
    from capsweep.model.transfer import build_transfer_model

    settings = settings_from(recorded.cfg)
    backbone = build_backbone(settings.backbone.name, settings.backbone.input_size, None)
    model = build_transfer_model(
        backbone,
        preprocessing_mode(settings.backbone.name),
        len(settings.data.target_classes),
        settings.capacity,
        settings.head,
    ).model
    trainable = sum(math.prod(weight.shape) for weight in model.trainable_weights)

    metrics = recorded.run.data.metrics
    assert metrics["trainable_params"] == trainable
    assert metrics["total_params"] == model.count_params()
    assert metrics["non_trainable_params"] == model.count_params() - trainable


def test_capacity_report_artifact_agrees_with_the_logged_metrics(recorded: Recorded) -> None:
    report = json.loads((recorded.artifacts / "capacity_report.json").read_text())

    metrics = recorded.run.data.metrics
    for name in ("trainable_params", "non_trainable_params", "total_params"):
        assert report[name] == metrics[name], name


def test_val_accuracy_history_has_one_point_per_epoch(recorded: Recorded) -> None:
    history = recorded.client.get_metric_history(recorded.outcome.run_id, "val_accuracy")
    per_epoch = sorted(point.step for point in history if point.step < EPOCHS)

    assert per_epoch == list(range(EPOCHS))


def test_final_val_accuracy_is_the_latest_point_of_its_history(recorded: Recorded) -> None:
    history = recorded.client.get_metric_history(recorded.outcome.run_id, "val_accuracy")
    latest = max(history, key=lambda point: point.step)

    assert latest.value == recorded.run.data.metrics["val_accuracy"]
    assert latest.value == pytest.approx(recorded.outcome.metrics.val_accuracy)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("capsweep.backbone", "small_resnet"),
        ("capsweep.unfreeze", "1"),
        ("capsweep.unit", "block"),
        ("capsweep.head_depth", "1"),
    ],
)
def test_trial_tags_name_its_capacity_setting(recorded: Recorded, tag: str, expected: str) -> None:
    assert recorded.run.data.tags[tag] == expected


def test_trial_tags_the_host_it_ran_on(recorded: Recorded) -> None:
    assert recorded.run.data.tags["capsweep.host"] == socket.gethostname()


def test_trial_tags_the_commit_checked_out_where_it_ran(recorded: Recorded) -> None:
    assert recorded.run.data.tags["capsweep.git_commit"] == recorded.commit


@pytest.mark.parametrize(
    "artifact",
    ["config.yaml", "capacity_report.json", "model_summary.txt", "learning_curve.png"],
)
def test_trial_logs_artifact(recorded: Recorded, artifact: str) -> None:
    path = recorded.artifacts / artifact

    assert path.stat().st_size > 0


def test_logged_config_is_the_resolved_composed_config(recorded: Recorded) -> None:
    from omegaconf import OmegaConf

    logged = OmegaConf.load(recorded.artifacts / "config.yaml")

    assert OmegaConf.to_container(logged) == OmegaConf.to_container(
        recorded.cfg, resolve=True, enum_to_str=True
    )


def test_learning_curve_is_a_png(recorded: Recorded) -> None:
    assert (recorded.artifacts / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trial_keeps_its_store_and_artifacts_in_the_outputs_folder(recorded: Recorded) -> None:
    outputs = Path(recorded.cfg.paths.outputs)

    assert (outputs / "mlflow.db").is_file()
    assert Path(recorded.run.info.artifact_uri.removeprefix("file://")).is_relative_to(outputs)


# failures


@pytest.mark.parametrize(
    ("unfreeze", "suspects"),
    [
        ("0", ["trainer.learning_rate=1e+30 (the head's)"]),
        (
            "1",
            [
                "trainer.learning_rate=1e+30 (the head's)",
                "trainer.backbone_learning_rate=1e+30 (the unfrozen backbone units')",
            ],
        ),
    ],
)
def test_a_trial_whose_loss_diverges_raises_naming_the_rates_in_play_and_ends_failed(
    tiny_config: Callable[..., DictConfig],
    tracking_uri: str,
    runs_in: Callable[[str], list[Any]],
    unfreeze: str,
    suspects: list[str],
) -> None:
    from capsweep.cli.run import run_trial
    from capsweep.hydra_settings import load_settings
    from capsweep.train.fit import TrainingDiverged

    # Steps of 1e30 overflow the weights to inf within an epoch: the loss becomes NaN.
    cfg = tiny_config(
        "trainer.optimizer=sgd",
        "trainer.learning_rate=1e30",
        "trainer.backbone_learning_rate=1e30",
        f"capacity.unfreeze={unfreeze}",
    )

    with pytest.raises(TrainingDiverged) as raised:
        run_trial(load_settings(cfg))

    assert str(raised.value).endswith("; lower " + " or ".join(suspects))
    assert [run.info.status for run in runs_in(tracking_uri)] == ["FAILED"]
