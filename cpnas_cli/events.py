"""The run's event log, `events.jsonl`: schema, writer and a tolerant tail reader. Torch-free.

One JSON object per line, append-only. The first line is a header (`kind: "header"`) with the
schema version, the resolved config, the names of cells, edges and ops, and `world_size` (the
processes of a torchrun job; 1 alone); a cp or bnas search also `indicator_scale`: fraction |
percent, how Eq. 2 reads z̄ (absent in logs written before it was recorded, which were percent).
Then, by `kind`:

  status      state: started | resumed | interrupted | finished | failed (+ error)
  sample      one sampled architecture: n, total, K, round, index, arch, acc_child, acc_parent,
              z, loss_child, loss_parent, lr, seconds, child_seconds, parent_seconds, images_per_s
  ranking     K, mean_z (percent) and indicator (e, Eq. 2) per op per edge: {cell: [{op: value}, ...]},
              scale (fraction | percent; absent: percent); abandit's carry its bounds instead
  prune       K (before), removed: {cell: [op per edge]}
  checkpoint  sample: how many samples the saved state holds
  genotype    path and the genotype itself
  epoch       a training epoch (train runs)
  alpha       one phase of a differentiable search (pc-darts, dcp): step, total, role (search |
              parent | child), epoch (reached by that role), images, arch_steps, lr, the phase's
              means (loss, train_acc, arch_loss; dcp's Child also kl, recon, arch_agreement G,
              tangent_distance D, penalty_share; dcp backtrack), acc_child (and dcp's acc_parent,
              gap), weights: softmax(alpha) {cell: [{op: weight}] per edge} (dcp: the Child's),
              edge_weights: {cell: [softmax(beta) per edge]} (pc-darts), weights_parent and psi
              (dcp), genotype: the current argmax genotype, seconds, images_per_s, elapsed

Every line has `t` (Unix time). A resumed run truncates the log back to its checkpoint, so the
log always reads as one uninterrupted run plus its status lines; readers detect the rewrite (the
log shrank, or the bytes just before their offset changed) and start again from the top.
"""

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = 1
TAIL = 64  # bytes before its offset a reader re-checks to notice a rewritten log


class SchemaError(Exception):
    """The log was written by a newer cpnas than this reader."""


class EventWriter:
    """Appends events; each line is flushed and fsynced so readers and a resume see whole lines."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def emit(self, kind: str, **fields) -> dict:
        line = event(kind, **fields)
        self.write([line])
        return line

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


def event(kind: str, **fields) -> dict:
    """One line of the log: its kind, the time, then its fields."""
    return {"kind": kind, "t": round(time.time(), 3), **fields}


def header(run: str, config: dict, **fields) -> dict:
    """The first line: the schema, which command's run (search | train), the resolved config, and
    what readers need to name things (search: cells, edges, ops; train: genotype, network, classes)."""
    return {"kind": "header", "schema": SCHEMA, "run": run, "t": round(time.time(), 3), "config": config, **fields}


@dataclass
class Notice:
    """Something the reader skipped, for the reader's user to see (e.g. a malformed line)."""

    line: int
    text: str


class EventReader:
    """Follows a growing log: returns complete new lines only, holding back a torn last line.

    `read()` returns the new events since the last call; `reset` is True when the log was
    rewritten (a resumed run truncated it, perhaps writing more than it cut, or it was replaced)
    and the events start from the top again.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self.line = 0
        self.tail = b""  # the last bytes consumed, to recognise the same log on the next read
        self.notices: list[Notice] = []

    def read(self) -> tuple[list[dict], bool]:
        try:
            with open(self.path, "rb") as f:
                chunk, reset = self._new_bytes(f)
        except FileNotFoundError:
            return [], False
        if not chunk:
            return [], reset
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a torn last line waits for its newline
        self.offset += len(complete)
        self.tail = (self.tail + complete)[-TAIL:]
        events = []
        for raw in complete.splitlines():
            self.line += 1
            event = self._parse(raw)
            if event is not None:
                events.append(event)
        return events, reset

    def _new_bytes(self, f) -> tuple[bytes, bool]:
        """The bytes past the offset, and whether the log was rewritten (which rewinds to the top)."""
        size = os.fstat(f.fileno()).st_size
        reset = size < self.offset or not self._same_tail(f)
        if reset:
            self.offset, self.line, self.tail = 0, 0, b""
        f.seek(self.offset)
        return f.read(size - self.offset), reset

    def _same_tail(self, f) -> bool:
        f.seek(self.offset - len(self.tail))
        return f.read(len(self.tail)) == self.tail

    def _parse(self, raw: bytes) -> dict | None:
        try:
            event = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            self.notices.append(Notice(self.line, "skipped a malformed line"))
            return None
        if not isinstance(event, dict) or "kind" not in event:
            self.notices.append(Notice(self.line, "skipped a line without a kind"))
            return None
        schema = event.get("schema", 0) if event["kind"] == "header" else 0
        if type(schema) is not int:  # compared with SCHEMA below: a null or a string would crash it
            self.notices.append(Notice(self.line, "skipped a header whose schema is not a number"))
            return None
        if schema > SCHEMA:
            raise SchemaError(f"{self.path} uses event schema {event['schema']}; this cpnas reads up to {SCHEMA}")
        return event


def read_header(path: Path) -> dict | None:
    """The header of a log (None if it has no complete first line yet); SchemaError if too new."""
    with open(path, "rb") as f:
        first = f.readline()
    if not first.endswith(b"\n"):
        return None
    event = EventReader(path)._parse(first)
    return event if event is not None and event["kind"] == "header" else None


def read_all(path: Path) -> list[dict]:
    """Every complete event of a log, for one-shot use (export, tests)."""
    events, _ = EventReader(path).read()
    return events
