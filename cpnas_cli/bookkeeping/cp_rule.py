"""The genotype of a finished CP-NAS search (the ledger's survivors), by the DARTS rule. Torch-free.

Per intermediate node, the two strongest non-zero incoming edges, ranked by their final indicator
e (Eq. 2), ties by the op's mean score over the whole search; `keep="all"` keeps every edge whose
surviving op is not `zero`. A node left short of inputs borrows, from an edge whose survivor is
zero, the last non-zero op that edge lost. The differentiable strategies' rule is darts_rule.py.
"""

from dataclasses import dataclass

from cpnas_cli.space.cells import CELL_TYPES, cell_edges
from cpnas_cli.space.genotype import Cell, Edge, Genotype

from .ledger import Ledger


def derive(ledger: Ledger, nodes: int = 4, keep: str = "darts", meta: dict | None = None) -> Genotype:
    """The genotype of a finished search (one op left on every edge)."""
    if ledger.k != 1:
        raise ValueError(f"search not finished: {ledger.k} ops still on every edge")
    cells = {kind: _derive_cell(ledger, kind, nodes, keep) for kind in CELL_TYPES}
    return Genotype(cells["normal"], cells["reduce"], meta or {})


@dataclass(frozen=True)
class _Survivor:
    """What a finished search left on one edge."""

    source: int
    op: str
    strength: tuple[float, float]  # (e at the last ranking, mean score over the whole search)
    stand_in: tuple[Edge, tuple[float, float]] | None  # the last non-zero op removed here, its strength


def _derive_cell(ledger: Ledger, kind: str, nodes: int, keep: str) -> Cell:
    survivors = _survivors(ledger, kind, nodes)
    node_edges = []
    for dst in range(2, 2 + nodes):
        incoming = [s for s, (_, target) in zip(survivors, cell_edges(nodes), strict=True) if target == dst]
        live = [(Edge(s.op, s.source, round(s.strength[0], 6)), s.strength) for s in incoming if s.op != "zero"]
        # A node short of inputs (two for DARTS, one at least) borrows from edges whose survivor
        # is zero: each lends the last non-zero op it lost.
        stand_ins = [s.stand_in for s in incoming if s.op == "zero" and s.stand_in]
        wanted = 2 if keep == "darts" else max(1, len(live))
        ranked = _strongest_first(live) + _strongest_first(stand_ins)
        node_edges.append(tuple(edge for edge, _ in ranked[:wanted]))
    return Cell(tuple(node_edges), tuple(range(2, 2 + nodes)))


def _strongest_first(candidates):
    """By final e; equal e (common with T = 1, where the K = 2 round has two samples) by the
    op's mean score over the whole search."""
    return sorted(candidates, key=lambda c: (-c[1][0], -c[1][1]))


def _survivors(ledger: Ledger, kind: str, nodes: int) -> list[_Survivor]:
    result = []
    for edge, ((source, _), ops) in enumerate(zip(cell_edges(nodes), ledger.remaining[kind], strict=True)):
        survivor = ops[0]
        strength = (ledger.last_ranking[kind][edge][survivor], ledger.lifetime_mean(kind, edge, survivor))
        removed = [r for r in ledger.removals if r.cell == kind and r.edge == edge and r.op != "zero"]
        stand_in = None
        if removed:
            r = removed[-1]
            stand_in = (
                Edge(r.op, source, round(r.indicator, 6)),
                (r.indicator, ledger.lifetime_mean(kind, edge, r.op)),
            )
        result.append(_Survivor(source, survivor, strength, stand_in))
    return result
