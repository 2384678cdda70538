"""`cpnas profile`: per-layer counts checked by hand, WRN-22 against Table 3, the evaluation network
of a genotype against its own parameters, the --json object, and bad input."""

import json

import pytest
import torch.nn as nn
from typer.testing import CliRunner

from cpnas_cli.cli.app import app
from cpnas_cli.engine.deploy.profile import profile_eval_network, profile_module
from cpnas_cli.engine.deploy.references import TABLE3, WRN22_PARAMS_M, profile_reference
from cpnas_cli.engine.nn.binary import BinaryConv2d
from cpnas_cli.engine.nn.network import NetworkSpec
from cpnas_cli.engine.train.model_file import ModelInfo, save_model
from cpnas_cli.space import genotype as g
from tests.cli import assert_one_line_error
from tests.genotypes import DARTS_V2

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# --- counting by hand ---------------------------------------------------------------------


def test_a_single_1bit_conv_counts_its_macs_as_bops_and_one_scale_per_output_channel():
    # 2 -> 4 channels, 3x3, padding 1, on 2x5x5: 4*5*5 outputs, each 2*3*3 = 18 MACs -> 1800.
    layer = profile_module(BinaryConv2d(2, 4, 3, padding=1, bias=False), (2, 5, 5), "one conv").layers[0]
    assert (layer.kind, layer.binary, layer.output_shape) == ("conv 3x3", True, (4, 5, 5))
    assert (layer.params_1bit, layer.params_32bit) == (72, 4)  # 4*2*3*3 sign bits, 4 betas
    assert (layer.bops, layer.flops, layer.memory_bits) == (1800, 0, 72 + 4 * 32)


def test_the_same_conv_in_full_precision_counts_its_macs_as_flops():
    layer = profile_module(nn.Conv2d(2, 4, 3, padding=1, bias=True), (2, 5, 5), "one conv").layers[0]
    assert (layer.binary, layer.params_1bit, layer.params_32bit) == (False, 0, 72 + 4)
    assert (layer.bops, layer.flops, layer.memory_bits) == (0, 1800, 76 * 32)


def test_depthwise_strided_dilated_convs_batchnorm_and_linear():
    net = nn.Sequential(
        BinaryConv2d(4, 4, 3, stride=2, padding=2, dilation=2, groups=4, bias=False),  # 4x6x6 -> 4x3x3
        nn.BatchNorm2d(4),
        nn.Flatten(),
        nn.Linear(36, 3),
    )
    dw, bn, linear = profile_module(net, (4, 6, 6), "small").layers
    assert dw.kind == "conv 3x3 dw dil 2 /2" and dw.output_shape == (4, 3, 3)
    assert (dw.params_1bit, dw.bops) == (4 * 9, 4 * 3 * 3 * 9)  # one input channel per group
    assert (bn.params_32bit, bn.bops, bn.flops) == (8, 0, 0)  # folded scale + shift per channel, not counted as ops
    assert (linear.params_32bit, linear.flops) == (36 * 3 + 3, 36 * 3)


def test_totals_ops_and_savings_follow_table3s_definitions():
    one = profile_module(BinaryConv2d(2, 4, 3, padding=1, bias=False), (2, 5, 5), "1-bit")
    full = profile_module(nn.Conv2d(2, 4, 3, padding=1, bias=False), (2, 5, 5), "fp")
    assert one.ops == 1800 / 64 and full.ops == 1800
    versus = one.against(full)
    assert versus["speedup"] == pytest.approx(64.0)
    assert versus["memory_saving"] == pytest.approx(72 * 32 / (72 + 4 * 32))


# --- WRN-22 and Table 3 ---------------------------------------------------------------------


def test_wrn22_reproduces_table3_within_five_percent():
    wrn = profile_reference("wrn22")
    row = TABLE3["WRN-22"]
    assert wrn.params / 1e6 == pytest.approx(WRN22_PARAMS_M, rel=0.05)
    assert wrn.memory_mbit == pytest.approx(row["memory_mbit"], rel=0.05)
    assert wrn.flops / 1e6 == pytest.approx(row["flops_m"], rel=0.05)
    assert wrn.bops == 0 and wrn.params_1bit == 0


def test_binary_wrn22_binarizes_every_conv_but_the_stem_and_keeps_the_classifier():
    full, binary = profile_reference("wrn22"), profile_reference("wrn22", binary=True)
    stem = next(layer for layer in full.layers if layer.block == "stem")
    classifier = next(layer for layer in full.layers if layer.block == "classifier")
    conv_macs = sum(layer.flops for layer in full.layers if layer.kind.startswith("conv"))
    assert binary.bops == conv_macs - stem.flops
    assert binary.flops == stem.flops + classifier.flops
    assert binary.ops == binary.bops / 64 + binary.flops
    assert (
        binary.params_1bit
        == sum(layer.params_32bit for layer in full.layers if layer.kind.startswith("conv")) - stem.params_32bit
    )


# --- the evaluation network of a genotype ----------------------------------------------------


SPEC = NetworkSpec(in_channels=1, classes=10, channels=8, cells=5, image_size=28, auxiliary=True)


