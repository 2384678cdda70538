"""Datasets for cpnas: loading (embedded sample, Fashion-MNIST, CIFAR-10, image folders), the search
split, normalization, batched augmentation and resumable mini-batches."""

from .augmentation import Augment, augment
from .batching import batches, num_batches
from .dataset import Dataset
from .pixels import normalize
from .registry import DATASETS, load_configured, load_dataset
from .seeds import derive_seed
from .split import holdout_split, search_split, validation_size

__all__ = [
    "DATASETS",
    "Augment",
    "Dataset",
    "augment",
    "batches",
    "derive_seed",
    "holdout_split",
    "load_configured",
    "load_dataset",
    "normalize",
    "num_batches",
    "search_split",
    "validation_size",
]
