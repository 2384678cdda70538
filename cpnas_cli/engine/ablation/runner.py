"""Running an ablation: every (setting, seed) unit is a `cpnas search` run and a `cpnas train`
run of the genotype it found, side by side in the ablation's directory, then one results row.

    <ablation>/
      ablation.json          the plan (plan.py)
      base.yaml              the resolved configuration every unit starts from (preset, flags, --set)
      units/<setting>-seed<s>/search/   a search run (cpnas watch / cpnas search --resume work on it)
      units/<setting>-seed<s>/train/    a training run of that search's genotype
      results.json  results.csv  results.png   rewritten after every finished unit

Each unit's search and training keep their own checkpoints and resume exactly; a unit that has
its results row is never run again. So an ablation interrupted at any point continues where it
stopped, without redoing finished settings.

Under torchrun the units left to run are dealt round-robin over the ranks; each rank runs its own
alone (no process group inside a unit, its GPU by local rank) and leaves each result in the job's
store, where rank 0 collects them as they come, writes the outputs and waits for the last one
(naming a rank that stopped before finishing its units). The directory must be one every rank sees.
"""

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from cpnas_cli import config as configs
from cpnas_cli.engine.deploy.profile import profile_eval_network
from cpnas_cli.engine.nn.network import NetworkSpec
from cpnas_cli.engine.run.distributed import SOLO, World
from cpnas_cli.engine.run.interrupt import Interrupted
from cpnas_cli.engine.search.runner import Search
from cpnas_cli.engine.train.trainer import Trainer
from cpnas_cli.errors import UserError
from cpnas_cli.events import read_all
from cpnas_cli.runs import RunDir, atomic_write_bytes, atomic_write_text, lock_writer, read_json, release_writer
from cpnas_cli.space import genotype as genotypes

from .plan import Plan, Setting
from .plot import chart_png
from .results import REFERENCE, UnitResult, read_results, rows, write_tables

PLAN, BASE = "ablation.json", "base.yaml"
CONV_OPS = ("dil_conv_3x3", "dil_conv_5x5", "sep_conv_3x3", "sep_conv_5x5")


