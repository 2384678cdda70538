"""The Child-Parent model of the search (Sec. 2.1): a 1-bit Child and a full-precision Parent
supernet, trained side by side on the same sampled architecture and the same batches.

Both start from the same initial weights. Each has its own SGD; gradients are set to None
before every step, so ops that were not sampled keep None and SGD leaves them alone (no weight
decay, no momentum step for weights that did not take part).

The Child trains on cross-entropy, plus, when `search.kernel_weight` / `search.center_weight` are
set, Eq. 3's two terms with the Parent as the supervisor: its kernels of the sampled ops (and the
cells' 1x1 preprocessing) and its class-centre features on the same batch. The Parent steps first,
so the Child is pulled towards the Parent's kernels after this batch, as in training (pair.py).

Under torchrun (`world`) each rank trains on its share of the batch and the gradients are averaged
explicitly after backward (engine/run/distributed.py) rather than by DistributedDataParallel: a
sampled architecture runs a different subgraph every sample, pruning deletes parameters, and the
networks are called through features() and classifier(), none of which DDP's fixed buckets fit.
Validation counts are summed over the ranks, which evaluate whole batches in turn.
"""

import time
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from cpnas_cli.config import SearchConfig
from cpnas_cli.engine.nn.backbone import uses_imagenet_stem
from cpnas_cli.engine.nn.binary import BinaryConv2d
from cpnas_cli.engine.nn.cp_terms import center_loss, kernel_loss
from cpnas_cli.engine.nn.ops import Style
from cpnas_cli.engine.run.distributed import SOLO, World
from cpnas_cli.engine.run.precision import precision
from cpnas_cli.engine.run.tensors import load_trained_tensors, trained_tensors

from .supernet import Architecture, SearchCell, SearchNetwork

ROLES = ("child", "parent")


