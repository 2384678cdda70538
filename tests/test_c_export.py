"""`cpnas export --format c`: the generated C99 model, compiled strictly with gcc and run by a harness,
gives run_torch's labels on every image and its logits within TOLERANCE, for both op styles; the
arena's buffers never overlap while live; it cross-compiles for Cortex-M7 (object sizes) and runs
under qemu-aarch64 with x86's labels; the CLI writes it and refuses bad input in one line.

TOLERANCE: the C code computes what run_torch computes, in the same order, except two float sums:
global average pooling (torch's mean sums pairwise) and the classifier (oneDNN's or MKL's blocked
dot products). The 1-bit sums are integers; fmaf is addcmul; the pools and channel means sum in ATen's
order; the stem conv uses oneDNN's x86 order, fused multiply-adds over (ky, kx, in), bias last
(measured bit for bit against torch on 1- and 3-channel images). A reordered float32 sum of n terms
differs by at most about n epsilons of its terms' magnitude, and in practice a few; the logits are the
last sum, so we bound the difference relative to the logits' scale: |logit_C - logit_torch| <=
1e-5 * max(1, max |logit|), about 84 float32 epsilons. Measured on the 2000 embedded test images
(test below; the trained quick model in the README): at most 7e-7, about 6 epsilons, 14x headroom.
A stem summed in another order (another CPU's oneDNN kernel) could flip the sign of a value within an
ulp of 0 at a 1-bit conv's input, and move logits by 2*beta, far beyond the bound (a C stem summed
without fma did so on one of these images: 8e-3); labels and logits are held separately, so such a
change would be seen."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cpnas_cli.cli.app import app
from cpnas_cli.data import load_dataset, normalize
from cpnas_cli.engine.deploy.c_source import IN_PLACE, arena_layout, generate, load_plan
from cpnas_cli.engine.deploy.plan import Plan, lower, run_torch
from cpnas_cli.space.genotype import from_darts
from tests.c_build import CORTEX_M7, STRICT, build_harness, require, run_harness, write_model
from tests.cli import assert_one_line_error
from tests.genotypes import DARTS_V2
from tests.packed_nets import EVERY_OP, STYLES, packed_network, random_checkpoint

TOLERANCE = 1e-5
NETWORKS = [(EVERY_OP, 15, 1), (DARTS_V2, 16, 2)]  # odd sizes, stride-1 and stride-2 stems
runner = CliRunner()


def model_of(tmp_path, genotype: str, style: str, size: int, stem_stride: int, in_channels: int = 3):
    genotype_ = from_darts(genotype)
    net = packed_network(tmp_path, genotype_, style, size, stem_stride, in_channels)
    plan = lower(net, genotype_, (in_channels, size, size))
    return plan, generate(plan, "m", [f"class {i}" for i in range(10)], "m_model.h")


def random_pixels(n: int, plan: Plan) -> torch.Tensor:
    c, h, w = plan.input_shape
    return torch.randint(0, 256, (n, h, w, c), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def reference(plan: Plan, pixels: torch.Tensor) -> torch.Tensor:
    """run_torch's logits of uint8 N x H x W x C images, normalized as the manifest says."""
    return run_torch(plan, normalize(pixels.permute(0, 3, 1, 2).contiguous()))


def assert_same_predictions(labels, logits, expected) -> float:
    """Labels equal, logits within TOLERANCE of the logits' scale; returns the largest relative difference."""
    assert torch.equal(labels, expected.argmax(dim=1)), (labels != expected.argmax(dim=1)).nonzero()
    scale = expected.abs().max().clamp(min=1.0)
    difference = ((logits - expected).abs().max() / scale).item()
    assert difference <= TOLERANCE
    return difference


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("genotype", "size", "stem_stride"), NETWORKS)
def test_the_c_build_predicts_as_run_torch(tmp_path, style, genotype, size, stem_stride):
    plan, model = model_of(tmp_path, genotype, style, size, stem_stride)
    pixels = random_pixels(48, plan)  # three channels: the interleaved input layout matters
    labels, logits = run_harness(build_harness(model, tmp_path), pixels, 10)
    assert_same_predictions(labels, logits, reference(plan, pixels))


@pytest.mark.e2e
@pytest.mark.parametrize("style", STYLES)
def test_the_c_build_predicts_as_run_torch_on_the_embedded_test_images(tmp_path, style):
    plan, model = model_of(tmp_path, EVERY_OP, style, 28, 2, in_channels=1)
    pixels = load_dataset("embedded").test_images.permute(0, 2, 3, 1)
    labels, logits = run_harness(build_harness(model, tmp_path), pixels, 10)
    difference = assert_same_predictions(labels, logits, reference(plan, pixels))
    print(f"{style}: {len(pixels)} images, largest logit difference {difference:.2e} of the logits' scale")


