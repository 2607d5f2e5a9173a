"""Image data: scikit-learn's bundled digits and image folders, split stratified and seeded.

Image folders are decoded once into a memory-mapped cache entry (``decoded``) when a cache
folder is given; splits hold row indices into one shared array rather than copies.

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
