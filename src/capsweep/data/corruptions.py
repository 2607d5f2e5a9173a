"""Input-level shifts of the digits target task: one fixed corrupted data set per kind.

As CIFAR-10-C is to CIFAR-10, each corruption is applied once per image and is the same
every time the data set is loaded: noise is drawn from a generator seeded by the image's
position, so every trial and repeat sees the same corrupted images. Pure NumPy and PIL.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from capsweep.settings.choices import Corruption

NOISE_STD = 64.0  # of 255
BLUR_RADIUS = 2.0  # pixels at 32 px, scaled with the image side
CONTRAST = 0.3  # the range kept, around mid-grey
NOISE_SEED = 20230101


def corrupt(images: np.ndarray, corruption: str) -> np.ndarray:
    """``images`` (uint8, n × side × side × 3) with ``corruption`` applied to each."""
    kind = Corruption(corruption)
    if kind is Corruption.none:
        return images
    if kind is Corruption.invert:
        return 255 - images
    if kind is Corruption.contrast:
        squeezed = 127.5 + (images.astype(np.float32) - 127.5) * CONTRAST
        return np.rint(squeezed).astype(np.uint8)
    if kind is Corruption.noise:
        noisy = np.empty_like(images)
        for index, image in enumerate(images):
            generator = np.random.default_rng([NOISE_SEED, index])
            values = image.astype(np.float32) + generator.normal(0.0, NOISE_STD, image.shape)
            noisy[index] = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return noisy
    radius = BLUR_RADIUS * images.shape[1] / 32
    blurred = [
        np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))
        for image in images
    ]
    return np.stack(blurred).astype(np.uint8)
