"""The single-path weight-sharing supernet over the cell search space (Sec. 2.1-2.2).

Every edge of every cell holds one module per remaining candidate op; a forward pass takes an
architecture (one op name per edge, per cell type) and runs only those ops, so a sampled
architecture costs what a plain network of that architecture costs. Weights persist across
samples (weight sharing). Built with a binary `Style` it is the Child, with a full-precision
one the Parent. `prune` deletes an op's module, freeing its weights.
"""

from typing import cast

import torch
import torch.nn as nn

from cpnas_cli.engine.nn.backbone import CellSlot, StackedCells, preprocess
from cpnas_cli.engine.nn.ops import Style, build_op
from cpnas_cli.space.cells import CELL_TYPES, cell_edges

Architecture = dict[str, list[str]]  # cell type -> op name per edge, in space.cell_edges order


class SearchCell(nn.Module):
    def __init__(self, ops, nodes, slot: CellSlot, style: Style):
        super().__init__()
        self.reduce, reduce, c = slot.reduce, slot.reduce, slot.c
        self.edges_list = cell_edges(nodes)
        self.pre0, self.pre1 = preprocess(slot, style)
        self.edges = nn.ModuleList(
            nn.ModuleDict({op: build_op(op, c, 2 if reduce and src < 2 else 1, style) for op in ops})
            for src, _ in self.edges_list
        )
        self.nodes = nodes

    def forward(self, s0, s1, choice: list[str]):
        states = [self.pre0(s0), self.pre1(s1)]
        for dst in range(2, 2 + self.nodes):
            total = None
            for index, (src, target) in enumerate(self.edges_list):
                if target != dst or choice[index] == "zero":
                    continue  # a zero edge adds nothing, so it is not computed at all
                out = self.edge(index)[choice[index]](states[src])
                total = out if total is None else total + out
            states.append(total if total is not None else self._zeros_like_node(states[1]))
        return torch.cat(states[2:], dim=1)

    def edge(self, index: int) -> nn.ModuleDict:
        """The candidate ops of one edge (nn.ModuleList types its items as Module)."""
        return cast(nn.ModuleDict, self.edges[index])

    def _zeros_like_node(self, s):
        b, c, h, w = s.shape
        if self.reduce:
            h, w = (h + 1) // 2, (w + 1) // 2
        return s.new_zeros(b, c, h, w)


class SearchNetwork(StackedCells):
    """The single-path supernet: every edge holds one module per remaining op."""

    def __init__(self, in_channels, classes, channels, cells, ops, style: Style, nodes=4, reductions=None,
                 stem_stride=1, stem_multiplier=3, imagenet_stem=False):  # fmt: skip
        super().__init__(in_channels, classes, channels, cells, nodes, lambda slot: SearchCell(ops, nodes, slot, style),
                         reductions, stem_stride, stem_multiplier, imagenet_stem)  # fmt: skip

    def forward(self, x, arch: Architecture):
        return self.classifier(self.features(x, arch))

    def features(self, x, arch: Architecture):
        """The last cell's output: the f of Eq. 3's centre term."""
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, arch["reduce" if cell.reduce else "normal"])
        return s1

    def prune(self, cell_type: str, edge: int, op: str) -> None:
        """Remove op from edge `edge` of every cell of this type, freeing its weights."""
        assert cell_type in CELL_TYPES
        for cell in self.cells:
            if (cell_type == "reduce") == cell.reduce:
                del cast(SearchCell, cell).edge(edge)[op]  # nn.ModuleList types its items as Module
