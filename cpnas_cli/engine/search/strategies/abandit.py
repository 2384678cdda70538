"""ABanditNAS (book Ch. 4.2, Alg. 8) on this project's 8-op 1-bit search space: an anti-bandit
draws the architectures, trains them one at a time, and prunes by confidence bounds.

One step is one trial: draw one op per edge, train the Child and Parent on it (as every sampling
strategy does), reward the drawn ops with the Child's validation accuracy in [0, 1] (or Eq. 1's
z / 100 with `search.bandit_reward: cp`). K0 warm-up trials first give every op one reward; then
T = `search.rounds` times K trials per K, each drawn from softmax(-LCB), and after them the op
with the lowest UCB leaves every edge (bookkeeping/bandit.py). The original's adversarial training,
Gabor and denoising ops are not part of it; see docs/strategies.md for every choice made here.
"""

import random

from cpnas_cli.bookkeeping.bandit import Bandit, bandit_plan, lower_bound, upper_bound
from cpnas_cli.bookkeeping.cp_rule import derive
from cpnas_cli.bookkeeping.indicator import performance
from cpnas_cli.bookkeeping.schedule import round_architectures
from cpnas_cli.space.cells import CELL_TYPES, cell_edges

from .base import StepContext
from .sampling import SamplingStrategy, rounded


class ABanditStrategy(SamplingStrategy):
    name = "abandit"

    def __init__(self, config, data, device):
        super().__init__(config, data, device)
        self.bandit = Bandit.start(self.cfg.ops, list(CELL_TYPES), len(cell_edges(self.cfg.nodes)))
        self.plan = bandit_plan(len(self.cfg.ops), self.cfg.rounds)

    @property
    def total(self) -> int:
        return len(self.plan)

    def reward(self, acc: dict) -> float:
        """a in [0, 1]: the Child's accuracy, or Eq. 1's z with `bandit_reward: cp` (above 1 when
        beta_P > 1 and the Parent is far ahead: the bound's [0, 1] assumption then bends)."""
        if self.cfg.bandit_reward == "cp":
            return performance(acc["child"], acc["parent"], self.cfg.beta_p) / 100
        return acc["child"] / 100

    def architecture(self, n: int) -> dict:
        """Trial n's architecture: a pure function of (seed, n) and the bandit before the trial."""
        phase, _, index = self.plan[n]
        seed = self.config.seed
        if phase == "warmup":  # every op of every edge once over the K0 warm-up trials
            return round_architectures(self.bandit.remaining, random.Random(f"cpnas-abandit-warmup:{seed}"))[index]
        return self.bandit.draw(random.Random(f"cpnas-abandit-draw:{seed}:{n}"))

    def step(self, n: int, ctx: StepContext) -> list[dict]:
        phase, k, index = self.plan[n]
        arch = self.architecture(n)
        trained = self.train_sample(n, arch, ctx)
        a = self.reward(trained.acc)
        if phase == "warmup":
            self.bandit.warm_up(arch, a)
            position = {"K": k, "round": 0, "index": index + 1}
        else:
            self.bandit.record(arch, a, self.cfg.bandit_lambda)
            position = {"K": k, "round": index // k + 1, "index": index % k + 1}
        events = [
            self.sample_event(
                ctx, n, arch, trained, 100 * a, **position, phase=phase, reward=round(a, 6), trials=self.bandit.trials
            )
        ]
        if phase == "warmup" and index < k - 1:
            return events  # the bounds need every op drawn once
        events.append(self._ranking(k, ctx))
        if phase == "bandit" and index == k * self.cfg.rounds - 1:
            events += self._prune(k, ctx)
        return events

    def _ranking(self, k: int, ctx: StepContext) -> dict:
        """The bandit after a trial. `indicator` is the UCB (Eq. 4.12, what pruning ranks by);
        `p` the sampling probabilities of the next trial (Eq. 4.10)."""
        b = self.bandit
        return ctx.event(
            "ranking",
            K=k,
            trials=b.trials,
            indicator=rounded(b.bounds(upper_bound)),
            lcb=rounded(b.bounds(lower_bound)),
            p=rounded(b.probabilities()),
            m={
                c: [{op: round(m[op], 6) for op in ops} for ops, m in zip(edges, b.m[c], strict=True)]
                for c, edges in b.remaining.items()
            },
            pulls={
                c: [{op: n[op] for op in ops} for ops, n in zip(edges, b.n[c], strict=True)]
                for c, edges in b.remaining.items()
            },
        )

    def _prune(self, k: int, ctx: StepContext) -> list[dict]:
        removals = self.bandit.prune(random.Random(f"cpnas-abandit-prune:{self.config.seed}:{k}"))
        self.model.prune(removals)
        removed = {cell: [r.op for r in removals if r.cell == cell] for cell in CELL_TYPES}
        return [ctx.event("prune", K=k, removed=removed)]

    def state(self) -> dict:
        return {"bandit": self.bandit.to_dict(), **super().state()}

    def restore(self, tensors, state) -> None:
        self.bandit = Bandit.from_dict(state["bandit"])
        self.model.prune(self.bandit.removals)
        self.model.load_state_tensors(tensors)
        self.restore_partial(state)

    def genotype(self, meta: dict):
        reward = self.cfg.bandit_reward
        meta = {
            **meta,
            "beta_p": self.cfg.beta_p if reward == "cp" else None,
            "bandit_reward": reward,
            "bandit_lambda": self.cfg.bandit_lambda,
        }
        return derive(self.bandit.ledger(), self.cfg.nodes, self.cfg.genotype, meta=meta)
