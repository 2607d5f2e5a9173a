"""A sweep that tunes the backbone's learning rate inside each configuration, for real:
``capsweep -m`` in a subprocess, a journal-file study, MLflow on SQLite.

Each configuration's candidates train once on the base seeds, the best two once more on
the next seeds, the best mean of two runs is confirmed on fresh seeds, and the
configuration's score is the mean of its confirmations alone.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from capsweep.sweep import study as studies
from capsweep.sweep import tuning
from sweep_workers import children, load, run, sweep_command

RATE = "trainer.backbone_learning_rate"
CANDIDATES = 2
REPEATS = 2


def tuned_sweep_file(folder: Path, name: str, *, budget: int = CANDIDATES) -> Path:
    """A sweep file of the user's own (in ``folder/sweep``, found with hydra.searchpath)."""
    (folder / "sweep").mkdir(parents=True, exist_ok=True)
    (folder / "sweep" / f"{name}.yaml").write_text(
        f"""# @package _global_
hydra:
  sweeper:
    study_name: {name}
    sampler: grid
    repeats: {REPEATS}
    nuisance_trials: {budget}
    nuisance_rescore: 2
    params:
      capacity.unfreeze: choice(0, 1)
      head.depth: "0"
    nuisance:
      {RATE}: tag(log, interval(1e-4, 1e-2))
"""
    )
    return folder


