"""The search's bookkeeping (Alg. 1, lines 5-10): scores per op, ranking, pruning. Torch-free.

The ledger knows which ops are alive on every edge, the scores z each op collected since the
last pruning, and the history of rankings and removals. It is plain data (`to_dict` /
`from_dict`) so a checkpoint can store it as JSON and a resumed run continues exactly. It also
holds the scale Eq. 2 reads z̄ on (indicator.py): a checkpoint written before the scale was
stored was a percent one, and a resumed run stays on it, so one run never mixes two scales.
"""

import random
from dataclasses import dataclass, field

from .indicator import SCALE, edge_indicator
from .schedule import Architecture

Ranking = dict[str, list[dict[str, float]]]  # cell -> edge -> op -> value
Tallies = dict[str, list[dict[str, list[float]]]]  # cell -> edge -> op -> list of values


@dataclass
class Removal:
    """One op removed from one edge at one pruning step, with what it scored then."""

    k: int  # K before the removal
    cell: str
    edge: int
    op: str
    mean_score: float
    indicator: float


@dataclass
class Ledger:
    remaining: dict[str, list[list[str]]]  # cell -> edge -> ops alive, in canonical order
    scores: Tallies = field(default_factory=dict)  # every z an op got since the last pruning
    removals: list[Removal] = field(default_factory=list)
    last_ranking: Ranking = field(default_factory=dict)  # e per op at the latest pruning step
    lifetime: Tallies = field(default_factory=dict)  # [sum, count] of every z an op ever got
    scale: str = SCALE  # how Eq. 2 reads z̄ (indicator.SCALES)

    @classmethod
    def start(cls, ops: list[str], cells: list[str], edges: int, scale: str = SCALE) -> "Ledger":
        ledger = cls({cell: [list(ops) for _ in range(edges)] for cell in cells}, scale=scale)
        ledger.clear_scores()
        ledger.lifetime = {cell: [{op: [0.0, 0] for op in ops} for _ in range(edges)] for cell in cells}
        return ledger

    @property
    def k(self) -> int:
        """Ops alive per edge (the same on every edge)."""
        return len(next(iter(self.remaining.values()))[0])

    def clear_scores(self) -> None:
        self.scores = {c: [{op: [] for op in ops} for ops in edges] for c, edges in self.remaining.items()}

    def record(self, arch: Architecture, z: float) -> None:
        """Give score z to every op of the sampled architecture (Alg. 1, line 5)."""
        for cell, ops in arch.items():
            for edge, op in enumerate(ops):
                self.scores[cell][edge][op].append(z)
                total = self.lifetime[cell][edge][op]
                total[0] += z
                total[1] += 1

    def lifetime_mean(self, cell: str, edge: int, op: str) -> float:
        """The mean of every score the op got over the whole search (breaks ties between edges)."""
        total, count = self.lifetime[cell][edge][op]
        return total / count if count else float("-inf")

    def mean_scores(self) -> Ranking:
        """z̄ per op: the mean of its scores since the last pruning (the T rounds of this K)."""
        means = {}
        for cell, edges in self.scores.items():
            for ops in edges:
                if any(not zs for zs in ops.values()):
                    raise ValueError("an op has no score yet: a round must finish before ranking")
            means[cell] = [{op: sum(zs) / len(zs) for op, zs in ops.items()} for ops in edges]
        return means

    def ranking(self) -> Ranking:
        """e per op on every edge (Eq. 2)."""
        means = self.mean_scores()
        return {cell: [edge_indicator(ops, self.scale) for ops in edges] for cell, edges in means.items()}

    def prune(self, rng: random.Random) -> list[Removal]:
        """Remove the op with the lowest e on every edge (ties broken by `rng`); K drops by one."""
        ranking = self.ranking()
        worst: dict[str, list[str]] = {}
        for cell, edges in ranking.items():
            worst[cell] = []
            for e in edges:
                lowest = min(e.values())
                worst[cell].append(rng.choice(sorted(op for op, v in e.items() if v == lowest)))
        return self.remove(worst)

    def remove(self, ops: dict[str, list[str]]) -> list[Removal]:
        """Remove `ops` (cell -> the op per edge), recording what each scored; K drops by one.
        `prune` chooses them; replay.py takes them from a log's prune event."""
        k = self.k
        means, ranking = self.mean_scores(), self.ranking()
        removed = []
        for cell, edges in ranking.items():
            for edge, e in enumerate(edges):
                op = ops[cell][edge]
                self.remaining[cell][edge].remove(op)
                removed.append(Removal(k, cell, edge, op, means[cell][edge][op], e[op]))
        self.removals.extend(removed)
        self.last_ranking = ranking
        self.clear_scores()
        return removed

    def to_dict(self) -> dict:
        return {
            "remaining": self.remaining,
            "scores": self.scores,
            "removals": [vars(r) for r in self.removals],
            "last_ranking": self.last_ranking,
            "lifetime": self.lifetime,
            "scale": self.scale,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Ledger":
        return cls(
            remaining=data["remaining"],
            scores=data["scores"],
            removals=[Removal(**r) for r in data["removals"]],
            last_ranking=data["last_ranking"],
            lifetime=data["lifetime"],
            scale=data.get("scale", "percent"),  # checkpoints from before the scale was stored
        )
