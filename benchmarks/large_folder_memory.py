"""How much memory and time does a large image folder take, decoded once and streamed?

Makes a synthetic folder of JPEGs (default 50,000 across 10 classes, 256 px, written in
parallel), then, each in a fresh process that reports its own peak resident memory
(``ru_maxrss``):

- new, cold: ``load_dataset(..., cache_dir=...)`` decodes into the cache entry, then one
  epoch of ``capsweep.train.inputs.batches`` over the training split;
- new, warm: the same with the entry already there (no decoding);
- old: today's in-memory loader before this change (a list of decoded images, np.stack,
  then train_test_split copies) on two smaller subsets, extrapolated linearly to the full
  count (it would not fit in memory at full size).

    uv run python benchmarks/large_folder_memory.py                    # 50,000 at 224 px
    uv run python benchmarks/large_folder_memory.py --images 20000 --old-images 4000
    uv run python benchmarks/large_folder_memory.py --folder /data/synthetic --keep

Disk: the JPEGs take ~15 KB each and the cache entry images × size² × 3 bytes (7.5 GB for
50,000 at 224 px); the script checks the free space first.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

JPEG_BYTES = 20_000  # a generous estimate per synthetic image, for the disk check


def make_folder(folder: Path, images: int, classes: int, source_size: int) -> float:
    """Write ``images`` JPEGs into ``classes`` sub-folders, in parallel; the seconds taken."""
    started = time.perf_counter()
    chunks = [range(start, min(images, start + 500)) for start in range(0, images, 500)]
    with ProcessPoolExecutor() as pool:
        list(
            pool.map(
                _write_chunk,
                chunks,
                [folder] * len(chunks),
                [classes] * len(chunks),
                [source_size] * len(chunks),
            )
        )
    return time.perf_counter() - started


def _write_chunk(numbers: range, folder: Path, classes: int, source_size: int) -> None:
    from PIL import Image

    side = np.linspace(0.0, 1.0, source_size, dtype=np.float32)
    for number in numbers:
        label = number % classes
        rng = np.random.default_rng(number)
        hue = np.array([label / classes, 1.0 - label / classes, 0.5], dtype=np.float32)
        low = rng.random((8, 8, 3), dtype=np.float32)
        blobs = np.kron(low, np.ones((source_size // 8, source_size // 8, 1), np.float32))
        ramp = side[:, None, None] * hue + side[None, :, None] * (1.0 - hue)
        noise = rng.normal(0.0, 0.04, (source_size, source_size, 3)).astype(np.float32)
        pixels = np.clip((0.5 * ramp + 0.4 * blobs + noise) * 255.0, 0, 255).astype(np.uint8)
        target = folder / f"class_{label:02d}"
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(target / f"img_{number:06d}.jpg", quality=90)


def child_new(folder: Path, cache: Path, size: int, batch_size: int) -> dict[str, Any]:
    """The new path: load through the cache, then stream one training epoch."""
    from capsweep.data import load_dataset
    from capsweep.settings import DataConfig
    from capsweep.settings.choices import DatasetName

    started = time.perf_counter()
    data = load_dataset(
        DataConfig(name=DatasetName.image_folder, path=str(folder)), size, cache_dir=cache
    )
    loaded = time.perf_counter()
    rss_after_load = _peak_rss_mb()

    import tensorflow as tf

    from capsweep.train.inputs import batches

    tf.constant(0)  # TensorFlow's own start-up, counted apart from the epoch
    rss_after_tensorflow = _peak_rss_mb()
    epoch_started = time.perf_counter()
    seen = 0
    for images, labels in batches(data.train, batch_size=batch_size, seed=0):
        seen += int(labels.shape[0])
        if images.shape[1] != size:
            raise RuntimeError(f"unexpected batch shape {images.shape}")
    epoch_seconds = time.perf_counter() - epoch_started
    if seen != len(data.train):
        raise RuntimeError(f"the epoch yielded {seen} images, not {len(data.train)}")
    return {
        "images": len(data.train) + len(data.val) + len(data.test),
        "train_images": seen,
        "load_seconds": round(loaded - started, 1),
        "epoch_seconds": round(epoch_seconds, 1),
        "peak_rss_mb_after_load": rss_after_load,
        "peak_rss_mb_after_tensorflow_import": rss_after_tensorflow,
        "peak_rss_mb": _peak_rss_mb(),
    }


def child_old(folder: Path, size: int, limit: int) -> dict[str, Any]:
    """The loader as it was before the cache: list → np.stack → copies on every split."""
    from PIL import Image
    from sklearn.model_selection import train_test_split

    from capsweep.data.image_folder import class_files

    files = class_files(folder)
    per_class = max(3, limit // len(files))
    started = time.perf_counter()
    images, labels = [], []
    for index, paths in enumerate(files.values()):
        for path in paths[:per_class]:
            with Image.open(path) as image:
                resized = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
                images.append(np.asarray(resized))
            labels.append(index)
    array, targets = np.stack(images), np.array(labels, dtype=np.int64)
    rest, _test, rest_labels, _ = train_test_split(
        array, targets, test_size=0.2, stratify=targets, random_state=0
    )
    train, _val, _, _ = train_test_split(
        rest, rest_labels, test_size=0.25, stratify=rest_labels, random_state=0
    )
    return {
        "images": len(targets),
        "load_seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": _peak_rss_mb(),
        "train_images": len(train),
    }


def _peak_rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # KiB on Linux


def run_child(*arguments: str) -> dict[str, Any]:
    """Run this script as a fresh process in child mode; its JSON report."""
    result = subprocess.run(
        [sys.executable, __file__, "--child", *arguments],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=224, help="input size the images load at")
    parser.add_argument("--source-size", type=int, default=256)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--old-images", type=int, default=5_000, help="largest old-path subset")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--folder", type=Path, help="where the synthetic folder goes (kept)")
    parser.add_argument("--workdir", type=Path, help="for the temporary folder and cache")
    parser.add_argument("--keep", action="store_true", help="keep the cache entry")
    parser.add_argument("--child", choices=["new", "old"], help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.child == "new":
        report = child_new(options.folder, options.cache, options.size, options.batch_size)
        print(json.dumps(report))
        return
    if options.child == "old":
        print(json.dumps(child_old(options.folder, options.size, options.limit)))
        return

    work = Path(tempfile.mkdtemp(prefix="capsweep-large-", dir=options.workdir))
    folder = options.folder or work / "images"
    cache = work / "cache" / "images"
    needed = options.images * (JPEG_BYTES + options.size**2 * 3)
    free = shutil.disk_usage(work).free
    if needed > 0.8 * free:
        sys.exit(f"needs ~{needed / 1e9:.1f} GB of disk, {free / 1e9:.1f} GB free at {work}")
    try:
        existing = sum(1 for _ in folder.glob("class_*/*.jpg")) if folder.is_dir() else 0
        if existing != options.images:
            seconds = make_folder(folder, options.images, options.classes, options.source_size)
            print(f"wrote {options.images:,} JPEGs ({options.source_size} px) in {seconds:.0f} s")
        common = ["--folder", str(folder), "--size", str(options.size)]
        batch = ["--batch-size", str(options.batch_size)]
        cold = run_child("new", *common, "--cache", str(cache), *batch)
        print("new, cold (decode into the cache + one epoch):", json.dumps(cold))
        warm = run_child("new", *common, "--cache", str(cache), *batch)
        print("new, warm (open the cache + one epoch):       ", json.dumps(warm))
        old = [
            run_child("old", *common, "--limit", str(limit))
            for limit in (options.old_images // 2, options.old_images)
        ]
        for report in old:
            print("old, in memory (decode + split only):          ", json.dumps(report))
        (small, large) = old
        per_image = (large["peak_rss_mb"] - small["peak_rss_mb"]) / (
            large["images"] - small["images"]
        )
        projected = large["peak_rss_mb"] + per_image * (cold["images"] - large["images"])
        print(
            f"\n{cold['images']:,} images at {options.size} px: new path peak RSS "
            f"{cold['peak_rss_mb']:,} MB cold / {warm['peak_rss_mb']:,} MB warm "
            f"(before TensorFlow: {cold['peak_rss_mb_after_load']:,} MB); old path projected "
            f"{projected:,.0f} MB ({per_image:.2f} MB per image) = "
            f"{projected / cold['peak_rss_mb_after_load']:.0f}× the new load, "
            f"{projected / cold['peak_rss_mb']:.1f}× the new load + TensorFlow + epoch"
        )
    finally:
        if options.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
