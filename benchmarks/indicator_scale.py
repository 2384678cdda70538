"""What the scale of Eq. 2 does to finished CP-NAS searches: each search's genotype re-derived from
its event log with z̄ read as a fraction and in percent (bookkeeping/replay.py), and the numbers
behind the difference. Prints JSON, one entry per run:

    python benchmarks/indicator_scale.py runs/<search> [runs/<search> ...]

- reproduces_own: the replay on the run's own scale gives its genotype.json (the check that the
  replay is the search's own bookkeeping)
- edges_differ: edges (op, input) kept under one scale and not the other, over both cells
- k2_margin: the survivor's z̄ minus the other op's at the K = 2 ranking (percentage points),
  over every edge: min, median, max
- survivor_e: e of the survivors at K = 2 under each scale: min, max, how many show as 1.000
  (e >= 0.9995) and how many are exactly 1.0 in floating point (where the genotype's ranking of
  edges by e falls back to the lifetime mean z)
"""

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cpnas_cli.bookkeeping.replay import log_scale, replay, replayed_genotype
from cpnas_cli.events import read_all
from cpnas_cli.space import genotype as genotypes
from cpnas_cli.space.cells import CELL_TYPES


def kept_edges(genotype) -> set[tuple]:
    return {
        (cell, node, edge.op, edge.source)
        for cell in CELL_TYPES
        for node, edges in enumerate(getattr(genotype, cell).nodes)
        for edge in edges
    }


def k2_margins(events: list[dict]) -> list[float]:
    last = [e for e in events if e["kind"] == "ranking"][-1]
    if last["K"] != 2:
        raise ValueError(f"the last ranking is at K={last['K']}: the search did not finish")
    survivors = replay(events).remaining
    return [
        means[survivors[cell][edge][0]] - min(means.values())
        for cell, edges in last["mean_z"].items()
        for edge, means in enumerate(edges)
    ]


def survivor_e(events: list[dict], scale: str) -> dict:
    ledger = replay(events, scale)
    values = [
        ledger.last_ranking[cell][edge][ops[0]]
        for cell, edges in ledger.remaining.items()
        for edge, ops in enumerate(edges)
    ]
    return {
        "min": min(values),
        "max": max(values),
        "shown_as_1.000": sum(v >= 0.9995 for v in values),
        "exactly_1.0": sum(v == 1.0 for v in values),
        "edges": len(values),
    }


def compare(run: Path) -> dict:
    events = read_all(run / "events.jsonl")
    own = genotypes.load(run / "genotype.json")
    by_scale = {scale: replayed_genotype(events, scale) for scale in ("fraction", "percent")}
    margins = k2_margins(events)
    search = events[0]["config"]["search"]
    return {
        "run": str(run),
        "rounds": search["rounds"],
        "beta_p": search["beta_p"],
        "seed": events[0]["config"]["seed"],
        "log_scale": log_scale(events),
        "reproduces_own": kept_edges(by_scale[log_scale(events)]) == kept_edges(own),
        "edges_differ": len(kept_edges(by_scale["fraction"]) ^ kept_edges(by_scale["percent"])),
        "edges_kept": len(kept_edges(own)),
        "k2_margin": {"min": min(margins), "median": statistics.median(margins), "max": max(margins)},
        "survivor_e": {scale: survivor_e(events, scale) for scale in by_scale},
    }


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(json.dumps([compare(Path(run)) for run in sys.argv[1:]], indent=1))
