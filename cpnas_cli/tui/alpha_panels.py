"""The panels of a differentiable search (pc-darts, dcp), fed by its `alpha` events: the
architecture weights of one cell, the latest phase, and accuracy per phase.

The weights table lists, per edge, the ops by softmax(alpha), strongest first; the best op other
than zero (the one the DARTS rule would take) is the leader, and a `*` marks the edges the rule
keeps right now. With PC-DARTS edge normalisation each edge also shows its weight beta among the
inputs of its node. For DCP the weights are the Child's (its genotype is the search's result).
"""

from rich.text import Text

from .charts import Series, bounds, line_chart
from .panel import Panel
from .ranking import LEADER, edge_lines
from .search_panels import CHILD, GAP, PARENT
from .state import Ranked

LABELS = {
    "loss": "train loss",
    "train_acc": "train acc",
    "arch_loss": "arch loss",
    "kl": "KL",
    "recon": "L_R",
    "arch_agreement": "G",
    "tangent_distance": "D",
    "penalty_share": "penalty share",
    "backtrack": "backtrack",
}


class WeightsTable(Panel):
    """The architecture weights of one cell type (`cell`: normal or reduce)."""

    def __init__(self, cell: str, **kwargs):
        super().__init__(**kwargs)
        self.cell = cell

    def lines(self, width: int, height: int) -> list[Text]:
        s, last = self.state, self.state.latest_alpha
        name = "reduction" if self.cell == "reduce" else self.cell
        whose = "Child " if last and "weights_parent" in last else ""
        where = f"phase {last['step']}/{last['total']}" if last else "no phase finished yet"
        head = Text(f" {name} cell · {whose}softmax(alpha) per edge · {where}", style="bold reverse")
        hint = "" if self.screen.has_class("-wide") else " tab: other cell "
        head.pad_right(max(0, width - len(head) - len(hint)))
        head.append(hint, style="reverse")
        if last is None or self.cell not in last["weights"]:
            return [head]
        kept = kept_edges(last["genotype"].get(self.cell, {}), s.edges)
        beta = (last.get("edge_weights") or {}).get(self.cell)
        labels = [
            f"{'*' if i in kept else ' '}{a}→{b}" + (f" β{beta[i]:.2f}" if beta else "")
            for i, (a, b) in enumerate(s.edges)
        ]
        pad = max(map(len, labels), default=0)
        rows = [ranked(weights) for weights in last["weights"][self.cell]]
        legend = Text.assemble(
            ("best non-zero op", LEADER),
            ("  * kept by the DARTS rule now", "dim"),
            ("  β: edge weight" if beta else "", "dim"),
        )
        return [head, *edge_lines([label.ljust(pad) for label in labels], rows, width), legend]


def ranked(weights: dict[str, float]) -> list[Ranked]:
    rows = [Ranked(op, w) for op, w in sorted(weights.items(), key=lambda item: -item[1])]
    leader = next((r for r in rows if r.op != "zero"), None)
    if leader is not None:
        leader.leader = True
    return rows


def kept_edges(cell: dict, edges: list[tuple[int, int]]) -> set[int]:
    """Indices of the edges (source, node) that the genotype's nodes take as inputs."""
    chosen = {(e.get("input"), n + 2) for n, node in enumerate(cell.get("nodes") or []) for e in node}
    return {i for i, edge in enumerate(edges) if tuple(edge) in chosen}


class PhasePanel(Panel):
    """The latest phase: its role and place, accuracies, losses and architecture-step figures."""

    def title(self) -> str:
        last = self.state.latest_alpha
        return f"phase {last['step']}/{last['total']} · {last['role']}" if last else "phase"

    def lines(self, width: int, height: int) -> list[Text]:
        x = self.state.latest_alpha
        if x is None:
            return [Text("no phase finished yet", style="dim")]
        phrases = [f"epoch {x.get('epoch', 0):.3f}", f"lr {x.get('lr', 0):.4f}", f"{x.get('arch_steps', 0)} arch steps"]
        lines = [accuracy_line(x), *wrap(phrases, width)]
        lines += wrap([f"{label} {x[key]:.4g}" for key, label in LABELS.items() if key in x], width)
        if "weights_parent" in x:
            # strict=False: a cell type missing from the Parent's weights counts no edges
            differ = sum(
                best(c) != best(p)
                for cell in x["weights"]
                for c, p in zip(x["weights"][cell], x["weights_parent"].get(cell, []), strict=False)
            )
            lines += wrap(["Parent and Child prefer", f"different ops on {differ} edges"], width, " ")
        lines += [
            Text(line.plain, style="dim")
            for line in wrap([f"{x.get('images', 0)} images", f"{x.get('seconds', 0):.1f} s"], width)
        ]
        return lines


def wrap(phrases: list[str], width: int, sep: str = " · ") -> list[Text]:
    """Phrases joined by `sep`, broken between phrases to fit `width`."""
    lines, line = [], ""
    for phrase in phrases:
        if line and len(line) + len(sep) + len(phrase) > width:
            lines.append(line)
            line = phrase
        else:
            line = f"{line}{sep}{phrase}" if line else phrase
    return [Text(text) for text in [*lines, line] if text]


def best(weights: dict[str, float]) -> str:
    return max((op for op in weights if op != "zero"), key=lambda op: weights[op], default="zero")


def accuracy_line(x: dict) -> Text:
    text = Text.assemble(("A_C ", CHILD), f"{x.get('acc_child', 0):.1f}")
    if "acc_parent" in x:
        text.append_text(
            Text.assemble(
                "  ",
                ("A_P ", PARENT),
                f"{x['acc_parent']:.1f}  ",
                ("gap ", GAP),
                f"{x['acc_parent'] - x['acc_child']:+.1f}",
            )
        )
    return text


class AlphaChart(Panel):
    """Validation accuracy of the supernet(s) after every phase, over the whole plan."""

    def title(self) -> str:
        return "validation accuracy per phase"

    def lines(self, width: int, height: int) -> list[Text]:
        s = self.state
        if not s.alphas:
            return [Text("no phase finished yet", style="dim")]
        pad: list[float | None] = [None] * max(0, s.total_steps() - len(s.alphas))
        child: list[float | None] = [x.get("acc_child") for x in s.alphas]
        series = [Series(child + pad, CHILD)]
        if "acc_parent" in s.alphas[-1]:
            parent: list[float | None] = [x.get("acc_parent") for x in s.alphas]
            gap = [None if c is None or p is None else p - c for c, p in zip(child, parent, strict=True)]
            series = [
                Series(gap + pad, GAP),
                *series,
                Series(parent + pad, PARENT),
            ]
        lo, hi = bounds(series)
        return [*line_chart(series, width, max(1, height - 1), lo, hi), accuracy_line(s.alphas[-1])]
