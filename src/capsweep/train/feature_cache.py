"""The feature cache: a transfer model's frozen prefix, computed once per backbone and data.

In a capacity sweep most trials share a frozen prefix of the same backbone. This module
looks up the features at a trial's cut (in this process's memory, then on disk, see
:mod:`capsweep.train.feature_store`) and, on a miss, computes them with one forward pass
that also yields the features at the other cuts the sweep will need (``cache.cuts``).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tensorflow as tf

from capsweep.data import Dataset
from capsweep.data.dataset import Split
from capsweep.model.split import (
    feature_extractor,
    find_cut,
    is_input_cut,
    planned_cut,
    stochastic_prefix_layers,
)
from capsweep.model.transfer import TransferModel
from capsweep.settings import CacheConfig, CapacityConfig
from capsweep.train.backbone_reuse import loaded_weights_fingerprint
from capsweep.train.feature_keys import (
    FeatureKey,
    ImagePool,
    config_fingerprint,
    image_pool,
    weights_fingerprint,
)
from capsweep.train.feature_store import FeatureStore, default_root
from capsweep.train.inputs import without_autotuning

log = logging.getLogger(__name__)

# Inference mode: the batch size changes no feature, only how many steps.
FEATURE_BATCH_SIZE = 256
# Images gathered (and held in memory) at a time while computing features.
FEATURE_CHUNK = 4096
# Entries kept open (memory-mapped) in this process across trials.
MEMORY_ENTRIES = 16
_memory: OrderedDict[str, np.ndarray] = OrderedDict()


@dataclass(frozen=True)
class TrialFeatures:
    """The features of one trial's splits at its cut, and what getting them cost."""

    cut: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    hit: bool
    # Seconds spent computing features (0 on a hit; lookups and hashing excluded).
    seconds: float
    # The entry's digest: what the features are of (backbone, weights, data, cut).
    key: str = ""


def cache_root(cache: CacheConfig, outputs: str) -> Path:
    """Where entries live: ``cache.dir``, else ``<paths.outputs>/cache/features``."""
    return Path(cache.dir).expanduser() if cache.dir else default_root(outputs)


def open_store(cache: CacheConfig, outputs: str) -> FeatureStore:
    """The on-disk store the settings name."""
    return FeatureStore(cache_root(cache, outputs), int(cache.max_gb * 1e9))


def cache_off_reason(
    transfer: TransferModel, capacity: CapacityConfig, augment: Sequence[str]
) -> str | None:
    """Why this trial cannot train on cached features, or None when it can."""
    if augment:
        return f"data.augment={list(augment)} changes the images every epoch"
    cut = find_cut(transfer.backbone)
    if is_input_cut(transfer.backbone, cut):
        return "every backbone block trains: there is no frozen prefix to cache"
    if capacity.train_bn:
        stochastic = stochastic_prefix_layers(transfer.backbone, cut)
        if stochastic:
            return (
                f"capacity.train_bn=true runs the frozen prefix's random layers "
                f"({', '.join(stochastic[:3])}) in training mode"
            )
    return None


def extra_cuts(
    transfer: TransferModel,
    capacity: CapacityConfig,
    unfreeze: Sequence[int],
    starts: Sequence[int] = (),
) -> list[str]:
    """The cuts of the other settings the sweep will train: the last ``unfreeze`` units,
    and ranges that start at ``starts`` (a cut depends only on the first unit that trains)."""
    backbone = transfer.backbone
    available = transfer.unfrozen.available
    cuts = [
        planned_cut(backbone, count, capacity.unit, train_bn=capacity.train_bn)
        for count in unfreeze
        if 0 <= count <= available
    ] + [
        planned_cut(backbone, 1, capacity.unit, position=start, train_bn=capacity.train_bn)
        for start in starts
        if 0 <= start < available
    ]
    return [cut for cut in dict.fromkeys(cuts) if not is_input_cut(backbone, cut)]


def base_key(
    transfer: TransferModel, preprocessing: str, input_size: int, dataset: str, dtype: str
) -> FeatureKey:
    """The key of this trial's features, with its cut to fill in."""
    backbone = transfer.backbone
    return FeatureKey(
        backbone=backbone.name,
        architecture=config_fingerprint(backbone.get_config()),
        weights=loaded_weights_fingerprint(backbone)
        or weights_fingerprint(np.asarray(weight) for weight in backbone.weights),
        preprocessing=preprocessing,
        input_size=input_size,
        dataset=dataset,
        cut="",
        dtype=dtype,
    )


