"""One configuration's nuisance tuning: its candidates, the pick, and its confirmations.

Every configuration a sweep compares gets an Optuna study of its own in the sweep's
storage (``<sweep study>/<its params>``). Its candidates — the nuisance values of
:func:`capsweep.sweep.nuisance.design` — are queued there when the configuration is first
taken up, each trained once with the base seeds; the best by val_accuracy is then trained
``repeats`` times with fresh seeds and splits, and the configuration's score is the mean
of those confirmations (the selection run is biased upward, the winner's curse, and does
not enter it). Pruning judges candidates against the other candidates of the same
configuration only.

The sweep's trial for the configuration is its lease: the worker that holds it RUNNING
drives the configuration, and a worker that takes it over (its driver died; the trial was
recovered and queued again) finds the state in the configuration's study — candidates
done, confirmations left — and fails and queues again the trials the dead driver left
RUNNING. Nothing done is trained twice; a killed job's trial is queued again with the
same values. Never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from hydra.core.utils import JobReturn
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from capsweep import tracking
from capsweep.redaction import redact_text
from capsweep.signals import JobTerminated
from capsweep.sweep import study as studies
from capsweep.sweep.nuisance import NuisancePlan, design
from capsweep.sweep.pruning import study_pruner
from capsweep.sweep.search_space import override_value

log = logging.getLogger(__name__)

# On a configuration's trials: a candidate (search) or a confirmation (confirm, with its repeat).
ROLE_ATTR = "capsweep.role"
SEARCH, CONFIRM = "search", "confirm"
REPEAT_ATTR = "capsweep.confirm_repeat"
CANDIDATE_ATTR = "capsweep.candidate"  # a candidate's place in the configuration's design
ROUND_ATTR = "capsweep.round"  # 0: every candidate's first run; 1: the best ones' second
KILLED_ATTR = "capsweep.killed"  # why a trial was stopped from outside (it is queued again)
# On a configuration's study: which configuration of which sweep it tunes.
CONFIGURATION_ATTR = "capsweep.configuration"
# On the sweep's trial, once its configuration is confirmed.
STUDY_ATTR = "capsweep.nuisance.study"
CHOSEN_ATTR = "capsweep.nuisance.chosen"
TRIED_ATTR = "capsweep.nuisance.tried"
CANDIDATES_ATTR = "capsweep.nuisance.candidates"
SELECTION_ATTR = "capsweep.nuisance.selection"
ERROR_ATTR = "capsweep.error.0"
VALUE = "val_accuracy"  # what candidates are compared on (and what pruning reads)


def configuration_study_name(sweep_study: str, params: Mapping[str, Any]) -> str:
    """``capacity/capacity.unfreeze=1,head.depth=0``: a configuration's own study."""
    written = ",".join(f"{key}={override_value(params[key])}" for key in sorted(params))
    return f"{sweep_study}/{written}"


@dataclass
class TuningJob:
    """One job a configuration's tuning asks for: a candidate or a confirmation."""

    tuning: ConfigurationTuning
    trial: optuna.Trial
    role: str
    repeat: int  # the confirmation's repeat; 0 for a candidate
    values: dict[str, Any]  # the nuisance values it trains with
    round: int = 0  # a candidate's: 0 for its first run, 1 for its second

    @property
    def seed_index(self) -> int:
        """Which seeds it trains on: a candidate's round, a confirmation's after them all."""
        if self.role == SEARCH:
            return self.round
        return self.tuning.confirmation_offset + self.repeat

    @property
    def job_name(self) -> str:
        """Its folder: ``trial-3-candidate-1`` or ``trial-3-confirm-0``."""
        index = self.trial.number if self.role == SEARCH else self.repeat
        return f"trial-{self.tuning.sweep_trial.number}-{self.role}-{index}"


@dataclass
class JobResult:
    """How one tuning job ended, for the sweep's console line."""

    job: TuningJob
    state: str  # COMPLETE, PRUNED, FAIL, KILLED (queued again) or DROPPED (taken over)
    val_accuracy: float | None = None
    seconds: float | None = None
    detail: str = ""