def test_full_precision_twin_counts_exactly_the_parents_parameters_without_the_tower():
    genotype = g.from_darts(DARTS_V2)
    parent = SPEC.build(genotype, binary=False)
    trainable = sum(p.numel() for name, p in parent.named_parameters() if not name.startswith("auxiliary"))
    full = profile_eval_network(genotype, SPEC, binary=False)
    assert full.params == trainable  # BN: weight + bias = the folded scale + shift
    child = SPEC.build(genotype, binary=True)
    one_bit = sum(m.weight.numel() for m in child.modules() if isinstance(m, BinaryConv2d))
    assert profile_eval_network(genotype, SPEC).params_1bit == one_bit


def test_the_1bit_network_does_the_same_macs_as_bops_except_stem_and_classifier():
    genotype = g.from_darts(DARTS_V2)
    full, one = profile_eval_network(genotype, SPEC, binary=False), profile_eval_network(genotype, SPEC)
    fp_blocks = ("stem", "classifier")
    assert one.flops == sum(layer.flops for layer in full.layers if layer.block in fp_blocks)
    assert one.bops == full.flops - one.flops
    assert [(layer.block, layer.kind) for layer in one.layers] == [(layer.block, layer.kind) for layer in full.layers]


# --- the command -----------------------------------------------------------------------------


def test_json_has_the_totals_savings_and_layers(darts_v2_file):
    result = invoke("profile", darts_v2_file, "--channels", 8, "--dataset", "embedded", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in (
        "params",
        "params_1bit",
        "params_32bit",
        "memory_mbit",
        "bops",
        "flops",
        "ops",
        "memory_saving",
        "speedup",
        "layers",
    ):
        assert key in data, key
    assert data["params"] == data["params_1bit"] + data["params_32bit"]
    assert data["ops"] == pytest.approx(data["bops"] / 64 + data["flops"])
    assert data["bops"] == sum(layer["bops"] for layer in data["layers"])
    wrn = profile_reference("wrn22")
    assert data["memory_saving"] == pytest.approx(wrn.memory_mbit / data["memory_mbit"])
    assert data["speedup"] == pytest.approx(wrn.ops / data["ops"])
    assert data["against"]["full_precision"]["speedup"] > 1
    assert data["layers"][0]["block"] == "stem" and data["layers"][0]["input_precision"] == "32-bit"


def test_size_picks_the_papers_channels(darts_v2_file):
    data = json.loads(invoke("profile", darts_v2_file, "--size", "medium", "--json").stdout)
    assert data["network"].startswith("CP-NAS C=72, 10 cells")
    assert data["layers"][0]["output_shape"] == [3 * 72, 32, 32]  # CIFAR-10 stem: 3C channels


def test_reference_tables_render(darts_v2_file):
    result = invoke("profile", "--reference", "wrn22", "--binary")
    assert result.exit_code == 0, result.output
    assert "WRN-22 (1-bit)" in result.stdout and "memory saving" in result.stdout


@pytest.fixture(scope="module")
def embedded_checkpoint(tmp_path_factory):
    genotype = g.from_darts(DARTS_V2)
    path = tmp_path_factory.mktemp("profile") / "best.safetensors"
    save_model(path, ModelInfo(genotype, SPEC, [str(i) for i in range(10)], "embedded"), SPEC.build(genotype, True))
    return path


def test_a_checkpoint_profiles_its_own_network(embedded_checkpoint):
    data = json.loads(invoke("profile", embedded_checkpoint, "--json").stdout)
    assert data["network"].startswith("CP-NAS C=8, 5 cells")
    assert data["memory_mbit"] == profile_eval_network(g.from_darts(DARTS_V2), SPEC).memory_mbit


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--reference", "resnet18"], "unknown reference 'resnet18'"),
        ([], "either a genotype/checkpoint"),
        (["GENOTYPE", "--reference", "wrn22"], "not both or neither"),
        (["GENOTYPE", "--binary"], "--binary applies to --reference"),
        (["--reference", "wrn22", "--dataset", "imagenet"], "CIFAR-10 WRN-22"),
        (["GENOTYPE", "--dataset", "mnist-3d"], "unknown dataset 'mnist-3d'"),
        (["GENOTYPE", "--size", "huge"], "unknown size 'huge'"),
        (["GENOTYPE", "--dataset", "imagenet", "--size", "small"], "C = 102"),
        (["CHECKPOINT", "--dataset", "cifar10"], "was trained on embedded (1x28x28, 10 classes), not cifar10"),
        (["CHECKPOINT", "--size", "large"], "its size is fixed"),
        (["BROKEN"], "truncated or not a safetensors file"),
        (["MISSING"], "not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, pattern, darts_v2_file, embedded_checkpoint, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    names = {
        "GENOTYPE": darts_v2_file,
        "CHECKPOINT": embedded_checkpoint,
        "BROKEN": broken,
        "MISSING": tmp_path / "nothing.json",
    }
    assert_one_line_error(invoke("profile", *[names.get(a, a) for a in args]), pattern)
