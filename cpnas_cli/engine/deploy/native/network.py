"""A whole packed 1-bit network on the native kernels: the plan (plan.lower) turned into a list of
calls, every `bconv` step on a `BinaryConvPlan`, the rest on the very torch functions that define
each step in plan.run_torch, so the logits equal run_torch's bit for bit.

Fusion, decided once from who reads what:
  bconv -> affine -> add   the folded BatchNorm and the shortcut / node sum go into the conv's
                           epilogue (an FMA, then + residual, as torch rounds them) when each
                           intermediate value has no other reader; the fused call runs where the
                           add stood, so the residual exists by then.
  bits out                 a conv whose every reader is another 1-bit conv emits packed sign bits,
                           never the float tensor.
The 1-bit convs read and write channels_last (NHWC); the torch steps take values as they come.
ATen ops whose floats depend on the layout see the layout run_torch would give them: the stem
conv gets the batch as passed and its weight in the plan's layout (oneDNN picks another
algorithm for channels_last), the means (the classifier's global average pool, the shortcut's
channel averaging `mix`) a copy in the stem output's layout, which run_torch's values keep to the
end (the channels_last mean sums in another order). So the logits equal run_torch's on the same
batch, NCHW or channels_last.
Per batch size (binding.py): conv outputs go to buffers of an arena shared by liveness, kept
across calls (a fresh large tensor per call costs its page faults every time), and each run of
consecutive 1-bit convs is one C call (a Python call per layer costs a few microseconds, as much
as a small layer computes).
The object holds packed bits, beta, folded BatchNorm and the full-precision tensors, no float copy
of a 1-bit kernel (the ±1 kernel exists only while a plan packs it).
"""

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..packing import load_packed, unpack_signs
from ..plan import _STEPS, Plan, Step, lower
from . import library
from .binding import Binding

CHANNELS_LAST = torch.channels_last
# Steps computed by ATen's mean, whose summation order depends on the memory layout: they get
# their input in run_torch's layout (for `mix` on an NCHW batch that is also 2-5x faster than its
# mean over a strided view of the channel axis of a channels_last tensor).
_MEANS = ("gap", "mix")


@dataclass
class NativeOp:
    """One call of the network: a fused 1-bit conv or a torch step."""

    kind: str  # "bconv" (with its fused steps in `fused`) or the plan step's op
    note: str  # where in the network (the plan step's note)
    inputs: tuple[str, ...]
    output: str
    run: Callable[..., object] | None  # a torch step's function (1-bit convs run in chains)
    held: dict[str, torch.Tensor] = field(default_factory=dict)  # the weights this op keeps
    fused: tuple[str, ...] = ()  # plan steps folded into a bconv: "affine", "add"
    conv: library.BinaryConvPlan | None = None

    @property
    def one_bit(self) -> bool:
        return self.conv is not None

    def path(self) -> str:
        """Which code runs it: the kernel and ISA path of a 1-bit conv, torch otherwise."""
        if self.conv is None:
            return "torch"
        return f"{library.isa()} {self.conv.kind}"


