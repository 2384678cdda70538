"""PC-DARTS over the binarized supernet (the "PC" of the paper's Fig. 6).

One mixed-op supernet in the 1-bit Child style: partial channel connections (1/K of every edge's
channels through the ops, then a channel shuffle) and edge normalisation (softmax(beta) over the
inputs of each node). Bilevel optimisation, first order as in the official code: per iteration an
Adam step of (alpha, beta) on an architecture batch with the weights as they are, then an SGD
step of the weights on a weight batch with the architecture as it is; the architecture waits for
the warm-up. The genotype follows the DARTS rule with edge normalisation (darts_rule.py).
"""

import torch
import torch.nn.functional as F

from cpnas_cli.bookkeeping.darts_rule import derive
from cpnas_cli.engine.nn.ops import Style
from cpnas_cli.space.cells import cell_edges

from .arch_params import ArchParams
from .differentiable import DifferentiableStrategy, arch_optimizer, detached, set_grads, weight_optimizer


class PCDartsStrategy(DifferentiableStrategy):
    name = "pc-darts"
    roles = ("search",)

    def __init__(self, config, data, device):
        super().__init__(config, data, device)
        c = self.cfg
        self.net = self.supernet(Style.of(c, binary=True))
        self.arch = ArchParams(len(cell_edges(c.nodes)), len(c.ops), c.pc_edge_norm, config.seed).to(device)
        self.w_opt = weight_optimizer(self.net.parameters(), c)
        self.a_opt = arch_optimizer(self.arch.parameters(), c)
        self.parts = {"net": self.net, "arch": self.arch}
        self.optims = {"net": (self.w_opt, self.net), "arch": (self.a_opt, self.arch)}

    def iteration(self, phase, x, y, xa, ya, progress):
        arch_metrics = None
        if progress >= self.cfg.diff_warmup_epochs:
            arch_metrics = {"arch_loss": self.arch_step(xa, ya)}
        return self.weight_step(x, y, self.weight_lr(phase.role, progress)), arch_metrics

    def arch_step(self, xa, ya) -> float:
        """First order: the gradient of the validation loss in (alpha, beta) at the current weights."""
        params = dict(self.arch.named_parameters())
        loss = F.cross_entropy(self.net(xa, self.arch.alphas(), self.arch.betas()), ya)
        grads = dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))
        set_grads(list(params.values()), self.data.world.average_tensors(grads, len(ya)).values())
        self.a_opt.step()
        return loss.item()

    def weight_step(self, x, y, lr: float) -> dict:
        logits = self.net(x, detached(self.arch.alphas()), detached(self.arch.betas()))
        loss = F.cross_entropy(logits, y)
        self.train_weights(self.net, self.w_opt, lr, loss, self.cfg.grad_clip, len(y))
        return {"loss": loss.item(), "train_acc": 100.0 * (logits.argmax(1) == y).float().mean().item()}

    def phase_event(self, phase, ctx) -> dict:
        acc = self.accuracy(self.net, self.arch.alphas(), self.arch.betas())
        return {"acc_child": acc, **self.arch_summary(self.arch)}

    def genotype(self, meta: dict):
        alpha, beta = self.arch.as_lists()
        return derive(alpha, list(self.cfg.ops), self.cfg.nodes, beta, self.cfg.genotype, meta)
