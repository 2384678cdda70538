"""The paper's ImageNet variants (Tab. 2): CP-NAS* feeds real-valued activations into the k x k
(depth-wise) conv of every separable and dilated op, CP-NAS** into the cells' preprocessing convs
too. Every 1-bit conv of a whole network is checked against the formula it must compute, the
profile moves exactly those convs' MACs from BOPs to FLOPs, the search Child gets the same convs,
and the packed model keeps them while the bit engines refuse them with one line."""

import dataclasses
import json
import warnings

import pytest
import torch
import torch.nn as nn
from typer.testing import CliRunner

from cpnas_cli.cli.app import app
from cpnas_cli.config import load_config
from cpnas_cli.engine.deploy.bench import Contenders
from cpnas_cli.engine.deploy.evaluation import choose_engine
from cpnas_cli.engine.deploy.packing import load_packed, write_packed
from cpnas_cli.engine.deploy.profile import profile_eval_network
from cpnas_cli.engine.nn.binary import BinaryConv2d, binary_conv2d, exact_scale, hard_sign
from cpnas_cli.engine.nn.network import NetworkSpec
from cpnas_cli.engine.search.child_parent import ChildParent
from cpnas_cli.engine.train.model_file import ModelInfo, load_model, save_model
from cpnas_cli.errors import Notice, UserError
from cpnas_cli.space import genotype as g
from tests.cli import assert_one_line_error

runner = CliRunner()
# Every op in both cell types (as tests/test_export.py): sep and dil convs on stride-1 and stride-2
# edges, and FactorizedReduce as a reduction edge's skip (an op, not preprocessing).
EVERY_OP = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('dil_conv_5x5', 1), ('avg_pool_3x3', 0), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('sep_conv_5x5', 3), ('dil_conv_3x3', 2), ('skip_connect', 4)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('skip_connect', 0), ('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('dil_conv_3x3', 2), "
    "('avg_pool_3x3', 1), ('sep_conv_3x3', 3), ('dil_conv_5x5', 0), ('skip_connect', 4)], reduce_concat=[2, 3, 4, 5])"
)
SPEC = NetworkSpec(in_channels=3, classes=10, channels=4, cells=3, image_size=16)
VARIANTS = {
    "CP-NAS": {},
    "CP-NAS*": {"real_depthwise": True},
    "CP-NAS**": {"real_depthwise": True, "real_preprocess": True},
}


def should_be_real(name: str, conv: BinaryConv2d, variant: dict) -> bool:
    """From where the conv sits: a k x k conv inside a cell's op, or a cell's preprocessing."""
    in_op, preprocessing = ".ops." in name, ".pre0." in name or ".pre1." in name
    return (variant.get("real_depthwise", False) and in_op and conv.kernel_size[0] > 1) or (
        variant.get("real_preprocess", False) and preprocessing
    )


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("shortcut", [False, True], ids=["paper-ops", "shortcut"])
def test_each_1bit_conv_binarizes_its_input_or_not_as_the_variant_says(variant, shortcut):
    spec = dataclasses.replace(SPEC, shortcut=shortcut, **variant)
    torch.manual_seed(0)
    child = spec.build(g.from_darts(EVERY_OP), binary=True).eval()
    checked = {"real": 0, "binary": 0}

    def check(name):
        def hook(conv, inputs, output):
            (x,) = inputs
            signs, beta = hard_sign(conv.weight), exact_scale(conv.weight)
            geometry = (conv.stride, conv.padding, conv.dilation, conv.groups)
            real, binary = (
                binary_conv2d(x, signs, beta, None, *geometry),
                binary_conv2d(hard_sign(x), signs, beta, None, *geometry),
            )
            expect_real = should_be_real(name, conv, variant)
            assert torch.equal(output, real if expect_real else binary), name
            assert not torch.equal(real, binary), name  # the inputs are not already ±1: the check can fail
            checked["real" if expect_real else "binary"] += 1

        return hook

    for name, module in child.named_modules():
        if isinstance(module, BinaryConv2d):
            module.register_forward_hook(check(name))
    with torch.no_grad():
        child(torch.randn(2, 3, 16, 16))
    assert checked["binary"] > 0 and (checked["real"] > 0) == bool(variant)
    parent = spec.build(g.from_darts(EVERY_OP), binary=False)
    assert not any(isinstance(m, BinaryConv2d) for m in parent.modules())  # the Parent is unchanged


def profile_rows(variant: dict):
    return profile_eval_network(g.from_darts(EVERY_OP), dataclasses.replace(SPEC, **variant)).layers


