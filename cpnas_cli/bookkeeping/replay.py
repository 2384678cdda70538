"""A finished search's CP-NAS ledger (cp, bnas, random), rebuilt from its log on either scale of
Eq. 2. Torch-free.

The log holds every sample's architecture and z (rounded to 4 decimals) and every pruning's
removed ops, which is all the ledger (ledger.py) is made of. Replaying it with another scale
gives the genotype the same search would have found had Eq. 2 read z̄ on that scale: the samples
and the removals stay as logged (the argmin that chose them is the same on every scale), only e
and what depends on it (the genotype's ranking of edges, the stand-ins' strengths) change.
benchmarks/indicator_scale.py compares the two scales this way on finished searches.
"""

from cpnas_cli.space.genotype import Genotype

from .cp_rule import derive
from .ledger import Ledger

LEDGER_STRATEGIES = ("cp", "bnas", "random")  # the searches whose log is a ledger's history


def log_scale(events: list[dict]) -> str:
    """The scale the search that wrote `events` used (logs from before it was recorded: percent)."""
    return events[0].get("indicator_scale", "percent")


def replay(events: list[dict], scale: str | None = None) -> Ledger:
    """The ledger at the end of the log, with Eq. 2 on `scale` (None: the log's own)."""
    head = events[0]
    if head.get("kind") != "header" or head.get("run") != "search":
        raise ValueError("not a search log: its first line is no search header")
    if head["config"]["search"]["strategy"] not in LEDGER_STRATEGIES:
        raise ValueError(f"a {head['config']['search']['strategy']} search keeps no CP-NAS ledger")
    ledger = Ledger.start(list(head["ops"]), list(head["cells"]), len(head["edges"]), scale or log_scale(events))
    for event in events[1:]:
        if event["kind"] == "sample":
            ledger.record(event["arch"], event["z"])
        elif event["kind"] == "prune":
            ledger.remove(event["removed"])
    return ledger


def replayed_genotype(events: list[dict], scale: str | None = None) -> Genotype:
    """The genotype of a finished search, re-derived with Eq. 2 on `scale` (None: the log's own)."""
    search = events[0]["config"]["search"]
    return derive(replay(events, scale), search["nodes"], search["genotype"])
