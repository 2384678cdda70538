"""`cpnas profile`: memory (Mbit), BOPs, FLOPs and OPs of a 1-bit network, layer by layer, with
the memory saving and speedup of Table 3 (against WRN-22) and against the same network in full
precision."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cpnas_cli import config as configs
from cpnas_cli.errors import UserError
from cpnas_cli.space.genotype import Genotype

from ._options import console, guard
from ._packed_view import file_line
from ._sources import source_genotype

if TYPE_CHECKING:  # the engine (torch) is imported when a command runs, keeping --help fast
    from cpnas_cli.engine.nn.network import NetworkSpec

# Input channels, image side and classes of the networks --dataset builds.
DATASET_INPUTS = {
    "cifar10": (3, 32, 10),
    "fashion-mnist": (1, 28, 10),
    "embedded": (1, 28, 10),
    "imagenet": (3, 224, 1000),
}
SIZES = ("small", "medium", "large")
IMAGENET_CHANNELS = 102  # the paper's one ImageNet network (Sec. 3.1)

EXAMPLES = """
Examples:

  cpnas profile runs/<id>/genotype.json --size small --dataset cifar10

  cpnas profile runs/<id>/train/best.safetensors        # a trained model

  cpnas profile model.cpnas                             # a packed model and its file size

  cpnas profile --reference wrn22 --binary --json

