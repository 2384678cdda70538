"""What a search and a training run share: the event log, checkpoints that carry their step's
events, exact resume, and the run's closing status.

A step ends by `commit`: the checkpoint is saved with the step's events pending and the log's
size before them, then the events are logged and reported. A resume loads the checkpoint, cuts
the log back to that size and writes the pending events again, so the log holds every event
exactly once whenever the process died. A run killed before its first checkpoint starts over.
A step whose events hold a NaN or an infinity (a loss, an accuracy, an architecture weight) is
not committed: the run stops with one line naming the value, the last good checkpoint stands.
One process writes a run: `start` and `resume` take the run directory's writer lock (runs.py),
`writing` gives it back when the run's last write is done. Under torchrun that process is rank 0:
it alone reads the checkpoint (the other ranks get it from rank 0) and writes the log and the
checkpoints; every rank checks its step against rank 0's before a commit (distributed.py).
"""

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from cpnas_cli.errors import UserError
from cpnas_cli.events import EventWriter, event
from cpnas_cli.runs import RunDir, lock_writer, release_writer

from .checkpoint import STATE, load_checkpoint, save_checkpoint
from .distributed import SOLO, World
from .interrupt import Interrupted

Report = Callable[[dict], None]
POSITION = ("n", "step", "epoch")  # the fields that say which step an event belongs to


class RunLoop:
    """Base of the search runner and the trainer. Subclasses call `start` from `begin`, `resume`
    from `restore`, `commit` after every step, `guarded` around their loop and `writing` around
    all of `run`."""

    command = "search"  # the CLI command that resumes a run of this kind

    def __init__(self, report: Report, stop, world: World = SOLO):
        self.report, self.stop, self.world = report, stop, world
        self.resumed_by: str | None = None  # set when another command resumes this run (an ablation's unit)

    @property
    def resume_command(self) -> str:
        """What a user types to continue this run after it stopped."""
        return self.resumed_by or f"cpnas {self.command} --resume {self.run_dir.path}"

    def start(self, run: RunDir, header: dict, **started) -> None:
        """A new run: the header line, then the `started` status."""
        self.run_dir, self.log = run, EventWriter(run.events)

        def write():
            lock_writer(run.path)
            self.log.write([header])

        self.world.on_main(write)
        self.emit("status", state="started", **started)

    def resume(self, run: RunDir, restore: Callable[[dict[str, torch.Tensor], dict], None]) -> bool:
        """Hand the checkpoint's (tensors, state) to `restore`, then cut the log back to it; False
        (and the log removed) when the run died before its first checkpoint."""

        def load():
            lock_writer(run.path)  # before anything is cut or written
            if not (run.checkpoint / STATE).is_file():
                run.events.unlink(missing_ok=True)
                return None
            return load_checkpoint(run.checkpoint)

        loaded = self.world.on_main(load)
        if loaded is None:
            return False
        self.run_dir, self.log = run, EventWriter(run.events)
        tensors, state = loaded
        with self.world.together():
            restore(tensors, state)  # may refuse the checkpoint: nothing is written before this

        def rewind():
            self.log.truncate(state["events_offset"])
            self.log.write(state["pending_events"])

        self.world.on_main(rewind)
        return True

    def commit(self, tensors: dict[str, torch.Tensor], state: dict, events: list[dict], tag: str) -> None:
        """Checkpoint with `events` pending (tag names the weights file: unique per step), then log
        and report them."""
        self.check_finite(events)
        self.world.check_same(f"{self.command} checkpoint {tag}", events, tensors)

        def save():
            pending = {**state, "events_offset": self.log.size(), "pending_events": events}
            save_checkpoint(self.run_dir.checkpoint, tensors, pending, tag=tag)
            self.log.write(events)

        self.world.on_main(save)
        for line in events:
            self.report(line)

    def check_finite(self, events: list[dict]) -> None:
        """A diverged step (NaN or inf anywhere in its events) is a UserError before its checkpoint
        (and before anything else of the step is written)."""
        for line in events:
            for name, value in _numbers(line):
                if not math.isfinite(value):
                    raise self.world.everywhere(
                        UserError(
                            f"the run diverged: {name} is {value} at {_position(line)}",
                            f"its last good checkpoint is kept; lower the learning rate ({self.command}.lr) in "
                            f"{self.run_dir.config} and resume with: {self.resume_command}",
                        )
                    )

    def emit(self, kind: str, **fields) -> dict:
        line = event(kind, **fields)
        self.world.on_main(lambda: self.log.write([line]))
        self.report(line)
        return line

    def _emit_here(self, kind: str, **fields) -> None:
        """Log how a failing run ended, without a collective (a peer may be gone): rank 0 writes."""
        line = event(kind, **fields)
        if self.world.main:
            self.log.write([line])
        self.report(line)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around a run's `run()`: its writer lock is released when it returns or fails."""
        try:
            yield
        finally:
            release_writer(self.run_dir.path)

    def guarded(self, loop: Callable[[], None], position: Callable[[], dict]) -> None:
        """Run `loop`, logging how it ended if it did not finish: Ctrl-C already checkpointed
        (Interrupted) passes through; a second Ctrl-C logs `interrupted` (the last checkpoint
        stands); an error logs `failed`. `position` says where the run was."""
        try:
            loop()
        except Interrupted:
            raise
        except KeyboardInterrupt:
            self._emit_here("status", state="interrupted", **position())
            raise
        except Exception as err:
            self._emit_here("status", state="failed", error=f"{type(err).__name__}: {err}", **position())
            raise


def _position(line: dict) -> str:
    """Which step an event belongs to, in words: "epoch 2", "sample n 3", "alpha step 2"."""
    kind = line["kind"]
    key = next((k for k in POSITION if k in line), None)
    if key is None:
        return f"{kind} (this step)"
    return f"{kind} {line[key]}" if key == kind else f"{kind} {key} {line[key]}"


def _numbers(value, name: str = "") -> Iterator[tuple[str, float]]:
    """(dotted name, number) of every float in an event, nested ones included."""
    if isinstance(value, float):
        yield name, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{name}.{key}" if name else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{name}[{i}]")