def tuned_command(cwd: Path, uri: str, name: str, *extra: str) -> list[str]:
    return [
        *sweep_command(cwd / "outputs", uri, name, tuned=True),
        f"hydra.searchpath=[file://{cwd / 'conf'}]",
        f"sweep={name}",
        # After the helpers' repeats=1, which the sweep file would lose to.
        f"hydra.sweeper.repeats={REPEATS}",
        *extra,
    ]


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str) -> dict[str, Any]:
    """A finished tuned sweep: unfreeze 0 and 1, 2 candidates, 2 confirmations each."""
    cwd = tmp_path_factory.mktemp("tuned")
    tuned_sweep_file(cwd / "conf", "tuned")
    command = tuned_command(cwd, mlflow_uri, "tuned")
    result = run(command, cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return {"cwd": cwd, "outputs": cwd / "outputs", "command": command, "result": result}


def configuration_study(outputs: Path, name: str, unfreeze: int) -> optuna.Study:
    sweep = load(outputs, name)
    (trial,) = [t for t in sweep.get_trials() if t.params["capacity.unfreeze"] == unfreeze]
    storage = studies.open_storage(str(outputs / "optuna" / f"{name}.journal"))
    return optuna.load_study(study_name=trial.user_attrs[tuning.STUDY_ATTR], storage=storage)


def role(trials: list[FrozenTrial], name: str) -> list[FrozenTrial]:
    return [t for t in trials if t.user_attrs.get(tuning.ROLE_ATTR) == name]


def seeds(trial: FrozenTrial) -> tuple[int, int]:
    return (
        trial.user_attrs[studies.SEED_ATTR.format(repeat=0)],
        trial.user_attrs[studies.SPLIT_SEED_ATTR.format(repeat=0)],
    )


def rounds(trials: list[FrozenTrial], number: int) -> list[FrozenTrial]:
    return [t for t in role(trials, tuning.SEARCH) if t.user_attrs[tuning.ROUND_ATTR] == number]


def best_by_mean(trials: list[FrozenTrial]) -> float:
    """The rate whose two runs have the highest mean val_accuracy."""
    runs: dict[float, list[float]] = {}
    for trial in role(trials, tuning.SEARCH):
        runs.setdefault(trial.params[RATE], []).append(trial.value)
    return max(runs, key=lambda rate: statistics.fmean(runs[rate]))


def test_each_candidate_trains_once_on_the_base_seeds(tuned: dict[str, Any]) -> None:
    trials = configuration_study(tuned["outputs"], "tuned", 1).get_trials()

    first = rounds(trials, 0)
    assert [t.state for t in first] == [TrialState.COMPLETE] * CANDIDATES
    assert len({t.params[RATE] for t in first}) == CANDIDATES
    assert {seeds(t) for t in first} == {(0, 0)}


def test_the_best_two_candidates_train_again_on_the_next_seeds(tuned: dict[str, Any]) -> None:
    trials = configuration_study(tuned["outputs"], "tuned", 1).get_trials()

    second = rounds(trials, 1)
    assert [t.state for t in second] == [TrialState.COMPLETE] * 2
    assert {t.params[RATE] for t in second} == {t.params[RATE] for t in rounds(trials, 0)}
    assert {seeds(t) for t in second} == {(1, 1)}


def test_the_best_mean_of_two_runs_is_confirmed_on_fresh_seeds(tuned: dict[str, Any]) -> None:
    trials = configuration_study(tuned["outputs"], "tuned", 1).get_trials()

    confirm = role(trials, tuning.CONFIRM)
    assert [t.state for t in confirm] == [TrialState.COMPLETE] * REPEATS
    assert {t.params[RATE] for t in confirm} == {best_by_mean(trials)}
    assert sorted(seeds(t) for t in confirm) == [(2, 2), (3, 3)]


def test_a_configurations_score_is_the_mean_of_its_confirmations_alone(
    tuned: dict[str, Any],
) -> None:
    outputs = tuned["outputs"]
    trials = configuration_study(outputs, "tuned", 1).get_trials()
    (sweep_trial,) = [
        t for t in load(outputs, "tuned").get_trials() if t.params == {"capacity.unfreeze": 1}
    ]

    confirmations = [t.value for t in role(trials, tuning.CONFIRM)]
    assert sweep_trial.value == pytest.approx(statistics.fmean(confirmations))
    recorded = [
        sweep_trial.user_attrs[studies.METRICS_ATTR.format(repeat=r)]["val_accuracy"]
        for r in range(REPEATS)
    ]
    assert sorted(recorded) == sorted(confirmations)
    chosen = sweep_trial.user_attrs[tuning.CHOSEN_ATTR]
    assert chosen == {RATE: best_by_mean(trials)}
    picked = [t for t in role(trials, tuning.SEARCH) if t.params[RATE] == chosen[RATE]]
    assert sweep_trial.user_attrs[tuning.SELECTION_ATTR] == {
        "trials": [t.number for t in picked],
        "val_accuracy": statistics.fmean(t.value for t in picked),
        "runs": [t.value for t in picked],
    }


def test_a_configuration_where_the_rate_has_no_effect_tries_no_candidate(
    tuned: dict[str, Any],
) -> None:
    trials = configuration_study(tuned["outputs"], "tuned", 0).get_trials()

    assert role(trials, tuning.SEARCH) == []
    confirm = role(trials, tuning.CONFIRM)
    assert [(t.state, t.params) for t in confirm] == [(TrialState.COMPLETE, {})] * REPEATS


def test_each_job_is_one_mlflow_run_tagged_with_its_part_in_the_tuning(
    tuned: dict[str, Any], mlflow_uri: str
) -> None:
    kids = children(mlflow_uri, "tuned")

    parts = sorted(
        (
            r.data.tags["capsweep.param.capacity.unfreeze"],
            r.data.tags["capsweep.tuning"],
            r.data.tags["capsweep.study"],
        )
        for r in kids
    )
    assert parts == sorted(
        [("0", "confirm", "tuned")] * REPEATS
        + [("1", "search", "tuned")] * (CANDIDATES + 2)
        + [("1", "confirm", "tuned")] * REPEATS
    )
    (unfrozen,) = [
        t for t in load(tuned["outputs"], "tuned").get_trials() if t.params["capacity.unfreeze"]
    ]
    confirm_rates = {
        float(r.data.params[RATE])
        for r in kids
        if r.data.tags["capsweep.tuning"] == "confirm"
        and r.data.tags["capsweep.param.capacity.unfreeze"] == "1"
    }
    assert confirm_rates == {unfrozen.user_attrs[tuning.CHOSEN_ATTR][RATE]}


def test_the_report_draws_the_isolation_and_axis_plots(tuned: dict[str, Any]) -> None:
    (report,) = (tuned["outputs"] / "multirun").glob("*/*/report")

    assert {p.name for p in report.iterdir()} == {
        "trials.csv",
        "recommendation.json",
        "unfinished.csv",
        "pareto.png",
        "isolation.png",
        f"axis_{RATE}.png",
    }


def test_rerunning_a_finished_tuned_sweep_trains_nothing_more(
    tuned: dict[str, Any], mlflow_uri: str
) -> None:
    before = len(children(mlflow_uri, "tuned"))

    result = run(tuned["command"], tuned["cwd"])

    assert result.returncode == 0, result.stderr[-3000:]
    assert len(children(mlflow_uri, "tuned")) == before


def test_resuming_with_another_budget_is_refused_before_training(
    tuned: dict[str, Any], mlflow_uri: str
) -> None:
    before = len(children(mlflow_uri, "tuned"))
    tuned_sweep_file(tuned["cwd"] / "conf", "tuned", budget=CANDIDATES + 1)
    try:
        result = run(tuned["command"], tuned["cwd"])
    finally:
        tuned_sweep_file(tuned["cwd"] / "conf", "tuned")

    assert result.returncode != 0
    assert "configurations tuned with another nuisance space or budget" in result.stderr
    assert len(children(mlflow_uri, "tuned")) == before
