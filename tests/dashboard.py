"""`cpnas watch` under test: a search's log written event by event, and the dashboard driven
through Textual's Pilot against it."""

import asyncio
import time
from pathlib import Path

from cpnas_cli.events import EventWriter, header
from cpnas_cli.space.cells import cell_edges
from cpnas_cli.tui.app import WatchApp

OPS = ["zero", "skip", "sep_conv_3x3"]
EDGES = [list(e) for e in cell_edges(4)]
CELLS = ["normal", "reduce"]
POLL = 0.02


def started_log(path: Path, *events: dict, search: dict | None = None, total: int = 5, **head) -> EventWriter:
    """A search's log as a run begins it: the header (with `search` as its search config and `head`'s
    fields), the started status for `total` samples or phases, then `events`; the writer, to add more."""
    log = EventWriter(path)
    log.write(
        [
            header("search", {"search": search or {"rounds": 1}}, cells=CELLS, edges=EDGES, ops=OPS, **head),
            {"kind": "status", "t": time.time(), "state": "started", "total": total},
            *events,
        ]
    )
    return log


def text_of(pilot, selector: str) -> str:
    return pilot.app.board.query_one(selector).render().plain


async def until(pilot, condition, timeout: float = 10.0) -> None:
    """Let the reader thread and the app run until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the dashboard did not get there in time"
        await pilot.pause(0.02)
    await pilot.pause()  # and let it lay the screen out


def drive(path: Path, scenario, size=(80, 24), app: WatchApp | None = None):
    """Run `scenario(pilot)` against a dashboard following `path`."""
    app = app or WatchApp(path, interval=POLL)

    async def main():
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)

    asyncio.run(main())
    return app
