"""ctypes binding of the native 1-bit kernel library (`_cpnas_native.so`, built at install).

    available() -> bool, why_unavailable() -> str, isa() -> str
    pack_activations(x) -> PackedActivations          binarize + pack an NHWC float tensor
    BinaryConvPlan(weight, beta, stride=..., ..., bn_scale=..., bn_shift=..., output="float"|"bits")
        plan(x, residual=None, *, out=None)           one 1-bit conv layer with its fused epilogue
    Chain([plan.bound(n, h, w), ...])                 layer calls with fixed buffers, one C call

A plan packs its weights once; a call takes a float32 tensor in torch's channels_last layout
(NHWC in memory, used in place) or the PackedActivations that a previous plan emitted with
output="bits", and returns a channels_last float32 tensor or PackedActivations. The semantics
(exact integer acc, zero padding, the float op order of the epilogue) are in docs/native.md.

The ISA path is the best the CPU offers, or the one named by CPNAS_NATIVE_ISA
(portable|avx2|avx512), read at every call so tests can switch it. Threads: torch.get_num_threads().
"""

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import layouts

LIBRARY_PATH = Path(__file__).resolve().parent / "_cpnas_native.so"
ABI_VERSION = 3  # 2: the folded BatchNorm is one FMA; 3: 32-bit lane blocks, pairs, chains
ISAS = ("portable", "avx2", "avx512")
ISA_VARIABLE = "CPNAS_NATIVE_ISA"
_ERROR_ISA_NAME = -3  # dispatch.c: CPNAS_NATIVE_ISA is not exactly a path this CPU offers

_i32, _i64, _ptr = ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p


class _Conv(ctypes.Structure):
    """struct cpnas_conv of native.h, field for field."""

    _fields_ = [
        (name, _i32)
        for name in (
            "batch",
            "in_h",
            "in_w",
            "in_c",
            "out_h",
            "out_w",
            "out_c",
            "kernel_h",
            "kernel_w",
            "stride_h",
            "stride_w",
            "pad_h",
            "pad_w",
            "dil_h",
            "dil_w",
            "groups",
            "in_words",
            "out_words",
            "kernel",
            "masked",
            "group_in_c",
            "group_out_c",
            "n_blocks",
        )
    ] + [
        (name, _ptr)
        for name in (
            "block_hw_begin",
            "block_hw_count",
            "block_out",
            "block_lanes",
            "block_weight_offset",
            "block_mask_offset",
            "weights",
            "masks",
            "beta",
            "bn_scale",
            "bn_shift",
        )
    ]


class _Call(ctypes.Structure):
    """struct cpnas_call of native.h: one layer of a chain and its buffers."""

    _fields_ = [("conv", ctypes.POINTER(_Conv))] + [
        (name, _ptr) for name in ("x", "x_bits", "residual", "out", "out_bits")
    ]


def _load() -> tuple[ctypes.CDLL | None, str]:
    if not LIBRARY_PATH.exists():
        return None, f"{LIBRARY_PATH.name} was not built (reinstall with gcc, or: python -m {__package__}.build)"
    try:
        lib = ctypes.CDLL(str(LIBRARY_PATH))  # after torch: one libgomp.so.1 serves both
    except OSError as error:
        return None, f"{LIBRARY_PATH.name} does not load: {error}"
    if lib.cpnas_abi_version() != ABI_VERSION:
        return None, f"{LIBRARY_PATH.name} is stale (ABI {lib.cpnas_abi_version()}, want {ABI_VERSION}): rebuild it"
    lib.cpnas_isa_supported.argtypes = [ctypes.c_int]
    lib.cpnas_pack.argtypes = [ctypes.c_int, ctypes.c_int, _ptr, _i64, ctypes.c_int, _ptr]
    lib.cpnas_bconv.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Conv), _ptr, _ptr, _ptr, _ptr, _ptr]
    lib.cpnas_run.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Call)]
    return lib, ""


_LIB, _WHY = _load()
_BEST = ISAS[_LIB.cpnas_best_isa()] if _LIB is not None else ""
_SUPPORTED_INDEX = {name: index for index, name in enumerate(ISAS) if _LIB and _LIB.cpnas_isa_supported(index)}


def available() -> bool:
    return _LIB is not None


def why_unavailable() -> str:
    """One line saying why the native engine cannot run ("" when it can)."""
    return _WHY


def isa_supported(name: str) -> bool:
    return name in _SUPPORTED_INDEX


