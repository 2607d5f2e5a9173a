"""capsweep's typed settings, the names they may take, and the one pass that checks them."""

from capsweep.settings.schema import (
    BackboneConfig,
    CacheConfig,
    CapacityConfig,
    CapsweepConfig,
    DataConfig,
    HeadConfig,
    PathsConfig,
    PretrainConfig,
    TrackingConfig,
    TrainerConfig,
    TrialContext,
    Unit,
    as_plain_dict,
)
from capsweep.settings.validate import check_settings

__all__ = [
    "BackboneConfig",
    "CacheConfig",
    "CapacityConfig",
    "CapsweepConfig",
    "DataConfig",
    "HeadConfig",
    "PathsConfig",
    "PretrainConfig",
    "TrackingConfig",
    "TrainerConfig",
    "TrialContext",
    "Unit",
    "as_plain_dict",
    "check_settings",
]
