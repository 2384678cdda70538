"""The base of every dashboard panel: drawn from the RunState, redrawn when shown a new one."""

from rich.text import Text
from textual.widget import Widget

from .state import RunState


class Panel(Widget):
    """`show(state)` is the panel's only input; `lines(width, height)` draws it to fit its box."""

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.state = RunState()

    def show(self, state: RunState) -> None:
        self.state = state
        self.border_title = self.title()
        self.refresh()

    def title(self) -> str:
        return ""

    def render(self) -> Text:
        size = self.content_size
        lines = self.lines(size.width, size.height)[: max(size.height, 1)]
        for line in lines:
            line.truncate(size.width)
        return Text("\n").join(lines)

    def lines(self, width: int, height: int) -> list[Text]:
        raise NotImplementedError


def duration(seconds: float | None) -> str:
    """3s, 2m14s, 1h05m: short enough for a status line."""
    if seconds is None:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


SHORT = {
    "zero": "zero",
    "skip": "skip",
    "dil_conv_3x3": "dil3",
    "dil_conv_5x5": "dil5",
    "avg_pool_3x3": "avg3",
    "max_pool_3x3": "max3",
    "sep_conv_3x3": "sep3",
    "sep_conv_5x5": "sep5",
}


def short(op: str) -> str:
    """A 4-letter op name for narrow tables (see the help screen for the key)."""
    return SHORT.get(op, op[:4])
