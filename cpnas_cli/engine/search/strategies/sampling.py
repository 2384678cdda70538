"""What the sampling strategies (cp, bnas, random, abandit) share: one step trains one sampled
architecture of the Child and Parent supernets and measures both on the search-validation split.

A sampled step can stop between two batches and carry on after `restore`: the sums of the
batches done so far (`SampleSums`) are part of the strategy's state, and the batches of step n are
a pure function of (seed, n), so the rest of the step sees the same batches again.
"""

import time
from dataclasses import asdict, dataclass, field

from cpnas_cli.bookkeeping.learning_rate import cosine_annealing
from cpnas_cli.engine.search.child_parent import ROLES, ChildParent
from cpnas_cli.engine.search.supernet import Architecture

from .base import StepContext, Strategy


@dataclass
class SampleSums:
    """Sums over the batches of the current sample done so far (kept across an interrupt)."""

    batch: int = 0
    seen: int = 0
    loss: dict = field(default_factory=lambda: dict.fromkeys(ROLES, 0.0))
    correct: dict = field(default_factory=lambda: dict.fromkeys(ROLES, 0))
    seconds: dict = field(default_factory=lambda: dict.fromkeys(ROLES, 0.0))

    def add(self, n_images: int, result: dict) -> None:
        self.batch += 1
        self.seen += n_images
        for role, r in result.items():
            self.loss[role] += r["loss"]
            self.correct[role] += r["correct"]
            self.seconds[role] += r["seconds"]

    def mean(self, totals: dict, scale: float = 1.0) -> dict:
        return {role: round(scale * v / max(self.seen, 1), 4) for role, v in totals.items()}


@dataclass
class Trained:
    """One sampled architecture after its step: validation accuracies (percent) and the sample
    event's measurements (losses, train accuracies, lr, images, timings)."""

    acc: dict
    stats: dict


class SamplingStrategy(Strategy):
    """Base of the strategies whose step trains one sampled architecture (Child and Parent)."""

    def __init__(self, config, data, device):
        super().__init__(config, data, device)
        self.cfg = config.search
        self.model = ChildParent(
            self.cfg, data.in_channels, data.num_classes, device, config.seed, data.image_size, data.world
        )
        self.partial = SampleSums()

    def train_sample(self, n: int, arch: Architecture, ctx: StepContext) -> Trained:
        """Train both networks on `arch` for the rest of step n, then measure them."""
        started = time.perf_counter()
        lr = cosine_annealing(self.cfg.lr, self.cfg.lr_min, n, self.total)
        batches, count = self.data.train_batches(
            n, self.cfg.epochs_per_sample, self.cfg.batch_size, start_batch=self.partial.batch
        )
        for x, y in batches:
            ctx.poll()
            result = self.data.world.sum({"images": len(y), "roles": self.model.train_batch(x, y, arch, lr)})
            self.partial.add(result["images"], result["roles"])
            ctx.progress(n=n + 1, batch=self.partial.batch, batches=count)
        eval_start = time.perf_counter()
        acc = self.model.evaluate(self.data.val_batches(self.cfg.eval_batch_size), arch)
        p, self.partial = self.partial, SampleSums()
        loss, train_acc = p.mean(p.loss), p.mean(p.correct, 100)
        return Trained(
            acc,
            {
                "loss_child": loss["child"],
                "loss_parent": loss["parent"],
                "train_acc_child": train_acc["child"],
                "train_acc_parent": train_acc["parent"],
                "lr": lr,
                "images": p.seen,
                "seconds": round(time.perf_counter() - started, 3),
                "child_seconds": round(p.seconds["child"], 3),
                "parent_seconds": round(p.seconds["parent"], 3),
                "eval_seconds": round(time.perf_counter() - eval_start, 3),
                "images_per_s": round(p.seen / max(sum(p.seconds.values()), 1e-9), 1),
            },
        )

    def sample_event(
        self, ctx: StepContext, n: int, arch: Architecture, trained: Trained, z: float, **position
    ) -> dict:
        """The `sample` event of step n; `position` is where it sits in the plan (K, round, index, ...)."""
        return ctx.event(
            "sample",
            n=n + 1,
            total=self.total,
            **position,
            arch=arch,
            acc_child=round(trained.acc["child"], 4),
            acc_parent=round(trained.acc["parent"], 4),
            z=round(z, 4),
            **trained.stats,
            elapsed=round(ctx.elapsed(), 1),
        )

    def tensors(self):
        self.data.world.sync_buffers(self.model.nets.values())  # a checkpoint holds rank 0's running statistics
        return self.model.state_tensors()

    def state(self) -> dict:
        return {"partial": asdict(self.partial)}

    def restore_partial(self, state: dict) -> None:
        self.partial = SampleSums(**state["partial"])


def rounded(values: dict, digits: int = 6) -> dict:
    """{cell: [{op: value}]} with every value rounded, for an event."""
    return {
        cell: [{op: round(v, digits) for op, v in edge.items()} for edge in edges] for cell, edges in values.items()
    }
