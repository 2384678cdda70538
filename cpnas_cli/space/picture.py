"""Pictures of a genotype's normal and reduction cells: Graphviz DOT text and a self-drawn SVG.

No system tools: the SVG is laid out here as an arc diagram, so no edge crosses a node. Each cell
is a row: the inputs c_{k-2} (node 0) and c_{k-1} (node 1), the intermediate nodes 2, 3, ... and
the output c_{k} (their concatenation). Op edges arc above the row, higher the farther they
reach, with the op's name at the top of the arc; concatenation edges arc below, dashed. Torch-free.
"""

from xml.sax.saxutils import escape

from .cells import CELL_TYPES
from .genotype import Cell, Genotype

TITLES = {"normal": "normal cell", "reduce": "reduction cell"}
OUTPUT = "c_{k}"
COLUMN, MARGIN, NODE_W, NODE_H = 150, 50, 64, 30
ARC, CONCAT_ARC, TITLE = 30, 12, 34  # arc height per column spanned (above, below); title band
FILL = {"input": "#d6e9f8", "node": "#fdf3c4", "output": "#d5efd5"}
EDGE_COLOR = {"conv": "#c0392b", "pool": "#2471a3", "skip": "#7f8c8d"}


def node_name(index: int) -> str:
    """How pictures and trees name a cell's nodes: its two inputs, then the intermediate nodes."""
    return {0: "c_{k-2}", 1: "c_{k-1}"}.get(index, str(index))


def op_family(op: str) -> str:
    return "conv" if "conv" in op else "pool" if "pool" in op else "skip"


# --- DOT ------------------------------------------------------------------------------------


def to_dot(genotype: Genotype) -> str:
    lines = [
        "digraph cpnas {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=11];',
    ]
    for kind in CELL_TYPES:
        cell = genotype.cell(kind)
        lines += [f"  subgraph cluster_{kind} {{", f'    label="{TITLES[kind]}";']
        for index in range(len(cell.nodes) + 2):
            role = "input" if index < 2 else "node"
            lines.append(f'    {kind}_{index} [label="{node_name(index)}", fillcolor="{FILL[role]}"];')
        lines.append(f'    {kind}_out [label="{OUTPUT}", fillcolor="{FILL["output"]}"];')
        for target, node in enumerate(cell.nodes, start=2):
            for edge in node:
                color = EDGE_COLOR[op_family(edge.op)]
                lines.append(f'    {kind}_{edge.source} -> {kind}_{target} [label="{edge.op}", color="{color}"];')
        lines += [f'    {kind}_{i} -> {kind}_out [style=dashed, color="#999999"];' for i in cell.concat]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- SVG ------------------------------------------------------------------------------------


def to_svg(genotype: Genotype) -> str:
    cells = [genotype.cell(kind) for kind in CELL_TYPES]
    width = 2 * MARGIN + NODE_W + COLUMN * (max(len(c.nodes) for c in cells) + 2)
    heights = [_cell_height(c) for c in cells]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{sum(heights)}" '
        f'viewBox="0 0 {width} {sum(heights)}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        "<defs>",
        *(
            f'<marker id="arrow-{family}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
            f'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="{color}"/></marker>'
            for family, color in {**EDGE_COLOR, "concat": "#999999"}.items()
        ),
        "</defs>",
        f'<rect width="{width}" height="{sum(heights)}" fill="white"/>',
    ]
    top = 0
    for kind, cell, height in zip(CELL_TYPES, cells, heights, strict=True):
        parts += _cell_svg(cell, TITLES[kind], top)
        top += height
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _cell_height(cell: Cell) -> int:
    """Title, the highest op arc, the row of nodes, the deepest concatenation arc."""
    return TITLE + ARC * (len(cell.nodes) + 1) + 20 + NODE_H + CONCAT_ARC * (len(cell.nodes) + 1) + 20


def _cell_svg(cell: Cell, title: str, top: int) -> list[str]:
    row = top + TITLE + ARC * (len(cell.nodes) + 1) + 20 + NODE_H / 2  # centre line of the nodes
    x: dict[int | str, float] = {i: MARGIN + NODE_W / 2 + COLUMN * i for i in range(len(cell.nodes) + 2)}
    x["out"] = MARGIN + NODE_W / 2 + COLUMN * (len(cell.nodes) + 2)
    parts = [f'<text x="10" y="{top + 22}" font-size="15" font-weight="bold">{escape(title)}</text>']
    for target, node in enumerate(cell.nodes, start=2):
        for edge in node:
            parts += _op_arc(x[edge.source], x[target], row - NODE_H / 2, edge.op)
    for index in cell.concat:
        x1, x2, y = x[index], x["out"], row + NODE_H / 2
        depth = CONCAT_ARC * round((x2 - x1) / COLUMN) * 2
        parts.append(
            f'<path d="M {x1} {y} Q {(x1 + x2) / 2} {y + depth} {x2 - 10} {y}" fill="none" stroke="#999999" '
            f'stroke-dasharray="4 3" marker-end="url(#arrow-concat)"/>'
        )
    for key, cx in x.items():
        if isinstance(key, int):
            role, label = ("input" if key < 2 else "node"), node_name(key)
        else:  # "out"
            role, label = "output", OUTPUT
        parts += [
            f'<rect x="{cx - NODE_W / 2}" y="{row - NODE_H / 2}" width="{NODE_W}" height="{NODE_H}" rx="6" '
            f'fill="{FILL[role]}" stroke="#555555"/>',
            f'<text x="{cx}" y="{row + 4}" text-anchor="middle">{escape(label)}</text>',
        ]
    return parts


def _op_arc(x_from: float, x_to: float, y: float, op: str) -> list[str]:
    """An arc from the top of one node to the top of a later one, ARC pixels high per column it
    spans (a quadratic curve peaks halfway to its control point), labelled at its peak."""
    x1, x2 = x_from + 10, x_to - 10
    peak = ARC * round((x_to - x_from) / COLUMN)
    color, family = EDGE_COLOR[op_family(op)], op_family(op)
    text_w = 6.6 * len(op) + 8
    mid = (x1 + x2) / 2
    return [
        f'<path d="M {x1} {y} Q {mid} {y - 2 * peak} {x2} {y}" fill="none" stroke="{color}" stroke-width="1.6" '
        f'marker-end="url(#arrow-{family})"/>',
        f'<rect x="{mid - text_w / 2}" y="{y - peak - 8}" width="{text_w}" height="16" rx="3" fill="white" '
        f'stroke="{color}" stroke-width="0.6"/>',
        f'<text x="{mid}" y="{y - peak + 4}" text-anchor="middle" fill="{color}">{escape(op)}</text>',
    ]
