"""A study's trials as the records selection works on: one per trial and repeat."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from capsweep.select import TrialRecord
from capsweep.select.summaries import Candidate, Tuning
from capsweep.sweep import study as studies
from capsweep.sweep.tuning import CANDIDATES_ATTR, CHOSEN_ATTR, SELECTION_ATTR, TRIED_ATTR


def _seed(value: Any) -> int | None:
    """A recorded seed as an int; ``None`` when the sweep did not record it."""
    return None if value is None else int(value)


def tuning_of(attrs: dict[str, Any]) -> Tuning | None:
    """How a trial's configuration was tuned, from its attributes; ``None`` when it was not."""
    if CHOSEN_ATTR not in attrs:
        return None
    selection = attrs.get(SELECTION_ATTR) or {}
    return Tuning(
        chosen=dict(attrs[CHOSEN_ATTR] or {}),
        tried=int(attrs.get(TRIED_ATTR) or 0),
        candidates=tuple(
            Candidate(
                dict(c["values"]), str(c["state"]), c.get("val_accuracy"), int(c.get("round", 0))
            )
            for c in attrs.get(CANDIDATES_ATTR) or []
        ),
        selection=selection.get("val_accuracy"),
    )


def records_from_study(
    study: optuna.Study, trials: Sequence[FrozenTrial] | None = None
) -> list[TrialRecord]:
    """One record per trial and repeat, in trial order (surplus placeholders left out).

    A record's seed and split seed come from the trial's ``capsweep.seed.{repeat}`` and
    ``capsweep.split_seed.{repeat}`` attributes, ``None`` where they are absent. Pass
    ``trials`` when the caller has read them already.
    """
    records = []
    for trial in study.get_trials(deepcopy=False) if trials is None else trials:
        attrs = trial.user_attrs
        tuning = tuning_of(attrs)
        if attrs.get(studies.SURPLUS_ATTR):
            continue
        repeats = sorted(
            int(key.rsplit(".", 1)[1])
            for key in attrs
            if key.startswith((studies.METRICS_PREFIX, studies.RUN_ID_PREFIX))
        )
        for repeat in sorted(set(repeats)) or [0]:
            metrics = attrs.get(studies.METRICS_ATTR.format(repeat=repeat)) or {}
            records.append(
                TrialRecord(
                    number=trial.number,
                    state=trial.state.name,
                    params=dict(trial.params),
                    repeat=repeat,
                    metrics={k: float(v) for k, v in metrics.items()},
                    run_id=attrs.get(studies.RUN_ID_ATTR.format(repeat=repeat)),
                    seed=_seed(attrs.get(studies.SEED_ATTR.format(repeat=repeat))),
                    split_seed=_seed(attrs.get(studies.SPLIT_SEED_ATTR.format(repeat=repeat))),
                    tuning=tuning,
                )
            )
    return records
