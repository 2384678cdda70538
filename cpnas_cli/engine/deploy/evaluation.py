"""Test-set metrics of trained networks (top-1, top-5, per-class accuracy, confusion matrix), and
the evaluation of a model file written by `cpnas train` (or packed by `cpnas export`) on its (or
another) dataset, a packed model on the native 1-bit engine where it is built (or on torch)."""

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from cpnas_cli import data as datasets
from cpnas_cli.engine.train.model_file import load_model
from cpnas_cli.errors import Notice, UserError

from .native import library
from .packing import load_packed, read_packed

ENGINES = ("native", "torch")


@dataclass
class Metrics:
    n_images: int
    top1: float  # percent
    top5: float | None  # percent; None with 5 classes or fewer (it would be trivially high)
    per_class: dict[str, float]  # class name -> percent of its images classified right
    confusion: list[list[int]]  # [true class][predicted class] -> images

    def to_dict(self) -> dict:
        return {
            "n_images": self.n_images,
            "top1": self.top1,
            "top5": self.top5,
            "per_class": self.per_class,
            "confusion": self.confusion,
        }


@torch.no_grad()
def measure(nets: Mapping[str, torch.nn.Module], batches, class_names: list[str]) -> dict[str, Metrics]:
    """Metrics of each network (in eval mode) over the same (x, y) batches."""
    k = len(class_names)
    confusion = {role: torch.zeros(k, k, dtype=torch.int64) for role in nets}
    top5 = dict.fromkeys(nets, 0)
    for net in nets.values():
        net.eval()
    for x, y in batches:
        for role, net in nets.items():
            logits = net(x)[0]
            pairs = y.cpu() * k + logits.argmax(1).cpu()
            confusion[role] += torch.bincount(pairs, minlength=k * k).view(k, k)
            if k > 5:
                top5[role] += (logits.topk(5, dim=1).indices == y[:, None]).any(1).sum().item()
    return {role: _metrics(confusion[role], top5[role] if k > 5 else None, class_names) for role in nets}


def _metrics(confusion: torch.Tensor, top5_correct: int | None, class_names: list[str]) -> Metrics:
    n = int(confusion.sum())
    per_class_n = confusion.sum(1).clamp(min=1)
    per_class = (100.0 * confusion.diagonal() / per_class_n).tolist()
    return Metrics(
        n_images=n,
        top1=round(100.0 * int(confusion.diagonal().sum()) / max(n, 1), 2),
        top5=None if top5_correct is None else round(100.0 * top5_correct / max(n, 1), 2),
        per_class={name: round(acc, 2) for name, acc in zip(class_names, per_class, strict=True)},
        confusion=confusion.tolist(),
    )


@dataclass
class Report:
    checkpoint: str
    dataset: str
    class_names: list[str]
    results: dict[str, Metrics]  # "child" and, when the file has one, "parent"
    engine: str = "torch"  # what ran the Child: "torch" or "native (<ISA path>)"
    memory: dict | None = None  # native: bytes held (weights, activations at `batch`) and the file's

    @property
    def n_images(self) -> int:
        return self.results["child"].n_images

    def to_dict(self) -> dict:
        """The Child's metrics at the top level, each network's under its role (parent: null if absent)."""
        child = self.results["child"].to_dict()
        parent = self.results.get("parent")
        return {
            "checkpoint": self.checkpoint,
            "dataset": self.dataset,
            "classes": self.class_names,
            "engine": self.engine,
            "memory": self.memory,
            **child,
            "child": child,
            "parent": parent.to_dict() if parent else None,
        }


