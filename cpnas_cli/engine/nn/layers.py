"""Conv2d and BatchNorm2d as the candidate ops use them, around two slow CPU kernels of PyTorch.

Both compute what torch's own layers compute (same parameters, same state_dict) by another route:
- A dilated convolution runs torch's forward, but its backward is that of the plain convolution
  it equals, the kernel's taps spread `dilation` apart with zeros between: oneDNN's dilated
  backward kernels are 2-10x slower on CPU than the plain ones at the sizes of the cells, while
  its dilated forward is faster than the spread one (benchmarks/layers.py).
- BatchNorm with batch statistics on a channels-last CPU tensor that autograd will differentiate
  is normalised in the default layout and converted back: the backward of ATen's channels-last
  CPU batch norm is 2-3x slower than the default-layout one, more than the copies cost. Its
  forward is fast, so without a graph (validation, eval) and with running statistics the native
  path runs.
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


class DilatedConv(torch.autograd.Function):
    """F.conv2d without bias; the backward of the equal plain conv (built from differentiable ops,
    so a second derivative, as DCP's exact Hessian takes, still works)."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, dilation, groups):
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, dilation, groups)
        return F.conv2d(x, weight, None, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.geometry
        spread = spread_kernel(weight, dilation)
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False]
        grad_x, grad_spread, _ = torch.ops.aten.convolution_backward(
            grad, x, spread, None, stride, padding, (1, 1), False, (0, 0), groups, mask
        )
        grad_w = None if grad_spread is None else grad_spread[:, :, :: dilation[0], :: dilation[1]]
        return grad_x, grad_w, None, None, None, None


def conv2d(x, weight, bias, stride, padding, dilation, groups) -> torch.Tensor:
    """F.conv2d with integer padding; a dilated conv differentiated as a plain one (module docstring)."""
    pair = nn.modules.utils._pair
    if pair(dilation) == (1, 1) or not torch.is_grad_enabled():
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    out = DilatedConv.apply(x, weight, pair(stride), pair(padding), pair(dilation), groups)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class Conv2d(nn.Conv2d):
    """nn.Conv2d (zero padding) whose dilated form runs through `conv2d`."""

    def _conv_forward(self, x, weight, bias):
        return conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class BatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d; in training, batch statistics of a channels-last CPU tensor are taken in
    the default layout."""

    def forward(self, x):
        batch_stats = self.training or self.running_mean is None
        if (
            batch_stats
            and torch.is_grad_enabled()
            and x.device.type == "cpu"
            and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last)
        ):
            return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)
        return super().forward(x)
