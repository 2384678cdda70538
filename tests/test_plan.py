"""The packed network as a flat plan of layer steps: run with torch, it gives the packed network's
logits exactly, for every op of the search space in both styles, stride 1 and 2, odd sizes."""

import pytest
import torch

from cpnas_cli.engine.deploy.plan import lower, run_torch
from cpnas_cli.space.genotype import from_darts
from tests.genotypes import DARTS_V2
from tests.packed_nets import EVERY_OP, STYLES, packed_network


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("genotype", "size", "stem_stride"), [(EVERY_OP, 15, 1), (DARTS_V2, 16, 2)])
def test_the_plan_run_by_torch_gives_the_packed_networks_logits_exactly(tmp_path, style, genotype, size, stem_stride):
    genotype = from_darts(genotype)
    net = packed_network(tmp_path, genotype, style, size, stem_stride)
    plan = lower(net, genotype, (3, size, size))
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        expected = net(x)[0]
        got = run_torch(plan, x)
    assert torch.equal(got, expected)
    assert plan.shape_of(plan.output) == (10, 1, 1)


def test_every_step_says_where_it_comes_from(tmp_path):
    genotype = from_darts(EVERY_OP)
    plan = lower(packed_network(tmp_path, genotype, "cpu", 15), genotype, (3, 15, 15))
    notes = {step.note for step in plan.steps}
    assert "stem" in notes and "classifier" in notes
    assert "cell 1 (reduction) edge 2->3 sep_conv_5x5" in notes  # the reduction cell node 3's first input
    ops = {step.op for step in plan.steps}
    assert ops == {"conv", "bconv", "affine", "pool", "halve", "mix", "pick", "add", "concat", "gap", "linear"}
    # 1-bit convs hold bits and beta only: one bit per weight, one beta per output channel
    for step in (s for s in plan.steps if s.op == "bconv"):
        weights = step.shape[0] * step.params["in_channels"] // step.params["groups"] * step.params["kernel"] ** 2
        assert plan.tensors[step.params["bits"]].numel() == -(-weights // 8)
        assert plan.tensors[step.params["beta"]].shape == (step.shape[0],)


def test_a_version_1_packed_model_has_no_plan(tmp_path):
    genotype = from_darts(DARTS_V2)
    net = packed_network(tmp_path, genotype, "paper", 16)
    next(m for m in net.modules() if hasattr(m, "exact")).exact = False
    with pytest.raises(ValueError, match="version-1"):
        lower(net, genotype, (3, 16, 16))
