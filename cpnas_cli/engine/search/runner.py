"""The search runner: one search with any strategy, its event log, checkpoints and exact resume.

The runner loads the data, builds the strategy, and drives it step by step (a CP-NAS sample, an
epoch of a differentiable search). After every step it checkpoints the strategy's tensors and
state together with the step's events, then appends those events to the log. Ctrl-C between two
batches checkpoints the unfinished step. A resumed run (after Ctrl-C, or a kill at any moment)
continues to the same genotype as an uninterrupted run on the same device. Under torchrun every
rank runs this loop on its share of the data (engine/run/distributed.py); rank 0 writes the run.
"""

from pathlib import Path

from cpnas_cli.config import Config, to_dict
from cpnas_cli.engine.run.device import resolve_device
from cpnas_cli.engine.run.distributed import SOLO, World
from cpnas_cli.engine.run.interrupt import Interrupted
from cpnas_cli.engine.run.loop import Report, RunLoop
from cpnas_cli.events import header
from cpnas_cli.runs import RunDir
from cpnas_cli.space import genotype as genotypes
from cpnas_cli.space.cells import CELL_TYPES, cell_edges

from .data import SearchData
from .strategies import STRATEGIES, StepContext, StopRequested, Strategy


class Search(RunLoop):
    """Construct (loads the data and builds the networks: bad input fails here, before anything
    is written), then `begin(run)` or `restore(run)`, then `run()`."""

    def __init__(
        self,
        config: Config,
        report: Report = lambda e: None,
        stop=None,
        strategy: type[Strategy] | None = None,
        world: World = SOLO,
    ):
        """`strategy` replaces the configured one (`cpnas correlate`'s supernet training); `world`
        is this process's rank of a torchrun job (SOLO: alone)."""
        super().__init__(report, stop, world)
        self.config = config
        self.device = world.device or resolve_device(config.device)
        self.data = SearchData(config, self.device, world)
        self.strategy = (strategy or STRATEGIES[config.search.strategy])(config, self.data, self.device)
        self.n, self.elapsed, self.saves = 0, 0.0, 0

    @property
    def total(self) -> int:
        return self.strategy.total

    def begin(self, run: RunDir) -> None:
        s = self.config.search
        edges = [list(e) for e in cell_edges(s.nodes)]
        line = header(
            "search",
            to_dict(self.config),
            cells=list(CELL_TYPES),
            edges=edges,
            ops=list(s.ops),
            **self.strategy.header_fields(),
            world_size=self.world.size,
        )
        self.start(run, line, total=self.total, strategy=self.strategy.name, device=str(self.device))

    def restore(self, run: RunDir) -> None:
        """Continue from the run's checkpoint; a run killed before its first one starts over."""
        if not self.resume(run, self._restore_state):
            return self.begin(run)
        self.emit("status", state="resumed", step=self.n, device=str(self.device), world_size=self.world.size)

    def _restore_state(self, tensors, state: dict) -> None:
        self.strategy.restore(tensors, state["strategy"])
        self.n, self.elapsed, self.saves = state["n"], state["elapsed"], state["saves"]

    def run(self) -> Path | None:
        """Search to the end and write genotype.json; returns its path (None for a strategy that
        finds no genotype). A crash is logged."""

        def steps():
            while self.n < self.total:
                self._step()

        with self.writing():
            self.guarded(steps, lambda: {"step": self.n})
            genotype = self.strategy.genotype(self._meta())
            if genotype is not None:
                self.world.on_main(lambda: genotypes.save(genotype, self.run_dir.genotype))
                self.emit("genotype", path=str(self.run_dir.genotype), genotype=genotypes.to_dict(genotype))
            self.emit("status", state="finished", elapsed=round(self.elapsed, 1))
        return self.run_dir.genotype if genotype is not None else None

    def _step(self) -> None:
        ctx = StepContext(self.report, self.stop, self.elapsed, self.world)
        try:
            events = self.strategy.step(self.n, ctx)
        except StopRequested:
            self.elapsed = ctx.elapsed()
            self._commit([ctx.event("status", state="interrupted", step=self.n)])
            raise Interrupted(str(self.run_dir.path)) from None
        self.n, self.elapsed = self.n + 1, ctx.elapsed()
        self._commit([*events, ctx.event("checkpoint", step=self.n)])

    def _commit(self, events: list[dict]) -> None:
        self.saves += 1
        state = {"n": self.n, "elapsed": self.elapsed, "saves": self.saves, "strategy": self.strategy.state()}
        self.commit(self.strategy.tensors(), state, events, tag=f"{self.saves:07d}")

    def _meta(self) -> dict:
        s = self.config.search
        return {
            "strategy": s.strategy,
            "beta_p": s.beta_p,
            "dataset": self.config.data.dataset,
            "seed": self.config.seed,
            "run": str(self.run_dir.path),
            "rounds": s.rounds,
            "ops": list(s.ops),
            "keep": s.genotype,
        }
