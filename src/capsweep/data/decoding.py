"""Decode image files to uint8 RGB arrays of one size, on a pool of threads.

Pillow releases the GIL while it decodes and resizes, so threads decode in parallel
without copying pixels between processes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from capsweep.errors import CapsweepConfigError


def decode_image(path: Path, size: int) -> np.ndarray:
    """One image as (size, size, 3) uint8 RGB, turned upright by its EXIF orientation.

    Raises:
        CapsweepConfigError: naming ``data.path`` and the file, if it is not an image.
    """
    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            rgb = upright.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise CapsweepConfigError(
            "data.path",
            str(path),
            f"is not a readable image ({error})",
            fix="remove or replace the file",
        ) from None


def decode_images(
    paths: Sequence[Path], size: int, *, workers: int | None = None
) -> Iterator[np.ndarray]:
    """Each image of ``paths`` decoded (see ``decode_image``), in order.

    At most a few images per worker are in flight, so memory stays flat however many
    files there are; the caller stores each one where it belongs as it arrives.
    """
    workers = workers or available_cpus()
    in_flight: deque[Future[np.ndarray]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        try:
            for path in paths:
                if len(in_flight) >= 4 * workers:
                    yield in_flight.popleft().result()
                in_flight.append(pool.submit(decode_image, path, size))
            while in_flight:
                yield in_flight.popleft().result()
        finally:
            for future in in_flight:  # on an error or an abandoned iterator
                future.cancel()


def decode_into_memory(paths: Sequence[Path], size: int) -> np.ndarray:
    """All of ``paths`` decoded into one preallocated (n, size, size, 3) uint8 array."""
    images = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for index, image in enumerate(decode_images(paths, size)):
        images[index] = image
    return images


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
