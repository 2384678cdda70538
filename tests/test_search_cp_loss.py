"""The kernel-level CP loss (Eq. 3) as a search option: with both weights 0 the Child's step is
cross-entropy alone, as before the option existed; with a weight set, it changes the Child's
update and leaves the Parent's alone (the Parent supervises)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cpnas_cli.config import load_config
from cpnas_cli.engine.search.child_parent import ChildParent
from cpnas_cli.space.cells import CELL_TYPES, cell_edges
from tests.tiny_runs import TINY_SEARCH

ARCH = {cell: ["sep_conv_3x3", "skip", "max_pool_3x3", "sep_conv_3x3", "zero"] for cell in CELL_TYPES}


def step(*overrides: str) -> dict[str, dict[str, torch.Tensor]]:
    """One train_batch of a tiny Child-Parent pair; every tensor of both networks after it."""
    config = load_config("quick", sets=[*TINY_SEARCH, "search.nodes=2", *overrides])
    assert len(ARCH["normal"]) == len(cell_edges(2))
    model = ChildParent(config.search, 1, 10, torch.device("cpu"), seed=0, image_size=12)
    x, y = batch()
    model.train_batch(x, y, ARCH, lr=0.01)
    return {role: {k: v.clone() for k, v in net.state_dict().items()} for role, net in model.nets.items()}


def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 1, 12, 12, generator=g), torch.randint(0, 10, (8,), generator=g)


def cross_entropy_only() -> dict[str, torch.Tensor]:
    """The Child after the search's step as it was before the option: CE, clip, optimizer step."""
    config = load_config("quick", sets=[*TINY_SEARCH, "search.nodes=2"])
    model = ChildParent(config.search, 1, 10, torch.device("cpu"), seed=0, image_size=12)
    net, optimizer = model.nets["child"], model.optimizers["child"]
    for group in optimizer.param_groups:
        group["lr"] = 0.01
    x, y = batch()
    net.train()
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(net(x, ARCH), y).backward()
    nn.utils.clip_grad_norm_([p for p in net.parameters() if p.grad is not None], config.search.grad_clip)
    optimizer.step()
    return net.state_dict()


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_weights_zero_is_cross_entropy_alone():
    assert same(step()["child"], cross_entropy_only())
    assert same(step("search.kernel_weight=0", "search.center_weight=0")["child"], cross_entropy_only())


@pytest.mark.parametrize("term", ["search.kernel_weight=1", "search.center_weight=1"])
def test_each_term_changes_the_childs_update_only(term):
    plain, with_term = step(), step(term)
    assert not same(plain["child"], with_term["child"])
    assert same(plain["parent"], with_term["parent"])


def test_the_kernel_term_reaches_only_the_sampled_ops():
    plain, with_term = step(), step("search.kernel_weight=1")
    changed = {k for k in plain["child"] if not torch.equal(plain["child"][k], with_term["child"][k])}
    assert any(".sep_conv_3x3." in k for k in changed)
    assert not any(".edges.4." in k for k in changed)  # edge 4 is zero in ARCH: none of its ops ran
