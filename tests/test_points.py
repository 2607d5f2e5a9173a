"""hydra.sweeper.points: a sweep over listed configurations, for comparisons no product of
ranges expresses (the first, a middle and the last block, and all of them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from capsweep.errors import CapsweepConfigError
from capsweep.hydra_settings import compose_config
from capsweep.sweep.points import with_points
from capsweep.sweep.search_space import parse_search_space
from capsweep.sweep.sweep_plan import plan_sweep
from hydra_plugins.capsweep_sweeper.options import CapsweepSweeperConf
from sweep_workers import load, run, sweep_command

SURGICAL = [
    {"capacity.position": "first", "capacity.unfreeze": 1},
    {"capacity.position": "last", "capacity.unfreeze": 1},
    {"capacity.position": "first", "capacity.unfreeze": 6},
]


def test_points_become_one_choice_per_key_and_are_kept_in_order() -> None:
    space = with_points(parse_search_space({"head.depth": "0"}, require_search=False), SURGICAL)

    assert space.points == tuple(SURGICAL)
    assert space.distributions["capacity.position"].choices == ("first", "last")
    assert space.distributions["capacity.unfreeze"].choices == (1, 6)
    assert space.grid_size() == 3
    assert space.fixed == {"head.depth": "0"}


@pytest.mark.parametrize(
    ("points", "problem"),
    [
        ([{"capacity.unfreeze": 1}, {"head.depth": 0}], "every point must set the same keys"),
        ([{"capacity.unfreeze": 1}, {"capacity.unfreeze": 1}], "lists a configuration twice"),
        ([{"capacity.unfreeze": [1, 2]}], "must be a string, number, bool or null"),
        ([], "must be a list of configurations"),
        ([{"head.depth": 0}], "is also swept in hydra.sweeper.params"),
    ],
)
def test_bad_points_are_refused_naming_the_problem(points: Any, problem: str) -> None:
    space = parse_search_space({"head.depth": "choice(0, 1)"})

    with pytest.raises(CapsweepConfigError, match=problem):
        with_points(space, points)


def test_a_point_jobs_would_refuse_is_refused_before_any_study(tmp_path: Path) -> None:
    config = compose_config([f"paths.outputs={tmp_path}"], return_hydra_config=True)
    points = [*SURGICAL, {"capacity.position": 3, "capacity.unfreeze": 6}]

    options = {**vars(CapsweepSweeperConf()), "study_name": "p", "points": points, "params": {}}

    with pytest.raises(CapsweepConfigError) as raised:
        plan_sweep(options, config, [])

    assert str(raised.value).startswith(
        "capacity.position=3: with capacity.unfreeze=6 needs units 3–8, but small_resnet has 6"
    )


def test_a_sweep_over_points_trains_each_point_once_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "conf" / "sweep").mkdir(parents=True)
    (tmp_path / "conf" / "sweep" / "listed.yaml").write_text(
        "# @package _global_\nhydra:\n  sweeper:\n    study_name: listed\n    points:\n"
        + "".join(
            f"      - {{capacity.position: {p['capacity.position']}, "
            f"capacity.unfreeze: {p['capacity.unfreeze']}}}\n"
            for p in SURGICAL
        )
    )
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    command = [
        *sweep_command(tmp_path / "outputs", uri, "listed"),
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        "sweep=listed",
        "backbone.blocks_per_stage=2",  # 6 blocks, as the points assume
    ]

    result = run(command, tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    trials = load(tmp_path / "outputs", "listed").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert [t.params for t in trials] == SURGICAL


@pytest.mark.parametrize(
    ("data", "study"), [("digits", "surgical-none"), ("digits_noise", "surgical-noise")]
)
def test_the_shipped_surgical_sweep_plans_its_points_per_task(
    tmp_path: Path, data: str, study: str
) -> None:
    """Each task gets a study of its own, so running both in one outputs folder works."""
    config = compose_config(
        [f"paths.outputs={tmp_path}", "sweep=surgical", f"data={data}"], return_hydra_config=True
    )
    options = OmegaConf.to_container(config.hydra.sweeper, resolve=True)
    assert isinstance(options, dict)

    plan = plan_sweep(options, config, [])

    assert plan.study_name == study
    assert [point["capacity.position"] for point in plan.space.points] == [
        "last", "first", "middle", "last", "first"
    ]  # fmt: skip
    assert plan.nuisance is not None
    assert set(plan.nuisance.space.distributions) == {
        "trainer.backbone_learning_rate",
        "trainer.learning_rate",
    }
