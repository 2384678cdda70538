"""Genotypes as data: the found cells, `genotype.json` and DARTS strings. Torch-free.

A genotype lists, for each cell type, the incoming edges of every intermediate node (op and
source node) and which nodes the cell concatenates. The JSON form is versioned and validated on
load; DARTS `Genotype(...)` strings are parsed without eval. How a search turns into a genotype
lives with its bookkeeping (bookkeeping/cp_rule.py, bookkeeping/darts_rule.py).
"""

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

from cpnas_cli.errors import UserError
from cpnas_cli.runs import atomic_write_text, read_text

from .cells import CELL_TYPES, OPS

FORMAT = "cpnas-genotype"
VERSION = 1
DARTS_NAMES = {"zero": "none", "skip": "skip_connect"}  # ours -> DARTS; the rest are the same
OUR_NAMES = {v: k for k, v in DARTS_NAMES.items()}


@dataclass(frozen=True)
class Edge:
    op: str
    source: int  # 0, 1: the cell's inputs; 2..: intermediate nodes
    indicator: float | None = None  # final e of this op on this edge, when it came from a search


@dataclass(frozen=True)
class Cell:
    nodes: tuple[tuple[Edge, ...], ...]  # incoming edges of intermediate node 2, 3, ...
    concat: tuple[int, ...]


@dataclass(frozen=True)
class Genotype:
    normal: Cell
    reduce: Cell
    meta: dict = field(default_factory=dict, compare=False)  # where it came from; not structure

    def cell(self, kind: str) -> Cell:
        return self.normal if kind == "normal" else self.reduce


# --- JSON -----------------------------------------------------------------------------------


def to_dict(genotype: Genotype) -> dict:
    def cell(c: Cell):
        return {
            "nodes": [[{"op": e.op, "input": e.source, "indicator": e.indicator} for e in node] for node in c.nodes],
            "concat": list(c.concat),
        }

    return {
        "format": FORMAT,
        "version": VERSION,
        "normal": cell(genotype.normal),
        "reduce": cell(genotype.reduce),
        "meta": genotype.meta,
    }


def from_dict(data: dict, where: str = "genotype") -> Genotype:
    """Validate and build; every problem is a UserError naming the field."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(
            f'{where} is not a cpnas genotype (no "format": "{FORMAT}")',
            "pass a genotype.json written by `cpnas search`/`cpnas export`, or a DARTS Genotype(...) string",
        )
    if data.get("version") != VERSION:
        raise UserError(
            f"{where} has genotype version {data.get('version')!r}, this cpnas reads {VERSION}",
            "upgrade cpnas or re-export the genotype",
        )
    cells = {kind: _cell_from_dict(data.get(kind), f"{where}: {kind}") for kind in CELL_TYPES}
    check_space(cells, where)
    for kind, cell in cells.items():
        validate_cell(cell, f"{where}: {kind}")
    meta = data.get("meta") or {}
    if not isinstance(meta, dict):
        raise UserError(f"{where}: meta must be an object", "remove it or make it a JSON object")
    return Genotype(cells["normal"], cells["reduce"], meta)


def _cell_from_dict(cell, where: str) -> Cell:
    fix = 'each cell needs "nodes" (a list of lists of {"op", "input"}) and "concat"'
    if not isinstance(cell, dict) or not isinstance(cell.get("nodes"), list) or not cell["nodes"]:
        raise UserError(f"{where} is missing or has no nodes", fix)
    nodes = []
    for n, node in enumerate(cell["nodes"]):
        if not isinstance(node, list) or not node:
            raise UserError(f"{where} node {n + 2} has no incoming edges", fix)
        edges = []
        for item in node:
            if not isinstance(item, dict) or "op" not in item or "input" not in item:
                raise UserError(f'{where} node {n + 2}: edge {item!r} needs "op" and "input"', fix)
            edges.append(Edge(_our_name(item["op"]), item["input"], item.get("indicator")))
        nodes.append(tuple(edges))
    concat = cell.get("concat")
    if not isinstance(concat, list):
        raise UserError(f"{where} has no concat list", fix)
    return Cell(tuple(nodes), tuple(concat))


def _our_name(op):
    """Our name of an op; DARTS's spellings (none, skip_connect) are read in JSON too."""
    return OUR_NAMES.get(op, op) if isinstance(op, str) else op


def check_space(cells: dict[str, Cell], where: str) -> None:
    """Every op of the genotype is one of cpnas's (the DARTS space, paper Sec. 2.2): the ops a
    genotype of another search space brings (NASNet's sep_conv_7x7, ProxylessNAS's mbconv, ...)
    are named all at once, before the structure is checked."""
    ops = [e.op for cell in cells.values() for node in cell.nodes for e in node]
    foreign = list(dict.fromkeys(repr(op) if not isinstance(op, str) else op for op in ops if op not in OPS))
    if foreign:
        raise UserError(
            f"{where} uses {'ops' if len(foreign) > 1 else 'op'} {', '.join(foreign)}, which cpnas's search space "
            "does not have (a genotype of another search space, or a misspelt op)",
            f"its cells are built from {', '.join(o for o in OPS if o != 'zero')}: fix the names, "
            "or search a genotype in this space with `cpnas search`",
        )


