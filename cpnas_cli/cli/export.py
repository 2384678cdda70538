"""`cpnas export`: by the output's suffix, a run's genotype (cpnas JSON or a DARTS Genotype(...)
string), a picture of its cells (.svg, .dot), a deployable packed 1-bit model (.cpnas), or the
trained network as one C99 source and header (.c, or a directory with --format c)."""

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

  cpnas export runs/<train-id>/best.safetensors fm_model.c   # C99 source + fm_model.h, fm_predict()

  cpnas export model.cpnas out/ --format c --prefix fm       # out/fm_model.c, out/fm_model.h
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
        Path,
        typer.Argument(
            help="File to write: .json/.txt genotype, .svg/.dot picture, .cpnas model, .c source "
            "(the .h beside it); with --format c, a directory."
        ),
    ],
    format: Annotated[
        str | None,
        typer.Option("--format", "-f", help="Genotype files: json (cpnas, default) | darts; c: C source."),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(help="C export: identifier prefix and file name <prefix>_model.c (default: from the .c name)."),
    ] = None,
):
    """Write the genotype found by a search, a picture of its cells, a deployable 1-bit model, or C code."""
    if format not in (None, "json", "darts", "c"):
        raise UserError(f"unknown format {format!r}", "use --format json, darts or c")
    if not output.parent.is_dir():
        raise UserError(f"output directory {output.parent} does not exist", "create it first or choose another path")
    if format in ("json", "darts") and output.suffix.lower() == ".c":
        raise UserError(f"--format {format} writes a genotype, not C source", "drop --format, or use --format c")
    if format == "c" or output.suffix.lower() == ".c":
        return export_c(source, output, prefix)
    if prefix is not None:
        raise UserError("--prefix applies to C exports", "drop --prefix, or write a .c file")
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


def export_c(source: Path, output: Path, prefix: str | None) -> None:
    """Write the trained network as <output>.c + .h (or <prefix>_model.c/.h in the directory `output`)
    and print the flash and RAM it needs."""
    from cpnas_cli.engine.deploy.c_source import check_prefix, generate, load_plan

    is_file = output.suffix.lower() == ".c"
    if is_file and output.is_dir():
        raise UserError(f"output {output} is a directory", "name the .c file to write, e.g. fm_model.c")
    if not is_file and output.exists() and not output.is_dir():
        raise UserError(f"output {output} is a file", "--format c writes a .c and a .h: name a directory or a .c file")
    prefix = prefix or (output.stem.removesuffix("_model") if is_file else "cpnas")
    if not check_prefix(prefix):
        raise UserError(f"prefix {prefix!r} is not a C identifier", "pass --prefix with letters, digits and _")
    c_path = output if is_file else output / f"{prefix}_model.c"
    h_path = c_path.with_suffix(".h")
    for path in (c_path, h_path):
        if path.is_dir():
            raise UserError(f"output {path} is a directory", "remove it or choose another path")
    info, plan = load_plan(source)
    model = generate(plan, prefix, info.class_names, h_path.name)
    if not is_file:
        output.mkdir(exist_ok=True)
    atomic_write_text(h_path, model.header)
    atomic_write_text(c_path, model.source)
    figures = model.figures()
    console.print(f"Wrote the 1-bit network as C to [bold]{c_path}[/] and [bold]{h_path}[/] ({prefix}_predict)")
    console.print(
        f"Flash: {figures['weight_bytes']:,} bytes of weights + about {figures['code_bytes']:,} bytes of code. "
        f"RAM: {figures['arena_bytes']:,} bytes of arena (+ {figures['ram_bytes'] - figures['arena_bytes']} "
        "bytes of patch buffers)",
        highlight=False,
    )