@dataclass
class ConfigurationTuning:
    """Drive one configuration's candidates and confirmations, reading its state from its study.

    Args:
        storage: The sweep's Optuna storage.
        sweep_study: The sweep's study.
        sweep_trial: The sweep's trial for this configuration (the lease).
        plan: The nuisance space, budget and sampler.
        effective: The nuisance distributions that matter in this configuration.
        repeats: Confirmations of the chosen candidate.
        seed: The sweep's sampler seed (the design is derived from it and the params).
        pruner: Judges candidates against this configuration's other candidates.
        secrets: URLs whose passwords are hidden from the errors it records.
    """

    storage: BaseStorage
    sweep_study: optuna.Study
    sweep_trial: optuna.Trial
    plan: NuisancePlan
    effective: dict[str, BaseDistribution]
    repeats: int
    seed: int | None = None
    pruner: optuna.pruners.BasePruner | None = None
    tracking_uri: str = ""
    secrets: Sequence[str] = ()
    failure: str | None = None
    study: optuna.Study = field(init=False)

    def __post_init__(self) -> None:
        self.name = configuration_study_name(self.sweep_study.study_name, self.params)
        self.study, created = self._open()
        if created:
            self._queue_design()
        else:
            self._take_over()

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.sweep_trial.params)

    def _open(self) -> tuple[optuna.Study, bool]:
        load: dict[str, Any] = {
            "sampler": optuna.samplers.RandomSampler(),  # every trial is queued: never sampled
            "pruner": study_pruner(self.pruner),
        }
        try:
            study = optuna.create_study(
                storage=self.storage, study_name=self.name, direction="maximize", **load
            )
        except optuna.exceptions.DuplicatedStudyError:
            return optuna.load_study(study_name=self.name, storage=self.storage, **load), False
        study.set_user_attr(
            CONFIGURATION_ATTR,
            {
                "sweep_study": self.sweep_study.study_name,
                "trial": self.sweep_trial.number,
                "params": self.params,
                "effective": sorted(self.effective),
            },
        )
        return study, True

    def _queue_design(self, present: set[int] | None = None) -> None:
        """Queue every candidate of the configuration's design, in order, but those whose
        index is ``present`` already (a driver that died while queueing queued those)."""
        for index, values in enumerate(self._design()):
            if present is not None and index in present:
                continue
            attrs = {ROLE_ATTR: SEARCH, CANDIDATE_ATTR: index, ROUND_ATTR: 0}
            self.study.enqueue_trial(values, user_attrs=attrs)

    def _design(self) -> list[dict[str, Any]]:
        if not self.effective:
            return []
        return design(self.plan, self.effective, seed=self.seed, params=self.params)

    def _take_over(self) -> None:
        """Fail and queue again what a dead driver left RUNNING; queue a design cut short."""
        trials = self.study.get_trials(deepcopy=False)
        for trial in trials:
            if trial.state == TrialState.RUNNING:
                self._kill(trial, "its driver died (the configuration was taken over)")
        # The first driver may have died before queueing the whole design.
        first = [t for t in trials if t.user_attrs.get(ROLE_ATTR) == SEARCH and _round(t) == 0]
        if all(CANDIDATE_ATTR in t.user_attrs for t in first):
            self._queue_design(present={int(t.user_attrs[CANDIDATE_ATTR]) for t in first})

    def _kill(self, trial: FrozenTrial | optuna.Trial, reason: str) -> bool:
        """Fail ``trial`` as stopped from outside, its MLflow run ended KILLED; queue its
        values again. False: lost too often, not queued."""
        trials = self.study.get_trials(deepcopy=False)
        frozen = trials[trial.number]
        if frozen.state.is_finished():  # another driver already failed (and queued) it
            return False
        attrs = {
            key: frozen.user_attrs[key]
            for key in (ROLE_ATTR, REPEAT_ATTR, CANDIDATE_ATTR, ROUND_ATTR)
            if key in frozen.user_attrs
        }
        run_id = frozen.user_attrs.get(studies.RUN_ID_ATTR.format(repeat=0))
        if run_id and self.tracking_uri:  # its job could not end its own run
            tracking.end_if_running(self.tracking_uri, str(run_id), "KILLED")
        generation = studies.requeue_generation(trials, trial.number)
        queued = generation < studies.MAX_REQUEUES
        handle = self._handle(trial)
        with contextlib.suppress(UpdateFinishedTrialError):
            if queued:
                attrs[studies.REQUEUED_ATTR] = trial.number
                self.study.enqueue_trial(frozen.params, user_attrs=attrs)
                handle.set_user_attr(KILLED_ATTR, reason)
            else:
                reason += f"; lost {generation + 1} times, not queued again"
            handle.set_user_attr(ERROR_ATTR, reason)
        studies.tell(self.study, trial.number, state=TrialState.FAIL)
        return queued

    def _handle(self, trial: FrozenTrial | optuna.Trial) -> optuna.Trial:
        """An ``optuna.Trial`` to write to, for a trial this process may not have asked."""
        if isinstance(trial, optuna.Trial):
            return trial
        study_id = self.storage.get_study_id_from_name(self.name)
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        return optuna.Trial(self.study, trial_id)

    def next_jobs(self) -> list[TuningJob]:
        """The jobs to launch now: queued candidates, or the chosen one's confirmations.

        Empty when the configuration is confirmed or has failed (:attr:`failure`).
        """
        if self.failure is not None:
            return []
        trials = self.study.get_trials(deepcopy=False)
        search = [t for t in trials if t.user_attrs.get(ROLE_ATTR) == SEARCH]
        if any(t.state == TrialState.WAITING for t in search):
            return [self._ask(SEARCH) for t in search if t.state == TrialState.WAITING]
        if self._queue_second_runs(search):
            return self.next_jobs()
        best = self._best(search)
        if best is None:
            reasons = "; ".join(sorted({_reason(t) for t in search}))
            self.failure = f"no candidate completed ({reasons})"
            return []
        confirm = [t for t in trials if t.user_attrs.get(ROLE_ATTR) == CONFIRM]
        for trial in confirm:
            if trial.state == TrialState.FAIL and KILLED_ATTR not in trial.user_attrs:
                self.failure = f"confirmation {trial.user_attrs.get(REPEAT_ATTR)}: {_reason(trial)}"
                return []
        present = {
            int(t.user_attrs[REPEAT_ATTR])
            for t in confirm
            if t.state in (TrialState.COMPLETE, TrialState.WAITING)
        }
        for repeat in range(self.repeats):
            if repeat not in present:
                self.study.enqueue_trial(
                    best.params, user_attrs={ROLE_ATTR: CONFIRM, REPEAT_ATTR: repeat}
                )
        waiting = sum(
            1
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
            if t.user_attrs.get(ROLE_ATTR) == CONFIRM
        )
        return [self._ask(CONFIRM) for _ in range(waiting)]

    def _ask(self, role: str) -> TuningJob:
        # Pops the oldest queued trial; its queued values become its params.
        trial = self.study.ask(fixed_distributions=self.effective)
        trial.set_user_attr(studies.OWNER_ATTR, studies.owner_tag())
        attrs = trial.user_attrs
        if attrs.get(ROLE_ATTR) != role:  # queued in another order than asked: say so
            raise RuntimeError(
                f"{self.name}: trial {trial.number} is a {attrs.get(ROLE_ATTR)}, not a {role}"
            )
        repeat = int(attrs.get(REPEAT_ATTR, 0))
        round_ = int(attrs.get(ROUND_ATTR, 0))
        return TuningJob(self, trial, role, repeat, dict(trial.params), round_)

    def _queue_second_runs(self, search: Sequence[FrozenTrial]) -> bool:
        """Queue a second run, on other seeds, of the best ``plan.rescore`` candidates once
        every first run is done (once only); return whether any was queued."""
        if self.plan.rescore < 2 or any(_round(t) == 1 for t in search):
            return False
        first = [t for t in search if _round(t) == 0 and t.state == TrialState.COMPLETE]
        if len(first) < 2:
            return False
        ranked = sorted(first, key=lambda t: (-float(t.value or 0.0), t.number))
        for trial in ranked[: self.plan.rescore]:
            attrs = {
                ROLE_ATTR: SEARCH,
                CANDIDATE_ATTR: trial.user_attrs.get(CANDIDATE_ATTR),
                ROUND_ATTR: 1,
            }
            self.study.enqueue_trial(trial.params, user_attrs=attrs)
        return True

    def _best(self, search: Sequence[FrozenTrial]) -> FrozenTrial | None:
        """The candidate picked: the highest mean val_accuracy over its runs, among those run
        the most often (the rescored ones), the earliest on a tie; with nothing to tune, a
        stand-in with no values of its own (the base values are trained)."""
        if not self.effective:
            return optuna.trial.create_trial(value=0.0, params={}, distributions={})
        runs = candidate_runs(search)
        if not runs:
            return None
        most = max(len(values) for values, _, _ in runs.values())
        eligible = [item for item in runs.values() if len(item[0]) == most]
        best = max(eligible, key=lambda item: (statistics.fmean(item[0]), -item[1].number))
        return best[1]

    def record(self, job: TuningJob, result: JobReturn) -> JobResult:
        """Record how ``job`` ended on its trial; a killed job's trial is queued again."""
        try:
            outcome = result.return_value  # re-raises the job's exception if it failed
        except JobTerminated as error:
            queued = self._kill(job.trial, f"stopped from outside ({type(error).__name__})")
            state = "KILLED" if queued else "FAIL"
            return JobResult(job, state, detail="queued again" if queued else str(error)[:200])
        except Exception as error:
            reason = redact_text(str(error), *self.secrets)
            with contextlib.suppress(UpdateFinishedTrialError):
                job.trial.set_user_attr(ERROR_ATTR, reason[:1000])
            studies.tell(self.study, job.trial, state=TrialState.FAIL)
            return JobResult(job, "FAIL", detail=(reason.splitlines() or [""])[0][:200])
        metrics = dict(outcome["metrics"])
        key = studies.METRICS_ATTR.format(repeat=0)
        seconds = float(outcome.get("seconds") or 0.0)
        try:
            job.trial.set_user_attr(studies.RUN_ID_ATTR.format(repeat=0), outcome["run_id"])
        except UpdateFinishedTrialError:  # failed by a driver that took the configuration over
            return JobResult(job, "DROPPED", seconds=seconds, detail="taken over meanwhile")
        if outcome["state"] == "PRUNED":
            studies.tell(self.study, job.trial, state=TrialState.PRUNED)
            epoch = outcome.get("pruned_at_epoch")
            return JobResult(job, "PRUNED", seconds=seconds, detail=f"at epoch {epoch}")
        job.trial.set_user_attr(key, metrics)
        value = float(metrics[VALUE])
        studies.tell(self.study, job.trial, values=[value])
        return JobResult(job, "COMPLETE", value, seconds)

    def give_back(self, error: BaseException) -> None:
        """Queue again the trials this driver asked and can no longer record."""
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self._kill(trial, f"the driver stopped ({type(error).__name__})")

    def confirmed(self) -> dict[str, Any] | None:
        """The configuration's outcome once every confirmation completed, else ``None``.

        Returns:
            ``metrics`` (one dict per confirmation, by repeat), ``run_ids``, ``seeds``
            and the user attributes that describe the tuning (chosen values, candidates
            tried, each candidate's result, the selection run).
        """
        trials = self.study.get_trials(deepcopy=False)
        confirm = {
            int(t.user_attrs[REPEAT_ATTR]): t
            for t in trials
            if t.user_attrs.get(ROLE_ATTR) == CONFIRM and t.state == TrialState.COMPLETE
        }
        if self.failure is not None or sorted(confirm) != list(range(self.repeats)):
            return None
        search = [t for t in trials if t.user_attrs.get(ROLE_ATTR) == SEARCH]
        best = self._best(search)
        tried = [t for t in search if t.state.is_finished() and KILLED_ATTR not in t.user_attrs]
        chosen = candidate_runs(search).get(_candidate_key(best)) if best and search else None
        selection = (
            None
            if chosen is None
            else {"trials": chosen[2], VALUE: statistics.fmean(chosen[0]), "runs": chosen[0]}
        )
        return {
            "confirmations": [confirm[repeat] for repeat in range(self.repeats)],
            "attrs": {
                STUDY_ATTR: self.name,
                CHOSEN_ATTR: dict(confirm[0].params),
                TRIED_ATTR: len({_candidate_key(t) for t in tried}),
                CANDIDATES_ATTR: [_candidate(t) for t in tried],
                SELECTION_ATTR: selection,
            },
        }

    @property
    def confirmation_offset(self) -> int:
        """The seed index of the first confirmation: after the candidates' runs' seeds."""
        return 2 if self.plan.rescore >= 2 and self.effective else 1


