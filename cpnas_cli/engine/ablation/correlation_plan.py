"""What `cpnas correlate` measures, torch-free: its plan (stored as `correlate.json`), the
architectures it draws, their genotypes, the scores compared, and the statistics of every
(score, seed) against the stand-alone 1-bit test accuracy.

Drawing: every edge of both cells takes one op uniformly at random, from a generator seeded by
(seed, index), so a seed always draws the same architectures and adding architectures keeps the
first ones. Uniform, because it is the distribution the supernet was trained on (each round
gives every op of every edge one sample); an architecture with an intermediate node whose
incoming edges are all `zero` is drawn again, since no network can be built from it.

Genotype: every non-zero edge is kept, so the network trained stand-alone is the very one the
supernet scored (the DARTS rule would need per-edge strengths, and would train a different,
pruned network from the one that was scored).
"""

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from cpnas_cli.bookkeeping.indicator import performance
from cpnas_cli.bookkeeping.ledger import Ledger
from cpnas_cli.bookkeeping.rank_correlation import bootstrap_interval, kendall_tau_b, spearman_rho, top_k_overlap
from cpnas_cli.config import load_run_config
from cpnas_cli.errors import UserError
from cpnas_cli.runs import existing_run
from cpnas_cli.space.cells import CELL_TYPES, cell_edges
from cpnas_cli.space.genotype import Cell, Edge, Genotype

Architecture = dict[str, list[str]]  # cell type -> op per edge, in cell_edges order
PLAN, BASE, SCORES = "correlate.json", "base.yaml", "scores.json"  # files of a correlate run (correlation.py)
STATISTICS = {"tau": kendall_tau_b, "rho": spearman_rho}
RANDOM = "random"  # a score drawn at random: where chance alone puts tau and rho


@dataclass(frozen=True)
class CorrelationPlan:
    architectures: int  # N per seed
    beta_ps: tuple[float, ...]  # z of Eq. 1 for each
    seeds: tuple[int, ...]
    top_k: int  # top-k overlap: the k best-scored against the k best-trained
    resamples: int = 1000  # bootstrap resamples per interval
    supernet: str | None = None  # --from: an existing search run whose supernet scores every seed's draw
    truth: str | None = None  # --truth: a correlate run whose matching stand-alone trainings are reused

    def betas(self) -> list[float]:
        """The requested beta_P values and 1 (z = A_P: the Parent alone), in order."""
        return sorted({*self.beta_ps, 1.0})

    def scores(self) -> list[str]:
        """The names of the compared scores: z per beta_P (0 is the Child alone, 1 the Parent alone), random."""
        return [score_name(b) for b in self.betas()] + [RANDOM]

    def to_dict(self) -> dict:
        return {**asdict(self), "beta_ps": list(self.beta_ps), "seeds": list(self.seeds)}

    @classmethod
    def from_dict(cls, data, where: str = "correlate plan") -> "CorrelationPlan":
        """The plan of a correlate.json; a damaged one is a UserError naming `where`."""
        fix = "restore the file, or start the study again in a new directory"
        if not isinstance(data, dict):
            raise UserError(f"{where} is not an object", fix)
        betas, seeds = data.get("beta_ps"), data.get("seeds")
        if not isinstance(betas, list) or not all(type(b) in (int, float) and 0 <= b < float("inf") for b in betas):
            raise UserError(f"{where} has no list of beta_P values", fix)
        if not isinstance(seeds, list) or not seeds or not all(type(s) is int for s in seeds):
            raise UserError(f"{where} has no list of integer seeds", fix)
        n, k, resamples = (data.get(key) for key in ("architectures", "top_k", "resamples"))
        if not (type(n) is type(k) is type(resamples) is int and n >= 3 and 1 <= k <= n and resamples >= 1):
            raise UserError(f"{where} has no possible counts (architectures >= 3, 1 <= top_k <= them, resamples)", fix)
        runs = {key: data.get(key) for key in ("supernet", "truth")}
        if any(v is not None and type(v) is not str for v in runs.values()):
            raise UserError(f"{where}: supernet and truth must be paths or null", fix)
        return cls(n, tuple(float(b) for b in betas), tuple(seeds), k, resamples, **runs)


