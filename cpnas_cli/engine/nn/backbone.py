"""The parts every cell network shares: the cell plan, the stem, cell input preprocessing, the head.

Both the single-path search supernet (supernet.py) and the fixed evaluation network
(network.py) are a stem, a stack of normal and reduction cells, and a classifier; only the
cells differ. The stem and the classifier stay full precision in every network, the
convention of the binary-network literature (and visible in `cpnas profile`).
"""

import torch.nn as nn

from .ops import Style, conv_bn, reduce_input


def reduction_cells(cells: int, at: list[int] | None = None) -> list[int]:
    """Indices of the reduction cells: `at` if given, else at 1/3 and 2/3 of the depth (DARTS)."""
    chosen = sorted(set(at)) if at is not None else sorted({cells // 3, 2 * cells // 3})
    if any(i < 0 or i >= cells for i in chosen):
        raise ValueError(f"reduction cell indices {chosen} outside 0..{cells - 1}")
    return chosen


def stem(in_channels: int, out_channels: int, stride: int = 1, imagenet: bool = False) -> nn.Sequential:
    """Full-precision stem: one 3x3 conv, or three stride-2 convs (224 -> 28) for ImageNet."""
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


def preprocess(c_prev_prev: int, c_prev: int, c: int, reduce_prev: bool, style: Style):
    """The fixed 1x1 blocks that bring a cell's two inputs to C channels at the same resolution."""
    pre0 = reduce_input(c_prev_prev, c, style) if reduce_prev else conv_bn(c_prev_prev, c, style)
    return pre0, conv_bn(c_prev, c, style)


class Classifier(nn.Module):
    """Global average pooling and a full-precision linear layer."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(channels, classes)

    def forward(self, x):
        return self.linear(self.pool(x).flatten(1))
