"""Memory and compute of a network, layer by layer, with the counting conventions of Table 3.

The network runs once on the `meta` device (shapes only, no arithmetic), and a hook on every
convolution, linear layer and BatchNorm records one `Layer` row: data first, rendering elsewhere.

Conventions (per image, batch 1):
- 1-bit params: the kernels of binarized convolutions (one bit each).
- 32-bit params: weights and biases of full-precision convs and linear layers (the stem and the
  classifier), two values per BatchNorm channel (its running statistics and affine folded into one
  scale and one shift), and one scale beta per output channel of every 1-bit conv (Eq. 3's Ĥ).
  These are exactly the values `cpnas export model.cpnas` stores, so the file's size matches.
- Memory = 1-bit params + 32 x 32-bit params, in bits; 1 Mbit = 10^6 bits.
- A multiply-accumulate counts once: FLOPs = MACs of full-precision convs and linear layers,
  BOPs = MACs of 1-bit convs (an XNOR + popcount per weight and output position). A 1-bit kernel
  on real-valued activations (CP-NAS*/**, ops.py) stores its kernel as 1-bit params, but its MACs
  are FLOPs: a real value times ±beta is no XNOR-popcount.
- OPs = BOPs / 64 + FLOPs (XNOR-Net / Bi-Real Net); Table 3's "FLOPs" column is this figure.
- Not counted: BatchNorm, pooling, additions, concatenation, sign() and ReLU; they are
  O(activations), and BN folds into a per-channel affine.
"""

from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn as nn

from cpnas_cli.engine.nn.binary import BinaryConv2d
from cpnas_cli.engine.nn.network import EvalNetwork, NetworkSpec
from cpnas_cli.space.genotype import Genotype

BITS_PER_FLOAT = 32
BOPS_PER_FLOP = 64
COUNTED = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)  # the only layers with parameters or counted ops


@dataclass(frozen=True)
class Layer:
    """One counted layer of a network, for one image."""

    name: str  # module path, e.g. cells.3.ops.1.0.3
    block: str  # what it belongs to, e.g. "cell 3R n3<-1 sep_conv_3x3" (see cell_blocks)
    kind: str  # e.g. "conv 3x3 dw /2", "linear", "batchnorm"
    binary: bool  # 1-bit kernel
    output_shape: tuple[int, ...]  # without the batch dimension
    params_1bit: int
    params_32bit: int
    bops: int
    flops: int
    real_input: bool = False  # a 1-bit kernel on real-valued activations (CP-NAS*/**)

    @property
    def input_precision(self) -> str:
        return "1-bit" if self.binary and not self.real_input else "32-bit"

    @property
    def memory_bits(self) -> int:
        return self.params_1bit + BITS_PER_FLOAT * self.params_32bit

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "output_shape": list(self.output_shape),
            "input_precision": self.input_precision,
            "memory_bits": self.memory_bits,
        }


@dataclass(frozen=True)
class Profile:
    """The rows of one network and their totals."""

    network: str
    input_shape: tuple[int, ...]
    layers: list[Layer] = field(default_factory=list)

    def total(self, attribute: str) -> int:
        return sum(getattr(layer, attribute) for layer in self.layers)

    @property
    def params_1bit(self) -> int:
        return self.total("params_1bit")

    @property
    def params_32bit(self) -> int:
        return self.total("params_32bit")

    @property
    def params(self) -> int:
        return self.params_1bit + self.params_32bit

    @property
    def memory_bits(self) -> int:
        return self.total("memory_bits")

    @property
    def memory_mbit(self) -> float:
        return self.memory_bits / 1e6

    @property
    def bops(self) -> int:
        return self.total("bops")

    @property
    def flops(self) -> int:
        return self.total("flops")

    @property
    def ops(self) -> float:
        return self.bops / BOPS_PER_FLOP + self.flops

    def against(self, baseline: "Profile") -> dict:
        """Memory saving and speedup (ratios of memory and of OPs) with respect to `baseline`."""
        return {
            "network": baseline.network,
            "memory_mbit": baseline.memory_mbit,
            "ops": baseline.ops,
            "memory_saving": baseline.memory_bits / self.memory_bits,
            "speedup": baseline.ops / self.ops,
        }

    def summary(self) -> dict:
        return {
            "network": self.network,
            "input_shape": list(self.input_shape),
            "params": self.params,
            "params_1bit": self.params_1bit,
            "params_32bit": self.params_32bit,
            "memory_bits": self.memory_bits,
            "memory_mbit": self.memory_mbit,
            "bops": self.bops,
            "flops": self.flops,
            "ops": self.ops,
        }


