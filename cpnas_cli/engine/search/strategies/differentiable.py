"""What PC-DARTS and DCP-NAS share: phases, the alternating batch loop, schedules, checkpoints.

A differentiable search trains a mixed-op supernet for `diff_epochs` passes over the search-train
split, cut into phases of `diff_phase_epochs` (one step each: one `alpha` event, one checkpoint).
DCP runs a Parent and a Child phase in turn, so each network gets the full number of epochs.
Every iteration pairs one weight batch (search-train split) with one architecture batch (a
reshuffled stream over the search-validation split); both streams are functions of (seed, step),
so a step resumed at batch b sees what an uninterrupted one would have. Architecture updates
begin at `diff_warmup_epochs`; the weights' learning rate follows a cosine over the epochs.

Under torchrun every rank takes its share of both batches; weight gradients and architecture
gradients are averaged over the ranks before every optimizer step (engine/run/distributed.py), so
the logits alpha (and beta) are identical on every rank after every step: the failure of
microsoft/nni#5013, where DDP left the architecture gradients unreduced and each rank grew its own
architecture, cannot happen, and each commit checks it (RunLoop.commit).
"""

import math
import time
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn

from cpnas_cli.bookkeeping import darts_rule
from cpnas_cli.bookkeeping.learning_rate import cosine_annealing
from cpnas_cli.engine.nn.backbone import uses_imagenet_stem
from cpnas_cli.engine.nn.ops import Style
from cpnas_cli.engine.run.tensors import (
    load_module_tensors,
    load_optimizer_tensors,
    module_tensors,
    optimizer_tensors,
)
from cpnas_cli.engine.search.mixed_supernet import MixedSupernet
from cpnas_cli.space.genotype import to_dict

from .base import StepContext, Strategy


@dataclass(frozen=True)
class Phase:
    role: str  # "search" (pc-darts), "parent" or "child" (dcp)
    start: float  # epochs this role had trained before the phase
    length: float  # epochs in the phase


def phase_plan(epochs: float, phase_epochs: float, roles: tuple[str, ...]) -> list[Phase]:
    """The steps of a search: per phase index, each role in turn."""
    count = math.ceil(epochs / phase_epochs - 1e-9)
    return [
        Phase(role, i * phase_epochs, min(phase_epochs, epochs - i * phase_epochs))
        for i in range(count)
        for role in roles
    ]


@dataclass
class PhaseSums:
    """Sums over the batches of the current phase so far (kept across an interrupt)."""

    batch: int = 0
    seen: int = 0
    arch_steps: int = 0
    train: dict = field(default_factory=dict)  # metric -> sum over images
    arch: dict = field(default_factory=dict)  # metric -> sum over architecture steps

    def add(self, images: int, train: dict, arch: dict | None) -> None:
        self.batch += 1
        self.seen += images
        for key, value in train.items():
            self.train[key] = self.train.get(key, 0.0) + value * images
        if arch is not None:
            self.arch_steps += 1
            for key, value in arch.items():
                self.arch[key] = self.arch.get(key, 0.0) + value

    def means(self) -> dict:
        result = {k: round(v / max(self.seen, 1), 5) for k, v in self.train.items()}
        result.update({k: round(v / self.arch_steps, 6) for k, v in self.arch.items()})
        return result


def weight_optimizer(params, cfg) -> torch.optim.Optimizer:
    if cfg.diff_optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.diff_lr, weight_decay=cfg.diff_weight_decay)
    return torch.optim.SGD(params, lr=cfg.diff_lr, momentum=cfg.momentum, weight_decay=cfg.diff_weight_decay)


def arch_optimizer(params, cfg) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.arch_lr, betas=tuple(cfg.arch_betas), weight_decay=cfg.arch_weight_decay)


def detached(logits: dict | None) -> dict | None:
    return {k: v.detach() for k, v in logits.items()} if logits is not None else None


def set_grads(params: Sequence[torch.Tensor], grads: Iterable[torch.Tensor]) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = g


