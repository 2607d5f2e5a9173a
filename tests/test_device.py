"""TensorFlow starts without its start-up noise and says in one line where training runs."""

from __future__ import annotations

import os
import subprocess
import sys

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
