"""The supernet that `cpnas correlate` scores: CP-NAS's Child-Parent training (cp.py) with K fixed
at the number of ops, so every op stays alive and any architecture of the space can be scored.

It trains as many samples as a `cp` search of the same configuration (sum over K = K0 .. 2 of
T x K), in rounds of K0 samples that cover every op of every edge once (schedule.py), with the
same learning-rate schedule and batches. Nothing is pruned and no genotype comes out.
"""

from cpnas_cli.bookkeeping.schedule import sample_plan

from .base import StepContext
from .cp import CPStrategy


class SupernetStrategy(CPStrategy):
    name = "supernet"

    def __init__(self, config, data, device):
        super().__init__(config, data, device)
        k = len(self.cfg.ops)
        self.plan = [(k, n // k, n % k) for n in range(len(sample_plan(k, self.cfg.rounds)))]

    def step(self, n: int, ctx: StepContext) -> list[dict]:
        return [self.scored_sample(n, ctx)]  # never prunes: every op stays scoreable

    def genotype(self, meta: dict):
        return None  # a supernet to score, not a search
