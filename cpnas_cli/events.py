"""The run's event log, `events.jsonl`: schema, writer and a tolerant tail reader. Torch-free.

One JSON object per line, append-only. The first line is a header (`kind: "header"`) with the
schema version, the resolved config and the names of cells, edges and ops. Then, by `kind`:

  status      state: started | resumed | interrupted | finished | failed (+ error)
  sample      one sampled architecture: n, total, K, round, index, arch, acc_child, acc_parent,
              z, loss_child, loss_parent, lr, seconds, child_seconds, parent_seconds, images_per_s
  ranking     K, mean_z and indicator (e, Eq. 2) per op per edge: {cell: [{op: value}, ...]}
  prune       K (before), removed: {cell: [op per edge]}
  checkpoint  sample: how many samples the saved state holds
  genotype    path and the genotype itself
  epoch       a training epoch (train runs)

Every line has `t` (Unix time). A resumed run truncates the log back to its checkpoint, so the
log always reads as one uninterrupted run plus its status lines; readers detect the shrink.
"""

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = 1


class SchemaError(Exception):
    """The log was written by a newer cpnas than this reader."""


class EventWriter:
    """Appends events; each line is flushed and fsynced so readers and a resume see whole lines."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def emit(self, kind: str, **fields) -> dict:
        event = {"kind": kind, "t": round(time.time(), 3), **fields}
        self.write([event])
        return event

    def write(self, events: list[dict]) -> None:
        if not events:
            return
        data = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def truncate(self, size: int) -> None:
        """Cut the log back to `size` bytes: drops what a killed run wrote after its checkpoint."""
        with open(self.path, "r+b") as f:
            f.truncate(size)


def header(run: str, config: dict, cells: list[str], edges: list, ops: list[str]) -> dict:
    return {"kind": "header", "schema": SCHEMA, "run": run, "t": round(time.time(), 3),
            "config": config, "cells": cells, "edges": edges, "ops": ops}


@dataclass
class Notice:
    """Something the reader skipped, for the reader's user to see (e.g. a malformed line)."""

    line: int
    text: str


class EventReader:
    """Follows a growing log: returns complete new lines only, holding back a torn last line.

    `read()` returns the new events since the last call; `reset` is True when the log shrank
    (a resumed run truncated it) and the events start from the top again.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self.line = 0
        self.notices: list[Notice] = []

    def read(self) -> tuple[list[dict], bool]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return [], False
        reset = size < self.offset
        if reset:
            self.offset, self.line = 0, 0
        if size == self.offset:
            return [], reset
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(size - self.offset)
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a torn last line waits for its newline
        self.offset += len(complete)
        events = []
        for raw in complete.splitlines():
            self.line += 1
            event = self._parse(raw)
            if event is not None:
                events.append(event)
        return events, reset

    def _parse(self, raw: bytes) -> dict | None:
        try:
            event = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            self.notices.append(Notice(self.line, "skipped a malformed line"))
            return None
        if not isinstance(event, dict) or "kind" not in event:
            self.notices.append(Notice(self.line, "skipped a line without a kind"))
            return None
        if event["kind"] == "header" and event.get("schema", 0) > SCHEMA:
            raise SchemaError(f"{self.path} uses event schema {event['schema']}; this cpnas reads up to {SCHEMA}")
        return event


def read_all(path: Path) -> list[dict]:
    """Every complete event of a log, for one-shot use (export, tests)."""
    events, _ = EventReader(path).read()
    return events