class Ablation:
    """`create` a new ablation or `open` an interrupted one, then `run()`."""

    def __init__(
        self,
        folder: Path,
        base: configs.Config,
        plan: Plan,
        report: Callable = lambda e: None,
        stop=None,
        world: World = SOLO,
    ):
        self.folder, self.base, self.plan = Path(folder), base, plan
        self.report, self.stop, self.world = report, stop, world
        self.unit_device = world.unit_device(base.device)  # a rank's units run on its own GPU
        self.results = read_results(self.folder)

    @classmethod
    def create(cls, folder: Path, base: configs.Config, plan: Plan, **kwargs) -> "Ablation":
        """Write the plan and the base configuration into `folder` (new or empty)."""
        lock_writer(folder)
        atomic_write_text(folder / PLAN, json.dumps(plan.to_dict(), indent=2) + "\n")
        atomic_write_text(folder / BASE, configs.dump_yaml(base))
        return cls(folder, base, plan, **kwargs)

    @classmethod
    def open(cls, folder: Path, device: str | None = None, seeds: int | None = None, **kwargs) -> "Ablation":
        """An interrupted or finished ablation; `seeds` grows its plan to that many seeds."""
        folder = Path(folder)
        if not (folder / PLAN).is_file():
            raise UserError(
                f"{folder} is not an ablation directory (no {PLAN})", "pass a directory made by `cpnas ablate`"
            )
        fix = "restore it, or start the ablation again in a new directory"
        plan = Plan.from_dict(read_json(folder / PLAN, str(folder / PLAN), fix), where=str(folder / PLAN))
        base = configs.load_run_config(folder / BASE)
        base.device = device or base.device
        lock_writer(folder)  # after the reads (a damaged file writes nothing), before the plan may grow
        if seeds is not None and seeds != len(plan.seeds):
            plan = plan.with_seeds(seeds)
            atomic_write_text(folder / PLAN, json.dumps(plan.to_dict(), indent=2) + "\n")
        return cls(folder, base, plan, **kwargs)

    @property
    def finished(self) -> bool:
        return len(self.results) == len(self.plan.units())

    def run(self) -> list[UnitResult]:
        """Every unit not yet done, in plan order; the outputs are rewritten after each one. The
        ablation's writer lock (taken by `create` or `open`) ends with it."""
        try:
            return self._run_units()
        finally:
            release_writer(self.folder)

    def _run_units(self) -> list[UnitResult]:
        done = {(r.setting, r.seed) for r in self.results}
        units = self.plan.units()
        todo = self.world.broadcast([i for i, (s, seed) in enumerate(units) if (s.label, seed) not in done])

        def run_unit(index: int) -> dict:
            setting, seed = units[index]
            self.report(
                {"kind": "unit", "index": index + 1, "total": len(units), "setting": setting.label, "seed": seed}
            )
            return asdict(self._unit(setting, seed))

        add = lambda index, result: self._add(UnitResult(**result))  # noqa: E731
        deal_units(self.world, todo, run_unit, add, "ablation", self.stop, self.folder, "ablate")
        return self.results

    def _add(self, result: UnitResult) -> None:
        self.results.append(result)
        self.write_outputs()
        self.report({"kind": "result", **asdict(result)})

    def write_outputs(self) -> None:
        write_tables(self.folder, self.plan, self.results, {"base": configs.to_dict(self.base)})
        atomic_write_bytes(self.folder / "results.png", self.picture())

    def picture(self) -> bytes:
        table = rows(self.plan, self.results)
        labels = [s.label for s in self.plan.settings]
        values = [[r["test_acc_child"] for r in table if r["setting"] == label] for label in labels]
        notes = [_time_note([r for r in table if r["setting"] == label]) for label in labels]
        what = "beta_P (CP-NAS, Eq. 1)" if self.plan.axis == "beta_p" else "search strategy"
        title = f"1-bit test accuracy by {what}: {self.base.data.dataset}, seeds {_seed_list(self.plan.seeds)}"
        return chart_png(title, "Child test accuracy (%)", labels, values, notes, self.plan.axis == "beta_p")

    # --- one unit -------------------------------------------------------------------------

    def _unit(self, setting: Setting, seed: int) -> UnitResult:
        where = self.folder / "units" / f"{setting.slug}-seed{seed}"
        search_run, train_run = RunDir(where / "search"), RunDir(where / "train")
        config, resume = self._config(setting, seed), f"cpnas ablate --resume {self.folder}"
        if not search_run.genotype.is_file():
            self.report({"kind": "phase", "phase": "search", "setting": setting.label, "seed": seed})
            run_or_resume(search_run, config, lambda c: Search(c, self.report, self.stop), self.unit_device, resume)
        genotype = genotypes.load(search_run.genotype)
        if finished_status(train_run) is None:
            self.report({"kind": "phase", "phase": "train", "setting": setting.label, "seed": seed})
            train = lambda c: Trainer(c, genotype, self.report, self.stop)  # noqa: E731
            run_or_resume(train_run, config, train, self.unit_device, resume)
        searched, trained = finished_status(search_run), finished_status(train_run)
        if searched is None or trained is None:
            raise RuntimeError(f"{where}: the search or the training ran without finishing")
        spec = NetworkSpec(**read_all(train_run.events)[0]["network"])
        profile = profile_eval_network(genotype, spec)
        return UnitResult(
            setting=setting.label,
            seed=seed,
            strategy=setting.strategy,
            beta_p=genotype.meta.get("beta_p"),
            genotype=genotypes.to_darts(genotype),
            conv_edges=_conv_edges(genotype),
            search_seconds=searched["elapsed"],
            train_seconds=trained["elapsed"],
            test_acc_child=trained["test_acc_child"],
            test_acc_parent=trained["test_acc_parent"],
            params=profile.params,
            params_1bit=profile.params_1bit,
            params_32bit=profile.params_32bit,
            memory_mbit=round(profile.memory_mbit, 4),
            mops=round(profile.ops / 1e6, 4),
            search_run=str(search_run.path.relative_to(self.folder)),
            train_run=str(train_run.path.relative_to(self.folder)),
        )

    def _config(self, setting: Setting, seed: int) -> configs.Config:
        config = configs.load_run_config(self.folder / BASE)
        config.device = self.unit_device
        for key, value in {**setting.overrides(), "seed": seed}.items():
            configs.set_value(config, key, value, source=f"ablation setting {setting.label}")
        configs.validate(config)
        return config


