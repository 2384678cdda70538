"""The kernel-level CP loss (Eqs. 3-4) on tensors worked by hand, and the Child-Parent kernel pairing."""

import pytest
import torch
import torch.nn as nn

from cpnas_cli.engine.nn.binary import BinaryConv2d
from cpnas_cli.engine.nn.cp_terms import center_loss, kernel_loss
from cpnas_cli.engine.nn.network import NetworkSpec
from cpnas_cli.engine.train.losses import CPLossWeights, classification_loss, cp_loss, paired_kernels
from cpnas_cli.space import genotype as g
from tests.genotypes import DARTS_V2, DARTS_V2_VARIANT

SPEC = NetworkSpec(in_channels=1, classes=10, channels=4, cells=3, image_size=28, auxiliary=True)


def test_kernel_loss_is_the_sum_over_filters_of_the_mse_between_h_and_its_reconstruction():
    conv = BinaryConv2d(1, 2, (1, 2), bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[0.5, -0.1]]], [[[-0.2, -0.4]]]]))
    parent = torch.tensor([[[[0.2, 0.1]]], [[[-0.3, 0.0]]]], requires_grad=True)
    # filter 0: beta = 0.3, Ĥ = [0.3, -0.3], MSE vs [0.2, 0.1] = (0.01 + 0.16) / 2 = 0.085
    # filter 1: beta = 0.3, Ĥ = [-0.3, -0.3], MSE vs [-0.3, 0.0] = (0 + 0.09) / 2 = 0.045
    loss = kernel_loss([(conv, parent)])
    assert loss.item() == pytest.approx(0.13)
    loss.backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert parent.grad is None  # the Parent supervises; it is not pulled toward the Child


def test_kernel_loss_sums_over_layers_and_is_zero_for_an_already_binary_target():
    a, b = BinaryConv2d(1, 1, (1, 2), bias=False), BinaryConv2d(1, 1, (1, 2), bias=False)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([[[[0.4, -0.2]]]]))  # beta 0.3
        b.weight.copy_(torch.tensor([[[[0.0, 0.2]]]]))  # beta 0.1, sign(0) = +1
    exact = torch.tensor([[[[0.3, -0.3]]]])
    assert kernel_loss([(a, exact)]).item() == pytest.approx(0.0, abs=1e-12)
    # b: Ĥ = [0.1, 0.1] vs [0, 0]: MSE 0.01; a vs [0, 0]: 0.09
    zeros = torch.zeros(1, 1, 1, 2)
    assert kernel_loss([(a, zeros), (b, zeros)]).item() == pytest.approx(0.10)


def test_center_loss_pulls_child_features_to_the_parents_class_means():
    parent = torch.tensor([[1.0, 1.0], [3.0, 1.0], [0.0, 2.0]], requires_grad=True)
    child = torch.tensor([[2.0, 2.0], [1.0, 1.0], [0.0, 0.0]], requires_grad=True)
    labels = torch.tensor([4, 4, 7])
    # centres: class 4 = [2, 1], class 7 = [0, 2]; squared gaps 1, 1, 4 over 6 elements -> 1; times 1/2
    loss = center_loss(child, parent, labels)
    assert loss.item() == pytest.approx(0.5)
    loss.backward()
    assert parent.grad is None
    assert torch.allclose(child.grad, torch.tensor([[0.0, 1.0], [-1.0, 0.0], [0.0, -2.0]]) / 6)


def test_center_loss_works_on_feature_maps():
    child, parent = torch.zeros(2, 3, 2, 2), torch.ones(2, 3, 2, 2)
    assert center_loss(child, parent, torch.tensor([0, 1])).item() == pytest.approx(0.5)


def test_the_objective_adds_each_weighted_term_and_drops_switched_off_ones():
    ce, kernel, center = torch.tensor(2.0), torch.tensor(3.0), torch.tensor(5.0)
    assert cp_loss(ce, kernel, center, CPLossWeights(kernel=1.0, center=0.1)).item() == pytest.approx(5.5)
    assert cp_loss(ce, kernel, center, CPLossWeights(kernel=0.0, center=0.0)).item() == pytest.approx(2.0)
    assert cp_loss(ce, None, None, CPLossWeights()).item() == pytest.approx(2.0)


def test_classification_loss_adds_the_weighted_auxiliary_tower():
    logits, aux, labels = torch.zeros(2, 4), torch.zeros(2, 4), torch.tensor([0, 3])
    ce, total = classification_loss(logits, aux, labels, CPLossWeights(auxiliary=0.5))
    assert ce.item() == pytest.approx(torch.log(torch.tensor(4.0)).item())
    assert total.item() == pytest.approx(1.5 * ce.item())
    assert classification_loss(logits, None, labels, CPLossWeights())[1].item() == pytest.approx(ce.item())


def _pair(seed=0, genotype=DARTS_V2):
    nets = []
    for binary in (True, False):
        torch.manual_seed(seed)
        nets.append(SPEC.build(g.from_darts(genotype), binary))
    return nets


def test_child_and_parent_kernels_pair_one_to_one_and_start_equal():
    child, parent = _pair()
    pairs = paired_kernels(child, parent)
    child_convs = [m for m in child.cells.modules() if isinstance(m, BinaryConv2d)]
    assert len(pairs) == len(child_convs) > 10
    assert [c for c, _ in pairs] == child_convs
    for conv, h in pairs:
        assert conv.weight.shape == h.shape and torch.equal(conv.weight, h)  # same initialisation
    # so at the start the kernel term is the pure quantization error, as with the Child's own kernels
    assert kernel_loss(pairs).item() == pytest.approx(kernel_loss(paired_kernels(child, None)).item())
    # the stem stays full precision and is not paired
    assert not any(isinstance(m, BinaryConv2d) for m in child.stem.modules())


def test_pairing_refuses_networks_of_different_genotypes():
    child, _ = _pair()
    _, parent = _pair(genotype=DARTS_V2_VARIANT)
    with pytest.raises(ValueError, match="line up"):
        paired_kernels(child, parent)
    with pytest.raises(ValueError, match="binarized"):
        paired_kernels(parent, child)


def test_kernel_gradient_moves_child_signs_toward_the_parents():
    """A few steps on the kernel term alone flip the Child's latent signs to the Parent's."""
    conv = BinaryConv2d(1, 1, (1, 4), bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[0.3, -0.3, 0.3, -0.3]]]]))
    target = torch.tensor([[[[-0.3, 0.3, 0.3, -0.3]]]])
    optimizer = torch.optim.SGD(conv.parameters(), lr=1.0)
    for _ in range(20):
        optimizer.zero_grad()
        kernel_loss([(conv, target)]).backward()
        optimizer.step()
    assert torch.equal(torch.sign(conv.weight), torch.sign(target))
    assert isinstance(conv, nn.Conv2d)
