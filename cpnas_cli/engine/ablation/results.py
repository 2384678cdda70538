"""An ablation's results: one row per (setting, seed), and per setting the mean and spread over
seeds; written as results.json and results.csv. Torch-free.

Search wall time is the search's own clock (its steps, across resumes; no data loading), and
`search_vs_cp` divides it by the `cp` setting's time for the same seed in the same ablation.
"""

import csv
import io
import json
import statistics
from dataclasses import asdict, dataclass, fields

from cpnas_cli.config import typed_record
from cpnas_cli.errors import UserError
from cpnas_cli.runs import atomic_write_text, read_json

from .plan import Plan

REFERENCE = "cp"  # the setting search wall times are compared with, when the plan has it


@dataclass
class UnitResult:
    setting: str
    seed: int
    strategy: str
    beta_p: float | None  # None: the strategy does not use it
    genotype: str  # DARTS Genotype(...) string
    conv_edges: int  # edges of the two cells holding a convolution (the paper: fewer as beta_P grows)
    search_seconds: float
    train_seconds: float
    test_acc_child: float  # percent, after the last training epoch
    test_acc_parent: float | None
    params: int  # of the 1-bit evaluation network (profile.py conventions)
    params_1bit: int
    params_32bit: int
    memory_mbit: float
    mops: float  # OPs in millions: BOPs / 64 + FLOPs (Table 3)
    search_run: str
    train_run: str


COLUMNS = [f.name for f in fields(UnitResult)] + ["search_vs_cp"]
SUMMARIZED = (
    "test_acc_child",
    "test_acc_parent",
    "search_seconds",
    "search_vs_cp",
    "train_seconds",
    "conv_edges",
    "params",
    "memory_mbit",
    "mops",
)


def rows(plan: Plan, results: list[UnitResult]) -> list[dict]:
    """Every finished unit in plan order, with its search time relative to cp's (same seed)."""
    by_key = {(r.setting, r.seed): r for r in results}
    reference = {r.seed: r.search_seconds for r in results if r.setting == REFERENCE}
    out = []
    for setting, seed in plan.units():
        r = by_key.get((setting.label, seed))
        if r is not None:
            base = reference.get(seed)
            out.append({**asdict(r), "search_vs_cp": r.search_seconds / base if base else None})
    return out


def summary(plan: Plan, results: list[UnitResult]) -> list[dict]:
    """Per setting: how many seeds finished, and mean and sample standard deviation of each figure."""
    table = rows(plan, results)
    out = []
    for setting in plan.settings:
        mine = [r for r in table if r["setting"] == setting.label]
        entry = {"setting": setting.label, "strategy": setting.strategy, "beta_p": setting.beta_p, "seeds": len(mine)}
        for key in SUMMARIZED:
            values = [r[key] for r in mine if r[key] is not None]
            entry[key] = statistics.fmean(values) if values else None
            entry[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else None
        out.append(entry)
    return out


def write_tables(folder, plan: Plan, results: list[UnitResult], extra: dict) -> None:
    """results.json (plan, rows, summary and `extra`) and results.csv (the rows)."""
    table = rows(plan, results)
    atomic_write_text(
        folder / "results.json",
        json.dumps({**extra, "plan": plan.to_dict(), "units": table, "summary": summary(plan, results)}, indent=2)
        + "\n",
    )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    atomic_write_text(folder / "results.csv", buffer.getvalue())


def read_results(folder) -> list[UnitResult]:
    """The finished units of an earlier invocation (none if it finished none)."""
    path = folder / "results.json"
    if not path.is_file():
        return []
    fix = "restore it, or delete it to run every unit again"
    units = read_json(path, str(path), fix)
    if not isinstance(units, dict) or not isinstance(units.get("units"), list):
        raise UserError(f"{path} has no list of units", fix)
    return [typed_record(UnitResult, row, f"{path} unit", fix) for row in units["units"]]