class ChildParent:
    def __init__(
        self,
        cfg: SearchConfig,
        in_channels: int,
        classes: int,
        device: torch.device,
        seed: int,
        image_size: int,
        world: World = SOLO,
    ):
        self.cfg, self.world = cfg, world
        self.nets: dict[str, SearchNetwork] = {}
        for role in ROLES:
            torch.manual_seed(seed)  # same initial weights for Child and Parent
            style = Style.of(cfg, binary=role == "child")
            net = SearchNetwork(
                in_channels,
                classes,
                cfg.channels,
                cfg.cells,
                cfg.ops,
                style,
                nodes=cfg.nodes,
                reductions=cfg.reductions,
                stem_stride=cfg.stem_stride,
                imagenet_stem=uses_imagenet_stem(cfg.imagenet_stem, image_size),
            )
            self.nets[role] = net.to(device).to(memory_format=torch.channels_last)
        self.optimizers = {role: self._optimizer(net) for role, net in self.nets.items()}
        self.precision = precision(cfg.amp, device, "search.amp")

    def _optimizer(self, net: nn.Module) -> torch.optim.Optimizer:
        if self.cfg.optimizer == "adam":
            return torch.optim.Adam(net.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        return torch.optim.SGD(
            net.parameters(), lr=self.cfg.lr, momentum=self.cfg.momentum, weight_decay=self.cfg.weight_decay
        )

    def train_batch(self, x: torch.Tensor, y: torch.Tensor, arch: Architecture, lr: float) -> dict[str, dict]:
        """One SGD step of each network on (x, y); per role: summed loss, correct count, seconds."""
        out, parent_features = {}, None
        for role in reversed(ROLES):  # the Parent first: the Child's CP terms read what it computed
            net = self.nets[role]
            start = time.perf_counter()
            net.train()
            optimizer = self.optimizers[role]
            for group in optimizer.param_groups:
                group["lr"] = lr
            with self.precision.autocast():
                features = net.features(x, arch)
                logits = net.classifier(features)
                loss = F.cross_entropy(logits, y)
                if role == "parent":
                    parent_features = features.detach()
                elif self.cfg.kernel_weight or self.cfg.center_weight:  # off: cross-entropy alone, as before
                    loss = loss + self._cp_terms(arch, features, parent_features, y)
            optimizer.zero_grad(set_to_none=True)

            def trained(net=net) -> list:
                """Called after backward: the global batch's gradient (every rank's), then the used parameters."""
                self.world.average_gradients(net.parameters(), len(y))
                return [p for p in net.parameters() if p.grad is not None]

            self.precision.minimize(role, loss, optimizer, trained, self.cfg.grad_clip)
            out[role] = {
                "loss": loss.item() * len(y),
                "correct": (logits.argmax(1) == y).sum().item(),
                "seconds": time.perf_counter() - start,
            }
        return out

    def _cp_terms(self, arch: Architecture, features, parent_features, y) -> torch.Tensor | float:
        """Eq. 3's terms for the Child, each times its weight (a term whose weight is 0 is not computed)."""
        total: torch.Tensor | float = 0.0
        if self.cfg.kernel_weight:
            pairs = self._kernel_pairs(arch)
            if pairs:  # an architecture of pools and skips has no 1-bit conv to pull
                total = total + self.cfg.kernel_weight * kernel_loss(pairs)
        if self.cfg.center_weight:
            total = total + self.cfg.center_weight * center_loss(features, parent_features, y)
        return total

    def _kernel_pairs(self, arch: Architecture) -> list[tuple[BinaryConv2d, torch.Tensor]]:
        """(the Child's 1-bit conv, the Parent's kernel) for every conv the architecture runs:
        each cell's 1x1 preprocessing and its sampled ops; the two supernets line up module by module."""
        pairs = []
        cells = [[cast(SearchCell, c) for c in self.nets[role].cells] for role in ROLES]
        for child_cell, parent_cell in zip(*cells, strict=True):
            choice = arch["reduce" if child_cell.reduce else "normal"]
            modules = [(child_cell.pre0, parent_cell.pre0), (child_cell.pre1, parent_cell.pre1)]
            modules += [
                (child_cell.edge(i)[op], parent_cell.edge(i)[op]) for i, op in enumerate(choice) if op != "zero"
            ]
            for child, parent in modules:
                child_convs = [m for m in child.modules() if isinstance(m, nn.Conv2d)]
                parent_convs = [m for m in parent.modules() if isinstance(m, nn.Conv2d)]
                pairs += [
                    (c, p.weight) for c, p in zip(child_convs, parent_convs, strict=True) if isinstance(c, BinaryConv2d)
                ]
        return pairs

    @torch.no_grad()
    def evaluate(self, batches, arch: Architecture) -> dict[str, float]:
        """Top-1 accuracy in percent of each network on the given (x, y) batches."""
        correct = dict.fromkeys(ROLES, 0)
        seen = 0
        self.world.sync_buffers(self.nets.values())
        for net in self.nets.values():
            net.eval()
        for x, y in batches:
            seen += len(y)
            for role, net in self.nets.items():
                with self.precision.autocast():
                    correct[role] += (net(x, arch).argmax(1) == y).sum().item()
        totals = self.world.sum({"seen": seen, **correct})
        return {role: 100.0 * totals[role] / max(totals["seen"], 1) for role in correct}

    def prune(self, removals) -> None:
        """Delete removed ops from both networks and rebuild the optimizers, keeping momentum."""
        for r in removals:
            for net in self.nets.values():
                net.prune(r.cell, r.edge, r.op)
        for role, net in self.nets.items():
            old = self.optimizers[role]
            new = self._optimizer(net)
            for p in net.parameters():
                if p in old.state:
                    new.state[p] = old.state[p]
            self.optimizers[role] = new

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Weights, buffers and optimizer state of the trained networks, flat, for a safetensors checkpoint."""
        return trained_tensors(self.nets, self.optimizers)

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        load_trained_tensors(self.nets, self.optimizers, tensors)