def run_or_resume(run: RunDir, config: configs.Config, make_engine: Callable, device: str, resumed_by: str) -> None:
    """Run a unit's search or training (`make_engine(config)`), or resume its interrupted one
    with its own saved configuration (on `device`). `resumed_by` is the command line that
    continues the whole study, which a run that stops (a NaN) names."""
    resuming = run.is_run()
    if resuming:
        config = configs.load_run_config(run.config)
        config.device = device
    engine = make_engine(config)
    engine.resumed_by = resumed_by
    if resuming:
        engine.restore(run)
    else:
        run.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.config, configs.dump_yaml(config))  # a kill mid-write leaves no torn config
        engine.begin(run)
    engine.run()


def deal_units(
    world: World,
    todo: list[int],
    run_unit: Callable[[int], dict],
    add: Callable[[int, dict], None],
    key: str,
    stop,
    folder: Path,
    command: str,
    everyone: bool = False,
) -> None:
    """The units `todo` (their indices, the same list on every rank) dealt round-robin over the
    ranks: rank r runs the r-th, (r+N)-th, ... alone (`run_unit(index)` gives its result, a JSON
    object) and leaves each result in the job's store under `key/index`. Rank 0 (with `everyone`,
    every rank) `add`s every result: its own at once, the others' as they come between its units,
    then waits for the last, stopping on Ctrl-C or when a rank with units left is gone (one line
    naming it). No collective waits for another rank's units, so no timeout applies to them.
    Alone, every unit runs here, in order."""
    collects = everyone or world.main
    others = {i: n % world.size for n, i in enumerate(todo) if n % world.size != world.rank}  # unit -> its rank

    def collect(wait: bool) -> None:
        while others:
            for name, text in world.posted(f"{key}/{i}" for i in others).items():
                index = int(name.rsplit("/", 1)[1])
                del others[index]
                add(index, json.loads(text))
            if not wait or not others:
                return
            if stop is not None and stop.is_set():
                raise Interrupted(str(folder))
            if world.silent_ranks() & set(others.values()):
                collect(wait=False)  # a result posted just before its rank ended
                gone = sorted(set(others.values()))
                raise UserError(
                    f"rank {', '.join(map(str, gone))} stopped before finishing its units",
                    f"the finished units are in the results; resume with: cpnas {command} --resume {folder}",
                )
            time.sleep(1.0)

    try:
        for index in todo[world.rank :: world.size]:
            if stop is not None and stop.is_set():
                raise Interrupted(str(folder))
            result = run_unit(index)
            if world.size > 1 and (everyone or not world.main):
                world.post(f"{key}/{index}", json.dumps(result))
            if collects:
                add(index, result)
                collect(wait=False)
    except Interrupted:
        if collects:
            collect(wait=False)  # what the other ranks finished before the stop
        raise
    if collects:
        collect(wait=True)


def finished_status(run: RunDir) -> dict | None:
    """The run's `finished` status event, if it finished."""
    if not run.events.is_file():
        return None
    return next(
        (e for e in reversed(read_all(run.events)) if e["kind"] == "status" and e.get("state") == "finished"), None
    )


def _conv_edges(genotype: genotypes.Genotype) -> int:
    return sum(
        edge.op in CONV_OPS for cell in (genotype.normal, genotype.reduce) for node in cell.nodes for edge in node
    )


def _time_note(table: list[dict]) -> str:
    """Under a setting's label: its mean search time, relative to cp's when the plan has cp."""
    if not table:
        return "not run yet"
    seconds = sum(r["search_seconds"] for r in table) / len(table)
    ratios = [r["search_vs_cp"] for r in table if r["search_vs_cp"] is not None]
    relative = f"\n{sum(ratios) / len(ratios):.2f}x {REFERENCE}" if ratios else ""  # a line of its own: 6+ columns
    return f"search {seconds / 60:.1f} min{relative}"


def _seed_list(seeds) -> str:
    return ", ".join(str(s) for s in seeds)
