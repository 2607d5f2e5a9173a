"""Training: fit-and-evaluate, one trial, source pretraining, and what a trial gives back.

Knows Keras and the model and data parts, and no MLflow, Optuna or Hydra: a trial records
through any :class:`capsweep.train.trial.Recorder` it is handed. Import the modules
themselves; this package stays light to import.
"""
