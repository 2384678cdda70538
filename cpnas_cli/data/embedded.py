"""The Fashion-MNIST sample shipped inside the package (see embedded/README.md), usable offline anywhere.

8000 training and 2000 test images, class-balanced, in the same IDX files as the full set.
"""

from pathlib import Path

from cpnas_cli.errors import UserError

from .dataset import Dataset
from .fashion_mnist import FILES, find_idx_files, load_idx_dataset

EMBEDDED_DIR = Path(__file__).parent / "embedded"
FIX = "reinstall cpnas (its embedded sample is damaged), or use --dataset fashion-mnist"


def load_embedded() -> Dataset:
    files = find_idx_files(EMBEDDED_DIR)
    if files is None:
        needed = ", ".join(f"{name}.gz" for name in FILES)
        raise UserError(f"the embedded sample is missing from {EMBEDDED_DIR} (need {needed})", FIX)
    return load_idx_dataset("embedded", files, FIX)
