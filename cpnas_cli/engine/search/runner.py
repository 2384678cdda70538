"""The search runner: one search with any strategy, its event log, checkpoints and exact resume.

The runner loads the data, builds the strategy, and drives it step by step (a CP-NAS sample, an
epoch of a differentiable search). After every step it checkpoints the strategy's tensors and
state together with the step's events, then appends those events to the log. Ctrl-C between two
batches checkpoints the unfinished step. A resumed run (after Ctrl-C, or a kill at any moment)
continues to the same genotype as an uninterrupted run on the same device.
"""

from pathlib import Path
from typing import Callable

from cpnas_cli.config import Config, to_dict
from cpnas_cli.engine.run.checkpoint import STATE, load_checkpoint, save_checkpoint
from cpnas_cli.engine.run.device import resolve_device
from cpnas_cli.engine.run.interrupt import Interrupted
from cpnas_cli.events import EventWriter, header
from cpnas_cli.runs import RunDir
from cpnas_cli.space import genotype as genotypes
from cpnas_cli.space.cells import CELL_TYPES, cell_edges

from .data import SearchData
from .strategies import STRATEGIES, StepContext, StopRequested

Report = Callable[[dict], None]


class Search:
    """Construct (loads the data and builds the networks: bad input fails here, before anything
    is written), then `begin(run)` or `restore(run)`, then `run()`."""

    def __init__(self, config: Config, report: Report = lambda e: None, stop=None):
        self.config, self.report, self.stop = config, report, stop
        self.device = resolve_device(config.device)
        self.data = SearchData(config, self.device)
        self.strategy = STRATEGIES[config.search.strategy](config, self.data, self.device)
        self.n, self.elapsed, self.saves = 0, 0.0, 0

    @property
    def total(self) -> int:
        return self.strategy.total

    def begin(self, run: RunDir) -> None:
        self.run_dir, self.log = run, EventWriter(run.events)
        edges = [list(e) for e in cell_edges(self.config.search.nodes)]
        self.log.write([header("search", to_dict(self.config), list(CELL_TYPES), edges, list(self.config.search.ops))])
        self._emit("status", state="started", total=self.total, strategy=self.strategy.name, device=str(self.device))

    def restore(self, run: RunDir) -> None:
        """Continue from the run's checkpoint; a run killed before its first one starts over."""
        if not (run.checkpoint / STATE).is_file():
            run.events.unlink(missing_ok=True)
            return self.begin(run)
        self.run_dir, self.log = run, EventWriter(run.events)
        tensors, state = load_checkpoint(run.checkpoint)
        self.strategy.restore(tensors, state["strategy"])
        self.n, self.elapsed, self.saves = state["n"], state["elapsed"], state["saves"]
        self.log.truncate(state["events_offset"])
        self.log.write(state["pending_events"])
        self._emit("status", state="resumed", step=self.n, device=str(self.device))

    def run(self) -> Path:
        """Search to the end and write genotype.json; returns its path. A crash is logged."""
        try:
            while self.n < self.total:
                self._step()
        except Interrupted:
            raise
        except KeyboardInterrupt:  # a second Ctrl-C: no new checkpoint, the last one stands
            self._emit("status", state="interrupted", step=self.n)
            raise
        except Exception as err:
            self._emit("status", state="failed", error=f"{type(err).__name__}: {err}", step=self.n)
            raise
        genotype = self.strategy.genotype(self._meta())
        genotypes.save(genotype, self.run_dir.genotype)
        self._emit("genotype", path=str(self.run_dir.genotype), genotype=genotypes.to_dict(genotype))
        self._emit("status", state="finished", elapsed=round(self.elapsed, 1))
        return self.run_dir.genotype

    def _step(self) -> None:
        ctx = StepContext(self.report, self.stop, self.elapsed)
        try:
            events = self.strategy.step(self.n, ctx)
        except StopRequested:
            self.elapsed = ctx.elapsed()
            event = ctx.event("status", state="interrupted", step=self.n)
            self._commit([event])
            raise Interrupted(str(self.run_dir.path)) from None
        self.n, self.elapsed = self.n + 1, ctx.elapsed()
        self._commit(events + [ctx.event("checkpoint", step=self.n)])

    def _commit(self, events: list[dict]) -> None:
        """Checkpoint with `events` pending, then log and report them.

        The log's size before them is saved too: a resume cuts the log back to it and writes the
        pending events again, so the log holds every event exactly once whenever the process died."""
        self.saves += 1
        state = {
            "n": self.n,
            "elapsed": self.elapsed,
            "saves": self.saves,
            "strategy": self.strategy.state(),
            "events_offset": self.log.size(),
            "pending_events": events,
        }
        save_checkpoint(self.run_dir.checkpoint, self.strategy.tensors(), state, tag=f"{self.saves:07d}")
        self.log.write(events)
        for event in events:
            self.report(event)

    def _emit(self, kind: str, **fields) -> None:
        event = StepContext.event(kind, **fields)
        self.log.write([event])
        self.report(event)

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
