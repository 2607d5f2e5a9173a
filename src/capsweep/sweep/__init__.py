"""Sweeps: the Optuna ask/tell loop behind ``capsweep -m``, search spaces, pruning, storage.

Part of the Hydra layer (the loop runs inside capsweep's Hydra sweeper) and never imports
TensorFlow: a sweep driver starts in seconds and may run on a login node without a GPU.
Import the modules themselves; this package stays light to import.
"""