Counting conventions (docs/profile.md):
"""
CONVENTIONS = (
    "Per image. 1-bit params: kernels of binarized convs. 32-bit params: weights and biases of full-precision "
    "convs and linear layers (stem, classifier), 2 per BatchNorm channel (folded scale and shift), 1 scale "
    "beta per output channel of a 1-bit conv: what model.cpnas stores. Memory = 1-bit + 32 x 32-bit params; "
    "1 Mbit = 10^6 bits. A multiply-accumulate counts once: FLOPs = MACs of full-precision convs and linear "
    "layers, BOPs = MACs of 1-bit convs, OPs = BOPs/64 + FLOPs (Table 3's FLOPs column). BatchNorm, pooling, "
    "additions, sign and ReLU are not counted. The stem and the classifier are full precision; the auxiliary "
    "tower (training only) is left out."
)
EPILOG = EXAMPLES + "\n  " + CONVENTIONS + "\n"


@dataclass
class Target:
    """What to profile: a genotype and the network around it, and where it came from."""

    genotype: Genotype
    spec: "NetworkSpec"
    source: str
    packed_file: Path | None = None

    def profiles(self):
        """The 1-bit network and its full-precision twin."""
        from cpnas_cli.engine.deploy.profile import profile_eval_network

        return (
            profile_eval_network(self.genotype, self.spec, binary=True),
            profile_eval_network(self.genotype, self.spec, binary=False),
        )


Source = Annotated[
    Path | None,
    typer.Argument(
        help="genotype.json (or DARTS string file), a search run directory, a trained checkpoint (.safetensors) "
        "or a packed model (.cpnas)."
    ),
]
Reference = Annotated[str | None, typer.Option(help="Profile a built-in reference instead: wrn22 (Table 3).")]
Binary = Annotated[
    bool, typer.Option("--binary", help="With --reference: 1-bit convs except the first and last layer.")
]
Size = Annotated[
    str | None,
    typer.Option(help="small | medium | large: C = 56 / 72 / 112 (paper, CIFAR-10; or the preset's train.sizes)."),
]
Channels = Annotated[int | None, typer.Option(help="Initial channels C, overriding --size.")]
ProfileDataset = Annotated[
    str | None,
    typer.Option(
        help="cifar10 (default) | fashion-mnist | embedded | imagenet: input size, channels and classes "
        "(imagenet: ImageNet stem, C = 102)."
    ),
]
ProfilePreset = Annotated[
    str | None,
    typer.Option(
        "--preset", "-p", help="Take the network shape (train.sizes, cells, reductions, stem_stride) from this preset."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]


@guard
def profile(
    source: Source = None,
    reference: Reference = None,
    binary: Binary = False,
    size: Size = None,
    channels: Channels = None,
    dataset: ProfileDataset = None,
    preset: ProfilePreset = None,
    as_json: AsJson = False,
):
    """Memory and compute of a 1-bit network, layer by layer, against full precision and WRN-22."""
    from cpnas_cli.engine.deploy.profile import report
    from cpnas_cli.engine.deploy.references import profile_reference

    if (source is None) == (reference is None):
        raise UserError(
            "give either a genotype/checkpoint to profile or --reference, not both or neither",
            "e.g. cpnas profile runs/<id>/genotype.json, or cpnas profile --reference wrn22",
        )
    if reference is not None:
        if size or channels or dataset not in (None, "cifar10") or preset:
            raise UserError(
                "--reference profiles the CIFAR-10 WRN-22 of Table 3", "drop --size/--channels/--dataset/--preset"
            )
        this, full, target = profile_reference(reference, binary), profile_reference(reference), None
    else:
        if binary:
            raise UserError("--binary applies to --reference", "a genotype's network is profiled 1-bit already")
        assert source is not None  # exactly one of source and --reference, checked above
        target = resolve(source, dataset, size, channels, preset)
        this, full = target.profiles()
    wrn22 = profile_reference("wrn22")
    data = {**report(this, full, wrn22), "conventions": CONVENTIONS}
    if target is not None:
        data["source"] = target.source
        if target.packed_file is not None:
            from cpnas_cli.engine.deploy.packing import file_figures

            data["file"] = file_figures(target.packed_file, this.memory_bits)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    console.print(layer_table(this))
    console.print(totals_table(this, full, wrn22))
    if "file" in data:
        console.print(file_line(data["file"]), highlight=False)


def resolve(source: Path, dataset: str | None, size: str | None, channels: int | None, preset: str | None) -> Target:
    """The genotype and network a source stands for; a trained model fixes its own network."""
    if dataset is not None and dataset not in DATASET_INPUTS:
        raise UserError(f"unknown dataset {dataset!r}", f"use one of: {', '.join(DATASET_INPUTS)}")
    if source.suffix in (".safetensors", ".cpnas"):
        if size or channels or preset:
            raise UserError(f"{source} is a trained model; its size is fixed", "drop --size/--channels/--preset")
        if source.suffix == ".cpnas":
            from cpnas_cli.engine.deploy.packing import read_packed

            info, _ = read_packed(source)
        else:
            from cpnas_cli.engine.train.model_file import read_model

            info, _ = read_model(source)
        check_dataset(source, info.spec, info.dataset, dataset)
        return Target(info.genotype, info.spec, str(source), source if source.suffix == ".cpnas" else None)
    return Target(source_genotype(source), network_spec(dataset or "cifar10", size, channels, preset), str(source))


def check_dataset(source: Path, spec: "NetworkSpec", trained_on: str, asked: str | None) -> None:
    """A trained model answers for its own input and classes only."""
    if asked is None:
        return
    have = (spec.in_channels, spec.image_size, spec.classes)
    if DATASET_INPUTS[asked] != have:
        raise UserError(
            f"{source} was trained on {trained_on} ({_shape(*have)}), not {asked} ({_shape(*DATASET_INPUTS[asked])})",
            "drop --dataset, or profile its genotype for that dataset: cpnas profile <genotype.json> --dataset ...",
        )


def _shape(channels: int, side: int, classes: int) -> str:
    return f"{channels}x{side}x{side}, {classes} classes"


def network_spec(dataset: str, size: str | None, channels: int | None, preset: str | None) -> "NetworkSpec":
    """The evaluation network of Sec. 3.1 for a dataset: C from --channels, --size or the preset."""
    from cpnas_cli.engine.nn.backbone import uses_imagenet_stem
    from cpnas_cli.engine.nn.network import NetworkSpec

    if size is not None and size not in SIZES:
        raise UserError(f"unknown size {size!r}", "use --size small, medium or large (or --channels C)")
    if channels is not None and channels < 1:
        raise UserError(f"--channels {channels} must be at least 1", "use e.g. --channels 56")
    train = configs.load_config(preset).train if preset else configs.TrainConfig()
    imagenet = dataset == "imagenet"
    if imagenet and size is not None and channels is None:
        raise UserError(
            "--size names the paper's CIFAR-10 networks; its ImageNet network has C = 102",
            "drop --size, or give --channels C",
        )
    if channels is None:
        if size is not None:
            channels = train.sizes[SIZES.index(size)]
        elif imagenet:
            channels = IMAGENET_CHANNELS
        else:
            channels = train.channels or train.sizes[SIZES.index(train.size)]
    in_channels, side, classes = DATASET_INPUTS[dataset]
    return NetworkSpec(
        in_channels,
        classes,
        channels,
        train.cells,
        side,
        imagenet_stem=imagenet or uses_imagenet_stem(train.imagenet_stem, side),
        reductions=train.reductions,
        stem_stride=train.stem_stride,
        shortcut=train.shortcut,
        group_width=train.group_width,
        real_depthwise=train.real_depthwise,
        real_preprocess=train.real_preprocess,
    )


# --- rendering ------------------------------------------------------------------------------


def layer_table(profile) -> Table:
    """One row per counted layer; a block's label (cell, edge, op) only on its first row."""
    table = Table(
        title=f"{profile.network}, input {'x'.join(map(str, profile.input_shape))}",
        title_justify="left",
        caption="1-bit, 32-bit: parameters; cell 3R: a reduction cell; in0/in1: a cell's input "
        "preprocessing; n4<-1: the edge from node 1 into node 4 (0, 1: the cell's inputs)"
        + (
            "; a 32-bit input into 1-bit params: a real-valued activation (CP-NAS*/**), counted as FLOPs"
            if any(layer.real_input for layer in profile.layers)
            else ""
        ),
        caption_justify="left",
    )
    for header in ("layer", "kind", "input", "output", "1-bit", "32-bit", "memory bits", "BOPs", "FLOPs"):
        table.add_column(
            header, justify="left" if header in ("layer", "kind", "input", "output") else "right", no_wrap=True
        )
    previous = None
    for layer in profile.layers:
        table.add_row(
            layer.block if layer.block != previous else "",
            layer.kind,
            layer.input_precision,
            "x".join(map(str, layer.output_shape)),
            _count(layer.params_1bit),
            _count(layer.params_32bit),
            _count(layer.memory_bits),
            _count(layer.bops),
            _count(layer.flops),
        )
        previous = layer.block
    return table