def make_plan(architectures: int, betas: list[float], seeds: int, first_seed: int = 0) -> CorrelationPlan:
    if architectures < 3:
        raise UserError("--architectures must be at least 3", "a rank correlation needs a few architectures: e.g. 24")
    if seeds < 1:
        raise UserError("--seeds must be at least 1", "e.g. --seeds 3")
    if any(b != b or b < 0 or b == float("inf") for b in betas):
        raise UserError("--beta-p values must be finite and not negative", "e.g. --beta-p 0,1,2,3")
    if len(set(betas)) < len(betas):
        raise UserError("a beta_P value is listed twice", "list each value once")
    return CorrelationPlan(
        architectures, tuple(betas), tuple(range(first_seed, first_seed + seeds)), max(1, architectures // 4)
    )


def supernet_of(path: Path) -> Path:
    """A search run whose last checkpoint still holds every op on every edge (a `correlate`
    supernet, or a `cp` search stopped before its first pruning); anything else is a UserError."""
    run = existing_run(path)
    state_file = run.checkpoint / "state.json"
    if not state_file.is_file():
        raise UserError(f"{path} has no checkpoint", "pass a search run that checkpointed at least one sample")
    ledger = json.loads(state_file.read_text()).get("strategy", {}).get("ledger")
    if ledger is None:
        raise UserError(f"{path} holds no Child-Parent supernet", "pass a cp search or a correlate supernet run")
    alive, ops = Ledger.from_dict(ledger).k, len(load_run_config(run.config).search.ops)
    if alive < ops:
        raise UserError(
            f"{path}: its supernet was pruned to {alive} of {ops} ops per edge, so it cannot score every architecture",
            "pass a supernet with every op alive (a correlate run's seed<s>/supernet), or drop --from",
        )
    return run.path


def draw_architectures(ops: list[str], nodes: int, count: int, seed: int) -> list[Architecture]:
    """`count` architectures, the i-th a pure function of (seed, i)."""
    return [_draw(ops, nodes, random.Random(f"cpnas-correlate:{seed}:{i}")) for i in range(count)]


def _draw(ops: list[str], nodes: int, rng: random.Random) -> Architecture:
    edges = cell_edges(nodes)
    while True:
        arch = {cell: [rng.choice(ops) for _ in edges] for cell in CELL_TYPES}
        if all(_every_node_fed(ops_, edges, nodes) for ops_ in arch.values()):
            return arch


def _every_node_fed(ops: list[str], edges: list[tuple[int, int]], nodes: int) -> bool:
    fed = {dst for (_, dst), op in zip(edges, ops, strict=True) if op != "zero"}
    return len(fed) == nodes


def to_genotype(arch: Architecture, nodes: int, meta: dict | None = None) -> Genotype:
    """Every non-zero edge of the architecture, every intermediate node concatenated."""
    edges = cell_edges(nodes)

    def cell(ops: list[str]) -> Cell:
        incoming = [
            tuple(Edge(op, src) for (src, target), op in zip(edges, ops, strict=True) if target == dst and op != "zero")
            for dst in range(2, 2 + nodes)
        ]
        return Cell(tuple(incoming), tuple(range(2, 2 + nodes)))

    return Genotype(cell(arch["normal"]), cell(arch["reduce"]), meta or {})


def score_name(beta_p: float) -> str:
    alone = {0.0: " (A_C)", 1.0: " (A_P)"}.get(beta_p, "")
    return f"z beta_p={beta_p:g}{alone}"


def score_columns(plan: CorrelationPlan, acc_child: list[float], acc_parent: list[float], seed: int) -> dict:
    """Every compared score of the drawn architectures, from their supernet accuracies (percent)."""
    columns = {
        score_name(b): [performance(c, p, b) for c, p in zip(acc_child, acc_parent, strict=True)] for b in plan.betas()
    }
    rng = random.Random(f"cpnas-correlate-random:{seed}")
    return {**columns, RANDOM: [rng.random() for _ in acc_child]}


def statistics(plan: CorrelationPlan, scores: dict[str, list[float]], truth: list[float], seed: int) -> list[dict]:
    """Per score: tau and rho against `truth`, each with its bootstrap 95% interval, and top-k overlap."""
    rows = []
    for name in plan.scores():
        row: dict = {"score": name, "seed": seed, "architectures": len(truth)}
        for stat, fn in STATISTICS.items():
            row[stat] = fn(scores[name], truth)
            interval = bootstrap_interval(scores[name], truth, fn, seed, plan.resamples)
            row[f"{stat}_low"], row[f"{stat}_high"] = interval or (None, None)
        row["top_k"] = plan.top_k
        row["top_k_overlap"] = top_k_overlap(scores[name], truth, min(plan.top_k, len(truth)))
        rows.append(row)
    return rows
