"""Stable seeds derived from named parts, identical across processes, machines and Python versions.

Python's hash() of a str is salted per process, so it cannot derive seeds that must survive a
resume; sha256 over an unambiguous encoding of the parts can.
"""

import hashlib


def derive_seed(*parts: str | int) -> int:
    """A 63-bit non-negative int determined by `parts` (e.g. derive_seed(run_seed, "aug", epoch)).

    Each part is tagged with its type and length, so ("a", "bc") and ("ab", "c"), or 1 and "1",
    never collide by construction. 63 bits keep the result valid for torch.Generator.manual_seed
    and for signed int64 storage.
    """
    digest = hashlib.sha256()
    for part in parts:
        digest.update(_encode(part))
    return int.from_bytes(digest.digest()[:8], "big") >> 1


def _encode(part: str | int) -> bytes:
    if isinstance(part, int):
        text, tag = str(int(part)), "i"
    elif isinstance(part, str):
        text, tag = part, "s"
    else:
        raise TypeError(f"derive_seed takes str or int parts, got {type(part).__name__}")
    body = text.encode("utf-8")
    return f"{tag}{len(body)}:".encode() + body
