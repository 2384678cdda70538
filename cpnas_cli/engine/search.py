"""The CP-NAS search loop (Alg. 1), with the event log, checkpoints and exact resume.

For K = K0 .. 2, for each of T rounds, K samples: train Child and Parent on the sampled
architecture, score it with Eq. 1 on the search-validation split, credit the score to every
sampled op; after the T rounds rank the ops of every edge with Eq. 2 and remove the worst.

Everything random is a pure function of (seed, position): the architecture of a sample comes
from its round's generator (schedule.round_rng), the batch order from the sample number, the
augmentation from (sample, batch). A checkpoint therefore needs no generator state: weights,
momentum, the ledger and the position are enough, and a resumed run (after Ctrl-C between
batches, or a kill at any moment) continues to the same genotype as an uninterrupted run.
"""

import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .. import data as datasets
from ..config import Config, to_dict
from ..events import EventWriter, header
from ..runs import RunDir
from . import genotype as genotypes
from .checkpoint import STATE, load_checkpoint, save_checkpoint
from .child_parent import ROLES, ChildParent
from .device import resolve_device
from .indicator import performance
from .interrupt import Interrupted
from .ledger import Ledger
from .schedule import round_architectures, round_rng
from .space import CELL_TYPES, cell_edges

Report = Callable[[dict], None]


def sample_plan(k0: int, rounds: int) -> list[tuple[int, int, int]]:
    """(K, round, index) of every sample in order: T rounds of K samples for K = k0 .. 2."""
    return [(k, t, e) for k in range(k0, 1, -1) for t in range(rounds) for e in range(k)]


def cosine_lr(cfg, n: int, total: int) -> float:
    """The learning rate of sample n: cosine annealing from lr to lr_min over the search."""
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


