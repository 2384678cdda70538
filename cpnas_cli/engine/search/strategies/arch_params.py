"""The architecture parameters of a differentiable search: op logits alpha, edge logits beta.

Per cell type, alpha holds one row of op logits per edge (space.cell_edges order, ops in config
order) and, with PC-DARTS edge normalisation, beta one logit per edge. Both start at 1e-3 N(0, 1)
(DARTS, PC-DARTS), drawn from a generator seeded by the run seed so a run is reproducible.
"""

import torch
import torch.nn as nn

from cpnas_cli.data import derive_seed
from cpnas_cli.space.cells import CELL_TYPES

INIT_SCALE = 1e-3


class ArchParams(nn.Module):
    def __init__(self, edges: int, ops: int, edge_norm: bool, seed: int, name: str = "alpha"):
        super().__init__()
        g = torch.Generator().manual_seed(derive_seed(seed, "arch-init", name))
        self.alpha = nn.ParameterDict(
            {cell: nn.Parameter(INIT_SCALE * torch.randn(edges, ops, generator=g)) for cell in CELL_TYPES}
        )
        self.beta = (
            nn.ParameterDict({cell: nn.Parameter(INIT_SCALE * torch.randn(edges, generator=g)) for cell in CELL_TYPES})
            if edge_norm
            else None
        )

    def alphas(self) -> dict[str, torch.Tensor]:
        return dict(self.alpha.items())

    def betas(self) -> dict[str, torch.Tensor] | None:
        return dict(self.beta.items()) if self.beta is not None else None

    def as_lists(self) -> tuple[dict, dict | None]:
        """(alpha, beta) as plain nested lists: what darts_rule and the event log take."""
        alpha = {cell: p.detach().cpu().tolist() for cell, p in self.alpha.items()}
        beta = {cell: p.detach().cpu().tolist() for cell, p in self.beta.items()} if self.beta is not None else None
        return alpha, beta

    @torch.no_grad()
    def copy_from(self, other: "ArchParams") -> None:
        """Take the other's logits (DCP's inheritance between Parent and Child)."""
        for cell in CELL_TYPES:
            self.alpha[cell].copy_(other.alpha[cell])
