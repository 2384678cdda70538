"""Splits of the training set: in the search, a part that trains weights and a part that scores
architectures; in training, the images held out to choose the best checkpoint.

The test set never decides anything: it only reports. These splits keep choices honest.
"""

import torch

from cpnas_cli.errors import UserError

FIX = "use fractions above 0 whose sum is at most 1, e.g. --train-fraction 0.5 --val-fraction 0.5"


def search_split(
    n_train: int, train_fraction: float, val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint int64 indices (weights, validation) into a training set of `n_train` images.

    A permutation seeded by `seed` is cut into its first round(train_fraction * n) entries and the
    next round(val_fraction * n); when rounding both up would overrun n, validation gets the rest.
    """
    if not (train_fraction > 0 and val_fraction > 0 and train_fraction + val_fraction <= 1 + 1e-9):
        raise UserError(f"bad search split fractions train={train_fraction}, val={val_fraction}", FIX)
    n_weights = round(train_fraction * n_train)
    n_val = min(round(val_fraction * n_train), n_train - n_weights)
    if n_weights < 1 or n_val < 1:
        raise UserError(
            f"a search split of {n_train} images with fractions {train_fraction}/{val_fraction} leaves a part empty",
            "use larger fractions or a larger dataset",
        )
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))
    return order[:n_weights], order[n_weights : n_weights + n_val]


VALIDATION_SHARE, VALIDATION_MAX = 0.05, 2500  # the default held-out set: 5% of the training set, at most 2500


def validation_size(n_train: int, asked: int | None) -> int:
    """How many training images to hold out: `asked`, or by default 5% of them (the share the paper
    scores architectures on) and at most 2500 (5% of CIFAR-10): the selection's noise depends on
    the count, and 2500 already measures a 90% accuracy to about 0.6 points."""
    return min(round(VALIDATION_SHARE * n_train), VALIDATION_MAX) if asked is None else asked


def holdout_split(n_train: int, held_out: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(the rest, the held-out) int64 indices into a training set of `n_train` images: `held_out`
    of them drawn by a permutation seeded by `seed`, the rest in their original order (so "the
    first N training images" still means the first N not held out). held_out 0: all, none."""
    if not 0 <= held_out < n_train:
        raise UserError(
            f"cannot hold out {held_out} of {n_train} training images for validation",
            f"set train.val_images between 0 and {n_train - 1} (0: choose best.safetensors by test accuracy)",
        )
    if held_out == 0:
        return torch.arange(n_train), torch.arange(0)
    chosen = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))[:held_out]
    rest = torch.ones(n_train, dtype=torch.bool)
    rest[chosen] = False
    return rest.nonzero().flatten(), chosen.sort().values
