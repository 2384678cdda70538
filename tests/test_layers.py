"""The CPU fast paths of engine/nn/layers.py compute what torch's own layers compute."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cpnas_cli.engine.nn.binary import BinaryConv2d, hard_sign, reconstructed_kernel
from cpnas_cli.engine.nn.layers import BatchNorm2d, Conv2d, spread_kernel
from cpnas_cli.engine.nn.ops import FactorizedReduce, Style


def test_spread_kernel_puts_taps_dilation_apart_with_zeros_between():
    w = torch.arange(1.0, 5.0).view(1, 1, 2, 2)
    assert spread_kernel(w, (2, 2))[0, 0].tolist() == [[1, 0, 2], [0, 0, 0], [3, 0, 4]]
    assert spread_kernel(w, (1, 3))[0, 0].tolist() == [[1, 0, 0, 2], [3, 0, 0, 4]]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("kernel,stride,size", [(3, 1, 7), (5, 1, 4), (3, 2, 14), (5, 2, 7)])
def test_dilated_depthwise_conv_equals_torch_values_and_gradients(layout, kernel, stride, size):
    torch.manual_seed(0)
    ours = Conv2d(6, 6, kernel, stride, padding=kernel - 1, dilation=2, groups=6, bias=False)
    x = torch.randn(3, 6, size, size).contiguous(memory_format=layout).requires_grad_()
    y = ours(x)
    expected = F.conv2d(x, ours.weight, None, stride, kernel - 1, 2, 6)
    assert y.shape == expected.shape
    assert torch.allclose(y, expected, atol=1e-5)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, ours.weight), g)
    expected_grads = torch.autograd.grad(expected, (x, ours.weight), g)
    for a, b in zip(grads, expected_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-4)


def test_dilated_conv_second_derivative_equals_torch():
    """DCP's exact Hessian differentiates the gradient of a dilated conv once more."""
    torch.manual_seed(0)
    ours = Conv2d(4, 4, 3, 1, padding=2, dilation=2, groups=4, bias=False)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)

    def grad_norm(y):
        (gw,) = torch.autograd.grad(y.square().sum(), ours.weight, create_graph=True)
        return torch.autograd.grad(gw.square().sum(), x)[0]

    expected = grad_norm(F.conv2d(x, ours.weight, None, 1, 2, 2, 4))
    assert torch.allclose(grad_norm(ours(x)), expected, atol=1e-4)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_on_channels_last_equals_torch_and_keeps_the_layout(training):
    torch.manual_seed(0)
    ours, theirs = BatchNorm2d(5), nn.BatchNorm2d(5)
    theirs.load_state_dict(ours.state_dict())
    ours.train(training), theirs.train(training)
    x = (torch.randn(8, 5, 6, 6) * 3 + 1).contiguous(memory_format=torch.channels_last)
    y = ours(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(y, theirs(x), atol=1e-5)
    assert torch.allclose(ours.running_mean, theirs.running_mean) and torch.allclose(
        ours.running_var, theirs.running_var
    )


def stride_2_conv(module, x):
    """What DARTS computes: the 1x1 conv (1-bit or after the Parent's ReLU) with stride 2."""
    if isinstance(module, BinaryConv2d):
        return F.conv2d(hard_sign(x), reconstructed_kernel(module.weight), stride=2)
    relu, conv = module
    return F.conv2d(relu(x), conv.weight, stride=2)


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("size", [8, 7])
def test_factorized_reduce_equals_darts_offset_stride_2_convs(binary, size):
    torch.manual_seed(0)
    reduce = FactorizedReduce(4, 6, Style(binary=binary)).eval()
    x = torch.randn(2, 4, size, size)
    shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]  # DARTS: the map offset by one pixel, zero at the far edge
    halves = [stride_2_conv(reduce.conv_a, x), stride_2_conv(reduce.conv_b, shifted)]
    assert torch.allclose(reduce(x), reduce.bn(torch.cat(halves, dim=1)), atol=1e-6)
