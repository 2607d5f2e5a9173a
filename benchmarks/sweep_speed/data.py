"""The data set every path trains on: scikit-learn's digits written as an image folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from capsweep.data import Dataset


def write_digits_folder(root: Path) -> int:
    """Write scikit-learn's digits as ``root/<digit>/<index>.png`` (8×8 grayscale, 0–255).

    Returns:
        How many images were written (1,797).
    """
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    for index, (image, label) in enumerate(zip(pixels, bunch.target, strict=True)):
        folder = root / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{index:04d}.png")
    return len(pixels)


def load_split_folder(spec: dict[str, Any], cache_dir: Path | None = None) -> Dataset:
    """The image folder split as capsweep's trials split it (``data.split_seed`` 0).

    Args:
        spec: ``data_dir``, ``size``, ``val_fraction`` and ``test_fraction``.
        cache_dir: Decode the folder once into this folder and memory-map it, as a trial
            does (its batches are then gathered as a trial's are); None: decode into memory.
    """
    from capsweep.data import load_dataset
    from capsweep.settings import DataConfig
    from capsweep.settings.choices import DatasetName

    config = DataConfig(
        name=DatasetName.image_folder,
        path=spec["data_dir"],
        val_fraction=spec["val_fraction"],
        test_fraction=spec["test_fraction"],
    )
    return load_dataset(config, spec["size"], cache_dir=cache_dir)
