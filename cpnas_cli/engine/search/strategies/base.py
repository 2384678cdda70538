"""What a search strategy is, and what the search runner offers it while it works.

The runner (engine/search/runner.py) owns everything strategies share: data, the run directory, the
event log, checkpoints, Ctrl-C, resume and writing the genotype. A strategy owns its networks
and its method. It divides its work into `total` steps (a sample of CP-NAS, an epoch of a
differentiable search) and must be able to stop between two batches of a step and carry on
from there after `restore`, reaching the same result as an uninterrupted run.
"""

import time
from abc import ABC, abstractmethod

import torch

from cpnas_cli.config import Config
from cpnas_cli.engine.run.distributed import SOLO, World
from cpnas_cli.engine.search.data import SearchData
from cpnas_cli.events import event
from cpnas_cli.space.genotype import Genotype


class StopRequested(Exception):
    """Raised by StepContext.poll() when Ctrl-C asked the run to stop; the runner checkpoints."""


class StepContext:
    """Handed to Strategy.step: poll for Ctrl-C between batches, report transient progress."""

    def __init__(self, report, stop, elapsed_before: float, world: World = SOLO):
        self._report, self._stop, self._world = report, stop, world
        self._started = time.perf_counter()
        self._elapsed_before = elapsed_before

    def poll(self) -> None:
        """Call between batches, when the strategy's state() is consistent. Under torchrun every
        rank calls it at the same batch, and all stop there if any was asked to."""
        if self._world.agree(self._stop is not None and self._stop.is_set()):
            raise StopRequested

    def progress(self, **fields) -> None:
        self._report({"kind": "progress", **fields})

    def elapsed(self) -> float:
        """Search time so far, across resumes, including this step."""
        return self._elapsed_before + time.perf_counter() - self._started

    event = staticmethod(event)  # one event line (events.event), for the strategy's step


class Strategy(ABC):
    """Interface of a search strategy. Subclasses set `name` and implement every method."""

    name = ""

    def __init__(self, config: Config, data: SearchData, device: torch.device):
        self.config, self.data, self.device = config, data, device

    @property
    @abstractmethod
    def total(self) -> int:
        """How many steps the whole search takes."""

    @abstractmethod
    def step(self, n: int, ctx: StepContext) -> list[dict]:
        """Run step n (0-based) to its end and return its events (the runner logs them)."""

    @abstractmethod
    def tensors(self) -> dict[str, torch.Tensor]:
        """Weights and optimiser state to checkpoint."""

    @abstractmethod
    def state(self) -> dict:
        """JSON-able state to checkpoint, including progress inside the current step."""

    @abstractmethod
    def restore(self, tensors: dict[str, torch.Tensor], state: dict) -> None:
        """Take back what tensors() and state() saved (on a freshly built strategy)."""

    def header_fields(self) -> dict:
        """What the log's header says about this strategy, besides the config (none by default)."""
        return {}

    @abstractmethod
    def genotype(self, meta: dict) -> Genotype | None:
        """The result, once all steps are done (None: a strategy that only trains, e.g. supernet.py)."""
