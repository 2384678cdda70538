"""The kernel-level Child-Parent loss (Sec. 2.4, Eqs. 3-4), term by term.

    L = L_CE + sum_{c,l} MSE(H_c^l, Ĥ_c^l) + lambda/2 * sum_s ||f_C,s(Ĥ) - f̄_C,s(H)||^2

Ĥ is the Child's reconstructed 1-bit filter beta * sign(W); H is the matching full-precision
filter of the Parent (or, PCNN-style, the Child's own latent filter). The Parent supervises: H
and the Parent's features are constants here, so the gradient of both terms reaches only the
Child. How the paper's silent points are settled (centres from the batch, the feature term
averaged) is written down in docs/training.md. The two terms themselves are in
engine/nn/cp_terms.py, which the search shares (search.kernel_weight, search.center_weight).
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from cpnas_cli.engine.nn.binary import BinaryConv2d
from cpnas_cli.engine.nn.network import EvalNetwork


def paired_kernels(child: EvalNetwork, parent: EvalNetwork | None) -> list[tuple[BinaryConv2d, torch.Tensor]]:
    """(1-bit conv of the Child, H) for every binarized conv inside the cells, in module order.

    Child and Parent are built from one genotype, so their convs line up one to one; H is the
    Parent's kernel, or the Child's own latent kernel when `parent` is None (kernel_source self).
    """
    convs = [m for m in child.cells.modules() if isinstance(m, nn.Conv2d)]
    child_convs = [m for m in convs if isinstance(m, BinaryConv2d)]
    if len(child_convs) != len(convs):
        raise ValueError("the Child must be the binarized network (every conv in its cells 1-bit)")
    if parent is None:
        return [(m, m.weight) for m in child_convs]
    parent_convs = [m for m in parent.cells.modules() if isinstance(m, nn.Conv2d)]
    if [m.weight.shape for m in child_convs] != [m.weight.shape for m in parent_convs]:
        raise ValueError("Child and Parent convs do not line up: are they built from the same genotype?")
    return [(c, p.weight) for c, p in zip(child_convs, parent_convs, strict=True)]


@dataclass(frozen=True)
class CPLossWeights:
    """Each term's weight; 0 switches a term off (it is then still measured, not trained on)."""

    kernel: float = 1.0  # Eq. 3 has 1
    center: float = 1.0  # lambda
    auxiliary: float = 0.4
    label_smoothing: float = 0.0


def classification_loss(logits, aux_logits, labels, weights: CPLossWeights) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_CE of the main head, L_CE + auxiliary-tower CE): the part every network trains on."""
    ce = F.cross_entropy(logits, labels, label_smoothing=weights.label_smoothing)
    if aux_logits is None or weights.auxiliary == 0:
        return ce, ce
    return ce, ce + weights.auxiliary * F.cross_entropy(aux_logits, labels, label_smoothing=weights.label_smoothing)


def cp_loss(ce_total, kernel, center, weights: CPLossWeights) -> torch.Tensor:
    """Eq. 4: the Child's objective from its classification loss and the two terms of Eq. 3."""
    loss = ce_total
    if kernel is not None and weights.kernel:
        loss = loss + weights.kernel * kernel
    if center is not None and weights.center:
        loss = loss + weights.center * center
    return loss