def isa() -> str:
    """The ISA path a call takes now: CPNAS_NATIVE_ISA if set (ValueError if this CPU lacks it),
    else the best this CPU offers."""
    return ISAS[_isa_index()]


def _isa_index() -> int:
    _lib()
    forced = os.environ.get(ISA_VARIABLE, "")
    if forced not in _SUPPORTED_INDEX:  # rare: unset (""), unknown, unsupported, or oddly spelt
        name = forced.strip().lower()
        if not name:
            return ISAS.index(_BEST)
        if name not in ISAS:
            raise ValueError(f"{ISA_VARIABLE}={forced!r}: expected one of {', '.join(ISAS)}")
        if not isa_supported(name):
            raise ValueError(f"{ISA_VARIABLE}={name}: this CPU does not offer it")
        return ISAS.index(name)
    return _SUPPORTED_INDEX[forced]


def _lib() -> ctypes.CDLL:
    if _LIB is None:
        raise RuntimeError(f"native kernels unavailable: {_WHY}")
    return _LIB


def _words(channels: int) -> int:
    return (channels + 63) // 64


@dataclass(frozen=True)
class PackedActivations:
    """Sign bits of an NHWC activation: `words` int64 [N, H, W, ceil(C/64)], channel c at bit
    c%64 of word c//64 (1 = +1), unused bits 0."""

    words: torch.Tensor
    channels: int

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, C, H, W), as the float tensor it stands for."""
        n, h, w, _ = self.words.shape
        return n, self.channels, h, w


def _check_nhwc(x: torch.Tensor, what: str) -> None:
    if (  # the common case first, in the cheapest checks torch offers (a layer call is a few us)
        isinstance(x, torch.Tensor)
        and x.dtype is torch.float32
        and x.is_cpu
        and x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        return
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.dim() != 4:
        raise ValueError(f"{what}: expected a 4-d float32 tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.device.type != "cpu" or not x.is_contiguous(memory_format=torch.channels_last):
        raise ValueError(f"{what}: expected a CPU tensor in channels_last memory format (NHWC)")


def pack_activations(x: torch.Tensor) -> PackedActivations:
    """Binarize (bit 1 where x >= 0) and pack a channels_last float32 [N, C, H, W] tensor."""
    _check_nhwc(x, "pack_activations")
    n, c, h, w = x.shape
    words = torch.empty((n, h, w, _words(c)), dtype=torch.int64)
    lib = _lib()
    status = lib.cpnas_pack(-1, torch.get_num_threads(), x.data_ptr(), n * h * w, c, words.data_ptr())
    if status:
        _fail(
            status,
            lambda isa: lib.cpnas_pack(isa, torch.get_num_threads(), x.data_ptr(), n * h * w, c, words.data_ptr()),
        )
    return PackedActivations(words, c)


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}")
    return pair


def _channel_vector(value, count: int, name: str) -> torch.Tensor | None:
    if value is None:
        return None
    vector = torch.as_tensor(value).detach().to(torch.float32).reshape(-1).contiguous()
    if vector.numel() != count:
        raise ValueError(f"{name}: expected {count} values (one per output channel), got {vector.numel()}")
    return vector


def _sign_bits(weight: torch.Tensor) -> np.ndarray:
    """sign(W) as bools, True = +1 (W >= 0, as hard_sign)."""
    return (weight.detach().to(torch.float32) >= 0).numpy()


class BinaryConvPlan:
    """One 1-bit conv layer ready to run: packed sign(W) in the layout its kernel reads
    (layouts.py), geometry and fused epilogue y = fma(acc * beta, bn_scale, bn_shift) [+ residual],
    as float32 NHWC or as packed bits.

    weight: float [out_c, in_c/groups, kh, kw] (only its signs are kept); beta: [out_c] or
    None (= 1, so y is the exact integer acc)."""

    def __init__(
        self,
        weight: torch.Tensor,
        beta=None,
        *,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bn_scale=None,
        bn_shift=None,
        output: str = "float",
    ):
        if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
            raise ValueError("weight: expected a 4-d tensor [out_c, in_c/groups, kh, kw]")
        if output not in ("float", "bits"):
            raise ValueError(f"output: expected 'float' or 'bits', got {output!r}")
        if (bn_scale is None) != (bn_shift is None):
            raise ValueError("bn_scale and bn_shift go together")
        out_c, group_in_c, kh, kw = weight.shape
        if not isinstance(groups, int) or groups < 1 or out_c % groups:
            raise ValueError(f"groups={groups!r} must be a positive divisor of out_c={out_c}")
        self.in_c, self.out_c, self.groups, self.kernel_size = group_in_c * groups, out_c, groups, (kh, kw)
        self.stride, self.padding, self.dilation = (
            _pair(stride, "stride"),
            _pair(padding, "padding"),
            _pair(dilation, "dilation"),
        )
        if min(self.stride + self.dilation) < 1 or min(self.padding) < 0:
            raise ValueError("stride and dilation must be >= 1 and padding >= 0")
        self.output = output
        self.beta = _channel_vector(torch.ones(out_c) if beta is None else beta, out_c, "beta")
        self.bn_scale, self.bn_shift = (
            _channel_vector(bn_scale, out_c, "bn_scale"),
            _channel_vector(bn_shift, out_c, "bn_shift"),
        )
        self._workspace: torch.Tensor | None = None
        self.kind = layouts.choose(self.in_c, out_c, groups, kh * kw)
        self.depthwise = self.kind == "depth-wise"
        # A 1x1 conv without padding packs its float input as it goes: no workspace.
        self.packs_input_first = self.depthwise or (kh, kw) != (1, 1) or self.padding != (0, 0)
        self._conv = _Conv(
            in_c=self.in_c,
            out_c=out_c,
            kernel_h=kh,
            kernel_w=kw,
            stride_h=self.stride[0],
            stride_w=self.stride[1],
            pad_h=self.padding[0],
            pad_w=self.padding[1],
            dil_h=self.dilation[0],
            dil_w=self.dilation[1],
            groups=groups,
            in_words=_words(self.in_c),
            out_words=_words(out_c),
            group_in_c=group_in_c,
            group_out_c=out_c // groups,
            kernel=layouts.KERNEL_CODES[self.kind],
        )
        self._arrays = self._hold(layouts.pack(_sign_bits(weight), groups, self.kind), kh * kw)
        self._conv_reference = ctypes.byref(self._conv)
        self._sizes: dict[tuple[int, int], tuple[int, int]] = {}  # (h, w) -> output (h, w)
        for name, vector in (("beta", self.beta), ("bn_scale", self.bn_scale), ("bn_shift", self.bn_shift)):
            setattr(self._conv, name, None if vector is None else vector.data_ptr())

    def _hold(self, layout: layouts.Layout, taps: int) -> dict[str, torch.Tensor]:
        """The layout's arrays as tensors this plan keeps, their addresses in the conv struct."""
        arrays = {"weights": torch.from_numpy(layout.weights.view(np.int64 if self.depthwise else np.int32).copy())}
        if layout.blocks:
            weight_offset, mask_offset = layouts.weight_offsets(layout, taps)
            arrays.update({f"block_{name}": torch.from_numpy(values) for name, values in layout.blocks.items()})
            arrays["block_weight_offset"] = torch.from_numpy(weight_offset.astype(np.int64))
            self._conv.n_blocks = len(weight_offset)
            if layout.masks is not None:
                arrays["masks"] = torch.from_numpy(layout.masks.view(np.int32).copy())
                arrays["block_mask_offset"] = torch.from_numpy(mask_offset.astype(np.int64))
        self._conv.masked = int(layout.masked)
        for name, tensor in arrays.items():
            setattr(self._conv, name, tensor.data_ptr())
        return arrays

    # --- running ---

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        return (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1

    def __call__(
        self,
        x: torch.Tensor | PackedActivations,
        residual: torch.Tensor | None = None,
        *,
        out: torch.Tensor | PackedActivations | None = None,
    ):
        """Run the layer on x. `out` (optional) is written in place and returned: a caller that
        reuses its buffers skips the page faults of a fresh large tensor on every call. The
        float input's packed bits go to a workspace the plan keeps (a plan is not thread-safe)."""
        n, c, h, w = x.shape
        if c != self.in_c:
            raise ValueError(f"input has {c} channels, the conv expects {self.in_c}")
        oh, ow = self._sizes.get((h, w)) or self._output_size_checked(h, w)
        x_float: int | None = None
        x_bits: int | None = None
        if isinstance(x, PackedActivations):
            _check_words(x, (n, h, w, _words(c)), "input")
            x_bits = x.words.data_ptr()
        else:
            _check_nhwc(x, "input")
            x_float = x.data_ptr()
            if self.packs_input_first:
                x_bits = self._input_workspace((n, h, w, _words(c))).data_ptr()
        if residual is not None:
            _check_nhwc(residual, "residual")
            if residual.shape != (n, self.out_c, oh, ow):
                raise ValueError(f"residual: expected shape {(n, self.out_c, oh, ow)}, got {tuple(residual.shape)}")
        result = self._output(out, n, oh, ow)
        bits_out = self.output == "bits"
        conv = self._conv
        conv.batch, conv.in_h, conv.in_w, conv.out_h, conv.out_w = n, h, w, oh, ow
        _run_bconv(
            self._conv_reference,
            x_float,
            x_bits,
            None if residual is None else residual.data_ptr(),
            None if bits_out else result.data_ptr(),  # type: ignore[union-attr]
            result.words.data_ptr() if bits_out else None,  # type: ignore[union-attr]
        )
        return result

    def _output_size_checked(self, h: int, w: int) -> tuple[int, int]:
        oh, ow = self.output_size(h, w)
        if oh < 1 or ow < 1:
            raise ValueError(f"input {h}x{w} is too small for this conv")
        self._sizes[h, w] = oh, ow
        return oh, ow

    def _input_workspace(self, shape: tuple[int, ...]) -> torch.Tensor:
        if self._workspace is None or self._workspace.shape != shape:
            self._workspace = torch.empty(shape, dtype=torch.int64)
        return self._workspace

    def _output(self, out, n: int, oh: int, ow: int) -> torch.Tensor | PackedActivations:
        if self.output == "float":
            if out is None:
                return torch.empty((n, self.out_c, oh, ow), memory_format=torch.channels_last)
            _check_nhwc(out, "out")
            if out.shape != (n, self.out_c, oh, ow):
                raise ValueError(f"out: expected shape {(n, self.out_c, oh, ow)}, got {tuple(out.shape)}")
            return out
        if out is None:
            return PackedActivations(torch.empty((n, oh, ow, _words(self.out_c)), dtype=torch.int64), self.out_c)
        if not isinstance(out, PackedActivations) or out.channels != self.out_c:
            raise ValueError(f"out: expected PackedActivations of {self.out_c} channels")
        _check_words(out, (n, oh, ow, _words(self.out_c)), "out")
        return out

    def bound(self, n: int, h: int, w: int) -> "_Conv":
        """A copy of the layer's struct with the geometry of an (n, in_c, h, w) input, for a Chain."""
        oh, ow = self.output_size(h, w)
        conv = _Conv.from_buffer_copy(self._conv)
        conv.batch, conv.in_h, conv.in_w, conv.out_h, conv.out_w = n, h, w, oh, ow
        return conv


class Chain:
    """Layer calls with fixed geometry and buffers, run in order by one C call (one parallel
    region): what a network executor uses instead of a Python call per layer. `calls[i]` has the
    fields of struct cpnas_call (addresses); set the ones that change between runs, then run()."""

    def __init__(self, convs: list[_Conv]):
        self.convs = convs  # kept alive: the calls point at them
        self.calls = (_Call * len(convs))()
        for call, conv in zip(self.calls, convs, strict=True):
            call.conv = ctypes.pointer(conv)

    def run(self) -> None:
        self._run(len(self.convs), self.calls)

    def run_one(self, index: int) -> None:
        """Call `index` alone (to time each layer)."""
        self._run(1, ctypes.byref(self.calls[index]))  # the element shares the array's memory

    @staticmethod
    def _run(count: int, calls) -> None:
        status = _lib().cpnas_run(-1, torch.get_num_threads(), count, calls)
        if status:
            _fail(status, lambda isa: _lib().cpnas_run(isa, torch.get_num_threads(), count, calls))


def _run_bconv(*args) -> None:
    lib = _lib()
    status = lib.cpnas_bconv(-1, torch.get_num_threads(), *args)
    if status:
        _fail(status, lambda isa: lib.cpnas_bconv(isa, torch.get_num_threads(), *args))


def _fail(status: int, retry) -> None:
    """A call returned an error: CPNAS_NATIVE_ISA spelt in a way only Python accepts (retried with
    the path it names), or a ValueError / RuntimeError that says what went wrong."""
    if status == _ERROR_ISA_NAME:
        status = retry(_isa_index())  # raises ValueError for an unknown or unsupported name
    if status:
        raise RuntimeError(f"native kernel call failed ({'out of memory' if status == -2 else status})")


def _check_words(packed: PackedActivations, shape: tuple[int, ...], what: str) -> None:
    words = packed.words
    if words.dtype is not torch.int64 or not words.is_contiguous() or words.shape != shape:
        raise ValueError(f"{what}: packed words must be a contiguous int64 tensor of shape {shape}")