def trial_features(
    transfer: TransferModel,
    data: Dataset,
    cache: CacheConfig,
    store: FeatureStore | None,
    *,
    capacity: CapacityConfig,
    preprocessing: str,
    input_size: int,
    cut: str | None = None,
    also: Sequence[str] = (),
) -> TrialFeatures:
    """The features of ``data``'s splits at the trial's cut, from the cache or computed.

    On a miss, one forward pass computes the features at the cut, at the cuts of
    ``cache.cuts`` and at ``also``, and stores each as its own entry.

    Args:
        cut: Another layer's features than the trial's cut (a linear probe's, at the
            backbone's output).
        also: Cuts to compute in the same pass on a miss (the probe's, for a trial).
    """
    splits = [data.train, data.val, data.test]
    pool = image_pool(splits)
    key = base_key(transfer, preprocessing, input_size, pool.fingerprint, cache.dtype)
    cut = cut or find_cut(transfer.backbone)
    own = replace(key, cut=cut)
    found = _lookup(own, store)
    seconds = 0.0
    if found is None:
        others = [*extra_cuts(transfer, capacity, cache.cuts or [], cache.starts or []), *also]
        wanted = [cut] + [
            other
            for other in dict.fromkeys(others)
            if other != cut and _lookup(replace(key, cut=other), store) is None
        ]
        started = time.perf_counter()
        computed = compute_features(transfer, pool, splits, wanted)
        seconds = time.perf_counter() - started
        for name, array in zip(wanted, computed, strict=True):
            stored = _store(replace(key, cut=name), array.astype(cache.dtype), store)
            if name == cut:
                features = stored
    else:
        features = found
    train, val, test = (np.asarray(features[rows], dtype=np.float32) for rows in pool.split_rows)
    return TrialFeatures(
        cut=cut,
        train=train,
        val=val,
        test=test,
        hit=found is not None,
        seconds=seconds,
        key=own.digest(),
    )


def compute_features(
    transfer: TransferModel, pool: ImagePool, splits: Sequence[Split], cuts: Sequence[str]
) -> list[np.ndarray]:
    """The features of the pool's distinct images at each of ``cuts``, in one forward pass.

    Images are gathered a chunk at a time, so a memory-mapped data set is never read whole.
    """
    prefix = feature_extractor(transfer.model, transfer.backbone, cuts)
    outputs: list[np.ndarray] = []
    for start in range(0, len(pool.first), FEATURE_CHUNK):
        chunk = pool.first[start : start + FEATURE_CHUNK]
        images = np.stack(
            [splits[split].source[splits[split].row_indices[position]] for split, position in chunk]
        )
        batches = without_autotuning(
            tf.data.Dataset.from_tensor_slices(images).batch(FEATURE_BATCH_SIZE)
        )
        computed = prefix.predict(batches, verbose=0)
        computed = computed if isinstance(computed, list) else [computed]
        if not outputs:
            outputs = [
                np.empty((len(pool.first), *array.shape[1:]), array.dtype) for array in computed
            ]
        for output, array in zip(outputs, computed, strict=True):
            output[start : start + len(array)] = array
    return outputs


def _lookup(key: FeatureKey, store: FeatureStore | None) -> np.ndarray | None:
    digest = key.digest()
    if digest in _memory:
        _memory.move_to_end(digest)
        if store is not None:
            store.touch(digest)
        return _memory[digest]
    array = store.load(key) if store is not None else None
    if array is not None:
        _remember(digest, array)
    return array


def _store(key: FeatureKey, array: np.ndarray, store: FeatureStore | None) -> np.ndarray:
    if store is not None:
        try:
            array = store.save(key, array)
        except OSError as error:
            log.warning("Could not write feature cache entry to %s (%s)", store.root, error)
    _remember(key.digest(), array)
    return array


def _remember(digest: str, array: np.ndarray) -> None:
    _memory[digest] = array
    _memory.move_to_end(digest)
    while len(_memory) > MEMORY_ENTRIES:
        _memory.popitem(last=False)


def forget_in_memory() -> None:
    """Drop this process's in-memory entries (tests; disk entries stay)."""
    _memory.clear()
