"""Search strategies by name; each module holds one method behind the base.Strategy interface."""

from .abandit import ABanditStrategy
from .base import StepContext, StopRequested, Strategy
from .bnas import BNASStrategy
from .cp import CPStrategy
from .dcp.strategy import DCPStrategy
from .pc_darts import PCDartsStrategy
from .random import RandomStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    s.name: s for s in (CPStrategy, BNASStrategy, RandomStrategy, ABanditStrategy, PCDartsStrategy, DCPStrategy)
}

__all__ = ["STRATEGIES", "StepContext", "StopRequested", "Strategy"]
