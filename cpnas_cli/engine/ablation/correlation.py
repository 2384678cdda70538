"""Running `cpnas correlate`: per seed, train the Child-Parent supernet with every op alive, score
the drawn architectures with it, train each of them stand-alone, then rank-correlate.

    <run>/
      correlate.json                 the plan (correlation_plan.py)
      base.yaml                      the resolved configuration every unit starts from
      seed<s>/supernet/              a search run of the supernet strategy (K fixed at the op count)
      seed<s>/scores.json            the drawn architectures with their A_C and A_P on the search-validation split
      seed<s>/arch<i>/               a training run of architecture i (cpnas watch works on it); absent
                                     when --truth gave it (its row names the run it came from)
      results.json  results.csv      every architecture, every (score, seed) statistic, the summary over seeds
      scatter-<score>.png            one picture per score: stand-alone accuracy against the score

The units are a seed's supernet (ends with scores.json) and each architecture's training (ends
with its row in results.json); a unit with its result is never run again, and a unit cut short
resumes from its own checkpoint, as in `cpnas ablate`. With `--truth`, an architecture whose
training another correlate run finished with the same key (correlation_truth.py) is not trained
again: its row takes that training's results. The supernets run first, then the trainings.
Under torchrun both are dealt round-robin over the ranks as `cpnas ablate` deals its units
(runner.deal_units): every rank takes every seed's scores, rank 0 alone the training rows and
the outputs.
"""

import json
import re
from collections.abc import Callable
from pathlib import Path

from cpnas_cli import config as configs
from cpnas_cli.engine.run.checkpoint import load_checkpoint
from cpnas_cli.engine.run.device import resolve_device
from cpnas_cli.engine.run.distributed import SOLO, World
from cpnas_cli.engine.search.child_parent import ChildParent
from cpnas_cli.engine.search.data import SearchData
from cpnas_cli.engine.search.runner import Search
from cpnas_cli.engine.search.strategies.supernet import SupernetStrategy
from cpnas_cli.engine.train.trainer import Trainer
from cpnas_cli.errors import UserError
from cpnas_cli.runs import RunDir, atomic_write_bytes, atomic_write_text, read_json
from cpnas_cli.space import genotype as genotypes

from .correlation_plan import (
    BASE,
    PLAN,
    SCORES,
    CorrelationPlan,
    draw_architectures,
    score_columns,
    statistics,
    to_genotype,
)
from .correlation_results import read_architectures, read_scores, write_tables
from .correlation_truth import reusable_trainings, training_key
from .plot import scatter_png
from .runner import deal_units, finished_status, run_or_resume

REUSED = ("test_acc_child", "test_acc_parent", "train_seconds", "train_run")  # what a reused training gives


