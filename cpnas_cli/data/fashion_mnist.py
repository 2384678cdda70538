"""Fashion-MNIST from its four IDX files: a --data-dir, else the Debian package's copy.

Search order with --data-dir D: D itself, then D/FashionMNIST/raw (where torchvision downloads),
then a torchvision download into D. Without --data-dir only the system copy installed by the
Debian package dataset-fashion-mnist is used, so nothing is written anywhere implicitly.
"""

from pathlib import Path

import torch

from cpnas_cli.errors import UserError

from .dataset import Dataset, check_labels
from .download import attempt_download
from .idx import read_idx

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
TORCHVISION_SUBDIR = Path("FashionMNIST") / "raw"
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
SIDE = 28
FIX = "install the Debian package dataset-fashion-mnist or pass --data-dir DIR holding the four idx .gz files"
DAMAGED_FIX = "replace it with the official file from https://github.com/zalandoresearch/fashion-mnist"


def load_fashion_mnist(data_dir: Path | None) -> Dataset:
    if data_dir is None:
        return load_idx_dataset("fashion-mnist", _require_files(SYSTEM_DIR), DAMAGED_FIX)
    files = find_idx_files(data_dir) or find_idx_files(data_dir / TORCHVISION_SUBDIR)
    return load_idx_dataset("fashion-mnist", files or _download(data_dir), DAMAGED_FIX)


def find_idx_files(directory: Path) -> dict[str, Path] | None:
    """The four files in `directory` by base name, gzipped or plain; None unless all four exist."""
    found = {name: path for name in FILES if (path := _existing_variant(directory, name)) is not None}
    return found if len(found) == len(FILES) else None


def load_idx_dataset(name: str, files: dict[str, Path], fix: str) -> Dataset:
    """Decode the four IDX files into a Dataset of [N, 1, 28, 28] images."""
    train_images, train_labels = _read_pair(files[TRAIN_IMAGES], files[TRAIN_LABELS], fix)
    test_images, test_labels = _read_pair(files[TEST_IMAGES], files[TEST_LABELS], fix)
    return Dataset(name, train_images, train_labels, test_images, test_labels, list(CLASSES))


def _read_pair(images_path: Path, labels_path: Path, fix: str) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(images_path, 3, fix)
    labels = read_idx(labels_path, 1, fix).long()
    if images.shape[1:] != (SIDE, SIDE):
        raise UserError(f"{images_path} holds {images.shape[1]}x{images.shape[2]} images, expected {SIDE}x{SIDE}", fix)
    if len(images) != len(labels):
        raise UserError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels", fix)
    check_labels(labels, len(CLASSES), str(labels_path), fix)
    return images.unsqueeze(1), labels


def _existing_variant(directory: Path, name: str) -> Path | None:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def _require_files(directory: Path) -> dict[str, Path]:
    files = find_idx_files(directory)
    if files is None:
        missing = [f"{name}.gz" for name in FILES if _existing_variant(directory, name) is None]
        raise UserError(f"Fashion-MNIST not found in {directory} (missing {', '.join(missing)})", FIX)
    return files


def _download(data_dir: Path) -> dict[str, Path]:
    def download():
        import torchvision.datasets  # slow to import; only this rare path needs it

        torchvision.datasets.FashionMNIST(str(data_dir), train=True, download=True)

    failure = attempt_download(download)
    if failure is not None:
        raise UserError(
            f"Fashion-MNIST not found in {data_dir} (need {', '.join(f'{n}.gz' for n in FILES)}) "
            f"and it could not be downloaded ({failure})",
            f"put those files (from https://github.com/zalandoresearch/fashion-mnist) into {data_dir}, "
            "or drop --data-dir to use the Debian package dataset-fashion-mnist",
        )
    return _require_files(data_dir / TORCHVISION_SUBDIR)
