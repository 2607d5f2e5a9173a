"""A tuned configuration taken over while its first driver still lives: the late driver's
results are dropped, and nothing the new driver queued or runs is touched.

Real Optuna studies on the journal file storage; the jobs' results are made, not trained.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from hydra.core.utils import JobReturn, JobStatus
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState

from capsweep.sweep import study as studies
from capsweep.sweep.nuisance import NuisancePlan
from capsweep.sweep.search_space import parse_search_space
from capsweep.sweep.tuning import (
    CANDIDATE_ATTR,
    ROLE_ATTR,
    ROUND_ATTR,
    SEARCH,
    ConfigurationTuning,
    configuration_study_name,
)

RATE = "trainer.backbone_learning_rate"
SPACE = {"capacity.unfreeze": IntDistribution(1, 1)}


def tuning(storage: optuna.storages.BaseStorage, sweep: optuna.Study) -> ConfigurationTuning:
    """A driver of the sweep's configuration capacity.unfreeze=1, on a new sweep trial."""
    plan = NuisancePlan(parse_search_space({RATE: "choice(0.001, 0.003)"}, section="nuisance"), 2)
    return ConfigurationTuning(
        storage=storage,
        sweep_study=sweep,
        sweep_trial=sweep.ask(SPACE),
        plan=plan,
        effective={RATE: CategoricalDistribution([0.001, 0.003])},
        repeats=1,
    )


def completed(val_accuracy: float) -> JobReturn:
    value = {"metrics": {"val_accuracy": val_accuracy}, "run_id": "r", "state": "FINISHED"}
    return JobReturn(status=JobStatus.COMPLETED, _return_value=value)


def test_a_late_drivers_result_is_dropped_and_the_new_drivers_work_kept(tmp_path: Path) -> None:
    storage = studies.open_storage(str(tmp_path / "study.journal"))
    sweep = optuna.create_study(storage=storage, study_name="sweep", direction="maximize")
    late = tuning(storage, sweep)
    (job, _) = late.next_jobs()  # both candidates under way with the first driver
    taker = tuning(storage, sweep)  # takes the configuration over: fails and requeues them
    queued = taker.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))

    result = late.record(job, completed(0.9))

    assert result.state == "DROPPED"
    assert taker.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)) == queued
    assert len(queued) == 2


def test_giving_back_a_taken_configuration_queues_nothing_twice(tmp_path: Path) -> None:
    storage = studies.open_storage(str(tmp_path / "study.journal"))
    sweep = optuna.create_study(storage=storage, study_name="sweep", direction="maximize")
    late = tuning(storage, sweep)
    (job, _) = late.next_jobs()
    taker = tuning(storage, sweep)

    assert late._kill(job.trial, "stopped from outside") is False

    waiting = taker.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert sorted(studies.planned_params(t)[RATE] for t in waiting) == [0.001, 0.003]


def test_a_design_its_driver_died_queueing_is_completed_by_the_next(tmp_path: Path) -> None:
    storage = studies.open_storage(str(tmp_path / "study.journal"))
    sweep = optuna.create_study(storage=storage, study_name="sweep", direction="maximize")
    name = configuration_study_name("sweep", {"capacity.unfreeze": 1})
    died = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    died.enqueue_trial(  # candidate 0 of 2 queued when its driver died
        {RATE: 0.001}, user_attrs={ROLE_ATTR: SEARCH, CANDIDATE_ATTR: 0, ROUND_ATTR: 0}
    )

    taker = tuning(storage, sweep)

    waiting = taker.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert sorted(studies.planned_params(t)[RATE] for t in waiting) == [0.001, 0.003]
