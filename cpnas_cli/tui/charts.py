"""Braille line charts for the panels, as rich Text lines.

A braille character holds 2x4 dots, so a chart of w x h characters has 2w x 4h points: enough
for a readable curve at 80x24. The values spread over the whole width (callers pad a series
with None up to its planned length, so the x axis is the run's plan); with more values than
dot columns, several share a column and the whole history stays visible, compressed.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text

BRAILLE = 0x2800
DOT = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [row within the char][column]


@dataclass
class Series:
    values: Sequence[float | None]  # None: no point there
    style: str


def _column(i: int, n: int, columns: int) -> int:
    """Dot column of value i of n: the n values spread over the full width (compressed if more)."""
    return i * (columns - 1) // max(n - 1, 1)


def bounds(series: list[Series], pad: float = 0.0) -> tuple[float, float]:
    values = [v for s in series for v in s.values if v is not None]
    if not values:
        return 0.0, 1.0
    lo, hi = min(values) - pad, max(values) + pad
    return (lo, hi) if hi > lo else (lo - 1, hi + 1)


def line_chart(series: list[Series], width: int, height: int, lo: float, hi: float, axis: str = "{:.0f}") -> list[Text]:
    """`height` lines of `width` cells: a left axis with hi/lo labels, then the curves.
    Later series are drawn over earlier ones where they meet."""
    labels = [axis.format(hi), axis.format(lo)]
    gutter = max(len(s) for s in labels) + 1
    cols, rows = max(1, width - gutter) * 2, height * 4
    dots = [[0] * (cols // 2) for _ in range(height)]
    styles = [[""] * (cols // 2) for _ in range(height)]
    n = max((len(s.values) for s in series), default=0)

    def plot(x: int, y: int, style: str) -> None:
        row = rows - 1 - y  # dot rows count from the top
        dots[row // 4][x // 2] |= DOT[row % 4][x % 2]
        styles[row // 4][x // 2] = style

    for s in series:
        previous = None
        for i, v in enumerate(s.values):
            if v is None:
                previous = None
                continue
            point = (_column(i, n, cols), round((min(max(v, lo), hi) - lo) / (hi - lo) * (rows - 1)))
            for x, y in _segment(previous or point, point):
                plot(x, y, s.style)
            previous = point
    lines = []
    for r in range(height):
        label = labels[0] if r == 0 else labels[1] if r == height - 1 else ""
        line = Text.assemble((label.rjust(gutter - 1) + ("┤" if label else "│"), "dim"))
        for bits, style in zip(dots[r], styles[r], strict=True):
            line.append(chr(BRAILLE + bits), style=style)
        lines.append(line)
    return lines


def _segment(a: tuple[int, int], b: tuple[int, int]):
    """The dots of a straight line from a to b (x never decreases), gap-free in both directions."""
    (x0, y0), (x1, y1) = a, b
    last = y0
    for x in range(x0, x1 + 1):
        y = y1 if x1 == x0 else round(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
        for yy in range(min(last, y), max(last, y) + 1):
            yield x, yy
        last = y
