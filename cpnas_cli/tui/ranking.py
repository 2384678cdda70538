"""The ranking table of one cell: per edge, the alive ops ordered by the indicator e (Eq. 2), each
with its mean z where the row has room, the leader highlighted, the op of the latest sample
underlined, pruned ops struck with their K; from K = 2 on, the margin that orders a node's inputs."""

from rich.text import Text

from .panel import Panel, short

LEADER, SAMPLED, PRUNED = "bold green", "underline", "dim strike"


def format_e(e: float | None) -> str:
    """e in 4-5 characters: .974, 1.000, 3e-5 (softmax values of one search span many decades)."""
    if e is None:
        return "·"
    if e >= 0.0005:
        text = f"{e:.3f}"
        return text[1:] if text.startswith("0") else text
    return "0" if e == 0 else f"{e:.0e}".replace("e-0", "e-")


def _tokens(rows, full: bool, spaced: bool, with_z: bool) -> list[Text]:
    join = " " if spaced else ""
    tokens = []
    for r in rows:
        name = r.op if full else short(r.op)
        if r.pruned_at is not None:
            tokens.append(Text.assemble((name, PRUNED), (f"{join}K{r.pruned_at}", "dim")))
        else:
            style = " ".join(s for s, on in ((LEADER, r.leader), (SAMPLED, r.sampled)) if on)
            # unspaced, "sep5" + "1e-4" would read as one word: a colour marks where the value starts
            value_style = ("bold " if r.leader else "") + ("" if spaced else "cyan")
            token = Text.assemble((name, style), (join + format_e(r.e), value_style.strip()))
            if with_z and r.z is not None:
                token.append(f" {r.z:.1f}", "dim")
            tokens.append(token)
    return tokens


def edge_lines(labels: list[str], edges: list, width: int, tails: list[str] | None = None) -> list[Text]:
    """One row per edge, all in one style: full op names with their mean z if every row fits,
    else 4-letter names, else with no space between name and value, else without the mean z.
    `tails` end the rows (e.g. the K = 2 margin)."""
    tails = tails or [""] * len(labels)
    # strict=False: the labels come from the header, the rows from the events; the dashboard shows
    # the edges both name rather than fail on a log whose header names fewer
    for full, spaced, with_z in LADDER:
        rows = [
            (label, _tokens(ranked, full, spaced, with_z), tail)
            for label, ranked, tail in zip(labels, edges, tails, strict=False)
        ]
        if all(len(label) + sum(len(t) + 1 for t in tokens) + len(tail) <= width for label, tokens, tail in rows):
            break
    return [Text.assemble((label + " ", "dim"), Text(" ").join(tokens), (tail, "bold")) for label, tokens, tail in rows]


LADDER = ((True, True, True), (False, True, True), (False, False, True), (False, True, False), (False, False, False))


class RankingTable(Panel):
    """The ranking of one cell type (`cell`: normal or reduce)."""

    def __init__(self, cell: str, **kwargs):
        super().__init__(**kwargs)
        self.cell = cell

    def lines(self, width: int, height: int) -> list[Text]:
        s = self.state
        name = "reduction" if self.cell == "reduce" else self.cell
        values = f"e ({'fraction' if s.scale == 'fraction' else 'percent'}) z̄ (%)"
        head = Text(f" {name} cell · {values} · {s.ranking_source() if s.header else ''}", style="bold reverse")
        hint = "" if self.screen.has_class("-wide") else " tab: other cell "
        head.pad_right(max(0, width - len(head) - len(hint)))
        head.append(hint, style="reverse")
        if self.cell not in s.remaining:
            return [head, Text("this log has no ranking for this cell", style="dim")]
        labels = [f"{a}→{b}" for a, b in s.edges]
        pad = max(map(len, labels), default=0)
        margins = [s.margin(self.cell, i) for i in range(len(labels))]
        body = edge_lines(
            [label.rjust(pad) for label in labels],
            [s.edge_rows(self.cell, i) for i in range(len(labels))],
            width,
            ["" if m is None else f" Δ{m:+.1f}" for m in margins],
        )
        legend = Text.assemble(
            ("leader", LEADER),
            "  ",
            ("in latest sample", SAMPLED),
            "  ",
            ("pruned", PRUNED),
            (" K8: went at K=8", "dim"),
            ("   · no score yet", "dim"),
        )
        return [head, *body, legend]