class NativeNetwork:
    """logits = network(x) for a normalized NCHW float batch; see the module docstring."""

    def __init__(self, ops: list[NativeOp], input_name: str, output: str, shapes: dict[str, tuple[int, int, int]]):
        self.ops, self.input, self.output, self.shapes = ops, input_name, output, shapes
        self._last_use = {v: i for i, op in enumerate(ops) for v in op.inputs}
        self._binding: Binding | None = None  # buffers and chains of the last batch size

    @classmethod
    def from_plan(cls, plan: Plan) -> "NativeNetwork":
        if not library.available():
            raise RuntimeError(f"native kernels unavailable: {library.why_unavailable()}")
        return cls(_compile(plan), plan.input, plan.output, {step.output: step.shape for step in plan.steps})

    @classmethod
    def from_packed(cls, path: Path, memory_format: torch.memory_format = torch.contiguous_format):
        """(info, network) of a model.cpnas; ValueError for a version-1 file (torch path only).
        `memory_format`: the full-precision weights' layout, that of the torch network whose floats
        this one must equal (packed network .to(memory_format=...))."""
        info, net = load_packed(Path(path))
        spec = info.spec
        plan = lower(
            net.to(memory_format=memory_format), info.genotype, (spec.in_channels, spec.image_size, spec.image_size)
        )
        return info, cls.from_plan(plan)

    def bind(self, n: int) -> Binding:
        """The buffers and chains for batches of n images (kept until another size comes)."""
        if self._binding is None or self._binding.n != n:
            self._binding = None  # free the old buffers before allocating the new ones
            self._binding = Binding(self.ops, self.shapes, self._last_use, n)
        return self._binding

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, timings: list[float] | None = None) -> torch.Tensor:
        """Logits (N, classes). `timings` (one float per op, summed over calls) gets each op's
        seconds; the 1-bit convs then run one C call each instead of one per chain."""
        binding = self.bind(x.shape[0])
        values: dict[str, object] = {self.input: x}  # the stem conv's floats depend on the layout: as given
        layout = None  # run_torch's layout: the stem conv's output's (the batch's, when it says)
        for item in binding.program:
            start = time.perf_counter() if timings is not None else 0.0
            if isinstance(item, int):
                op = self.ops[item]
                args = [values[v] for v in op.inputs]
                if op.kind in _MEANS:  # ATen's mean sums in a layout-dependent order: run_torch's
                    args = [a.contiguous(memory_format=layout or torch.contiguous_format) for a in args]  # type: ignore[attr-defined]
                assert op.run is not None  # a torch step
                values[op.output] = op.run(*args)
                if layout is None and op.kind == "conv":
                    layout = _layout(values[op.output])  # type: ignore[arg-type]
                if timings is not None:
                    timings[item] += time.perf_counter() - start
                self._free(values, item)
                continue
            keep = []  # channels_last copies of torch values, alive until the chain has run
            for call, field_name, value in item.dynamic:
                tensor = values[value].contiguous(memory_format=CHANNELS_LAST)  # type: ignore[attr-defined]
                keep.append(tensor)
                setattr(item.chain.calls[call], field_name, tensor.data_ptr())
            if timings is None:
                item.chain.run()
            else:
                for call, i in enumerate(item.ops):
                    start = time.perf_counter()
                    item.chain.run_one(call)
                    timings[i] += time.perf_counter() - start
            for i in item.ops:
                values[self.ops[i].output] = binding.views[self.ops[i].output]
                self._free(values, i)
        result = values[self.output]
        if self.output in binding.views:  # never hand out the arena's memory
            result = result.clone()  # type: ignore[attr-defined]
        return result.flatten(1)  # type: ignore[attr-defined]

    def _free(self, values: dict, i: int) -> None:
        for v in self.ops[i].inputs:  # free what no later op reads
            if self._last_use[v] == i:
                values.pop(v, None)

    def resident_bytes(self) -> dict[str, int]:
        """Bytes of the tensors held: weights (bits, beta, BN, full-precision layers) and the
        activation arena of the last batch size (0 before a call; the torch steps' values come
        and go)."""
        weights = sum(t.numel() * t.element_size() for op in self.ops for t in op.held.values())
        return {"weights": weights, "activations": 0 if self._binding is None else self._binding.activation_bytes}

    def activation_bytes(self, n: int) -> int:
        """The arena and workspace for batches of n images (binds that size)."""
        return self.bind(n).activation_bytes


def _layout(t: torch.Tensor) -> torch.memory_format:
    return torch.contiguous_format if t.is_contiguous() else CHANNELS_LAST


def _bytes(value) -> int:
    tensor = value.words if isinstance(value, library.PackedActivations) else value
    return 0 if tensor is None else tensor.numel() * tensor.element_size()


