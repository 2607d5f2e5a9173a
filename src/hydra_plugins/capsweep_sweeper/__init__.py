"""capsweep's Hydra sweeper: Optuna ask/tell over Hydra's launchers.

Discovery imports this package at every Hydra start-up, so it stays light: Optuna,
MLflow and capsweep's sweep loop are imported inside ``sweep()``. TensorFlow never is.
"""
