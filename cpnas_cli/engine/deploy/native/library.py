"""ctypes binding of the native 1-bit kernel library (`_cpnas_native.so`, built at install).

    available() -> bool, why_unavailable() -> str, isa() -> str
    pack_activations(x) -> PackedActivations          binarize + pack an NHWC float tensor
    BinaryConvPlan(weight, beta, stride=..., ..., bn_scale=..., bn_shift=..., output="float"|"bits")
        plan(x, residual=None, *, out=None)           one 1-bit conv layer with its fused epilogue

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

LIBRARY_PATH = Path(__file__).resolve().parent / "_cpnas_native.so"
ABI_VERSION = 2  # 2: the folded BatchNorm is one FMA
ISAS = ("portable", "avx2", "avx512")
ISA_VARIABLE = "CPNAS_NATIVE_ISA"
BLOCK = 8  # output channels per block of the general kernel (native.h CPNAS_BLOCK)
DEPTHWISE_MAX_TAPS = 255  # the depth-wise kernel counts in bytes

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
            "n_blocks",
        )
    ] + [
        (name, _ptr)
        for name in (
            "block_word_begin",
            "block_word_count",
            "block_weight_offset",
            "block_mask_offset",
            "weights",
            "masks",
            "beta",
            "bn_scale",
            "bn_shift",
        )
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
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.dim() != 4:
        raise ValueError(f"{what}: expected a 4-d float32 tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.device.type != "cpu" or not x.is_contiguous(memory_format=torch.channels_last):
        raise ValueError(f"{what}: expected a CPU tensor in channels_last memory format (NHWC)")


def pack_activations(x: torch.Tensor) -> PackedActivations:
    """Binarize (bit 1 where x >= 0) and pack a channels_last float32 [N, C, H, W] tensor."""
    _check_nhwc(x, "pack_activations")
    n, c, h, w = x.shape
    words = torch.empty((n, h, w, _words(c)), dtype=torch.int64)
    status = _lib().cpnas_pack(_isa_index(), torch.get_num_threads(), x.data_ptr(), n * h * w, c, words.data_ptr())
    if status:
        raise RuntimeError(f"cpnas_pack failed ({status})")
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


def _pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack the last axis (a multiple of 64 bools) into little-endian uint64 words."""
    return np.packbits(bits, axis=-1, bitorder="little").view("<u8")