def test_the_portable_popcount_gives_the_same_predictions(tmp_path):
    plan, model = model_of(tmp_path, EVERY_OP, "cpu", 15, 1)
    pixels = random_pixels(16, plan)
    builtin = run_harness(build_harness(model, tmp_path), pixels, 10)
    portable = run_harness(build_harness(model, tmp_path, flags=("-DCPNAS_PORTABLE_POPCOUNT",)), pixels, 10)
    assert torch.equal(builtin[0], portable[0]) and torch.equal(builtin[1], portable[1])


def test_the_arena_reuses_space_and_no_live_values_overlap(tmp_path):
    plan, model = model_of(tmp_path, EVERY_OP, "paper", 15, 1)
    offsets, size = arena_layout(plan)
    extent = {v: (offsets[v], offsets[v] + _size(plan, v)) for v in offsets}
    last = {v: i for i, step in enumerate(plan.steps) for v in step.inputs} | {plan.output: len(plan.steps)}
    first = {plan.input: -1} | {step.output: i for i, step in enumerate(plan.steps)}
    in_place = 0
    for i, step in enumerate(plan.steps):
        live = [v for v in extent if first[v] < i <= last[v]]  # written before step i, read at i or later
        out = extent[step.output]
        overlapping = [v for v in live if not (out[1] <= extent[v][0] or extent[v][1] <= out[0])]
        # only an element-wise step may write over an input, exactly onto one that dies at that step
        assert all(v in step.inputs and last[v] == i and extent[v] == out for v in overlapping), step.note
        assert not overlapping or step.op in IN_PLACE, step.note
        in_place += bool(overlapping)
    assert in_place > 0
    assert size == max(end for _, end in extent.values())
    assert 4 * size == model.arena_bytes < 4 * sum(_size(plan, v) for v in offsets) / 3  # reuse pays


def _size(plan: Plan, value: str) -> int:
    c, h, w = plan.shape_of(value)
    return c * h * w


def test_the_source_is_self_contained_and_says_where_each_layer_comes_from(tmp_path):
    plan, model = model_of(tmp_path, EVERY_OP, "cpu", 15, 1)
    assert set(re.findall(r"#include [<\"](.*)[>\"]", model.source)) == {"m_model.h", "math.h", "string.h"}
    assert set(re.findall(r"#include [<\"](.*)[>\"]", model.header)) == {"stdint.h"}
    assert "malloc" not in model.source
    comments = set(re.findall(r"/\* (.*): [a-z ]+ \*/", model.source))
    assert comments == {step.note for step in plan.steps}
    assert "cell 1 (reduction) edge 2->3 sep_conv_5x5" in comments
    for words in ("H x W x C", "x = pixel / 127.5 - 1", "class 9", f"{model.weight_bytes} bytes of weights"):
        assert words in model.header
    subprocess.run(["gcc", *STRICT, "-pedantic", "-c", "-o", str(tmp_path / "m.o"), str(write_model(model, tmp_path))],
                   check=True)  # fmt: skip


# --- other machines -------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("style", STYLES)
def test_it_cross_compiles_for_cortex_m7(tmp_path, style):
    gcc, size = (
        require("arm-none-eabi-gcc", "gcc-arm-none-eabi"),
        require("arm-none-eabi-size", "binutils-arm-none-eabi"),
    )
    _, model = model_of(tmp_path, DARTS_V2, style, 28, 2, in_channels=1)
    obj = tmp_path / "m_model.o"
    subprocess.run([gcc, *CORTEX_M7, *STRICT, "-c", "-o", str(obj), str(write_model(model, tmp_path))], check=True)
    sections = dict(re.findall(r"^(\.\w+)\s+(\d+)", subprocess.check_output([size, "-A", str(obj)], text=True), re.M))
    text, rodata, bss = (int(sections.get(s, 0)) for s in (".text", ".rodata", ".bss"))
    print(f"{style}: .text {text}, .rodata {rodata}, .bss {bss}; estimated code {model.code_bytes}")
    assert bss == model.figures()["ram_bytes"]  # the arena and patch buffers are all the static RAM
    assert model.weight_bytes <= rodata <= model.weight_bytes + 64  # the const arrays (+ alignment)
    assert 0.7 < text / model.code_bytes < 1.4  # an estimate (within 10 % on these and the quick model)


