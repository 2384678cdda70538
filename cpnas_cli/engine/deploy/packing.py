"""The deployable 1-bit model (`model.cpnas`): sign bits packed 8 to a byte, BatchNorm folded,
and a plain-torch loader that reproduces the trained Child's outputs.

File: safetensors, tensors named by the Child's module paths (auxiliary tower dropped):
    <conv>.bits    uint8, 1 bit per weight of a 1-bit conv: bit i of byte k is the sign of the
                   flattened (out, in/groups, kh, kw) kernel's element 8k+i; 1 = +1, 0 = -1
    <conv>.beta    float32 [out], the conv's scale (mean |W| per output channel, Eq. 3's Ĥ = beta·sign(W))
    <bn>.scale, <bn>.shift    float32 [C]: y = x·scale + shift (running stats and affine folded)
    <fp>.weight, <fp>.bias    the full-precision stem convs and the classifier, as trained
metadata: format, version, manifest (JSON: input, classes, normalization, network), genotype (JSON).

Version 2: a 1-bit conv runs as a bit engine computes it, beta * (sign x ⊛ sign W)
(binary.binary_conv2d): the ±1 convolution is exact integer arithmetic, beta one multiply after it.
The packed conv holds the bits, their ±1 signs and beta, no float beta·sign(W) kernel. With BN
folded exactly as ATen's CPU kernel does (scale = weight·rsqrt(var+eps), shift = bias - mean·scale,
y = x·scale + shift fused), the packed network computes the trained Child's floats bit for bit.

Version 1 files (packed from version-1 checkpoints) hold the same tensors but predate exact
semantics: they run the old float formula, sign x ⊛ beta·sign(W), whose float sums of ±beta leave
a residue of either sign where the integer sum is 0; they load with a `Notice` (model_file).
"""

import json
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from cpnas_cli.engine.nn.binary import BinaryConv2d, binary_conv2d, exact_scale, hard_sign
from cpnas_cli.engine.nn.layers import conv2d
from cpnas_cli.engine.nn.network import EvalNetwork, NetworkSpec
from cpnas_cli.engine.run.checkpoint import write_safetensors
from cpnas_cli.engine.train.model_file import ModelInfo, legacy_notice, load_model, read_safetensors
from cpnas_cli.errors import UserError
from cpnas_cli.space import genotype as genotypes

from .profile import profile_eval_network

FORMAT = "cpnas-packed"
VERSION = 2
LEGACY_VERSION = 1  # the float 1-bit formula (module docstring)
NORMALIZATION = {"formula": "x = pixel / 127.5 - 1 (uint8 pixels, every channel)", "scale": 1 / 127.5, "offset": -1.0}
BIT_WEIGHTS = torch.tensor([1 << i for i in range(8)], dtype=torch.uint8)


# --- bits -----------------------------------------------------------------------------------


def pack_signs(weight: torch.Tensor) -> torch.Tensor:
    """sign(W) (sign(0) = +1) as bits, 8 per byte, little-endian within a byte; the last byte is
    zero-padded."""
    bits = (hard_sign(weight.detach().flatten()) > 0).to(torch.uint8)
    bits = F.pad(bits, (0, -bits.numel() % 8)).view(-1, 8)
    return (bits * BIT_WEIGHTS.to(bits.device)).sum(dim=1, dtype=torch.uint8)


