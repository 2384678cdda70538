"""The ablation's picture in the manner of Fig. 6: the Child's test accuracy per setting, every
seed a small dot, the mean a large one with a bar of one standard deviation either side (means
joined by a line along beta_P). Drawn with Pillow, which torchvision already installs, so
plotting adds no dependency. Torch-free.
"""

import io
import math
import statistics

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 960, 600
LEFT, RIGHT, TOP, BOTTOM = 100, 30, 70, 120
INK, GRID, SEED, MEAN = (30, 30, 30), (225, 225, 225), (120, 160, 210), (20, 70, 150)


def chart_png(
    title: str, ylabel: str, labels: list[str], values: list[list[float]], notes: list[str], connect: bool
) -> bytes:
    """A PNG: one column per label holding that setting's values (one per seed); `notes` go under
    the labels (e.g. search time); `connect` joins the means (an ordered axis such as beta_P)."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    font, small = ImageFont.load_default(size=18), ImageFont.load_default(size=14)
    lo, hi = _range([v for column in values for v in column] + _spread_ends(values))
    y_of = lambda v: TOP + (hi - v) / (hi - lo) * (HEIGHT - TOP - BOTTOM)  # noqa: E731
    _axes(draw, image, lo, hi, y_of, small, ylabel)
    step = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    means = []
    for i, (label, column, note) in enumerate(zip(labels, values, notes, strict=True)):
        x = LEFT + (i + 0.5) * step
        draw.text((x, HEIGHT - BOTTOM + 12), label, fill=INK, font=font, anchor="ma")
        for row, line in enumerate(note.splitlines()):
            draw.text((x, HEIGHT - BOTTOM + 38 + 18 * row), line, fill=INK, font=small, anchor="ma")
        means.append(_column(draw, x, column, y_of) if column else None)
    if connect:
        points = [p for p in means if p is not None]
        if len(points) > 1:
            draw.line(points, fill=MEAN, width=2)
    draw.text((WIDTH / 2, 20), title, fill=INK, font=font, anchor="ma")
    _legend(draw, small)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _column(draw: ImageDraw.ImageDraw, x: float, column: list[float], y_of) -> tuple[float, float]:
    """Seeds as dots (side by side), the mean and its ±1 sd bar; returns the mean's point."""
    for j, v in enumerate(column):
        dx = (j - (len(column) - 1) / 2) * 9
        _dot(draw, x + dx, y_of(v), 4, SEED)
    mean = statistics.fmean(column)
    if len(column) > 1:
        sd = statistics.stdev(column)
        top, bottom = y_of(mean + sd), y_of(mean - sd)
        draw.line([(x + 22, top), (x + 22, bottom)], fill=MEAN, width=2)
        for y in (top, bottom):
            draw.line([(x + 16, y), (x + 28, y)], fill=MEAN, width=2)
    _dot(draw, x + 22 if len(column) > 1 else x, y_of(mean), 7, MEAN)
    return (x + 22 if len(column) > 1 else x, y_of(mean))


def _axes(draw, image, lo, hi, y_of, font, ylabel) -> None:
    step = _tick_step(hi - lo)
    tick = math.ceil(lo / step) * step
    while tick <= hi + 1e-9:
        y = y_of(tick)
        draw.line([(LEFT, y), (WIDTH - RIGHT, y)], fill=GRID)
        draw.text((LEFT - 8, y), f"{tick:g}", fill=INK, font=font, anchor="rm")
        tick += step
    draw.line([(LEFT, TOP), (LEFT, HEIGHT - BOTTOM), (WIDTH - RIGHT, HEIGHT - BOTTOM)], fill=INK, width=2)
    label = Image.new("RGB", (HEIGHT - TOP - BOTTOM, 24), "white")
    ImageDraw.Draw(label).text((label.width / 2, 12), ylabel, fill=INK, font=font, anchor="mm")
    image.paste(label.rotate(90, expand=True), (20, TOP))


def _legend(draw, font) -> None:
    x, y = WIDTH - RIGHT - 300, 48
    _dot(draw, x, y, 4, SEED)
    draw.text((x + 10, y), "one seed", fill=INK, font=font, anchor="lm")
    _dot(draw, x + 110, y, 7, MEAN)
    draw.text((x + 122, y), "mean ± 1 sd over seeds", fill=INK, font=font, anchor="lm")


def _dot(draw, x, y, r, fill) -> None:
    draw.ellipse([(x - r, y - r), (x + r, y + r)], fill=fill)


def _spread_ends(values: list[list[float]]) -> list[float]:
    ends = []
    for column in values:
        if len(column) > 1:
            mean, sd = statistics.fmean(column), statistics.stdev(column)
            ends += [mean - sd, mean + sd]
    return ends


def _range(numbers: list[float], floor: float = 0.5) -> tuple[float, float]:
    """An axis range: the data plus a margin, never narrower than `floor` either side (one point
    of accuracy by default; scores such as the random one live on smaller scales)."""
    if not numbers:
        return 0.0, 100.0
    lo, hi = min(numbers), max(numbers)
    pad = max(floor, 0.12 * (hi - lo))
    return lo - pad, hi + pad


def _tick_step(span: float) -> float:
    """1, 2 or 5 times a power of ten, giving four to ten ticks."""
    power = 10 ** math.floor(math.log10(span / 5))
    return next(m * power for m in (1, 2, 5, 10) if span / (m * power) <= 10)


PALETTE = ((20, 70, 150), (200, 80, 30), (40, 140, 60), (150, 50, 150), (120, 120, 120))


def scatter_png(
    title: str, xlabel: str, ylabel: str, points: list[tuple[float, float, int]], notes: list[str]
) -> bytes:
    """A PNG: one dot per (x, y), coloured by its seed (third item); `notes` (one line each) under
    the x label, e.g. each seed's tau and rho."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    font, small = ImageFont.load_default(size=18), ImageFont.load_default(size=14)
    lo, hi = _range([y for _, y, _ in points])
    x_lo, x_hi = _range([x for x, _, _ in points], floor=1e-6)
    y_of = lambda v: TOP + (hi - v) / (hi - lo) * (HEIGHT - TOP - BOTTOM)  # noqa: E731
    x_of = lambda v: LEFT + (v - x_lo) / (x_hi - x_lo) * (WIDTH - LEFT - RIGHT)  # noqa: E731
    _axes(draw, image, lo, hi, y_of, small, ylabel)
    step = _tick_step(x_hi - x_lo)
    tick = math.ceil(x_lo / step) * step
    while tick <= x_hi + 1e-12:
        draw.text((x_of(tick), HEIGHT - BOTTOM + 8), f"{tick:.4g}", fill=INK, font=small, anchor="ma")
        tick += step
    seeds = sorted({s for _, _, s in points})
    for x, y, s in points:
        _dot(draw, x_of(x), y_of(y), 5, PALETTE[seeds.index(s) % len(PALETTE)])
    draw.text((WIDTH / 2, HEIGHT - BOTTOM + 30), xlabel, fill=INK, font=font, anchor="ma")
    for row, line in enumerate(notes[:3]):
        draw.text((WIDTH / 2, HEIGHT - BOTTOM + 56 + 18 * row), line, fill=INK, font=small, anchor="ma")
    draw.text((WIDTH / 2, 20), title, fill=INK, font=font, anchor="ma")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
