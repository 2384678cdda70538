"""Images left on disk and decoded per batch: the streaming path of folder datasets.

An `ImageFiles` stands where an in-memory uint8 tensor would (a `Dataset`'s images) when the
decoded set would not fit in memory (folder.py says when). `stream_batches` yields what
`batching.batches` yields for a tensor, decoding each batch in DataLoader worker processes:

- evaluation (no augmentation): `decode_centre`, the very function the in-memory loader decodes
  every image with, so both paths give the same tensors for the same files;
- training (augmented batches): torchvision's RandomResizedCrop to the image size, then a random
  horizontal flip: the ImageNet recipe of DARTS, whose evaluation stage the paper follows
  (Sec. 3.1). Cropping a random region of the full image is what streaming makes possible; the
  device-side crop-with-padding and cutout (augmentation.py) still apply afterwards if configured.

Reproducible and resumable as the in-memory path: image k of batch n is augmented with the seed
derive_seed(aug_seed, n, k), set around its transform alone, so a batch is the same whichever
worker decodes it, with any number of workers, and after a resume. A file that cannot be decoded
stops the run with the project's one-line error naming it (the last checkpoint stands).
"""

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from cpnas_cli.errors import UserError

from .pixels import normalize
from .seeds import derive_seed

DAMAGED_FIX = "replace or delete the damaged file"


def decode_centre(path: Path, size: int, crop_fraction: float = 1.0) -> np.ndarray:
    """uint8 [size, size, 3]: RGB, the centre square of side crop_fraction x the shorter side,
    scaled to `size` (crop_fraction 0.875 at 224 px: the usual resize to 256 and centre crop)."""
    try:
        with Image.open(path) as image:
            draft = math.ceil(size / crop_fraction)
            image.draft("RGB", (draft, draft))  # JPEG only: decode straight at a reduced scale, much faster
            square = ImageOps.fit(
                image.convert("RGB"), (size, size), Image.Resampling.BILINEAR, bleed=(1 - crop_fraction) / 2
            )
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"cannot decode image {path} ({err})", DAMAGED_FIX) from err
    return np.asarray(square)


class ImageFiles:
    """A split's image files, decoded on demand to `size` x `size` RGB (3 channels, as in memory).

    The paths are kept as one numpy array of bytes, not a list of Python objects: forked worker
    processes then share it for good (touching a Python object's reference count copies its page).
    """

    def __init__(self, paths: list[Path], size: int, crop_fraction: float = 1.0, workers: int = 0):
        self._paths = np.array([os.fsencode(p) for p in paths], dtype=np.bytes_)
        self.size, self.crop_fraction, self.workers = size, crop_fraction, workers
        self._train_transform: tuple | None = None  # (crop, crop + flip), built where first needed (a worker)

    def __len__(self) -> int:
        return len(self._paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """As a uint8 [N, C, H, W] tensor's, so code that reads sizes needs no second path."""
        return (len(self), 3, self.size, self.size)

    def path(self, index: int) -> Path:
        return Path(os.fsdecode(self._paths[index]))

    def decode(self, index: int) -> np.ndarray:
        """Image `index` for evaluation: uint8 [size, size, 3], as the in-memory loader stores it."""
        return decode_centre(self.path(index), self.size, self.crop_fraction)

    def decode_augmented(self, index: int, seed: int, flip: bool) -> np.ndarray:
        """Image `index` for training: a RandomResizedCrop to `size` (and a random flip) of the full
        image, drawn from `seed` alone; the global torch generator is left as it was."""
        path = self.path(index)
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise UserError(f"cannot decode image {path} ({err})", DAMAGED_FIX) from err
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = self._transform(flip)(rgb)
        return np.asarray(out)

    def _transform(self, flip: bool):
        from torchvision.transforms import v2  # only the streaming path needs torchvision

        if self._train_transform is None:
            crop = v2.RandomResizedCrop(self.size, interpolation=v2.InterpolationMode.BILINEAR, antialias=True)
            self._train_transform = (crop, v2.Compose([crop, v2.RandomHorizontalFlip()]))
        return self._train_transform[1] if flip else self._train_transform[0]


@dataclass(frozen=True)
class _Failed:
    """A batch that could not be decoded: the worker returns it, the main process raises it (an
    exception raised in a worker reaches the main process as a multi-line traceback)."""

    problem: str
    fix: str


class _BatchesOnDisk(torch.utils.data.Dataset):
    """Item n: (uint8 [B, 3, S, S], indices) of batch n of `order`; `flip` None: no augmentation."""

    def __init__(self, files: ImageFiles, order: torch.Tensor, batch_size: int, flip: bool | None, aug_seed):
        self.files, self.order, self.batch_size, self.flip, self.aug_seed = files, order, batch_size, flip, aug_seed

    def __getitem__(self, number: int):
        chosen = self.order[number * self.batch_size : (number + 1) * self.batch_size]
        try:
            if self.flip is None:
                images = [self.files.decode(int(i)) for i in chosen]
            else:
                seeds = [derive_seed(self.aug_seed, number, k) for k in range(len(chosen))]
                images = [self.files.decode_augmented(int(i), s, self.flip) for i, s in zip(chosen, seeds, strict=True)]
        except UserError as err:
            return _Failed(err.problem, err.fix)
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), chosen


def stream_batches(
    files: ImageFiles,
    labels: torch.Tensor,
    order: torch.Tensor,
    batch_size: int,
    batch_numbers: range,
    device: torch.device,
    flip: bool | None,
    aug_seed: int | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x float [-1, 1], y int64) on `device` for the given batch numbers of `order`, decoded in
    `files.workers` worker processes (0: in this one); `flip` None: evaluation batches."""
    loader = torch.utils.data.DataLoader(
        _BatchesOnDisk(files, order, batch_size, flip, aug_seed),
        batch_size=None,  # an item is a whole batch
        sampler=batch_numbers,
        num_workers=files.workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(0),  # its worker seed, drawn from the global generator otherwise
    )
    for item in loader:
        if isinstance(item, _Failed):
            raise UserError(item.problem, item.fix)
        images, chosen = item
        yield normalize(images.to(device, non_blocking=True)), labels[chosen].to(device)