def confirmation_values(
    confirmations: Sequence[FrozenTrial], objectives: Sequence[str]
) -> list[float]:
    """The configuration's score on each objective: the mean over its confirmations."""
    metrics = [t.user_attrs[studies.METRICS_ATTR.format(repeat=0)] for t in confirmations]
    return [statistics.fmean(float(m[name]) for m in metrics) for name in objectives]


def candidate_runs(
    search: Sequence[FrozenTrial],
) -> dict[Any, tuple[list[float], FrozenTrial, list[int]]]:
    """Each candidate's complete runs: their val_accuracies, its first run, their trials."""
    runs: dict[Any, tuple[list[float], FrozenTrial, list[int]]] = {}
    for trial in sorted(search, key=lambda t: t.number):
        if trial.state != TrialState.COMPLETE or trial.value is None:
            continue
        values, _, numbers = runs.setdefault(_candidate_key(trial), ([], trial, []))
        values.append(float(trial.value))
        numbers.append(trial.number)
    return runs


def _candidate_key(trial: FrozenTrial | None) -> Any:
    if trial is None:
        return None
    return trial.user_attrs.get(CANDIDATE_ATTR, str(sorted(trial.params.items())))


def _round(trial: FrozenTrial) -> int:
    return int(trial.user_attrs.get(ROUND_ATTR, 0))


def _candidate(trial: FrozenTrial) -> dict[str, Any]:
    """One run of a candidate, for the axis plots: its values, round, how it ended and
    its val_accuracy."""
    value = trial.value
    if value is None and trial.intermediate_values:  # pruned: its last reported epoch
        value = trial.intermediate_values[max(trial.intermediate_values)]
    return {
        "values": dict(trial.params),
        "round": _round(trial),
        "state": trial.state.name,
        VALUE: value,
    }


def _reason(trial: FrozenTrial) -> str:
    if trial.state == TrialState.PRUNED:
        return "pruned"
    return str(trial.user_attrs.get(ERROR_ATTR) or trial.state.name.lower()).splitlines()[0][:200]