class BinaryConvPlan:
    """One 1-bit conv layer ready to run: packed sign(W), geometry and fused epilogue
    y = fma(acc * beta, bn_scale, bn_shift) [+ residual], as float32 NHWC or as packed bits.

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
        self.depthwise = groups == self.in_c == out_c and kh * kw <= DEPTHWISE_MAX_TAPS
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
        )
        bits = _sign_bits(weight)
        self._arrays = self._pack_depthwise(bits) if self.depthwise else self._pack_general(bits)
        self._conv.kernel = int(self.depthwise)
        for name, vector in (("beta", self.beta), ("bn_scale", self.bn_scale), ("bn_shift", self.bn_shift)):
            setattr(self._conv, name, None if vector is None else vector.data_ptr())

    # --- weight layouts (native.h) ---

    def _pack_depthwise(self, bits: np.ndarray) -> dict[str, torch.Tensor]:
        """[tap][in_words]: tap t's weight of channel c at bit c%64 of word c//64."""
        taps = bits[:, 0].reshape(self.out_c, -1).T  # [taps, c]
        padded = np.zeros((taps.shape[0], self._conv.in_words * 64), dtype=bool)
        padded[:, : self.out_c] = taps
        weights = torch.from_numpy(_pack_bits(padded).astype(np.int64).copy())
        self._conv.weights = weights.data_ptr()
        return {"weights": weights}

    def _pack_general(self, bits: np.ndarray) -> dict[str, torch.Tensor]:
        """Blocks of 8 output channels; each lane's weights sit at its group's input bit
        positions; a block spans the words its lanes' groups touch: [tap][word][lane]."""
        out_c, group_in_c, kh, kw = bits.shape
        taps, in_bits = kh * kw, self._conv.in_words * 64
        n_blocks = -(-out_c // BLOCK)
        group = np.arange(n_blocks * BLOCK) // (out_c // self.groups)
        live = np.arange(n_blocks * BLOCK) < out_c
        channel = group[:, None] * group_in_c + np.arange(group_in_c)  # [lane, group_in_c]
        positioned = np.zeros((n_blocks * BLOCK, taps, in_bits), dtype=bool)
        lanes = np.arange(out_c)
        positioned[lanes[:, None, None], np.arange(taps)[None, :, None], channel[:out_c, None, :]] = bits.reshape(
            out_c, group_in_c, taps
        ).transpose(0, 2, 1)
        mask = np.zeros((n_blocks * BLOCK, in_bits), dtype=bool)
        mask[lanes[:, None], channel[:out_c]] = True
        words, mask_words = _pack_bits(positioned), _pack_bits(mask)  # [lane, tap, word], [lane, word]
        begin, count, weight_parts, mask_parts = [], [], [], []
        for b in range(n_blocks):
            block = slice(b * BLOCK, (b + 1) * BLOCK)
            used = channel[block][live[block]]
            first, last = used.min() // 64, used.max() // 64 + 1
            begin.append(first)
            count.append(last - first)
            weight_parts.append(words[block, :, first:last].transpose(1, 2, 0).reshape(-1))
            mask_parts.append(mask_words[block, first:last].T.reshape(-1))
        arrays = {
            "block_word_begin": torch.tensor(begin, dtype=torch.int32),
            "block_word_count": torch.tensor(count, dtype=torch.int32),
            "block_weight_offset": torch.tensor(
                np.cumsum([0] + [p.size for p in weight_parts[:-1]]), dtype=torch.int64
            ),
            "block_mask_offset": torch.tensor(np.cumsum([0] + [p.size for p in mask_parts[:-1]]), dtype=torch.int64),
            "weights": torch.from_numpy(np.concatenate(weight_parts).astype(np.int64)),
            "masks": torch.from_numpy(np.concatenate(mask_parts).astype(np.int64)),
        }
        if self.groups == 1:  # dense: the kernels read no mask (unused bits are 0 on both sides)
            del arrays["masks"], arrays["block_mask_offset"]
        for name, tensor in arrays.items():
            setattr(self._conv, name, tensor.data_ptr())
        self._conv.n_blocks, self._conv.masked = n_blocks, int(self.groups > 1)
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
        oh, ow = self.output_size(h, w)
        if oh < 1 or ow < 1:
            raise ValueError(f"input {h}x{w} is too small for this conv")
        if isinstance(x, PackedActivations):
            _check_words(x, (n, h, w, _words(c)), "input")
            x_float, x_bits = None, x.words
        else:
            _check_nhwc(x, "input")
            x_float, x_bits = x, self._input_workspace((n, h, w, _words(c)))
        if residual is not None:
            _check_nhwc(residual, "residual")
            if tuple(residual.shape) != (n, self.out_c, oh, ow):
                raise ValueError(f"residual: expected shape {(n, self.out_c, oh, ow)}, got {tuple(residual.shape)}")
        result = self._output(out, n, oh, ow)
        out_float = result if isinstance(result, torch.Tensor) else None
        out_bits = result.words if isinstance(result, PackedActivations) else None
        conv = self._conv
        conv.batch, conv.in_h, conv.in_w, conv.out_h, conv.out_w = n, h, w, oh, ow
        status = _lib().cpnas_bconv(
            _isa_index(),
            torch.get_num_threads(),
            ctypes.byref(conv),
            _address(x_float),
            x_bits.data_ptr(),
            _address(residual),
            _address(out_float),
            _address(out_bits),
        )
        if status:
            raise RuntimeError(f"cpnas_bconv failed ({status})")
        return result

    def _input_workspace(self, shape: tuple[int, ...]) -> torch.Tensor:
        if self._workspace is None or tuple(self._workspace.shape) != shape:
            self._workspace = torch.empty(shape, dtype=torch.int64)
        return self._workspace

    def _output(self, out, n: int, oh: int, ow: int) -> torch.Tensor | PackedActivations:
        if self.output == "float":
            if out is None:
                return torch.empty((n, self.out_c, oh, ow), memory_format=torch.channels_last)
            _check_nhwc(out, "out")
            if tuple(out.shape) != (n, self.out_c, oh, ow):
                raise ValueError(f"out: expected shape {(n, self.out_c, oh, ow)}, got {tuple(out.shape)}")
            return out
        if out is None:
            return PackedActivations(torch.empty((n, oh, ow, _words(self.out_c)), dtype=torch.int64), self.out_c)
        if not isinstance(out, PackedActivations) or out.channels != self.out_c:
            raise ValueError(f"out: expected PackedActivations of {self.out_c} channels")
        _check_words(out, (n, oh, ow, _words(self.out_c)), "out")
        return out


def _check_words(packed: PackedActivations, shape: tuple[int, ...], what: str) -> None:
    words = packed.words
    if words.dtype != torch.int64 or not words.is_contiguous() or tuple(words.shape) != shape:
        raise ValueError(f"{what}: packed words must be a contiguous int64 tensor of shape {shape}")


def _address(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()
