"""Batched training augmentation on normalized images: random crop, horizontal flip, cutout.

Everything is done for the whole batch at once on the batch's device, with index arithmetic
instead of a Python loop per image. Randomness comes only from the given CPU generator, so the
same seed reproduces the same batch on any device. Padding and cutout fill with 0.0, which in
the [-1, 1] input range is mid-gray.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cpnas_cli.errors import UserError


@dataclass(frozen=True)
class Augment:
    crop_padding: int = 0  # pad each side by this many px, then crop back at a random offset
    flip: bool = False  # mirror left-right with probability 1/2
    cutout: int = 0  # side in px of a square zeroed at a random centre (DeVries & Taylor 2017); 0 = off

    def __post_init__(self):
        if self.crop_padding < 0 or self.cutout < 0:
            raise UserError(
                f"augmentation sizes must be >= 0 (crop padding {self.crop_padding}, cutout {self.cutout})",
                "use 0 to switch an augmentation off",
            )


def augment(batch: torch.Tensor, aug: Augment, generator: torch.Generator) -> torch.Tensor:
    """A new augmented copy of `batch` (float [B, C, H, W]); draws in a fixed order: crop, flip, cutout."""
    out = batch
    if aug.crop_padding:
        out = _random_crop(out, aug.crop_padding, generator)
    if aug.flip:
        out = _random_flip(out, generator)
    if aug.cutout:
        out = _cutout(out, aug.cutout, generator)
    return batch.clone() if out is batch else out  # always new, so callers may modify it in place


def _random_crop(batch: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    b, c, h, w = batch.shape
    padded = F.pad(batch, (padding, padding, padding, padding))
    top, left = (_draw(0, 2 * padding + 1, b, generator, batch.device) for _ in range(2))
    rows = top[:, None] + torch.arange(h, device=batch.device)  # [B, H] rows of the padded image
    cols = left[:, None] + torch.arange(w, device=batch.device)  # [B, W]
    # Two gathers: first pick each image's H rows, then its W columns.
    picked_rows = padded.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2 * padding))
    return picked_rows.gather(3, cols[:, None, None, :].expand(b, c, h, w))


def _random_flip(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    mirror = torch.rand(batch.shape[0], generator=generator).lt(0.5).to(batch.device)
    return torch.where(mirror[:, None, None, None], batch.flip(3), batch)


def _cutout(batch: torch.Tensor, side: int, generator: torch.Generator) -> torch.Tensor:
    b, _, h, w = batch.shape
    # The centre may lie anywhere in the image, so squares near a border are clipped (as in the paper).
    top = _draw(0, h, b, generator, batch.device) - side // 2
    left = _draw(0, w, b, generator, batch.device) - side // 2
    in_rows = _within(torch.arange(h, device=batch.device), top, side)  # [B, H]
    in_cols = _within(torch.arange(w, device=batch.device), left, side)  # [B, W]
    square = in_rows[:, :, None] & in_cols[:, None, :]  # [B, H, W]
    return batch.masked_fill(square[:, None], 0.0)


def _draw(low: int, high: int, count: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(low, high, (count,), generator=generator).to(device)


def _within(positions: torch.Tensor, start: torch.Tensor, length: int) -> torch.Tensor:
    return (positions[None, :] >= start[:, None]) & (positions[None, :] < start[:, None] + length)
