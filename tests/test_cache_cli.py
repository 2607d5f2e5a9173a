"""``capsweep-cache list|clear`` on a feature cache made of NumPy arrays."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from capsweep.cli.cache import main, parse_age
from capsweep.train.feature_keys import FeatureKey
from capsweep.train.feature_store import FeatureStore, default_root


def stored(outputs: Path, *cuts: str) -> FeatureStore:
    store = FeatureStore(default_root(outputs), max_bytes=10**9)
    for cut in cuts:
        key = FeatureKey("small_resnet", "arch", "weights", "unit", 32, "data", cut, "float32")
        store.save(key, np.zeros((10, 2, 2, 4), "float32"))
    return store


def test_list_names_each_entry_with_its_cut_and_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stored(tmp_path, "stage3_block1_out", "stage2_block2_out")

    assert main(["list", "--outputs", str(tmp_path)]) == 0

    listing = capsys.readouterr().out
    assert "2 entries" in listing
    assert "cut=stage3_block1_out" in listing and "cut=stage2_block2_out" in listing
    assert "KB" in listing


def test_list_of_an_empty_cache_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--outputs", str(tmp_path)]) == 0

    assert "No cached features" in capsys.readouterr().out


def test_clear_removes_every_entry(tmp_path: Path) -> None:
    store = stored(tmp_path, "a", "b")

    assert main(["clear", "--outputs", str(tmp_path)]) == 0

    assert store.entries() == []
    assert not list(store.root.iterdir())


def test_clear_older_than_removes_only_entries_unused_that_long(tmp_path: Path) -> None:
    store = stored(tmp_path, "old", "new")
    (old,) = [entry for entry in store.entries() if entry.key["cut"] == "old"]
    two_days_ago = time.time() - 2 * 86400
    os.utime(store.root / f"{old.digest}.json", (two_days_ago, two_days_ago))

    assert main(["clear", "--outputs", str(tmp_path), "--older-than", "1d"]) == 0

    assert [entry.key["cut"] for entry in store.entries()] == ["new"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800)]
)
def test_ages_read_in_seconds_minutes_hours_and_days(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


def test_an_unreadable_age_is_refused_with_an_example(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="7d"):
        parse_age("a week")


def test_the_command_runs_without_loading_tensorflow(tmp_path: Path) -> None:
    code = (
        "import sys; from capsweep.cli.cache import main; "
        f"main(['list', '--outputs', {str(tmp_path)!r}]); "
        "assert 'tensorflow' not in sys.modules"
    )

    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