def unpack_signs(packed: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """The ±1 float32 tensor of `shape` that `pack_signs` packed."""
    count = math.prod(shape)
    bits = packed.view(-1, 1).bitwise_and(BIT_WEIGHTS.to(packed.device)).ne(0).flatten()[:count]
    return bits.to(torch.float32).mul_(2).sub_(1).view(shape)


def fold_batchnorm(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with bn(x) == x·scale + shift in eval mode, computed as ATen's CPU kernel does."""
    if bn.running_var is None or bn.running_mean is None:
        raise ValueError("folding a BatchNorm needs its running statistics (track_running_stats=True)")
    var, mean = bn.running_var.detach(), bn.running_mean.detach()
    weight = bn.weight.detach() if bn.weight is not None else torch.ones_like(var)
    bias = bn.bias.detach() if bn.bias is not None else torch.zeros_like(var)
    scale = torch.rsqrt(var + bn.eps) * weight
    return scale, torch.addcmul(bias, mean, scale, value=-1)


# --- packed modules -------------------------------------------------------------------------


class PackedBinaryConv2d(nn.Module):
    """A 1-bit conv held as packed sign bits and beta; runs as the Child's BinaryConv2d does
    (exact: beta * (sign x ⊛ signs); `exact=False`: a version-1 file's float formula).
    `like` is the conv (of the meta-device skeleton) whose shape and geometry it takes."""

    bits: torch.Tensor  # buffers, registered in __init__
    beta: torch.Tensor
    bias: torch.Tensor | None
    signs: torch.Tensor  # exact: the ±1 kernel, unpacked once for torch's convolution
    kernel: torch.Tensor  # version 1: beta·(±1)

    def __init__(
        self,
        like: nn.Conv2d,
        bits: torch.Tensor,
        beta: torch.Tensor,
        bias: torch.Tensor | None = None,
        exact: bool = True,
    ):
        super().__init__()
        self.stride, self.padding, self.dilation, self.groups = like.stride, like.padding, like.dilation, like.groups
        self.binary_input = getattr(like, "binary_input", True)  # False: CP-NAS*/** real-valued input
        shape = like.weight.shape
        if bits.dtype != torch.uint8 or bits.numel() != math.ceil(math.prod(shape) / 8) or beta.shape != shape[:1]:
            raise ValueError(f"packed conv tensors do not fit a {tuple(shape)} kernel")
        self.register_buffer("bits", bits)
        self.register_buffer("beta", beta)
        self.register_buffer("bias", bias)
        self.exact = exact
        signs = unpack_signs(bits, shape)  # ±1, unpacked once for torch's float convolution
        if exact:
            self.register_buffer("signs", signs, persistent=False)
        else:  # version 1: beta·(±1) is exact, so this equals the old Child's reconstructed kernel
            self.register_buffer("kernel", beta.view(-1, 1, 1, 1) * signs, persistent=False)

    def forward(self, x):
        geometry = (self.stride, self.padding, self.dilation, self.groups)
        x = hard_sign(x) if self.binary_input else x
        if not self.exact:
            return conv2d(x, self.kernel, self.bias, *geometry)
        return binary_conv2d(x, self.signs, self.beta, self.bias, *geometry)


class FoldedBatchNorm2d(nn.Module):
    """Eval-mode BatchNorm as one per-channel affine map."""

    scale: torch.Tensor  # buffers, registered in __init__
    shift: torch.Tensor

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor):
        super().__init__()
        if scale.dim() != 1 or scale.shape != shift.shape:
            raise ValueError("folded BatchNorm needs 1-D scale and shift of equal length")
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, x):
        return folded_affine(x, self.scale, self.shift)


