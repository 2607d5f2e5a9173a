"""Start TensorFlow once per process, quietly, and say in one line where training runs.

TensorFlow's C++ start-up writes to file descriptor 2 before its logging is set up, so
``TF_CPP_MIN_LOG_LEVEL`` cannot silence it: an absl notice, the oneDNN notice, "could not
find cuda drivers" and, on machines without a GPU, a ``cuInit`` error — twice per
process. Those known lines are dropped; anything else TensorFlow writes while starting
is passed on unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

log = logging.getLogger(__name__)

# Start-up lines that say nothing a user can act on when no GPU is visible.
_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\)"
    r"|oneDNN custom operations are on"
    r"|Could not find cuda drivers on your machine"
    r"|failed call to cuInit"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|TF-TRT Warning: Could not find TensorRT"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|To enable the following instructions: .* rebuild TensorFlow"
)
_started: str | None = None


@contextlib.contextmanager
def _filtered_stderr(keep: list[str], dropped: list[str]) -> Iterator[None]:
    """Send file descriptor 2 to a temporary file; sort its lines into kept and dropped.

    Lines holding terminal control codes come from a live display (a progress bar
    redrawing meanwhile), not from TensorFlow: they are dropped, not replayed.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
            for line in text.splitlines():
                noise = _NOISE.search(line) or "\x1b[" in line
                (dropped if noise else keep).append(line)


def start_tensorflow() -> str:
    """Import TensorFlow and find its devices; return (and log once) where training runs."""
    global _started
    if _started is not None:
        return _started
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's INFO and WARNING
    passed_on: list[str] = []
    dropped: list[str] = []
    try:
        with _filtered_stderr(passed_on, dropped):
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            version = tf.__version__
    finally:
        for line in passed_on:
            print(line, file=sys.stderr)
        for line in dropped:
            log.debug("TensorFlow start-up: %s", line)
    names = ", ".join(gpu.name.removeprefix("/physical_device:") for gpu in gpus)
    where = names or "CPU (no GPU visible)"
    if not names and any("Could not find cuda drivers" in line for line in dropped):
        where = "CPU (no GPU visible: no CUDA driver on this machine)"
    elif not names and any("cuInit" in line for line in dropped):
        # A driver is there but did not start: worth a word where a GPU was expected.
        where = "CPU (no GPU visible: the CUDA driver did not initialize; see DEBUG log)"
    _started = f"TensorFlow {version}: training on {where}"
    log.info("%s", _started)
    return _started
