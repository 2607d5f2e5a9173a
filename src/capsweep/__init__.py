"""capsweep: find how much of a pretrained backbone a transfer-learning problem needs."""

__version__ = "0.1.0"