def profile_module(
    model: nn.Module, input_shape: tuple[int, ...], network: str, blocks: dict[str, str] | None = None
) -> Profile:
    """Count `model` (built on any device) for one input of `input_shape` (C, H, W).

    `blocks` maps module-path prefixes to readable labels; each row takes its longest match."""
    unknown = [
        n
        for n, m in model.named_modules()
        if not isinstance(m, COUNTED) and next(m.parameters(recurse=False), None) is not None
    ]
    if unknown:
        raise ValueError(f"cannot count the parameters of {unknown[:3]}")  # rather than undercount silently
    layers: list[Layer] = []
    names = {module: name for name, module in model.named_modules()}

    def record(module, inputs, output):
        name = names[module]
        layers.append(_count(module, name, _label(name, blocks or {}), tuple(output.shape[1:])))

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, COUNTED)]
    try:
        with torch.no_grad():
            model.eval()(torch.empty(1, *input_shape, device=_device_of(model)))
    finally:
        for hook in hooks:
            hook.remove()
    return Profile(network, tuple(input_shape), layers)


def _count(module: nn.Conv2d | nn.Linear | nn.BatchNorm2d, name: str, block: str, out: tuple[int, ...]) -> Layer:
    bias = module.bias.numel() if isinstance(module.bias, torch.Tensor) else 0
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        macs = _numel(out) * (module.in_channels // module.groups) * kh * kw
        binary = isinstance(module, BinaryConv2d)
        bitwise = binary and module.binary_input  # XNOR-popcount: 1-bit kernel and 1-bit input
        weights = module.weight.numel()
        return Layer(
            name=name,
            block=block,
            output_shape=out,
            kind=_conv_kind(module),
            binary=binary,
            params_1bit=weights if binary else 0,
            params_32bit=bias + (module.out_channels if binary else weights),
            bops=macs if bitwise else 0,
            flops=0 if bitwise else macs,
            real_input=binary and not bitwise,
        )
    if isinstance(module, nn.Linear):
        macs = _numel(out) * module.in_features
        return Layer(
            name=name,
            block=block,
            output_shape=out,
            kind="linear",
            binary=False,
            params_1bit=0,
            params_32bit=module.weight.numel() + bias,
            bops=0,
            flops=macs,
        )
    return Layer(
        name=name,
        block=block,
        output_shape=out,
        kind="batchnorm",
        binary=False,
        params_1bit=0,
        params_32bit=2 * module.num_features,
        bops=0,
        flops=0,
    )


def _conv_kind(conv: nn.Conv2d) -> str:
    kh, kw = conv.kernel_size
    parts = [f"conv {kh}x{kw}"]
    if conv.groups > 1:
        parts.append("dw" if conv.groups == conv.in_channels else f"g{conv.groups}")
    if conv.dilation[0] > 1:
        parts.append(f"dil {conv.dilation[0]}")
    if conv.stride[0] > 1:
        parts.append(f"/{conv.stride[0]}")
    return " ".join(parts)


def _label(name: str, blocks: dict[str, str]) -> str:
    matches = [p for p in blocks if name == p or name.startswith(p + ".")]
    return blocks[max(matches, key=len)] if matches else name.split(".")[0]


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _device_of(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def profile_eval_network(genotype: Genotype, spec: NetworkSpec, binary: bool = True) -> Profile:
    """The evaluation network of `genotype` (1-bit Child, or its full-precision twin), without the
    auxiliary tower: it only exists during training and is neither profiled nor exported."""
    spec = replace(spec, auxiliary=False)
    with torch.device("meta"):
        net = spec.build(genotype, binary)
    precision = "1-bit" if binary else "full precision"
    name = f"CP-NAS C={spec.channels}, {spec.cells} cells ({precision})"
    return profile_module(net, (spec.in_channels, spec.image_size, spec.image_size), name, cell_blocks(genotype, net))


def cell_blocks(genotype: Genotype, net: EvalNetwork) -> dict[str, str]:
    """Short labels for the parts of an EvalNetwork: "cell 3R" is a reduction cell, "in0"/"in1" its
    input preprocessing, "n4<-1 sep_conv_3x3" the edge from node 1 into node 4."""
    blocks = {"stem": "stem", "classifier": "classifier"}
    for i, cell in enumerate(net.cells):
        kind = "reduce" if cell.reduce else "normal"
        name = f"cell {i}{'R' if cell.reduce else ''}"
        blocks[f"cells.{i}.pre0"] = f"{name} in0"
        blocks[f"cells.{i}.pre1"] = f"{name} in1"
        for n, node in enumerate(genotype.cell(kind).nodes):
            for e, edge in enumerate(node):
                blocks[f"cells.{i}.ops.{n}.{e}"] = f"{name} n{n + 2}<-{edge.source} {edge.op}"
    return blocks


def report(profile: Profile, full_precision: Profile, reference: Profile) -> dict:
    """The JSON of `cpnas profile --json`: totals, the savings of Table 3 (against `reference`, WRN-22)
    and against the same network in full precision, and every layer."""
    against = {"full_precision": profile.against(full_precision), "wrn22": profile.against(reference)}
    return {
        **profile.summary(),
        "memory_saving": against["wrn22"]["memory_saving"],
        "speedup": against["wrn22"]["speedup"],
        "against": against,
        "layers": [layer.to_dict() for layer in profile.layers],
    }
