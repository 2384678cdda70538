"""What `cpnas correlate` shows: the ablation's progress bars with a line per trained
architecture, then the statistics per (score, seed) and the summary over seeds."""

from rich.table import Table

from ._ablate_view import AblationProgress


class CorrelationProgress(AblationProgress):
    """Units are a seed's supernet and each architecture's stand-alone training."""

    def __init__(self, console, units: int, done: int):
        super().__init__(console, units, done)
        self.progress.update(self.units, description="correlate")

    def __call__(self, event: dict) -> None:
        if event["kind"] != "result":
            return super().__call__(event)
        self.progress.update(self.units, advance=1)
        reused = f" (reused from {event['reused_from']})" if event.get("reused_from") else ""
        self.progress.console.print(
            f"seed {event['seed']} architecture {event['index']}: supernet A_C {event['acc_child']:.1f}% "
            f"A_P {event['acc_parent']:.1f}%, stand-alone Child {event['test_acc_child']:.2f}%{reused}",
            highlight=False,
        )


def statistics_table(rows: list[dict]) -> Table:
    """Per (score, seed): tau and rho with their bootstrap 95% intervals, and top-k overlap."""
    table = Table(title="Rank correlation with the stand-alone 1-bit test accuracy, per seed")
    for name in ("score", "seed", "N", "Kendall tau [95% CI]", "Spearman rho [95% CI]", "top-k overlap"):
        table.add_column(name, justify="left" if name == "score" else "right")
    for r in rows:
        table.add_row(
            r["score"],
            str(r["seed"]),
            str(r["architectures"]),
            _with_interval(r, "tau"),
            _with_interval(r, "rho"),
            f"{r['top_k_overlap']:.2f} (k={r['top_k']})",
        )
    return table


def ranking_table(rows: list[dict]) -> Table:
    """`--ranking`: per search and score (pooled over ops and edges, or per edge), tau and rho
    against the mean stand-alone accuracy of the architectures holding each op on each edge."""
    table = Table(title="The search's own ranking, op by op, against stand-alone 1-bit test accuracy")
    for name in ("score", "search seed", "points", "Kendall tau [95% CI]", "Spearman rho [95% CI]", "top-k overlap"):
        table.add_column(name, justify="left" if name == "score" else "right")
    for r in rows:
        overlap = "n/a" if r["top_k_overlap"] is None else f"{r['top_k_overlap']:.2f} (k={r['top_k']})"
        table.add_row(
            r["score"], str(r["seed"]), str(r["points"]), _with_interval(r, "tau"), _with_interval(r, "rho"), overlap
        )
    return table


def summary_table(rows: list[dict], unit: str = "seeds") -> Table:
    table = Table(title=f"Over {unit}: mean ± sd (n/a: undefined, e.g. a constant score)")
    for name in ("score", unit, "Kendall tau", "Spearman rho", "top-k overlap"):
        table.add_column(name, justify="left" if name == "score" else "right")
    for r in rows:
        table.add_row(r["score"], str(r["seeds"]), _mean(r, "tau"), _mean(r, "rho"), _mean(r, "top_k_overlap", ""))
    return table


def _with_interval(row: dict, key: str) -> str:
    if row[key] is None:
        return "n/a"
    interval = "" if row[f"{key}_low"] is None else f" [{row[f'{key}_low']:+.2f}, {row[f'{key}_high']:+.2f}]"
    return f"{row[key]:+.2f}{interval}"


def _mean(row: dict, key: str, sign: str = "+") -> str:
    if row[key] is None:
        return "n/a"
    spread = "" if row[f"{key}_std"] is None else f" ± {row[f'{key}_std']:.2f}"
    return f"{row[key]:{sign}.2f}{spread}"
