"""Search strategies by name; each module holds one method behind the base.Strategy interface."""

from .base import StepContext, StopRequested, Strategy
from .cp import CPStrategy

STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (CPStrategy,)}

__all__ = ["STRATEGIES", "StepContext", "StopRequested", "Strategy"]
