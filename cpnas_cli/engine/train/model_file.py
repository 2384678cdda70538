"""Trained-model files: a safetensors file holding the Child's (and the Parent's) weights, with
the genotype and everything needed to rebuild the network in its metadata. Never pickle.

    tensors   child/<state_dict key>, parent/<state_dict key> (the Parent is optional)
    metadata  format = "cpnas-model", version, genotype (JSON), network (JSON: the EvalNetwork
              arguments and the Style), classes (JSON), dataset, plus free-form extras (JSON)

Version 2: the Child's 1-bit convs are exact, beta * (sign x ⊛ sign W) (binary.py). Version 1
files predate that: they trained and still run with the float formula sign x ⊛ beta·sign W
(NetworkSpec.exact = False), on the torch path only, with a `Notice` saying so.
"""

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from cpnas_cli.engine.nn.network import EvalNetwork, NetworkSpec
from cpnas_cli.engine.run.checkpoint import write_safetensors
from cpnas_cli.errors import Notice, UserError
from cpnas_cli.space import genotype as genotypes

FORMAT = "cpnas-model"
VERSION = 2
LEGACY_VERSION = 1  # the float 1-bit formula (module docstring)


def legacy_notice(path: Path) -> None:
    """The one-line `Notice` for a file of a version that predates exact 1-bit semantics."""
    warnings.warn(
        f"{path} predates exact 1-bit semantics (format version 1): it runs with its old float formula, "
        "on the torch path only",
        Notice,
        stacklevel=3,
    )


@dataclass
class ModelInfo:
    genotype: genotypes.Genotype
    spec: NetworkSpec
    class_names: list[str]
    dataset: str
    extras: dict = field(default_factory=dict)


def save_model(path: Path, info: ModelInfo, child: torch.nn.Module, parent: torch.nn.Module | None = None) -> None:
    """Write atomically (temp file + rename); version 2, or 1 for a Child of the old float formula."""
    tensors = {f"child/{k}": v for k, v in child.state_dict().items()}
    if parent is not None:
        tensors.update({f"parent/{k}": v for k, v in parent.state_dict().items()})
    metadata = {
        "format": FORMAT,
        "version": str(VERSION if info.spec.exact else LEGACY_VERSION),
        "genotype": json.dumps(genotypes.to_dict(info.genotype)),
        "network": json.dumps(info.spec.to_dict()),
        "classes": json.dumps(info.class_names),
        "dataset": info.dataset,
        "extras": json.dumps(info.extras),
    }
    write_safetensors(Path(path), tensors, metadata)


def read_safetensors(path: Path, format: str, noun: str, kind: str, fix: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """Metadata and tensors of a cpnas safetensors file whose metadata says `format`; a missing,
    truncated or foreign file is a UserError naming it (`noun` when missing, `kind` when foreign)."""
    if path.is_dir() or genotypes.holds_genotype(path):  # a genotype or a run given where a model goes
        raise _not_a_model(path, kind, fix)
    if not path.is_file():
        raise UserError(f"{noun} {path} not found", fix)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != format:
                raise UserError(f"{path} is not {kind}", fix)
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has keys(), no __iter__)
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise UserError(f"{path} is truncated or not a safetensors file ({type(err).__name__})", fix) from None
    return metadata, tensors


def _not_a_model(path: Path, kind: str, fix: str) -> UserError:
    """What was given instead of a model file (a training run, a search run, a genotype), and what to pass."""
    trained = [path / name for name in ("best.safetensors", "last.safetensors") if (path / name).is_file()]
    if trained:
        return UserError(f"{path} is a training run, not {kind}", f"pass its model file: {trained[0]}")
    if path.is_file() or (path / "genotype.json").is_file():
        what = "a genotype" if path.is_file() else "a search run"
        return UserError(f"{path} is {what}, not {kind}", f"train it first (cpnas train {path}), then {fix}")
    return UserError(f"{path} is a directory, not {kind}", fix)


def read_model(path: Path) -> tuple[ModelInfo, dict[str, torch.Tensor]]:
    """Metadata and raw tensors, validated; every problem is a UserError naming the file."""
    path = Path(path)
    fix = "pass a best.safetensors or last.safetensors written by `cpnas train`"
    metadata, tensors = read_safetensors(path, FORMAT, "checkpoint", "a cpnas model checkpoint", fix)
    version = metadata.get("version")
    if version not in (str(VERSION), str(LEGACY_VERSION)):
        raise UserError(
            f"{path} has model format version {version}, this cpnas reads {LEGACY_VERSION} and {VERSION}",
            "upgrade cpnas or retrain",
        )
    try:
        info = ModelInfo(
            genotype=genotypes.from_dict(json.loads(metadata["genotype"]), where=f"{path} genotype"),
            spec=NetworkSpec.from_dict(
                json.loads(metadata["network"]), version == str(VERSION), f"{path} network", fix
            ),
            class_names=json.loads(metadata["classes"]),
            dataset=metadata["dataset"],
            extras=json.loads(metadata.get("extras", "{}")),
        )
    except (KeyError, TypeError, json.JSONDecodeError):
        raise UserError(f"{path} has damaged cpnas metadata", fix) from None
    return info, tensors


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[ModelInfo, EvalNetwork, EvalNetwork | None]:
    """(info, Child, Parent or None), in eval mode on `device`; a version-1 file warns (`Notice`)."""
    info, tensors = read_model(path)
    if not info.spec.exact:
        legacy_notice(path)
    nets: list[EvalNetwork | None] = []
    for role, binary in (("child", True), ("parent", False)):
        state = {k[len(role) + 1 :]: v for k, v in tensors.items() if k.startswith(f"{role}/")}
        if not state:
            nets.append(None)
            continue
        net = info.spec.build(info.genotype, binary)
        try:
            net.load_state_dict(state)
        except RuntimeError:
            raise UserError(
                f"{path}: the {role} weights do not fit its genotype/network (edited file?)",
                "use the checkpoint as `cpnas train` wrote it",
            ) from None
        nets.append(net.to(device).eval())
    child, parent = nets
    if child is None:
        raise UserError(f"{path} holds no Child weights", "pass a checkpoint written by `cpnas train`")
    return info, child, parent
