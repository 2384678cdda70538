"""The mixed-op supernet of differentiable search (DARTS, PC-DARTS partial channels).

Every edge runs every candidate op and adds their outputs weighted by softmax(alpha) of that
edge (PC-DARTS Eq. 1). With partial channels (K > 1) only the first C/K channels go through the
ops, which are built C/K wide; the other channels bypass them (max-pooled 2x2 on stride-2 edges)
and are concatenated back, then a channel shuffle with K groups lets the next edge see a
different slice (PC-DARTS Eq. 2, the official code's fixed slice). With edge normalisation each
node weights its incoming edges by softmax(beta) over them (PC-DARTS Eq. 3). The zero op only
takes its share of the softmax; its output is never computed.

The architecture logits are arguments of `forward`, not parameters of the network: the strategy
owns and optimises them (and DCP differentiates through them twice). Built with a binary `Style`
it is the 1-bit Child, with a full-precision one the real-valued Parent; stem, cell input
preprocessing and classifier are shared with the other networks (backbone.py).
"""

from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from cpnas_cli.engine.nn.backbone import CellSlot, StackedCells, preprocess
from cpnas_cli.engine.nn.ops import Style, build_op
from cpnas_cli.space.cells import cell_edges

Logits = dict[str, torch.Tensor]  # cell type -> (edges, ops) alpha or (edges,) beta


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, C, H, W): view the channels as (groups, C/groups), transpose, flatten back."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class MixedEdge(nn.Module):
    def __init__(self, ops: list[str], channels: int, stride: int, style: Style, k: int):
        super().__init__()
        self.k = k
        self.ops = nn.ModuleDict({op: build_op(op, channels // k, stride, style) for op in ops})
        self.bypass = nn.MaxPool2d(2, 2, ceil_mode=True) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        part = x[:, : x.shape[1] // self.k]
        mixed = sum(w * op(part) for w, (name, op) in zip(weights, self.ops.items(), strict=True) if name != "zero")
        if self.k == 1:
            return mixed
        return channel_shuffle(torch.cat([mixed, self.bypass(x[:, part.shape[1] :])], dim=1), self.k)


class MixedCell(nn.Module):
    def __init__(self, ops, nodes, slot: CellSlot, style: Style, k: int):
        super().__init__()
        self.reduce, self.nodes = slot.reduce, nodes
        self.edge_list = cell_edges(nodes)
        self.pre0, self.pre1 = preprocess(slot, style)
        self.edges = nn.ModuleList(
            MixedEdge(ops, slot.c, 2 if slot.reduce and src < 2 else 1, style, k) for src, _ in self.edge_list
        )

    def forward(self, s0, s1, alpha: torch.Tensor, beta: torch.Tensor | None):
        weights = F.softmax(alpha, dim=-1)
        states = [self.pre0(s0), self.pre1(s1)]
        start = 0
        for dst in range(2, 2 + self.nodes):
            count = dst  # node dst has an edge from each earlier node
            scale = F.softmax(beta[start : start + count], dim=0) if beta is not None else None
            total = 0
            for i in range(count):
                out = self.edges[start + i](states[i], weights[start + i])
                total = total + (out if scale is None else scale[i] * out)
            states.append(total)
            start += count
        return torch.cat(states[2:], dim=1)


class MixedSupernet(StackedCells):
    """Every edge runs every op (partial channels: 1/k of them), weighted by the logits of `forward`."""

    def __init__(self, in_channels, classes, channels, cells, ops, style: Style, nodes=4, reductions=None,
                 stem_stride=1, stem_multiplier=3, k: int = 1, imagenet_stem=False):  # fmt: skip
        def mixed_cell(slot: CellSlot) -> MixedCell:
            if slot.c % k:
                raise ValueError(
                    f"{slot.c} channels in cell {slot.index} are not divisible by the partial-channel K = {k}"
                )
            return MixedCell(ops, nodes, slot, style, k)

        self.ops = list(ops)
        super().__init__(in_channels, classes, channels, cells, nodes, mixed_cell, reductions, stem_stride,
                         stem_multiplier, imagenet_stem)  # fmt: skip

    def forward(self, x, alpha: Logits, beta: Logits | None = None):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            kind = "reduce" if cell.reduce else "normal"
            s0, s1 = s1, cell(s0, s1, alpha[kind], beta[kind] if beta is not None else None)
        return self.classifier(s1)

    def op_modules(self, cell_type: str, op: str):
        """The modules of one op on every edge of every cell of one type (for weight norms)."""
        cells = [cast(MixedCell, cell) for cell in self.cells]  # nn.ModuleList types its items as Module
        return [
            cast(MixedEdge, edge).ops[op]
            for cell in cells
            if (cell_type == "reduce") == cell.reduce
            for edge in cell.edges
        ]
