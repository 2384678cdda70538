"""1-bit quantizers, the 8 candidate ops and the single-path supernet."""

import pytest
import torch
import torch.nn.functional as F

from cpnas_cli.engine.nn.binary import ApproxSign, BinaryConv2d, SignSTE, hard_sign, reconstructed_kernel
from cpnas_cli.engine.nn.ops import Style, average_channels, build_op, conv_bn
from cpnas_cli.engine.search.supernet import SearchNetwork
from cpnas_cli.space.cells import OPS, cell_edges

CHILD, PARENT = Style(binary=True), Style(binary=False)
STYLES = {
    "child": CHILD,
    "parent": PARENT,
    "child+shortcut": Style(binary=True, shortcut=True),
    "parent+shortcut": Style(binary=False, shortcut=True),
}


def test_sign_of_zero_is_plus_one():
    x = torch.tensor([-3.0, -0.0, 0.0, 1e-9, 2.0])
    assert hard_sign(x).tolist() == [-1.0, 1.0, 1.0, 1.0, 1.0]


def test_ste_gradient_is_zero_outside_the_clip():
    x = torch.tensor([-2.0, -1.5, -0.5, 0.0, 0.7, 1.5, 3.0], requires_grad=True)
    SignSTE.apply(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_approx_sign_gradient_is_two_minus_two_abs_x():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.25, 1.5], requires_grad=True)
    ApproxSign.apply(x).sum().backward()
    assert x.grad.tolist() == pytest.approx([0.0, 1.0, 2.0, 1.5, 0.0])


def test_reconstructed_kernel_is_plus_or_minus_the_channel_scale():
    torch.manual_seed(0)
    w = torch.randn(4, 3, 3, 3)
    k = reconstructed_kernel(w)
    beta = w.abs().mean(dim=(1, 2, 3))
    for c in range(4):
        assert set(k[c].abs().unique().tolist()) == pytest.approx([beta[c].item()])
        assert torch.equal(torch.sign(k[c]), hard_sign(w[c]))


def test_binary_conv_sees_only_signs_of_its_input():
    torch.manual_seed(0)
    conv = BinaryConv2d(3, 5, 3, padding=1, bias=False)
    x = torch.randn(2, 3, 6, 6)
    beta = reconstructed_kernel(conv.weight).abs().amax(dim=(1, 2, 3)).view(1, -1, 1, 1)
    expected = F.conv2d(hard_sign(x), hard_sign(conv.weight), padding=1) * beta  # exact: the ±1 sum, then beta
    assert torch.equal(conv(x), expected)
    assert torch.equal(conv(x), conv(x * 7.5))  # magnitudes do not matter, only signs


@pytest.mark.parametrize("style", STYLES.values(), ids=STYLES.keys())
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("size", [8, 7])
def test_every_op_keeps_channels_and_halves_the_size_with_stride_2(style, op, size):
    x = torch.randn(2, 6, size, size)
    assert build_op(op, 6, 1, style)(x).shape == (2, 6, size, size)
    half = (size + 1) // 2
    assert build_op(op, 6, 2, style)(x).shape == (2, 6, half, half)


def test_child_convs_are_binary_and_parent_convs_are_not():
    child = build_op("sep_conv_3x3", 4, 1, CHILD)
    parent = build_op("sep_conv_3x3", 4, 1, PARENT)
    assert sum(isinstance(m, BinaryConv2d) for m in child.modules()) == 4
    assert not any(isinstance(m, BinaryConv2d) for m in parent.modules())
    assert not any(isinstance(m, torch.nn.ReLU) for m in child.modules())  # no ReLU inside Child ops


def test_shortcut_adds_the_input_to_every_conv_of_an_op():
    torch.manual_seed(0)
    op = build_op("dil_conv_3x3", 4, 1, Style(binary=True, shortcut=True)).eval()
    x = torch.randn(2, 4, 6, 6)
    dw, pw = op  # each a Shortcut around (1-bit conv, BN)
    h = dw.body(x) + x
    assert torch.allclose(op(x), pw.body(h) + h)
    half = build_op("sep_conv_3x3", 4, 2, Style(binary=True, shortcut=True)).eval()
    first = half[0]
    assert torch.allclose(first(x), first.body(x) + F.avg_pool2d(x, 2, ceil_mode=True))


def test_average_channels_takes_the_mean_of_neighbouring_channels():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert average_channels(x, 2).flatten().tolist() == [1.5, 5.5]  # groups of four
    uneven = average_channels(torch.arange(3.0).view(1, 3, 1, 1), 2)  # the stem's 3C into a 2C cell
    assert uneven.flatten().tolist() == [0.5, 1.5]  # windows [0, 1] and [1, 2]


def test_preprocessing_shortcut_carries_the_input_past_the_1_bit_conv():
    torch.manual_seed(0)
    pre = conv_bn(8, 2, Style(binary=True, shortcut=True)).eval()
    x = torch.randn(2, 8, 5, 5)
    mean_of_fours = x.view(2, 2, 4, 5, 5).mean(dim=2)
    assert torch.allclose(pre(x), pre.body(x) + mean_of_fours, atol=1e-6)


def tiny_net(style, ops=OPS):
    torch.manual_seed(0)
    return SearchNetwork(1, 10, channels=4, cells=3, ops=ops, style=style)


def test_supernet_runs_only_the_sampled_ops():
    net = tiny_net(CHILD)
    edges = len(cell_edges())
    arch = {"normal": ["sep_conv_3x3"] * edges, "reduce": ["max_pool_3x3"] * edges}
    x = torch.randn(2, 1, 12, 12)
    net(x, arch).sum().backward()
    used = {n for n, p in net.named_parameters() if p.grad is not None}
    assert any("sep_conv_3x3" in n for n in used)
    assert not any("dil_conv" in n or "sep_conv_5x5" in n for n in used)


def test_all_zero_architecture_still_produces_logits():
    net = tiny_net(PARENT)
    edges = len(cell_edges())
    arch = {"normal": ["zero"] * edges, "reduce": ["zero"] * edges}
    assert net(torch.randn(2, 1, 12, 12), arch).shape == (2, 10)


def test_prune_frees_the_weights_of_removed_ops():
    net = tiny_net(CHILD)
    before = sum(p.numel() for p in net.parameters())
    net.prune("normal", 3, "sep_conv_5x5")
    assert sum(p.numel() for p in net.parameters()) < before
    normal_cells = [c for c in net.cells if not c.reduce]
    assert all("sep_conv_5x5" not in c.edges[3] for c in normal_cells)
    assert all("sep_conv_5x5" in c.edges[4] for c in normal_cells)
