"""`cpnas export`: by the output's suffix, a run's genotype (cpnas JSON or a DARTS Genotype(...)
string), a picture of its cells (.svg, .dot), or a deployable packed 1-bit model (.cpnas)."""

from pathlib import Path
from typing import Annotated

import typer

from cpnas_cli.errors import UserError
from cpnas_cli.runs import atomic_write_text
from cpnas_cli.space import genotype as genotypes

from ._options import console, guard
from ._packed_view import file_line
from ._sources import source_genotype

EXAMPLES = """
Examples:

  cpnas export runs/20261122-101500-quick genotype.json

  cpnas export runs/20261122-101500-quick genotype.txt --format darts

  cpnas export runs/20261122-101500-quick cells.svg          # or cells.dot (Graphviz)

  cpnas export runs/<train-id>/best.safetensors model.cpnas  # packed 1-bit weights, folded BN
"""
PICTURES = (".svg", ".dot", ".gv")


@guard
def export(
    source: Annotated[
        Path,
        typer.Argument(
            help="A search run directory, a genotype file (JSON or DARTS string), "
            "or a trained checkpoint (.safetensors) for .cpnas."
        ),
    ],
    output: Annotated[
        Path, typer.Argument(help="File to write: .json/.txt genotype, .svg/.dot picture, .cpnas model.")
    ],
    format: Annotated[
        str | None, typer.Option("--format", "-f", help="Genotype files: json (cpnas, default) | darts.")
    ] = None,
):
    """Write the genotype found by a search, a picture of its cells, or a deployable 1-bit model."""
    if format not in (None, "json", "darts"):
        raise UserError(f"unknown format {format!r}", "use --format json or --format darts")
    if not output.parent.is_dir():
        raise UserError(f"output directory {output.parent} does not exist", "create it first or choose another path")
    if output.is_dir():
        raise UserError(f"output {output} is a directory", "name a file, e.g. genotype.json, cells.svg or model.cpnas")
    suffix = output.suffix.lower()
    if format is not None and (suffix in PICTURES or suffix == ".cpnas"):
        raise UserError(f"--format applies to genotype files, not {suffix}", "drop --format")
    if suffix == ".cpnas":
        return export_packed(source, output)
    genotype = source_genotype(source)
    if suffix in PICTURES:
        from cpnas_cli.space.picture import to_dot, to_svg

        atomic_write_text(output, to_svg(genotype) if suffix == ".svg" else to_dot(genotype))
        console.print(f"Wrote a picture of the normal and reduction cells to [bold]{output}[/]")
        return
    if format == "darts":
        atomic_write_text(output, genotypes.to_darts(genotype) + "\n")
    else:
        genotypes.save(genotype, output)
    console.print(f"Wrote {format or 'json'} genotype to [bold]{output}[/]")


def export_packed(checkpoint: Path, output: Path) -> None:
    """Pack a trained Child and report the file's size beside the profile's memory figure."""
    from cpnas_cli.engine.deploy.packing import pack_checkpoint

    if checkpoint.suffix != ".safetensors":
        raise UserError(
            f"a .cpnas model is packed from trained weights, and {checkpoint} holds none",
            "pass best.safetensors or last.safetensors written by `cpnas train`",
        )
    figures = pack_checkpoint(checkpoint, output)
    console.print(f"Wrote the packed 1-bit model to [bold]{output}[/]")
    console.print(file_line(figures), highlight=False)
