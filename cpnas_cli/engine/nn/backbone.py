"""The parts every cell network shares: the cell plan, the stem, cell input preprocessing, the head.

Both the single-path search supernet (supernet.py) and the fixed evaluation network
(network.py) are a stem, a stack of normal and reduction cells, and a classifier; only the
cells differ. The stem and the classifier stay full precision in every network, the
convention of the binary-network literature (and visible in `cpnas profile`).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

from .ops import Style, conv_bn, reduce_input


def reduction_cells(cells: int, at: list[int] | None = None) -> list[int]:
    """Indices of the reduction cells: `at` if given, else at 1/3 and 2/3 of the depth (DARTS)."""
    chosen = sorted(set(at)) if at is not None else sorted({cells // 3, 2 * cells // 3})
    if any(i < 0 or i >= cells for i in chosen):
        raise ValueError(f"reduction cell indices {chosen} outside 0..{cells - 1}")
    return chosen


@dataclass(frozen=True)
class CellSlot:
    """One cell's place in the stack: whether it (and the cell before it) reduces, and its channels."""

    index: int
    reduce: bool
    reduce_prev: bool
    c_pp: int  # channels of the input from two cells back (or the stem)
    c_p: int  # channels of the input from the previous cell (or the stem)
    c: int  # channels of each intermediate node
    c_out: int  # channels of the cell's output (the concatenated nodes)


def cell_plan(
    cells: int, channels: int, stem_channels: int, reductions: list[int], width: Callable[[bool], int]
) -> list[CellSlot]:
    """Every cell's slot: C doubles at each reduction cell, and a cell's output is width(reduce)
    x C channels (the number of nodes it concatenates)."""
    plan, c_pp, c_p, c, reduce_prev = [], stem_channels, stem_channels, channels, False
    for i in range(cells):
        reduce = i in reductions
        c = 2 * c if reduce else c
        plan.append(CellSlot(i, reduce, reduce_prev, c_pp, c_p, c, width(reduce) * c))
        c_pp, c_p, reduce_prev = c_p, width(reduce) * c, reduce
    return plan


IMAGENET_STEM_MIN_SIZE = 112  # "auto" takes the ImageNet stem from this image side on: its first cells at >= 14 px


def uses_imagenet_stem(setting: bool | str, image_size: int) -> bool:
    """`search.imagenet_stem` / `train.imagenet_stem`: True, False, or "auto": for images of
    IMAGENET_STEM_MIN_SIZE px and more, whose cells the one-conv stem would run at full size
    (224 x 224 on ImageNet: 64x the work of the paper's 28 x 28)."""
    return image_size >= IMAGENET_STEM_MIN_SIZE if setting == "auto" else bool(setting)


def stem_channels(channels: int, multiplier: int, imagenet: bool) -> int:
    """The stem's output channels: C for the ImageNet stem (DARTS), multiplier x C otherwise."""
    return channels if imagenet else multiplier * channels


def stem(in_channels: int, out_channels: int, stride: int = 1, imagenet: bool = False) -> nn.Sequential:
    """Full-precision stem: one 3x3 conv, or three stride-2 convs (224 -> 28) for ImageNet (the
    DARTS ImageNet stem the paper follows, Sec. 3.1; `stride` does not apply to it)."""
    fp = Style(binary=False, affine=True, running_stats=True)
    if not imagenet:
        conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        return nn.Sequential(conv, fp.bn(out_channels))
    half = out_channels // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, half, 3, stride=2, padding=1, bias=False),
        fp.bn(half),
        nn.ReLU(),
        nn.Conv2d(half, out_channels, 3, stride=2, padding=1, bias=False),
        fp.bn(out_channels),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1, bias=False),
        fp.bn(out_channels),
    )


def preprocess(slot: CellSlot, style: Style):
    """The fixed 1x1 blocks that bring a cell's two inputs to C channels at the same resolution
    (with real-valued inputs in CP-NAS**, `style.real_preprocess`)."""
    c, real = slot.c, style.real_preprocess
    pre0 = (
        reduce_input(slot.c_pp, c, style, real) if slot.reduce_prev else conv_bn(slot.c_pp, c, style, real_input=real)
    )
    return pre0, conv_bn(slot.c_p, c, style, real_input=real)


class Classifier(nn.Module):
    """Global average pooling and a full-precision linear layer."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(channels, classes)

    def forward(self, x):
        return self.linear(self.pool(x).flatten(1))


class StackedCells(nn.Module):
    """A stem, `cells` cells made by `make_cell(slot)` (reduction cells double the channels; a cell
    outputs its `nodes` intermediate nodes) and a classifier: the shape both search supernets share (the
    evaluation network builds its own: its auxiliary tower comes before the classifier).
    Built in that order, so the initial weights follow one random stream in the same order."""

    def __init__(self, in_channels, classes, channels, cells, nodes, make_cell: Callable[[CellSlot], nn.Module],
                 reductions=None, stem_stride=1, stem_multiplier=3, imagenet_stem=False):  # fmt: skip
        super().__init__()
        self.reductions = reduction_cells(cells, reductions)
        c_stem = stem_channels(channels, stem_multiplier, imagenet_stem)
        self.stem = stem(in_channels, c_stem, stride=stem_stride, imagenet=imagenet_stem)
        plan = cell_plan(cells, channels, c_stem, self.reductions, lambda reduce: nodes)
        self.cells = nn.ModuleList(make_cell(slot) for slot in plan)
        self.classifier = Classifier(plan[-1].c_out, classes)
