"""Image data: scikit-learn's bundled digits and image folders, as split in-memory arrays.

Knows no TensorFlow, MLflow, Optuna or Hydra: it receives typed settings.
"""

from capsweep.data.dataset import Dataset, Split
from capsweep.data.digits import digits_source, digits_target
from capsweep.data.image_folder import image_folder
from capsweep.data.loading import load_dataset, planned_num_classes

__all__ = [
    "Dataset",
    "Split",
    "digits_source",
    "digits_target",
    "image_folder",
    "load_dataset",
    "planned_num_classes",
]
