"""1-bit quantizers and the binarized convolution (paper Sec. 2.4, XNOR/PCNN lineage).

Quantizers are small named autograd functions: the forward is sign() with sign(0) = +1,
the backward is a straight-through estimator. `BinaryConv2d` binarizes both its input
activations and its kernel; the kernel is rebuilt as beta * sign(W) with one scale beta per
output channel (the mean absolute weight), which is the reconstructed filter Ĥ of Eq. 3.
"""

import torch

from .layers import Conv2d, conv2d


def hard_sign(x: torch.Tensor) -> torch.Tensor:
    """sign(x) with sign(0) = +1, so a binarized value is never 0.

    sign() maps to {-1, 0, 1}; adding 0.5 and taking the sign again sends 0 (and -0.0) to +1.
    Two elementwise kernels: several times faster on CPU than torch.where with scalars.
    """
    return torch.sign(x).add_(0.5).sign_()


class SignSTE(torch.autograd.Function):
    """sign forward; clipped identity backward: the gradient passes where |x| < 1 (as hardtanh's)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return hard_sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return torch.ops.aten.hardtanh_backward(grad, x, -1.0, 1.0)  # one fused kernel


class ApproxSign(torch.autograd.Function):
    """sign forward; the piecewise-quadratic ApproxSign backward of Bi-Real Net: 2 - 2|x| inside [-1, 1]."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return hard_sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (2 - 2 * x.abs()).clamp(min=0)


QUANTIZERS = {"ste": SignSTE.apply, "approx": ApproxSign.apply}


def channel_scale(weight: torch.Tensor) -> torch.Tensor:
    """beta: the mean |W| of each output channel, shaped to broadcast over the kernel."""
    return weight.abs().mean(dim=tuple(range(1, weight.dim())), keepdim=True)


def reconstructed_kernel(weight: torch.Tensor, quantizer: str = "ste") -> torch.Tensor:
    """Ĥ = beta * sign(W): the 1-bit kernel as the convolution sees it (Eq. 3)."""
    return channel_scale(weight) * QUANTIZERS[quantizer](weight)


class BinaryConv2d(Conv2d):
    """A convolution whose input and kernel are both 1-bit (kernel scaled per output channel)."""

    def __init__(self, *args, quantizer: str = "ste", **kwargs):
        super().__init__(*args, **kwargs)
        self.quantizer = quantizer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sign = QUANTIZERS[self.quantizer]
        w = reconstructed_kernel(self.weight, self.quantizer)
        return conv2d(sign(x), w, self.bias, self.stride, self.padding, self.dilation, self.groups)