def validate_cell(cell: Cell, where: str) -> None:
    """A cell is a DAG over known ops: inputs come from earlier nodes, at most one edge from each
    (the DARTS space has one edge per pair of nodes; NASNet's allows two from one input)."""
    for n, node in enumerate(cell.nodes):
        dst = n + 2
        sources = [e.source for e in node]
        for e in node:
            if e.op not in OPS:
                check_space({"cell": cell}, where)
            if e.op == "zero":
                raise UserError(
                    f"{where} node {dst}: an edge with the zero op (DARTS: none), which no found cell keeps",
                    f"drop that edge or give it one of {', '.join(o for o in OPS if o != 'zero')}",
                )
            if not isinstance(e.source, int) or isinstance(e.source, bool) or not 0 <= e.source < dst:
                raise UserError(
                    f"{where} node {dst}: input {e.source!r} must be a node before it (0..{dst - 1})",
                    "fix the edge's input index",
                )
        twice = next((s for s in sources if sources.count(s) > 1), None)
        if twice is not None:
            raise UserError(
                f"{where} node {dst} takes node {twice} twice, which cpnas's cells cannot: they have one edge "
                "per pair of nodes, as in DARTS (NASNet-style cells are another search space)",
                "give each edge of that node its own input, or search a genotype in this space with `cpnas search`",
            )
    last = len(cell.nodes) + 1
    if not cell.concat or any(not isinstance(i, int) or not 2 <= i <= last for i in cell.concat):
        raise UserError(
            f"{where}: concat {list(cell.concat)} must name intermediate nodes 2..{last}", "fix the concat list"
        )


def save(genotype: Genotype, path: Path) -> None:
    atomic_write_text(path, json.dumps(to_dict(genotype), indent=2) + "\n")


def load(path: Path | str) -> Genotype:
    """Read genotype.json or a file holding a DARTS Genotype(...) string."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"genotype file {path} not found", "pass the genotype.json of a search run")
    text = read_text(
        path, f"genotype file {path}", "pass a genotype.json written by cpnas, or a DARTS Genotype(...) string"
    )
    if text.lstrip().startswith("Genotype("):
        return from_darts(text, where=str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(
            f"{path} is not valid JSON ({err.msg} at line {err.lineno})",
            "pass a genotype.json written by cpnas, or a DARTS Genotype(...) string",
        ) from None
    return from_dict(data, where=str(path))


def holds_genotype(path: Path) -> bool:
    """Whether the file at `path` starts like a genotype (cpnas JSON or a DARTS string): to name
    the mix-up when one is given where a model file goes."""
    try:
        with open(path, "rb") as file:
            head = file.read(4096).decode("utf-8", "replace").lstrip()
    except OSError:
        return False
    return head.startswith("Genotype(") or (head.startswith("{") and f'"{FORMAT}"' in head)


# --- DARTS ----------------------------------------------------------------------------------


def to_darts(genotype: Genotype) -> str:
    """`Genotype(normal=[(op, input), ...], normal_concat=[...], reduce=..., reduce_concat=...)`."""
    parts = []
    for kind in CELL_TYPES:
        cell = genotype.cell(kind)
        if any(len(node) != 2 for node in cell.nodes):
            raise UserError(
                "this genotype keeps all edges; the DARTS format holds exactly two per node",
                "export with --format json",
            )
        pairs = ", ".join(f"('{DARTS_NAMES.get(e.op, e.op)}', {e.source})" for node in cell.nodes for e in node)
        parts.append(f"{kind}=[{pairs}], {kind}_concat={list(cell.concat)}")
    return f"Genotype({', '.join(parts)})"


def from_darts(text: str, where: str = "DARTS genotype") -> Genotype:
    """Parse a DARTS genotype string safely (no eval); `range(2, 6)` concat lists are accepted."""
    fix = (
        "expected Genotype(normal=[('op', input), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[...])"
    )
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise UserError(f"{where} is not a DARTS Genotype(...) string", fix) from None
    if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Genotype"):
        raise UserError(f"{where} is not a DARTS Genotype(...) string", fix)
    fields = {kw.arg: _literal(kw.value, where, fix) for kw in call.keywords}
    cells = {}
    for kind in CELL_TYPES:
        pairs = fields.get(kind)
        if not isinstance(pairs, list) or not pairs or len(pairs) % 2:
            raise UserError(f"{where}: {kind} must be a list of (op, input) pairs, two per node", fix)
        if not all(isinstance(p, tuple) and len(p) == 2 for p in pairs):
            raise UserError(f"{where}: {kind} holds something other than (op, input) pairs", fix)
        edges = [Edge(_our_name(op), src) for op, src in pairs]
        nodes = tuple(tuple(edges[i : i + 2]) for i in range(0, len(edges), 2))
        concat = fields.get(f"{kind}_concat", list(range(2, 2 + len(nodes))))
        if not isinstance(concat, (list, tuple)):
            raise UserError(f"{where}: {kind}_concat must be a list of node numbers", fix)
        cells[kind] = Cell(nodes, tuple(concat))
    check_space(cells, where)
    for kind, cell in cells.items():
        validate_cell(cell, f"{where}: {kind}")
    return Genotype(cells["normal"], cells["reduce"], {"source": "darts"})


def _literal(node, where, fix):
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "range":
        return list(range(*[_literal(a, where, fix) for a in node.args]))
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise UserError(f"{where} holds a value that is not a literal", fix) from None
