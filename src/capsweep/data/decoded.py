"""Image folders decoded once: one uint8 array file per folder content and size.

An entry ``<cache_dir>/<key>/`` holds ``images.npy`` (n, size, size, 3), ``labels.npy`` and
``manifest.json``; the key hashes the sorted relative file list with each file's size and
modification time, and the size. Later loads memory-map the array instead of decoding.

An entry is written in a private ``.partial-*`` folder and published with one
``os.replace``, so a killed writer never leaves a half-written entry under the key, and
producers racing on one key each publish a whole entry or adopt the other's. Opening
checks the manifest against the key, the array file's byte size and the labels' checksum;
an entry that fails (truncated, from another version) is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from capsweep.data.decoding import decode_images

FORMAT = 1
IMAGES, LABELS, MANIFEST, OWNER = "images.npy", "labels.npy", "manifest.json", "owner.json"
PARTIAL = ".partial-"

log = logging.getLogger(__name__)


def cached_images(
    root: Path, files: Mapping[str, Sequence[Path]], size: int, cache_dir: Path
) -> np.memmap[Any, Any]:
    """The images of ``files`` (class name → sorted paths under ``root``), memory-mapped.

    Decodes them into a new entry under ``cache_dir`` unless a valid one exists.
    """
    paths = [path for found in files.values() for path in found]
    labels = folder_labels(files)
    key = folder_key(root, paths, size)
    entry = cache_dir / key
    shape = (len(paths), size, size, 3)
    images = open_entry(entry, key, shape, labels)
    if images is not None:
        return images
    if entry.exists():
        log.warning("rebuilding the decoded-image cache entry %s (incomplete or stale)", entry)
    log.info("decoding %d images at %d px into %s", len(paths), size, entry)
    _remove_abandoned_partials(cache_dir)
    _build(entry, key, paths, size, labels, tuple(files))
    images = open_entry(entry, key, shape, labels)
    if images is None:
        raise OSError(f"the decoded-image cache entry {entry} is invalid right after writing")
    return images


def folder_labels(files: Mapping[str, Sequence[Path]]) -> np.ndarray:
    """The class index of each file, classes in ``files``' order."""
    counts = [len(found) for found in files.values()]
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def folder_key(root: Path, paths: Sequence[Path], size: int) -> str:
    """A hash of the relative file list with sizes and modification times, and the size."""
    listing = []
    for path in paths:
        stat = path.stat()
        listing.append([path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns])
    described = {"format": FORMAT, "size": size, "resample": "bilinear", "files": listing}
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()[:32]


def open_entry(
    entry: Path, key: str, shape: tuple[int, ...], labels: np.ndarray
) -> np.memmap[Any, Any] | None:
    """The entry's images memory-mapped read-only, or None if it is missing or invalid."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        if (
            manifest.get("format") != FORMAT
            or manifest.get("key") != key
            or tuple(manifest.get("shape", ())) != shape
            or (entry / IMAGES).stat().st_size != manifest["images_bytes"]
        ):
            return None
        stored = np.load(entry / LABELS)
        if _sha256(stored) != manifest["labels_sha256"] or not np.array_equal(stored, labels):
            return None
        images = np.load(entry / IMAGES, mmap_mode="r")
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None
    if not isinstance(images, np.memmap) or images.shape != shape or images.dtype != np.uint8:
        return None
    return images


def _build(
    entry: Path,
    key: str,
    paths: Sequence[Path],
    size: int,
    labels: np.ndarray,
    class_names: tuple[str, ...],
) -> None:
    partial = entry.parent / f"{PARTIAL}{key}-{uuid.uuid4().hex[:8]}"
    partial.mkdir(parents=True)
    try:
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
        (partial / OWNER).write_text(json.dumps(owner))
        images_bytes = _write_images(partial / IMAGES, paths, size)
        with open(partial / LABELS, "wb") as file:
            np.save(file, labels)
            _sync(file)
        shape = (len(paths), size, size, 3)
        manifest = {
            "format": FORMAT,
            "key": key,
            "shape": list(shape),
            "count": len(paths),
            "class_names": list(class_names),
            "labels_sha256": _sha256(labels),
            "images_bytes": images_bytes,
        }
        with open(partial / MANIFEST, "w") as file:
            json.dump(manifest, file, indent=2)
            _sync(file)
        _publish(partial, entry, key, shape, labels)
    finally:
        shutil.rmtree(partial, ignore_errors=True)  # gone already once published


def _write_images(path: Path, paths: Sequence[Path], size: int) -> int:
    """Decode ``paths`` into an .npy file row by row; its size in bytes.

    Plain file writes rather than a writable memory map: dirty mapped pages would count
    in the process' resident memory, up to the whole array.
    """
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
        "fortran_order": False,
        "shape": (len(paths), size, size, 3),
    }
    with open(path, "wb") as file:
        np.lib.format.write_array_header_1_0(file, header)
        for image in decode_images(paths, size):
            file.write(np.ascontiguousarray(image).data.cast("B"))
        _sync(file)
        return file.tell()


def _publish(
    partial: Path, entry: Path, key: str, shape: tuple[int, ...], labels: np.ndarray
) -> None:
    try:
        os.replace(partial, entry)
        return
    except OSError:  # the entry exists: another producer's, or an invalid one
        if open_entry(entry, key, shape, labels) is not None:
            return  # adopt the other producer's entry; ours is removed
    stale = entry.parent / f"{PARTIAL}stale-{key}-{uuid.uuid4().hex[:8]}"
    with contextlib.suppress(FileNotFoundError):
        os.replace(entry, stale)
    shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(partial, entry)
    except OSError:  # yet another producer published meanwhile
        if open_entry(entry, key, shape, labels) is None:
            raise


def _remove_abandoned_partials(cache_dir: Path) -> None:
    """Remove partial entries whose writer, on this host, is no longer running."""
    if os.name != "posix" or not cache_dir.is_dir():
        return
    host = socket.gethostname()
    for partial in cache_dir.glob(f"{PARTIAL}*"):
        try:
            owner = json.loads((partial / OWNER).read_text())
        except (OSError, ValueError):
            continue
        if owner.get("host") == host and not _running(int(owner.get("pid", 0))):
            shutil.rmtree(partial, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only checks that the process exists (POSIX)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def _sync(file: Any) -> None:
    file.flush()
    os.fsync(file.fileno())


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
