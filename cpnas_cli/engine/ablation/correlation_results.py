"""`cpnas correlate`'s tables: one row per trained architecture, one per (score, seed) with its
statistics, and per score the mean and spread over seeds; written as results.json and
results.csv (the (score, seed) rows). Torch-free.
"""

import csv
import io
import json
import statistics as stats_lib

from cpnas_cli.runs import atomic_write_text

from .correlation_plan import CorrelationPlan

COLUMNS = [
    "score",
    "seed",
    "architectures",
    "tau",
    "tau_low",
    "tau_high",
    "rho",
    "rho_low",
    "rho_high",
    "top_k",
    "top_k_overlap",
]
SUMMARIZED = ("tau", "rho", "top_k_overlap")


def summary(names: list[str], rows: list[dict]) -> list[dict]:
    """Per score of `names`: how many seeds (or searches) it has rows for, mean and sample standard
    deviation of tau, rho and top-k overlap over them (undefined values left out)."""
    out = []
    for name in names:
        mine = [r for r in rows if r["score"] == name]
        entry: dict = {"score": name, "seeds": len(mine)}
        for key in SUMMARIZED:
            values = [r[key] for r in mine if r[key] is not None]
            entry[key] = stats_lib.fmean(values) if values else None
            entry[f"{key}_std"] = stats_lib.stdev(values) if len(values) > 1 else None
        out.append(entry)
    return out


def write_tables(folder, plan: CorrelationPlan, architectures: list[dict], rows: list[dict], extra: dict) -> None:
    ordered = sorted(architectures, key=lambda r: (r["seed"], r["index"]))
    atomic_write_text(
        folder / "results.json",
        json.dumps(
            {
                **extra,
                "plan": plan.to_dict(),
                "architectures": ordered,
                "statistics": rows,
                "summary": summary(plan.scores(), rows),
            },
            indent=2,
        )
        + "\n",
    )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(folder / "results.csv", buffer.getvalue())


def read_architectures(folder) -> list[dict]:
    """The stand-alone trainings an earlier invocation finished (none if none)."""
    path = folder / "results.json"
    return json.loads(path.read_text())["architectures"] if path.is_file() else []
