"""``backbone.weights=imagenet`` without a network says where the file goes and how to fix it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_unreachable_imagenet_download_names_the_cache_and_the_fix(tmp_path: Path) -> None:
    code = (
        "from capsweep.model.backbones import build_backbone\n"
        "from capsweep.errors import CapsweepConfigError\n"
        "try:\n"
        "    build_backbone('mobilenetv2', 32, 'imagenet')\n"
        "except CapsweepConfigError as error:\n"
        "    print(error)\n"
    )
    # A proxy on a closed local port makes the download fail at once, network or not.
    environment = {
        **os.environ,
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "KERAS_HOME": str(tmp_path / "keras"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    message = result.stdout.strip().splitlines()[-1]  # after Keras' "Downloading data from"
    assert message.startswith("backbone.weights='imagenet': could not download")
    assert str(tmp_path / "keras" / "models") in message
    assert "backbone.weights=/path/to/weights.h5" in message
