"""The 8 candidate operations of Sec. 2.2, in a 1-bit (Child) or full-precision (Parent) form.

The shapes follow DARTS (separable and dilated convs are depth-wise + point-wise), with the
paper's change for 1-bit nets: no ReLU inside an operation; the sign() at every binarized conv
input is the only non-linearity of the Child. The Parent is the same network in full precision
with a ReLU where the Child binarizes a block's input (`Style.parent_activation`), because without
it the Parent would be an almost linear model and A_P would say little about an architecture.
Every op maps C channels to C channels; stride 2 halves the resolution (ceil for odd sizes).

The paper's ImageNet variants keep some of the Child's activations real-valued (Sec. 3.3, Tab. 2):
CP-NAS* the input of the k x k (depth-wise) conv that opens every depth-wise separable conv (both
halves of a sep_conv, the one of a dil_conv: DARTS's "dilated separable" conv), CP-NAS** also the
input of the cells' preprocessing convs (`Style.real_depthwise`, `Style.real_preprocess`). Those
convs keep 1-bit kernels; the Parent is unchanged.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .binary import BinaryConv2d
from .layers import BatchNorm2d, Conv2d


@dataclass(frozen=True)
class Style:
    """How to build an op: 1-bit or full precision, and how BatchNorm behaves."""

    binary: bool
    quantizer: str = "ste"  # ste | approx (binary.QUANTIZERS)
    parent_activation: str = "relu"  # relu | identity: what the Parent has where the Child binarizes
    affine: bool = False  # BN scale/shift: off in the search supernet, on in evaluation networks
    running_stats: bool = False  # off under weight sharing: each sampled path normalizes by its own batch
    shortcut: bool = False  # Bi-Real: every conv of an op its own BN and a real-valued shortcut around it
    group_width: int = 1  # channels per group of the k x k convs in sep/dil ops; 1 = depth-wise (the paper)
    exact: bool = True  # 1-bit convs as beta * (sign x ⊛ sign W); False only to load version-1 model files
    real_depthwise: bool = False  # CP-NAS*: real-valued input into the k x k conv of every sep/dil op
    real_preprocess: bool = False  # CP-NAS**: real-valued input into the cells' preprocessing convs

    @classmethod
    def of(cls, settings, binary: bool, **batchnorm) -> "Style":
        """The style a search or train config (or a NetworkSpec) names: quantizer, Parent activation,
        shortcut, group width, which convs take real-valued inputs."""
        return cls(
            binary=binary,
            quantizer=settings.quantizer,
            parent_activation=settings.parent_activation,
            shortcut=settings.shortcut,
            group_width=settings.group_width,
            exact=getattr(settings, "exact", True),
            real_depthwise=settings.real_depthwise,
            real_preprocess=settings.real_preprocess,
            **batchnorm,
        )

    def spatial_groups(self, c: int) -> int:
        """Groups of the k x k conv of a separable or dilated op over c channels."""
        return c // math.gcd(c, self.group_width)

    def bn(self, channels: int) -> nn.BatchNorm2d:
        return BatchNorm2d(channels, affine=self.affine, track_running_stats=self.running_stats)

    def conv(self, c_in, c_out, kernel, stride=1, padding=0, dilation=1, groups=1, block_input=True, real_input=False):
        """A conv with a 1-bit input and kernel (Child) or a full-precision one (Parent).

        `block_input` marks the first conv of a block: the Parent puts its activation only there,
        as in DARTS, while the Child binarizes the input of every conv but those with `real_input`.
        """
        args = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "bias": False}
        if self.binary:
            return BinaryConv2d(
                c_in, c_out, kernel, quantizer=self.quantizer, exact=self.exact, binary_input=not real_input, **args
            )
        conv = Conv2d(c_in, c_out, kernel, **args)
        if block_input and self.parent_activation == "relu":
            return nn.Sequential(nn.ReLU(inplace=False), conv)
        return conv

    def unit(self, c, kernel, stride=1, padding=0, dilation=1, groups=1, block_input=True, real_input=False):
        """conv BN with a real-valued shortcut around it (Bi-Real Net): x + BN(conv(x))."""
        body = nn.Sequential(
            self.conv(c, c, kernel, stride, padding, dilation, groups, block_input, real_input), self.bn(c)
        )
        return Shortcut(body, stride)


class Shortcut(nn.Module):
    """body(x) + x, x average-pooled 2x2 (ceil) where the body halves the resolution, and
    averaged over neighbouring channels where the body changes the channel count.

    Around a 1-bit conv this keeps the real-valued activation flowing past the sign() (Bi-Real
    Net): the conv only has to learn a correction, and the information sign() throws away is
    not lost for the layers after it. The addition is full precision, as in every BNN since."""

    def __init__(self, body: nn.Module, stride: int, c_in: int | None = None, c_out: int | None = None):
        super().__init__()
        self.body = body
        self.pool = nn.AvgPool2d(2, ceil_mode=True) if stride == 2 else None
        self.channels = c_out if c_in is not None and c_in != c_out else None

    def forward(self, x):
        skip = x if self.pool is None else self.pool(x)
        if self.channels is not None:
            skip = average_channels(skip, self.channels)
        return self.body(x) + skip


def average_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Adaptive average pooling over the channel axis: each output channel the mean of its share
    of neighbouring input channels (groups of equal size when the counts divide)."""
    if x.shape[1] % channels == 0:
        return x.unflatten(1, (channels, -1)).mean(dim=2)
    # as a 1x1 conv with the pooling matrix: torch's adaptive 3-d pooling is slow on CPU
    rows = F.adaptive_avg_pool1d(torch.eye(x.shape[1], dtype=x.dtype, device=x.device)[None], channels)[0]
    return F.conv2d(x, rows.T.reshape(channels, -1, 1, 1))


