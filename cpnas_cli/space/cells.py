"""The search space as plain data (paper Sec. 2.2): operation names, cell types and edges.

Torch-free, so bookkeeping, the event log and the dashboard can all name things the same way.
A cell has 2 input nodes (0, 1) and `nodes` intermediate nodes (2 ..); every intermediate node
takes an edge from every earlier node, so 4 intermediate nodes give 2+3+4+5 = 14 edges.
"""

OPS = (
    "zero",
    "skip",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "avg_pool_3x3",
    "max_pool_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
)

CELL_TYPES = ("normal", "reduce")


def cell_edges(nodes: int = 4) -> list[tuple[int, int]]:
    """(source, target) node pairs in the DARTS order: by target node, then by source."""
    return [(src, dst) for dst in range(2, 2 + nodes) for src in range(dst)]


def edge_name(cell: str, edge: tuple[int, int]) -> str:
    """A stable, readable key for one edge, e.g. 'normal 0->2'."""
    return f"{cell} {edge[0]}->{edge[1]}"
