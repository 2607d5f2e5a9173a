"""Start TensorFlow once per process, quietly, and say in one line where training runs.

TensorFlow's C++ start-up writes to file descriptor 2 before its logging is set up, so
``TF_CPP_MIN_LOG_LEVEL`` cannot silence it: an absl notice, the oneDNN notice, "could not
find cuda drivers" and, on machines without a GPU, a ``cuInit`` error — twice per
process. Where no GPU can start (no NVIDIA device file, no device list naming one), those
known lines are dropped and anything else is passed on; the start-up's output is held in a
named file in the temporary folder until TensorFlow has started, so a crash in between
leaves it there. Where a GPU may start, nothing is redirected: CUDA's own messages, and
any crash in its start-up, reach the console as they are.

GPU memory: by default TensorFlow maps nearly all memory of every GPU it sees at its first
op; with ``memory_growth`` it takes memory as it needs it, so processes can share a GPU.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
    held = Path(tempfile.gettempdir()) / f"capsweep-tensorflow-start-{os.getpid()}.log"
    with held.open("w+b") as captured:
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
    held.unlink(missing_ok=True)  # started: its lines are replayed or logged


def gpu_may_start() -> bool:
    """Whether a GPU could start here: an NVIDIA device file, or a device list naming one."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None and listed.strip() in ("", "-1"):
        return False
    return bool(glob.glob("/dev/nvidia[0-9]*")) or listed is not None


def start_tensorflow(*, memory_growth: bool = False) -> str:
    """Import TensorFlow and find its devices; return (and log once) where training runs.

    Args:
        memory_growth: Let TensorFlow take GPU memory as it needs it instead of nearly all
            of every visible GPU's at once (set before any op; a sweep's workers share).
    """
    global _started
    if _started is not None:
        return _started
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's INFO and WARNING
    passed_on: list[str] = []
    dropped: list[str] = []
    quiet = contextlib.nullcontext() if gpu_may_start() else _filtered_stderr(passed_on, dropped)
    try:
        with quiet:
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            version = tf.__version__
    finally:
        for line in passed_on:
            print(line, file=sys.stderr)
        for line in dropped:
            log.debug("TensorFlow start-up: %s", line)
    if memory_growth:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
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