class Search:
    """One search: construct (loads the data, builds the networks: bad input fails here, before
    anything is written), then `begin(run)` or `restore(run)`, then `run()`."""

    def __init__(self, config: Config, report: Report = lambda e: None, stop=None):
        self.config, self.cfg = config, config.search
        self.report, self.stop = report, stop
        self.device = resolve_device(config.device)
        d = config.data
        self.data = datasets.load_dataset(d.dataset, d.data_dir, d.image_size)
        self.train_idx, self.val_idx = datasets.search_split(
            len(self.data.train_labels), d.train_fraction, d.val_fraction, config.seed)
        self.augment = datasets.Augment(crop_padding=d.crop_padding, flip=d.flip)
        self.model = ChildParent(self.cfg, self.data.in_channels, self.data.num_classes, self.device, config.seed)
        self.ledger = Ledger.start(self.cfg.ops, list(CELL_TYPES), len(cell_edges(self.cfg.nodes)))
        self.plan = sample_plan(len(self.cfg.ops), self.cfg.rounds)
        self.n, self.partial, self.elapsed = 0, Partial(), 0.0

    def begin(self, run: RunDir) -> None:
        self.run_dir, self.log = run, EventWriter(run.events)
        edges = [list(e) for e in cell_edges(self.cfg.nodes)]
        self.log.write([header("search", to_dict(self.config), list(CELL_TYPES), edges, list(self.cfg.ops))])
        self._emit("status", state="started", total=len(self.plan), device=str(self.device))

    def restore(self, run: RunDir) -> None:
        """Continue from the run's checkpoint; a run killed before its first one starts over."""
        if not (run.checkpoint / STATE).is_file():
            run.events.unlink(missing_ok=True)
            return self.begin(run)
        self.run_dir, self.log = run, EventWriter(run.events)
        tensors, state = load_checkpoint(run.checkpoint)
        self.ledger = Ledger.from_dict(state["ledger"])
        self.model.prune(self.ledger.removals)
        self.model.load_state_tensors(tensors)
        self.n, self.elapsed = state["n"], state["elapsed"]
        self.partial = Partial(**state["partial"])
        self.log.truncate(state["events_offset"])
        self.log.write(state["pending_events"])
        self._emit("status", state="resumed", sample=self.n, batch=self.partial.batch, device=str(self.device))

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> Path:
        """Search to the end and write genotype.json; returns its path. A crash is logged."""
        try:
            while self.n < len(self.plan):
                self._sample()
        except Interrupted:
            raise
        except KeyboardInterrupt:  # a second Ctrl-C: no new checkpoint, the last one stands
            self._emit("status", state="interrupted", sample=self.n, batch=0)
            raise
        except Exception as err:
            self._emit("status", state="failed", error=f"{type(err).__name__}: {err}", sample=self.n)
            raise
        genotype = genotypes.derive(self.ledger, self.cfg.nodes, self.cfg.genotype, meta=self._meta())
        genotypes.save(genotype, self.run_dir.genotype)
        self._emit("genotype", path=str(self.run_dir.genotype), genotype=genotypes.to_dict(genotype))
        self._emit("status", state="finished", elapsed=round(self.elapsed, 1))
        return self.run_dir.genotype

    def _sample(self) -> None:
        k, rnd, index = self.plan[self.n]
        arch = round_architectures(self.ledger.remaining, round_rng(self.config.seed, k, rnd))[index]
        started = time.perf_counter()
        lr = cosine_lr(self.cfg, self.n, len(self.plan))
        self._train(arch, lr, started)
        eval_start = time.perf_counter()
        acc = self.model.evaluate(self._val_batches(), arch)
        z = performance(acc["child"], acc["parent"], self.cfg.beta_p)
        self.ledger.record(arch, z)
        p = self.partial
        seconds = time.perf_counter() - started
        self.elapsed += seconds
        events = [self._event(
            "sample", n=self.n + 1, total=len(self.plan), K=k, round=rnd + 1, index=index + 1, arch=arch,
            acc_child=round(acc["child"], 3), acc_parent=round(acc["parent"], 3), z=round(z, 4),
            loss_child=round(p.loss["child"] / max(p.seen, 1), 4), loss_parent=round(p.loss["parent"] / max(p.seen, 1), 4),
            train_acc_child=round(100 * p.correct["child"] / max(p.seen, 1), 2),
            train_acc_parent=round(100 * p.correct["parent"] / max(p.seen, 1), 2),
            lr=lr, images=p.seen, seconds=round(seconds, 3),
            child_seconds=round(p.seconds["child"], 3), parent_seconds=round(p.seconds["parent"], 3),
            eval_seconds=round(time.perf_counter() - eval_start, 3),
            images_per_s=round(p.seen / max(p.seconds["child"] + p.seconds["parent"], 1e-9), 1),
            elapsed=round(self.elapsed, 1))]
        if rnd == self.cfg.rounds - 1 and index == k - 1:
            events += self._prune(k)
        self.n, self.partial = self.n + 1, Partial()
        events.append(self._event("checkpoint", sample=self.n))
        self._checkpoint(events)
        self.log.write(events)
        for event in events:
            self.report(event)

    def _train(self, arch, lr: float, started: float) -> None:
        indices = self._sample_indices()
        nb = datasets.num_batches(len(indices), self.cfg.batch_size, drop_last=False)
        batches = datasets.batches(
            self.data.train_images, self.data.train_labels, indices, self.cfg.batch_size,
            shuffle_generator=None, device=self.device, aug=self.augment,
            aug_seed=datasets.derive_seed(self.config.seed, "augment", self.n), start_batch=self.partial.batch)
        for x, y in batches:
            if self.stop is not None and self.stop.is_set():
                self.elapsed += time.perf_counter() - started
                self._interrupt()
            x = x.contiguous(memory_format=torch.channels_last)
            self.partial.add(len(y), self.model.train_batch(x, y, arch, lr))
            self.report({"kind": "progress", "n": self.n + 1, "batch": self.partial.batch, "batches": nb})

    def _sample_indices(self) -> torch.Tensor:
        """The search-train images of this sample: epochs_per_sample passes, reshuffled per sample."""
        g = torch.Generator().manual_seed(datasets.derive_seed(self.config.seed, "order", self.n))
        count = max(1, round(self.cfg.epochs_per_sample * len(self.train_idx)))
        passes = math.ceil(count / len(self.train_idx))
        order = torch.cat([self.train_idx[torch.randperm(len(self.train_idx), generator=g)] for _ in range(passes)])
        return order[:count]

    def _val_batches(self):
        return datasets.batches(self.data.train_images, self.data.train_labels, self.val_idx,
                                self.cfg.eval_batch_size, shuffle_generator=None, device=self.device)

    def _prune(self, k: int) -> list[dict]:
        means, ranking = self.ledger.mean_scores(), self.ledger.ranking()
        removals = self.ledger.prune(random.Random(f"cpnas-prune:{self.config.seed}:{k}"))
        self.model.prune(removals)
        removed = {cell: [r.op for r in removals if r.cell == cell] for cell in CELL_TYPES}
        return [self._event("ranking", K=k, mean_z=_rounded(means), indicator=_rounded(ranking)),
                self._event("prune", K=k, removed=removed)]

    # --- checkpoints and events ----------------------------------------------------------

    def _checkpoint(self, pending: list[dict]) -> None:
        """Save the state; `pending` are the events of this step, written to the log right after.

        The log's size before them is stored too: a resume cuts the log back to it and writes
        `pending` again, so the log holds every event exactly once whenever the process died."""
        state = {"n": self.n, "partial": asdict(self.partial), "elapsed": self.elapsed,
                 "ledger": self.ledger.to_dict(), "events_offset": self.log.size(), "pending_events": pending}
        save_checkpoint(self.run_dir.checkpoint, self.model.state_tensors(), state,
                        tag=f"{self.n:06d}-{self.partial.batch:06d}")

    def _interrupt(self):
        event = self._event("status", state="interrupted", sample=self.n, batch=self.partial.batch)
        self._checkpoint([event])
        self.log.write([event])
        self.report(event)
        raise Interrupted(str(self.run_dir.path))

    def _event(self, kind: str, **fields) -> dict:
        return {"kind": kind, "t": round(time.time(), 3), **fields}

    def _emit(self, kind: str, **fields) -> None:
        event = self._event(kind, **fields)
        self.log.write([event])
        self.report(event)

    def _meta(self) -> dict:
        return {"strategy": self.cfg.strategy, "beta_p": self.cfg.beta_p, "dataset": self.config.data.dataset,
                "seed": self.config.seed, "run": str(self.run_dir.path), "rounds": self.cfg.rounds,
                "ops": list(self.cfg.ops), "keep": self.cfg.genotype}


def _rounded(ranking: dict) -> dict:
    return {cell: [{op: round(v, 6) for op, v in edge.items()} for edge in edges] for cell, edges in ranking.items()}
