"""Checkpoints: safetensors weights + a JSON state, replaced atomically as a pair (never pickle).

The weights go to a new file named by a tag (the position in the run); only then is `state.json` atomically
replaced to point at it; only then are older weight files deleted. A process killed at any
moment leaves a state.json whose weights file exists and is complete.
"""

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cpnas_cli.errors import UserError
from cpnas_cli.runs import atomic_write_text, disk_errors, publish

STATE = "state.json"
VERSION = 1  # of state.json's layout; a state without one was written by version 1


def save_checkpoint(folder: Path, tensors: dict[str, torch.Tensor], state: dict, tag: str) -> None:
    """`tag` names the weights file; it must differ from the previous checkpoint's. A write that
    fails (a full disk) is a UserError naming the file, and the previous checkpoint stands."""
    weights = folder / f"weights-{tag}.safetensors"
    with disk_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(weights, tensors)
    atomic_write_text(folder / STATE, json.dumps({**state, "version": VERSION, "weights": weights.name}))
    for old in folder.glob("weights-*.safetensors"):
        if old != weights:
            old.unlink(missing_ok=True)


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Tensors (and string metadata) to `path` through a temp file renamed over it: a failed write
    (a full disk, a read-only place) is a UserError naming `path`, and the previous file stands."""
    tmp = path.with_name(f".{path.name}.tmp")
    with disk_errors(path, tmp, (OSError, SafetensorError)):  # safetensors reports a full disk its own way
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    publish(tmp, path)


def load_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, state); a missing or damaged checkpoint is a UserError."""
    state_file = folder / STATE
    if not state_file.is_file():
        raise UserError(
            f"no checkpoint in {folder}", "the run was interrupted before its first checkpoint: start it again"
        )
    try:
        state = json.loads(state_file.read_bytes())  # bytes: bad UTF-8 is a ValueError like bad JSON
        tensors = load_file(str(folder / _weights_name(state)))
    except (ValueError, KeyError, TypeError, FileNotFoundError, SafetensorError, OSError) as err:
        raise UserError(
            f"checkpoint in {folder} is damaged ({type(err).__name__})",
            "start the run again; the checkpoint cannot be resumed",
        ) from None
    if state.get("version", 1) != VERSION:
        raise UserError(
            f"{state_file} is of checkpoint version {state.get('version')!r}, this cpnas reads version {VERSION}",
            "resume it with the cpnas that wrote it, or start the run again",
        )
    return tensors, state


def _weights_name(state) -> str:
    """The weights file state.json points at: a plain name inside the checkpoint folder."""
    name = state["weights"]
    if not isinstance(name, str) or "/" in name or not name.endswith(".safetensors"):
        raise ValueError("weights is not a file name")
    return name
