"""The package's layering, checked on the source with `ast` (nothing is imported):

- the command-line layer (rpg/cli, dispatched by rpg/__main__.py) is the top: no library module imports it, at
  module level or inside a function;
- the module-level imports among rpg.* modules form no cycle (a cycle makes import order matter and hides which
  module a name belongs to). Imports inside functions are allowed to go anywhere below the CLI: they are how a
  domain's heavy dependencies stay unloaded until used.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "rpg"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


MODULES = _modules()


def _resolve(node: ast.ImportFrom | ast.Import, module: str, is_package: bool) -> list[str]:
    """The rpg.* modules an import statement reaches (a `from X import y` reaches X.y when that is a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name == "rpg" or a.name.startswith("rpg.")]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not (target == "rpg" or target.startswith("rpg.")):
        return []
    out = [target]
    for a in node.names:
        if f"{target}.{a.name}" in MODULES:
            out.append(f"{target}.{a.name}")
    return out


def _imports(module: str, path: Path) -> tuple[set[str], set[str]]:
    """(module-level rpg imports, every rpg import including those inside functions) of one module."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    top: set[str] = set()
    every: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                targets = _resolve(child, module, is_package)
                every.update(targets)
                if not in_function:
                    top.update(targets)
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, inner)

    visit(tree, False)
    return top, every


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _is_cli(module: str) -> bool:
    return module == "rpg.cli" or module.startswith("rpg.cli.")


def test_the_walk_sees_the_package():
    """The checks below are only as good as the walk: it finds the CLI modules and the imports they make."""
    assert "rpg.cli.collect" in MODULES and "rpg.runtime" in MODULES and "rpg.domains" in MODULES
    assert "rpg.zoos.recipes" in GRAPH["rpg.cli.collect"][0]
    # an import inside a function counts for the CLI rule
    assert "rpg.segmentation.collect" in GRAPH["rpg.segmentation.recipe"][1]
    assert "rpg.segmentation.collect" not in GRAPH["rpg.segmentation.recipe"][0]


def test_no_library_module_imports_the_cli():
    offenders = sorted(f"{m} imports {t}" for m, (_, every) in GRAPH.items()
                       if not _is_cli(m) and m != "rpg.__main__" for t in every if _is_cli(t))
    assert not offenders, "the library imports the CLI layer:\n" + "\n".join(offenders)


def _find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as [a, b, ..., a], or None (iterative DFS, white/grey/black)."""
    state: dict[str, int] = {}
    for root in sorted(edges):
        if state.get(root):
            continue
        stack = [(root, iter(sorted(edges[root])))]
        path = [root]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
                continue
            if nxt not in edges:
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(sorted(edges[nxt]))))
                path.append(nxt)
    return None


def _module_edges() -> dict[str, set[str]]:
    """Module-level imports among rpg modules. A package's own __init__ is left out as a target of its submodules'
    imports: importing rpg.x.y runs rpg/x/__init__.py first whatever y imports, which is no dependency of y."""
    edges: dict[str, set[str]] = {}
    for m, (top, _) in GRAPH.items():
        edges[m] = {t for t in top if t in MODULES and t != m and not m.startswith(t + ".")}
    return edges


def test_find_cycle_reports_one():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_module_level_imports_have_no_cycle():
    cycle = _find_cycle(_module_edges())
    if cycle is not None:
        pytest.fail("import cycle among rpg modules: " + " -> ".join(cycle))