@pytest.mark.parametrize("variant", [v for v in VARIANTS.values() if v], ids=["CP-NAS*", "CP-NAS**"])
def test_the_profile_counts_real_input_convs_as_flops_with_1bit_kernels(variant):
    plain, ours = profile_rows({}), profile_rows(variant)
    assert [r.name for r in plain] == [r.name for r in ours]
    moved = 0
    for before, after in zip(plain, ours, strict=True):
        assert (after.params_1bit, after.params_32bit, after.memory_bits) == (
            before.params_1bit,
            before.params_32bit,
            before.memory_bits,
        )  # the kernels stay 1-bit: the same memory
        if after.real_input:
            assert after.input_precision == "32-bit" and after.binary
            assert (after.bops, after.flops) == (0, before.bops) and before.bops > 0
            moved += before.bops
        else:
            assert (after.bops, after.flops, after.input_precision) == (
                before.bops,
                before.flops,
                before.input_precision,
            )
    assert moved > 0
    assert sum(r.flops for r in ours) - sum(r.flops for r in plain) == moved
    assert sum(r.bops for r in plain) - sum(r.bops for r in ours) == moved


def test_the_search_child_takes_the_same_real_input_convs():
    sets = ["search.channels=4", "search.cells=3", "search.reductions=[1, 2]", "search.real_depthwise=true"]
    pair = ChildParent(load_config("quick", sets=sets).search, 1, 10, torch.device("cpu"), seed=0, image_size=28)
    convs = {n: m for n, m in pair.nets["child"].named_modules() if isinstance(m, BinaryConv2d)}
    real = {n for n, m in convs.items() if not m.binary_input}
    assert real and real == {n for n, m in convs.items() if ".edges." in n and m.kernel_size[0] > 1}
    assert not any(isinstance(m, BinaryConv2d) for m in pair.nets["parent"].modules())


@pytest.fixture(scope="module")
def real_model(tmp_path_factory):
    """A CP-NAS** checkpoint (random weights, BN statistics set) and its packed form."""
    folder = tmp_path_factory.mktemp("real")
    spec = dataclasses.replace(SPEC, **VARIANTS["CP-NAS**"])
    torch.manual_seed(1)
    genotype = g.from_darts(EVERY_OP)
    child = spec.build(genotype, binary=True).eval()
    for m in child.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
    info = ModelInfo(genotype, spec, [str(i) for i in range(10)], "folder")
    save_model(folder / "best.safetensors", info, child)
    write_packed(folder / "model.cpnas", info, child)
    return folder, child


def test_the_packed_model_keeps_real_inputs_and_the_childs_logits(real_model):
    folder, child = real_model
    info, _, _ = load_model(folder / "best.safetensors")
    assert info.spec.real_depthwise and info.spec.real_preprocess  # stored in the model file
    packed_info, packed = load_packed(folder / "model.cpnas")
    assert packed_info.spec.real_inputs
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(packed(x)[0], child(x)[0])


def test_the_bit_engines_refuse_real_inputs_in_one_line(real_model, tmp_path):
    folder, _ = real_model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert choose_engine(folder / "model.cpnas", None, torch.device("cpu")) == "torch"
    assert [w.category for w in caught] == [Notice] and "real-valued activations" in str(caught[0].message)
    with pytest.raises(UserError, match="real-valued activations"):
        choose_engine(folder / "model.cpnas", "native", torch.device("cpu"))
    with pytest.raises(UserError, match="real-valued activations"):
        Contenders.from_packed(folder / "model.cpnas")  # `cpnas bench`
    result = runner.invoke(app, ["export", str(folder / "best.safetensors"), str(tmp_path / "m.c")])
    assert_one_line_error(result, "real-valued activations into 1-bit convs")
    assert not (tmp_path / "m.c").exists()


def test_cpnas_profile_of_the_imagenet_preset_shows_cp_nas_star(darts_v2_file):
    result = runner.invoke(
        app, ["profile", str(darts_v2_file), "--preset", "imagenet", "--dataset", "imagenet", "--json"]
    )
    assert result.exit_code == 0, result.output
    layers = json.loads(result.stdout)["layers"]
    real = [r for r in layers if r["real_input"]]
    assert real and all(r["input_precision"] == "32-bit" and r["params_1bit"] > 0 for r in real)
    assert all(r["bops"] == 0 and r["flops"] > 0 and " dw" in r["kind"] for r in real)  # CP-NAS*: depth-wise only
    assert any(r["input_precision"] == "1-bit" for r in layers)  # the point-wise and preprocessing convs
