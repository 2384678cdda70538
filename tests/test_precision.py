"""Mixed precision (engine/run/precision.py): on the CPU nothing changes, not one operation; on
CUDA (tests marked `cuda`, skipped with the reason on a machine without one) autocast lowers the
full-precision parts while the 1-bit convs stay exact float32."""

import pytest
import torch
import torch.nn.functional as F

from cpnas_cli.config import load_config
from cpnas_cli.engine.nn.binary import BinaryConv2d
from cpnas_cli.engine.run.precision import precision
from cpnas_cli.engine.search.child_parent import ChildParent
from cpnas_cli.engine.train.pair import TrainingPair
from cpnas_cli.engine.train.trainer import network_spec
from cpnas_cli.errors import UserError
from cpnas_cli.space import genotype as g
from tests.genotypes import DARTS_V2
from tests.tiny_runs import TINY_SEARCH

CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh)")
TRAIN = ["train.channels=4", "train.cells=3", "train.stem_stride=2", "train.drop_path=0"]
ARCH = {cell: ["sep_conv_3x3", "skip", "max_pool_3x3", "sep_conv_3x3", "zero"] for cell in ("normal", "reduce")}


class Shape:
    in_channels, num_classes, image_size = 1, 10, 28


def batch(device=CPU, n=16):
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    return x.to(device).contiguous(memory_format=torch.channels_last), y.to(device)


def pair(amp, device=CPU) -> TrainingPair:
    cfg = load_config("quick", sets=[*TRAIN, f"train.amp={amp}"]).train
    return TrainingPair(cfg, network_spec(cfg, Shape()), g.from_darts(DARTS_V2), device, seed=0)


def search_pair(amp, device=CPU) -> ChildParent:
    cfg = load_config("quick", sets=[*TINY_SEARCH, "search.nodes=2", f"search.amp={amp}"]).search
    return ChildParent(cfg, 1, 10, device, seed=0, image_size=28)


def test_auto_is_off_on_the_cpu_and_true_needs_cuda():
    for setting in ("auto", False):
        assert not precision(setting, CPU, "train.amp").enabled
    with pytest.raises(UserError, match=r"train\.amp=true needs a CUDA device"):
        precision(True, CPU, "train.amp")
    with pytest.raises(UserError, match=r"search\.amp=true"):
        search_pair("true")


def test_cpu_training_and_search_never_touch_autocast_or_a_scaler(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("autocast or GradScaler on the CPU path")

    monkeypatch.setattr(torch, "autocast", refuse)
    monkeypatch.setattr(torch.amp, "GradScaler", refuse)
    x, y = batch()
    trained = pair("auto")
    trained.train_batch(x, y, lr=0.01)
    trained.evaluate([(x, y)])
    search = search_pair("auto")
    search.train_batch(x, y, ARCH, lr=0.01)
    search.evaluate([(x, y)], ARCH)


def test_cpu_training_with_amp_auto_equals_amp_off_bit_for_bit():
    x, y = batch()
    results = []
    for amp in ("auto", "false"):
        trained = pair(amp)
        steps = [trained.train_batch(x, y, lr=0.01) for _ in range(2)]
        results.append(({k: v for s in steps for k, v in s.items() if k != "seconds"}, trained.state_tensors()))
    (sums, state), (sums_off, state_off) = results
    assert sums == sums_off and state.keys() == state_off.keys()
    assert all(torch.equal(state[k], state_off[k]) for k in state)


# --- CUDA ---------------------------------------------------------------------------------


@pytest.mark.cuda
@needs_cuda
def test_1bit_convs_leave_autocast_and_stay_exact():
    torch.manual_seed(0)
    conv = BinaryConv2d(1023, 8, 1, bias=False).cuda()
    with torch.no_grad():
        conv.weight.abs_()  # every sign +1 and most inputs positive: odd sums near 900, which bfloat16 rounds
    x = torch.randn(4, 1023, 6, 6, device="cuda") + 1.5
    expected = conv(x)  # float32, no autocast
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cuda", dtype=dtype):
            out = conv(x)
        assert out.dtype == torch.float32 and torch.equal(out, expected)
    with torch.autocast("cuda", dtype=torch.bfloat16):  # what the conv would compute inside autocast
        lowered = torch.nn.functional.conv2d(torch.sign(x), torch.sign(conv.weight))
    assert not torch.equal(lowered.float(), torch.nn.functional.conv2d(torch.sign(x), torch.sign(conv.weight)))


@pytest.mark.cuda
@needs_cuda
def test_cuda_training_runs_the_parent_in_lower_precision_and_keeps_float32_weights():
    device = torch.device("cuda")
    trained = pair("auto", device)
    assert trained.precision.enabled and torch.backends.cudnn.benchmark
    seen = []
    trained.parent.classifier.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    x, y = batch(device)
    for _ in range(3):
        result = trained.train_batch(x, y, lr=0.01)
    assert seen and seen[0] in (torch.bfloat16, torch.float16)
    assert all(torch.isfinite(torch.tensor(result[k])) for k in ("loss", "loss_parent"))
    assert all(t.dtype in (torch.float32, torch.int64) for t in trained.state_tensors().values())
    acc = trained.evaluate([(x, y)])
    assert 0 <= acc["child"] <= 100 and 0 <= acc["parent"] <= 100


@pytest.mark.cuda
@needs_cuda
def test_cuda_search_step_with_amp_matches_float32_in_accuracy_terms():
    device = torch.device("cuda")
    x, y = batch(device, n=64)
    out = {}
    for amp in ("true", "false"):
        model = search_pair(amp, device)
        for _ in range(5):
            model.train_batch(x, y, ARCH, lr=0.01)
        with torch.no_grad():
            logits = model.nets["parent"].eval()(x, ARCH)
        out[amp] = F.cross_entropy(logits.float(), y).item()
    assert abs(out["true"] - out["false"]) < 0.1 * max(out["false"], 1.0)  # the same training, up to rounding
