"""The two terms of the kernel-level Child-Parent loss (Eq. 3): kernels and class-centre features.

They live below both stages because both use them: training (engine/train/losses.py, every conv
of the evaluation network) and, when `search.kernel_weight` / `search.center_weight` are set, the
search's per-sample training of the Child (engine/search/child_parent.py, the convs of the
sampled architecture).
"""

import torch

from .binary import BinaryConv2d, reconstructed_kernel


def kernel_loss(pairs: list[tuple[BinaryConv2d, torch.Tensor]]) -> torch.Tensor:
    """sum over layers l and filters c of MSE(H_c^l, Ĥ_c^l), the mean taken over one filter's weights."""
    total = None
    for conv, target in pairs:
        h_hat = reconstructed_kernel(conv.weight, conv.quantizer)
        term = (h_hat - target.detach()).pow(2).flatten(1).mean(1).sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("no kernels to compare: the Child has no 1-bit convs in its cells")
    return total


def center_loss(child_features: torch.Tensor, parent_features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """1/2 * mean over samples s of the mean squared gap between the Child's feature map f_C,s
    and the mean Parent feature map of s's class in this batch (Eq. 3's second term, over lambda).

    Averaging over the map's elements and the batch (the paper sums) keeps the term's scale
    independent of width, resolution and batch size, so one lambda fits every preset.
    """
    target = parent_features.detach().flatten(1)
    classes, index = labels.unique(return_inverse=True)
    sums = target.new_zeros(len(classes), target.shape[1]).index_add_(0, index, target)
    counts = torch.bincount(index, minlength=len(classes)).to(target.dtype)
    centres = sums / counts[:, None]
    return 0.5 * (child_features.flatten(1) - centres[index]).pow(2).mean()