class _NativeChild(torch.nn.Module):
    """The native network with a Child's call signature: net(x)[0] is the logits."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, x):
        return (self.network(x),)


def choose_engine(path: Path, engine: str | None, device: torch.device) -> str:
    """ "native" or "torch" for this file: the native engine by default where it is built and can
    run the file; asked for explicitly where it cannot, a UserError that says why."""
    packed = Path(path).suffix == ".cpnas"
    if engine not in (None, *ENGINES):
        raise UserError(f"--engine {engine}: expected one of {', '.join(ENGINES)}", "use --engine native or torch")
    if engine == "torch" or (engine is None and (not packed or device.type != "cpu")):
        return "torch"
    if packed and read_packed(Path(path))[0].spec.real_inputs:
        why = f"{path} feeds real-valued activations into 1-bit convs (CP-NAS*/**), which the native engine cannot"
        if engine is None:
            warnings.warn(f"{why}: evaluating on torch", Notice, 2)
            return "torch"
        raise UserError(why, "use --engine torch")
    if engine is None and not library.available():
        warnings.warn(f"native engine unavailable, evaluating on torch: {library.why_unavailable()}", Notice, 2)
        return "torch"
    if not packed:
        raise UserError(
            f"{path} is a training checkpoint; the native engine runs packed models",
            f"export it with cpnas export {path} model.cpnas, or use --engine torch",
        )
    if not library.available():
        raise UserError(f"--engine native: {library.why_unavailable()}", "or use --engine torch")
    if device.type != "cpu":
        raise UserError(f"--engine native runs on the CPU, not {device}", "use --device cpu, or --engine torch")
    if not read_packed(Path(path))[0].spec.exact:
        if engine is None:
            return "torch"  # load_packed says why, in its notice
        raise UserError(
            f"{path} predates exact 1-bit semantics (format version 1): it runs on the torch engine only",
            "use --engine torch, or export a model trained with this cpnas",
        )
    return "native"


def load_networks(path: Path, engine: str | None, device: torch.device) -> tuple:
    """(ModelInfo, {"child": net[, "parent": net]}, what runs the Child) for the engine
    `choose_engine` picks. The networks keep the contiguous weight layout they load in, unlike
    training's channels_last: with channels_last weights oneDNN picks another stem-conv kernel for
    large batches than for one image, 1 ulp apart, enough to flip a sign at a 1-bit conv's input
    (1 of the 10,000 Fashion-MNIST test labels at batch 500 against batch 1, README). So a model
    evaluates to the same logits at any batch size, on either engine, as the C export computes
    one image at a time."""
    engine = choose_engine(path, engine, device)
    if engine == "native":
        from .native.network import NativeNetwork

        info, network = NativeNetwork.from_packed(path)
        return info, {"child": _NativeChild(network)}, f"native ({library.isa()})"
    if path.suffix == ".cpnas":  # a packed 1-bit model: the Child alone
        info, child = load_packed(path, device)
        return info, {"child": child}, engine
    info, child, parent = load_model(path, device)
    return info, {"child": child} | ({"parent": parent} if parent is not None else {}), engine


def evaluate_model_file(
    path: Path,
    dataset: str | None,
    data_dir: str | None,
    batch_size: int,
    device: torch.device,
    engine: str | None = None,
) -> Report:
    """Load the file (UserError when missing, truncated, damaged or not cpnas), its dataset (the
    one it was trained on unless `dataset` says otherwise), check they fit, and measure with the
    engine `choose_engine` picks."""
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}", "use e.g. --batch-size 500")
    info, nets, engine = load_networks(Path(path), engine, device)
    name = dataset or info.dataset
    if data_dir is None and name == info.dataset:
        data_dir = info.extras.get("data_dir")
    image_size = info.spec.image_size if name == "folder" else None
    crop = _crop_fraction(info.extras, path) if name == "folder" else 1.0
    data = datasets.load_dataset(name, data_dir, image_size, crop_fraction=crop)
    spec = info.spec
    if (data.in_channels, data.num_classes, data.image_size) != (spec.in_channels, spec.classes, spec.image_size):
        raise UserError(
            f"{path} was trained on {spec.image_size}x{spec.image_size}x{spec.in_channels} images of {spec.classes} "
            f"classes; {name} has {data.image_size}x{data.image_size}x{data.in_channels} images of {data.num_classes}",
            f"evaluate on the dataset it was trained on ({info.dataset})",
        )
    if data.classes != info.class_names:
        raise UserError(
            f"{name}'s classes differ from those {path} was trained on",
            f"evaluate on the dataset it was trained on ({info.dataset})",
        )
    batches = datasets.batches(
        data.test_images,
        data.test_labels,
        torch.arange(len(data.test_labels)),
        batch_size,
        shuffle_generator=None,
        device=device,
    )
    results = measure(nets, batches, info.class_names)
    memory = None
    if isinstance(nets["child"], _NativeChild):  # what the engine holds, beside the file it came from
        network, batch = nets["child"].network, min(batch_size, len(data.test_labels))
        memory = {
            "weights": network.resident_bytes()["weights"],
            "activations": network.activation_bytes(batch),
            "batch": batch,
            "file": Path(path).stat().st_size,
        }
    return Report(str(path), name, info.class_names, results, engine, memory)


def _crop_fraction(extras: dict, path: Path) -> float:
    """The centre crop the model was trained with (data.crop_fraction; files before it: 1)."""
    crop = extras.get("crop_fraction", 1.0)
    if isinstance(crop, bool) or not isinstance(crop, (int, float)) or not 0 < crop <= 1:
        raise UserError(f"{path} records a damaged crop_fraction {crop!r}", "train the model again")
    return float(crop)
