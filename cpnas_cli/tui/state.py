"""What the dashboard knows about a run: the event log folded into plain data. Torch-free, Textual-free.

`RunState.apply(event)` takes one event at a time in log order; the panels only read from it.
For a search it keeps, per cell and edge, the ops still alive, the ops pruned with the K they
went at, and the scores z each op collected since the last pruning, so the ranking by the
indicator e (Eq. 2) is live from the first sample instead of appearing once per K stage.
A differentiable search (pc-darts, dcp) logs one `alpha` event per phase instead of samples.
"""

import math
from dataclasses import dataclass, field

from cpnas_cli.bookkeeping.indicator import SCALES, edge_indicator

ETA_WINDOW = 10  # samples or epochs averaged for the time per step
REQUIRED = {  # fields the panels read; an event without them is skipped as unreadable
    "sample": (
        "n",
        "total",
        "K",
        "round",
        "index",
        "arch",
        "acc_child",
        "acc_parent",
        "z",
        "loss_child",
        "loss_parent",
        "train_acc_child",
        "train_acc_parent",
        "lr",
        "images",
        "seconds",
        "child_seconds",
        "parent_seconds",
        "eval_seconds",
        "images_per_s",
    ),
    "ranking": ("K", "indicator"),
    "prune": ("K", "removed"),
    "epoch": ("epoch",),
    "alpha": ("step", "total", "role", "weights", "genotype"),
}
NUMBER = (int, float)
TYPES: dict[
    str, dict[str, type | tuple[type, ...]]
] = {  # fields the panels compute with, when present: another type makes the event unreadable
    "header": {
        "run": str,
        "cells": list,
        "edges": list,
        "ops": list,
        "config": dict,
        "epochs": NUMBER,
        "genotype": dict,
        "indicator_scale": str,
    },
    "status": {"state": str, "total": NUMBER, "error": str, "t": NUMBER},
    "sample": {"arch": dict, "z": NUMBER, "total": NUMBER, "seconds": NUMBER, "K": int, "t": NUMBER},
    "ranking": {"K": int, "indicator": dict, "mean_z": dict},
    "prune": {"K": int, "removed": dict},
    "genotype": {"genotype": dict},
    "epoch": {"epochs": NUMBER, "seconds": NUMBER, "t": NUMBER},
    "alpha": {"total": NUMBER, "seconds": NUMBER, "genotype": dict, "t": NUMBER},
}
DIFFERENTIABLE = ("pc-darts", "dcp")


class Unreadable(ValueError):
    """A well-formed line whose event lacks what the dashboard needs."""


def _is(value, kinds) -> bool:
    """isinstance, where a bool is no number (JSON true is not a count; no field is a bool)."""
    return isinstance(value, kinds) and not isinstance(value, bool)


@dataclass
class Ranked:
    """One op on one edge, as a ranking row shows it."""

    op: str
    e: float | None = None  # current indicator; None: no score yet in this K stage
    z: float | None = None  # the mean z (percent) that e comes from; None: none to show
    pruned_at: int | None = None  # the K at which it was removed
    sampled: bool = False  # part of the latest sampled architecture
    leader: bool = False


