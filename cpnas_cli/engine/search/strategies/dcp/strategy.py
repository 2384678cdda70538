"""DCP-NAS (book Ch. 4.4, Alg. 10): a real-valued Parent search, then a discrepant 1-bit Child
architecture learned by tangent propagation, in turns.

Two mixed-op supernets over one search space: the Parent (full precision, weights w, logits
alpha) and the Child (1-bit, latent weights w^ and channel scales beta of Eq. 4.22, logits
alpha^). Phases alternate, Parent first:
- Parent phase: DARTS first order on -f^P = CE (Eq. 4.21): SGD on w (train batch), Adam on
  alpha (architecture batch). At its end the Child inherits alpha^ <- alpha.
- Child phase: per iteration, on the architecture batch, the Parent's tangent t (tangent.py) and
  an Adam step of alpha^ on -G + lambda D (Eq. 4.33); on the weight batch, an Adam step of
  (w^, beta) on -G + mu L_R (Eqs. 4.32, 4.34-4.35), the Parent's output taken as the target.
  At its end the Parent inherits alpha <- alpha^.
Every architecture step of either network is followed by the decoupled back-tracking
(decoupling.py). The alpha event shows the Child's logits and genotype, the Parent's logits, and
both supernets' validation accuracy. The genotype is the DARTS rule on alpha^. Every reconstructed choice is listed,
with its config key, in docs/differentiable.md.
"""

import torch
import torch.nn.functional as F

from cpnas_cli.bookkeeping.darts_rule import derive
from cpnas_cli.engine.nn.ops import Style
from cpnas_cli.engine.search.strategies.arch_params import ArchParams
from cpnas_cli.engine.search.strategies.differentiable import (
    DifferentiableStrategy,
    arch_optimizer,
    detached,
    set_grads,
    weight_optimizer,
)
from cpnas_cli.space.cells import cell_edges

from .decoupling import BackTracking
from .scaled_binary import learn_scales, reconstruction_error
from .tangent import agreement, child_arch_gradient, parent_tangent


