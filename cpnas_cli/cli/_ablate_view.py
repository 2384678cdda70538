"""What `cpnas ablate` shows: live progress over units, steps and batches, a line per finished
unit, and the two result tables (every unit; mean ± sd per setting)."""

from rich.console import Console
from rich.table import Table

from ._progress_view import ProgressView, progress_bars


class AblationProgress(ProgressView):
    """Three bars: units of the ablation, steps of the current search or training, batches.
    Call it with each event of the ablation and of the runs inside it."""

    def __init__(self, console: Console, units: int, done: int):
        self.progress = progress_bars(console)
        self.units = self.progress.add_task("ablation", total=units, completed=done, info="")
        self.steps = self.progress.add_task("  search", total=1, completed=0, info="")
        self.batches = self.progress.add_task("    batch", total=1, completed=0, info="")

    def __call__(self, event: dict) -> None:
        kind, update = event["kind"], self.progress.update
        if kind == "unit":
            update(self.units, completed=event["index"] - 1, info=f"{event['setting']}, seed {event['seed']}")
        elif kind == "phase":
            update(self.steps, description=f"  {event['phase']}", completed=0, total=1, info="")
        elif kind == "sample":
            update(
                self.steps,
                completed=event["n"],
                total=event["total"],
                info=f"K={event['K']}  A_C {event['acc_child']:.1f}%  z {event['z']:.2f}",
            )
        elif kind == "epoch":
            update(
                self.steps,
                completed=event["epoch"],
                total=event["epochs"],
                info=f"test A_C {event['test_acc_child']:.2f}%",
            )
        elif kind == "progress":
            update(self.batches, completed=event["batch"], total=event["batches"])
        elif kind == "result":
            update(self.units, advance=1)
            self.progress.console.print(result_line(event), highlight=False)


def result_line(r: dict) -> str:
    parent = "" if r["test_acc_parent"] is None else f" (Parent {r['test_acc_parent']:.2f}%)"
    return (
        f"[bold]{r['setting']}[/] seed {r['seed']}: Child {r['test_acc_child']:.2f}%{parent}, "
        f"search {r['search_seconds'] / 60:.1f} min, {r['conv_edges']} conv edges"
    )


def units_table(rows: list[dict]) -> Table:
    """One row per (setting, seed); the DARTS genotype string is in results.csv / .json."""
    table = Table(title="Ablation: every unit (test accuracy after the last training epoch)")
    for name in (
        "setting",
        "seed",
        "Child %",
        "Parent %",
        "search min",
        "vs cp",
        "train min",
        "conv edges",
        "params",
        "Mbit",
        "MOPs",
        "normal | reduce cell",
    ):
        table.add_column(name, justify="left" if name in ("setting", "normal | reduce cell") else "right")
    for r in rows:
        table.add_row(
            r["setting"],
            str(r["seed"]),
            f"{r['test_acc_child']:.2f}",
            _num(r["test_acc_parent"], 2),
            f"{r['search_seconds'] / 60:.1f}",
            _num(r["search_vs_cp"], 2),
            f"{r['train_seconds'] / 60:.1f}",
            str(r["conv_edges"]),
            f"{r['params']:,}",
            f"{r['memory_mbit']:.3f}",
            f"{r['mops']:.2f}",
            short_genotype(r["genotype"]),
        )
    return table


def summary_table(summary: list[dict]) -> Table:
    """Per setting: mean ± sample standard deviation over its seeds."""
    table = Table(title="Ablation: mean ± sd over seeds")
    for name in ("setting", "seeds", "Child %", "Parent %", "search min", "vs cp", "conv edges", "Mbit", "MOPs"):
        table.add_column(name, justify="left" if name == "setting" else "right")
    for s in summary:
        table.add_row(
            s["setting"],
            str(s["seeds"]),
            _spread(s, "test_acc_child"),
            _spread(s, "test_acc_parent"),
            _spread(s, "search_seconds", 1 / 60, 1),
            _spread(s, "search_vs_cp"),
            _spread(s, "conv_edges", digits=1),
            _spread(s, "memory_mbit", digits=3),
            _spread(s, "mops"),
        )
    return table


def short_genotype(darts: str) -> str:
    """`sep3x3<-0 skip<-1 ...|...` from a DARTS Genotype(...) string."""
    from cpnas_cli.space.genotype import from_darts

    g = from_darts(darts)
    cells = [
        " ".join(f"{_short(e.op)}<-{e.source}" for node in cell.nodes for e in node) for cell in (g.normal, g.reduce)
    ]
    return " | ".join(cells)


def _short(op: str) -> str:
    return op if op == "skip" else op.split("_")[0] + op[-3:]


def _num(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _spread(s: dict, key: str, scale: float = 1.0, digits: int = 2) -> str:
    mean, sd = s[key], s[f"{key}_std"]
    if mean is None:
        return "-"
    return f"{mean * scale:.{digits}f}" + ("" if sd is None else f" ± {sd * scale:.{digits}f}")
