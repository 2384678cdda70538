"""CIFAR-10 in torchvision's on-disk layout: D/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}.

Each batch is a pickled dict with b'data' (uint8 [N, 3072]: the 1024 red, then green, then blue
pixels of each image, rows top to bottom) and b'labels'; batches.meta holds b'label_names'.
So a plain reshape to [N, 3, 32, 32] is already channels-first. When the folder is missing,
one torchvision download into D is attempted.
"""

from pathlib import Path

import numpy as np
import torch

from cpnas_cli.errors import UserError

from .dataset import Dataset, check_labels
from .download import attempt_download
from .safe_pickle import load_data_pickle

BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
SIDE = 32
SHAPE = (3, SIDE, SIDE)


def load_cifar10(data_dir: Path | None) -> Dataset:
    if data_dir is None:
        raise UserError("cifar10 needs --data-dir", f"pass --data-dir DIR; CIFAR-10 is read from DIR/{BATCH_DIR}")
    batch_dir = data_dir / BATCH_DIR
    fix = (
        "download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html "
        f"and extract it into {data_dir}"
    )
    if _missing_files(batch_dir):
        _download(data_dir, fix)
    classes = _read_class_names(batch_dir / META, fix)
    train = [_read_batch(batch_dir / name, len(classes), fix) for name in TRAIN_BATCHES]
    test_images, test_labels = _read_batch(batch_dir / TEST_BATCH, len(classes), fix)
    train_images = torch.cat([images for images, _ in train])
    train_labels = torch.cat([labels for _, labels in train])
    return Dataset("cifar10", train_images, train_labels, test_images, test_labels, classes)


def _missing_files(batch_dir: Path) -> list[str]:
    return [name for name in (*TRAIN_BATCHES, TEST_BATCH, META) if not (batch_dir / name).is_file()]


def _download(data_dir: Path, fix: str) -> None:
    def download():
        import torchvision.datasets  # slow to import; only this rare path needs it

        torchvision.datasets.CIFAR10(str(data_dir), train=True, download=True)

    failure = attempt_download(download)
    missing = _missing_files(data_dir / BATCH_DIR)
    if failure is not None or missing:
        reason = f" ({failure})" if failure is not None else f" (still missing {', '.join(missing)})"
        raise UserError(
            f"CIFAR-10 not found under {data_dir / BATCH_DIR} and it could not be downloaded (offline?){reason}", fix
        )


def _read_class_names(path: Path, fix: str) -> list[str]:
    meta = _unpickle_dict(path, fix)
    names = meta.get(b"label_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, (bytes, str)) for n in names):
        raise UserError(f"{path} has no b'label_names' list of class names", fix)
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


def _read_batch(path: Path, num_classes: int, fix: str) -> tuple[torch.Tensor, torch.Tensor]:
    batch = _unpickle_dict(path, fix)
    data, labels = batch.get(b"data"), batch.get(b"labels")
    pixels = int(np.prod(SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != pixels:
        found = f"{data.dtype} {list(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise UserError(f"{path}: b'data' must be uint8 [N, {pixels}], found {found}", fix)
    try:
        labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    except (TypeError, ValueError) as err:
        raise UserError(f"{path}: b'labels' is not a list of integers ({err})", fix) from err
    if labels.shape != (len(data),):
        raise UserError(f"{path} has {len(data)} images but {labels.numel()} labels", fix)
    check_labels(labels, num_classes, str(path), fix)
    # np.require copies only when needed: torch.from_numpy wants a writable, C-ordered array.
    images = torch.from_numpy(np.require(data, np.uint8, ["C", "W"])).view(-1, *SHAPE)
    return images, labels


def _unpickle_dict(path: Path, fix: str) -> dict:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {path} ({err.strerror or err})", fix) from err
    try:
        content = load_data_pickle(data)
    # A damaged pickle can fail in many ways (EOFError, UnpicklingError, ValueError, ...).
    except Exception as err:
        raise UserError(
            f"{path} is not a readable CIFAR-10 python batch ({str(err) or type(err).__name__})", fix
        ) from err
    if not isinstance(content, dict):
        raise UserError(f"{path} is not a CIFAR-10 python batch (holds a {type(content).__name__}, not a dict)", fix)
    return content
