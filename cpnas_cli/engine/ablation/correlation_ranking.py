"""`cpnas correlate --ranking`: a finished search's own indicator as a score, op by op, against the
stand-alone trainings of a correlate run (no supernet, no training). Torch-free.

A point is one op on one edge of one cell. Its scores come from the search's `ranking` and
`prune` events (SCORES):

- mean z, last ranking: z̄ (Eq. 2's input, percent) in the last ranking the op took part in, the
  one that removed it or, for the survivor, the K = 2 one. The main score: what decided the op's
  fate. Ops removed early were scored by a younger supernet than the survivors, so across edges
  it also carries how long the op lasted.
- mean z, first ranking: z̄ at K = K0, where every op was scored in the same rounds.
- rankings survived: how many prunings the op outlived (0: removed at K0; K0 - 1: the survivor),
  the search's verdict itself (ties within a cell: one op per edge goes at each K).
- e (fraction) and e (percent), last ranking: Eq. 2 of that ranking on either scale
  (bookkeeping/indicator.py). Within an edge of one ranking e orders as z̄; pooled over edges
  it does not, so these two rows show what the scale does to the correlation.

Its truth: the mean stand-alone 1-bit test accuracy of the correlate run's trained architectures
(every seed) that have that op on that edge; a point no trained architecture has is left out.

Per score, two views (VIEWS): pooled, Kendall's tau and Spearman's rho over every point of both
cells (the genotype compares survivors across edges by e), and per edge, the mean over edges of
each edge's tau and rho (pruning only ever compares the ops of one edge). Top-k overlap: pooled,
k = points / 4; per edge, the share of edges whose best-scored op is the best-trained one (k = 1).
The intervals are bootstrap ones over the trained architectures: each resample recomputes every
point's truth, so they hold the noise of the few architectures behind each point; the search's
scores are what one search logged. A finished search is one draw; several --ranking searches
give the spread over searches.
"""

import csv
import io
import json
import re
import statistics as stats_lib
from collections.abc import Callable
from pathlib import Path

from cpnas_cli.bookkeeping.indicator import SCALES, edge_indicator
from cpnas_cli.bookkeeping.rank_correlation import Statistic, percentile_interval, resample_indices, top_k_overlap
from cpnas_cli.errors import UserError
from cpnas_cli.events import read_all
from cpnas_cli.runs import atomic_write_bytes, atomic_write_text, existing_run

from .correlation_plan import STATISTICS, Architecture
from .correlation_results import COLUMNS, summary
from .correlation_truth import trained_architectures
from .plot import scatter_png

Point = tuple[str, int, str]  # cell, edge, op
Column = dict[Point, float]
LAST_Z, FIRST_Z, SURVIVED = "mean z, last ranking", "mean z, first ranking", "rankings survived"
SCORES = [LAST_Z, FIRST_Z, SURVIVED, *(f"e ({scale}), last ranking" for scale in SCALES)]
Searched = tuple[Path, dict, dict[str, Column]]  # a search's path, log header and scores


def load(searches: list[Path], truth: Path) -> tuple[list[tuple[Architecture, float]], list[Searched]]:
    """The truth run's trainings and every search's scores, checked before anything is written."""
    architectures = trained_architectures(truth)
    if len(architectures) < 2:
        raise UserError(
            f"{truth} has {len(architectures)} finished stand-alone training(s)",
            "wait until it has trained a few architectures, or pass another correlate run",
        )
    loaded = []
    for path in searches:
        head, scores = search_scores(path)
        _check_space(path, head, architectures[0][0])
        loaded.append((path, head, scores))
    return architectures, loaded