class Correlation:
    """`create` a new study or `open` an interrupted one, then `run()`."""

    def __init__(
        self,
        folder: Path,
        base: configs.Config,
        plan: CorrelationPlan,
        report: Callable = lambda e: None,
        stop=None,
        world: World = SOLO,
    ):
        self.folder, self.base, self.plan = Path(folder), base, plan
        self.report, self.stop, self.world = report, stop, world
        self.device = world.unit_device(base.device)  # a rank's units run on its own GPU
        self.architectures = read_architectures(self.folder)  # finished stand-alone trainings
        self.resume_command = f"cpnas correlate --resume {self.folder}"  # what a unit that stops names

    @classmethod
    def create(cls, folder: Path, base: configs.Config, plan: CorrelationPlan, **kwargs) -> "Correlation":
        atomic_write_text(folder / PLAN, json.dumps(plan.to_dict(), indent=2) + "\n")
        atomic_write_text(folder / BASE, configs.dump_yaml(base))
        return cls(folder, base, plan, **kwargs)

    @classmethod
    def open(cls, folder: Path, device: str | None = None, **kwargs) -> "Correlation":
        folder = Path(folder)
        if not (folder / PLAN).is_file():
            raise UserError(
                f"{folder} is not a correlate directory (no {PLAN})", "pass a directory made by `cpnas correlate`"
            )
        base = configs.load_run_config(folder / BASE)
        base.device = device or base.device
        fix = "restore it, or start the study again in a new directory"
        plan = CorrelationPlan.from_dict(read_json(folder / PLAN, str(folder / PLAN), fix), where=str(folder / PLAN))
        return cls(folder, base, plan, **kwargs)

    @property
    def units(self) -> int:
        return len(self.plan.seeds) * (1 + self.plan.architectures)

    @property
    def done(self) -> int:
        supernets = sum((self.folder / f"seed{s}" / SCORES).is_file() for s in self.plan.seeds)
        return supernets + len(self.architectures)

    def run(self) -> None:
        """Every unit not yet done: the supernets, then the trainings, in plan order; the outputs
        are rewritten after each training."""
        missing = self.world.broadcast(
            [s for s in self.plan.seeds if not (self.folder / f"seed{s}" / SCORES).is_file()]
        )
        scores: dict[int, dict] = {}
        add_scores = lambda seed, result: scores.__setitem__(seed, result)  # noqa: E731
        deal_units(
            self.world,
            missing,
            self._scores,
            add_scores,
            "correlate/scores",
            self.stop,
            self.folder,
            "correlate",
            everyone=True,
        )
        for seed in self.plan.seeds:
            if seed not in scores:
                scores[seed] = self._scores(seed)  # from scores.json
        units = [(seed, i) for seed in self.plan.seeds for i in range(self.plan.architectures)]
        done = {(r["seed"], r["index"]) for r in self.architectures}
        todo = self.world.broadcast([n for n, unit in enumerate(units) if unit not in done])

        def train(n: int) -> dict:
            seed, i = units[n]
            self._unit_event(f"architecture {i}", seed)
            return self._train(seed, i, scores[seed]["architectures"][i], scores[seed])

        deal_units(
            self.world,
            todo,
            train,
            lambda n, row: self._add(row),
            "correlate/train",
            self.stop,
            self.folder,
            "correlate",
        )

    def _add(self, row: dict) -> None:
        self.architectures.append(row)
        self.write_outputs()
        self.report({"kind": "result", **row})

    def _unit_event(self, setting: str, seed: int) -> None:
        self.report({"kind": "unit", "index": self.done + 1, "total": self.units, "setting": setting, "seed": seed})

    def columns(self) -> dict[int, tuple[dict[str, list[float]], list[float]]]:
        """Per seed whose architectures are all trained: (every score, stand-alone Child accuracy)."""
        out = {}
        for seed in self.plan.seeds:
            mine = sorted((r for r in self.architectures if r["seed"] == seed), key=lambda r: r["index"])
            if len(mine) == self.plan.architectures:
                acc_child, acc_parent = [r["acc_child"] for r in mine], [r["acc_parent"] for r in mine]
                out[seed] = score_columns(self.plan, acc_child, acc_parent, seed), [r["test_acc_child"] for r in mine]
        return out

    def statistics(self) -> list[dict]:
        """Per (score, seed) whose architectures are all trained: tau, rho, intervals, top-k overlap."""
        return [
            row
            for seed, (scores, truth) in self.columns().items()
            for row in statistics(self.plan, scores, truth, seed)
        ]

    def write_outputs(self) -> None:
        stats = self.statistics()
        write_tables(self.folder, self.plan, self.architectures, stats, {"base": configs.to_dict(self.base)})
        columns = self.columns()
        for name in self.plan.scores():
            points = [
                (x, y, seed)
                for seed, (scores, truth) in columns.items()
                for x, y in zip(scores[name], truth, strict=True)
            ]
            notes = [
                f"seed {r['seed']}: tau {_fmt(r['tau'])}, rho {_fmt(r['rho'])}" for r in stats if r["score"] == name
            ]
            title = f"{name} against stand-alone 1-bit accuracy ({self.base.data.dataset})"
            png = scatter_png(title, name, "stand-alone Child test accuracy (%)", points, notes)
            atomic_write_bytes(self.folder / f"scatter-{_slug(name)}.png", png)

    # --- the units ------------------------------------------------------------------------

    def _scores(self, seed: int) -> dict:
        """The seed's architectures and their supernet accuracies: from scores.json, or by training
        (or resuming) the supernet and measuring every architecture with it."""
        path = self.folder / f"seed{seed}" / SCORES
        if path.is_file():
            return read_scores(path, self.plan.architectures)
        self._unit_event("supernet", seed)
        config = self._config(seed)
        if self.plan.supernet is not None:  # --from: score with that run's supernet, on its own split
            run = RunDir(Path(self.plan.supernet))
            measured = configs.load_run_config(run.config)
            measured.device = self.device
        else:
            run, measured = RunDir(path.parent / "supernet"), config
            if finished_status(run) is None:
                self.report({"kind": "phase", "phase": "supernet", "setting": "supernet", "seed": seed})
                make = lambda c: Search(c, self.report, self.stop, SupernetStrategy)  # noqa: E731
                run_or_resume(run, config, make, self.device, self.resume_command)
        archs = draw_architectures(list(measured.search.ops), measured.search.nodes, self.plan.architectures, seed)
        acc = measure(run, measured, archs)
        scores = {
            "architectures": archs,
            "acc_child": [a["child"] for a in acc],
            "acc_parent": [a["parent"] for a in acc],
        }
        path.parent.mkdir(parents=True, exist_ok=True)  # with --from no supernet run made it
        atomic_write_text(path, json.dumps(scores, indent=1) + "\n")
        return scores

    def _train(self, seed: int, i: int, arch: dict, scores: dict) -> dict:
        config = self._config(seed)
        genotype = to_genotype(arch, config.search.nodes, {"correlate_seed": seed, "index": i})
        key = training_key(genotype, config)
        row = {
            "seed": seed,
            "index": i,
            "genotype": genotypes.to_dict(genotype),  # JSON: all edges kept, DARTS strings hold two per node
            "acc_child": scores["acc_child"][i],
            "acc_parent": scores["acc_parent"][i],
            "truth_key": key,
        }
        run = RunDir(self.folder / f"seed{seed}" / f"arch{i}")
        reused = self._reusable(key) if not run.path.exists() else None  # a training begun here is finished here
        if reused is not None:
            return {**row, **{k: reused[k] for k in REUSED}, "reused_from": self.plan.truth}
        if finished_status(run) is None:
            self.report({"kind": "phase", "phase": "train", "setting": f"architecture {i}", "seed": seed})
            train = lambda c: Trainer(c, genotype, self.report, self.stop)  # noqa: E731
            run_or_resume(run, config, train, self.device, self.resume_command)
        trained = finished_status(run)
        if trained is None:
            raise RuntimeError(f"{run.path}: the training ran without finishing")
        return {
            **row,
            "test_acc_child": trained["test_acc_child"],
            "test_acc_parent": trained["test_acc_parent"],
            "train_seconds": trained["elapsed"],
            "train_run": str(run.path.relative_to(self.folder)),
        }

    def _reusable(self, key: str) -> dict | None:
        """The --truth run's training with this key, if it has finished one (read afresh: it may
        still be running)."""
        return reusable_trainings(Path(self.plan.truth)).get(key) if self.plan.truth else None

    def _config(self, seed: int) -> configs.Config:
        config = configs.load_run_config(self.folder / BASE)
        config.device = self.device
        configs.set_value(config, "seed", seed, source="correlate seed")
        return config


def measure(run: RunDir, config: configs.Config, archs: list[dict]) -> list[dict[str, float]]:
    """A_C and A_P (percent, search-validation split) of each architecture with the run's last
    supernet checkpoint (all ops alive; `config` is the run's)."""
    device = resolve_device(config.device)
    data = SearchData(config, device)
    model = ChildParent(config.search, data.in_channels, data.num_classes, device, config.seed, data.image_size)
    tensors, _ = load_checkpoint(run.checkpoint)
    model.load_state_tensors(tensors)
    return [model.evaluate(data.val_batches(config.search.eval_batch_size), arch) for arch in archs]


def _slug(name: str) -> str:
    """A score's name as part of a file name: `z beta_p=2` -> `z-beta_p2`."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", name.replace("=", "")).strip("-")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"
