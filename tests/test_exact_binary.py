"""Exact 1-bit semantics: every 1-bit conv is beta * (sign x ⊛ sign W), the ±1 convolution an
exact integer (checked against an int64 reference on the shapes of the search space, so no
Winograd-like transform of oneDNN rounds it), the scale one multiply after it; gradients as the
float formula's; DCP's learned-scale conv and version-1 networks."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from cpnas_cli.engine.nn.binary import BinaryConv2d, binary_conv2d, channel_scale, hard_sign
from cpnas_cli.engine.nn.network import NetworkSpec
from cpnas_cli.engine.search.strategies.dcp.scaled_binary import ScaledBinaryConv2d, learn_scales
from cpnas_cli.space import genotype as g


def int_conv(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int, dilation: int, groups: int) -> torch.Tensor:
    """The convolution in int64 arithmetic, tap by tap (the reference of an XNOR-popcount engine)."""
    x, w = x.to(torch.int64), w.to(torch.int64)
    n, _, h, width = x.shape
    o, cg, kh, kw = w.shape
    x = F.pad(x, (padding,) * 4)
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (width + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    xg = x.view(n, groups, cg, *x.shape[-2:])
    wg = w.view(groups, o // groups, cg, kh, kw)
    out = torch.zeros(n, groups, o // groups, ho, wo, dtype=torch.int64)
    for i in range(kh):
        for j in range(kw):
            r, s = i * dilation, j * dilation
            patch = xg[..., r : r + stride * (ho - 1) + 1 : stride, s : s + stride * (wo - 1) + 1 : stride]
            out += torch.einsum("ngchw,goc->ngohw", patch, wg[..., i, j])
    return out.view(n, o, ho, wo)


# (c_in, c_out, kernel, stride, dilation, groups, size): the convs of the search space's ops, in the
# paper's style (depth-wise) and the CPU presets' (16 channels per group), at the channel counts
# and resolutions of the quick / fashion-mnist networks and of the paper's CIFAR-10 Child.
SHAPES = [
    (48, 16, 1, 1, 1, 1, 14),  # preprocessing 1x1 (ReLUConvBN)
    (448, 112, 1, 1, 1, 1, 8),  # preprocessing 1x1 of a wide cell
    (64, 64, 1, 1, 1, 1, 7),  # sep/dil point-wise
    (32, 16, 1, 2, 1, 1, 14),  # FactorizedReduce half (stride 2)
    (32, 32, 3, 1, 1, 2, 14),  # sep_conv_3x3, 16 per group
    (64, 64, 5, 2, 1, 4, 14),  # sep_conv_5x5 stride 2, 16 per group
    (64, 64, 3, 1, 2, 4, 7),  # dil_conv_3x3, 16 per group
    (32, 32, 5, 1, 2, 2, 9),  # dil_conv_5x5, odd size
    (16, 16, 3, 2, 1, 16, 28),  # depth-wise 3x3 stride 2 (paper ops)
    (36, 36, 5, 1, 2, 36, 8),  # depth-wise dilated 5x5
    (256, 256, 3, 1, 1, 1, 8),  # dense 3x3
]


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{s[0]}-{s[1]}-k{s[2]}-s{s[3]}-d{s[4]}-g{s[5]}" for s in SHAPES])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("grad", [False, True], ids=["eval", "train"])
def test_the_pm1_convolution_is_integral_and_equals_an_int64_reference(shape, layout, grad):
    c_in, c_out, k, stride, dilation, groups, size = shape
    torch.manual_seed(0)
    x, w = torch.randn(4, c_in, size, size), torch.randn(c_out, c_in // groups, k, k)
    if layout == "channels_last":
        x, w = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
    conv = BinaryConv2d(
        c_in, c_out, k, stride=stride, padding=dilation * (k // 2), dilation=dilation, groups=groups, bias=False
    )
    with torch.no_grad():
        conv.weight.copy_(w)
    conv.weight.requires_grad_(grad)
    expected = int_conv(hard_sign(x), hard_sign(w), stride, dilation * (k // 2), dilation, groups)
    with torch.set_grad_enabled(grad):
        pm1 = binary_conv2d(hard_sign(x), hard_sign(conv.weight), torch.ones(c_out), None, *_geometry(conv))
        y = conv(x)
    assert torch.equal(pm1, pm1.round()) and torch.equal(pm1.to(torch.int64), expected)
    # one float multiply by beta after the integer sum, bit for bit
    assert torch.equal(y, expected.to(torch.float32) * channel_scale(w.contiguous()).view(1, -1, 1, 1))


def _geometry(conv):
    return conv.stride, conv.padding, conv.dilation, conv.groups


@pytest.mark.parametrize("quantizer", ["ste", "approx"])
@pytest.mark.parametrize("dilation", [1, 2])
def test_gradients_are_the_float_formulas_up_to_rounding(quantizer, dilation):
    """STE / ApproxSign through sign(), beta = mean|W| differentiated: the same gradients as the
    float formula's, which only sums them in another order (dilated: layers.conv2d's backward)."""
    torch.manual_seed(1)
    x0 = torch.randn(8, 32, 9, 9).contiguous(memory_format=torch.channels_last)
    grads = {}
    for exact in (True, False):
        torch.manual_seed(2)
        conv = BinaryConv2d(
            32, 32, 3, padding=dilation, dilation=dilation, groups=2, bias=False, quantizer=quantizer, exact=exact
        )
        x = x0.clone().requires_grad_(True)
        (conv(x) * torch.linspace(-1, 1, 81).view(1, 1, 9, 9)).square().sum().backward()
        grads[exact] = (x.grad, conv.weight.grad)
    for exact_grad, float_grad in zip(grads[True], grads[False], strict=True):
        assert exact_grad.abs().sum() > 0
        torch.testing.assert_close(exact_grad, float_grad, rtol=1e-4, atol=1e-5)


def test_dcp_learned_scale_conv_is_exact_and_twice_differentiable():
    torch.manual_seed(3)
    conv = ScaledBinaryConv2d(BinaryConv2d(32, 16, 1, bias=False))
    with torch.no_grad():
        conv.scale.mul_(torch.linspace(0.5, 2, 16))  # a learned scale, no longer the mean |W|
    x = torch.randn(4, 32, 7, 7, requires_grad=True)
    y = conv(x)
    expected = int_conv(hard_sign(x.detach()), hard_sign(conv.weight.detach()), 1, 0, 1, 1)
    assert torch.equal(y.detach(), expected.to(torch.float32) * conv.scale.detach().view(1, -1, 1, 1))
    (grad_scale,) = torch.autograd.grad(y.square().sum(), conv.scale, create_graph=True)
    (second,) = torch.autograd.grad(grad_scale.sum(), conv.scale)  # DCP's exact Hessian needs this
    assert grad_scale.abs().sum() > 0 and second.abs().sum() > 0


GENOTYPE = g.from_darts(
    "Genotype(normal=[('sep_conv_3x3', 0), ('dil_conv_5x5', 1), ('sep_conv_5x5', 0), ('dil_conv_3x3', 2), "
    "('skip_connect', 1), ('avg_pool_3x3', 3), ('max_pool_3x3', 0), ('sep_conv_3x3', 4)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('sep_conv_3x3', 0), ('skip_connect', 1), ('dil_conv_3x3', 0), "
    "('max_pool_3x3', 2), ('sep_conv_5x5', 1), ('avg_pool_3x3', 3), ('dil_conv_5x5', 4), ('skip_connect', 2)], "
    "reduce_concat=[2, 3, 4, 5])"
)


def test_the_semantics_belong_to_the_built_network_not_to_a_global():
    spec = NetworkSpec(in_channels=1, classes=10, channels=8, cells=3, image_size=28, shortcut=True, group_width=4)
    legacy = dataclasses.replace(spec, exact=False)
    exact_net, legacy_net = spec.build(GENOTYPE, binary=True), legacy.build(GENOTYPE, binary=True)
    assert all(m.exact for m in exact_net.modules() if isinstance(m, BinaryConv2d))
    assert not any(m.exact for m in legacy_net.modules() if isinstance(m, BinaryConv2d))
    assert spec == legacy and "exact" not in spec.to_dict()  # files store it as their version
    assert all(m.exact for m in learn_scales(exact_net).modules() if isinstance(m, BinaryConv2d))
