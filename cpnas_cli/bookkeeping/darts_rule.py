"""The genotype of a differentiable search (DARTS rule, PC-DARTS edge normalisation). Torch-free.

Input: architecture logits as plain lists, per cell type: alpha, one row of op logits per edge (in
space.cell_edges order), and for PC-DARTS beta, one logit per edge. Op weights are softmax(alpha)
per edge; edge weights are softmax(beta) over the edges entering the same node. The score of op
o on edge (i, j) is its op weight times the edge's weight (1 without edge normalisation). Per
node, the two edges with the largest best non-zero score are kept, each with that best op
(`keep="all"`: every edge whose strongest op, zero included, is not zero; at least the best one).
"""

import math

from cpnas_cli.space.cells import cell_edges
from cpnas_cli.space.genotype import Cell, Edge, Genotype

Logits = dict[str, list[list[float]]]  # cell -> edge -> op logit
EdgeLogits = dict[str, list[float]]  # cell -> edge logit


def softmax(values: list[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def op_weights(alpha: Logits, ops: list[str]) -> dict[str, list[dict[str, float]]]:
    """softmax(alpha) per edge, as {cell: [{op: weight}, ...]} (the event log's form)."""
    return {cell: [dict(zip(ops, softmax(row), strict=True)) for row in rows] for cell, rows in alpha.items()}


def edge_weights(beta: EdgeLogits, nodes: int) -> dict[str, list[float]]:
    """softmax(beta) over the incoming edges of each intermediate node (edge normalisation)."""
    edges = cell_edges(nodes)
    result = {}
    for cell, logits in beta.items():
        weights = [0.0] * len(edges)
        for dst in range(2, 2 + nodes):
            incoming = [i for i, (_, target) in enumerate(edges) if target == dst]
            for i, w in zip(incoming, softmax([logits[i] for i in incoming]), strict=True):
                weights[i] = w
        result[cell] = weights
    return result


def derive(
    alpha: Logits,
    ops: list[str],
    nodes: int,
    beta: EdgeLogits | None = None,
    keep: str = "darts",
    meta: dict | None = None,
) -> Genotype:
    """The discrete cell of each type from the logits (see the module docstring)."""
    weights = op_weights(alpha, ops)
    norms = edge_weights(beta, nodes) if beta is not None else None
    cells = {}
    for cell, per_edge in weights.items():
        scale = norms[cell] if norms else [1.0] * len(per_edge)
        scores = [{op: w * s for op, w in edge.items()} for edge, s in zip(per_edge, scale, strict=True)]
        cells[cell] = _cell(scores, nodes, keep)
    return Genotype(cells["normal"], cells["reduce"], meta or {})


def _cell(scores: list[dict[str, float]], nodes: int, keep: str) -> Cell:
    edges = cell_edges(nodes)
    node_edges = []
    for dst in range(2, 2 + nodes):
        candidates = []
        for index, (src, target) in enumerate(edges):
            if target != dst:
                continue
            op, score = _best_nonzero(scores[index])
            candidates.append((score, -src, Edge(op, src, round(score, 6)), _zero_wins(scores[index])))
        candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)  # ties: the earlier source first
        chosen = candidates[:2] if keep == "darts" else [c for c in candidates if not c[3]] or candidates[:1]
        node_edges.append(tuple(c[2] for c in chosen))
    return Cell(tuple(node_edges), tuple(range(2, 2 + nodes)))


def _best_nonzero(scores: dict[str, float]) -> tuple[str, float]:
    """The strongest op other than zero; ties go to the op listed first."""
    best = None
    for op, score in scores.items():
        if op != "zero" and (best is None or score > best[1]):
            best = (op, score)
    if best is None:
        raise ValueError(f"an edge with only the zero op: {sorted(scores)}")
    return best


def _zero_wins(scores: dict[str, float]) -> bool:
    return "zero" in scores and scores["zero"] >= max(s for op, s in scores.items() if op != "zero")
