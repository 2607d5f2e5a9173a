"""``capsweep-cache``: list or clear the feature cache.

    capsweep-cache list [--outputs outputs]
    capsweep-cache clear [--outputs outputs] [--older-than 7d]

Entries live under ``<outputs>/cache/features`` (``cache.dir`` when set: pass ``--dir``).
Reads manifests only: no TensorFlow, answers in a second.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from capsweep.train.feature_store import FeatureStore, default_root

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> float:
    """Seconds in an age such as ``90``, ``30m``, ``12h`` or ``7d``.

    Raises:
        ValueError: not a number with an optional unit s, m, h or d.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"--older-than {text!r}: expected e.g. 90, 30m, 12h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000  # type: ignore[assignment]
    return str(size)


def list_entries(store: FeatureStore) -> str:
    """One line per entry, most recently used first, and the total."""
    entries = list(reversed(store.entries()))
    if not entries:
        return f"No cached features under {store.root}"
    lines = [f"{len(entries)} entries under {store.root}:"]
    for entry in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
        lines.append(
            f"  {entry.digest[:12]}  {_size(entry.bytes):>9}  used {used}  {entry.summary()}"
        )
    lines.append(f"total {_size(sum(entry.bytes for entry in entries))}")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="capsweep-cache", description=__doc__.split("\n")[0])
    parse.add_argument("action", choices=("list", "clear"))
    parse.add_argument("--outputs", default="outputs", help="paths.outputs (default: outputs)")
    parse.add_argument("--dir", default=None, help="cache.dir, when set (overrides --outputs)")
    parse.add_argument(
        "--older-than",
        default=None,
        help="clear: only entries unused for this long (90, 30m, 12h, 7d); default all",
    )
    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``capsweep-cache``; return the exit code."""
    arguments = parser().parse_args(argv)
    root = Path(arguments.dir).expanduser() if arguments.dir else default_root(arguments.outputs)
    store = FeatureStore(root, max_bytes=0)  # the cap only matters when writing
    if arguments.action == "list":
        print(list_entries(store))
        return 0
    try:
        older_than = None if arguments.older_than is None else parse_age(arguments.older_than)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    removed = store.clear(older_than_seconds=older_than)
    print(f"Removed {len(removed)} entries from {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
