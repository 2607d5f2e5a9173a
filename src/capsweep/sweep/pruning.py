"""Pruning that works when trials run in other processes or hosts.

Trials report each epoch's val_accuracy to the shared study storage. Single-objective
studies use Optuna's pruners through ``Trial.report``/``should_prune``. Optuna cannot prune
multi-objective studies, so capsweep adds a *dominance* rule: stop a trial at epoch t when
a finished trial with no more trainable parameters had a val_accuracy higher by at least
``margin`` at the same epoch — it cannot end up better and smaller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from capsweep.errors import CapsweepConfigError, StopTraining
from capsweep.settings.validate import member
from capsweep.sweep.choices import Pruner
from capsweep.sweep.study import CURVE_ATTR, TRAINABLE_ATTR

log = logging.getLogger(__name__)


def is_dominated(
    value: float,
    epoch: int,
    trainable_params: int,
    finished: Sequence[tuple[int, Sequence[float]]],
    *,
    margin: float,
) -> bool:
    """Whether a finished trial no larger than this one was ``margin`` better at ``epoch``.

    Args:
        value: This trial's val_accuracy at ``epoch``.
        epoch: The epoch index (0-based).
        trainable_params: This trial's trainable parameter count.
        finished: For each finished trial, its trainable params and val_accuracy per epoch.
        margin: How much better the smaller trial must have been.
    """
    return any(
        params <= trainable_params and epoch < len(curve) and curve[epoch] >= value + margin
        for params, curve in finished
    )


class DominancePruner(BasePruner):
    """Prune a trial dominated, at the same epoch, by a finished trial no larger than it.

    Reads what :class:`EpochReporter` records in trial user attributes, so it works for
    multi-objective studies, where ``Trial.report`` is not available.
    """

    def __init__(self, *, margin: float = 0.05, n_warmup_epochs: int = 2) -> None:
        if not 0.0 <= margin <= 1.0:
            raise CapsweepConfigError(
                "hydra.sweeper.pruner_options.margin", margin, "must be in [0, 1]"
            )
        self.margin = margin
        self.n_warmup_epochs = n_warmup_epochs

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.should_stop(
            study, trial.user_attrs.get(CURVE_ATTR) or [], trial.user_attrs.get(TRAINABLE_ATTR)
        )

    def should_stop(
        self, study: optuna.Study, curve: Sequence[float], trainable: int | None
    ) -> bool:
        """Whether a trial with this val_accuracy ``curve`` so far should stop."""
        if not curve or trainable is None or len(curve) <= self.n_warmup_epochs:
            return False
        finished = [
            (int(t.user_attrs[TRAINABLE_ATTR]), list(t.user_attrs[CURVE_ATTR]))
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if TRAINABLE_ATTR in t.user_attrs and CURVE_ATTR in t.user_attrs
        ]
        epoch = len(curve) - 1
        return is_dominated(curve[epoch], epoch, int(trainable), finished, margin=self.margin)


PRUNERS: dict[Pruner, Any] = {
    Pruner.median: optuna.pruners.MedianPruner,
    Pruner.percentile: optuna.pruners.PercentilePruner,
    Pruner.hyperband: optuna.pruners.HyperbandPruner,
    Pruner.successive_halving: optuna.pruners.SuccessiveHalvingPruner,
    Pruner.threshold: optuna.pruners.ThresholdPruner,
    Pruner.wilcoxon: optuna.pruners.WilcoxonPruner,
    Pruner.patient: optuna.pruners.PatientPruner,
    Pruner.dominance: DominancePruner,
}


def make_pruner(name: str | None, options: Mapping[str, Any]) -> BasePruner | None:
    """Build a pruner by name, with keyword options; ``None`` for ``none``/null.

    Pass the result to Optuna through :func:`study_pruner`: Optuna itself falls back to a
    MedianPruner when given ``None``.
    """
    if name is None:
        return None
    kind = member("hydra.sweeper.pruner", name, Pruner, "unknown pruner")
    if kind is Pruner.none:
        return None
    try:
        pruner: BasePruner = PRUNERS[kind](**dict(options))
        return pruner
    except TypeError as error:
        raise CapsweepConfigError(
            "hydra.sweeper.pruner_options",
            dict(options),
            f"do not fit pruner {name} ({error})",
        ) from None


def study_pruner(pruner: BasePruner | None) -> BasePruner:
    """The pruner to hand Optuna: no pruning really means none (not Optuna's median default)."""
    return pruner if pruner is not None else optuna.pruners.NopPruner()


class TrialPruned(StopTraining):
    """The pruner told a trial to stop at ``epoch``."""

    def __init__(self, epoch: int, value: float) -> None:
        super().__init__(epoch, f"pruned at epoch {epoch} (val_accuracy {value:.4f})")
        self.value = value


class EpochReporter:
    """Per-epoch listener run inside a trial, in whatever process or host trains it.

    Records the val_accuracy curve in the trial's user attributes, reports to Optuna's
    pruner in single-objective studies, and raises :class:`TrialPruned` when the pruner
    says stop. Only the first repeat of a configuration reports. (The sweeper that asked
    the trial marks it alive, see :mod:`capsweep.sweep.liveness`.)

    If another worker has meanwhile taken the trial for dead and failed it, reporting
    stops and training goes on: the sweeper drops the late result.
    """

    def __init__(self, trial: optuna.Trial, *, multi_objective: bool, report: bool) -> None:
        self.trial = trial
        self.multi_objective = multi_objective
        self.report = report
        self.curve: list[float] = []
        self.trainable_params: int | None = None

    def started(self, trainable_params: int) -> None:
        self.trainable_params = int(trainable_params)
        if self.report:
            self._write(lambda: self.trial.set_user_attr(TRAINABLE_ATTR, int(trainable_params)))

    def __call__(self, epoch: int, logs: dict[str, float]) -> None:
        value = logs.get("val_accuracy")
        if not self.report or value is None:
            return
        self.curve.append(float(value))
        self._write(lambda: self.trial.set_user_attr(CURVE_ATTR, self.curve))
        if not self.report:
            return
        pruner = self.trial.study.pruner
        if isinstance(pruner, DominancePruner):
            if pruner.should_stop(self.trial.study, self.curve, self.trainable_params):
                raise TrialPruned(epoch, value)
            return
        if self.multi_objective:  # Optuna's own pruners cannot judge several objectives
            return
        self._write(lambda: self.trial.report(float(value), epoch))
        if self.report and self.trial.should_prune():
            raise TrialPruned(epoch, value)

    def _write(self, write: Callable[[], None]) -> None:
        try:
            write()
        except UpdateFinishedTrialError:
            log.warning(
                "Trial %d was finished by another worker (taken for dead): no longer reporting",
                self.trial.number,
            )
            self.report = False
