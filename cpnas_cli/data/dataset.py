"""The dataset every loader returns: uint8 images decoded once, int64 labels, class names.

Images stay uint8 (a quarter of float32's memory); `batches` converts them per batch. A folder
dataset too large to decode into memory holds its images as `ImageFiles` instead, decoded per
batch (image_files.py); everything that reads sizes sees the same shape either way.
"""

from dataclasses import dataclass

import torch

from cpnas_cli.errors import UserError

from .image_files import ImageFiles


@dataclass
class Dataset:
    name: str
    train_images: torch.Tensor | ImageFiles  # uint8 [N, C, H, W], contiguous (or left on disk)
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor | ImageFiles  # uint8 [M, C, H, W]
    test_labels: torch.Tensor  # int64 [M]
    classes: list[str]  # index = label

    def __post_init__(self):
        # Loaders validate their files with user-facing messages; reaching here broken is a bug.
        for images, labels in ((self.train_images, self.train_labels), (self.test_images, self.test_labels)):
            if isinstance(images, torch.Tensor) and (
                images.dtype != torch.uint8 or images.dim() != 4 or not images.is_contiguous()
            ):
                raise ValueError(f"{self.name}: images must be contiguous uint8 [N, C, H, W]")
            if labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
                raise ValueError(f"{self.name}: labels must be int64 [N] matching the images")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError(f"{self.name}: train and test images differ in shape")
        if self.train_images.shape[2] != self.train_images.shape[3]:
            raise ValueError(f"{self.name}: images must be square")

    @property
    def streaming(self) -> bool:
        """Whether the images stay on disk and are decoded per batch."""
        return isinstance(self.train_images, ImageFiles)

    @property
    def in_channels(self) -> int:
        return self.train_images.shape[1]

    @property
    def image_size(self) -> int:
        return self.train_images.shape[2]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def check_labels(labels: torch.Tensor, num_classes: int, source: str, fix: str) -> None:
    """UserError unless every label indexes one of `num_classes` classes."""
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise UserError(
            f"{source} has labels outside 0..{num_classes - 1} (found {int(labels.min())}..{int(labels.max())})",
            fix,
        )
