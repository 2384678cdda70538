"""The Child and the Parent evaluation networks of one genotype in training (Secs. 2.1, 2.4, 3.1).

The Child is the 1-bit network; the Parent, the same genotype in full precision, supervises it
through the kernel-level CP loss (losses.py). The Parent is trained alongside the Child on the
same batches (`joint`), loaded frozen from a model file, or absent (`none`). Child and Parent
start from the same initial weights, so the kernel term starts aligned filter by filter.

No module-level state: an instance owns its networks and optimizers, so torch.distributed can
wrap the networks of one instance per process. Under torchrun (`world`) the networks that train
are wrapped in DistributedDataParallel for their forward and backward (a fixed graph: every
parameter takes part in every step, so DDP's buckets fit and overlap the all-reduce with the
backward); each rank trains on its share of the batch with its own BatchNorm batch statistics
and evaluates whole test batches in turn, with rank 0's running statistics.
"""

import inspect
import time
import warnings
from pathlib import Path
from typing import cast

import torch
import torch.nn as nn

from cpnas_cli.config import TrainConfig
from cpnas_cli.engine.nn.binary import BinaryConv2d
from cpnas_cli.engine.nn.cp_terms import center_loss, kernel_loss
from cpnas_cli.engine.nn.network import Cell, EvalNetwork, NetworkSpec
from cpnas_cli.engine.run.distributed import SOLO, World
from cpnas_cli.engine.run.precision import precision
from cpnas_cli.engine.run.tensors import load_trained_tensors, trained_tensors
from cpnas_cli.errors import UserError
from cpnas_cli.space import genotype as genotypes

from .losses import CPLossWeights, classification_loss, cp_loss, paired_kernels
from .model_file import load_model


