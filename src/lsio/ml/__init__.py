"""Level 5: training data: random crops of labelled datasets, batched and prefetched."""

from lsio.ml._loader import Loader
from lsio.ml._sampler import CropSampler, Samples

__all__ = ["CropSampler", "Loader", "Samples"]
