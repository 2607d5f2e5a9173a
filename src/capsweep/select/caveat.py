"""The warning a pick from single runs needs: seed noise they cannot show."""

from __future__ import annotations

from collections.abc import Sequence

from capsweep.select.summaries import ConfigSummary

REPEATS_FIX = "train repeats (hydra.sweeper.repeats) for a trustworthy pick"


def repeat_spread(summaries: Sequence[ConfigSummary]) -> float | None:
    """The largest range (max - min) of val_accuracy across one configuration's repeats.

    Over the independent repeats of every repeated configuration; ``None`` when none was
    repeated.
    """
    spreads = [
        max(s.sample_val_accuracies) - min(s.sample_val_accuracies) for s in summaries if s.n > 1
    ]
    return max(spreads) if spreads else None


def single_run_caveat(
    chosen: ConfigSummary,
    best: ConfigSummary,
    summaries: Sequence[ConfigSummary],
    repeat_over: str | None = None,
) -> str | None:
    """A sentence when the pick or the best rests on one independent run, else ``None``.

    The seed noise is quoted from the sweep itself (:func:`repeat_spread`) when some
    configuration was repeated.
    """
    single_chosen, single_best = chosen.n == 1, best.n == 1
    if chosen.key == best.key:
        if not single_best:
            return None
        who = "The pick (the best itself) rests"
    elif single_chosen and single_best:
        who = "The pick and the best each rest"
    elif single_best:
        who = "The best rests"
    elif single_chosen:
        who = "The pick rests"
    else:
        return None
    spread = repeat_spread(summaries)
    if spread is None:
        measured = "no configuration here was repeated to measure it"
    else:
        source = "the seed alone" if repeat_over == "seed" else "repeating a configuration"
        measured = f"{source} moved val_accuracy by up to {spread:.2f} here"
    return f"{who} on a single run; single runs understate seed noise ({measured}); {REPEATS_FIX}."