class DifferentiableStrategy(Strategy):
    """Subclasses set `roles`, build their networks in __init__, register what a checkpoint holds
    (`self.parts`: modules, `self.optims`: name -> (optimizer, module)), and implement
    `iteration` and `phase_event`."""

    roles: tuple[str, ...] = ("search",)

    def __init__(self, config, data, device):
        super().__init__(config, data, device)
        self.cfg = config.search
        self.plan = phase_plan(self.cfg.diff_epochs, self.cfg.diff_phase_epochs, self.roles)
        self.partial = PhaseSums()
        self.parts: dict[str, nn.Module] = {}
        self.optims: dict[str, tuple[torch.optim.Optimizer, nn.Module]] = {}

    def supernet(self, style: Style) -> MixedSupernet:
        c = self.cfg
        torch.manual_seed(self.config.seed)  # the same initial weights for every network of a run
        net = MixedSupernet(
            self.data.in_channels,
            self.data.num_classes,
            c.channels,
            c.cells,
            c.ops,
            style,
            nodes=c.nodes,
            reductions=c.reductions,
            stem_stride=c.stem_stride,
            k=c.pc_k,
            imagenet_stem=uses_imagenet_stem(c.imagenet_stem, self.data.image_size),
        )
        return net.to(self.device).to(memory_format=torch.channels_last)

    @property
    def total(self) -> int:
        return len(self.plan)

    def schedule(self, progress: float) -> float:
        """The weights' learning rate at `progress` epochs, as a fraction of diff_lr."""
        c = self.cfg
        return cosine_annealing(c.diff_lr, c.diff_lr_min, progress, c.diff_epochs) / c.diff_lr

    def weight_lr(self, role: str, progress: float) -> float:
        """The learning rate of `role`'s weights at `progress` epochs."""
        return self.cfg.diff_lr * self.schedule(progress)

    @abstractmethod
    def iteration(self, phase: Phase, x, y, xa, ya, progress: float) -> tuple[dict, dict | None]:
        """One weight step on (x, y) and, past the warm-up, one architecture step on (xa, ya).
        Returns (per-image metrics, architecture-step metrics or None)."""

    @abstractmethod
    def phase_event(self, phase: Phase, ctx: StepContext) -> dict:
        """The role-specific fields of the phase's alpha event (accuracies, weights, genotype)."""

    def phase_begin(self, n: int, phase: Phase) -> None:
        """Called when step n starts from its first batch (DCP's inheritance); must be idempotent,
        since an interrupt before the first batch runs it again on resume."""

    def step(self, n: int, ctx: StepContext) -> list[dict]:
        phase = self.plan[n]
        started = time.perf_counter()
        size = self.cfg.diff_batch_size
        batches, count = self.data.train_batches(n, phase.length, size, start_batch=self.partial.batch)
        arch = self.data.arch_batches(n, count, size, start_batch=self.partial.batch)
        if self.partial.batch == 0:
            self.phase_begin(n, phase)
        world = self.data.world
        for (x, y), (xa, ya) in zip(batches, arch, strict=True):
            ctx.poll()
            progress = phase.start + phase.length * self.partial.batch / count
            train, arch_metrics = self.iteration(phase, x, y, xa, ya, progress)
            images, means = world.mean(train, len(y))
            self.partial.add(images, means or {}, world.mean(arch_metrics, len(ya))[1])
            ctx.progress(n=n + 1, batch=self.partial.batch, batches=count, unit="phase")
        p, self.partial = self.partial, PhaseSums()
        end = phase.start + phase.length
        fields = dict(
            step=n + 1,
            total=self.total,
            role=phase.role,
            epoch=round(end, 4),
            images=p.seen,
            arch_steps=p.arch_steps,
            lr=round(self.weight_lr(phase.role, end), 6),
            **p.means(),
        )
        fields.update(self.phase_event(phase, ctx))
        seconds = time.perf_counter() - started
        fields.update(
            seconds=round(seconds, 3),
            images_per_s=round(p.seen / max(seconds, 1e-9), 1),
            elapsed=round(ctx.elapsed(), 1),
        )
        return [ctx.event("alpha", **fields)]

    # --- helpers for subclasses ------------------------------------------------------------

    def train_weights(self, net, optimizer, lr: float, loss: torch.Tensor, clip: float, images: int) -> None:
        """One optimizer step on `loss`, the mean over this rank's `images` (gradients averaged over ranks)."""
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.data.world.average_gradients(net.parameters(), images)
        nn.utils.clip_grad_norm_([p for p in net.parameters() if p.grad is not None], clip)
        optimizer.step()

    @torch.no_grad()
    def accuracy(self, net: MixedSupernet, alpha: dict, beta: dict | None = None) -> float:
        """Top-1 accuracy (%) of the supernet with these logits on the search-validation split
        (eval mode, as cp's: the stem's BN uses its running statistics, the cells batch statistics)."""
        correct = seen = 0
        self.data.world.sync_buffers([net])
        net.eval()
        for x, y in self.data.val_batches(self.cfg.eval_batch_size):
            correct += (net(x, alpha, beta).argmax(1) == y).sum().item()
            seen += len(y)
        net.train()
        totals = self.data.world.sum({"correct": correct, "seen": seen})
        return round(100.0 * totals["correct"] / max(totals["seen"], 1), 4)

    def arch_summary(self, arch) -> dict:
        """Softmax weights per op per edge, edge weights, and the genotype they would give now."""
        alpha, beta = arch.as_lists()
        ops, nodes = list(self.cfg.ops), self.cfg.nodes
        summary = {
            "weights": _rounded(darts_rule.op_weights(alpha, ops)),
            "genotype": to_dict(darts_rule.derive(alpha, ops, nodes, beta, self.cfg.genotype)),
        }
        if beta is not None:
            summary["edge_weights"] = {
                c: [round(w, 6) for w in ws] for c, ws in darts_rule.edge_weights(beta, nodes).items()
            }
        return summary

    # --- checkpoints ------------------------------------------------------------------------

    def tensors(self) -> dict[str, torch.Tensor]:
        self.data.world.sync_buffers(self.parts.values())  # a checkpoint holds rank 0's running statistics
        tensors = {}
        for name, part in self.parts.items():
            tensors.update(module_tensors(name, part))
        for name, (optimizer, module) in self.optims.items():
            tensors.update(optimizer_tensors(name, module, optimizer))
        return tensors

    def state(self) -> dict:
        return {"partial": asdict(self.partial)}

    def restore(self, tensors, state) -> None:
        for name, part in self.parts.items():
            load_module_tensors(name, part, tensors)
        for name, (optimizer, module) in self.optims.items():
            load_optimizer_tensors(name, module, optimizer, tensors)
        self.partial = PhaseSums(**state["partial"])


def _rounded(weights: dict) -> dict:
    return {cell: [{op: round(w, 6) for op, w in edge.items()} for edge in edges] for cell, edges in weights.items()}
