"""`cpnas watch`: the live dashboard of a search or training run. Imports no torch."""

from pathlib import Path
from typing import Annotated

import typer

from cpnas_cli.errors import UserError
from cpnas_cli.events import SchemaError, read_header
from cpnas_cli.runs import RUNS_ROOT, latest_run

from ._options import guard

EXAMPLES = """
Examples:

  cpnas watch                                    # the latest run under ./runs (waits for one)

  cpnas search > search.log 2>&1 &  cpnas watch  # search and watch in one terminal

  cpnas watch runs/20261122-101500-quick         # a named run, live or finished

  cpnas watch --wait runs/new-run                # started before the run: waits for it

Keys: q quit, tab normal/reduction cell, f follow/pause, ? help.
"""


@guard
def watch(
    run: Annotated[
        Path | None,
        typer.Argument(
            help="A run directory (or its events.jsonl); default: the latest run under ./runs, waiting for one."
        ),
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between looks at the log.", min=0.05, max=10)] = 0.25,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for a run directory that does not exist yet.")] = False,
):
    """Watch a run live: op rankings per edge, K shrinking, the Child/Parent gap, status and genotype."""
    from cpnas_cli.tui.app import WatchApp
    from cpnas_cli.tui.follow import UPGRADE, log_path

    if run is not None and run.is_file() and run.suffix != ".jsonl":
        raise UserError(f"{run} is a file, not a run directory", "pass runs/<id> or its events.jsonl")
    if run is not None and not run.exists() and not wait:  # most often a typo: waiting would hide it
        raise UserError(f"{run} does not exist", "check the path, or add --wait to wait for a run that starts later")
    latest = latest_run(RUNS_ROOT) if run is None else None
    log = log_path(run) if run is not None else latest.events if latest else None
    if log is not None and log.is_file():  # a log too new for us fails here, before the screen opens
        try:
            read_header(log)
        except SchemaError as err:
            raise UserError(str(err), UPGRADE) from None
    app = WatchApp(run, RUNS_ROOT, interval)
    app.run()
    if app.error:  # e.g. the log appeared later and was too new
        raise UserError(app.error)
