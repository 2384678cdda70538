"""CP-NAS (Alg. 1): Child and Parent train each sampled architecture; Eq. 1 scores it; after T
rounds Eq. 2 ranks the ops of every edge and the worst goes, until one op per edge is left.

One step is one sample. For K = K0 .. 2, for each of T rounds, K samples whose architectures
cover every remaining op of every edge exactly once (schedule.py). Everything random is a pure
function of (seed, position), so the state to keep is the weights, the ledger and how far into
the current sample training got.
"""

import math
import random
import time
from dataclasses import asdict, dataclass, field

from ..child_parent import ROLES, ChildParent
from ..genotype import derive
from ..indicator import performance
from ..ledger import Ledger
from ..schedule import round_architectures, round_rng, sample_plan
from ..space import CELL_TYPES, cell_edges
from .base import StepContext, Strategy


def cosine_lr(cfg, n: int, total: int) -> float:
    """The learning rate of step n: cosine annealing from lr to lr_min over the search."""
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * n / total))


@dataclass
class Partial:
    """Sums over the batches of the current sample done so far (kept across an interrupt)."""

    batch: int = 0
    seen: int = 0
    loss: dict = field(default_factory=lambda: {r: 0.0 for r in ROLES})
    correct: dict = field(default_factory=lambda: {r: 0 for r in ROLES})
    seconds: dict = field(default_factory=lambda: {r: 0.0 for r in ROLES})

    def add(self, n_images: int, result: dict) -> None:
        self.batch += 1
        self.seen += n_images
        for role, r in result.items():
            self.loss[role] += r["loss"]
            self.correct[role] += r["correct"]
            self.seconds[role] += r["seconds"]

    def mean(self, totals: dict, scale: float = 1.0) -> dict:
        return {role: round(scale * v / max(self.seen, 1), 4) for role, v in totals.items()}


class CPStrategy(Strategy):
    name = "cp"

    def __init__(self, config, data, device):
        super().__init__(config, data, device)
        self.cfg = config.search
        self.model = ChildParent(self.cfg, data.in_channels, data.num_classes, device, config.seed)
        self.ledger = Ledger.start(self.cfg.ops, list(CELL_TYPES), len(cell_edges(self.cfg.nodes)))
        self.plan = sample_plan(len(self.cfg.ops), self.cfg.rounds)
        self.partial = Partial()

    @property
    def total(self) -> int:
        return len(self.plan)

    def score(self, acc: dict) -> float:
        """Eq. 1."""
        return performance(acc["child"], acc["parent"], self.cfg.beta_p)

    def step(self, n: int, ctx: StepContext) -> list[dict]:
        k, rnd, index = self.plan[n]
        arch = round_architectures(self.ledger.remaining, round_rng(self.config.seed, k, rnd))[index]
        started = time.perf_counter()
        lr = cosine_lr(self.cfg, n, self.total)
        batches, count = self.data.train_batches(n, self.cfg.epochs_per_sample, self.cfg.batch_size,
                                                 start_batch=self.partial.batch)
        for x, y in batches:
            ctx.poll()
            self.partial.add(len(y), self.model.train_batch(x, y, arch, lr))
            ctx.progress(n=n + 1, batch=self.partial.batch, batches=count)
        eval_start = time.perf_counter()
        acc = self.model.evaluate(self.data.val_batches(self.cfg.eval_batch_size), arch)
        z = self.score(acc)
        self.ledger.record(arch, z)
        p, self.partial = self.partial, Partial()
        loss, train_acc = p.mean(p.loss), p.mean(p.correct, 100)
        events = [ctx.event(
            "sample", n=n + 1, total=self.total, K=k, round=rnd + 1, index=index + 1, arch=arch,
            acc_child=round(acc["child"], 4), acc_parent=round(acc["parent"], 4), z=round(z, 4),
            loss_child=loss["child"], loss_parent=loss["parent"],
            train_acc_child=train_acc["child"], train_acc_parent=train_acc["parent"],
            lr=lr, images=p.seen, seconds=round(time.perf_counter() - started, 3),
            child_seconds=round(p.seconds["child"], 3), parent_seconds=round(p.seconds["parent"], 3),
            eval_seconds=round(time.perf_counter() - eval_start, 3),
            images_per_s=round(p.seen / max(sum(p.seconds.values()), 1e-9), 1), elapsed=round(ctx.elapsed(), 1))]
        if rnd == self.cfg.rounds - 1 and index == k - 1:
            events += self._prune(k, ctx)
        return events

    def _prune(self, k: int, ctx: StepContext) -> list[dict]:
        means, ranking = self.ledger.mean_scores(), self.ledger.ranking()
        removals = self.ledger.prune(random.Random(f"cpnas-prune:{self.config.seed}:{k}"))
        self.model.prune(removals)
        removed = {cell: [r.op for r in removals if r.cell == cell] for cell in CELL_TYPES}
        return [ctx.event("ranking", K=k, mean_z=_rounded(means), indicator=_rounded(ranking)),
                ctx.event("prune", K=k, removed=removed)]

    def tensors(self):
        return self.model.state_tensors()

    def state(self) -> dict:
        return {"ledger": self.ledger.to_dict(), "partial": asdict(self.partial)}

    def restore(self, tensors, state) -> None:
        self.ledger = Ledger.from_dict(state["ledger"])
        self.model.prune(self.ledger.removals)
        self.model.load_state_tensors(tensors)
        self.partial = Partial(**state["partial"])

    def genotype(self, meta: dict):
        return derive(self.ledger, self.cfg.nodes, self.cfg.genotype, meta=meta)


def _rounded(ranking: dict) -> dict:
    return {cell: [{op: round(v, 6) for op, v in edge.items()} for edge in edges] for cell, edges in ranking.items()}
