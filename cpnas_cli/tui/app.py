"""`WatchApp`: the live dashboard of a search or training run, fed only by the reader thread.

The follower thread (follow.py) posts LogRead messages; the app folds their events into a
RunState and shows it to every panel. While paused (`f`), messages are held back unapplied, so
the screen stays as it was, and are applied in order when following resumes.
"""

from pathlib import Path

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from ..runs import RUNS_ROOT
from .follow import POLL_SECONDS, LogFailed, LogFollower, LogFound, LogRead, Waiting
from .panel import SHORT, Panel
from .ranking import RankingTable
from .search_panels import GapPanel, GenotypePanel, KPanel, SamplePanel
from .state import RunState
from .status import StatusLine
from .train_panels import AccuracyPanel, EpochPanel, LossPanel

WIDE, TALL = 160, 36  # terminal sizes from which both cells, and more panels, fit

HELP = f"""[b]cpnas watch[/b]: a live view of a run's event log (runs/<id>/events.jsonl)

[b]Keys[/b]   q quit · tab normal/reduction cell · f follow/pause · ? this help

[b]Ranking[/b]  every edge (node→node) lists its ops by the indicator e of Eq. 2, best first.
  e is live: a softmax over the mean score z of each op since the last pruning; at
  the end of a K stage it is the search's own ranking. [green b]Green[/]: leader; [u]underlined[/]:
  in the latest sample; [dim s]struck[/] K8: pruned when K was 8; · : no score yet.
  {" ".join(f"{v}={k}" for k, v in SHORT.items() if v != k)}
[b]K[/b]  ops per edge over the whole plan of samples (bright: done), round and ETA.
[b]Child / Parent[/b]  validation accuracy of the 1-bit Child ([cyan]A_C[/]) and the
  full-precision Parent ([magenta]A_P[/]), and their gap ([yellow]A_P - A_C[/]) per sample;
  z = A_C + beta_P (A_P - A_C) (Eq. 1) is the score every op of the sample gets.
[b]Training runs[/b] show loss and Child/Parent accuracy per epoch instead.

Paused, the screen keeps still and new events wait; f applies them.
Any key closes this help."""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: auto; max-width: 100%; height: auto; max-height: 100%;
                          border: round $accent; padding: 0 1; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        yield Static(HELP)

    def on_key(self, event) -> None:
        event.stop()
        self.dismiss()


class WatchApp(App[None]):
    CSS_PATH = "watch.tcss"
    TITLE = "cpnas watch"
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("tab", "switch_cell", "normal/reduction", priority=True),
        Binding("f", "toggle_follow", "follow/pause"),
        Binding("question_mark", "help", "help", key_display="?"),
    ]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (TALL, "-tall")]

    def __init__(self, target: Path | None, root: Path = RUNS_ROOT, interval: float = POLL_SECONDS):
        super().__init__()
        self.state = RunState()
        self.held: list[LogRead] | None = None  # None: following
        self.error: str | None = None  # why following stopped, for the command to report
        self.cell = "normal"
        self.failure_shown: str | None = None
        self.follower = LogFollower(target, self.post_message, root, interval)

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield Static("Starting...", id="waiting")
        with Vertical(id="search"):
            with Horizontal(id="rankings"):
                yield RankingTable("normal", id="rank-normal")
                yield RankingTable("reduce", id="rank-reduce")
            with Grid(id="search-panels"):
                yield KPanel(id="k")
                yield GenotypePanel(id="genotype")
                yield SamplePanel(id="sample")
                yield GapPanel(id="gap")
        with Grid(id="train"):
            yield AccuracyPanel(id="accuracy")
            yield LossPanel(id="loss")
            yield EpochPanel(id="epoch")
            yield GenotypePanel(id="train-genotype")
        yield Footer()

    def on_mount(self) -> None:
        self._redraw()
        self.follower.start()
        self.set_interval(1.0, self._tick)  # ETA and "last event ... ago" move with the clock

    def on_unmount(self) -> None:
        self.follower.stop()

    # --- messages from the reader thread --------------------------------------------------

    def on_log_found(self, message: LogFound) -> None:
        self.board.query_one(StatusLine).path = message.path
        self.board.query_one("#waiting", Static).update(f"Reading {message.path} ...")

    def on_waiting(self, message: Waiting) -> None:
        self.board.query_one("#waiting", Static).update(message.text)

    def on_log_failed(self, message: LogFailed) -> None:
        self.error = message.text
        self.exit(return_code=2)

    def on_log_read(self, message: LogRead) -> None:
        status = self.board.query_one(StatusLine)
        status.skipped += len(message.notices)
        for notice in message.notices:
            self.notify(f"line {notice.line} of the log: {notice.text}", severity="warning", timeout=8)
        if self.held is not None:
            self.held.append(message)
            status.held = sum(len(m.events) for m in self.held)
            status.refresh()
            return
        self._apply(message)
        self._redraw()

    def _apply(self, message: LogRead) -> None:
        if message.reset:
            self.state = RunState()
        for event in message.events:
            self.state.apply(event)
        error = self.state.status.get("error")
        if self.state.state == "failed" and error != self.failure_shown:
            self.failure_shown = error
            self.notify(error or "the run failed", title="run failed", severity="error", timeout=30)

    # --- drawing ----------------------------------------------------------------------------

    @property
    def board(self):
        """The dashboard's screen (the help screen may be on top of it)."""
        return self.screen_stack[0]

    def _redraw(self) -> None:
        s, board = self.state, self.board
        board.set_class(s.header is None, "-waiting")
        board.set_class(s.run == "train", "-train")
        board.set_class(s.genotype is not None, "-done")
        board.set_class(self.cell == "reduce", "-reduce")
        for panel in board.query(Panel):
            panel.show(s)

    def _tick(self) -> None:
        if self.held is None and self.state.state == "running":
            for panel in self.board.query("StatusLine, KPanel, EpochPanel"):
                panel.refresh()

    # --- keys ---------------------------------------------------------------------------------

    def action_switch_cell(self) -> None:
        self.cell = "reduce" if self.cell == "normal" else "normal"
        self.board.set_class(self.cell == "reduce", "-reduce")
        if self.board.has_class("-wide"):
            self.notify("Both cells are on screen at this width.", timeout=2)

    def action_toggle_follow(self) -> None:
        status = self.board.query_one(StatusLine)
        if self.held is None:
            self.held, status.held = [], 0
            status.refresh()
            return
        held, self.held, status.held = self.held, None, None
        for message in held:
            self._apply(message)
        self._redraw()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())
