"""The top line: run state, progress, ETA, speed, which run, and what the dashboard is doing."""

import time
from pathlib import Path

from rich.text import Text

from .panel import Panel, duration

BADGES = {
    "waiting": ("…", "bold white on grey30"),
    "running": ("●", "bold black on green"),
    "finished": ("✔", "bold white on blue"),
    "interrupted": ("‖", "bold black on yellow"),
    "failed": ("✗", "bold white on red"),
}
QUIET_SECONDS = 60  # a running log silent this long (and 3 steps' time) may belong to a dead process


def shown(log: Path) -> str:
    """The run directory as the user would type it: relative to here when it is below here."""
    run = log.parent if log.name == "events.jsonl" else log
    try:
        return str(run.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(run)


class StatusLine(Panel):
    """Set `path`, `held` (events waiting while paused, None when following) and `skipped`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.path: Path | None = None
        self.held: int | None = None
        self.skipped = 0

    def lines(self, width: int, height: int) -> list[Text]:
        s, now = self.state, time.time()
        icon, style = BADGES.get(s.state, ("?", "reverse"))
        line = Text.assemble((f" {icon} {s.state} ", style))
        if s.state == "failed":
            line.append(f" {s.status.get('error', '')}", style="red")
        if s.header:
            unit = "epoch" if s.run == "train" else "phase" if s.differentiable else "sample"
            last = (s.steps() or [{}])[-1]
            line.append(f"  {s.run} · {unit} {len(s.steps())}/{s.total_steps()}")
            if s.eta(now) is not None:
                line.append(f" · ETA {duration(s.eta(now))}", style="bold")
            if s.state == "finished" and s.status.get("elapsed") is not None:
                line.append(f" · took {duration(s.status['elapsed'])}")
            if last.get("images_per_s"):
                line.append(f" · {last['images_per_s']:.0f} img/s")
            quiet = max(QUIET_SECONDS, 3 * (last.get("seconds") or 0))
            if s.state == "running" and s.last_t and now - s.last_t > quiet:
                line.append(f" · last event {duration(now - s.last_t)} ago", style="yellow")
        if self.held is not None:
            line.append(f"  PAUSED, {self.held} new events (f follows)", style="bold black on yellow")
        if self.skipped:
            line.append(f"  {self.skipped} bad line{'s' * (self.skipped > 1)} skipped", style="yellow")
        if self.path is not None:
            line.append(f"  {shown(self.path)}", style="dim")
        return [line]
