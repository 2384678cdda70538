"""The reader thread: finds the run's event log, follows it, and posts what it reads as messages.

The dashboard's widgets never touch the file; they react to these messages. The thread polls
(a stat and, when the log grew, one read of the new bytes) a few times a second, which costs
the search nothing measurable and keeps the dashboard within a second of the log.
"""

import threading
from collections.abc import Callable
from pathlib import Path

from textual.message import Message

from cpnas_cli.events import EventReader, Notice, SchemaError
from cpnas_cli.runs import RUNS_ROOT, RunDir, latest_run

POLL_SECONDS = 0.25
UPGRADE = "upgrade cpnas to watch this run"


class LogFound(Message):
    """The log to follow exists now."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path


class LogRead(Message):
    """New complete events; `reset`: the log was rewritten, rebuild from these."""

    def __init__(self, events: list[dict], reset: bool, notices: list[Notice]):
        super().__init__()
        self.events, self.reset, self.notices = events, reset, notices


class Waiting(Message):
    """Nothing to read yet, and why (shown to the user)."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text


class LogFailed(Message):
    """The log cannot be read (a newer schema, no permission): following stops."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text


def log_path(target: Path) -> Path:
    """A run directory's events.jsonl, or the log itself when given a file."""
    return target if target.suffix == ".jsonl" else RunDir(target).events


class LogFollower(threading.Thread):
    """Follows `target` (a run directory or an events.jsonl), or the latest run under `root`
    when `target` is None, posting LogFound, then LogRead for every batch of new lines."""

    def __init__(
        self,
        target: Path | None,
        post: Callable[[Message], object],
        root: Path = RUNS_ROOT,
        interval: float = POLL_SECONDS,
    ):
        super().__init__(name="cpnas-log-follower", daemon=True)
        self.target, self.post, self.root, self.interval = target, post, root, interval
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        path = self._wait_for_log()
        if path is None:
            return
        self.post(LogFound(path))
        reader = EventReader(path)
        while not self.stopped.is_set():
            try:
                events, reset = reader.read()
            except SchemaError as err:
                self.post(LogFailed(f"{err}: {UPGRADE}"))
                return
            except OSError as err:
                self.post(LogFailed(f"cannot read {path} ({err.strerror})"))
                return
            notices, reader.notices = reader.notices, []
            if events or reset or notices:
                self.post(LogRead(events, reset, notices))
            self.stopped.wait(self.interval)

    def _wait_for_log(self) -> Path | None:
        """Poll until the log exists, saying once per change what is awaited."""
        said = None
        while not self.stopped.is_set():
            path, text = self._look()
            if path is not None:
                return path
            if text != said:
                self.post(Waiting(text))
                said = text
            self.stopped.wait(self.interval)
        return None

    def _look(self) -> tuple[Path | None, str]:
        if self.target is None:
            run = latest_run(self.root)
            if run is None:
                return None, f"Waiting for a run under {self.root}/ to start (cpnas search or cpnas train)."
            path = run.events
        else:
            path = log_path(self.target)
        if path.is_file():
            return path, ""
        where = path.parent if path.name == "events.jsonl" else path
        if not where.exists():
            return None, f"Waiting for {where} to be created (the run has not started yet)."
        return None, f"Waiting for {path} (the run has not written its log yet)."
