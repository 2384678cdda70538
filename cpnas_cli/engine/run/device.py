"""Choosing the torch device from a config string."""

import torch

from cpnas_cli.errors import UserError


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu; cuda[:N] must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}", "use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise UserError(f"device {name} is not available on this machine", "use --device cpu (or auto)")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"device type {device.type!r} is not supported", "use auto, cpu, cuda or cuda:N")
    return device
