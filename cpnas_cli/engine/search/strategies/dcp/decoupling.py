"""DCP-NAS decoupled optimisation: a learned back-tracking of the architecture (Eqs. 4.42-4.53).

The weights depend on the architecture they were trained under, so the true gradient in alpha has
a coupling term with no closed form (Eqs. 4.42-4.45). DCP corrects each architecture step by
alpha~ = alpha_new + eta psi ∘ alpha_old, eta = eta_1 eta_2 (architecture and weight learning
rates), with psi learned: psi <- |psi - eta_psi dL/dpsi| (Eqs. 4.50-4.51). dL/dpsi comes from the
next architecture gradient through the chain rule, dL/dpsi = dL/dalpha~ ∘ eta alpha_old. Only the
ops (columns of alpha) whose weights rank below tau by ||w_m||^2 are corrected (Eqs. 4.52-4.53);
weight-free ops have norm 0 and always are.
"""

import torch
import torch.nn as nn

from cpnas_cli.engine.nn.binary import BinaryConv2d
from cpnas_cli.space.cells import CELL_TYPES

from .scaled_binary import binary_kernel


def backtracked_ops(norms: list[float], tau: int) -> list[bool]:
    """Per op: is its rank by norm, largest first (1-based, ties by op order), beyond tau? Torch-free."""
    order = sorted(range(len(norms)), key=lambda m: -norms[m])
    rank = {m: position + 1 for position, m in enumerate(order)}
    return [rank[m] > tau for m in range(len(norms))]


def op_weight_norms(net, cell_type: str) -> list[float]:
    """R(w_m) = ||w_m||^2 per op over every edge of the cells of one type; a 1-bit conv counts as
    the kernel it convolves with (beta ∘ sign(W), Eq. 4.53's note on the Child)."""
    norms = []
    for op in net.ops:
        total = 0.0
        for module in net.op_modules(cell_type, op):
            for conv in module.modules():
                if isinstance(conv, BinaryConv2d):
                    total += binary_kernel(conv).detach().pow(2).sum().item()
                elif isinstance(conv, nn.Conv2d):
                    total += conv.weight.detach().pow(2).sum().item()
        norms.append(total)
    return norms


class BackTracking(nn.Module):
    """psi and dalpha~/dpsi for one set of architecture logits, as buffers (so checkpoints hold them)."""

    def __init__(self, shape: tuple[int, int], psi_init: float, psi_lr: float, tau: int):
        super().__init__()
        self.psi_lr, self.tau = psi_lr, tau
        for cell in CELL_TYPES:
            self.register_buffer(f"psi_{cell}", torch.full(shape, psi_init))
            self.register_buffer(f"dpsi_{cell}", torch.zeros(shape))  # dalpha~/dpsi of the last correction

    def learn(self, grads: dict[str, torch.Tensor]) -> None:
        """Eq. 4.51 with dL/dpsi = dL/dalpha~ ∘ dalpha~/dpsi (zero before the first correction)."""
        for cell, g in grads.items():
            psi = getattr(self, f"psi_{cell}")
            psi.copy_((psi - self.psi_lr * g * getattr(self, f"dpsi_{cell}")).abs())

    @torch.no_grad()
    def correct(self, alpha: dict[str, torch.Tensor], before: dict[str, torch.Tensor], net, eta: float) -> float:
        """Eq. 4.50 on the selected ops (Eq. 4.53); returns the size of the correction (its max |.|)."""
        largest = 0.0
        for cell, a in alpha.items():
            mask = torch.tensor(backtracked_ops(op_weight_norms(net, cell), self.tau), dtype=a.dtype, device=a.device)
            factor = eta * before[cell] * mask  # broadcast over edges: one flag per op column
            delta = getattr(self, f"psi_{cell}") * factor
            a.add_(delta)
            getattr(self, f"dpsi_{cell}").copy_(factor)
            largest = max(largest, delta.abs().max().item())
        return largest

    def largest_psi(self) -> float:
        return max(getattr(self, f"psi_{cell}").abs().max().item() for cell in CELL_TYPES)