def write_results(
    folder: Path, truth: Path, architectures: list[tuple[Architecture, float]], searches: list[Searched], resamples=1000
) -> list[dict]:
    """Every search's rows against the trainings; writes results.json, results.csv and a
    scatter-<score>.png per score (pooled points, a colour per search) into `folder`."""
    truth_means = op_accuracy(architectures, range(len(architectures)))
    rows, points = [], []
    for path, head, scores in searches:
        seed = head["config"]["seed"]
        statistics = ranking_statistics(scores, architectures, seed, resamples)
        rows += [{"search": str(path), "seed": seed, **row} for row in statistics]
        points += [
            {"search": str(path), "cell": p[0], "edge": p[1], "op": p[2], "truth": truth_means[p]}
            | {name: scores[name][p] for name in SCORES}
            for p in scores[FIRST_Z]
            if p in truth_means
        ]
    results = {"truth": str(truth), "searches": [str(p) for p, _, _ in searches], "architectures": len(architectures)}
    results |= {"statistics": rows, "summary": summary(score_names(), rows), "points": points}
    atomic_write_text(folder / "results.json", json.dumps(results, indent=2) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["search", *COLUMNS[:2], "points", *COLUMNS[2:]], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(folder / "results.csv", buffer.getvalue())
    for name in SCORES:
        atomic_write_bytes(folder / f"scatter-{_slug(name)}.png", _scatter(name, searches, truth_means, rows))
    return rows


def _scatter(name: str, searches: list[Searched], truth: Column, rows: list[dict]) -> bytes:
    """One score's pooled points against their truth, a colour per search, each search's tau and rho below."""
    dots = [(s[name][p], truth[p], n) for n, (_, _, s) in enumerate(searches) for p in s[name] if p in truth]
    mine = [r for r in rows if r["score"] == f"{name} (pooled)"]
    notes = [f"{r['search']}: tau {_fmt(r['tau'])}, rho {_fmt(r['rho'])}" for r in mine]
    title = f"{name}, per op and edge, against stand-alone accuracy"
    return scatter_png(title, name, "mean stand-alone Child test accuracy (%)", dots, notes)


def search_scores(path: Path) -> tuple[dict, dict[str, Column]]:
    """(the search's header, every score of SCORES per point) from a cp, bnas or random search's log."""
    run = existing_run(path)
    events = read_all(run.events) if run.events.is_file() else []
    rankings = [e for e in events if e["kind"] == "ranking" and "mean_z" in e]
    if not events or events[0]["kind"] != "header" or not rankings:
        raise UserError(
            f"{path} has no ranking with mean z in its log",
            "pass a cp, bnas or random search that ranked at least once (abandit and pc-darts rank otherwise)",
        )
    scores: dict[str, Column] = {name: {} for name in SCORES}
    for ranking in rankings:  # a later ranking overwrites: each op keeps the last it was in
        for cell, edges in ranking["mean_z"].items():
            for edge, means in enumerate(edges):
                last = {LAST_Z: means} | {
                    f"e ({scale}), last ranking": edge_indicator(means, scale) for scale in SCALES
                }
                for name, values in last.items():
                    scores[name].update({(cell, edge, op): v for op, v in values.items()})
                if ranking is rankings[0]:
                    scores[FIRST_Z].update({(cell, edge, op): z for op, z in means.items()})
    prunes = [e for e in events if e["kind"] == "prune"]
    removed_at = {
        (cell, edge, op): j
        for j, prune in enumerate(prunes)
        for cell, ops in prune["removed"].items()
        for edge, op in enumerate(ops)
    }
    scores[SURVIVED] = {point: float(removed_at.get(point, len(prunes))) for point in scores[FIRST_Z]}
    return events[0], scores


def op_accuracy(architectures: list[tuple[Architecture, float]], picks) -> Column:
    """Per point: the mean stand-alone accuracy of the picked architectures that have it."""
    sums: dict[Point, list[float]] = {}
    for i in picks:
        arch, accuracy = architectures[i]
        for cell, ops in arch.items():
            for edge, op in enumerate(ops):
                total = sums.setdefault((cell, edge, op), [0.0, 0])
                total[0] += accuracy
                total[1] += 1
    return {point: total / count for point, (total, count) in sums.items()}


def pooled(score: Column, truth: Column, statistic: Statistic) -> float | None:
    xs, ys = _pairs(score, truth)
    return statistic(xs, ys) if len(xs) >= 2 else None


def per_edge(score: Column, truth: Column, statistic: Statistic) -> float | None:
    values = [statistic(xs, ys) for xs, ys in _edges(score, truth) if len(xs) >= 2]
    defined = [v for v in values if v is not None]
    return stats_lib.fmean(defined) if defined else None


VIEWS: dict[str, Callable[[Column, Column, Statistic], float | None]] = {"pooled": pooled, "per edge": per_edge}


def ranking_statistics(
    scores: dict[str, Column], architectures: list[tuple[Architecture, float]], seed: int, resamples: int = 1000
) -> list[dict]:
    """Per score and view: tau and rho against the op-level truth with bootstrap 95% intervals
    (architectures resampled by a generator seeded with `seed`), and top-k overlap."""
    truth = op_accuracy(architectures, range(len(architectures)))
    resampled = [op_accuracy(architectures, picks) for picks in resample_indices(len(architectures), seed, resamples)]
    rows = []
    for name in SCORES:
        score = scores[name]
        points = len(_pairs(score, truth)[0])
        for view, measure in VIEWS.items():
            row: dict = {"score": f"{name} ({view})", "points": points, "architectures": len(architectures)}
            for stat, fn in STATISTICS.items():
                row[stat] = measure(score, truth, fn)
                interval = percentile_interval([measure(score, t, fn) for t in resampled])
                row[f"{stat}_low"], row[f"{stat}_high"] = interval or (None, None)
            row["top_k"], row["top_k_overlap"] = _top_k(score, truth, view)
            rows.append(row)
    return rows


def score_names() -> list[str]:
    """Every row's score name, in table order."""
    return [f"{name} ({view})" for name in SCORES for view in VIEWS]


def _top_k(score: Column, truth: Column, view: str) -> tuple[int, float | None]:
    if view == "per edge":
        edges = [(xs, ys) for xs, ys in _edges(score, truth) if xs]
        return 1, stats_lib.fmean(top_k_overlap(xs, ys, 1) for xs, ys in edges) if edges else None
    xs, ys = _pairs(score, truth)
    k = max(1, len(xs) // 4)
    return k, top_k_overlap(xs, ys, k) if xs else None


def _pairs(score: Column, truth: Column) -> tuple[list[float], list[float]]:
    """The points both sides have, in the search's order (cell, edge, op as the log lists them)."""
    points = [p for p in score if p in truth]
    return [score[p] for p in points], [truth[p] for p in points]


def _edges(score: Column, truth: Column) -> list[tuple[list[float], list[float]]]:
    edges: dict[tuple[str, int], tuple[list[float], list[float]]] = {}
    for point in score:
        if point in truth:
            xs, ys = edges.setdefault(point[:2], ([], []))
            xs.append(score[point])
            ys.append(truth[point])
    return list(edges.values())


def _check_space(path: Path, head: dict, arch: Architecture) -> None:
    """The search and the truth must share cells and edges (the ops may differ: points only one
    side has are left out)."""
    if set(head.get("cells") or []) != set(arch) or len(head.get("edges") or []) != len(arch["normal"]):
        raise UserError(
            f"{path} searched cells of {len(head.get('edges') or [])} edges, the truth's architectures have "
            f"{len(arch['normal'])}",
            "pass a search and a correlate run with the same search.nodes",
        )


def _slug(name: str) -> str:
    """A score's name as part of a file name: `e (fraction), last ranking` -> `e-fraction-last-ranking`."""
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"
