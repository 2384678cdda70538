"""`WatchApp`: the live dashboard of a search or training run, fed only by the reader thread.

The follower thread (follow.py) posts LogRead messages; the app folds their events into a
RunState and shows it to every panel. While paused (`f`), messages are held back unapplied, so
the screen stays as it was, and are applied in order when following resumes.
"""

from pathlib import Path
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from cpnas_cli.runs import RUNS_ROOT

from .alpha_panels import AlphaChart, PhasePanel, WeightsTable
from .follow import POLL_SECONDS, LogFailed, LogFollower, LogFound, LogRead, Waiting
from .panel import Panel
from .ranking import RankingTable
from .search_panels import GapPanel, GenotypePanel, KPanel, SamplePanel
from .state import RunState, Unreadable
from .status import StatusLine
from .train_panels import AccuracyPanel, EpochPanel, LossPanel

WIDE, TALL = 160, 36  # terminal sizes from which both cells, and more panels, fit

HELP = """[b]cpnas watch[/b] · a live view of a run's event log (events.jsonl)

[b]q[/b] quit   [b]tab[/b] normal/reduction cell   [b]f[/b] follow/pause   [b]?[/b] help

[b]Ranking[/b]: each edge i→j lists its ops by the indicator e (Eq. 2), best
first, each with its mean score z̄ (Eq. 1, percent) where the row has room:
e is a softmax over the edge's z̄ since the last pruning, with accuracy read
as a fraction (the header says "e (fraction)"; logs from before this was
recorded read it in percent, where a few points already give 1.000); live
from the first sample; at the end of a K stage, the search's own ranking.
From K = 2 on, Δ is the leader's z̄ minus the other op's: the margin that
orders a node's inputs in the genotype.
[green b]green[/] leader · [u]underlined[/] in the latest sample · [dim s]struck[/] K8: pruned
at K=8 · [b]·[/b] no score yet in this stage.
sep3/5 = sep_conv_3x3/5x5 · dil3/5 = dil_conv_3x3/5x5 · avg3, max3: pools
[b]K[/b]: ops per edge over the plan of samples (bright: done), round, ETA.
[b]Child / Parent[/b]: validation accuracy of the 1-bit Child ([cyan]A_C[/]), the
full-precision Parent ([magenta]A_P[/]) and the gap ([yellow]A_P - A_C[/]) per sample;
z = A_C + beta_P (A_P - A_C) (Eq. 1) scores every op of the sample.
Training runs show loss and accuracy per epoch instead. pc-darts/dcp searches
show softmax(alpha) per edge (* kept now, β edge weight) and each phase.
Paused, the screen keeps still; new events wait for f.

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
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("tab", "switch_cell", "normal/reduction", priority=True),
        Binding("f", "toggle_follow", "follow/pause"),
        Binding("question_mark", "help", "help", key_display="?"),
    ]
    # textual declares these two `ClassVar[...] | None`, which mypy reads as instance variables
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (WIDE, "-wide")]  # type: ignore[misc]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-short"), (TALL, "-tall")]  # type: ignore[misc]

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
        with Vertical(id="differentiable"):
            with Horizontal(id="weights"):
                yield WeightsTable("normal", id="weights-normal")
                yield WeightsTable("reduce", id="weights-reduce")
            with Grid(id="diff-panels"):
                yield PhasePanel(id="phase")
                yield GenotypePanel(id="diff-genotype")
                yield AlphaChart(id="alpha-chart")
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
            try:
                self.state.apply(event)
            except Unreadable as err:
                self.board.query_one(StatusLine).skipped += 1
                self.notify(f"skipped {err}", severity="warning", timeout=8)
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
        board.set_class(s.run != "train" and s.differentiable, "-differentiable")
        board.set_class(s.genotype is not None, "-done")
        board.set_class(self.cell == "reduce", "-reduce")
        for panel in board.query(Panel):
            panel.show(s)
        self.refresh_bindings()

    def check_action(self, action: str, parameters) -> bool | None:
        """A training run has no cells to switch: hide the key then."""
        return not (action == "switch_cell" and self.state.run == "train")

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
