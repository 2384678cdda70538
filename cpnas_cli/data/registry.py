"""Dataset names the CLI accepts and the one entry point that loads any of them.

Embedded, Fashion-MNIST and CIFAR-10 have a fixed image size; `image_size` only resizes the
folder dataset, and for the others must be omitted or equal their native size (a silent mismatch
would build a network for the wrong input).
"""

from pathlib import Path

from cpnas_cli.errors import UserError

from .cifar import load_cifar10
from .dataset import Dataset
from .embedded import load_embedded
from .fashion_mnist import load_fashion_mnist
from .folder import load_folder

DATASETS = ("embedded", "fashion-mnist", "cifar10", "folder")


def load_dataset(name: str, data_dir: str | None = None, image_size: int | None = None) -> Dataset:
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}", f"use one of: {', '.join(DATASETS)}")
    if image_size is not None and image_size < 1:
        raise UserError(f"image size must be a positive number of pixels, got {image_size}", "use e.g. --image-size 32")
    if name == "embedded" and data_dir is not None:
        raise UserError("--data-dir does not apply to the embedded dataset", "drop --data-dir, or pick another dataset")
    directory = _existing_dir(data_dir)
    if name == "folder":
        return load_folder(directory, image_size)
    dataset = _load_fixed_size(name, directory)
    _require_native_size(dataset, image_size)
    return dataset


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
