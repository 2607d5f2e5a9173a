"""Load the configured target data set, or count its classes without loading it."""

from __future__ import annotations

from pathlib import Path

from capsweep.data.dataset import Dataset
from capsweep.data.digits import digits_target
from capsweep.data.image_folder import class_files, image_folder
from capsweep.errors import CapsweepConfigError
from capsweep.settings import DataConfig
from capsweep.settings.choices import DatasetName
from capsweep.settings.validate import check_data


def load_dataset(data: DataConfig, size: int, *, cache_dir: Path | None = None) -> Dataset:
    """Load the configured target data set at ``size``² pixels.

    ``cache_dir`` keeps an image folder's decoded images between loads (see
    ``capsweep.data.decoded``); None decodes them into memory each time. Digits ignore it.
    """
    check_data(data)
    if data.name == DatasetName.digits:
        return digits_target(data, size)
    return image_folder(data, size, cache_dir=cache_dir)


def planned_num_classes(data: DataConfig) -> int:
    """The number of classes, without loading images (for ``capsweep-plan``)."""
    if data.num_classes is not None:
        return data.num_classes
    if data.name == DatasetName.digits:
        return len(data.target_classes)
    root = Path(str(data.path or "")).expanduser()
    if data.path and root.is_dir():
        return len(class_files(root))  # the classes image_folder() loads
    raise CapsweepConfigError(
        "data.num_classes",
        None,
        "is needed to plan without data",
        fix="pass data.num_classes=<n>",
    )
