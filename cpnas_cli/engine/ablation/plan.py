"""What an ablation compares: its settings (a strategy and, optionally, beta_P), its seeds, and
the axis the plot lays the settings along. Torch-free; stored as `ablation.json`.

Every setting runs with every seed, seed by seed (all settings of seed 0 first), so settings
measured in one run meet the same machine load and their search wall times compare.
"""

import math
import re
from dataclasses import asdict, dataclass

from cpnas_cli.config import BETA_P_KEY, STRATEGIES, STRATEGY_KEY, typed_record
from cpnas_cli.errors import UserError

AXES = ("beta_p", "strategy")


@dataclass(frozen=True)
class Setting:
    label: str
    strategy: str
    beta_p: float | None = None  # None: the base configuration's

    @property
    def slug(self) -> str:
        """The label as a directory name."""
        return re.sub(r"[^A-Za-z0-9._]+", "-", self.label).strip("-")

    def overrides(self) -> dict:
        keys: dict[str, str | float] = {STRATEGY_KEY: self.strategy}
        if self.beta_p is not None:
            keys[BETA_P_KEY] = self.beta_p
        return keys


@dataclass(frozen=True)
class Plan:
    axis: str  # "beta_p" (Fig. 6 left) or "strategy" (Fig. 6 right)
    settings: tuple[Setting, ...]
    seeds: tuple[int, ...]

    def units(self) -> list[tuple[Setting, int]]:
        return [(setting, seed) for seed in self.seeds for setting in self.settings]

    def with_seeds(self, count: int) -> "Plan":
        """The same settings with `count` seeds from the first: more seeds for a run ablation."""
        if count < len(self.seeds):
            raise UserError(
                f"--seeds {count} is fewer than the ablation's {len(self.seeds)}",
                f"give --seeds {len(self.seeds) + 1} or more to add seeds, or drop --seeds",
            )
        return Plan(self.axis, self.settings, tuple(range(self.seeds[0], self.seeds[0] + count)))

    def to_dict(self) -> dict:
        return {"axis": self.axis, "settings": [asdict(s) for s in self.settings], "seeds": list(self.seeds)}

    @classmethod
    def from_dict(cls, data, where: str = "ablation plan") -> "Plan":
        """The plan of an ablation.json; a damaged one is a UserError naming `where`."""
        fix = "restore the file, or start the ablation again in a new directory"
        if not isinstance(data, dict) or data.get("axis") not in AXES:
            raise UserError(f"{where} has no axis ({' or '.join(AXES)})", fix)
        settings, seeds = data.get("settings"), data.get("seeds")
        if not isinstance(settings, list) or not settings:
            raise UserError(f"{where} has no list of settings", fix)
        if not isinstance(seeds, list) or not seeds or not all(type(s) is int for s in seeds):
            raise UserError(f"{where} has no list of integer seeds", fix)
        return cls(
            data["axis"], tuple(typed_record(Setting, s, f"{where} setting", fix) for s in settings), tuple(seeds)
        )


def make_plan(strategies: list[str] | None, betas: list[float] | None, seeds: int, first_seed: int = 0) -> Plan:
    """The settings of `--strategies` or `--beta-p`: the one with several values is the axis; the
    other, if given, must be a single value that every setting shares."""
    strategies, betas = strategies or [], betas or []
    if not strategies and not betas:
        raise UserError("nothing to compare", "give --beta-p 0,0.5,1,2,3 or --strategies random,bnas,cp,abandit")
    if len(strategies) > 1 and len(betas) > 1:
        raise UserError(
            "--strategies and --beta-p both list several values",
            "compare along one of them; the other may give one value for every setting",
        )
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        raise UserError(f"unknown strategies {', '.join(unknown)}", f"use some of {', '.join(STRATEGIES)}")
    if any(not math.isfinite(b) or b < 0 for b in betas):
        raise UserError("--beta-p values must be finite and not negative", "e.g. --beta-p 0,0.5,1,2,3")
    if seeds < 1:
        raise UserError("--seeds must be at least 1", "e.g. --seeds 3")
    if betas and len(strategies) <= 1:
        strategy = strategies[0] if strategies else "cp"
        prefix = "" if strategy == "cp" else f"{strategy} "
        axis, settings = "beta_p", [Setting(f"{prefix}beta_p={b:g}", strategy, b) for b in betas]
    else:
        beta = betas[0] if betas else None
        axis, settings = "strategy", [Setting(s, s, beta) for s in strategies]
    if len({s.slug for s in settings}) < len(settings):
        raise UserError("a setting is listed twice", "list each strategy or beta_P value once")
    return Plan(axis, tuple(settings), tuple(range(first_seed, first_seed + seeds)))
