"""Any image classification set laid out as D/train/<class>/*.png and D/test/<class>/* (or D/val/<class>/*).

Class names are the sorted subfolder names of D/train (hidden ones skipped); label i is the i-th.
Only files directly inside a class folder with a .png/.jpg/.jpeg/.bmp suffix count; anything else
(notes, .DS_Store) is ignored. Every image is decoded once, converted to RGB (grayscale files are
replicated to 3 channels: one rule for mixed folders, and 3 channels cost nothing measurable),
then its shorter side is scaled to `image_size` and the centre square cropped (default 32 px).
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from cpnas_cli.errors import UserError

from .dataset import Dataset

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
TEST_SPLITS = ("test", "val")
DEFAULT_IMAGE_SIZE = 32
LAYOUT_FIX = (
    "arrange images as DIR/train/<class>/*.png and DIR/test/<class>/*.png (or DIR/val/...) and pass --data-dir DIR"
)


def load_folder(data_dir: Path | None, image_size: int | None) -> Dataset:
    if data_dir is None:
        raise UserError("the folder dataset needs --data-dir", LAYOUT_FIX)
    size = DEFAULT_IMAGE_SIZE if image_size is None else image_size
    train_dir = data_dir / "train"
    if not train_dir.is_dir():
        raise UserError(f"{train_dir} does not exist", LAYOUT_FIX)
    test_dir = _test_dir(data_dir)
    classes = _class_names(train_dir)
    _require_same_classes(classes, train_dir, _class_names(test_dir), test_dir)
    train_images, train_labels = _load_split(train_dir, classes, size)
    test_images, test_labels = _load_split(test_dir, classes, size)
    return Dataset("folder", train_images, train_labels, test_images, test_labels, classes)


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


def _load_split(split_dir: Path, classes: list[str], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = _image_files(split_dir / name)
        paths += files
        labels += [label] * len(files)
    # PIL releases the GIL while decoding and resizing, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        pixels = np.stack(list(pool.map(lambda path: _decode(path, size), paths)))
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()  # HWC -> CHW
    return images, torch.tensor(labels, dtype=torch.int64)


def _image_files(class_dir: Path) -> list[Path]:
    files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not files:
        raise UserError(f"{class_dir} holds no {'/'.join(EXTENSIONS)} images", "add images or remove the folder")
    return files


def _decode(path: Path, size: int) -> np.ndarray:
    """uint8 [size, size, 3]: RGB, shorter side scaled to `size`, centre-cropped."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG only: decode straight at a reduced scale, much faster
            square = ImageOps.fit(image.convert("RGB"), (size, size), Image.Resampling.BILINEAR)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"cannot decode image {path} ({err})", "replace or delete the damaged file") from err
    return np.asarray(square)
