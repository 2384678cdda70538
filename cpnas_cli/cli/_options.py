"""Options shared by several commands, as `Annotated` types, and the bad-input guard."""

import functools
import os
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cpnas_cli.errors import Notice, ReportedElsewhere, UserError

console = Console()
err_console = Console(stderr=True)

Preset = Annotated[
    str, typer.Option("--preset", "-p", help="Preset name (quick, fashion-mnist, cifar10, ...) or a .yaml path.")
]
Dataset = Annotated[
    str | None, typer.Option(help="embedded | fashion-mnist | cifar10 | folder (overrides the preset).")
]
DataDir = Annotated[
    Path | None, typer.Option(help="Where the dataset lives (folder: D/train/<class>/*, D/test/<class>/*).")
]
Device = Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N.")]
Seed = Annotated[int | None, typer.Option(help="Random seed: same seed, same device -> same result.")]
Sets = Annotated[
    list[str] | None, typer.Option("--set", help="Any config key, e.g. --set search.lr=0.05 (repeatable).")
]
RunDirOpt = Annotated[
    Path | None, typer.Option("--run-dir", help="Run directory to create (default runs/<time>-<preset>).")
]
Resume = Annotated[Path | None, typer.Option("--resume", help="Continue an interrupted run from its directory.")]


def guard(command):
    """Turn a UserError into one red line on stderr and exit code 2 (no traceback); print each
    distinct `Notice` warning once, as one yellow line on stderr. A rank other than 0 of a torchrun
    job prints nothing but its errors (one another rank reports exits 2 silently)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        quiet = int(os.environ.get("RANK", "0")) > 0
        console.quiet = quiet
        try:
            with warnings.catch_warnings():
                if quiet:
                    warnings.simplefilter("ignore")
                else:
                    warnings.simplefilter("always", Notice)
                warnings.showwarning = _show_notices(warnings.showwarning)
                return command(*args, **kwargs)
        except UserError as err:
            if not isinstance(err, ReportedElsewhere):
                err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _show_notices(show):
    """A warnings.showwarning that prints a `Notice` once per text in yellow, others as `show` does."""
    seen = set()

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, Notice):
            return show(message, category, filename, lineno, file, line)
        if str(message) not in seen:
            seen.add(str(message))
            err_console.print(f"[yellow]notice:[/] {message}", highlight=False, soft_wrap=True)

    return showwarning


def streamed(dataset) -> str:
    """ ", streamed from disk (N workers)" for a folder dataset decoded per batch (docs/data.md), else ""."""
    if not dataset.streaming:
        return ""
    return f", streamed from disk ({dataset.train_images.workers} decoding workers)"
