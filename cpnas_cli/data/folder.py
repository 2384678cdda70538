"""Any image classification set laid out as D/train/<class>/*.png and D/test/<class>/* (or D/val/<class>/*).

Class names are the sorted subfolder names of D/train (hidden ones skipped); label i is the i-th.
Only files directly inside a class folder with a .png/.jpg/.jpeg/.bmp suffix count; anything else
(notes, .DS_Store) is ignored. An image is converted to RGB (grayscale files are replicated to 3
channels: one rule for mixed folders, and 3 channels cost nothing measurable), then the centre
square of side `crop_fraction` x its shorter side is scaled to `image_size` (default 32 px, all
of the shorter side).

Small sets are decoded once into one uint8 tensor. A set whose decoded size, 3 x image_size^2
bytes per train and test image, exceeds half the memory this process may still take
(memory.py) is streamed instead: its images stay on disk and are decoded per batch in worker
processes (image_files.py; ImageNet at 224 px would be about 190 GB). The other half is left to
the networks, their optimizer state, the batches and the rest of the process. `streaming`
True or False forces a path.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from cpnas_cli.errors import UserError

from .dataset import Dataset
from .image_files import ImageFiles, decode_centre
from .memory import available_memory

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
TEST_SPLITS = ("test", "val")
DEFAULT_IMAGE_SIZE = 32
LAYOUT_FIX = (
    "arrange images as DIR/train/<class>/*.png and DIR/test/<class>/*.png (or DIR/val/...) and pass --data-dir DIR"
)


def load_folder(
    data_dir: Path | None,
    image_size: int | None,
    streaming: bool | None = None,
    workers: int = 0,
    crop_fraction: float = 1.0,
) -> Dataset:
    """`streaming` None: decide by the rule of the module docstring; `workers`: decoding processes
    of the streaming path (0: the main process)."""
    if data_dir is None:
        raise UserError("the folder dataset needs --data-dir", LAYOUT_FIX)
    size = DEFAULT_IMAGE_SIZE if image_size is None else image_size
    train_dir = data_dir / "train"
    if not train_dir.is_dir():
        raise UserError(f"{train_dir} does not exist", LAYOUT_FIX)
    test_dir = _test_dir(data_dir)
    classes = _class_names(train_dir)
    _require_same_classes(classes, train_dir, _class_names(test_dir), test_dir)
    (train_paths, train_labels), (test_paths, test_labels) = (_list_split(d, classes) for d in (train_dir, test_dir))
    if streaming is None:
        streaming = must_stream(len(train_paths) + len(test_paths), size, available_memory())
    train_images: torch.Tensor | ImageFiles
    test_images: torch.Tensor | ImageFiles
    if streaming:
        train_images, test_images = (ImageFiles(p, size, crop_fraction, workers) for p in (train_paths, test_paths))
    else:
        train_images, test_images = (_decode_all(p, size, crop_fraction) for p in (train_paths, test_paths))
    return Dataset("folder", train_images, train_labels, test_images, test_labels, classes)


def must_stream(images: int, size: int, available: int | None) -> bool:
    """Whether `images` decoded at `size` px (3 x size^2 bytes each) exceed half of `available`
    bytes; where the system does not say what is available, decode into memory (as before)."""
    return available is not None and 3 * size * size * images > available // 2


def _test_dir(data_dir: Path) -> Path:
    for split in TEST_SPLITS:
        if (data_dir / split).is_dir():
            return data_dir / split
    raise UserError(f"{data_dir} has neither a test/ nor a val/ folder", LAYOUT_FIX)


def _class_names(split_dir: Path) -> list[str]:
    names = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise UserError(f"{split_dir} has no class subfolders", LAYOUT_FIX)
    return names


def _require_same_classes(classes: list[str], train_dir: Path, test_classes: list[str], test_dir: Path) -> None:
    if classes == test_classes:
        return
    only_train = sorted(set(classes) - set(test_classes))
    only_test = sorted(set(test_classes) - set(classes))
    raise UserError(
        f"{train_dir} and {test_dir} have different classes (only in train: {only_train or 'none'}; "
        f"only in {test_dir.name}: {only_test or 'none'})",
        "give both splits the same class subfolders",
    )


def _list_split(split_dir: Path, classes: list[str]) -> tuple[list[Path], torch.Tensor]:
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = _image_files(split_dir / name)
        paths += files
        labels += [label] * len(files)
    return paths, torch.tensor(labels, dtype=torch.int64)


def _decode_all(paths: list[Path], size: int, crop_fraction: float) -> torch.Tensor:
    """uint8 [N, 3, size, size], each image written straight into its slot: the decoded set is
    held once, not once more as a list and again as a stacked copy."""
    images = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)

    def decode_into(index: int) -> None:
        pixels = decode_centre(paths[index], size, crop_fraction)  # read-only HWC: copied into place
        images[index].copy_(torch.as_tensor(pixels.copy()).permute(2, 0, 1))

    # PIL releases the GIL while decoding and resizing, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(decode_into, range(len(paths))))  # list(): re-raises the first error
    return images


def _image_files(class_dir: Path) -> list[Path]:
    files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not files:
        raise UserError(f"{class_dir} holds no {'/'.join(EXTENSIONS)} images", "add images or remove the folder")
    return files
