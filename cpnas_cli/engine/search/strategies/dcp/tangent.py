"""DCP-NAS tangent propagation: the Parent's tangent direction and the Child's architecture gradient.

Eq. 4.29 as printed sums dp_n/dalpha over the classes, which is identically zero since the p_n
sum to 1; the tangent is therefore taken as the alpha-gradient of the Parent's objective
f^P = -CE (Eq. 4.21) on the same batch, with the Parent's weights and alpha fixed, and detached.
The Child maximises its agreement with the Parent, G = sum_n p_n log(p^_n / p_n) = -KL(p || p^)
(Eq. 4.30 as reconstructed, Parent output constant), while the tangent penalty
D = ||dG/dalpha^ - t||_F^2 (Eq. 4.31) keeps its architecture gradient near the tangent.
The gradient of L = -G + lambda D in alpha^ (Eq. 4.33) is -g + 2 lambda H (g - t), g = dG/dalpha^:
`ggn` approximates H by -g g^T (Eqs. 4.36-4.41, rank one), `exact` differentiates D itself.
"""

import functools
import math
import operator
from collections.abc import Callable

import torch
import torch.nn.functional as F

Logits = dict[str, torch.Tensor]
Average = Callable[[Logits], Logits]


def parent_tangent(parent, alpha: Logits, x: torch.Tensor, y: torch.Tensor) -> tuple[Logits, torch.Tensor]:
    """(t, p): t = d(-CE)/dalpha at the Parent's weights and alpha, and its softmax output p, both detached."""
    leaves = {cell: a.detach().requires_grad_() for cell, a in alpha.items()}
    logits = parent(x, leaves)
    grads = torch.autograd.grad(-F.cross_entropy(logits, y), list(leaves.values()))
    return dict(zip(leaves, grads, strict=True)), logits.detach().softmax(1)


def agreement(child_logits: torch.Tensor, parent_probs: torch.Tensor) -> torch.Tensor:
    """G = -KL(p || p^), the batch mean; largest (zero) when the Child predicts what the Parent does."""
    log_ratio = F.log_softmax(child_logits, 1) - parent_probs.clamp_min(1e-12).log()
    return (parent_probs * log_ratio).sum(1).mean()


def tangent_distance(g: Logits, t: Logits) -> torch.Tensor:
    """D = ||g - t||_F^2 over both cell types."""
    return functools.reduce(operator.add, [(g[cell] - t[cell]).pow(2).sum() for cell in g])


def child_arch_gradient(
    G: torch.Tensor, alpha: Logits, t: Logits, lam: float, hessian: str, average: Average | None = None
) -> tuple[Logits, dict]:
    """dL/dalpha^ for L = -G + lambda D (Eq. 4.33) with the chosen Hessian, and what to log:
    D, and the penalty's share ||dL/dalpha^ + g|| / ||g|| of the step (how much it bends -g).

    Under torchrun G is this rank's share of the batch and `average` takes a gradient to the whole
    batch's (the mean over ranks, weighted by images; `t` is already the whole batch's). L is not
    linear in G, so g is averaged first and the penalty built from it: for `exact`, the Hessian's
    product with (g - t) is taken on every rank (H is a mean over the batch too) and averaged."""
    cells, leaves = list(alpha), list(alpha.values())
    if hessian == "exact" and average is not None:
        local = torch.autograd.grad(G, leaves, create_graph=True)
        g = average({c: v.detach() for c, v in zip(cells, local, strict=True)})
        distance = tangent_distance(g, t)
        products = torch.autograd.grad(local, leaves, grad_outputs=[g[c] - t[c] for c in cells])
        h_residual = average(dict(zip(cells, products, strict=True)))  # H (g - t)
        grads = {c: -g[c] + 2 * lam * h_residual[c] for c in cells}
    elif hessian == "exact":
        g = dict(zip(cells, torch.autograd.grad(G, leaves, create_graph=True), strict=True))
        distance = tangent_distance(g, t)
        grads = dict(zip(cells, torch.autograd.grad(-G + lam * distance, leaves), strict=True))
    else:
        g = dict(zip(cells, torch.autograd.grad(G, leaves), strict=True))
        if average is not None:
            g = average(g)
        distance = tangent_distance(g, t)
        along = sum((g[c] * (g[c] - t[c])).sum() for c in cells)  # g^T (g - t)
        grads = {c: -g[c] * (1 + 2 * lam * along) for c in cells}
    g = {c: v.detach() for c, v in g.items()}
    bend = math.sqrt(sum((grads[c] + g[c]).pow(2).sum().item() for c in cells))
    size = math.sqrt(sum(g[c].pow(2).sum().item() for c in cells))
    return grads, {"tangent_distance": distance.item(), "penalty_share": bend / max(size, 1e-30)}
