"""`cpnas correlate`'s tables: one row per trained architecture, one per (score, seed) with its
statistics, and per score the mean and spread over seeds; written as results.json and
results.csv (the (score, seed) rows). Torch-free.
"""

import csv
import io
import json
import statistics as stats_lib
from dataclasses import dataclass

from cpnas_cli.config import typed_record
from cpnas_cli.errors import UserError
from cpnas_cli.runs import atomic_write_text, read_json

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
    """The stand-alone trainings an earlier invocation finished (none if none); a damaged
    results.json is a UserError naming it."""
    path = folder / "results.json"
    if not path.is_file():
        return []
    fix = "restore it, or delete it to train the architectures again"
    rows = read_json(path, str(path), fix)
    rows = rows.get("architectures") if isinstance(rows, dict) else None
    if not isinstance(rows, list):
        raise UserError(f"{path} has no list of architectures", fix)
    for i, row in enumerate(rows):
        typed_record(TrainedArchitecture, row, f"{path} architecture {i}", fix)
    return rows


def read_scores(path, architectures: int | None = None) -> dict:
    """A seed's scores.json (the drawn architectures and their A_C and A_P, `architectures` of
    them where given); a damaged one is a UserError naming it."""
    fix = "delete it: the supernet's scores are measured again from its checkpoint"
    scores = read_json(path, str(path), fix)
    if not isinstance(scores, dict) or not all(isinstance(scores.get(k), list) for k in SCORE_LISTS):
        raise UserError(f"{path} lacks the lists {', '.join(SCORE_LISTS)}", fix)
    if len({len(scores[k]) for k in SCORE_LISTS} | ({architectures} if architectures else set())) != 1:
        raise UserError(f"{path} does not hold {architectures or 'as many'} architectures as scores", fix)
    if not all(type(a) in (int, float) for k in ("acc_child", "acc_parent") for a in scores[k]):
        raise UserError(f"{path} has an accuracy that is not a number", fix)
    if not all(
        isinstance(a, dict) and all(isinstance(ops, list) for ops in a.values()) for a in scores["architectures"]
    ):
        raise UserError(f"{path} has an architecture that is not a mapping of cells to ops", fix)
    return scores


SCORE_LISTS = ("architectures", "acc_child", "acc_parent")


@dataclass(frozen=True)
class TrainedArchitecture:
    """The fields of a results.json row that a resumed study reads."""

    seed: int
    index: int
    acc_child: float
    acc_parent: float
    test_acc_child: float
    test_acc_parent: float
    train_run: str
