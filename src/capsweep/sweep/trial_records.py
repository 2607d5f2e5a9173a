"""A study's trials as the records selection works on: one per trial and repeat."""

from __future__ import annotations

from typing import Any

import optuna

from capsweep.select import TrialRecord
from capsweep.sweep import study as studies


def _seed(value: Any) -> int | None:
    """A recorded seed as an int; ``None`` when the sweep did not record it."""
    return None if value is None else int(value)


def records_from_study(study: optuna.Study) -> list[TrialRecord]:
    """One record per trial and repeat, in trial order (surplus placeholders left out).

    A record's seed and split seed come from the trial's ``capsweep.seed.{repeat}`` and
    ``capsweep.split_seed.{repeat}`` attributes, ``None`` where they are absent.
    """
    records = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
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
                )
            )
    return records
