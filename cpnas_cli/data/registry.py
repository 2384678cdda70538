"""Dataset names the CLI accepts and the one entry point that loads any of them.

Embedded, Fashion-MNIST and CIFAR-10 have a fixed image size; `image_size` only resizes the
folder dataset, and for the others must be omitted or equal their native size (a silent mismatch
would build a network for the wrong input). Likewise only a folder dataset can be streamed from
disk or centre-cropped (`streaming`, `crop_fraction`; folder.py): the others fit in memory.
"""

import os
from pathlib import Path

from cpnas_cli.errors import UserError

from .cifar import load_cifar10
from .dataset import Dataset
from .embedded import load_embedded
from .fashion_mnist import load_fashion_mnist
from .folder import load_folder

DATASETS = ("embedded", "fashion-mnist", "cifar10", "folder")
MAX_AUTO_WORKERS = 16  # decoding processes when not set: the cores this process may use, at most this many


def load_dataset(
    name: str,
    data_dir: str | None = None,
    image_size: int | None = None,
    streaming: bool | str = "auto",
    workers: int | None = None,
    crop_fraction: float = 1.0,
) -> Dataset:
    """`streaming`: True, False or "auto" (folder.py's rule); `workers`: decoding processes of a
    streamed dataset (None: one per usable core, at most MAX_AUTO_WORKERS)."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}", f"use one of: {', '.join(DATASETS)}")
    if image_size is not None and image_size < 1:
        raise UserError(f"image size must be a positive number of pixels, got {image_size}", "use e.g. --image-size 32")
    if name == "embedded" and data_dir is not None:
        raise UserError("--data-dir does not apply to the embedded dataset", "drop --data-dir, or pick another dataset")
    directory = _existing_dir(data_dir)
    if name == "folder":
        forced = None if streaming == "auto" else bool(streaming)
        return load_folder(directory, image_size, forced, _workers(workers), crop_fraction)
    if streaming is True or crop_fraction != 1.0:
        raise UserError(
            f"{name} is held in memory as it is: data.streaming and data.crop_fraction apply to folder datasets only",
            "drop them (data.streaming=auto, data.crop_fraction=1), or use --dataset folder",
        )
    dataset = _load_fixed_size(name, directory)
    _require_native_size(dataset, image_size)
    return dataset


def load_configured(settings) -> Dataset:
    """The dataset a config's `data` section names (config.DataConfig; this layer cannot import it)."""
    s = settings
    return load_dataset(s.dataset, s.data_dir, s.image_size, s.streaming, s.workers, s.crop_fraction)


def _workers(workers: int | None) -> int:
    if workers is not None:
        return workers
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(usable, MAX_AUTO_WORKERS)


def _load_fixed_size(name: str, directory: Path | None) -> Dataset:
    if name == "embedded":
        return load_embedded()
    if name == "fashion-mnist":
        return load_fashion_mnist(directory)
    return load_cifar10(directory)


def _existing_dir(data_dir: str | None) -> Path | None:
    if data_dir is None:
        return None
    directory = Path(data_dir).expanduser()
    # Refuse to create it: a mistyped path would otherwise receive a download.
    if not directory.is_dir():
        state = "is not a directory" if directory.exists() else "does not exist"
        raise UserError(
            f"data directory {directory} {state}", "create it (datasets are downloaded into it) or fix --data-dir"
        )
    return directory


def _require_native_size(dataset: Dataset, image_size: int | None) -> None:
    if image_size is not None and image_size != dataset.image_size:
        raise UserError(
            f"{dataset.name} images are {dataset.image_size}x{dataset.image_size}, not {image_size}x{image_size}",
            f"omit --image-size (it only resizes the folder dataset) or set it to {dataset.image_size}",
        )
