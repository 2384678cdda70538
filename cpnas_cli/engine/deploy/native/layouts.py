"""The weight layouts of the native kernels (native.h): sign(W) as bools in, packed arrays out.

    choose(in_c, out_c, groups, taps) -> "depth-wise" | "pairs" | "dense" | "window" | "masked"
    pack(bits, groups, kind) -> Layout

A weight block is up to 16 output channels ("lanes") side by side in 32-bit lanes, per tap and
per input halfword (32 input channels) of the halfwords the block reads, [tap][halfword][lane]:
- dense (groups = 1): every block reads all halfwords; the last block may hold fewer lanes, so a
  conv takes ceil(in_c / 32) * 32 bits per output channel and tap, no more.
- pairs (16 input channels per group, a multiple of 16 outputs per group; the CPU presets): a
  lane holds output `out` of group 2h in its low 16 bits and output `out + group_out_c` of group
  2h + 1 in its high 16 bits, both read halfword h: exactly the model file's bits.
- window (groups of whole halfwords, a multiple of 16 outputs per group): each block lies in one
  group and reads that group's halfwords only.
- masked (any other grouping): each lane keeps its group's bits at their positions in the
  halfwords its block touches, and a [halfword][lane] mask per block drops the rest.
- depth-wise (groups = in = out channels): [tap][word] uint64, packed along channels like the
  input, read by the byte-counter kernel (at most 255 taps).
Bits: 1 = +1 (W >= 0), channel c of a halfword at bit c % 32, little-endian, unused bits 0.
"""

from dataclasses import dataclass, field

import numpy as np

LANES = 16  # 32-bit lanes per block (native.h CPNAS_LANES_PER_BLOCK)
DEPTHWISE_MAX_TAPS = 255  # the depth-wise kernel counts in bytes
PAIRS_MAX_TAPS = 4095  # 16-bit counters: 16 channels x taps must stay below 2^16
KERNEL_CODES = {"dense": 0, "window": 0, "masked": 0, "depth-wise": 1, "pairs": 2}  # enum cpnas_kernel


@dataclass
class Layout:
    """What a kernel reads: the packed weights and, for the block kernels, the block table."""

    kind: str
    weights: np.ndarray  # uint32 blocks, or uint64 [tap][word] for depth-wise
    blocks: dict[str, np.ndarray] = field(default_factory=dict)  # hw_begin, hw_count, out, lanes (int32)
    masks: np.ndarray | None = None  # uint32, masked only

    @property
    def masked(self) -> bool:
        return self.masks is not None


def choose(in_c: int, out_c: int, groups: int, taps: int) -> str:
    group_in, group_out = in_c // groups, out_c // groups
    if groups == in_c == out_c and taps <= DEPTHWISE_MAX_TAPS:
        return "depth-wise"
    if groups == 1:
        return "dense"
    if group_in == 16 and group_out % 16 == 0 and taps <= PAIRS_MAX_TAPS:
        return "pairs"
    if group_in % 32 == 0 and group_out % 16 == 0:
        return "window"
    return "masked"


def pack(bits: np.ndarray, groups: int, kind: str) -> Layout:
    """bits: bool [out_c, in_c / groups, kh, kw], True = +1."""
    if kind == "depth-wise":
        return _depthwise(bits)
    if kind == "pairs":
        return _pairs(bits, groups)
    return _blocks(bits, groups, kind)


def _little_endian(bits: np.ndarray, width: int) -> np.ndarray:
    """Pack the last axis (a multiple of `width` bools) into little-endian words of `width` bits."""
    return np.packbits(bits, axis=-1, bitorder="little").view(f"<u{width // 8}")


