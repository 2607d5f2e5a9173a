"""The console commands and the Hydra layer: the only code that reads Hydra's composed config.

``capsweep`` (:mod:`capsweep.cli.app`), ``capsweep-plan`` (:mod:`capsweep.cli.plan`) and
``capsweep-report`` (:mod:`capsweep.cli.report`) turn Hydra's composed config into checked
settings (:mod:`capsweep.hydra_settings`) and wire the parts together.
"""
