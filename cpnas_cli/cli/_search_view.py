"""What `cpnas search` shows: a live progress display fed by the engine's events, and the result table."""

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
    """The op left on every edge and its final indicator e, from the log's prune and ranking events
    (a differentiable search's log has neither: its final weights are shown instead)."""
    head = events[0]
    alphas = [e for e in events if e["kind"] == "alpha"]
    if alphas:
        return weights_table(head, alphas[-1])
    remaining = {cell: [list(head["ops"]) for _ in head["edges"]] for cell in head["cells"]}
    last = {}
    for event in events:
        if event["kind"] == "prune":
            for cell, ops in event["removed"].items():
                for edge, op in enumerate(ops):
                    remaining[cell][edge].remove(op)
        elif event["kind"] == "ranking":
            last = event["indicator"]
    table = Table(title="Surviving operation per edge (final indicator e, Eq. 2)")
    table.add_column("edge")
    for cell in remaining:
        table.add_column(f"{cell} cell")
        table.add_column("e", justify="right")
    for i, (src, dst) in enumerate(head["edges"]):
        row = [f"{src} -> {dst}"]
        for cell, per_edge in remaining.items():
            ops = per_edge[i]
            e = last[cell][i].get(ops[0]) if last and len(ops) == 1 else None
            row += [" / ".join(ops), f"{e:.3f}" if e is not None else "-"]
        table.add_row(*row)
    return table


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
