"""Trials run one after another in one process (Hydra's basic launcher) keep memory flat."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import DictConfig

# What the trials vary, as a sweep would: cached (0-2 blocks) and uncached (all 6) trials,
# with and without a hidden layer, each repeat with its own seed.
SETTINGS = [(unfreeze, depth) for unfreeze in (0, 1, 2, 6) for depth in (0, 1)]
# Each setting's first trial may grow the process for good (TensorFlow's kernels and
# allocator pools for new shapes): growth is measured after that first pass over the
# settings, from each trial to the same setting's trial one pass later. (Within a pass
# resident memory climbs and falls back by ~40 MB, the same way every pass.)
PASS = len(SETTINGS)
TRIALS = 3 * PASS
# How much resident memory may grow per trial once warm: seen here about 0.2 MB; a trial
# that left its graphs behind (capsweep.train.graph_memory) grew by ~16 MB.
ALLOWED_MB_PER_TRIAL = 4.0


def resident_mb() -> float:
    """This process's resident set size in MB (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc/self/statm")
def test_trials_in_one_process_do_not_grow_resident_memory_trial_after_trial(
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

    second, third = np.array(resident[PASS : 2 * PASS]), np.array(resident[2 * PASS :])
    per_trial = float(np.mean(third - second)) / PASS
    trace = ", ".join(f"{mb:.0f}" for mb in resident)
    print(f"resident MB after each trial: {trace}")  # shown with pytest -s
    assert per_trial < ALLOWED_MB_PER_TRIAL, (
        f"RSS grew {per_trial:.1f} MB per trial from the second pass over the settings to "
        f"the third: {trace}"
    )
    reused = [run.data.tags["capsweep.backbone_reused"] for run in runs_in(tracking_uri)]
    assert sorted(reused) == ["False"] + ["True"] * (TRIALS - 1)
