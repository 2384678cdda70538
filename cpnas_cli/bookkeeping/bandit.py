"""ABanditNAS's bookkeeping: every op on every edge is an arm of an anti-bandit. Torch-free.

Book Ch. 4.2 (Eqs. 4.9-4.13, Alg. 8), on our search space. Per arm: m, the moving-average reward
(Eq. 4.11), and n, how often it was drawn; N counts the trials, warm-up included, and is never
reset (one trial draws one arm on every edge, so N is also every edge's total of draws).

- Warm-up: K0 trials whose architectures cover every op of every edge once (schedule.py); the
  reward sets m = a and n = 1 for each drawn op.
- Each later trial draws one op per edge with probability softmax(-s_L) (Eq. 4.10), where
  s_L = m - sqrt(2 ln N / n) is the lower confidence bound (Eq. 4.9): weak-looking or rarely
  drawn ops are drawn more often. The reward a updates the drawn ops: m <- (1 - λ) m + λ a.
- After every K·T trials (K ops alive per edge), the op with the lowest upper confidence bound
  s_U = m + sqrt(2 ln N / n) (Eq. 4.12) leaves every edge (Eq. 4.13); ties by a seeded draw.

Rewards are accuracies in [0, 1] (the bound assumes it). m, n and the reward sums of removed ops
stay in the record; only `remaining` says which arms are alive.
"""

import math
import random
from dataclasses import dataclass, field, replace

from .indicator import softmax
from .ledger import Ledger, Removal
from .schedule import Architecture

Values = dict[str, list[dict[str, float]]]  # cell -> edge -> op -> value


def lower_bound(m: float, n: int, trials: int) -> float:
    """Eq. 4.9: s_L = m - sqrt(2 ln N / n)."""
    return m - math.sqrt(2 * math.log(trials) / n)


def upper_bound(m: float, n: int, trials: int) -> float:
    """Eq. 4.12: s_U = m + sqrt(2 ln N / n)."""
    return m + math.sqrt(2 * math.log(trials) / n)


def sampling_probabilities(lower: dict[str, float]) -> dict[str, float]:
    """Eq. 4.10: p = softmax(-s_L) over the ops of one edge."""
    return softmax({op: -s for op, s in lower.items()})


def bandit_plan(k0: int, rounds: int) -> list[tuple[str, int, int]]:
    """(phase, K, position) of every trial: K0 warm-up trials, then K·T trials for K = K0 .. 2;
    the pruning follows the last trial of each K. T = 3, K0 = 8: 8 + 3 (8 + ... + 2) = 113."""
    warmup = [("warmup", k0, i) for i in range(k0)]
    return warmup + [("bandit", k, c) for k in range(k0, 1, -1) for c in range(k * rounds)]


@dataclass
class Bandit:
    remaining: dict[str, list[list[str]]]  # cell -> edge -> ops alive, in canonical order
    m: Values
    n: dict[str, list[dict[str, int]]]
    reward_sum: Values  # every reward an arm got: its lifetime mean breaks genotype ties
    trials: int = 0  # N
    removals: list[Removal] = field(default_factory=list)  # mean_score = m, indicator = s_U at removal

    @classmethod
    def start(cls, ops: list[str], cells: list[str], edges: int) -> "Bandit":
        def zeros(value):
            return {cell: [dict.fromkeys(ops, value) for _ in range(edges)] for cell in cells}

        return cls({cell: [list(ops) for _ in range(edges)] for cell in cells}, zeros(0.0), zeros(0), zeros(0.0))

    @property
    def k(self) -> int:
        """Ops alive per edge (the same on every edge)."""
        return len(next(iter(self.remaining.values()))[0])

    def warm_up(self, arch: Architecture, reward: float) -> None:
        """A warm-up trial: every drawn op starts with m = a, n = 1."""
        for cell, edge, op in _arms(arch):
            self.m[cell][edge][op], self.n[cell][edge][op] = reward, 1
            self.reward_sum[cell][edge][op] += reward
        self.trials += 1

    def record(self, arch: Architecture, reward: float, lam: float) -> None:
        """Eq. 4.11 for every drawn op: m <- (1 - λ) m + λ a, n <- n + 1; then N <- N + 1."""
        for cell, edge, op in _arms(arch):
            self.m[cell][edge][op] = (1 - lam) * self.m[cell][edge][op] + lam * reward
            self.n[cell][edge][op] += 1
            self.reward_sum[cell][edge][op] += reward
        self.trials += 1

    def bounds(self, bound) -> Values:
        """`bound` (lower_bound or upper_bound) of every alive op, at the current N."""
        return {
            cell: [
                {op: bound(self.m[cell][e][op], self.n[cell][e][op], self.trials) for op in ops}
                for e, ops in enumerate(edges)
            ]
            for cell, edges in self.remaining.items()
        }

    def probabilities(self) -> Values:
        """The sampling distribution of the next trial on every edge (Eq. 4.10)."""
        return {
            cell: [sampling_probabilities(lower) for lower in edges] for cell, edges in self.bounds(lower_bound).items()
        }

    def draw(self, rng: random.Random) -> Architecture:
        """One op per edge from the Eq. 4.10 distribution, edges in canonical order."""
        return {cell: [_pick(p, rng.random()) for p in edges] for cell, edges in self.probabilities().items()}

    def prune(self, rng: random.Random) -> list[Removal]:
        """Eq. 4.13: the op with the lowest s_U leaves every edge (ties broken by `rng`)."""
        k, removed = self.k, []
        for cell, edges in self.bounds(upper_bound).items():
            for edge, upper in enumerate(edges):
                lowest = min(upper.values())
                worst = rng.choice(sorted(op for op, u in upper.items() if u == lowest))
                self.remaining[cell][edge].remove(worst)
                removed.append(Removal(k, cell, edge, worst, self.m[cell][edge][worst], upper[worst]))
        self.removals.extend(removed)
        return removed

    def ledger(self) -> Ledger:
        """A finished bandit as the Ledger that cp_rule.derive reads: an op's strength is its m,
        for survivors and for the removed ops a zero edge may borrow; ties by the mean reward."""
        return Ledger(
            remaining=self.remaining,
            scores={},
            removals=[replace(r, indicator=r.mean_score) for r in self.removals],
            last_ranking={
                cell: [{op: self.m[cell][e][op] for op in ops} for e, ops in enumerate(edges)]
                for cell, edges in self.remaining.items()
            },
            lifetime={
                cell: [
                    {op: [self.reward_sum[cell][e][op], self.n[cell][e][op]] for op in m} for e, m in enumerate(edges)
                ]
                for cell, edges in self.m.items()
            },
        )

    def to_dict(self) -> dict:
        return {
            "remaining": self.remaining,
            "m": self.m,
            "n": self.n,
            "reward_sum": self.reward_sum,
            "trials": self.trials,
            "removals": [vars(r) for r in self.removals],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Bandit":
        return cls(
            data["remaining"],
            data["m"],
            data["n"],
            data["reward_sum"],
            data["trials"],
            [Removal(**r) for r in data["removals"]],
        )


def _arms(arch: Architecture):
    for cell, ops in arch.items():
        for edge, op in enumerate(ops):
            yield cell, edge, op


def _pick(probabilities: dict[str, float], u: float) -> str:
    """The op whose slice of [0, 1) holds u, slices in the edge's canonical op order."""
    total = 0.0
    for op, p in probabilities.items():
        total += p
        if u < total:
            return op
    return op  # u fell in the rounding gap just below 1