def totals_table(this, full, wrn22) -> Table:
    table = Table(
        title=f"Totals: {this.network}",
        title_justify="left",
        caption_justify="left",
        caption=f"full precision: {full.network}; WRN-22: Table 3's reference. OPs = BOPs/64 + FLOPs; "
        "memory saving and speedup = that column / this network",
    )
    table.add_column("")
    for name in ("this network", "full precision", "WRN-22"):
        table.add_column(name, justify="right", no_wrap=True)
    columns = (this, full, wrn22)
    table.add_row("params 1-bit", *(f"{p.params_1bit:,}" for p in columns))
    table.add_row("params 32-bit", *(f"{p.params_32bit:,}" for p in columns))
    table.add_row("memory (Mbit)", *(f"{p.memory_mbit:.2f}" for p in columns))
    table.add_row("BOPs (M)", *(f"{p.bops / 1e6:.2f}" for p in columns))
    table.add_row("FLOPs (M)", *(f"{p.flops / 1e6:.2f}" for p in columns))
    table.add_row("OPs (M)", *(f"{p.ops / 1e6:.2f}" for p in columns))
    table.add_row("memory saving", "", *(f"{this.against(p)['memory_saving']:.2f}x" for p in columns[1:]))
    table.add_row("speedup", "", *(f"{this.against(p)['speedup']:.2f}x" for p in columns[1:]))
    return table


def _count(n: int) -> str:
    """Exact below 100,000 (hand-checkable); K and M above, to keep the table narrow (--json is exact)."""
    if not n:
        return "-"
    if n < 100_000:
        return f"{n:,}"
    return f"{n / 1e3:.1f}K" if n < 1_000_000 else f"{n / 1e6:.2f}M"
