"""Conv2d and BatchNorm2d as the candidate ops use them, around two slow CPU kernels of PyTorch.

Both compute what torch's own layers compute (same parameters, same state_dict) by another route:
- A dilated convolution is run as the plain convolution it equals, its taps spread `dilation`
  apart with zeros between. oneDNN's dilated depth-wise kernels are 3-10x slower on CPU than the
  plain ones at the sizes of the cells (benchmarks/layers.py); the zeros add exact zeros.
- BatchNorm with batch statistics on a channels-last CPU tensor is normalised in the default
  layout and converted back: ATen's channels-last CPU batch-norm kernel is 2-3x slower than its
  default-layout one, more than the two copies cost. Running statistics (eval) take the native path.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def spread_kernel(weight: torch.Tensor, dilation: tuple[int, int]) -> torch.Tensor:
    """The plain kernel equal to `weight` dilated by `dilation`: taps d apart, zeros between."""
    dh, dw = dilation
    kh, kw = weight.shape[-2:]
    spread = weight.new_zeros(*weight.shape[:2], dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    spread[:, :, ::dh, ::dw] = weight
    return spread


def conv2d(x, weight, bias, stride, padding, dilation, groups) -> torch.Tensor:
    """F.conv2d with integer padding; a dilated kernel is spread out first (see the module docstring)."""
    dilation = nn.modules.utils._pair(dilation)
    if dilation != (1, 1):
        weight, dilation = spread_kernel(weight, dilation), 1
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


class Conv2d(nn.Conv2d):
    """nn.Conv2d (zero padding) whose dilated form runs through `conv2d`."""

    def _conv_forward(self, x, weight, bias):
        return conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class BatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d; batch statistics of a channels-last CPU tensor taken in the default layout."""

    def forward(self, x):
        batch_stats = self.training or self.running_mean is None
        if batch_stats and x.device.type == "cpu" and not x.is_contiguous() \
                and x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)
        return super().forward(x)