@pytest.mark.e2e
def test_the_aarch64_build_under_qemu_gives_x86s_labels(tmp_path):
    gcc, qemu = require("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"), require("qemu-aarch64", "qemu-user")
    plan, model = model_of(tmp_path, EVERY_OP, "cpu", 15, 1)
    pixels = random_pixels(48, plan)
    x86 = run_harness(build_harness(model, tmp_path), pixels, 10)
    arm = run_harness(build_harness(model, tmp_path, gcc, ("-static",)), pixels, 10, emulator=(qemu,))
    assert torch.equal(arm[0], x86[0])
    assert_same_predictions(*arm, reference(plan, pixels))


# --- the command ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("c-export")
    genotype = from_darts(DARTS_V2)
    return {
        "CHECKPOINT": random_checkpoint(folder / "best.safetensors", genotype, "cpu", 16),
        "OLD": random_checkpoint(folder / "old.safetensors", genotype, "cpu", 16, exact=False),
    }


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_cpnas_export_writes_c_from_a_checkpoint_or_a_packed_model(checkpoints, tmp_path):
    result = invoke("export", checkpoints["CHECKPOINT"], tmp_path / "fm_model.c")
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    assert "bytes of weights" in printed and "bytes of arena" in printed
    assert "int fm_predict(const uint8_t *pixels, float *logits);" in (tmp_path / "fm_model.h").read_text()
    assert invoke("export", checkpoints["CHECKPOINT"], tmp_path / "model.cpnas").exit_code == 0
    result = invoke("export", tmp_path / "model.cpnas", tmp_path / "out", "--format", "c", "--prefix", "kws")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "kws_model.c").read_text() == (tmp_path / "fm_model.c").read_text().replace(
        "fm_", "kws_"
    ).replace("fm:", "kws:")
    subprocess.run(
        ["gcc", *STRICT, "-c", "-o", str(tmp_path / "kws.o"), str(tmp_path / "out" / "kws_model.c")], check=True
    )


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["OLD", "fm_model.c"], "predates exact 1-bit semantics"),
        (["GENOTYPE", "fm_model.c"], "holds none"),
        (["RUN", "out", "--format", "c"], "holds none"),
        (["CHECKPOINT", "DIR.c"], "is a directory"),
        (["CHECKPOINT", "FILE", "--format", "c"], "is a file"),
        (["CHECKPOINT", "out", "--format", "c", "--prefix", "9lives"], "not a C identifier"),
        (["CHECKPOINT", "fm-model.c"], "not a C identifier"),
        (["CHECKPOINT", "genotype.json", "--prefix", "fm"], "--prefix applies to C exports"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, pattern, checkpoints, tmp_path):
    (tmp_path / "genotype.txt").write_text(DARTS_V2 + "\n")
    (tmp_path / "DIR.c").mkdir()
    (tmp_path / "FILE").write_text("not a directory")
    names = {**checkpoints, "GENOTYPE": tmp_path / "genotype.txt", "RUN": tmp_path, "FILE": tmp_path / "FILE"}
    flag_or_value = [a.startswith("--") or (i > 0 and args[i - 1].startswith("--")) for i, a in enumerate(args)]
    paths = [a if keep else names.get(a, tmp_path / a) for a, keep in zip(args, flag_or_value, strict=True)]
    assert_one_line_error(invoke("export", *paths), pattern)
    assert not list(tmp_path.rglob("*_model.[ch]")) and not (tmp_path / "out").exists()


@pytest.mark.e2e
def test_the_example_program_classifies_a_pgm_as_run_torch(checkpoints, tmp_path):
    require("make", "make")
    root = Path(__file__).parents[1]
    for name in ("main.c", "Makefile"):
        shutil.copy(root / "examples" / "c" / name, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}  # this checkout's cpnas
    cpnas = f"{sys.executable} -m cpnas_cli"
    subprocess.run(["make", "-C", str(tmp_path), f"MODEL={checkpoints['CHECKPOINT']}", f"CPNAS={cpnas}",
                    "CFLAGS=-std=c99 -O2 -Wall -Wextra -Werror", "classify"], check=True, env=env)  # fmt: skip
    _, plan = load_plan(checkpoints["CHECKPOINT"])
    pixels = random_pixels(1, plan)
    (tmp_path / "x.pgm").write_bytes(b"P5\n# a comment\n16 16\n255\n" + pixels.numpy().tobytes())
    printed = subprocess.check_output([str(tmp_path / "classify"), str(tmp_path / "x.pgm")], text=True)
    label = reference(plan, pixels).argmax().item()
    assert printed == f"{tmp_path / 'x.pgm'}: {label} class {label}\n"