class Zero(nn.Module):
    """No connection. The cell skips it entirely; this module exists for the full-network case."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halves the resolution with two offset 1x1 stride-2 convs (DARTS), so no pixel is skipped.

    A 1x1 conv with stride 2 is a 1x1 conv of the even pixels, so the pixels are picked first
    and the convs run with stride 1 (the same numbers, 2-3x faster on CPU): the even ones, and
    the odd ones with the zero row and column DARTS pads at the far edge of odd-sized maps."""

    def __init__(self, c_in: int, c_out: int, style: Style, real_input: bool = False):
        super().__init__()
        self.conv_a = style.conv(c_in, c_out // 2, 1, real_input=real_input)
        self.conv_b = style.conv(c_in, c_out - c_out // 2, 1, real_input=real_input)
        self.bn = style.bn(c_out)

    def forward(self, x):
        even, odd = x[:, :, ::2, ::2], x[:, :, 1::2, 1::2]
        odd = F.pad(odd, (0, even.shape[3] - odd.shape[3], 0, even.shape[2] - odd.shape[2]))
        return self.bn(torch.cat([self.conv_a(even), self.conv_b(odd)], dim=1))


def conv_bn(c_in: int, c_out: int, style: Style, kernel: int = 1, stride: int = 1, real_input=False) -> nn.Module:
    """(activation) conv BN: the cell's input preprocessing."""
    body = nn.Sequential(style.conv(c_in, c_out, kernel, stride, kernel // 2, real_input=real_input), style.bn(c_out))
    return Shortcut(body, stride, c_in, c_out) if style.shortcut else body


def reduce_input(c_in: int, c_out: int, style: Style, real_input: bool = False) -> nn.Module:
    """FactorizedReduce as a cell's input preprocessing (the cell before was a reduction), or as
    the skip op of a reduction edge."""
    body = FactorizedReduce(c_in, c_out, style, real_input)
    return Shortcut(body, 2, c_in, c_out) if style.shortcut else body


def sep_conv(c: int, kernel: int, stride: int, style: Style) -> nn.Sequential:
    """Two stacked depth-wise (or grouped, `group_width`) + point-wise convs, the first carrying the stride."""
    pad, groups, real = kernel // 2, style.spatial_groups(c), style.real_depthwise
    if style.shortcut:
        return nn.Sequential(
            style.unit(c, kernel, stride, pad, groups=groups, real_input=real),
            style.unit(c, 1, block_input=False),
            style.unit(c, kernel, 1, pad, groups=groups, real_input=real),
            style.unit(c, 1, block_input=False),
        )
    return nn.Sequential(
        style.conv(c, c, kernel, stride, pad, groups=groups, real_input=real),
        style.conv(c, c, 1, block_input=False),
        style.bn(c),
        style.conv(c, c, kernel, 1, pad, groups=groups, real_input=real),
        style.conv(c, c, 1, block_input=False),
        style.bn(c),
    )


def dil_conv(c: int, kernel: int, stride: int, style: Style) -> nn.Sequential:
    """A depth-wise (or grouped, `group_width`) conv with dilation 2 followed by a point-wise conv."""
    pad = kernel - 1  # dilation 2 keeps the size with padding = dilation * (kernel - 1) / 2
    groups, real = style.spatial_groups(c), style.real_depthwise
    if style.shortcut:
        return nn.Sequential(
            style.unit(c, kernel, stride, pad, dilation=2, groups=groups, real_input=real),
            style.unit(c, 1, block_input=False),
        )
    return nn.Sequential(
        style.conv(c, c, kernel, stride, pad, dilation=2, groups=groups, real_input=real),
        style.conv(c, c, 1, block_input=False),
        style.bn(c),
    )


def pool(kind: str, stride: int, c: int, style: Style) -> nn.Sequential:
    layer = (
        nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)
        if kind == "avg"
        else nn.MaxPool2d(3, stride, padding=1)
    )
    return nn.Sequential(layer, style.bn(c))


def skip(c: int, stride: int, style: Style) -> nn.Module:
    return nn.Identity() if stride == 1 else reduce_input(c, c, style)


OP_BUILDERS = {
    "zero": lambda c, stride, style: Zero(stride),
    "skip": skip,
    "dil_conv_3x3": lambda c, stride, style: dil_conv(c, 3, stride, style),
    "dil_conv_5x5": lambda c, stride, style: dil_conv(c, 5, stride, style),
    "avg_pool_3x3": lambda c, stride, style: pool("avg", stride, c, style),
    "max_pool_3x3": lambda c, stride, style: pool("max", stride, c, style),
    "sep_conv_3x3": lambda c, stride, style: sep_conv(c, 3, stride, style),
    "sep_conv_5x5": lambda c, stride, style: sep_conv(c, 5, stride, style),
}


def build_op(name: str, channels: int, stride: int, style: Style) -> nn.Module:
    """One candidate operation by name (names as in space.OPS)."""
    return OP_BUILDERS[name](channels, stride, style)
