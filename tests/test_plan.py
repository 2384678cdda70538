"""The packed network as a flat plan of layer steps: run with torch, it gives the packed network's
logits exactly, for every op of the search space in both styles, stride 1 and 2, odd sizes."""

import pytest
import torch

from cpnas_cli.engine.deploy.packing import load_packed, write_packed
from cpnas_cli.engine.deploy.plan import lower, run_torch
from cpnas_cli.engine.nn.network import NetworkSpec
from cpnas_cli.engine.train.model_file import ModelInfo
from cpnas_cli.space.genotype import from_darts
from tests.genotypes import DARTS_V2

# Every op of the search space once in each cell type (DARTS_V2 lacks avg pool, sep/dil 5x5).
EVERY_OP = (
    "Genotype(normal=[('sep_conv_5x5', 0), ('dil_conv_5x5', 1), ('avg_pool_3x3', 0), ('skip_connect', 2), "
    "('max_pool_3x3', 3), ('sep_conv_3x3', 1), ('dil_conv_3x3', 4), ('skip_connect', 0)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('avg_pool_3x3', 0), ('skip_connect', 1), ('sep_conv_5x5', 2), ('dil_conv_3x3', 0), "
    "('max_pool_3x3', 1), ('dil_conv_5x5', 3), ('sep_conv_3x3', 4), ('skip_connect', 2)], reduce_concat=[2, 3, 4, 5])"
)
STYLES = {
    "paper": {"shortcut": False, "group_width": 1},
    "cpu": {"shortcut": True, "group_width": 16},
}


def packed_network(tmp_path, genotype, style: str, image_size: int, stem_stride: int = 1):
    """A Child with random weights and BatchNorm statistics, packed and loaded as cpnas evaluate does."""
    spec = NetworkSpec(in_channels=3, classes=10, channels=16, cells=3, image_size=image_size, reductions=[1, 2],
                       stem_stride=stem_stride, **STYLES[style])  # fmt: skip
    torch.manual_seed(0)
    child = spec.build(genotype, True).eval()
    for module in child.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "model.cpnas"
    write_packed(path, ModelInfo(genotype, spec, [str(i) for i in range(10)], "test"), child)
    return load_packed(path)[1]


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
