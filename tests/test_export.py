"""`cpnas export`: bit packing and BatchNorm folding exact, the packed model predicting as the
trained Child on the whole embedded test set, its file size against the profile, cell pictures
and the terminal tree, and bad input."""

import dataclasses
import json
import math
import xml.etree.ElementTree as ElementTree

import pytest
import torch
import torch.nn as nn
from rich.console import Console
from typer.testing import CliRunner

from cpnas_cli.cli._cell_tree import cell_tree
from cpnas_cli.cli.app import app
from cpnas_cli.data import load_dataset, normalize
from cpnas_cli.engine.deploy.packing import fold_batchnorm, load_packed, pack_signs, unpack_signs
from cpnas_cli.engine.deploy.profile import profile_eval_network
from cpnas_cli.engine.nn.binary import BinaryConv2d, hard_sign
from cpnas_cli.engine.nn.network import NetworkSpec
from cpnas_cli.engine.train.model_file import ModelInfo, load_model, save_model
from cpnas_cli.space import genotype as g
from cpnas_cli.space.picture import to_dot, to_svg
from tests.cli import assert_one_line_error

runner = CliRunner()

# Every op of the search space in both cell types; reduction edges from the inputs have stride 2
# (skip becomes FactorizedReduce there).
EVERY_OP = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('dil_conv_5x5', 1), ('avg_pool_3x3', 0), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('sep_conv_5x5', 3), ('dil_conv_3x3', 2), ('skip_connect', 4)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('skip_connect', 0), ('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('dil_conv_3x3', 2), "
    "('avg_pool_3x3', 1), ('sep_conv_3x3', 3), ('dil_conv_5x5', 0), ('skip_connect', 4)], reduce_concat=[2, 3, 4, 5])"
)
SPEC = NetworkSpec(in_channels=1, classes=10, channels=6, cells=5, image_size=28, auxiliary=True, stem_stride=2)
# The CPU presets' Child: a real-valued shortcut around every 1-bit conv, grouped k x k convs.
SPEC_SHORTCUT = dataclasses.replace(SPEC, shortcut=True, group_width=4)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# --- bits and BatchNorm ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 3, 3, 3), (7, 1, 5, 5), (1,), (16, 9, 1, 1)])
def test_pack_unpack_round_trip_is_exact(shape):
    weight = torch.randn(shape)
    weight.view(-1)[0] = 0.0  # sign(0) = +1
    weight.view(-1)[-1] = -0.0
    packed = pack_signs(weight)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(weight.numel() / 8)
    assert torch.equal(unpack_signs(packed, weight.shape), hard_sign(weight))


def test_bit_layout_is_little_endian_in_the_flattened_kernel_order():
    signs = torch.tensor([1, -1, -1, 1, 1, 1, -1, 1, 1], dtype=torch.float32)
    # byte 0: bits 0, 3, 4, 5, 7 set = 1 + 8 + 16 + 32 + 128; byte 1: bit 0 (the ninth weight), padding 0
    assert pack_signs(signs).tolist() == [185, 1]


def test_folded_batchnorm_computes_the_same_floats_as_batchnorm():
    bn = nn.BatchNorm2d(64).eval()
    with torch.no_grad():
        bn.running_mean.normal_(0, 2)
        bn.running_var.uniform_(0.01, 5)
        bn.weight.normal_(1, 0.5)
        bn.bias.normal_(0, 0.5)
    scale, shift = fold_batchnorm(bn)
    x = torch.randn(8, 64, 9, 9) * 3
    folded = torch.addcmul(shift.view(1, -1, 1, 1), x, scale.view(1, -1, 1, 1))
    assert torch.equal(folded, bn(x))


# --- a trained checkpoint, packed -----------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    return load_dataset("embedded")


@pytest.fixture(scope="module", params=[SPEC, SPEC_SHORTCUT], ids=["paper-ops", "shortcut-grouped"])
def checkpoint(request, tmp_path_factory, data):
    """A small Child (and Parent) trained for a few steps, so weights and BN statistics are real."""
    torch.manual_seed(0)
    genotype, spec = g.from_darts(EVERY_OP), request.param
    child, parent = spec.build(genotype, binary=True), spec.build(genotype, binary=False)
    optimizer = torch.optim.Adam(list(child.parameters()) + list(parent.parameters()), lr=0.01)
    for step in range(8):
        x = normalize(data.train_images[step * 64 : (step + 1) * 64])
        y = data.train_labels[step * 64 : (step + 1) * 64]
        loss = sum(nn.functional.cross_entropy(net(x)[0], y) for net in (child, parent))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = tmp_path_factory.mktemp("export") / "best.safetensors"
    save_model(path, ModelInfo(genotype, spec, data.classes, "embedded"), child.eval(), parent.eval())
    return path


@pytest.fixture(scope="module")
def packed(checkpoint):
    output = checkpoint.with_name("model.cpnas")
    result = invoke("export", checkpoint, output)
    assert result.exit_code == 0, result.output
    return output, result.stdout


@torch.no_grad()
def test_packed_model_predicts_as_the_trained_child_on_the_whole_test_set(checkpoint, packed, data):
    _, child, _ = load_model(checkpoint)
    info, network = load_packed(packed[0])
    assert info.class_names == data.classes and network.auxiliary is None
    assert not any(isinstance(m, (BinaryConv2d, nn.BatchNorm2d)) for m in network.modules())
    images = normalize(data.test_images)
    for start in range(0, len(images), 500):
        x = images[start : start + 500]
        expected, got = child(x)[0], network(x)[0]
        assert torch.equal(got.argmax(1), expected.argmax(1))
        assert (got - expected).abs().max() <= 1e-4