def folded_affine(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """x * scale + shift per channel as ATen's eval BatchNorm rounds it (one fused op), so a folded
    BN gives the trained network's floats bit for bit."""
    return torch.addcmul(shift.view(1, -1, 1, 1), x, scale.view(1, -1, 1, 1))


# --- the file -------------------------------------------------------------------------------


def packed_tensors(child: EvalNetwork) -> dict[str, torch.Tensor]:
    """Everything the deployed Child needs, by module path: bits and beta of the 1-bit convs,
    folded BatchNorms, full-precision weights. The auxiliary tower is left out."""
    tensors, covered = {}, set()
    for name, module in child.named_modules():
        if name.split(".")[0] == "auxiliary":
            continue
        if isinstance(module, nn.BatchNorm2d):
            tensors[f"{name}.scale"], tensors[f"{name}.shift"] = fold_batchnorm(module)
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            weight = module.weight.detach()
            if isinstance(module, BinaryConv2d):
                tensors[f"{name}.bits"] = pack_signs(weight)
                tensors[f"{name}.beta"] = exact_scale(weight).flatten()
            else:
                tensors[f"{name}.weight"] = weight
            if module.bias is not None:
                tensors[f"{name}.bias"] = module.bias.detach()
        else:
            continue
        covered |= {f"{name}.{p}" for p, _ in module.named_parameters()}
    missed = [p for p, _ in child.named_parameters() if p.split(".")[0] != "auxiliary" and p not in covered]
    if missed:
        raise ValueError(f"cannot pack parameters {missed[:3]}: no packed form for their modules")
    return {k: v.contiguous().cpu() for k, v in tensors.items()}


def manifest(info: ModelInfo, source: str = "") -> dict:
    """What a deployment needs to feed the network and read its output."""
    spec = info.spec
    return {
        "format": FORMAT,
        "version": VERSION if spec.exact else LEGACY_VERSION,
        "input": {
            "channels": spec.in_channels,
            "height": spec.image_size,
            "width": spec.image_size,
            "layout": "NCHW",
            "dtype": "float32",
        },
        "normalization": NORMALIZATION,
        "classes": info.class_names,
        "dataset": info.dataset,
        "extras": info.extras,
        "network": {**spec.to_dict(), "auxiliary": False},
        "bits": "1 bit per 1-bit conv weight, 8 per byte, bit i of byte k = weight 8k+i of the flattened "
        "kernel, 1 = +1; inputs of 1-bit convs are sign(x), sign(0) = +1, except the real-valued inputs "
        "network.real_depthwise / real_preprocess name (CP-NAS*, CP-NAS**); "
        + (
            "output = beta[out] * (sign(x) conv ±1 kernel), the integer sum first, zero padding"
            if spec.exact
            else "kernel = beta[out] * (±1) convolved in float32 (version 1)"
        ),
        "source": source,
    }


def write_packed(path: Path, info: ModelInfo, child: EvalNetwork, source: str = "") -> None:
    """Write the deployable model atomically (temp file + rename); version 2, or 1 for a Child of the
    old float formula (packed from a version-1 checkpoint)."""
    path = Path(path)
    metadata = {
        "format": FORMAT,
        "version": str(VERSION if info.spec.exact else LEGACY_VERSION),
        "manifest": json.dumps(manifest(info, source)),
        "genotype": json.dumps(genotypes.to_dict(info.genotype)),
    }
    write_safetensors(path, packed_tensors(child), metadata)


def load_packed(path: Path, device: torch.device | str = "cpu") -> tuple[ModelInfo, EvalNetwork]:
    """(info, network) of a model.cpnas, in eval mode; network(x) returns (logits, None, features)
    like a trained Child, with x normalized as the manifest says."""
    path = Path(path)
    info, tensors = read_packed(path)
    if not info.spec.exact:
        legacy_notice(path)
    with torch.device("meta"):
        net = info.spec.build(info.genotype, binary=True)
    try:
        for name, module in list(net.named_modules()):
            if isinstance(module, BinaryConv2d):
                _replace(
                    net,
                    name,
                    PackedBinaryConv2d(
                        module,
                        tensors[f"{name}.bits"],
                        tensors[f"{name}.beta"],
                        tensors.get(f"{name}.bias"),
                        exact=info.spec.exact,
                    ),
                )
            elif isinstance(module, nn.BatchNorm2d):
                _replace(net, name, FoldedBatchNorm2d(tensors[f"{name}.scale"], tensors[f"{name}.shift"]))
        net.load_state_dict(tensors, strict=True, assign=True)
    except (KeyError, ValueError, RuntimeError):
        raise UserError(
            f"{path}: its tensors do not fit its genotype/network (edited file?)",
            "export it again with `cpnas export <checkpoint> model.cpnas`",
        ) from None
    return info, net.to(device).eval()


def _replace(net: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(net.get_submodule(parent), leaf, module)


def read_packed(path: Path) -> tuple[ModelInfo, dict[str, torch.Tensor]]:
    """Manifest and tensors, validated; every problem is a UserError naming the file."""
    fix = "pass a model.cpnas written by `cpnas export <checkpoint> model.cpnas`"
    metadata, tensors = read_safetensors(path, FORMAT, "packed model", "a cpnas packed model", fix)
    version = metadata.get("version")
    if version not in (str(VERSION), str(LEGACY_VERSION)):
        raise UserError(
            f"{path} has packed-model version {version}, this cpnas reads {LEGACY_VERSION} and {VERSION}",
            "upgrade cpnas or export again",
        )
    try:
        data = json.loads(metadata["manifest"])
        info = ModelInfo(
            genotype=genotypes.from_dict(json.loads(metadata["genotype"]), where=f"{path} genotype"),
            spec=NetworkSpec.from_dict(data["network"], version == str(VERSION), f"{path} network", fix),
            class_names=data["classes"],
            dataset=data["dataset"],
            extras=data.get("extras", {}),
        )
    except (KeyError, TypeError, json.JSONDecodeError):
        raise UserError(f"{path} has a damaged manifest", fix) from None
    return info, tensors


def file_figures(path: Path, memory_bits: int) -> dict:
    """Bytes of a packed file beside `memory_bits`, the memory `cpnas profile` counts for its network:
    the file is an 8-byte length, a JSON header (tensor names and shapes, manifest, genotype) and the
    data, which differs from the profile's figure only by each bit tensor's padding to whole bytes."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        header = 8 + int.from_bytes(f.read(8), "little")
    return {
        "file_bytes": size,
        "header_bytes": header,
        "data_bytes": size - header,
        "profile_memory_bits": memory_bits,
        "profile_bytes": memory_bits / 8,
        "data_minus_profile_bytes": size - header - memory_bits / 8,
    }


def pack_checkpoint(checkpoint: Path, output: Path) -> dict:
    """Pack the Child of a trained checkpoint into `output`; return `file_figures` for it."""
    info, child, _ = load_model(checkpoint)
    write_packed(output, info, child, source=str(checkpoint))
    return file_figures(output, profile_eval_network(info.genotype, info.spec).memory_bits)
