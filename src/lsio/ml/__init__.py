"""Level 5: training data: random crops of labelled datasets, batched and prefetched."""

from lsio.ml._loader import Loader
from lsio.ml._sampler import CropSampler, Samples, random_crops
from lsio.ml._synthetic import make_sat_nwp
from lsio.ml._torch import torch_dataset
from lsio.ml._transforms import Downsample, Normalize

__all__ = [
    "CropSampler",
    "Downsample",
    "Loader",
    "Normalize",
    "Samples",
    "make_sat_nwp",
    "random_crops",
    "torch_dataset",
]
