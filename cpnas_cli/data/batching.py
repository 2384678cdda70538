"""Mini-batches from an in-memory uint8 dataset, reproducible and resumable mid-epoch.

Each batch is gathered as uint8 on the host, moved to the device (a quarter of float32's
traffic), then normalized and augmented there. Augmentation for batch k is seeded by
derive_seed(aug_seed, k) alone, so starting at batch k yields exactly what an uninterrupted
epoch would have yielded from batch k on. Images left on disk (`ImageFiles`, a streamed folder
dataset) are decoded per batch in worker processes instead (image_files.py), with the same
guarantees.
"""

import dataclasses
from collections.abc import Iterator

import torch

from .augmentation import Augment, augment
from .image_files import ImageFiles, stream_batches
from .pixels import normalize
from .seeds import derive_seed


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return n // batch_size if drop_last else -(-n // batch_size)


def batches(
    images: torch.Tensor | ImageFiles,
    labels: torch.Tensor,
    indices: torch.Tensor,
    batch_size: int,
    *,
    shuffle_generator: torch.Generator | None,
    device: torch.device | str = "cpu",
    aug: Augment | None = None,
    aug_seed: int | None = None,
    start_batch: int = 0,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x float [-1, 1], y int64) pairs on `device` over `images[indices]`.

    The order is `indices` permuted by `shuffle_generator` (None keeps it), drawn when this is
    called, not on first iteration; to resume, restore the generator's state from the epoch start
    and pass start_batch. Give each epoch its own aug_seed (e.g. derive_seed(seed, "aug", epoch)),
    otherwise every epoch repeats the same augmentations.
    """
    if aug is not None and aug_seed is None:
        raise ValueError("aug_seed is required with aug: augmentation must be reproducible")
    total = num_batches(len(indices), batch_size, drop_last)
    if not 0 <= start_batch <= total:
        raise ValueError(f"start_batch {start_batch} outside 0..{total}")
    order = indices if shuffle_generator is None else indices[torch.randperm(len(indices), generator=shuffle_generator)]
    numbers, device = range(start_batch, total), torch.device(device)
    if isinstance(images, ImageFiles):
        return _stream(images, labels, order, batch_size, numbers, device, aug, aug_seed)
    return _iterate(images, labels, order, batch_size, numbers, device, aug, aug_seed)


def _stream(files, labels, order, batch_size, numbers, device, aug, aug_seed):
    """Workers decode (training batches: RandomResizedCrop and the flip); the crop with padding and
    cutout of `aug`, if any, follow on the device as for in-memory images."""
    flip = None if aug is None else aug.flip
    rest = None if aug is None else dataclasses.replace(aug, flip=False)
    stream = stream_batches(files, labels, order, batch_size, numbers, device, flip, aug_seed)
    if rest is None or rest == Augment():
        return stream
    return (
        (augment(x, rest, torch.Generator().manual_seed(derive_seed(aug_seed, "device", number))), y)
        for number, (x, y) in zip(numbers, stream, strict=True)
    )


def _iterate(images, labels, order, batch_size, batch_numbers, device, aug, aug_seed):
    for number in batch_numbers:
        chosen = order[number * batch_size : (number + 1) * batch_size]
        x = normalize(images[chosen].to(device))
        if aug is not None:
            x = augment(x, aug, torch.Generator().manual_seed(derive_seed(aug_seed, number)))
        yield x, labels[chosen].to(device)
