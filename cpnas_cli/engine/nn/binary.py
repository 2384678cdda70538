"""1-bit quantizers and the binarized convolution (paper Sec. 2.4, XNOR/PCNN lineage).

Quantizers are small named autograd functions: the forward is sign() with sign(0) = +1,
the backward is a straight-through estimator. `BinaryConv2d` binarizes both its input
activations and its kernel and scales each output channel by beta (the mean absolute weight):
beta * sign(W) is the reconstructed filter Ĥ of Eq. 3.

A conv built with `binary_input=False` keeps its kernel 1-bit but takes real-valued activations,
beta * (x ⊛ sign(W)): the paper's ImageNet networks do this for the first conv of every
depth-wise separable conv (CP-NAS*) and for the cells' input preprocessing too (CP-NAS**; Tab. 2).

Under CUDA mixed precision the 1-bit conv leaves autocast and computes in float32, so its sums of
±1 stay exact integers (bfloat16 would round them from 257 on; engine/run/precision.py).

Exact semantics (`binary_conv2d`): y = beta_c * (sign(x) ⊛ sign(W)), the ±1 convolution first,
then one float multiply per output. A float32 convolution of ±1 values sums integers below 2^24,
so it is exact whatever the algorithm or summation order, and y is what an XNOR-popcount engine
computes (zero padding: padded taps add 0, which a bit engine corrects for). Convolving with the
float kernel beta * sign(W) instead (the formula of version-1 model files, `exact=False`) leaves
a rounding residue where the ±1 sum is 0, whose sign depends on the summation order.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import Conv2d, conv2d, spread_kernel


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


class ApproxSign(SignSTE):
    """sign forward (SignSTE's); the piecewise-quadratic ApproxSign backward of Bi-Real Net: 2 - 2|x| inside [-1, 1]."""

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (2 - 2 * x.abs()).clamp(min=0)


QUANTIZERS = {"ste": SignSTE.apply, "approx": ApproxSign.apply}


def channel_scale(weight: torch.Tensor) -> torch.Tensor:
    """beta: the mean |W| of each output channel, shaped to broadcast over the kernel."""
    return weight.abs().mean(dim=tuple(range(1, weight.dim())), keepdim=True)


def exact_scale(weight: torch.Tensor) -> torch.Tensor:
    """beta of the exact conv: `channel_scale` of the weight in the default layout, so a
    channels-last copy of a network (training, `cpnas evaluate`) sums |W| in the same order as
    the packed file's beta: a reduction over a channels-last kernel may round differently."""
    return channel_scale(weight.contiguous())


def reconstructed_kernel(weight: torch.Tensor, quantizer: str = "ste") -> torch.Tensor:
    """Ĥ = beta * sign(W): the 1-bit kernel as the convolution sees it (Eq. 3)."""
    return channel_scale(weight) * QUANTIZERS[quantizer](weight)


class _ExactBinaryConv(torch.autograd.Function):
    """scale[c] * (x ⊛ signs): the ±1 convolution, then the scale in place on its output.

    The backward is the float formula's, so training costs what it did: with K = scale·signs,
    y = x ⊛ K, so grad_x = the conv backward through K, and from G = dL/dK (x and grad only),
    grad_signs = scale·G and grad_scale[c] = sum G[c]·signs[c]. A dilated conv is differentiated
    as the plain conv it equals (layers.conv2d). Built from differentiable ops, so DCP's second
    derivatives pass through it."""

    @staticmethod
    def forward(ctx, x, signs, scale, stride, padding, dilation, groups):
        ctx.save_for_backward(x, signs, scale)
        ctx.geometry = (stride, padding, dilation, groups)
        out = F.conv2d(x, signs, None, stride, padding, dilation, groups)
        return out.mul_(scale.view(1, -1, 1, 1))

    @staticmethod
    def backward(ctx, grad):
        x, signs, scale = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.geometry
        need_x, need_signs, need_scale = ctx.needs_input_grad[:3]
        kernel = scale.view(-1, 1, 1, 1) * signs
        if dilation != (1, 1):
            kernel = spread_kernel(kernel, dilation)
        mask = [need_x, need_signs or need_scale, False]
        grad_x, grad_kernel, _ = torch.ops.aten.convolution_backward(
            grad, x, kernel, None, stride, padding, (1, 1), False, (0, 0), groups, mask
        )
        grad_signs = grad_scale = None
        if grad_kernel is not None:
            grad_kernel = grad_kernel[:, :, :: dilation[0], :: dilation[1]]
            if need_signs:
                grad_signs = grad_kernel * scale.view(-1, 1, 1, 1)
            if need_scale:
                grad_scale = (grad_kernel * signs).sum(dim=(1, 2, 3)).view(scale.shape)
        return grad_x, grad_signs, grad_scale, None, None, None, None


def binary_conv2d(
    x: torch.Tensor,
    signs: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
) -> torch.Tensor:
    """The exact 1-bit conv: scale[c] * (x ⊛ signs) (+ bias), x and signs holding ±1, zero padding.

    The convolution of ±1 values is an exact integer in float32 (fan-in below 2^24); the scale,
    one per output channel (any shape with that many elements), is then one float multiply per
    output. Differentiable in x, signs and scale (`_ExactBinaryConv`)."""
    pair = nn.modules.utils._pair
    out = _ExactBinaryConv.apply(x, signs, scale, pair(stride), pair(padding), pair(dilation), groups)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class BinaryConv2d(Conv2d):
    """A convolution whose input and kernel are both 1-bit, its output scaled per channel by beta;
    `binary_input=False`: a 1-bit kernel on real-valued activations (CP-NAS*, CP-NAS**).

    `exact=False` keeps the float formula of version-1 model files (sign(x) convolved with the
    float kernel beta * sign(W)); networks are built that way only to load such files."""

    def __init__(self, *args, quantizer: str = "ste", exact: bool = True, binary_input: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.quantizer = quantizer
        self.exact = exact
        self.binary_input = binary_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and torch.is_autocast_enabled():  # mixed precision (run/precision.py): not here
            with torch.autocast("cuda", enabled=False):
                return self.forward(x.float())
        sign = QUANTIZERS[self.quantizer]
        geometry = (self.stride, self.padding, self.dilation, self.groups)
        x = sign(x) if self.binary_input else x
        if not self.exact:
            return conv2d(x, reconstructed_kernel(self.weight, self.quantizer), self.bias, *geometry)
        return binary_conv2d(x, sign(self.weight), exact_scale(self.weight), self.bias, *geometry)

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + ("" if self.exact else ", exact=False")
            + ("" if self.binary_input else ", real-valued input")
        )
