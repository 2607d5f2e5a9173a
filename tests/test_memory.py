"""Trials run one after another in one process (Hydra's basic launcher) keep memory flat."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig

TRIALS = 20
# Resident memory may grow this much between the second trial and the last.
ALLOWED_GROWTH_MB = 300
# What the trials vary, as a sweep would: cached (0-2 blocks) and uncached (all 6) trials,
# with and without a hidden layer, each repeat with its own seed.
SETTINGS = [(unfreeze, depth) for unfreeze in (0, 1, 2, 6) for depth in (0, 1)]


def resident_mb() -> float:
    """This process's resident set size in MB (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc/self/statm")
def test_twenty_trials_in_one_process_keep_resident_memory_flat(
    tiny_config: Callable[..., DictConfig],
    weights_file: Path,
    tracking_uri: str,
    runs_in: Callable[[str], list[Any]],
) -> None:
    from capsweep.cli.run import run_trial
    from capsweep.hydra_settings import load_settings

    resident: list[float] = []
    for number in range(TRIALS):
        unfreeze, depth = SETTINGS[number % len(SETTINGS)]
        settings = load_settings(
            tiny_config(
                # From a file, as pretrained weights are: trials after the first reuse the
                # backbone (capsweep.train.backbone_reuse).
                f"backbone.weights={weights_file}",
                f"capacity.unfreeze={unfreeze}",
                f"head.depth={depth}",
                "head.width=8",
                f"trainer.seed={number}",
            )
        )
        assert run_trial(settings, run_name=f"trial-{number}").state == "COMPLETE"
        gc.collect()
        resident.append(resident_mb())

    growth = resident[-1] - resident[1]
    trace = ", ".join(f"{mb:.0f}" for mb in resident)
    print(f"resident MB after each trial: {trace}")  # shown with pytest -s
    assert growth < ALLOWED_GROWTH_MB, f"RSS grew {growth:.0f} MB over trials 2-{TRIALS}: {trace}"
    reused = [run.data.tags["capsweep.backbone_reused"] for run in runs_in(tracking_uri)]
    assert sorted(reused) == ["False"] + ["True"] * (TRIALS - 1)
