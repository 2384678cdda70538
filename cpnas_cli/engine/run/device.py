"""Choosing the torch device from a config string."""

import torch

from cpnas_cli.errors import UserError


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """auto -> cuda when available, else cpu; cuda[:N] must exist. One rank of several
    (`local_rank`, torchrun's LOCAL_RANK) takes GPU local_rank for auto and cuda; cuda:N stays N."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}", "use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and device.index is None and local_rank is not None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        where = f"device {device}" if local_rank is None else f"device {device} (LOCAL_RANK {local_rank})"
        raise UserError(f"{where} is not available on this machine", "use --device cpu (or auto)")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"device type {device.type!r} is not supported", "use auto, cpu, cuda or cuda:N")
    return device
