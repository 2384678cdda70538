"""What running 1 bit buys, measured: the native engine against the torch float simulation of the
same packed Child and against the same network in full precision (the Parent's shape, random
weights), interleaved call by call so that a busy machine slows all three alike.

`Contenders.from_packed` / `.from_genotype` build the three; `measure` times them: latency per batch
(median, p90) and throughput, plus the native run's time per plan op (`NativeNetwork` timings),
grouped by kind, precision and kernel path.
"""

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cpnas_cli.engine.nn.network import EvalNetwork, NetworkSpec
from cpnas_cli.engine.train.model_file import ModelInfo
from cpnas_cli.errors import UserError
from cpnas_cli.space.genotype import Genotype

from .native.network import NativeNetwork, NativeOp
from .packing import load_packed, write_packed
from .plan import lower

NAMES = ("native", "torch 1-bit", "torch full precision")


@dataclass
class Contenders:
    """The three ways to run one network, with what the native one holds and the file it came from."""

    native: NativeNetwork
    simulated: EvalNetwork  # the packed network run by torch (float convs of ±1 kernels)
    full: EvalNetwork  # full precision, random weights
    spec: NetworkSpec
    file_bytes: int

    @classmethod
    def from_packed(cls, path: Path) -> "Contenders":
        info, packed = load_packed(path)
        spec = info.spec
        if spec.real_inputs:
            raise UserError(
                f"{path} feeds real-valued activations into 1-bit convs (CP-NAS*/**): the native engine "
                "takes 1-bit inputs only",
                "bench a network without train.real_depthwise / train.real_preprocess",
            )
        native = NativeNetwork.from_plan(
            lower(packed, info.genotype, (spec.in_channels, spec.image_size, spec.image_size))
        )
        full = spec.build(info.genotype, binary=False).eval()
        return cls(native, packed, full, spec, path.stat().st_size)

    @classmethod
    def from_genotype(cls, genotype: Genotype, spec: NetworkSpec, seed: int = 0) -> "Contenders":
        """Random weights and BatchNorm statistics, packed through a temporary model.cpnas."""
        torch.manual_seed(seed)
        child = spec.build(genotype, binary=True).eval()
        for module in child.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None  # eval-mode BN tracks them
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.cpnas"
            write_packed(path, ModelInfo(genotype, spec, [str(i) for i in range(spec.classes)], "random"), child)
            return cls.from_packed(path)

    def runners(self) -> dict[str, Callable[[torch.Tensor], object]]:
        return {NAMES[0]: self.native, NAMES[1]: self.simulated, NAMES[2]: self.full}


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)  # one per call

    def summary(self, batch: int) -> dict:
        ordered = sorted(self.seconds)
        median = statistics.median(ordered)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        return {"median_ms": median * 1e3, "p90_ms": p90 * 1e3, "images_per_s": batch / median}


@torch.no_grad()
def measure(contenders: Contenders, batch: int, repeats: int, warmup: int = 2, tick=None) -> dict:
    """Times of `repeats` interleaved rounds (a, b, c, a, b, c, ...) after `warmup` rounds; `tick()`
    after each timed call. In a round each engine makes an untimed call right before its timed one:
    the interleaving spreads the machine's noise over all three alike, the extra call gives each
    timed call the warm caches of a model serving a stream (else each engine would be timed on the
    caches the other two left). Returns per contender its summary, and the native per-op seconds."""
    spec = contenders.spec
    x = torch.randn(batch, spec.in_channels, spec.image_size, spec.image_size)
    runners = contenders.runners()
    timings = {name: Timing() for name in runners}
    for round_ in range(warmup + repeats):
        for name, run in runners.items():
            run(x)
            start = time.perf_counter()
            run(x)
            if round_ >= warmup:
                timings[name].seconds.append(time.perf_counter() - start)
            if tick:
                tick()
    per_op = [0.0] * len(contenders.native.ops)
    calls = max(1, repeats // 4)  # per-op times in calls of their own: timing each op costs a little
    for _ in range(calls):
        contenders.native(x, per_op)
    return {
        "contenders": {name: t.summary(batch) for name, t in timings.items()},
        "per_op": [seconds / calls for seconds in per_op],
    }


def layer_shares(ops: list[NativeOp], per_op: list[float]) -> list[dict]:
    """The native run's time grouped by what ran: kind (with fused steps), precision, kernel path."""
    groups: dict[tuple[str, str, str], float] = {}
    for op, seconds in zip(ops, per_op, strict=True):
        key = (_label(op), "1-bit" if op.one_bit else "full precision", op.path())
        groups[key] = groups.get(key, 0.0) + seconds
    total = sum(groups.values()) or 1.0
    rows = [
        {"step": step, "precision": precision, "path": path, "ms": s * 1e3, "share": s / total}
        for (step, precision, path), s in groups.items()
    ]
    return sorted(rows, key=lambda row: -row["share"])


def _label(op: NativeOp) -> str:
    if op.conv is None:
        return op.kind
    kind = "depth-wise" if op.conv.depthwise else f"{op.conv.kernel_size[0]}x{op.conv.kernel_size[1]}"
    fused = "".join(f" +{step}" for step in op.fused)
    return f"bconv {kind}{fused} -> {op.conv.output}"
