"""A study's trials as the records selection works on: one per trial and repeat."""

from __future__ import annotations

import optuna

from capsweep.select import TrialRecord
from capsweep.sweep import study as studies


def records_from_study(study: optuna.Study) -> list[TrialRecord]:
    """One record per trial and repeat, in trial order (surplus placeholders left out)."""
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
                )
            )
    return records
