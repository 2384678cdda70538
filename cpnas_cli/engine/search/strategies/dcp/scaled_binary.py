"""DCP-NAS's 1-bit convolution with learned channel scales (Eq. 4.22) and its reconstruction error (Eq. 4.23).

Eq. 4.22: a_out = beta ∘ (sign(a_in) ⊙ sign(W)), beta > 0 one scale per output channel, computed
as written (binary.binary_conv2d: the exact ±1 convolution, then beta). Here beta is a parameter
of its own, initialised to the mean |W| that binary.BinaryConv2d recomputes every step, and
trained by the Child's loss. Eq. 4.23: L_R = sum over convs ||W - beta ∘ sign(W)||^2,
with sign(W) taken as a constant, so the gradient pulls each latent weight towards ±beta and each
beta towards the mean |W| of its channel.
"""

from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from cpnas_cli.engine.nn.binary import QUANTIZERS, BinaryConv2d, binary_conv2d, channel_scale, hard_sign


class ScaledBinaryConv2d(BinaryConv2d):
    """A BinaryConv2d whose per-channel scale beta is learned instead of recomputed."""

    def __init__(self, conv: BinaryConv2d):
        super().__init__(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias is not None,
            quantizer=conv.quantizer,
            exact=conv.exact,
            binary_input=conv.binary_input,
        )
        self.weight = conv.weight
        self.scale = nn.Parameter(channel_scale(conv.weight.detach()).flatten().clone())

    def kernel(self) -> torch.Tensor:
        return self.scale.view(-1, 1, 1, 1) * QUANTIZERS[self.quantizer](self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sign = QUANTIZERS[self.quantizer]
        padding = cast(tuple[int, int], self.padding)  # the ops give integer padding, never "same"
        geometry = (self.stride, padding, self.dilation, self.groups)
        x = sign(x) if self.binary_input else x
        if not self.exact:  # the float formula of version-1 files
            return F.conv2d(x, self.kernel(), self.bias, *geometry)
        return binary_conv2d(x, sign(self.weight), self.scale, self.bias, *geometry)


def learn_scales(net: nn.Module) -> nn.Module:
    """Replace every BinaryConv2d of `net` by a ScaledBinaryConv2d sharing its weight (in place)."""
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is BinaryConv2d:
                setattr(parent, name, ScaledBinaryConv2d(child))
    return net


def binary_kernel(conv: BinaryConv2d) -> torch.Tensor:
    """beta ∘ sign(W) as the convolution uses it (learned or mean-|W| scale)."""
    if isinstance(conv, ScaledBinaryConv2d):
        return conv.kernel()
    return channel_scale(conv.weight) * hard_sign(conv.weight)


def reconstruction_error(net: nn.Module) -> torch.Tensor:
    """Eq. 4.23 summed over every 1-bit conv of `net`; sign(W) is not differentiated, and a
    mean-|W| scale is a constant of the step (its own minimiser of this error)."""
    total: torch.Tensor | None = None
    for conv in net.modules():
        if isinstance(conv, BinaryConv2d):
            b = hard_sign(conv.weight.detach())
            scale = (
                conv.scale.view(-1, 1, 1, 1)
                if isinstance(conv, ScaledBinaryConv2d)
                else channel_scale(conv.weight.detach())
            )
            term = (conv.weight - scale * b).pow(2).sum()
            total = term if total is None else total + term
    return total if total is not None else torch.zeros(())
