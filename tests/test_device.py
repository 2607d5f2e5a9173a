"""TensorFlow starts without its start-up noise and says in one line where training runs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

NOISE = ("absl::InitializeLog", "oneDNN custom operations", "cuda drivers", "cuInit")


def test_tensorflow_starts_quietly_and_names_the_device() -> None:
    code = (
        "import sys\n"
        "from capsweep.train.device import start_tensorflow\n"
        "print(start_tensorflow())\n"
        "print('after start-up', file=sys.stderr)\n"  # stderr works again afterwards
    )
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}

    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env=environment,
    )

    assert result.stdout.startswith("TensorFlow ")
    assert "training on " in result.stdout
    assert result.stderr.strip() == "after start-up"
    assert not [noise for noise in NOISE if noise in result.stderr]


def test_what_tensorflow_wrote_before_a_crash_in_its_start_up_is_kept_in_a_file() -> None:
    code = (
        "import os\n"
        "from capsweep.train.device import _filtered_stderr\n"
        "print(os.getpid(), flush=True)\n"
        "with _filtered_stderr([], []):\n"
        "    os.write(2, b'F0000 cuda_executor.cc: Check failed: device not found\\n')\n"
        "    os._exit(134)\n"  # as an abort in CUDA's start-up would end it
    )
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)

    held = (
        Path(tempfile.gettempdir())
        / f"capsweep-tensorflow-start-{process.stdout.strip().decode()}.log"
    )
    try:
        assert process.returncode == 134
        assert "Check failed: device not found" in held.read_text()
    finally:
        held.unlink(missing_ok=True)


def test_the_held_start_up_output_is_removed_once_tensorflow_has_started() -> None:
    code = (
        "import os\n"
        "from capsweep.train.device import start_tensorflow\n"
        "start_tensorflow()\n"
        "print(os.getpid())\n"
    )
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1"}  # no GPU: held and filtered
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=environment
    )

    assert result.returncode == 0, result.stderr
    pid = result.stdout.split()[-1]
    assert not (Path(tempfile.gettempdir()) / f"capsweep-tensorflow-start-{pid}.log").exists()


@pytest.mark.parametrize(
    ("listed", "expected"), [("-1", False), ("", False), ("0", True), ("0,1", True)]
)
def test_a_device_list_says_whether_a_gpu_may_start(
    monkeypatch: pytest.MonkeyPatch, listed: str, expected: bool
) -> None:
    from capsweep.train.device import gpu_may_start

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)

    assert gpu_may_start() is expected