class DCPStrategy(DifferentiableStrategy):
    name = "dcp"
    roles = ("parent", "child")

    def __init__(self, config, data, device):
        super().__init__(config, data, device)
        c = self.cfg
        self.nets = {
            "parent": self.supernet(Style.of(c, binary=False)),
            "child": self.supernet(Style.of(c, binary=True)),
        }
        if c.dcp_scales == "learned":
            learn_scales(self.nets["child"])
        shape = (len(cell_edges(c.nodes)), len(c.ops))
        self.archs = {role: ArchParams(*shape, edge_norm=False, seed=config.seed).to(device) for role in self.roles}
        self.tracking = {
            role: BackTracking(shape, c.dcp_psi_init, c.dcp_psi_lr, c.dcp_tau).to(device) for role in self.roles
        }
        self.w_opts = {
            "parent": weight_optimizer(self.nets["parent"].parameters(), c),
            "child": torch.optim.Adam(self.nets["child"].parameters(), lr=c.dcp_child_lr),
        }
        self.a_opts = {role: arch_optimizer(self.archs[role].parameters(), c) for role in self.roles}
        for role in self.roles:
            self.parts.update(
                {role: self.nets[role], f"{role}.arch": self.archs[role], f"{role}.psi": self.tracking[role]}
            )
            self.optims.update(
                {role: (self.w_opts[role], self.nets[role]), f"{role}.arch": (self.a_opts[role], self.archs[role])}
            )

    def weight_lr(self, role: str, progress: float) -> float:
        """The Parent's follow diff_lr, the Child's dcp_child_lr, on the same cosine."""
        base = self.cfg.diff_lr if role == "parent" else self.cfg.dcp_child_lr
        return base * self.schedule(progress)

    def iteration(self, phase, x, y, xa, ya, progress):
        role, lr = phase.role, self.weight_lr(phase.role, progress)
        arch_metrics = None
        if progress >= self.cfg.diff_warmup_epochs:
            arch_metrics = self.parent_arch_step(xa, ya, lr) if role == "parent" else self.child_arch_step(xa, ya, lr)
        train = self.parent_weight_step(x, y, lr) if role == "parent" else self.child_weight_step(x, y, lr)
        return train, arch_metrics

    # --- Parent: DARTS first order on the real-valued supernet (Eq. 4.21) -------------------

    def parent_arch_step(self, xa, ya, lr: float) -> dict:
        alpha = self.archs["parent"].alphas()
        loss = F.cross_entropy(self.nets["parent"](xa, alpha), ya)
        grads = dict(zip(alpha, torch.autograd.grad(loss, list(alpha.values())), strict=True))
        grads = self.data.world.average_tensors(grads, len(ya))
        return {"arch_loss": loss.item(), **self.arch_update("parent", grads, lr)}

    def parent_weight_step(self, x, y, lr: float) -> dict:
        net = self.nets["parent"]
        logits = net(x, detached(self.archs["parent"].alphas()))
        loss = F.cross_entropy(logits, y)
        self.train_weights(net, self.w_opts["parent"], lr, loss, self.cfg.grad_clip, len(y))
        return {"loss": loss.item(), "train_acc": _accuracy(logits, y)}

    # --- Child: tangent propagation and the discrepancy objective (Eqs. 4.29-4.35) ----------

    def child_arch_step(self, xa, ya, lr: float) -> dict:
        world, images = self.data.world, len(ya)
        tangent, parent_probs = parent_tangent(self.nets["parent"], self.archs["parent"].alphas(), xa, ya)
        tangent = world.average_tensors(tangent, images)  # the global batch's tangent
        alpha = self.archs["child"].alphas()
        G = agreement(self.nets["child"](xa, alpha), parent_probs)
        average = None if world.size == 1 else lambda t: world.average_tensors(t, images)
        grads, logged = child_arch_gradient(G, alpha, tangent, self.cfg.dcp_lambda, self.cfg.dcp_hessian, average)
        return {"arch_agreement": G.item(), **logged, **self.arch_update("child", grads, lr)}

    def child_weight_step(self, x, y, lr: float) -> dict:
        c, net = self.cfg, self.nets["child"]
        with torch.no_grad():
            parent_probs = self.nets["parent"](x, self.archs["parent"].alphas()).softmax(1)
        logits = net(x, detached(self.archs["child"].alphas()))
        G = agreement(logits, parent_probs)
        recon = reconstruction_error(net) if c.dcp_mu else torch.zeros(())
        loss = -G + c.dcp_mu * recon
        if c.dcp_child_ce:
            loss = loss + c.dcp_child_ce * F.cross_entropy(logits, y)
        self.train_weights(net, self.w_opts["child"], lr, loss, c.grad_clip, len(y))
        return {"loss": loss.item(), "kl": -G.item(), "recon": recon.item(), "train_acc": _accuracy(logits, y)}

    # --- shared by both ----------------------------------------------------------------------

    def arch_update(self, role: str, grads: dict, lr: float) -> dict:
        """Adam on the logits, then the back-tracking correction (eta = arch lr x weight lr)."""
        arch, tracking = self.archs[role], self.tracking[role]
        if self.cfg.dcp_decouple:
            tracking.learn(grads)
        alpha = arch.alphas()
        before = {cell: a.detach().clone() for cell, a in alpha.items()}
        set_grads([alpha[cell] for cell in grads], grads.values())
        self.a_opts[role].step()
        if not self.cfg.dcp_decouple:
            return {}
        return {"backtrack": tracking.correct(alpha, before, self.nets[role], self.cfg.arch_lr * lr)}

    def phase_begin(self, n: int, phase) -> None:
        """Inheritance in turn: a phase starts from the architecture the other network ended with."""
        if n > 0:
            other = "child" if phase.role == "parent" else "parent"
            self.archs[phase.role].copy_from(self.archs[other])

    def phase_event(self, phase, ctx) -> dict:
        acc = {role: self.accuracy(self.nets[role], self.archs[role].alphas()) for role in self.roles}
        child = self.arch_summary(self.archs["child"])
        return {
            "acc_child": acc["child"],
            "acc_parent": acc["parent"],
            "gap": round(acc["parent"] - acc["child"], 4),
            **child,
            "weights_parent": self.arch_summary(self.archs["parent"])["weights"],
            "psi": {role: round(self.tracking[role].largest_psi(), 8) for role in self.roles},
        }

    def genotype(self, meta: dict):
        alpha, _ = self.archs["child"].as_lists()
        return derive(alpha, list(self.cfg.ops), self.cfg.nodes, None, self.cfg.genotype, meta)


def _accuracy(logits, y) -> float:
    return 100.0 * (logits.argmax(1) == y).float().mean().item()