def test_cpnas_evaluate_runs_the_packed_model_with_the_childs_results(checkpoint, packed):
    trained = invoke("evaluate", checkpoint, "--json")
    deployed = invoke("evaluate", packed[0], "--json")
    assert trained.exit_code == 0 and deployed.exit_code == 0, trained.output + deployed.output
    trained, deployed = json.loads(trained.stdout), json.loads(deployed.stdout)
    assert deployed["parent"] is None and deployed["n_images"] == 2000
    assert deployed["confusion"] == trained["child"]["confusion"]  # every test image: the same label


def test_file_size_agrees_with_the_profile_up_to_header_and_byte_padding(checkpoint, packed):
    output, stdout = packed
    info, _, _ = load_model(checkpoint)
    memory_bits = profile_eval_network(info.genotype, info.spec).memory_bits
    child = info.spec.build(info.genotype, binary=True)
    padding_bits = sum(-m.weight.numel() % 8 for m in child.modules() if isinstance(m, BinaryConv2d))
    header = 8 + int.from_bytes(output.read_bytes()[:8], "little")
    assert (output.stat().st_size - header) * 8 == memory_bits + padding_bits
    assert f"{output.stat().st_size:,} bytes" in stdout.replace("\n", " ")
    data = json.loads(invoke("profile", output, "--json").stdout)
    assert data["file"]["file_bytes"] == output.stat().st_size
    assert data["file"]["data_minus_profile_bytes"] * 8 == padding_bits


def test_manifest_says_how_to_feed_the_network(packed):
    from safetensors import safe_open

    with safe_open(str(packed[0]), framework="pt") as f:
        manifest = json.loads(f.metadata()["manifest"])
    assert manifest["input"] == {"channels": 1, "height": 28, "width": 28, "layout": "NCHW", "dtype": "float32"}
    assert manifest["normalization"]["scale"] == 1 / 127.5 and manifest["normalization"]["offset"] == -1.0
    assert len(manifest["classes"]) == 10 and manifest["version"] == 1 and manifest["network"]["auxiliary"] is False


# --- pictures and the tree ------------------------------------------------------------------


def _edges(genotype):
    return [(kind, e.op) for kind in ("normal", "reduce") for node in genotype.cell(kind).nodes for e in node]


def test_svg_is_well_formed_and_names_every_op_and_node(tmp_path):
    genotype = g.from_darts(EVERY_OP)
    result = invoke("export", _genotype_file(tmp_path), tmp_path / "cells.svg")
    assert result.exit_code == 0, result.output
    root = ElementTree.parse(tmp_path / "cells.svg").getroot()
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert sorted(t for t in texts if t in {op for _, op in _edges(genotype)}) == sorted(
        op for _, op in _edges(genotype)
    )
    for label in ("normal cell", "reduction cell", "c_{k-2}", "c_{k-1}", "c_{k}", "5"):
        assert label in texts


def test_dot_has_one_labelled_edge_per_genotype_edge(tmp_path):
    genotype = g.from_darts(EVERY_OP)
    dot = to_dot(genotype)
    assert dot.count("{") == dot.count("}") and dot.startswith("digraph")
    for kind in ("normal", "reduce"):
        for target, node in enumerate(genotype.cell(kind).nodes, start=2):
            for e in node:
                assert f'{kind}_{e.source} -> {kind}_{target} [label="{e.op}"' in dot
    assert dot.count('[label="') - dot.count("_out [label") - 2 * 6 == len(_edges(genotype))
    assert to_svg(genotype) == to_svg(g.from_darts(EVERY_OP))  # deterministic


def test_cell_tree_lists_every_node_with_its_ops():
    genotype = g.from_darts(EVERY_OP)
    console = Console(width=120, record=True)
    console.print(cell_tree(genotype))
    text = console.export_text()
    assert "node 5 = dil_conv_3x3(2) + skip(4)" in text
    assert "node 2 = skip(c_{k-2}) + sep_conv_5x5(c_{k-1})" in text


def _genotype_file(tmp_path):
    path = tmp_path / "genotype.txt"
    path.write_text(EVERY_OP + "\n")
    return path


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["GENOTYPE", "model.cpnas"], "packed from trained weights"),
        (["CHECKPOINT", "missing-dir/model.cpnas"], "does not exist"),
        (["BROKEN", "model.cpnas"], "truncated or not a safetensors file"),
        (["MISSING", "model.cpnas"], "not found"),
        (["GENOTYPE", "cells.svg", "--format", "darts"], "--format applies to genotype files"),
        (["GENOTYPE", "."], "is a directory"),
        (["BROKEN", "cells.svg"], "truncated or not a safetensors file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, pattern, checkpoint, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file at all")
    names = {
        "GENOTYPE": _genotype_file(tmp_path),
        "CHECKPOINT": checkpoint,
        "BROKEN": broken,
        "MISSING": tmp_path / "gone.safetensors",
    }
    paths = [names.get(a, tmp_path / a if "." in a else a) for a in args]
    assert_one_line_error(invoke("export", *paths), pattern)
    assert not (tmp_path / "model.cpnas").exists()


def test_loading_something_that_is_not_a_packed_model_is_a_user_error(checkpoint, packed, tmp_path):
    from cpnas_cli.errors import UserError

    with pytest.raises(UserError, match="not a cpnas packed model"):
        load_packed(checkpoint)
    truncated = tmp_path / "cut.cpnas"
    truncated.write_bytes(packed[0].read_bytes()[:1000])
    with pytest.raises(UserError, match="truncated"):
        load_packed(truncated)
