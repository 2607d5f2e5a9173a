"""A user's weights file, checked before anything is built: whole, readable, and safe to load.

Reads the file only (h5py, zipfile), never TensorFlow: a truncated copy or a legacy full
model is refused in the time Hydra takes to compose, naming ``backbone.weights``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from capsweep.errors import CapsweepConfigError

KERAS_SUFFIX = ".keras"
HDF5_SUFFIXES = (".h5", ".hdf5")
WEIGHTS_SUFFIX = ".weights.h5"
SHARDED_SUFFIX = ".weights.json"  # Keras' sharded weights: an index beside .h5 shards


def is_legacy_h5(path: str | Path) -> bool:
    """Whether ``path`` is a legacy HDF5 file (``.h5``/``.hdf5`` but not ``.weights.h5``)."""
    name = str(path).lower()
    return name.endswith(HDF5_SUFFIXES) and not name.endswith(WEIGHTS_SUFFIX)


def check_weights_file(weights: str, *, allow_unsafe_h5: bool = False) -> None:
    """Raise unless the file at ``weights`` is whole and may be loaded.

    A truncated or corrupt HDF5 or ``.keras`` file is refused. So is a legacy ``.h5`` file
    that holds a whole model (``model.save("x.h5")``) unless ``allow_unsafe_h5``: Keras'
    ``safe_mode`` does not cover that format, whose config may carry code (a ``Lambda``
    layer's bytecode), so it is accepted only from a source the user trusts.
    """
    path = Path(weights).expanduser()
    name = path.name.lower()
    if name.endswith(SHARDED_SUFFIX):
        return
    if name.endswith(KERAS_SUFFIX):
        _check_zip(weights, path)
    elif name.endswith(HDF5_SUFFIXES):
        holds_model = _check_hdf5(weights, path)
        if holds_model and is_legacy_h5(path) and not allow_unsafe_h5:
            raise CapsweepConfigError(
                "backbone.weights",
                weights,
                "is a legacy .h5 file holding a whole model, whose config Keras cannot load "
                "in safe mode",
                fix="save the weights alone (model.save_weights('backbone.weights.h5')) or "
                "the model as .keras, or, if you trust the file, set backbone.allow_unsafe_h5=true",
            )
    else:
        raise CapsweepConfigError(
            "backbone.weights",
            weights,
            "is not a Keras weights file",
            fix="give a .weights.h5, .weights.json, .keras or .h5 file "
            "(keras.Model.save_weights or save)",
        )


def _check_hdf5(weights: str, path: Path) -> bool:
    """Open the file as HDF5 (which checks its length); return whether it holds a model."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            return "model_config" in file.attrs
    except OSError as error:
        raise CapsweepConfigError(
            "backbone.weights",
            weights,
            f"is truncated or not an HDF5 file ({_first_line(error)})",
            fix="copy the file again in full (its size should match the original)",
        ) from None


def _check_zip(weights: str, path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()  # reads every member and checks its CRC
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise CapsweepConfigError(
            "backbone.weights",
            weights,
            f"is truncated or not a .keras archive ({_first_line(error)})",
            fix="copy the file again in full (its size should match the original)",
        ) from None
    if broken is not None:
        raise CapsweepConfigError(
            "backbone.weights",
            weights,
            f"is corrupt: member {broken} fails its checksum",
            fix="copy the file again in full",
        )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
