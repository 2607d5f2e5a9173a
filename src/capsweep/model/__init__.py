"""The transfer model: backbones, their blocks, what a capacity setting unfreezes, heads.

Knows Keras, and no MLflow, Optuna or Hydra: it receives typed settings. Import the
modules themselves (``capsweep.model.capacity``); this package stays light to import.
"""
