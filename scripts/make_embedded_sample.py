"""Regenerate cpnas_cli/data/embedded/: a class-balanced sample of the official Fashion-MNIST.

Takes 800 training images per class from the official training set and 200 test images per class
from the official test set. Within each class, images are ranked by derive_seed(SEED, split, index)
(sha256, so independent of library versions and random number generators) and the lowest-ranked
are kept; the kept images stay in their official order. Files are gzipped with mtime=0, so
reruns produce byte-identical files (with the same zlib).

    PYTHONPATH=. python scripts/make_embedded_sample.py [--source /usr/share/datasets/fashion-mnist]
"""

import argparse
import hashlib
from pathlib import Path

import torch

from cpnas_cli.data.embedded import EMBEDDED_DIR
from cpnas_cli.data.fashion_mnist import (
    CLASSES,
    DAMAGED_FIX,
    FIX,
    SYSTEM_DIR,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    find_idx_files,
    load_idx_dataset,
)
from cpnas_cli.data.idx import write_idx
from cpnas_cli.data.seeds import derive_seed
from cpnas_cli.errors import UserError

SEED = "cpnas-embedded-fashion-mnist-v1"
PER_CLASS = {"train": 800, "test": 200}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SYSTEM_DIR, help="folder with the four official idx .gz files")
    parser.add_argument("--out", type=Path, default=EMBEDDED_DIR, help="where to write the sample")
    args = parser.parse_args()
    files = find_idx_files(args.source)
    if files is None:
        raise SystemExit(f"Fashion-MNIST not found in {args.source}: {FIX}")
    try:
        full = load_idx_dataset("fashion-mnist", files, DAMAGED_FIX)
    except UserError as err:
        raise SystemExit(str(err)) from err
    args.out.mkdir(parents=True, exist_ok=True)
    splits = {
        "train": (full.train_images, full.train_labels, TRAIN_IMAGES, TRAIN_LABELS),
        "test": (full.test_images, full.test_labels, TEST_IMAGES, TEST_LABELS),
    }
    for split, (images, labels, images_name, labels_name) in splits.items():
        keep = balanced_sample(split, labels, PER_CLASS[split])
        write_idx(args.out / f"{images_name}.gz", images[keep, 0])  # IDX images are [N, 28, 28]
        write_idx(args.out / f"{labels_name}.gz", labels[keep].to(torch.uint8))
    report(args.out)


def balanced_sample(split: str, labels: torch.Tensor, per_class: int) -> torch.Tensor:
    """Sorted indices of `per_class` images of every class, chosen by their seeded sha256 rank."""
    chosen = []
    for label in range(len(CLASSES)):
        members = torch.nonzero(labels == label).flatten().tolist()
        if len(members) < per_class:
            raise SystemExit(f"{split} has only {len(members)} images of class {label}, need {per_class}")
        chosen += sorted(members, key=lambda index: derive_seed(SEED, split, index))[:per_class]
    return torch.tensor(sorted(chosen), dtype=torch.int64)


def report(out: Path) -> None:
    total = 0
    for path in sorted(out.glob("*.gz")):
        size = path.stat().st_size
        total += size
        print(f"{path.name:32} {size:>9,} bytes  sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")
    print(f"{'total':32} {total:>9,} bytes")


if __name__ == "__main__":
    main()
