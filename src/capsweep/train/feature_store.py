"""Feature arrays on disk: .npy files opened memory-mapped, each with a JSON manifest.

An entry is ``<digest>.json`` (the key, shape, dtype, byte size, checksum) naming its data
file ``<digest>-<checksum>.npy``. Both are written under temporary names and moved into
place with ``os.replace``, data first: a manifest only ever names a complete file, so
producers racing on one entry never corrupt it (the last one's manifest wins, the other's
data file is an orphan that eviction removes). An entry whose file is missing, truncated or
does not match its manifest is deleted and reported as absent, never used. The total size is
capped: least recently used entries go first (a read touches the manifest's mtime).

No TensorFlow: ``capsweep-cache`` lists and clears entries with this module alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from capsweep.train.feature_keys import FeatureKey

log = logging.getLogger(__name__)

# Files no manifest names (a race's loser, a killed writer) are removed once this old.
ORPHAN_SECONDS = 3600.0
_CHUNK = 1 << 24


def default_root(outputs: str | Path) -> Path:
    """Where entries live unless ``cache.dir`` says otherwise: ``<outputs>/cache/features``."""
    return Path(outputs) / "cache" / "features"


def array_checksum(array: np.ndarray) -> str:
    """A hash of an array's values, read in chunks (works on a memory map)."""
    digest = hashlib.blake2b(digest_size=16)
    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    for start in range(0, len(flat), _CHUNK):
        digest.update(flat[start : start + _CHUNK].tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Entry:
    """One stored feature array, as its manifest describes it."""

    digest: str
    key: dict[str, Any]
    file: str
    shape: tuple[int, ...]
    dtype: str
    bytes: int
    checksum: str
    last_used: float

    def summary(self) -> str:
        key = self.key
        return (
            f"{key.get('backbone')}@{key.get('input_size')}px cut={key.get('cut')} "
            f"{self.dtype} {list(self.shape)} weights={str(key.get('weights'))[:8]} "
            f"data={str(key.get('dataset'))[:8]}"
        )


class FeatureStore:
    """The feature entries under one folder, capped at ``max_bytes``."""

    def __init__(self, root: str | Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def _manifest(self, digest: str) -> Path:
        return self.root / f"{digest}.json"

    def entry(self, digest: str) -> Entry | None:
        """The manifest of entry ``digest``, or None when absent or unreadable."""
        path = self._manifest(digest)
        try:
            manifest = json.loads(path.read_text())
            return Entry(
                digest=digest,
                key=manifest["key"],
                file=manifest["file"],
                shape=tuple(manifest["shape"]),
                dtype=manifest["dtype"],
                bytes=int(manifest["bytes"]),
                checksum=manifest["checksum"],
                last_used=path.stat().st_mtime,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def load(self, key: FeatureKey) -> np.ndarray | None:
        """The stored features of ``key``, memory-mapped and checked; None when absent or bad."""
        digest = key.digest()
        entry = self.entry(digest)
        if entry is None:
            return None
        data = self.root / entry.file
        try:
            problem = None
            if data.stat().st_size != entry.bytes:
                problem = f"{data.stat().st_size} bytes, manifest says {entry.bytes}"
            else:
                array = np.load(data, mmap_mode="r", allow_pickle=False)
                if array.shape != entry.shape or str(array.dtype) != entry.dtype:
                    problem = (
                        f"{array.shape} {array.dtype}, manifest says {entry.shape} {entry.dtype}"
                    )
                elif array_checksum(array) != entry.checksum:
                    problem = "checksum mismatch"
        except (OSError, ValueError) as error:
            problem = str(error)
        if problem is not None:
            log.warning("Feature cache entry %s is damaged (%s): rebuilding it", digest, problem)
            self.remove(digest)
            return None
        self.touch(digest)
        return array

    def touch(self, digest: str) -> None:
        """Mark entry ``digest`` as just used (its manifest's mtime)."""
        with contextlib.suppress(OSError):
            os.utime(self._manifest(digest))

    def save(self, key: FeatureKey, array: np.ndarray) -> np.ndarray:
        """Store ``array`` as the features of ``key``; return it memory-mapped from disk."""
        self.root.mkdir(parents=True, exist_ok=True)
        digest = key.digest()
        checksum = array_checksum(array)
        data = self.root / f"{digest}-{checksum}.npy"
        temporary = self.root / f".tmp-{uuid.uuid4().hex}"
        with open(temporary, "wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, data)
        manifest = {
            "key": key.as_dict(),
            "file": data.name,
            "shape": list(array.shape),
            "dtype": str(array.dtype),
            "bytes": data.stat().st_size,
            "checksum": checksum,
            "created": time.time(),
        }
        temporary.write_text(json.dumps(manifest, indent=1))
        os.replace(temporary, self._manifest(digest))
        self.evict(keep=digest)
        return np.load(data, mmap_mode="r", allow_pickle=False)

    def entries(self) -> list[Entry]:
        """Every readable entry, least recently used first."""
        if not self.root.is_dir():
            return []
        found = [self.entry(path.stem) for path in self.root.glob("*.json")]
        return sorted((entry for entry in found if entry), key=lambda entry: entry.last_used)

    def remove(self, digest: str) -> None:
        """Delete entry ``digest`` (manifest first, so no reader finds a half-deleted entry)."""
        entry = self.entry(digest)
        with contextlib.suppress(OSError):
            self._manifest(digest).unlink()
        if entry is not None:
            with contextlib.suppress(OSError):
                (self.root / entry.file).unlink()

    def evict(self, *, keep: str | None = None) -> list[str]:
        """Remove least recently used entries until the total fits the cap; return their digests."""
        entries = self.entries()
        total = sum(entry.bytes for entry in entries)
        removed = []
        for entry in entries:
            if total <= self.max_bytes:
                break
            if entry.digest == keep:
                continue
            self.remove(entry.digest)
            total -= entry.bytes
            removed.append(entry.digest)
        self._remove_orphans({entry.file for entry in entries if entry.digest not in removed})
        return removed

    def clear(self, *, older_than_seconds: float | None = None) -> list[str]:
        """Remove every entry, or those unused for longer than ``older_than_seconds``."""
        now = time.time()
        removed = []
        for entry in self.entries():
            if older_than_seconds is None or now - entry.last_used > older_than_seconds:
                self.remove(entry.digest)
                removed.append(entry.digest)
        self._remove_orphans(
            {entry.file for entry in self.entries()},
            min_age=0.0 if older_than_seconds is None else ORPHAN_SECONDS,
        )
        return removed

    def _remove_orphans(self, named: set[str], min_age: float = ORPHAN_SECONDS) -> None:
        now = time.time()
        for path in [*self.root.glob("*.npy"), *self.root.glob(".tmp-*")]:
            with contextlib.suppress(OSError):
                if path.name not in named and now - path.stat().st_mtime > min_age:
                    path.unlink()