@dataclass
class RunState:
    header: dict | None = None
    status: dict = field(default_factory=dict)  # the latest status event
    samples: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    alphas: list[dict] = field(default_factory=list)  # one per phase of a differentiable search
    remaining: dict[str, list[list[str]]] = field(default_factory=dict)  # cell -> edge -> ops alive
    pruned: dict[str, list[list[tuple[str, int]]]] = field(default_factory=dict)  # cell -> edge -> [(op, K)], in order
    scores: dict[str, list[dict[str, list[float]]]] = field(
        default_factory=dict
    )  # cell -> edge -> op -> [sum z, count]
    ranking: dict | None = None  # the latest ranking event
    genotype: dict | None = None
    genotype_path: str | None = None
    last_t: float | None = None

    # --- folding events -----------------------------------------------------------------

    def apply(self, event: dict) -> None:
        """Fold one event in; raises Unreadable (state unchanged) for an event missing fields."""
        kind = event.get("kind", "")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:  # kinds of later strategies, progress, checkpoint: nothing to show
            return
        if kind != "header" and self.header is None:
            return  # a log always starts with its header; a headless tail is not a run
        missing = [f for f in REQUIRED.get(kind, ()) if f not in event]
        if missing:
            raise Unreadable(f"a {kind} event without {', '.join(missing)}")
        wrong = [f for f, kinds in TYPES.get(kind, {}).items() if f in event and not _is(event[f], kinds)]
        if wrong:
            raise Unreadable(f"a {kind} event whose {', '.join(wrong)} has the wrong type")
        handler(event)
        self.last_t = event.get("t", self.last_t)

    def _on_header(self, event: dict) -> None:
        self.header = event
        edges, ops = len(event.get("edges") or []), list(event.get("ops") or [])
        for cell in self.cells:
            self.remaining[cell] = [list(ops) for _ in range(edges)]
            self.pruned[cell] = [[] for _ in range(edges)]
        self._clear_scores()
        if self.run == "train" and event.get("genotype"):
            self.genotype = event["genotype"]

    def _on_status(self, event: dict) -> None:
        self.status = event

    def _on_sample(self, event: dict) -> None:
        self.samples.append(event)
        for cell, ops in (event.get("arch") or {}).items():
            # strict=False: a cell or edges the header did not name have no tallies; they are skipped
            for tally, op in zip(self.scores.get(cell, []), ops, strict=False):
                if op in tally:  # every op of the sample gets its z (Alg. 1, line 5)
                    tally[op][0] += event["z"]
                    tally[op][1] += 1

    def _on_ranking(self, event: dict) -> None:
        self.ranking = event

    def _on_prune(self, event: dict) -> None:
        for cell, ops in event["removed"].items():
            # strict=False: as in _on_sample, what the header did not name is skipped
            for alive, pruned, op in zip(self.remaining.get(cell, []), self.pruned.get(cell, []), ops, strict=False):
                if op in alive:
                    alive.remove(op)
                    pruned.append((op, event["K"]))
        self._clear_scores()

    def _on_genotype(self, event: dict) -> None:
        self.genotype, self.genotype_path = event.get("genotype"), event.get("path")

    def _on_epoch(self, event: dict) -> None:
        self.epochs.append(event)

    def _on_alpha(self, event: dict) -> None:
        self.alphas.append(event)

    def _clear_scores(self) -> None:
        self.scores = {cell: [{op: [0.0, 0] for op in ops} for ops in edges] for cell, edges in self.remaining.items()}

    # --- what the panels ask ------------------------------------------------------------

    @property
    def run(self) -> str:
        return (self.header or {}).get("run", "search")

    @property
    def cells(self) -> list[str]:
        return list((self.header or {}).get("cells") or [])

    @property
    def edges(self) -> list[tuple[int, int]]:
        return [tuple(e) for e in (self.header or {}).get("edges") or []]

    @property
    def k(self) -> int:
        """Ops alive per edge now."""
        edges = next(iter(self.remaining.values()), [])
        return len(edges[0]) if edges else 0

    @property
    def k0(self) -> int:
        return len((self.header or {}).get("ops") or [])

    @property
    def search_config(self) -> dict:
        """The header's config.search (empty if a damaged header's is not a mapping)."""
        search = ((self.header or {}).get("config") or {}).get("search")
        return search if isinstance(search, dict) else {}

    @property
    def rounds(self) -> int:
        rounds = self.search_config.get("rounds")
        return rounds if isinstance(rounds, int) and not isinstance(rounds, bool) and rounds > 0 else 1

    @property
    def state(self) -> str:
        """waiting | running | finished | interrupted | failed."""
        if self.header is None:
            return "waiting"
        state = self.status.get("state", "running")
        return {"started": "running", "resumed": "running"}.get(state, state)

    @property
    def latest(self) -> dict | None:
        return self.samples[-1] if self.samples else None

    @property
    def differentiable(self) -> bool:
        """A pc-darts or dcp search: architecture weights per phase, no samples or pruning."""
        strategy = self.search_config.get("strategy")
        return bool(self.alphas) or strategy in DIFFERENTIABLE

    @property
    def latest_alpha(self) -> dict | None:
        return self.alphas[-1] if self.alphas else None

    def current_genotype(self) -> dict | None:
        """The final genotype, or while a differentiable search runs, its current argmax one."""
        return self.genotype or (self.latest_alpha or {}).get("genotype")

    def stage_samples(self) -> int:
        """Samples scored since the last pruning."""
        edges = next(iter(self.scores.values()), [])
        return int(sum(count for _, count in edges[0].values())) if edges else 0

    def ranking_source(self) -> str:
        """Where the e values of the ranking rows come from, for the table's title."""
        k = self.k
        if self.ranking and self.ranking.get("K") == k:
            return f"ranking at K={k}"
        done = self.stage_samples()
        if done:
            return f"live, {done}/{k * self.rounds} samples of K={k}"
        if self.ranking:
            return f"ranking at K={self.ranking.get('K')}"
        return f"K={k}, no sample yet"

    @property
    def scale(self) -> str:
        """How Eq. 2 reads z̄ in this run: fraction | percent (logs from before it was recorded)."""
        scale = (self.header or {}).get("indicator_scale", "percent")
        return scale if scale in SCALES else "percent"

    def edge_rows(self, cell: str, edge: int) -> list[Ranked]:
        """The ops of one edge: alive ones by e, highest first, then the pruned, latest first."""
        alive = self.remaining[cell][edge]
        values, means = self._values(cell, edge, alive)
        sampled = set()
        if self.latest and cell in self.latest.get("arch", {}) and self.k == self.latest.get("K", self.k):
            sampled = {self.latest["arch"][cell][edge]}
        rows = [Ranked(op, values.get(op), means.get(op), sampled=op in sampled) for op in alive]
        rows.sort(key=lambda r: -r.e if r.e is not None else math.inf)
        if rows and rows[0].e is not None:
            rows[0].leader = True
        return rows + [Ranked(op, pruned_at=k) for op, k in reversed(self.pruned[cell][edge])]

    def margin(self, cell: str, edge: int) -> float | None:
        """What orders a node's inputs in the genotype: the leader's z̄ minus the other op's in the
        K = 2 stage (live from its samples, then its ranking's, kept once one op is left); None
        before it has scored both ops."""
        alive = self.remaining[cell][edge]
        if self.ranking and self.ranking.get("K") == 2 and self.k in (1, 2):
            means = self._ranked_means(cell, edge, list(self.ranking["indicator"][cell][edge]))
        elif self.k == 2:
            means = {op: s / n for op, (s, n) in self.scores[cell][edge].items() if n and op in alive}
        else:
            return None
        if len(means) < 2:
            return None
        leader = alive[0] if self.k == 1 else max(means, key=means.__getitem__)
        return means[leader] - max(z for op, z in means.items() if op != leader)

    def _values(self, cell: str, edge: int, alive: list[str]) -> tuple[dict[str, float], dict[str, float]]:
        """e and z̄ of the alive ops: the ranking of this K if it came, else Eq. 2 over the means so
        far, else (right after a pruning) the values the previous ranking gave them."""
        if self.ranking and self.ranking.get("K") == self.k:
            return self.ranking["indicator"][cell][edge], self._ranked_means(cell, edge, alive)
        means = {op: s / n for op, (s, n) in self.scores[cell][edge].items() if n and op in alive}
        if means:
            return edge_indicator(means, self.scale), means
        if self.ranking:
            previous = self.ranking["indicator"][cell][edge]
            return {op: previous[op] for op in alive if op in previous}, self._ranked_means(cell, edge, alive)
        return {}, {}

    def _ranked_means(self, cell: str, edge: int, alive: list[str]) -> dict[str, float]:
        """z̄ of the alive ops in the latest ranking (none in abandit's, which rank by bounds)."""
        means = (self.ranking or {}).get("mean_z", {}).get(cell, [])
        return {op: means[edge][op] for op in alive if edge < len(means) and op in means[edge]}

    def plan(self) -> list[int]:
        """K of every sample of the whole search, in order (T rounds of K samples, K = K0 .. 2)."""
        return [k for k in range(self.k0, 1, -1) for _ in range(self.rounds * k)]

    def total_steps(self) -> int:
        if self.run == "train":
            # the last epoch's plan first: a time budget (train.minutes) shrinks it after epoch 1
            return int(self.epochs[-1]["epochs"] if self.epochs else (self.header or {}).get("epochs") or 0)
        return int(self.status.get("total") or (self.steps() or [{}])[-1].get("total") or len(self.plan()))

    def steps(self) -> list[dict]:
        """The events that count progress: epochs for a training run, phases for a differentiable
        search, samples for the others."""
        if self.run == "train":
            return self.epochs
        return self.alphas if self.differentiable else self.samples

    def eta(self, now: float) -> float | None:
        """Seconds left: the mean time of the latest steps times the steps left, minus the time
        the current step has already run. None when unknown or not running."""
        steps, left = self.steps(), self.total_steps() - len(self.steps())
        if self.state != "running" or not steps or left <= 0:
            return None
        recent = steps[-ETA_WINDOW:]
        per_step = sum(s.get("seconds", 0.0) for s in recent) / len(recent)
        since = max(0.0, now - (self.last_t or now))
        return max(0.0, left * per_step - min(since, per_step))

    def genotype_nodes(self, cell: str) -> list[list[tuple[str, int]]]:
        """(op, input) of every incoming edge of every intermediate node of the shown genotype."""
        nodes = ((self.current_genotype() or {}).get(cell) or {}).get("nodes") or []
        return [[(e.get("op", "?"), e.get("input", "?")) for e in node] for node in nodes]
