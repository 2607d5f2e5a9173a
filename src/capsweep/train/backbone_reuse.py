"""Hand a trial the backbone the previous trial of its process built, weights put back.

Building a keras.applications backbone and loading its weights file took ~1 s per trial
(MobileNetV2 at 64 px: 0.6 s to build, 0.35 s to load; the small_resnet default 0.3 s),
as much as a head's training steps on cached features. The trials of a sweep that run one
after another in one process ask for the same backbone, so the last one built is kept
with a copy of the weights it was loaded with. Handing it out again sets those weights
back (training changed the unfrozen ones: 0.03 s for MobileNetV2) and forgets the calls
the previous trial's models made of its layers; the trial then freezes and unfreezes its
layers as it does a new backbone's.

Not kept: a randomly initialized backbone (its weights depend on the seed), and one whose
random layers (dropout) would run during training (``capacity.train_bn``: the backbone
is called in training mode), since their random state is not part of the weights.

A layer records each call of it as a node in Keras' private ``_inbound_nodes`` and
``_outbound_nodes`` lists; forgetting a trial's calls truncates them to what the backbone
itself made. If Keras renames them, trials with a weights file fail at once, and
``tests/test_backbone_reuse.py`` says why.
"""

from __future__ import annotations

import gc
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from capsweep.model.backbones import build_configured_backbone
from capsweep.settings import BackboneConfig
from capsweep.train.feature_keys import weights_fingerprint

NODE_LISTS = ("_inbound_nodes", "_outbound_nodes")


@dataclass
class _Kept:
    key: Hashable
    backbone: keras.Model
    weights: list[Any]
    # For the backbone and each of its layers: the length of each node list when built.
    nodes: list[tuple[Any, tuple[int, ...]]]
    # The loaded weights' fingerprint (the feature cache's key), computed once.
    fingerprint: str | None = None


_kept: _Kept | None = None


def reuse_key(
    backbone: BackboneConfig, weights: str | None, *, train_bn: bool, dtype_policy: str
) -> Hashable | None:
    """What makes two requests the same backbone; None: never reuse it.

    A weights file counts with its inode, size and modification and change times, so a
    file written again or replaced (pretrained anew, copied over) is loaded again.
    """
    if weights is None or train_bn:
        return None
    source: Hashable = weights
    path = Path(weights).expanduser()
    if path.is_file():
        stat = path.stat()
        source = (
            str(path.resolve()),
            stat.st_ino,
            stat.st_size,
            stat.st_mtime_ns,
            stat.st_ctime_ns,
        )
    return (
        backbone.name,
        backbone.input_size,
        tuple(backbone.filters),
        backbone.blocks_per_stage,
        backbone.allow_unsafe_h5,
        source,
        dtype_policy,
    )


def trial_backbone(
    backbone: BackboneConfig, weights: str | None, *, train_bn: bool
) -> tuple[keras.Model, bool]:
    """The backbone for a trial, and whether it is the previous trial's, reused.

    Call inside the trial's dtype policy scope (it is part of what must match). A reused
    backbone is the previous trial's own object: that trial's model is not to be used
    once the next trial has its backbone (its backbone weights are put back).
    """
    global _kept
    key = reuse_key(
        backbone, weights, train_bn=train_bn, dtype_policy=keras.config.dtype_policy().name
    )
    if key is not None and _kept is not None and _kept.key == key:
        _restore(_kept)
        return _kept.backbone, True
    forget_kept_backbone()  # free the previous one before building another
    model = build_configured_backbone(backbone, weights)
    if key is not None:
        _kept = _Kept(key, model, model.get_weights(), _node_counts(model))
    return model, False


def loaded_weights_fingerprint(backbone: keras.Model) -> str | None:
    """The fingerprint of the weights ``backbone`` was loaded with, if it is the kept one.

    Hashing every weight took a trial ~0.1-0.2 s for ResNet50; the kept backbone's loaded
    weights are hashed once. Valid while the trial has not trained yet (its weights are
    then the loaded ones, set back by :func:`trial_backbone`); ``None`` for any other.
    """
    if _kept is None or _kept.backbone is not backbone:
        return None
    if _kept.fingerprint is None:
        _kept.fingerprint = weights_fingerprint(np.asarray(w) for w in _kept.weights)
    return _kept.fingerprint


def forget_kept_backbone() -> None:
    """Build the next trial's backbone anew; free the kept one now."""
    global _kept
    if _kept is not None:
        _kept = None
        gc.collect()  # layers and their nodes hold each other: only a collection frees them


def _operations(model: keras.Model) -> list[Any]:
    return [model, *model.layers]


def _node_counts(model: keras.Model) -> list[tuple[Any, tuple[int, ...]]]:
    return [
        (operation, tuple(len(getattr(operation, name)) for name in NODE_LISTS))
        for operation in _operations(model)
    ]


def _restore(kept: _Kept) -> None:
    for operation, counts in kept.nodes:
        for name, count in zip(NODE_LISTS, counts, strict=True):
            del getattr(operation, name)[count:]
    kept.backbone.set_weights(kept.weights)