class TrainingPair:
    def __init__(
        self,
        cfg: TrainConfig,
        spec: NetworkSpec,
        genotype: genotypes.Genotype,
        device: torch.device,
        seed: int,
        world: World = SOLO,
    ):
        self.cfg, self.device, self.world = cfg, device, world
        self._forwards: dict[str, nn.Module] | None = None  # DDP wrappers, made at the first step
        self.weights = CPLossWeights(cfg.kernel_weight, cfg.center_weight, cfg.auxiliary_weight, cfg.label_smoothing)
        self.child = self._build(spec, genotype, True, seed)
        self.parent = self._parent(spec, genotype, seed)
        self.joint = cfg.parent == "joint"
        self.nets: dict[str, EvalNetwork] = {"child": self.child}
        if self.joint and self.parent is not None:  # joint: _parent built it
            self.nets["parent"] = self.parent
        self.optimizers = {role: self._optimizer(net) for role, net in self.nets.items()}
        self.precision = precision(cfg.amp, device, "train.amp")
        kernel_parent = self.parent if cfg.kernel_source == "parent" else None
        self.pairs = paired_kernels(self.child, kernel_parent) if self.parent or cfg.kernel_source == "self" else None

    def _build(self, spec: NetworkSpec, genotype, binary: bool, seed: int) -> EvalNetwork:
        torch.manual_seed(seed)  # the same initial weights for Child and Parent
        net = spec.build(genotype, binary, drop_path=self.cfg.drop_path)
        return net.to(self.device).to(memory_format=torch.channels_last)

    def _parent(self, spec: NetworkSpec, genotype, seed: int) -> EvalNetwork | None:
        if self.cfg.parent == "none":
            return None
        if self.cfg.parent == "joint":
            return self._build(spec, genotype, False, seed)
        info, _, parent = load_model(Path(self.cfg.parent), self.device)
        if parent is None:
            raise UserError(
                f"{self.cfg.parent} holds no Parent weights", "train.parent needs a model file written with a Parent"
            )
        if _structure(info.genotype) != _structure(genotype) or info.spec != spec:
            raise UserError(
                f"the Parent in {self.cfg.parent} is from another genotype or network",
                "use a model file trained from this genotype with the same network settings",
            )
        parent.requires_grad_(False)
        return parent.to(memory_format=torch.channels_last).eval()

    def _optimizer(self, net: nn.Module) -> torch.optim.Optimizer:
        """No weight decay on 1-bit latent weights when binary_weight_decay says so: decay pulls
        them toward 0, where their signs flip on noise."""
        cfg = self.cfg
        latent = {id(m.weight) for m in net.modules() if isinstance(m, BinaryConv2d)}
        binary_decay = cfg.weight_decay if cfg.binary_weight_decay is None else cfg.binary_weight_decay
        groups = [
            {"params": [p for p in net.parameters() if id(p) in latent], "weight_decay": binary_decay},
            {"params": [p for p in net.parameters() if id(p) not in latent], "weight_decay": cfg.weight_decay},
        ]
        groups = [g for g in groups if g["params"]]
        if cfg.optimizer == "adam":
            return torch.optim.Adam(groups, lr=cfg.lr)
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)

    def forward(self, role: str) -> nn.Module:
        """The network of `role` as a training step calls it: itself alone, DDP under torchrun
        (made at the first step, when every rank is there to broadcast the initial weights)."""
        if self.world.size == 1:
            return self.nets[role]
        if self._forwards is None:
            self._forwards = {role: _data_parallel(net, self.world) for role, net in self.nets.items()}
        return self._forwards[role]

    def set_drop_path(self, rate: float) -> None:
        for net in (self.child, self.parent):
            for cell in net.cells if net is not None else ():
                cast(Cell, cell).drop_path = rate  # nn.ModuleList types its items as Module

    # --- one step ---------------------------------------------------------------------------

    def train_batch(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> dict:
        """One optimizer step of the Parent (if joint), then of the Child on Eq. 4.

        Returns sums over the batch: the Child's total loss and its terms (the terms are
        measured even when their weight is 0), correct counts, the Parent's loss, seconds."""
        start = time.perf_counter()
        out: dict[str, float | None] = {"loss_parent": None, "correct_parent": None}
        parent, parent_features = self.parent, None
        autocast = self.precision.autocast
        if self.joint and parent is not None:  # joint: _parent built it
            parent.train()
            with autocast():
                logits, aux, parent_features = self.forward("parent")(x)
                ce, total = classification_loss(logits, aux, y, self.weights)
            self._step("parent", total, lr)
            out.update(loss_parent=total.item() * len(y), correct_parent=_correct(logits, y))
        elif parent is not None:
            with torch.no_grad(), autocast():
                logits, _, parent_features = parent(x)
            out["correct_parent"] = _correct(logits, y)
        self.child.train()
        with autocast():
            logits, aux, features = self.forward("child")(x)
            ce, total = classification_loss(logits, aux, y, self.weights)
            kernel = self._term(self.weights.kernel, lambda: kernel_loss(self.pairs)) if self.pairs else None
            center = (
                self._term(self.weights.center, lambda: center_loss(features, parent_features, y))
                if parent_features is not None
                else None
            )
            loss = cp_loss(total, kernel, center, self.weights)
        self._step("child", loss, lr)
        out.update(
            loss=loss.item() * len(y),
            loss_ce=ce.item() * len(y),
            correct_child=_correct(logits, y),
            loss_kernel=None if kernel is None else kernel.item() * len(y),
            loss_center=None if center is None else center.item() * len(y),
            seconds=time.perf_counter() - start,
        )
        return out

    @staticmethod
    def _term(weight: float, compute):
        """A loss term; with weight 0 it is only measured (no graph is kept for it)."""
        if weight:
            return compute()
        with torch.no_grad():
            return compute()

    def _step(self, role: str, loss: torch.Tensor, lr: float) -> None:
        optimizer = self.optimizers[role]
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        self.precision.minimize(role, loss, optimizer, self.nets[role].parameters, self.cfg.grad_clip)

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float | None]:
        """Top-1 test accuracy in percent of the Child and the Parent (None without a Parent)."""
        nets = {"child": self.child, "parent": self.parent}
        present = {role: net for role, net in nets.items() if net is not None}
        correct = dict.fromkeys(present, 0)
        seen = 0
        self.world.sync_buffers(present.values())
        for net in present.values():
            net.eval()
        for x, y in batches:
            x = x.contiguous(memory_format=torch.channels_last)
            seen += len(y)
            for role, net in present.items():
                with self.precision.autocast():
                    correct[role] += _correct(net(x)[0], y)
        totals = self.world.sum({"seen": seen, **correct})
        return {role: (100.0 * totals[role] / max(totals["seen"], 1) if role in correct else None) for role in nets}

    # --- state ------------------------------------------------------------------------------

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Weights, buffers and optimizer state of the trained networks, flat, for a safetensors checkpoint."""
        return trained_tensors(self.nets, self.optimizers)

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        load_trained_tensors(self.nets, self.optimizers, tensors)


def _data_parallel(net: nn.Module, world: World) -> nn.Module:
    """DDP over `net` without buffer broadcasts in forward (the trainer takes rank 0's running
    statistics before it evaluates or saves; distributed.World.sync_buffers)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    # The 1x1 kernels in channels_last have strides DDP's bucket views do not match though the
    # memory order is the same; DDP copies them and says so once per process: not worth a line.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    if "forward_sync_buffers" in inspect.signature(DDP).parameters:  # newer torch; both sync at init
        return DDP(net, process_group=world.tensors, forward_sync_buffers=False)
    return DDP(net, process_group=world.tensors, broadcast_buffers=False)


def _correct(logits: torch.Tensor, y: torch.Tensor) -> int:
    return int((logits.argmax(1) == y).sum())


def _structure(genotype: genotypes.Genotype) -> tuple:
    """The genotype's ops, inputs and concats, without search indicators or metadata."""
    return tuple(
        (tuple((e.op, e.source) for node in cell.nodes for e in node), cell.concat)
        for cell in (genotype.normal, genotype.reduce)
    )
