"""The IDX file format of (Fashion-)MNIST: read with validation, write for the embedded sample.

Layout: a 4-byte magic 0x00 0x00 <type> <ndim> (type 0x08 = unsigned byte; ndim 1 for labels,
3 for images), ndim big-endian uint32 sizes, then the bytes row-major. Files may be gzipped;
gzip is recognised by its magic bytes, not by the file name.
"""

import gzip
import math
import struct
import zlib
from pathlib import Path

import torch

from cpnas_cli.errors import UserError

UBYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: Path, ndim: int, fix: str) -> torch.Tensor:
    """The uint8 tensor stored in `path`, which must hold `ndim` dimensions; UserError (with `fix`) if not."""
    data = _read_bytes(path, fix)
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise UserError(f"{path} is truncated (only {len(data)} bytes, not even an IDX header)", fix)
    zero, dtype, found_ndim = struct.unpack_from(">HBB", data)
    if zero != 0 or dtype != UBYTE or found_ndim != ndim:
        expected = 0x0800 | ndim
        raise UserError(
            f"{path} is not an IDX file of {ndim}-D unsigned bytes "
            f"(magic 0x{data[:4].hex()}, expected 0x0000{expected:04x})",
            fix,
        )
    dims = struct.unpack_from(f">{ndim}I", data, 4)
    if 0 in dims:  # torch.frombuffer cannot view an empty buffer, and no data is no dataset
        raise UserError(f"{path} holds no data (dims {dims})", fix)
    expected_len = header_len + math.prod(dims)
    if len(data) != expected_len:
        state = "truncated" if len(data) < expected_len else "longer than its header says"
        raise UserError(f"{path} is {state} ({len(data)} bytes, expected {expected_len} for dims {dims})", fix)
    # bytearray is writable, so torch.frombuffer shares it without a warning or another copy.
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header_len).view(dims)


def write_idx(path: Path, array: torch.Tensor) -> None:
    """Write a uint8 tensor as gzipped IDX; mtime=0 so identical contents give identical bytes."""
    header = struct.pack(f">HBB{array.dim()}I", 0, UBYTE, array.dim(), *array.shape)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as out:
        out.write(header)
        out.write(array.contiguous().numpy().tobytes())


def _read_bytes(path: Path, fix: str) -> bytes:
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if data.startswith(GZIP_MAGIC) else data
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise UserError(f"{path} is a damaged gzip file ({err})", fix) from err
    except OSError as err:
        raise UserError(f"cannot read {path} ({err.strerror or err})", fix) from err
