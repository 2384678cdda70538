"""What `cpnas search` shows: a live progress display fed by the engine's events, and the result table."""

from rich import box
from rich.console import Console
from rich.progress import TextColumn, TimeRemainingColumn
from rich.table import Table

from ._progress_view import ProgressView, progress_bars


class SearchProgress(ProgressView):
    """Two bars (samples of the whole search, batches of the current sample) and a status line
    with K, round, sample, A_C, A_P and z of the latest sample. Call it with each event."""

    def __init__(self, console: Console, total: int, done: int = 0):
        self.progress = progress_bars(console, TextColumn("ETA"), TimeRemainingColumn())
        self.samples = self.progress.add_task("search ", total=total, completed=done, info="")
        self.batches = self.progress.add_task("  sample", total=1, completed=0, info="")

    def __call__(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "progress":
            self.progress.update(
                self.batches,
                total=event["batches"],
                completed=event["batch"],
                description=f"  {event.get('unit', 'sample')} {event['n']}",
            )
        elif kind == "sample":
            info = (
                f"K={event['K']} round {event['round']} sample {event['index']}/{event['K']}  "
                f"A_C {event['acc_child']:.1f}%  A_P {event['acc_parent']:.1f}%  z {event['z']:.2f}  "
                f"{event['images_per_s']:.0f} img/s"
            )
            self.progress.update(self.samples, completed=event["n"], info=info)
        elif kind == "alpha":
            parent = f"  A_P {event['acc_parent']:.1f}%" if "acc_parent" in event else ""
            info = (
                f"{event['role']} to epoch {event['epoch']:.2f}  A_C {event['acc_child']:.1f}%{parent}  "
                f"{event['images_per_s']:.0f} img/s"
            )
            self.progress.update(self.samples, completed=event["step"], info=info)
        elif kind == "prune":
            self.progress.console.print(_prune_line(event), highlight=False)


def _prune_line(event: dict) -> str:
    counts: dict[str, int] = {}
    for ops in event["removed"].values():
        for op in ops:
            counts[op] = counts.get(op, 0) + 1
    removed = ", ".join(f"{op} x{n}" for op, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"[bold]K {event['K']} -> {event['K'] - 1}[/]: removed {removed}"


def survivors_table(events: list[dict]) -> Table:
    """The op left on every edge with the numbers that chose it, from the log's prune and ranking
    events: its e and mean z at the last ranking (K = 2), and the margin of that z over the other
    op's, which is what orders a node's inputs in the genotype (a differentiable search's log has
    neither: its final weights are shown instead)."""
    head = events[0]
    alphas = [e for e in events if e["kind"] == "alpha"]
    if alphas:
        return weights_table(head, alphas[-1])
    remaining = {cell: [list(head["ops"]) for _ in head["edges"]] for cell in head["cells"]}
    last: dict = {}
    for event in events:
        if event["kind"] == "prune":
            for cell, ops in event["removed"].items():
                for edge, op in enumerate(ops):
                    remaining[cell][edge].remove(op)
        elif event["kind"] == "ranking":
            last = event
    scale = last.get("scale", head.get("indicator_scale", "percent"))
    table = Table(
        title=f"Surviving operation per edge, at the last ranking (K={last.get('K', '-')})",
        caption=f"e: Eq. 2 with accuracy as a {'fraction' if scale == 'fraction' else 'percentage'} · z̄: mean z (%) · "
        "Δ: z̄ minus the other op's (orders a node's inputs)",
        box=box.SIMPLE_HEAD,  # 9 columns: without rules between them they fit 80 characters
        collapse_padding=True,
    )
    table.add_column("edge")
    for cell in remaining:
        table.add_column(f"{cell} cell", no_wrap=True)
        table.add_column("e", justify="right")
        table.add_column("z̄", justify="right")
        table.add_column("Δ", justify="right")
    for i, (src, dst) in enumerate(head["edges"]):
        row = [f"{src} -> {dst}"]
        for cell, per_edge in remaining.items():
            row += [" / ".join(per_edge[i]), *_decided(last, cell, i, per_edge[i])]
        table.add_row(*row)
    return table


def _decided(ranking: dict, cell: str, edge: int, alive: list[str]) -> list[str]:
    """e, z̄ and the margin of an edge's survivor in `ranking` ("-" while more than one op is alive
    or a ranking lacks them: abandit's carry bounds, not mean z)."""
    if len(alive) != 1 or "mean_z" not in ranking:
        return ["-", "-", "-"]
    op, means = alive[0], ranking["mean_z"][cell][edge]
    others = [z for other, z in means.items() if other != op]
    margin = f"{means[op] - max(others):+.1f}" if others else "-"
    return [f"{ranking['indicator'][cell][edge][op]:.3f}", f"{means[op]:.1f}", margin]


def weights_table(head: dict, last: dict) -> Table:
    """A differentiable search's result: per edge, the strongest op other than zero, its softmax
    weight (times the edge weight with edge normalisation), and * where the DARTS rule keeps it."""
    table = Table(title="Strongest non-zero op per edge after the last phase (* kept by the DARTS rule)")
    table.add_column("edge")
    for cell in head["cells"]:
        table.add_column(f"{cell} cell")
        table.add_column("weight", justify="right")
    kept = {
        cell: {(e["input"], n + 2) for n, node in enumerate(last["genotype"][cell]["nodes"]) for e in node}
        for cell in head["cells"]
    }
    for i, (src, dst) in enumerate(head["edges"]):
        row = [f"{src} -> {dst}"]
        for cell in head["cells"]:
            weights = last["weights"][cell][i]
            op = max((o for o in weights if o != "zero"), key=weights.get)
            scale = last.get("edge_weights", {}).get(cell, [1.0] * len(head["edges"]))[i]
            row += [("* " if (src, dst) in kept[cell] else "  ") + op, f"{weights[op] * scale:.3f}"]
        table.add_row(*row)
    return table