# --- compiling the plan ---------------------------------------------------------------------


def _compile(plan: Plan) -> list[NativeOp]:
    steps = plan.steps
    readers: dict[str, list[int]] = {}
    for i, step in enumerate(steps):
        for v in step.inputs:
            readers.setdefault(v, []).append(i)
    groups: dict[int, list[int]] = {}
    claimed: set[int] = set()  # an add summing two conv outputs goes to one of them only
    for i, step in enumerate(steps):
        if step.op == "bconv":
            groups[i] = _fusion(steps, readers, i, claimed)
            claimed.update(groups[i][1:])
    placed = {members[-1]: first for first, members in groups.items()}  # a group runs at its last step
    absorbed = {j for members in groups.values() for j in members}
    ops = []
    for i, step in enumerate(steps):
        if i in placed:
            ops.append(_conv_op(plan, readers, [steps[j] for j in groups[placed[i]]]))
        elif i not in absorbed:
            ops.append(_torch_op(plan, step))
    return ops


def _fusion(steps: list[Step], readers: dict[str, list[int]], first: int, claimed: set[int]) -> list[int]:
    """Indices of the bconv at `first` and the affine, then add, that can fold into its epilogue."""
    members, value = [first], steps[first].output
    for op in ("affine", "add"):
        (only, *more) = readers.get(value, [None])
        if more or only is None or only in claimed or steps[only].op != op or _self_sum(steps[only]):
            break
        members.append(only)
        value = steps[only].output
    return members


def _self_sum(step: Step) -> bool:
    """x + x: no other addend to take as the residual."""
    return step.op == "add" and len(set(step.inputs)) < 2


def _conv_op(plan: Plan, readers: dict[str, list[int]], group: list[Step]) -> NativeOp:
    conv, last = group[0], group[-1]
    p, t = conv.params, plan.tensors
    affine = next((s for s in group if s.op == "affine"), None)
    add = next((s for s in group if s.op == "add"), None)
    feeds_bconvs_only = last.output != plan.output and all(
        plan.steps[j].op == "bconv" for j in readers.get(last.output, [])
    )
    shape = (conv.shape[0], p["in_channels"] // p["groups"], p["kernel"], p["kernel"])
    bn = {"bn_scale": t[affine.params["scale"]], "bn_shift": t[affine.params["shift"]]} if affine else {}
    kernel = library.BinaryConvPlan(
        unpack_signs(t[p["bits"]], shape),  # ±1 floats, dropped once the plan has packed them
        t[p["beta"]],
        stride=p["stride"],
        padding=p["padding"],
        dilation=p["dilation"],
        groups=p["groups"],
        **bn,
        output="bits" if feeds_bconvs_only else "float",
    )
    inputs: tuple[str, ...] = (conv.inputs[0],)
    if add is not None:
        inputs += tuple(v for v in add.inputs if v != group[-2].output)  # the other addend: the residual
    held = {"weights": kernel._arrays, "beta": kernel.beta, "scale": kernel.bn_scale, "shift": kernel.bn_shift}
    return NativeOp(
        "bconv",
        conv.note,
        inputs,
        last.output,
        None,
        held=_flatten(held),
        fused=tuple(s.op for s in group[1:]),
        conv=kernel,
    )


def _flatten(held: dict) -> dict[str, torch.Tensor]:
    flat: dict[str, torch.Tensor] = {}
    for name, value in held.items():
        if isinstance(value, dict):
            flat.update({f"{name}.{key}": tensor for key, tensor in value.items()})
        elif value is not None:
            flat[name] = value
    return flat


def _torch_op(plan: Plan, step: Step) -> NativeOp:
    """A step run by its own run_torch function, on the tensors it names only."""
    held = {name: plan.tensors[name] for name in step.params.values() if isinstance(name, str) and name in plan.tensors}
    return NativeOp(
        step.op, step.note, step.inputs, step.output, functools.partial(_STEPS[step.op], held, step), held=held
    )
