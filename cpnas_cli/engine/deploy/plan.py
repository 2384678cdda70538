"""The packed 1-bit network as a flat program: layer steps over named values, in execution order.

A packed network (packing.load_packed) is a tree of torch modules; a bit engine, or C code for a
microcontroller, wants a straight list of layers with their tensors and shapes. `lower` walks the
tree once and writes that list: each `Step` reads values, writes one, and names where in the
network it comes from (stem, cell 3 node 4 edge 1->4 sep_conv_3x3, ...). `run_torch` executes a
plan with torch ops, which pins what every step means: on the same input it gives exactly the
packed network's logits, the property the tests hold the lowering to.

Steps (shapes per image, C x H x W; `bconv` reads full-precision values and binarizes them):
  conv     full-precision conv (stem): weight, bias?, stride, padding
  bconv    1-bit conv: bits (packing.pack_signs layout), beta, kernel, stride, padding, dilation, groups
  affine   folded BatchNorm: y = x * scale + shift per channel
  relu     max(x, 0)
  pool     3x3 pooling, padding 1: kind avg (padded taps not counted) | max, stride
  halve    2x2 average pooling, stride 2, ceil (the shortcut past a stride-2 conv)
  mix      channel averaging to `channels` (the shortcut where a conv changes the channel count)
  pick     every second pixel from `offset` (0 or 1) in both directions, zero-padded to `size`
  add      x + y
  concat   along channels, in input order
  gap      global average pooling to C x 1 x 1
  linear   weight, bias (the classifier)
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from cpnas_cli.engine.nn.backbone import Classifier
from cpnas_cli.engine.nn.binary import binary_conv2d, hard_sign
from cpnas_cli.engine.nn.network import Cell, EvalNetwork
from cpnas_cli.engine.nn.ops import FactorizedReduce, Shortcut, average_channels
from cpnas_cli.space.genotype import Genotype

from .packing import FoldedBatchNorm2d, PackedBinaryConv2d, folded_affine, unpack_signs


@dataclass
class Step:
    op: str
    inputs: tuple[str, ...]
    output: str
    shape: tuple[int, int, int]  # C, H, W of the output, per image
    note: str  # where in the network it comes from
    params: dict = field(default_factory=dict)  # geometry, and tensor names in Plan.tensors


@dataclass
class Plan:
    input: str
    input_shape: tuple[int, int, int]
    output: str
    steps: list[Step] = field(default_factory=list)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def shape_of(self, value: str) -> tuple[int, int, int]:
        if value == self.input:
            return self.input_shape
        return next(s.shape for s in self.steps if s.output == value)


class _Lowering:
    """Walks the module tree, appending steps; one method per module type."""

    def __init__(self, net: EvalNetwork, genotype: Genotype, input_shape: tuple[int, int, int]):
        self.plan = Plan("image", input_shape, "")
        self.genotype = genotype
        self.names = {id(m): name for name, m in net.named_modules()}
        self.count = 0

    def emit(self, op: str, inputs: tuple[str, ...], shape, note: str, **params) -> str:
        self.count += 1
        output = f"v{self.count}"
        self.plan.steps.append(Step(op, inputs, output, tuple(shape), note, params))
        return output

    def tensor(self, module: nn.Module, what: str, value: torch.Tensor) -> str:
        name = f"{self.names[id(module)]}.{what}"
        layout = torch.contiguous_format if value.is_contiguous() else torch.channels_last
        self.plan.tensors[name] = value.detach().cpu().contiguous(memory_format=layout)  # oneDNN's floats depend on it
        return name

    def module(self, m: nn.Module, x: str, note: str) -> str:
        shape = self.plan.shape_of(x)
        if isinstance(m, nn.Sequential):
            for child in m:
                x = self.module(child, x, note)
            return x
        if isinstance(m, nn.Identity):
            return x
        if isinstance(m, PackedBinaryConv2d):
            return self.bconv(m, x, shape, note)
        if isinstance(m, nn.Conv2d):
            return self.conv(m, x, shape, note)
        if isinstance(m, FoldedBatchNorm2d):
            scale, shift = self.tensor(m, "scale", m.scale), self.tensor(m, "shift", m.shift)
            return self.emit("affine", (x,), shape, note, scale=scale, shift=shift)
        if isinstance(m, nn.ReLU):
            return self.emit("relu", (x,), shape, note)
        if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)):
            kind = "avg" if isinstance(m, nn.AvgPool2d) else "max"
            stride = m.stride if isinstance(m.stride, int) else m.stride[0]
            out = (shape[0], _out_size(shape[1], 3, stride, 1), _out_size(shape[2], 3, stride, 1))
            return self.emit("pool", (x,), out, note, kind=kind, stride=stride)
        if isinstance(m, Shortcut):
            return self.shortcut(m, x, shape, note)
        if isinstance(m, FactorizedReduce):
            return self.factorized_reduce(m, x, shape, note)
        raise ValueError(f"no plan step for {type(m).__name__} at {self.names.get(id(m), '?')}")

    def conv(self, m: nn.Conv2d, x: str, shape, note: str) -> str:
        k, s, p = m.kernel_size[0], m.stride[0], cast(int, m.padding[0])
        out = (m.out_channels, _out_size(shape[1], k, s, p), _out_size(shape[2], k, s, p))
        bias = self.tensor(m, "bias", m.bias) if m.bias is not None else None
        weight = self.tensor(m, "weight", m.weight)
        return self.emit("conv", (x,), out, note, weight=weight, bias=bias, kernel=k, stride=s, padding=p)

    def bconv(self, m: PackedBinaryConv2d, x: str, shape, note: str) -> str:
        if not m.exact:
            raise ValueError("a version-1 packed model predates exact 1-bit semantics: it runs on the torch path only")
        if not m.binary_input:
            raise ValueError("a 1-bit conv with real-valued input (CP-NAS*/**) has no bit-engine step: torch path only")
        c_out, k = m.signs.shape[0], m.signs.shape[-1]
        s, p, d = m.stride[0], cast(int, m.padding[0]), m.dilation[0]
        span = d * (k - 1) + 1
        out = (c_out, _out_size(shape[1], span, s, p), _out_size(shape[2], span, s, p))
        bits, beta = self.tensor(m, "bits", m.bits), self.tensor(m, "beta", m.beta)
        return self.emit("bconv", (x,), out, note, bits=bits, beta=beta, in_channels=shape[0], kernel=k, stride=s,
                         padding=p, dilation=d, groups=m.groups)  # fmt: skip

    def shortcut(self, m: Shortcut, x: str, shape, note: str) -> str:
        body = self.module(m.body, x, note)
        skip = x
        if m.pool is not None:
            skip = self.emit("halve", (skip,), (shape[0], (shape[1] + 1) // 2, (shape[2] + 1) // 2), note + " shortcut")
        if m.channels is not None:
            skip_shape = self.plan.shape_of(skip)
            skip = self.emit("mix", (skip,), (m.channels, *skip_shape[1:]), note + " shortcut", channels=m.channels)
        return self.emit("add", (body, skip), self.plan.shape_of(body), note + " shortcut")

    def factorized_reduce(self, m: FactorizedReduce, x: str, shape, note: str) -> str:
        half = (shape[0], (shape[1] + 1) // 2, (shape[2] + 1) // 2)
        even = self.emit("pick", (x,), half, note + " even pixels", offset=0)
        odd = self.emit("pick", (x,), half, note + " odd pixels", offset=1)
        a = self.module(m.conv_a, even, note)
        b = self.module(m.conv_b, odd, note)
        channels = sum(self.plan.shape_of(v)[0] for v in (a, b))
        both = self.emit("concat", (a, b), (channels, *half[1:]), note)
        return self.module(m.bn, both, note)

    def cell(self, index: int, cell: Cell, s0: str, s1: str) -> str:
        kind = "reduction" if cell.reduce else "normal"
        edges = self.genotype.cell("reduce" if cell.reduce else "normal").nodes
        where = f"cell {index} ({kind})"
        states = [self.module(cell.pre0, s0, f"{where} input 0"), self.module(cell.pre1, s1, f"{where} input 1")]
        for node, (sources, ops, chosen) in enumerate(zip(cell.inputs, cell.ops, edges, strict=True), start=2):
            outs = [
                self.module(op, states[src], f"{where} edge {src}->{node} {edge.op}")
                for src, op, edge in zip(sources, cast(nn.ModuleList, ops), chosen, strict=True)
            ]
            total = outs[0]
            for out in outs[1:]:
                total = self.emit("add", (total, out), self.plan.shape_of(out), f"{where} node {node}")
            states.append(total)
        picked = [states[i] for i in cell.concat]
        channels = sum(self.plan.shape_of(v)[0] for v in picked)
        h, w = self.plan.shape_of(picked[0])[1:]
        return self.emit("concat", tuple(picked), (channels, h, w), f"{where} output")

    def classifier(self, m: Classifier, x: str) -> str:
        shape = self.plan.shape_of(x)
        pooled = self.emit("gap", (x,), (shape[0], 1, 1), "classifier")
        weight = self.tensor(m.linear, "weight", m.linear.weight)
        bias = self.tensor(m.linear, "bias", m.linear.bias)
        return self.emit("linear", (pooled,), (m.linear.out_features, 1, 1), "classifier", weight=weight, bias=bias)


def lower(net: EvalNetwork, genotype: Genotype, input_shape: tuple[int, int, int]) -> Plan:
    """The plan of a packed network (load_packed) of `genotype` for images of `input_shape` (C, H, W)."""
    lowering = _Lowering(net, genotype, input_shape)
    s0 = s1 = lowering.module(net.stem, lowering.plan.input, "stem")
    for index, cell in enumerate(net.cells):
        s0, s1 = s1, lowering.cell(index, cast(Cell, cell), s0, s1)
    lowering.plan.output = lowering.classifier(net.classifier, s1)
    return lowering.plan


def _out_size(size: int, span: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - span) // stride + 1


# --- the meaning of each step, in torch -------------------------------------------------------


def run_torch(plan: Plan, x: torch.Tensor) -> torch.Tensor:
    """Execute the plan on a batch (N, C, H, W) with torch ops; returns the logits (N, classes)."""
    last_use = {v: i for i, step in enumerate(plan.steps) for v in step.inputs}
    values = {plan.input: x}
    for i, step in enumerate(plan.steps):
        values[step.output] = _STEPS[step.op](plan.tensors, step, *(values[v] for v in step.inputs))
        for v in step.inputs:  # free what no later step reads
            if last_use[v] == i:
                values.pop(v, None)
    return values[plan.output].flatten(1)


def _conv(t, step, x):
    p = step.params
    bias = t[p["bias"]] if p["bias"] else None
    return F.conv2d(x, t[p["weight"]], bias, p["stride"], p["padding"])


def _bconv(t, step, x):
    p = step.params
    signs = unpack_signs(t[p["bits"]], (step.shape[0], p["in_channels"] // p["groups"], p["kernel"], p["kernel"]))
    return binary_conv2d(hard_sign(x), signs, t[p["beta"]], None, p["stride"], p["padding"], p["dilation"], p["groups"])


def _affine(t, step, x):
    return folded_affine(x, t[step.params["scale"]], t[step.params["shift"]])


def _pool(t, step, x):
    if step.params["kind"] == "avg":
        return F.avg_pool2d(x, 3, step.params["stride"], 1, count_include_pad=False)
    return F.max_pool2d(x, 3, step.params["stride"], 1)


def _pick(t, step, x):
    offset = step.params["offset"]
    part = x[:, :, offset::2, offset::2]
    return F.pad(part, (0, step.shape[2] - part.shape[3], 0, step.shape[1] - part.shape[2]))


_STEPS: dict[str, Callable[..., torch.Tensor]] = {
    "conv": _conv,
    "bconv": _bconv,
    "affine": _affine,
    "relu": lambda t, step, x: F.relu(x),
    "pool": _pool,
    "halve": lambda t, step, x: F.avg_pool2d(x, 2, ceil_mode=True),
    "mix": lambda t, step, x: average_channels(x, step.params["channels"]),
    "pick": _pick,
    "add": lambda t, step, x, y: x + y,
    "concat": lambda t, step, *xs: torch.cat(xs, dim=1),
    "gap": lambda t, step, x: F.adaptive_avg_pool2d(x, 1),
    "linear": lambda t, step, x: F.linear(x.flatten(1), t[step.params["weight"]], t[step.params["bias"]])[
        :, :, None, None
    ],
}
