"""`cpnas export`: bit packing and BatchNorm folding exact, the packed model computing the trained
Child's logits bit for bit on the whole embedded test set, its file size against the profile,
format versions (version-1 files on the old float formula, with a notice), cell pictures and the
terminal tree, and bad input."""

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
from cpnas_cli.engine.deploy.packing import (
    PackedBinaryConv2d,
    fold_batchnorm,
    load_packed,
    pack_signs,
    unpack_signs,
)
from cpnas_cli.engine.deploy.profile import profile_eval_network
from cpnas_cli.engine.nn.binary import QUANTIZERS, BinaryConv2d, hard_sign, reconstructed_kernel
from cpnas_cli.engine.nn.layers import conv2d
from cpnas_cli.engine.nn.network import NetworkSpec
from cpnas_cli.engine.train.model_file import ModelInfo, load_model, save_model
from cpnas_cli.errors import Notice
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


def _trained_checkpoint(path, spec, data):
    """A small Child (and Parent) trained for a few steps, so weights and BN statistics are real."""
    torch.manual_seed(0)
    genotype = g.from_darts(EVERY_OP)
    child, parent = spec.build(genotype, binary=True), spec.build(genotype, binary=False)
    optimizer = torch.optim.Adam(list(child.parameters()) + list(parent.parameters()), lr=0.01)
    for step in range(8):
        x = normalize(data.train_images[step * 64 : (step + 1) * 64])
        y = data.train_labels[step * 64 : (step + 1) * 64]
        loss = sum(nn.functional.cross_entropy(net(x)[0], y) for net in (child, parent))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_model(path, ModelInfo(genotype, spec, data.classes, "embedded"), child.eval(), parent.eval())
    return path


@pytest.fixture(scope="module", params=[SPEC, SPEC_SHORTCUT], ids=["paper-ops", "shortcut-grouped"])
def checkpoint(request, tmp_path_factory, data):
    return _trained_checkpoint(tmp_path_factory.mktemp("export") / "best.safetensors", request.param, data)


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
    packed_convs = [m for m in network.modules() if isinstance(m, PackedBinaryConv2d)]
    assert packed_convs and all(m.exact and not hasattr(m, "kernel") for m in packed_convs)  # signs and beta
    images = normalize(data.test_images)
    for layout in (torch.contiguous_format, torch.channels_last):
        child, network = child.to(memory_format=layout), network.to(memory_format=layout)
        for start in range(0, len(images), 500):
            x = images[start : start + 500].contiguous(memory_format=layout)
            expected, got = child(x)[0], network(x)[0]
            assert torch.equal(got, expected)  # the same floats, so the same labels


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
    assert len(manifest["classes"]) == 10 and manifest["version"] == 2 and manifest["network"]["auxiliary"] is False


def _version(path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata()["version"]


def test_version_2_files_round_trip(checkpoint, packed, tmp_path):
    assert _version(checkpoint) == "2" and _version(packed[0]) == "2"
    info, child, parent = load_model(checkpoint)
    assert info.spec.exact and all(m.exact for m in child.modules() if isinstance(m, BinaryConv2d))
    again = tmp_path / "again.safetensors"
    save_model(again, info, child, parent)
    info2, child2, _ = load_model(again)
    assert _version(again) == "2" and info2.spec == info.spec and info2.spec.exact
    x = normalize(load_dataset("embedded").test_images[:200])
    with torch.no_grad():
        assert torch.equal(child2(x)[0], child(x)[0])


# --- version 1: the float formula, kept for old files -----------------------------------------


def old_binary_forward(self, x):
    """BinaryConv2d.forward before exact semantics (version 1): sign(x) ⊛ beta·sign(W) in float."""
    w = reconstructed_kernel(self.weight, self.quantizer)
    return conv2d(QUANTIZERS[self.quantizer](x), w, self.bias, self.stride, self.padding, self.dilation, self.groups)


def old_packed_forward(self, x):
    """PackedBinaryConv2d.forward before exact semantics: the unpacked float kernel beta·(±1)."""
    kernel = self.beta.view(-1, 1, 1, 1) * unpack_signs(self.bits, self.kernel.shape)
    return conv2d(hard_sign(x), kernel, self.bias, self.stride, self.padding, self.dilation, self.groups)


@pytest.fixture(scope="module")
def legacy(checkpoint, tmp_path_factory, data):
    """A version-1 checkpoint, as the old code wrote it (trained and saved with the float formula),
    and its version-1 packed model, exported by the CLI."""
    info, _, _ = load_model(checkpoint)
    folder = tmp_path_factory.mktemp("legacy")
    path = _trained_checkpoint(folder / "best.safetensors", dataclasses.replace(info.spec, exact=False), data)
    result = invoke("export", path, folder / "model.cpnas")
    assert result.exit_code == 0, result.output
    return path, folder / "model.cpnas", result


NOTICE = "predates exact 1-bit semantics"


@torch.no_grad()
def test_a_version_1_checkpoint_evaluates_with_the_old_float_formula(legacy, data, monkeypatch):
    path, _, _ = legacy
    assert _version(path) == "1"
    with pytest.warns(Notice, match=NOTICE):
        info, child, _ = load_model(path)
    assert not info.spec.exact and not any(m.exact for m in child.modules() if isinstance(m, BinaryConv2d))
    x = normalize(data.test_images[:500])
    got = child(x)[0]
    monkeypatch.setattr(BinaryConv2d, "forward", old_binary_forward)  # the code before exact semantics
    assert torch.equal(got, child(x)[0])


@torch.no_grad()
def test_a_version_1_packed_model_runs_its_float_kernels(legacy, data):
    path, packed_path, export = legacy
    assert _version(packed_path) == "1" and export.stderr.count(NOTICE) == 1
    with pytest.warns(Notice, match=NOTICE):
        info, network = load_packed(packed_path)
    convs = [m for m in network.modules() if isinstance(m, PackedBinaryConv2d)]
    assert convs and not info.spec.exact and not any(m.exact for m in convs)
    x = normalize(data.test_images[:500])
    got = network(x)[0]
    for conv in convs:
        conv.forward = old_packed_forward.__get__(conv)
    assert torch.equal(got, network(x)[0])
    with pytest.warns(Notice, match=NOTICE):
        _, child, _ = load_model(path)
    assert (got - child(x)[0]).abs().max() <= 1e-4  # the old check: float sums only nearly agree


@pytest.mark.parametrize("which", [0, 1], ids=["checkpoint", "packed"])
def test_cpnas_evaluate_shows_the_version_1_notice_once(legacy, which):
    result = invoke("evaluate", legacy[which], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_images"] == 2000
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and NOTICE in lines[0] and "torch path only" in lines[0], result.stderr


def _with_version(source, target, version: str):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(source), framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (no __iter__)
    save_file(tensors, str(target), metadata={**metadata, "version": version})
    return target


@pytest.mark.parametrize("version", ["3", "garbage"])
def test_an_unknown_version_is_a_one_line_error(checkpoint, packed, tmp_path, version):
    for source, name, noun in ((checkpoint, "x.safetensors", "model format"), (packed[0], "x.cpnas", "packed-model")):
        path = _with_version(source, tmp_path / name, version)
        assert_one_line_error(invoke("evaluate", path), f"has {noun} version {version}, this cpnas reads 1 and 2")


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
