"""The cells of a genotype as a rich tree for the terminal (printed at the end of `cpnas search`)."""

from rich.tree import Tree

from cpnas_cli.space.cells import CELL_TYPES
from cpnas_cli.space.genotype import Genotype
from cpnas_cli.space.picture import OUTPUT, TITLES, node_name, op_family

STYLE = {"conv": "red", "pool": "blue", "skip": "dim"}


def cell_tree(genotype: Genotype) -> Tree:
    tree = Tree("[bold]Genotype[/]")
    for kind in CELL_TYPES:
        cell = genotype.cell(kind)
        inputs = ", ".join(node_name(i) for i in cell.concat)
        branch = tree.add(f"[bold]{TITLES[kind]}[/]  {OUTPUT} = concat({inputs})")
        for target, node in enumerate(cell.nodes, start=2):
            terms = " + ".join(f"[{STYLE[op_family(e.op)]}]{e.op}[/]({node_name(e.source)})" for e in node)
            branch.add(f"node {target} = {terms}")
    return tree
