"""A whole packed network on the native kernels: the same logits as plan.run_torch, bit for bit
(torch.equal), for every op in both styles, odd sizes, stem stride 1 and 2, batch 1 and 3, on each
ISA path this CPU offers; the same labels (and logits) as the trained Child on the embedded test
set; fusion and bit outputs where the plan allows them; no float copy of a 1-bit kernel."""

import pytest
import torch

from cpnas_cli.data import normalize
from cpnas_cli.engine.deploy.native import library
from cpnas_cli.engine.deploy.native.network import NativeNetwork
from cpnas_cli.engine.deploy.plan import lower, run_torch
from cpnas_cli.engine.train.model_file import load_model
from cpnas_cli.space.genotype import from_darts
from tests.genotypes import DARTS_V2
from tests.test_export import SPEC, SPEC_SHORTCUT, _trained_checkpoint, invoke
from tests.test_native_kernels import ISA_PARAMS, needs_fused_torch
from tests.test_plan import EVERY_OP, STYLES, packed_network

pytestmark = [pytest.mark.skipif(not library.available(), reason=library.why_unavailable()), needs_fused_torch]


@pytest.fixture(params=ISA_PARAMS)
def isa(request, monkeypatch):
    monkeypatch.setenv(library.ISA_VARIABLE, request.param)
    return request.param


def plan_of(tmp_path, genotype: str, style: str, size: int, stem_stride: int):
    genotype = from_darts(genotype)
    return lower(packed_network(tmp_path, genotype, style, size, stem_stride), genotype, (3, size, size))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("genotype", "size", "stem_stride"), [(EVERY_OP, 15, 1), (DARTS_V2, 17, 2)])
def test_native_logits_equal_run_torch(tmp_path, isa, style, genotype, size, stem_stride, threads):
    plan = plan_of(tmp_path, genotype, style, size, stem_stride)
    network = NativeNetwork.from_plan(plan)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for batch in (1, 3, 3):  # the third call reuses the buffers of the second
            for x in (torch.randn(batch, 3, size, size), torch.randn(batch, size, size, 3).permute(0, 3, 1, 2)):
                with torch.no_grad():  # NCHW and channels_last batches
                    assert torch.equal(network(x), run_torch(plan, x))
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("style", STYLES)
def test_fusion_and_bit_outputs_follow_the_readers(tmp_path, style):
    plan = plan_of(tmp_path, EVERY_OP, style, 15, 1)
    network = NativeNetwork.from_plan(plan)
    convs = [op for op in network.ops if op.one_bit]
    assert len(convs) == sum(step.op == "bconv" for step in plan.steps)
    readers = {v: [s.op for s in plan.steps if v in s.inputs] for v in (s.output for s in plan.steps)}
    for op in convs:
        step = next(s for s in plan.steps if s.op == "bconv" and s.note == op.note and s.inputs[0] == op.inputs[0])
        assert ("affine" in op.fused) == (readers[step.output] == ["affine"])  # an affine alone reading it
        if style == "cpu" and readers[step.output] != ["concat"]:  # all but FactorizedReduce's halves
            assert op.fused == ("affine", "add")  # the real-valued shortcut in the epilogue too
    if style == "paper":  # separable convs: depth-wise -> point-wise with nothing between: bits
        assert any(op.conv.output == "bits" and op.conv.depthwise for op in convs)


@pytest.mark.parametrize("style", STYLES)
def test_no_float_copy_of_a_one_bit_kernel(tmp_path, style):
    plan = plan_of(tmp_path, EVERY_OP, style, 15, 1)
    network = NativeNetwork.from_plan(plan)
    for op in network.ops:
        if op.one_bit:
            floats = [name for name, t in op.held.items() if t.is_floating_point() and t.dim() > 1]
            assert not floats, (op.note, floats)
    network(torch.randn(2, 3, 15, 15))
    resident = network.resident_bytes()
    bits = sum(t.numel() for name, t in plan.tensors.items() if name.endswith(".bits"))
    floats = sum(t.numel() * 4 for name, t in plan.tensors.items() if not name.endswith(".bits"))
    assert resident["activations"] == network.activation_bytes(2) > 0
    # the file's bytes, but dense convs round each output channel's inputs up to whole 32-bit
    # halfwords: at most 2x for the 16-channel inputs of this tiny network (1x for 32, 64, ...)
    assert resident["weights"] <= 2 * bits + floats + 4096  # + block tables


@pytest.mark.parametrize("spec", [SPEC, SPEC_SHORTCUT], ids=["paper-ops", "shortcut-grouped"])
def test_trained_child_and_native_network_agree_on_the_embedded_test_set(tmp_path, spec):
    from cpnas_cli.data import load_dataset

    data = load_dataset("embedded")
    checkpoint = _trained_checkpoint(tmp_path / "best.safetensors", spec, data)
    assert invoke("export", checkpoint, tmp_path / "model.cpnas").exit_code == 0
    _, child, _ = load_model(checkpoint)
    _, network = NativeNetwork.from_packed(tmp_path / "model.cpnas")
    images = normalize(data.test_images)
    with torch.no_grad():
        for start in range(0, len(images), 500):
            x = images[start : start + 500]
            expected, got = child.eval()(x)[0], network(x)
            assert torch.equal(got.argmax(1), expected.argmax(1))
            assert torch.equal(got, expected)
