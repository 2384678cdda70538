"""`cpnas export`: write a run's genotype as cpnas JSON or as a DARTS Genotype(...) string."""

from pathlib import Path
from typing import Annotated

import typer

from ..engine import genotype as genotypes
from ..errors import UserError
from ..runs import RunDir, atomic_write_text
from .options import console, guard

EXAMPLES = """
Examples:

  cpnas export runs/20261122-101500-quick genotype.json

  cpnas export runs/20261122-101500-quick genotype.txt --format darts
"""


def source_genotype(source: Path) -> genotypes.Genotype:
    """The genotype of a search run directory, or of a genotype file."""
    if source.is_dir():
        run = RunDir(source)
        if not run.genotype.is_file():
            raise UserError(f"{source} has no genotype.json (search not finished?)",
                            f"finish it with: cpnas search --resume {source}")
        return genotypes.load(run.genotype)
    return genotypes.load(source)


@guard
def export(
    source: Annotated[Path, typer.Argument(help="A search run directory or a genotype file (JSON or DARTS string).")],
    output: Annotated[Path, typer.Argument(help="File to write.")],
    format: Annotated[str, typer.Option("--format", "-f", help="json (cpnas genotype, default) | darts.")] = "json",
):
    """Write the genotype found by a search."""
    if format not in ("json", "darts"):
        raise UserError(f"unknown format {format!r}", "use --format json or --format darts")
    if not output.parent.is_dir():
        raise UserError(f"output directory {output.parent} does not exist", "create it first or choose another path")
    genotype = source_genotype(source)
    if format == "darts":
        atomic_write_text(output, genotypes.to_darts(genotype) + "\n")
    else:
        genotypes.save(genotype, output)
    console.print(f"Wrote {format} genotype to [bold]{output}[/]")