def _depthwise(bits: np.ndarray) -> Layout:
    out_c = bits.shape[0]
    taps = bits[:, 0].reshape(out_c, -1).T  # [taps, c]
    padded = np.zeros((taps.shape[0], -(-out_c // 64) * 64), dtype=bool)
    padded[:, :out_c] = taps
    return Layout("depth-wise", _little_endian(padded, 64).reshape(-1).copy())


def _blocks(bits: np.ndarray, groups: int, kind: str) -> Layout:
    """dense, window and masked: blocks of 16 consecutive output channels."""
    out_c, group_in, kh, kw = bits.shape
    taps, group_out = kh * kw, out_c // groups
    in_hw = -(-group_in * groups // 32)
    channel = (np.arange(out_c) // group_out)[:, None] * group_in + np.arange(group_in)  # [out, group_in]
    positioned = np.zeros((out_c, taps, in_hw * 32), dtype=bool)
    lanes_index = np.arange(out_c)[:, None, None]
    positioned[lanes_index, np.arange(taps)[None, :, None], channel[:, None, :]] = bits.reshape(
        out_c, group_in, taps
    ).transpose(0, 2, 1)
    words = _little_endian(positioned, 32)  # [out, tap, halfword]
    mask = np.zeros((out_c, in_hw * 32), dtype=bool)
    mask[np.arange(out_c)[:, None], channel] = True
    mask_words = _little_endian(mask, 32)  # [out, halfword]
    table: dict[str, list[int]] = {"hw_begin": [], "hw_count": [], "out": [], "lanes": []}
    weight_parts, mask_parts = [], []
    for first_out in range(0, out_c, LANES):
        block = slice(first_out, min(first_out + LANES, out_c))
        used = channel[block]
        first, last = (0, in_hw) if kind == "dense" else (used.min() // 32, used.max() // 32 + 1)
        for name, value in zip(table, (first, last - first, first_out, block.stop - first_out), strict=True):
            table[name].append(value)
        weight_parts.append(words[block, :, first:last].transpose(1, 2, 0).reshape(-1))
        mask_parts.append(mask_words[block, first:last].T.reshape(-1))
    return Layout(
        kind,
        np.concatenate(weight_parts),
        {name: np.asarray(values, dtype=np.int32) for name, values in table.items()},
        np.concatenate(mask_parts) if kind == "masked" else None,
    )


def _pairs(bits: np.ndarray, groups: int) -> Layout:
    """Block (h, r): lane l = output 2h * m + 16r + l (low 16 bits) and the same of group 2h + 1
    (high 16 bits), m = outputs per group; an odd group count leaves the last high halves 0."""
    out_c, _, kh, kw = bits.shape
    taps, group_out = kh * kw, out_c // groups
    halves = _little_endian(bits.reshape(out_c, 16, taps).transpose(0, 2, 1), 16).reshape(groups, group_out, taps)
    if groups % 2:
        halves = np.concatenate([halves, np.zeros((1, group_out, taps), dtype=halves.dtype)])
    low, high = halves[0::2].astype(np.uint32), halves[1::2].astype(np.uint32)  # [h, m, taps]
    lanes = (low | high << 16).reshape(len(low), group_out // LANES, LANES, taps)  # [h, r, lane, tap]
    h, r = np.meshgrid(np.arange(len(low)), np.arange(group_out // LANES), indexing="ij")
    count = h.size
    return Layout(
        "pairs",
        lanes.transpose(0, 1, 3, 2).reshape(-1).copy(),  # per block [tap][lane]
        {
            "hw_begin": h.reshape(-1).astype(np.int32),
            "hw_count": np.ones(count, dtype=np.int32),
            "out": (2 * h * group_out + LANES * r).reshape(-1).astype(np.int32),
            "lanes": np.full(count, LANES, dtype=np.int32),
        },
    )


def weight_offsets(layout: Layout, taps: int) -> tuple[np.ndarray, np.ndarray]:
    """Each block's first weight and first mask (uint32 index), as the table orders them."""
    blocks = layout.blocks
    weights = taps * blocks["hw_count"].astype(np.int64) * blocks["lanes"]
    masks = blocks["hw_count"].astype(np.int64) * blocks["lanes"]
    return np.concatenate([[0], np.cumsum(weights)[:-1]]), np.concatenate([[0], np.cumsum(masks)[:-1]])
