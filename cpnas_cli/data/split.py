"""The search-phase split of the training set into a part that trains weights and a part that scores architectures.

The test set is never used during search; this split keeps architecture choices honest.
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
