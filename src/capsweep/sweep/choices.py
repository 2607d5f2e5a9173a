"""The closed sets of names the sweeper's options take, as Enums its config is typed with.

Light to import (no Optuna): the Hydra plugin's config uses them at discovery, so Hydra
refuses ``hydra.sweeper.sampler=tpee`` while composing, naming the choices. The factories
in :mod:`capsweep.sweep.samplers` and :mod:`capsweep.sweep.pruning` build one of each
(``tests/test_sweep_choices.py`` checks that every member builds).
"""

from __future__ import annotations

from enum import StrEnum


class Sampler(StrEnum):
    """``hydra.sweeper.sampler``: Optuna's samplers by short name."""

    tpe = "tpe"
    random = "random"
    grid = "grid"
    nsga2 = "nsga2"
    nsga3 = "nsga3"
    qmc = "qmc"
    cmaes = "cmaes"
    bruteforce = "bruteforce"
    gp = "gp"


class Pruner(StrEnum):
    """``hydra.sweeper.pruner``: Optuna's pruners by short name, and capsweep's dominance rule."""

    none = "none"
    median = "median"
    percentile = "percentile"
    hyperband = "hyperband"
    successive_halving = "successive_halving"
    threshold = "threshold"
    wilcoxon = "wilcoxon"
    patient = "patient"
    # Several objectives: stop a trial a smaller finished trial beat at the same epoch.
    dominance = "dominance"
