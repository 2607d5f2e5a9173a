"""One GPU per local worker: each process of a sweep's joblib pool claims a GPU of its own.

By default a TensorFlow process maps nearly all memory of every GPU it can see, so two
workers on one machine would fail on the first GPU. A worker process claims one GPU id
from the sweep's list (``hydra.sweeper.gpus``) before TensorFlow starts, by holding an
exclusive lock on that id's file in this host's temporary folder for as long as it
lives, and sees only that GPU (``CUDA_VISIBLE_DEVICES``). A lock is released by the
operating system when its process ends, however it ends.

A device list set for the process from outside (Slurm's ``--gres``, the user) bounds the
choice: the worker claims one of the listed GPUs that ``hydra.sweeper.gpus`` also names,
and is refused if it names none of them. Locks are per Slurm job where there is one
(Slurm may number each job's GPUs from 0). Pure standard library: the sweep side never
loads TensorFlow.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

VISIBLE = "CUDA_VISIBLE_DEVICES"
_held: tuple[str, IO[bytes]] | None = None  # the claimed GPU id and its open lock file


def slots_folder() -> Path:
    """Where this host's GPU locks live (a host-local folder: GPUs belong to a host). A
    Slurm job that was given its GPUs (a device list set for it) numbers them its own way:
    its locks are its own. Without a device list the ids are the host's, and every job on
    the host shares one folder, so that two of them never claim one GPU."""
    job = os.environ.get("SLURM_JOB_ID") if os.environ.get(VISIBLE) else None
    return Path(tempfile.gettempdir()) / (
        f"capsweep-gpus-{os.getuid()}" + (f"-job{job}" if job else "")
    )


def claim_gpu(gpus: Sequence[int], folder: Path | None = None) -> str | None:
    """Make this process see one GPU of ``gpus`` that no other live process claimed.

    Returns the ``CUDA_VISIBLE_DEVICES`` the process trains with (``None``: no GPU list).
    Call before TensorFlow is imported; a later call in the same process keeps the GPU
    it already holds.

    Raises:
        RuntimeError: every GPU of ``gpus`` is held by another process, or a device list
            set from outside names none of ``gpus``.
    """
    global _held
    if _held is not None:
        return _held[0]
    if not gpus:
        return os.environ.get(VISIBLE)
    candidates = [str(gpu) for gpu in gpus]
    if VISIBLE in os.environ:  # set by Slurm or the user: claim only among those listed
        listed = [device.strip() for device in os.environ[VISIBLE].split(",") if device.strip()]
        candidates = [gpu for gpu in candidates if gpu in listed]
        if not candidates:
            raise RuntimeError(
                f"hydra.sweeper.gpus={list(gpus)} names none of the GPUs this process may "
                f"use ({VISIBLE}={os.environ[VISIBLE]!r}, set by Slurm or you): list ids "
                f"from {listed}, or leave hydra.sweeper.gpus unset to train on that list"
            )
    if "tensorflow" in sys.modules:
        log.warning("TensorFlow started before a GPU was claimed: it may see every GPU")
    folder = folder or slots_folder()
    folder.mkdir(parents=True, exist_ok=True)
    for gpu in candidates:
        handle = (folder / f"gpu-{gpu}.lock").open("a+b")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held = (gpu, handle)
        os.environ[VISIBLE] = gpu
        return gpu
    raise RuntimeError(
        f"every GPU of {candidates} (hydra.sweeper.gpus={list(gpus)}) is held by another "
        "worker on this host; run at most as many local workers as GPUs "
        "(hydra.launcher.n_jobs)"
    )
