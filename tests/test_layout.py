"""The shape of the package: imports point one way (down the stages of the method), no module
imports itself back through others, and the torch-free packages never reach torch.

Read from the source (every import, also those inside functions), so a violation names the file
and line before it ever runs.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cpnas_cli"

# Lower layers first; a module may import its own group and any group of a lower layer.
LAYERS = [
    ["cpnas_cli.errors"],
    ["cpnas_cli.runs", "cpnas_cli.events"],
    ["cpnas_cli.space"],
    ["cpnas_cli.config", "cpnas_cli.bookkeeping", "cpnas_cli.data"],
    ["cpnas_cli.engine.run", "cpnas_cli.engine.nn"],
    ["cpnas_cli.engine.search", "cpnas_cli.engine.train"],
    ["cpnas_cli.engine.deploy"],
    ["cpnas_cli.engine.ablation"],
    ["cpnas_cli.tui"],
    ["cpnas_cli.cli"],
    ["cpnas_cli.__main__"],
]
TORCH_FREE = ["cpnas_cli.errors", "cpnas_cli.runs", "cpnas_cli.events", "cpnas_cli.space", "cpnas_cli.config",
              "cpnas_cli.bookkeeping", "cpnas_cli.tui"]  # fmt: skip
TORCH = ("torch", "torchvision", "safetensors.torch")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, name: str | None = None) -> list[tuple[int, str, bool]]:
    """(line, imported module, at module level) of every import in the file (module `name`)."""
    tree = ast.parse(path.read_text())
    name = name or module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            found += [(node.lineno, f"{base}.{alias.name}", id(node) in top_level) for alias in node.names]
    return found


def modules() -> dict[str, Path]:
    """Every module that holds code (package markers with only a docstring are left out)."""
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if _has_code(p)}


def _has_code(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The project module an imported name belongs to (`pkg.mod.Symbol` -> `pkg.mod`), or None."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def group_of(module: str) -> tuple[int, str]:
    for rank, groups in enumerate(LAYERS):
        for group in groups:
            if module == group or module.startswith(group + "."):
                return rank, group
    raise AssertionError(f"{module} belongs to no layer: add its package to LAYERS in tests/test_layout.py")


def test_every_import_points_down_the_layers():
    known = modules()
    wrong = []
    for name, path in known.items():
        rank, group = group_of(name)
        for line, imported, _ in imports(path):
            target = resolve(imported, known)
            if target is None:
                continue
            target_rank, target_group = group_of(target)
            if target_group != group and target_rank >= rank:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not wrong, "imports that run sideways or upwards:\n" + "\n".join(wrong)


def test_no_import_cycles_between_modules():
    known = modules()
    graph = {name: set() for name in known}
    for name, path in known.items():
        for _, imported, at_top in imports(path):
            target = resolve(imported, known)
            if at_top and target and target != name:
                graph[name].add(target)
    cycles, state = [], {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*trail[trail.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_torch_free_packages_never_import_torch():
    """Directly or through another project module, at module level or inside a function."""
    known = modules()
    wrong = []
    for name, path in known.items():
        if not any(name == p or name.startswith(p + ".") for p in TORCH_FREE):
            continue
        for line, imported, _ in imports(path):
            if imported.startswith(TORCH) or imported.split(".")[0] in ("torch", "torchvision"):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}")
            target = resolve(imported, known)
            if target and not any(target == p or target.startswith(p + ".") for p in TORCH_FREE):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}, which is not torch-free")
    assert not wrong, "\n".join(wrong)


def test_the_layout_check_sees_a_bad_import(tmp_path):
    """The checks above can fail: an upward import and a torch import are both found."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\ndef f():\n    from cpnas_cli.engine.search.runner import Search\n    import torch\n")
    found = imports(bad, "cpnas_cli.space.bad")
    assert (4, "cpnas_cli.engine.search.runner.Search", False) in found and (5, "torch", False) in found
    assert resolve("cpnas_cli.engine.search.runner.Search", modules()) == "cpnas_cli.engine.search.runner"
    assert group_of("cpnas_cli.engine.search.runner")[0] > group_of("cpnas_cli.space.genotype")[0]
