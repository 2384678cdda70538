"""CP-NAS (Alg. 1): Child and Parent train each sampled architecture; Eq. 1 scores it; after T
rounds Eq. 2 ranks the ops of every edge and the worst goes, until one op per edge is left.

One step is one sample. For K = K0 .. 2, for each of T rounds, K samples whose architectures
cover every remaining op of every edge exactly once (schedule.py). Everything random is a pure
function of (seed, position), so the state to keep is the weights, the ledger and how far into
the current sample training got.
"""

import random

from cpnas_cli.bookkeeping.cp_rule import derive
from cpnas_cli.bookkeeping.indicator import performance
from cpnas_cli.bookkeeping.ledger import Ledger
from cpnas_cli.bookkeeping.schedule import round_architectures, round_rng, sample_plan
from cpnas_cli.space.cells import CELL_TYPES, cell_edges

from .base import StepContext
from .sampling import SamplingStrategy, rounded


class CPStrategy(SamplingStrategy):
    name = "cp"

    def __init__(self, config, data, device):
        super().__init__(config, data, device)
        self.ledger = Ledger.start(self.cfg.ops, list(CELL_TYPES), len(cell_edges(self.cfg.nodes)))
        self.plan = sample_plan(len(self.cfg.ops), self.cfg.rounds)

    @property
    def total(self) -> int:
        return len(self.plan)

    def score(self, n: int, acc: dict) -> float:
        """Eq. 1: the score of sample n, given to every op it used."""
        return performance(acc["child"], acc["parent"], self.cfg.beta_p)

    def step(self, n: int, ctx: StepContext) -> list[dict]:
        k, rnd, index = self.plan[n]
        events = [self.scored_sample(n, ctx)]
        if rnd == self.cfg.rounds - 1 and index == k - 1:
            events += self._prune(k, ctx)
        return events

    def scored_sample(self, n: int, ctx: StepContext) -> dict:
        """Sample n of the round (Alg. 1, lines 3-5): train it, score it by Eq. 1, record the score
        for every op it used; returns its event."""
        k, rnd, index = self.plan[n]
        arch = round_architectures(self.ledger.remaining, round_rng(self.config.seed, k, rnd))[index]
        trained = self.train_sample(n, arch, ctx)
        z = self.score(n, trained.acc)
        self.ledger.record(arch, z)
        return self.sample_event(ctx, n, arch, trained, z, K=k, round=rnd + 1, index=index + 1)

    def _prune(self, k: int, ctx: StepContext) -> list[dict]:
        means, ranking = self.ledger.mean_scores(), self.ledger.ranking()
        removals = self.ledger.prune(random.Random(f"cpnas-prune:{self.config.seed}:{k}"))
        self.model.prune(removals)
        removed = {cell: [r.op for r in removals if r.cell == cell] for cell in CELL_TYPES}
        return [
            ctx.event("ranking", K=k, mean_z=rounded(means), indicator=rounded(ranking), scale=self.ledger.scale),
            ctx.event("prune", K=k, removed=removed),
        ]

    def header_fields(self) -> dict:
        """The scale Eq. 2 reads z̄ on: the dashboard computes its live e with it."""
        return {"indicator_scale": self.ledger.scale}

    def state(self) -> dict:
        return {"ledger": self.ledger.to_dict(), **super().state()}

    def restore(self, tensors, state) -> None:
        self.ledger = Ledger.from_dict(state["ledger"])
        self.model.prune(self.ledger.removals)
        self.model.load_state_tensors(tensors)
        self.restore_partial(state)

    def genotype(self, meta: dict):
        return derive(self.ledger, self.cfg.nodes, self.cfg.genotype, meta=meta)
