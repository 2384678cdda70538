"""`cpnas bench`: latency and throughput of a 1-bit network on the native engine, against the torch
float simulation of the same Child and the same network in full precision, measured interleaved;
then where the native run spends its time."""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from cpnas_cli import config as configs
from cpnas_cli.errors import UserError

from ._options import console, err_console, guard
from ._sources import source_genotype
from .profile import AsJson, Channels, ProfileDataset, ProfilePreset, Size, network_spec

EXAMPLES = """
Examples:

  cpnas bench model.cpnas

  cpnas bench model.cpnas --batch 1,64 --threads 2 --json

  cpnas bench runs/<id>/genotype.json --preset cifar10 --size small     # random weights
"""


@guard
def bench(
    source: Annotated[
        Path,
        typer.Argument(help="A packed model.cpnas, or a genotype.json / search run directory (random weights)."),
    ],
    batch: Annotated[str, typer.Option(help="Batch sizes, comma-separated.")] = "1,64",
    threads: Annotated[int | None, typer.Option(help="Threads for torch and the native kernels.")] = None,
    repeats: Annotated[int, typer.Option(help="Measured calls per engine and batch size.")] = 20,
    size: Size = None,
    channels: Channels = None,
    dataset: ProfileDataset = None,
    preset: ProfilePreset = None,
    as_json: AsJson = False,
):
    """Time the native 1-bit engine against torch (1-bit simulation and full precision)."""
    batches = parse_batches(batch)
    if repeats < 1:
        raise UserError(f"--repeats {repeats} must be at least 1", "use e.g. --repeats 20")
    if threads is not None and threads < 1:
        raise UserError(f"--threads {threads} must be at least 1", "use e.g. --threads 2")
    import torch

    from cpnas_cli.engine.deploy.bench import measure
    from cpnas_cli.engine.deploy.native import library

    if not library.available():
        raise UserError(f"native engine unavailable: {library.why_unavailable()}")
    if threads is not None:
        torch.set_num_threads(threads)
    contenders = load(source, size, channels, dataset, preset)
    results = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    # a slow refresh: the progress thread competes with the timed calls for the CPU
    with Progress(*columns, console=err_console, transient=True, refresh_per_second=2) as progress:
        for n in batches:
            task = progress.add_task(f"measuring batch {n}", total=3 * (repeats + 2))
            results[n] = measure(contenders, n, repeats, tick=lambda task=task: progress.advance(task))
    data = report(source, contenders, results, torch.get_num_threads(), library.isa())
    if as_json:
        typer.echo(json.dumps(data))
        return
    render(data)


def parse_batches(text: str) -> list[int]:
    try:
        batches = [int(part) for part in text.split(",")]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1:
        raise UserError(f"--batch {text!r}: expected positive batch sizes, comma-separated", "e.g. --batch 1,64")
    return batches


def load(source: Path, size, channels, dataset, preset):
    """The three contenders of a packed model or of a genotype (random weights)."""
    from cpnas_cli.engine.deploy.bench import Contenders

    if not source.exists():
        raise UserError(f"{source} not found", "pass a model.cpnas or a genotype.json")
    if source.suffix == ".safetensors":
        raise UserError(
            f"{source} is a training checkpoint; bench runs packed models",
            f"export it with cpnas export {source} model.cpnas",
        )
    if source.suffix == ".cpnas":
        if size or channels or preset or dataset:
            raise UserError(f"{source} is a trained model; its size is fixed", "drop --size/--channels/--preset")
        from cpnas_cli.engine.deploy.packing import read_packed

        if not read_packed(source)[0].spec.exact:
            raise UserError(
                f"{source} predates exact 1-bit semantics (format version 1): it runs on the torch engine only",
                "export a model trained with this cpnas",
            )
        return Contenders.from_packed(source)
    genotype = source_genotype(source)
    dataset = dataset or (configs.load_config(preset).data.dataset if preset else "cifar10")
    return Contenders.from_genotype(genotype, network_spec(dataset, size, channels, preset))


def report(source: Path, contenders, results: dict, threads: int, isa: str) -> dict:
    from cpnas_cli.engine.deploy.bench import NAMES, layer_shares

    native, simulated, full = NAMES
    resident = contenders.native.resident_bytes()
    batches = []
    for n, result in results.items():
        c = result["contenders"]
        batches.append({
            "batch": n,
            **c,
            "speedup_vs_torch_1bit": c[simulated]["median_ms"] / c[native]["median_ms"],
            "speedup_vs_full_precision": c[full]["median_ms"] / c[native]["median_ms"],
            "activation_bytes": contenders.native.activation_bytes(n),
            "layers": layer_shares(contenders.native.ops, result["per_op"]),
        })  # fmt: skip
    return {
        "source": str(source),
        "input": [contenders.spec.in_channels, contenders.spec.image_size, contenders.spec.image_size],
        "threads": threads,
        "isa": isa,
        "file_bytes": contenders.file_bytes,
        "resident_bytes": resident,
        "batches": batches,
    }


def render(data: dict) -> None:
    from cpnas_cli.engine.deploy.bench import NAMES

    table = Table(
        title=f"cpnas bench {data['source']}: input {'x'.join(map(str, data['input']))}, "
        f"{data['threads']} thread(s), native path {data['isa']}",
        title_justify="left",
        caption="latency per batch (median, p90); speedup = median time of that engine / native's",
        caption_justify="left",
    )
    for header in ("batch", "engine", "median ms", "p90 ms", "images/s", "native speedup"):
        table.add_column(header, justify="left" if header == "engine" else "right", no_wrap=True)
    for row in data["batches"]:
        ratios = ("", f"{row['speedup_vs_torch_1bit']:.2f}x", f"{row['speedup_vs_full_precision']:.2f}x")
        for name, ratio in zip(NAMES, ratios, strict=True):
            c = row[name]
            table.add_row(str(row["batch"]), name, f"{c['median_ms']:.2f}", f"{c['p90_ms']:.2f}",
                          f"{c['images_per_s']:,.0f}", ratio)  # fmt: skip
    console.print(table)
    for row in data["batches"]:
        console.print(layer_table(row))
    weights = data["resident_bytes"]["weights"]
    arenas = ", ".join(f"{row['activation_bytes']:,} at batch {row['batch']}" for row in data["batches"])
    console.print(
        f"native engine holds {weights:,} bytes of weights ({weights / data['file_bytes']:.2f}x the "
        f"{data['file_bytes']:,}-byte file) + activation buffers: {arenas} bytes",
        highlight=False,
    )


def layer_table(row: dict) -> Table:
    table = Table(title=f"Native run, batch {row['batch']}: time per step kind", title_justify="left")
    for header in ("step", "precision", "path", "ms", "share"):
        table.add_column(header, justify="right" if header in ("ms", "share") else "left", no_wrap=True)
    for layer in row["layers"]:
        table.add_row(layer["step"], layer["precision"], layer["path"], f"{layer['ms']:.2f}", f"{layer['share']:.0%}")
    return table
