"""The Child-Parent model of the search (Sec. 2.1): a 1-bit Child and a full-precision Parent
supernet, trained side by side on the same sampled architecture and the same batches.

Both start from the same initial weights. Each has its own SGD; gradients are set to None
before every step, so ops that were not sampled keep None and SGD leaves them alone (no weight
decay, no momentum step for weights that did not take part).
"""

import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from cpnas_cli.config import SearchConfig
from cpnas_cli.engine.nn.ops import Style
from cpnas_cli.engine.run.tensors import load_trained_tensors, trained_tensors

from .supernet import Architecture, SearchNetwork

ROLES = ("child", "parent")


class ChildParent:
    def __init__(self, cfg: SearchConfig, in_channels: int, classes: int, device: torch.device, seed: int):
        self.cfg = cfg
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
            )
            self.nets[role] = net.to(device).to(memory_format=torch.channels_last)
        self.optimizers = {role: self._optimizer(net) for role, net in self.nets.items()}

    def _optimizer(self, net: nn.Module) -> torch.optim.Optimizer:
        if self.cfg.optimizer == "adam":
            return torch.optim.Adam(net.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        return torch.optim.SGD(
            net.parameters(), lr=self.cfg.lr, momentum=self.cfg.momentum, weight_decay=self.cfg.weight_decay
        )

    def train_batch(self, x: torch.Tensor, y: torch.Tensor, arch: Architecture, lr: float) -> dict[str, dict]:
        """One SGD step of each network on (x, y); per role: summed loss, correct count, seconds."""
        out = {}
        for role, net in self.nets.items():
            start = time.perf_counter()
            net.train()
            optimizer = self.optimizers[role]
            for group in optimizer.param_groups:
                group["lr"] = lr
            logits = net(x, arch)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            params = [p for p in net.parameters() if p.grad is not None]
            nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
            optimizer.step()
            out[role] = {
                "loss": loss.item() * len(y),
                "correct": (logits.argmax(1) == y).sum().item(),
                "seconds": time.perf_counter() - start,
            }
        return out

    @torch.no_grad()
    def evaluate(self, batches, arch: Architecture) -> dict[str, float]:
        """Top-1 accuracy in percent of each network on the given (x, y) batches."""
        correct = dict.fromkeys(ROLES, 0)
        seen = 0
        for net in self.nets.values():
            net.eval()
        for x, y in batches:
            seen += len(y)
            for role, net in self.nets.items():
                correct[role] += (net(x, arch).argmax(1) == y).sum().item()
        return {role: 100.0 * c / max(seen, 1) for role, c in correct.items()}

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
