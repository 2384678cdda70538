"""`cpnas evaluate --engine native|torch`: the native engine by default where it is built, the same
per-class results as torch, and one line with exit 2 where it cannot run the file."""

import json

import pytest
import torch

from cpnas_cli.data import load_dataset, normalize
from cpnas_cli.engine.deploy.evaluation import load_networks
from cpnas_cli.engine.deploy.native import library
from tests.cli import assert_one_line_error
from tests.test_export import SPEC_SHORTCUT, _trained_checkpoint, _with_version, invoke

needs_library = pytest.mark.skipif(not library.available(), reason=library.why_unavailable())


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engine")
    checkpoint = _trained_checkpoint(folder / "best.safetensors", SPEC_SHORTCUT, load_dataset("embedded"))
    assert invoke("export", checkpoint, folder / "model.cpnas").exit_code == 0
    return checkpoint, folder / "model.cpnas"


@pytest.fixture
def no_library(monkeypatch):
    monkeypatch.setattr(library, "_LIB", None)
    monkeypatch.setattr(library, "_WHY", "_cpnas_native.so was not built (test)")


@needs_library
def test_native_is_the_default_and_gives_torchs_per_class_results(model):
    native, torch_run = (
        invoke("evaluate", model[1], "--json"),
        invoke("evaluate", model[1], "--engine", "torch", "--json"),
    )
    assert native.exit_code == 0 and torch_run.exit_code == 0, native.output + torch_run.output
    native, torch_run = json.loads(native.stdout), json.loads(torch_run.stdout)
    assert native["engine"] == f"native ({library.isa()})" and torch_run["engine"] == "torch"
    assert native["per_class"] == torch_run["per_class"] and native["confusion"] == torch_run["confusion"]
    memory = native["memory"]
    assert memory["file"] == model[1].stat().st_size and torch_run["memory"] is None
    assert 0 < memory["weights"] <= 1.1 * memory["file"] and memory["activations"] > 0 and memory["batch"] >= 1
    tables = invoke("evaluate", model[1])
    assert f"engine: native ({library.isa()})" in tables.stdout.replace("\n", " ")
    assert "bytes of weights" in tables.stdout.replace("\n", " ")


def test_a_checkpoint_evaluates_on_torch(model):
    result = invoke("evaluate", model[0], "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["engine"] == "torch"


def test_native_on_a_checkpoint_is_one_line(model):
    assert_one_line_error(invoke("evaluate", model[0], "--engine", "native"), "export it with cpnas export")


def test_native_without_the_library_is_one_line(model, no_library):
    assert_one_line_error(invoke("evaluate", model[1], "--engine", "native"), "was not built (test)")


def test_the_default_without_the_library_says_so_and_runs_torch(model, no_library):
    result = invoke("evaluate", model[1], "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["engine"] == "torch"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "was not built (test)" in lines[0], result.stderr


@needs_library
def test_native_on_a_version_1_packed_model_is_one_line(model, tmp_path):
    old = _with_version(model[1], tmp_path / "old.cpnas", "1")
    assert_one_line_error(invoke("evaluate", old, "--engine", "native"), "runs on the torch engine only")


def test_an_unknown_engine_is_one_line(model):
    assert_one_line_error(invoke("evaluate", model[1], "--engine", "gpu"), "expected one of native, torch")


def _first_conv_output(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen = []
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    handle = conv.register_forward_hook(lambda module, inputs, output: seen.append(output))
    net(x)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize(
    ("which", "engine"),
    [("checkpoint", "torch"), ("packed", "torch"), pytest.param("packed", "native", marks=needs_library)],
)
def test_the_evaluated_networks_give_each_image_the_same_result_at_any_batch_size(model, which, engine):
    """The C export runs one image at a time, evaluate batches of 500. The stem conv's floats feed
    the first 1-bit conv's signs, so they must not depend on the batch (they did with channels_last
    weights: docstring of load_networks); the classifier's float sums may (oneDNN's GEMM against
    its GEMV), so the logits agree within the C export's tolerance (tests/test_c_export.py)."""
    path = model[0] if which == "checkpoint" else model[1]
    _, nets, _ = load_networks(path, engine, torch.device("cpu"))
    images = normalize(load_dataset("embedded").test_images[:256])
    with torch.no_grad():
        for role, net in nets.items():
            batch = net.eval()(images)[0]
            alone = torch.cat([net(image[None])[0] for image in images])
            assert torch.equal(batch.argmax(1), alone.argmax(1)), role
            assert ((batch - alone).abs().amax(1) <= 1e-5 * alone.abs().amax(1).clamp(min=1)).all(), role
            if engine == "torch":
                stem_batch = _first_conv_output(net, images)
                stem_alone = torch.cat([_first_conv_output(net, image[None]) for image in images])
                assert torch.equal(stem_batch, stem_alone), role
